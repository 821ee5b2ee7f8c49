package socketioguard

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// handshakeBody is what a Socket.IO 4 server answers to a polling handshake.
const handshakeBody = `0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`

// backendAnswer is what the service behind the router answers.
type backendAnswer struct {
	status      int
	contentType string
	body        string
	setCookie   string
}

var (
	socketIOHandshake = backendAnswer{200, "text/plain; charset=UTF-8", handshakeBody, ""}
	socketIOPostOK    = backendAnswer{200, "text/html", "ok", ""}
	webApp404         = backendAnswer{404, "text/html; charset=utf-8", "<html><body>Page not found</body></html>", "sid=Guest; Path=/"}
	webAppSPA         = backendAnswer{200, "text/html; charset=utf-8", "<!doctype html><div id=app></div>", ""}
	nginxBadGateway   = backendAnswer{502, "text/html", "<html><center>502 Bad Gateway</center></html>", ""}
	sessionUnknown    = backendAnswer{400, "application/json", `{"code":1,"message":"Session ID unknown"}`, ""}
	sessionUnknownWS  = backendAnswer{400, "text/html", "Session ID unknown", ""}
	badRequest        = backendAnswer{400, "application/json", `{"code":3,"message":"Bad request"}`, ""}
	// Other servers' and libraries' refusals of a websocket handshake that arrived whole.
	wsInvalidKey      = backendAnswer{400, "text/html", "Missing or invalid Sec-WebSocket-Key header", ""}
	pythonBadOrigin   = backendAnswer{400, "text/plain", "Not an accepted origin.", ""}
	engineIORawBadReq = backendAnswer{400, "text/html", "Bad request", ""}
	forbiddenWS       = backendAnswer{400, "text/html", "Forbidden", ""}
	forbiddenPolling  = backendAnswer{403, "application/json", `{"code":4,"message":"Forbidden"}`, ""}
	eioMismatch       = backendAnswer{400, "application/json", `{"code":5,"message":"Unsupported protocol version"}`, ""}
	authLoginPage     = backendAnswer{401, "text/html; charset=utf-8", "<html>Sign in</html>", ""}
	authRedirect      = backendAnswer{302, "text/html; charset=utf-8", `<a href="/login">Found</a>`, ""}
	wafForbidden      = backendAnswer{403, "text/html", "<html>Request blocked</html>", ""}
	appError500       = backendAnswer{500, "application/json", `{"error":"boom"}`, ""}
)

// scenario is one request as a user's deployment would send it, and what the
// client and the Socket.IO server must see.
type scenario struct {
	name    string
	config  func(*Config)
	method  string
	target  string
	headers map[string]string
	http2   bool
	answer  backendAnswer

	wantStatus    int
	wantError     string // X-Socketio-Guard-Error
	wantDiagnosis string // X-Socketio-Guard-Diagnosis
	wantRepaired  string // X-Socketio-Guard-Repaired
	wantForwarded bool
	wantBody      string            // exact body, when set
	wantSeen      map[string]string // headers the backend must see ("" = absent)
	wantSeenURI   string            // request URI the backend must see
}

// browser websocket handshake headers, as a browser sends them.
func websocketHeaders(extra map[string]string) map[string]string {
	h := map[string]string{
		"Upgrade":               "websocket",
		"Connection":            "Upgrade",
		"Sec-WebSocket-Key":     "dGhlIHNhbXBsZSBub25jZQ==",
		"Sec-WebSocket-Version": "13",
	}
	for k, v := range extra {
		if v == "" {
			delete(h, k)
		} else {
			h[k] = v
		}
	}
	return h
}

// strippedWebsocketHeaders is a handshake after a proxy that drops the
// hop-by-hop headers: only the end-to-end Sec-WebSocket-* remain.
func strippedWebsocketHeaders() map[string]string {
	return websocketHeaders(map[string]string{"Upgrade": "", "Connection": ""})
}

func guardScenarios() []scenario {
	return []scenario{
		// Healthy traffic (the report's section 3.3 checks) passes untouched.
		{
			name: "polling handshake through a healthy route", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling&t=PaB3x1c", answer: socketIOHandshake,
			wantStatus: 200, wantForwarded: true, wantBody: handshakeBody,
			wantSeenURI: "/socket.io/?EIO=4&transport=polling&t=PaB3x1c",
		},
		{
			name: "polling POST with sid answered ok", method: "POST",
			target: "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", answer: socketIOPostOK,
			wantStatus: 200, wantForwarded: true, wantBody: "ok",
		},
		{
			name: "websocket upgrade with headers intact (report's prod path)", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", headers: websocketHeaders(nil),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true,
			wantSeen: map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"},
		},
		{
			name: "Socket.IO v2 client (EIO=3) is accepted by default", method: "GET",
			target: "/socket.io/?EIO=3&transport=polling&b64=1", answer: socketIOHandshake,
			wantStatus: 200, wantForwarded: true,
		},
		{
			name: "application query parameters are the app's own and pass", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling&token=abc%20def&room=doc%3ARaven", answer: socketIOHandshake,
			wantStatus: 200, wantForwarded: true, wantSeenURI: "/socket.io/?EIO=4&transport=polling&token=abc%20def&room=doc%3ARaven",
		},
		{
			name: "CORS preflight passes to the server's CORS layer", method: "OPTIONS",
			target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Origin": "https://app.example", "Access-Control-Request-Method": "GET"},
			answer: backendAnswer{204, "", "", ""}, wantStatus: 204, wantForwarded: true,
		},
		{
			name: "the server's client bundle is a plain download", method: "GET",
			target: "/socket.io/socket.io.min.js", answer: backendAnswer{200, "application/javascript", "/*! Socket.IO */", ""},
			wantStatus: 200, wantForwarded: true,
		},
		{
			name: "the client bundle with a cache buster is a plain download", method: "GET",
			target: "/socket.io/socket.io.esm.min.js.map?v=4.8.1", answer: backendAnswer{200, "application/json", "{}", ""},
			wantStatus: 200, wantForwarded: true,
		},
		{
			name: "a bundle's name with Engine.IO's keys is an Engine.IO request (serveClient off)", method: "GET",
			target: "/socket.io/socket.io.js?EIO=4&transport=polling&%6A=0", wantStatus: 400, wantError: "jsonp-refused",
		},
		{
			name: "a name the server does not serve is no bundle: Engine.IO reads its query", method: "GET",
			target: "/socket.io/socket.io.evil.js?EIO=4&transport=polling&j=0", wantStatus: 400, wantError: "jsonp-refused",
		},
		{
			name: "a name the server does not serve, with a repeated key", method: "GET",
			target: "/socket.io/socket.io-x.js.map?EIO=4&transport=polling&transport=websocket", wantStatus: 400, wantError: "query-ambiguous",
		},

		// A hop stripped hop-by-hop headers: repaired when the request proves it.
		{
			name: "front proxy stripped Upgrade and Connection: repaired from Sec-WebSocket-*", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", headers: strippedWebsocketHeaders(),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "upgrade",
			wantSeen: map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"},
		},
		{
			name: "direct websocket (transports: [websocket]) with stripped headers: repaired", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: strippedWebsocketHeaders(),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "upgrade",
			wantSeen: map[string]string{"Upgrade": "websocket", "Connection": "Upgrade"},
		},
		{
			name: "Connection kept but Upgrade stripped: repaired", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=x", headers: websocketHeaders(map[string]string{"Upgrade": "", "Connection": "keep-alive"}),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "upgrade",
			wantSeen: map[string]string{"Upgrade": "websocket"},
		},
		{
			name: "stripped upgrade with repairUpgrade off", config: func(c *Config) { c.RepairUpgrade = false }, method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=x", headers: strippedWebsocketHeaders(),
			wantStatus: 400, wantError: "upgrade-missing",
		},
		{
			name: "transport=websocket without any websocket header (not a browser handshake)", method: "GET",
			target:     "/socket.io/?EIO=4&transport=websocket&sid=x",
			wantStatus: 400, wantError: "upgrade-missing",
		},
		{
			name: "Upgrade set to another protocol is not rewritten", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Upgrade": "h2c", "Connection": ""}),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "Upgrade with a byte Traefik's proxy refuses (it would answer 500) is refused first", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Upgrade": "websocket\u00a0"}),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "Upgrade as a list (websocket servers refuse it) is refused", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Upgrade": "foo, websocket"}),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "Connection as a list with the upgrade token is an upgrade", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Connection": "keep-alive,\tUpgrade"}),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true,
		},
		{
			name: "an upgrade with a body is no evidence of a hop that lost it (Node reads it as a plain request)", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Content-Length": "5"}), answer: badRequest,
			wantStatus: 400, wantForwarded: true, wantBody: badRequest.body,
		},
		{
			name: "an upgrade as a POST is no evidence of a hop that lost it", method: "POST",
			target: "/socket.io/?EIO=4&transport=websocket&sid=x", headers: websocketHeaders(nil), answer: badRequest,
			wantStatus: 400, wantForwarded: true, wantBody: badRequest.body,
		},
		{
			name: "websocket over HTTP/2", method: "GET", http2: true,
			target: "/socket.io/?EIO=4&transport=websocket&sid=x", headers: strippedWebsocketHeaders(),
			wantStatus: 400, wantError: "upgrade-impossible",
		},

		// A hop damaged the request: rejected with the reason.
		{
			name: "a hop dropped the query string", method: "GET", target: "/socket.io/",
			wantStatus: 400, wantError: "query-missing",
		},
		{
			name: "EIO missing", method: "GET", target: "/socket.io/?transport=polling",
			wantStatus: 400, wantError: "eio-unsupported",
		},
		{
			name: "Socket.IO v1 client (EIO=2)", method: "GET", target: "/socket.io/?EIO=2&transport=polling",
			wantStatus: 400, wantError: "eio-unsupported",
		},
		{
			name: "EIO=3 refused when only 4 is configured", config: func(c *Config) { c.EIOVersions = []string{"4"} },
			method: "GET", target: "/socket.io/?EIO=3&transport=polling",
			wantStatus: 400, wantError: "eio-unsupported",
		},
		{
			name: "transport missing", method: "GET", target: "/socket.io/?EIO=4&t=x",
			wantStatus: 400, wantError: "transport-unknown",
		},
		{
			name: "transport webtransport over HTTP", method: "GET", target: "/socket.io/?EIO=4&transport=webtransport",
			wantStatus: 400, wantError: "transport-unknown",
		},
		{
			name: "websocket refused when only polling is configured", config: func(c *Config) { c.Transports = []string{"polling"} },
			method: "GET", target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(nil),
			wantStatus: 400, wantError: "transport-unknown",
		},
		{
			name: "POST whose sid a hop dropped", method: "POST", target: "/socket.io/?EIO=4&transport=polling",
			wantStatus: 400, wantError: "bad-handshake-method",
		},

		// Path and Origin repairs.
		{
			name: "path without trailing slash is normalized, query intact", method: "GET",
			target: "/socket.io?EIO=4&transport=polling&t=abc", answer: socketIOHandshake,
			wantStatus: 200, wantForwarded: true, wantRepaired: "path",
			wantSeenURI: "/socket.io/?EIO=4&transport=polling&t=abc",
		},
		{
			// The full way (the path is not the short way's) takes the query
			// the short way's poll expression proves whole as proven.
			name: "a poll of an open session without the trailing slash: path repaired, query intact", method: "GET",
			target: "/socket.io?EIO=4&transport=polling&t=abc&sid=lv_VI97HAXpY6yYWAAAC", answer: backendAnswer{200, "text/plain; charset=UTF-8", "2", ""},
			wantStatus: 200, wantForwarded: true, wantRepaired: "path",
			wantSeenURI: "/socket.io/?EIO=4&transport=polling&t=abc&sid=lv_VI97HAXpY6yYWAAAC",
		},
		{
			name: "a poll of an open session under a longer path (engine.io matches its path as a prefix)", method: "POST",
			target: "/socket.io/extra/segment?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", answer: socketIOPostOK,
			wantStatus: 200, wantForwarded: true,
			wantSeenURI: "/socket.io/extra/segment?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC",
		},
		{
			// Without the short way (websocket only, or more than eight
			// paths) the full way reads every query itself.
			name: "a poll of an open session when only websocket is accepted", config: func(c *Config) { c.Transports = []string{"websocket"} },
			method: "GET", target: "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC",
			wantStatus: 400, wantError: "transport-unknown",
		},
		{
			name: "a poll of an open session on one of nine paths", config: func(c *Config) {
				c.Paths = []string{"/a/", "/b/", "/c/", "/d/", "/e/", "/f/", "/g/", "/h/", "/socket.io/"}
			},
			method: "GET", target: "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", answer: backendAnswer{200, "text/plain; charset=UTF-8", "2", ""},
			wantStatus: 200, wantForwarded: true,
		},
		{
			name: "the same with its sid twice is refused on the full way too", method: "GET",
			target: "/socket.io/extra?EIO=4&transport=polling&sid=a&sid=b", wantStatus: 400, wantError: "query-ambiguous",
		},
		{
			name: "path without trailing slash with normalizePath off", config: func(c *Config) { c.NormalizePath = false },
			method: "GET", target: "/socket.io?EIO=4&transport=polling", answer: socketIOHandshake,
			wantStatus: 200, wantForwarded: true, wantSeenURI: "/socket.io?EIO=4&transport=polling",
		},
		{
			name: "Frappe: missing Origin set from X-Forwarded-Proto and Host", config: func(c *Config) { c.SetMissingOrigin = true },
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"X-Forwarded-Proto": "https"},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "origin",
			wantSeen: map[string]string{"Origin": "https://v2.sysmayal.cloud"},
		},
		{
			name: "Frappe: wss upgrade gets an https Origin", config: func(c *Config) { c.SetMissingOrigin = true },
			method: "GET", target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"X-Forwarded-Proto": "wss"}),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "origin",
			wantSeen: map[string]string{"Origin": "https://v2.sysmayal.cloud"},
		},
		{
			name: "Frappe: a poll of an open session gets no Origin (servers check it on handshakes only)", config: func(c *Config) { c.SetMissingOrigin = true },
			method: "GET", target: "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", answer: socketIOHandshake,
			wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "Frappe: the upgrade of an open session gets no Origin", config: func(c *Config) { c.SetMissingOrigin = true },
			method: "GET", target: "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", headers: strippedWebsocketHeaders(),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "upgrade", wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "a present Origin is never overwritten (cross-site stays refused)", config: func(c *Config) { c.SetMissingOrigin = true },
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Origin": "https://evil.example"},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true,
			wantSeen: map[string]string{"Origin": "https://evil.example"},
		},
		{
			name: "Origin left absent when setMissingOrigin is off (default)", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling", answer: socketIOHandshake,
			wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "all three repairs at once (a direct websocket)", config: func(c *Config) { c.SetMissingOrigin = true },
			method: "GET", target: "/socket.io?EIO=4&transport=websocket", headers: strippedWebsocketHeaders(),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "path,upgrade,origin",
			wantSeenURI: "/socket.io/?EIO=4&transport=websocket",
			wantSeen:    map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Origin": "http://v2.sysmayal.cloud"},
		},

		// Attacks: what a hostile page or client could make the guard do.
		// A page on another site includes the handshake as a <script>,
		// <img> or link: the browser sends the victim's cookies and no
		// Origin, and says where the request comes from in Sec-Fetch-Site.
		{
			name: "setMissingOrigin: the site's own page (Sec-Fetch-Site same-origin) gets its Origin", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Sec-Fetch-Site": "same-origin", "X-Forwarded-Proto": "https"},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "origin",
			wantSeen: map[string]string{"Origin": "https://v2.sysmayal.cloud"},
		},
		{
			name: "setMissingOrigin: a sibling subdomain's page (same-site) gets no Origin", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Sec-Fetch-Site": "same-site"},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "setMissingOrigin: another site's page (cross-site) gets no Origin", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Sec-Fetch-Site": "cross-site"},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "setMissingOrigin: a navigation from the address bar (none) gets no Origin", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Sec-Fetch-Site": "none"},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "setMissingOrigin: an unknown or empty Sec-Fetch-Site gets no Origin", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Sec-Fetch-Site": "same-origin, cross-site"},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "setMissingOrigin: a cross-site websocket keeps the Origin the browser sent", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": "https://evil.example"},
		},
		{
			name: "setMissingOrigin: a Host that is not a plain host name gets no Origin", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Host": "evil.example/api?x="},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "setMissingOrigin: an IPv6 host with a port gets its Origin", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Host": "[::1]:8443"},
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantRepaired: "origin", wantSeen: map[string]string{"Origin": "http://[::1]:8443"},
		},
		{
			name: "JSONP polling is refused by default", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling&j=0", wantStatus: 400, wantError: "jsonp-refused",
		},
		{
			name: "JSONP spelled with an escape is refused", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling&%6A=0", wantStatus: 400, wantError: "jsonp-refused",
		},
		{
			name: "JSONP after a semicolon is refused", config: frappeRecipe,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling;j=0", wantStatus: 400, wantError: "jsonp-refused",
		},
		{
			name: "JSONP as a bare key is refused", method: "GET", target: "/socket.io/?EIO=3&transport=polling&j", wantStatus: 400, wantError: "jsonp-refused",
		},
		{
			name:   "allowJSONP lets a JSONP handshake through, never with an Origin set by the guard",
			config: func(c *Config) { c.SetMissingOrigin = true; c.AllowJSONP = true }, method: "GET", target: "/socket.io/?EIO=3&transport=polling&j=0",
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Origin": ""},
		},
		{
			name: "transport given twice (engine.io reads the last, the guard would check the first)", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling&transport=websocket", headers: strippedWebsocketHeaders(),
			wantStatus: 400, wantError: "query-ambiguous",
		},
		{
			name: "EIO given twice, once escaped", method: "GET", target: "/socket.io/?EIO=4&%45IO=3&transport=polling",
			wantStatus: 400, wantError: "query-ambiguous",
		},
		{
			name: "sid given twice after a semicolon", method: "POST", target: "/socket.io/?EIO=4&transport=polling&sid=a;%73id=b",
			wantStatus: 400, wantError: "query-ambiguous",
		},
		{
			name: "a query within the guard's limits is read whole", method: "GET",
			target: "/socket.io/?token=" + strings.Repeat("y", 3500) + "&EIO=4&transport=polling", answer: socketIOHandshake,
			wantStatus: 200, wantForwarded: true,
		},
		{
			name: "a query longer than the guard reads is refused unread", method: "GET",
			target: "/socket.io/?" + strings.Repeat("x=1&", 20000) + "EIO=4&transport=polling", wantStatus: 414, wantError: "query-too-long",
		},
		{
			name: "a query of more pairs than the guard reads is refused unread", method: "GET",
			target: "/socket.io/?" + strings.Repeat("x&", maxQueryPairs) + "EIO=4&transport=polling", wantStatus: 414, wantError: "query-too-long",
		},
		{
			name: "a malformed escape is refused (servers read it differently)", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling&j=%zz", wantStatus: 400, wantError: "query-malformed",
		},
		{
			name: "a stripped handshake that is a POST is not turned into an upgrade", method: "POST",
			target: "/socket.io/?EIO=4&transport=websocket&sid=x", headers: strippedWebsocketHeaders(),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "a stripped handshake with a body is not turned into an upgrade", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=x", headers: websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Content-Length": "40"}),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "a stripped handshake with a chunked body is not turned into an upgrade", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=x", headers: websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Transfer-Encoding": "chunked"}),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "a stripped handshake with Sec-WebSocket-Version 8 is not turned into an upgrade", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Sec-WebSocket-Version": "8"}),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "a stripped handshake whose key is not 16 bytes is not turned into an upgrade", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Sec-WebSocket-Key": "a2V5"}),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "a stripped handshake with a key but no version is not turned into an upgrade", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Sec-WebSocket-Version": ""}),
			wantStatus: 400, wantError: "websocket-handshake-invalid",
		},
		{
			name: "an intact upgrade with a bad key is the server's to judge", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(map[string]string{"Sec-WebSocket-Key": "bad"}),
			answer: socketIOHandshake, wantStatus: 200, wantForwarded: true, wantSeen: map[string]string{"Sec-WebSocket-Key": "bad"},
		},

		// The answer tells what is behind the router.
		{
			name: "web app behind the Socket.IO router answers 404", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling", answer: webApp404,
			wantStatus: 502, wantError: "backend-not-socketio", wantForwarded: true,
			wantSeen: nil,
		},
		{
			name: "web app answers the polling handshake with its HTML page", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling", answer: webAppSPA,
			wantStatus: 502, wantError: "backend-not-socketio", wantForwarded: true,
		},
		{
			name: "web app answers a poll of an open session with its HTML page", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC", answer: webAppSPA,
			wantStatus: 502, wantError: "backend-not-socketio", wantForwarded: true,
		},
		{
			name: "websocket request answered 404", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(nil), answer: webApp404,
			wantStatus: 502, wantError: "backend-not-socketio", wantForwarded: true,
		},
		{
			name: "sidecar's own 502 (Socket.IO down) is passed on unchanged", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling", answer: nginxBadGateway,
			wantStatus: 502, wantForwarded: true, wantBody: nginxBadGateway.body,
		},
		{
			name: "replicas without sticky sessions: session unknown", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", answer: sessionUnknown,
			wantStatus: 400, wantDiagnosis: "session-unknown", wantForwarded: true, wantBody: sessionUnknown.body,
		},
		{
			name: "websocket upgrade to the wrong replica: session unknown", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", headers: websocketHeaders(nil), answer: sessionUnknownWS,
			wantStatus: 400, wantDiagnosis: "session-unknown", wantForwarded: true, wantBody: "Session ID unknown",
		},
		{
			name: "nginx sidecar without upgrade lines behind Traefik", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", headers: websocketHeaders(nil), answer: badRequest,
			wantStatus: 400, wantDiagnosis: "upgrade-lost-downstream", wantForwarded: true, wantBody: badRequest.body,
		},
		{
			name: "a repaired upgrade lost again downstream", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", headers: strippedWebsocketHeaders(), answer: badRequest,
			wantStatus: 400, wantDiagnosis: "upgrade-lost-downstream", wantRepaired: "upgrade", wantForwarded: true,
		},
		{
			name: "a bad Sec-WebSocket-Key refused by ws is the server's refusal, not a lost upgrade", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(nil), answer: wsInvalidKey,
			wantStatus: 400, wantDiagnosis: "websocket-refused", wantForwarded: true, wantBody: wsInvalidKey.body,
		},
		{
			name: "python-engineio's origin refusal of a websocket", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(nil), answer: pythonBadOrigin,
			wantStatus: 400, wantDiagnosis: "websocket-refused", wantForwarded: true, wantBody: pythonBadOrigin.body,
		},
		{
			name: "engine.io's raw Bad request to an upgrade that arrived", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket&sid=x", headers: websocketHeaders(nil), answer: engineIORawBadReq,
			wantStatus: 400, wantDiagnosis: "websocket-refused", wantForwarded: true,
		},
		{
			name: "allowRequest refused a websocket (raw Forbidden)", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(nil), answer: forbiddenWS,
			wantStatus: 400, wantDiagnosis: "backend-forbidden", wantForwarded: true, wantBody: "Forbidden",
		},
		{
			name: "allowRequest refused a polling handshake (403 code 4)", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling", answer: forbiddenPolling,
			wantStatus: 403, wantDiagnosis: "backend-forbidden", wantForwarded: true, wantBody: forbiddenPolling.body,
		},
		{
			name: "EIO=3 to a server without allowEIO3 (Frappe)", method: "GET",
			target: "/socket.io/?EIO=3&transport=polling", answer: eioMismatch,
			wantStatus: 400, wantDiagnosis: "backend-eio-mismatch", wantForwarded: true, wantBody: eioMismatch.body,
		},
		{
			name: "an authentication layer's 401 page passes unchanged and unnamed", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling", answer: authLoginPage,
			wantStatus: 401, wantForwarded: true, wantBody: authLoginPage.body,
		},
		{
			name: "a redirect to a login page passes unchanged and unnamed", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling", answer: authRedirect,
			wantStatus: 302, wantForwarded: true, wantBody: authRedirect.body,
		},
		{
			name: "a WAF's HTML 403 passes unchanged and unnamed", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling", answer: wafForbidden,
			wantStatus: 403, wantForwarded: true, wantBody: wafForbidden.body,
		},
		{
			name: "a backend's own 500 to a websocket handshake is not named", method: "GET",
			target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(nil), answer: appError500,
			wantStatus: 500, wantForwarded: true, wantBody: appError500.body,
		},
		{
			name: "polling 400 other than session unknown gets no diagnosis", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling&sid=x", answer: badRequest,
			wantStatus: 400, wantForwarded: true, wantBody: badRequest.body,
		},
		{
			name: "diagnoseResponses off passes the web app's 404", config: func(c *Config) { c.DiagnoseResponses = false },
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", answer: webApp404,
			wantStatus: 404, wantForwarded: true, wantBody: webApp404.body,
		},
		{
			name: "a large 400 is streamed whole", method: "GET",
			target: "/socket.io/?EIO=4&transport=polling&sid=x", answer: backendAnswer{400, "text/plain", strings.Repeat("x", 3*maxReadAnswer), ""},
			wantStatus: 400, wantForwarded: true, wantBody: strings.Repeat("x", 3*maxReadAnswer),
		},

		{
			name: "a POST to the inspection path is an Engine.IO request like any other", config: func(c *Config) { c.InspectPath = "/socket.io/.guard" },
			method: "POST", target: "/socket.io/.guard?EIO=4&transport=polling", wantStatus: 400, wantError: "bad-handshake-method",
		},

		// The path as Traefik forwards it: escaped.
		{
			name: "a path that is the Engine.IO path only once decoded is refused", method: "GET",
			target: "/socket.io%2F?EIO=4&transport=polling&j=0", answer: webApp404, wantStatus: 400, wantError: "path-escaped",
		},
		{
			name: "an escape after the Engine.IO path is Engine.IO's to read", method: "GET",
			target: "/socket.io/%2e%2e%2Fx?EIO=4&transport=polling", answer: socketIOHandshake, wantStatus: 200, wantForwarded: true,
			wantSeenURI: "/socket.io/%2e%2e%2Fx?EIO=4&transport=polling",
		},

		// Other paths are none of the guard's business.
		{
			name: "web app request passes untouched", method: "POST",
			target: "/api/method/raven.api.send_message", headers: map[string]string{"Connection": "keep-alive"},
			answer: backendAnswer{200, "application/json", `{"message":"ok"}`, ""}, wantStatus: 200, wantForwarded: true,
			wantSeenURI: "/api/method/raven.api.send_message",
		},
		{
			name: "a web app 404 elsewhere is not replaced", method: "GET", target: "/assets/missing.js", answer: webApp404,
			wantStatus: 404, wantForwarded: true, wantBody: webApp404.body,
		},
		{
			name: "a path that only starts like /socket.io is not Engine.IO", method: "GET", target: "/socket.iox/?x=1", answer: webApp404,
			wantStatus: 404, wantForwarded: true,
		},
	}
}

// frappeRecipe is the readme's Frappe configuration.
func frappeRecipe(c *Config) {
	c.SetMissingOrigin = true
	c.EIOVersions = []string{"4"}
}

func TestGuardScenarios(t *testing.T) {
	for _, sc := range guardScenarios() {
		sc := sc
		t.Run(sc.name, func(t *testing.T) {
			runScenario(t, sc, nil)
		})
	}
}

// TestGuardScenariosTheFullWay runs every scenario again with a query the
// short way does not take (";" makes url.ParseQuery fail; the full path reads
// it as "&", as the server does): no verdict may depend on the way taken.
func TestGuardScenariosTheFullWay(t *testing.T) {
	for _, sc := range guardScenarios() {
		if !strings.Contains(sc.target, "?") {
			continue
		}
		sc := sc
		sc.target += ";app=1"
		if sc.wantSeenURI != "" {
			sc.wantSeenURI += ";app=1"
		}
		t.Run(sc.name, func(t *testing.T) {
			runScenario(t, sc, nil)
		})
	}
}

// fallbackScenarios: the fallback router (the web app's router, or a
// catch-all) must not silently swallow Socket.IO traffic.
func TestFallbackScenarios(t *testing.T) {
	fallback := func(c *Config) { c.Mode = "fallback" }
	scenarios := []scenario{
		{
			name: "sandbox tunnel: /socket.io reaches the web app router", config: fallback,
			method: "GET", target: "/socket.io/?EIO=4&transport=polling&t=x", answer: webApp404,
			wantStatus: 421, wantError: "no-socketio-route",
		},
		{
			name: "websocket reaching the catch-all router", config: fallback,
			method: "GET", target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(nil),
			wantStatus: 421, wantError: "no-socketio-route",
		},
		{
			name: "even a request with a damaged query is explained as misrouted", config: fallback,
			method: "GET", target: "/socket.io", wantStatus: 421, wantError: "no-socketio-route",
		},
		{
			name: "custom fallbackStatus", config: func(c *Config) { c.Mode = "fallback"; c.FallbackStatus = 404 },
			method: "GET", target: "/socket.io/?EIO=4&transport=polling", wantStatus: 404, wantError: "no-socketio-route",
		},
		{
			name: "the web app's own pages pass untouched", config: fallback,
			method: "GET", target: "/app/raven", answer: webAppSPA,
			wantStatus: 200, wantForwarded: true, wantBody: webAppSPA.body,
		},
		{
			name: "the client bundle passes untouched (it is no Engine.IO request)", config: fallback,
			method: "GET", target: "/socket.io/socket.io.min.js", answer: backendAnswer{200, "application/javascript", "/*! Socket.IO */", ""},
			wantStatus: 200, wantForwarded: true,
		},
	}
	for _, sc := range scenarios {
		sc := sc
		t.Run(sc.name, func(t *testing.T) {
			rec := runScenario(t, sc, nil)
			var answer guardAnswer
			if sc.wantError == "" {
				return
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
				t.Fatalf("body is not JSON: %v: %s", err, rec.Body.String())
			}
			if !strings.Contains(answer.Guard.Detail, "v2.sysmayal.cloud") || !strings.Contains(answer.Guard.Detail, "GET") {
				t.Errorf("detail should name method and host: %q", answer.Guard.Detail)
			}
			if !strings.Contains(answer.Guard.Hint, "Host(`v2.sysmayal.cloud`) && PathPrefix(`/socket.io`)") ||
				!strings.Contains(answer.Guard.Hint, "higher priority") {
				t.Errorf("hint should give the router rule: %q", answer.Guard.Hint)
			}
		})
	}
}

// runScenario sends sc through a guard in front of a backend answering
// sc.answer and checks what client and backend saw.
func runScenario(t *testing.T, sc scenario, logs *bytes.Buffer) *httptest.ResponseRecorder {
	t.Helper()
	cfg := CreateConfig()
	if sc.config != nil {
		sc.config(cfg)
	}
	var seen *http.Request
	backend := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		seen = req.Clone(context.Background())
		writeBackendAnswer(rw, sc.answer)
	})
	guard := newTestGuard(t, cfg, backend, logs)

	req := newScenarioRequest(sc)
	rec := httptest.NewRecorder()
	handler := guard.handler() // the handler New hands to Traefik (in fallback mode, not the Guard)
	handler.ServeHTTP(rec, req)

	if rec.Code != sc.wantStatus {
		t.Errorf("status = %d, want %d (body %q)", rec.Code, sc.wantStatus, rec.Body.String())
	}
	if got := rec.Header().Get(headerError); got != sc.wantError {
		t.Errorf("%s = %q, want %q", headerError, got, sc.wantError)
	}
	if got := rec.Header().Get(headerDiagnosis); got != sc.wantDiagnosis {
		t.Errorf("%s = %q, want %q", headerDiagnosis, got, sc.wantDiagnosis)
	}
	if got := rec.Header().Get(headerRepaired); got != sc.wantRepaired {
		t.Errorf("%s = %q, want %q", headerRepaired, got, sc.wantRepaired)
	}
	if (seen != nil) != sc.wantForwarded {
		t.Errorf("forwarded to the backend = %v, want %v", seen != nil, sc.wantForwarded)
	}
	if sc.wantBody != "" && rec.Body.String() != sc.wantBody {
		t.Errorf("body = %q, want %q", rec.Body.String(), sc.wantBody)
	}
	if sc.wantError != "" {
		checkGuardAnswer(t, rec, sc.wantError)
	}
	if seen != nil {
		if sc.wantSeenURI != "" && seen.URL.RequestURI() != sc.wantSeenURI {
			t.Errorf("backend saw URL %q, want %q", seen.URL.RequestURI(), sc.wantSeenURI)
		}
		if sc.wantSeenURI != "" && seen.RequestURI != sc.wantSeenURI {
			t.Errorf("backend saw RequestURI %q, want %q (Traefik's proxy re-reads it)", seen.RequestURI, sc.wantSeenURI)
		}
		for name, want := range sc.wantSeen {
			if name == "Connection" {
				if !headerHasToken(seen.Header, "Connection", "upgrade") {
					t.Errorf("backend saw Connection %q, want the upgrade token", seen.Header.Values("Connection"))
				}
				continue
			}
			if got := seen.Header.Get(name); got != want {
				t.Errorf("backend saw %s %q, want %q", name, got, want)
			}
		}
	}
	return rec
}

func newScenarioRequest(sc scenario) *http.Request {
	req := httptest.NewRequest(sc.method, sc.target, nil) // RequestURI as a server reads it
	req.Host = "v2.sysmayal.cloud"
	req.RemoteAddr = "203.0.113.7:51234"
	for k, v := range sc.headers {
		if k == "Host" {
			req.Host = v
			continue
		}
		if k == "Sec-Fetch-Site" && strings.Contains(v, ", ") {
			req.Header[k] = strings.Split(v, ", ") // two header lines
			continue
		}
		req.Header.Set(k, v)
	}
	// As Go's server reads a request: the body it announces.
	if n, err := strconv.ParseInt(req.Header.Get("Content-Length"), 10, 64); err == nil {
		req.ContentLength = n
	}
	if req.Header.Get("Transfer-Encoding") == "chunked" {
		req.TransferEncoding, req.ContentLength = []string{"chunked"}, -1
	}
	if sc.http2 {
		req.Proto = "HTTP/2.0"
		req.ProtoMajor = 2
		req.ProtoMinor = 0
	}
	return req
}

func writeBackendAnswer(rw http.ResponseWriter, a backendAnswer) {
	if a.status == 0 {
		a = socketIOHandshake
	}
	if a.contentType != "" {
		rw.Header().Set("Content-Type", a.contentType)
	}
	if a.setCookie != "" {
		rw.Header().Set("Set-Cookie", a.setCookie)
	}
	rw.WriteHeader(a.status)
	// Written in two parts, as a proxy copying a body may do.
	half := len(a.body) / 2
	_, _ = io.WriteString(rw, a.body[:half])
	_, _ = io.WriteString(rw, a.body[half:])
}

func newTestGuard(t *testing.T, cfg *Config, next http.Handler, logs *bytes.Buffer) *Guard {
	t.Helper()
	handler, err := New(context.Background(), next, cfg, "sio-guard@file")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	guard, ok := handler.(*Guard)
	if !ok {
		guard = handler.(*fallbackGuard).guard // ServeHTTP through guard.handler()
	}
	if logs != nil {
		guard.log.stdout = logs
		guard.log.stderr = logs
	} else {
		guard.log.stdout = io.Discard
		guard.log.stderr = io.Discard
	}
	return guard
}

// checkGuardAnswer: every answer the guard writes is Engine.IO's error shape
// plus the guard's explanation, so clients parse it and humans can act on it.
func checkGuardAnswer(t *testing.T, rec *httptest.ResponseRecorder, id string) {
	t.Helper()
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	if rec.Header().Get("Set-Cookie") != "" {
		t.Errorf("the replaced answer kept the backend's Set-Cookie")
	}
	var answer guardAnswer
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatalf("answer is not JSON: %v: %q", err, rec.Body.String())
	}
	if answer.Guard.Error != id || answer.Message != engineIOMessages[answer.Code] || answer.Message == "" {
		t.Errorf("answer = %+v, want error %q with an Engine.IO code and message", answer, id)
	}
	if answer.Guard.Detail == "" || answer.Guard.Hint == "" {
		t.Errorf("answer needs a detail and a hint: %+v", answer)
	}
}

// TestEngineIOClientParsesGuardAnswers checks the codes against Engine.IO's table.
func TestGuardAnswersUseEngineIOCodes(t *testing.T) {
	cases := []struct {
		target, method, id string
		code               int
	}{
		{"/socket.io/", "GET", "query-missing", 3},
		{"/socket.io/?EIO=2&transport=polling", "GET", "eio-unsupported", 5},
		{"/socket.io/?EIO=4&transport=carrier-pigeon", "GET", "transport-unknown", 0},
		{"/socket.io/?EIO=4&transport=polling", "PUT", "bad-handshake-method", 2},
		{"/socket.io/?EIO=4&transport=websocket", "GET", "upgrade-missing", 3},
	}
	for _, c := range cases {
		rec := runScenario(t, scenario{name: c.id, method: c.method, target: c.target, wantStatus: 400, wantError: c.id}, nil)
		var answer guardAnswer
		_ = json.Unmarshal(rec.Body.Bytes(), &answer)
		if answer.Code != c.code {
			t.Errorf("%s: code %d, want %d", c.id, answer.Code, c.code)
		}
	}
}

func TestConfigValidation(t *testing.T) {
	cases := []struct {
		name    string
		change  func(*Config)
		wantErr string // substring; "" = accepted
	}{
		{"defaults", func(*Config) {}, ""},
		{"nil config uses defaults", nil, ""},
		{"several paths, label spacing", func(c *Config) { c.Paths = []string{"/socket.io/", " /ws/"} }, ""},
		{"fallback mode", func(c *Config) { c.Mode = "fallback" }, ""},
		{"EIO 4 only", func(c *Config) { c.EIOVersions = []string{"4"} }, ""},
		{"inspect path", func(c *Config) { c.InspectPath = "/socket.io/.guard" }, ""},
		{"bad mode", func(c *Config) { c.Mode = "bogus" }, `mode "bogus" is not one of guard, fallback`},
		{"empty mode", func(c *Config) { c.Mode = "" }, `mode "" is not one of guard, fallback`},
		{"no paths", func(c *Config) { c.Paths = nil }, "paths is empty"},
		{"empty path", func(c *Config) { c.Paths = []string{""} }, "paths[0] is empty"},
		{"path without leading slash", func(c *Config) { c.Paths = []string{"socket.io/"} }, `paths[0] "socket.io/" must start with /`},
		{"path without trailing slash", func(c *Config) { c.Paths = []string{"/socket.io"} }, `paths[0] "/socket.io" must end with /: write /socket.io/`},
		{"root path", func(c *Config) { c.Paths = []string{"/"} }, "would treat every request as Engine.IO"},
		{"path with a query", func(c *Config) { c.Paths = []string{"/socket.io/?EIO=4/"} }, "not a plain path prefix"},
		{"EIO 5", func(c *Config) { c.EIOVersions = []string{"4", "5"} }, `eioVersions[1] "5" is not one of 3, 4`},
		{"no EIO versions", func(c *Config) { c.EIOVersions = []string{} }, "eioVersions is empty"},
		{"webtransport", func(c *Config) { c.Transports = []string{"webtransport"} }, `transports[0] "webtransport" is not one of polling, websocket`},
		{"fallbackStatus 200", func(c *Config) { c.FallbackStatus = 200 }, "fallbackStatus 200 is not an HTTP error status: use a number from 400 to 599"},
		{"fallbackStatus 0", func(c *Config) { c.FallbackStatus = 0 }, "fallbackStatus 0"},
		{"logLevel verbose", func(c *Config) { c.LogLevel = "verbose" }, `logLevel "verbose" is not one of off, error, warn, info, debug`},
		{"inspectPath relative", func(c *Config) { c.InspectPath = "guard" }, `inspectPath "guard" must be a plain absolute path`},
	}
	for _, c := range cases {
		var cfg *Config
		if c.change != nil {
			cfg = CreateConfig()
			c.change(cfg)
		}
		_, err := New(context.Background(), http.NotFoundHandler(), cfg, "sio-guard@file")
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.wantErr != "" && err == nil:
			t.Errorf("%s: accepted, want an error containing %q", c.name, c.wantErr)
		case c.wantErr != "" && !strings.Contains(err.Error(), c.wantErr):
			t.Errorf("%s: error %q does not contain %q", c.name, err, c.wantErr)
		case c.wantErr != "" && !strings.Contains(err.Error(), "sio-guard@file"):
			t.Errorf("%s: error %q does not name the middleware", c.name, err)
		}
	}
}

func TestLogsAreRateLimitedAndCarryNoSecrets(t *testing.T) {
	var stdout, stderr bytes.Buffer
	cfg := CreateConfig()
	cfg.LogLevel = "warn"
	guard := newTestGuard(t, cfg, http.NotFoundHandler(), nil)
	guard.log.stdout = &stdout
	guard.log.stderr = &stderr
	clock := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	guard.log.now = func() time.Time { return clock }

	send := func(target string, headers map[string]string) {
		req := newScenarioRequest(scenario{method: "GET", target: target, headers: headers})
		req.Header.Set("Cookie", "sid=SECRET-COOKIE")
		req.Header.Set("Authorization", "token SECRET-TOKEN")
		guard.ServeHTTP(httptest.NewRecorder(), req)
	}
	for i := 0; i < 20; i++ {
		send("/socket.io/?EIO=4&transport=polling&sid=SECRET-SID", nil) // the web app's 404: backend-not-socketio, error level
	}
	if n := strings.Count(stderr.String(), "\n"); n != logLinesPerSecond {
		t.Fatalf("wrote %d lines in one second, want %d:\n%s", n, logLinesPerSecond, stderr.String())
	}
	// Another event id has a budget of its own, in the same second.
	send("/socket.io/?sid=SECRET-SID", nil) // query-missing: warn level
	if !strings.Contains(stdout.String(), "event=query-missing") || strings.Contains(stdout.String(), "suppressed=") {
		t.Errorf("a flood of backend-not-socketio must not hold back or count into query-missing: %q", stdout.String())
	}
	clock = clock.Add(1100 * time.Millisecond)
	stderr.Reset()
	send("/socket.io/?EIO=4&transport=polling&sid=SECRET-SID", nil)
	if !strings.Contains(stderr.String(), "suppressed=15") || !strings.Contains(stderr.String(), "event=backend-not-socketio") {
		t.Errorf("the next backend-not-socketio line should report its 15 suppressed lines: %q", stderr.String())
	}
	all := stdout.String() + stderr.String()
	for _, secret := range []string{"SECRET-COOKIE", "SECRET-TOKEN", "SECRET-SID"} {
		if strings.Contains(all, secret) {
			t.Errorf("log contains %s:\n%s", secret, all)
		}
	}
	for _, field := range []string{"level=error", "middleware=sio-guard@file", "event=backend-not-socketio", "method=GET", "host=v2.sysmayal.cloud", "path=/socket.io/", "remote=203.0.113.7:51234", "hint="} {
		if !strings.Contains(stderr.String(), field) {
			t.Errorf("error line lacks %s: %q", field, stderr.String())
		}
	}
}

func TestLogLevels(t *testing.T) {
	cases := []struct {
		level      string
		wantStderr bool
		wantStdout bool
	}{
		{"off", false, false},
		{"error", true, false},
		{"warn", true, true},
		{"debug", true, true},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		cfg := CreateConfig()
		cfg.LogLevel = c.level
		guard := newTestGuard(t, cfg, http.NotFoundHandler(), nil)
		guard.log.stdout = &stdout
		guard.log.stderr = &stderr
		guard.ServeHTTP(httptest.NewRecorder(), newScenarioRequest(scenario{method: "GET", target: "/socket.io/?EIO=4&transport=polling"})) // backend-not-socketio: error
		guard.ServeHTTP(httptest.NewRecorder(), newScenarioRequest(scenario{method: "GET", target: "/socket.io/"}))                         // query-missing: warn
		if (stderr.Len() > 0) != c.wantStderr || (stdout.Len() > 0) != c.wantStdout {
			t.Errorf("logLevel %s: stderr %q, stdout %q", c.level, stderr.String(), stdout.String())
		}
	}
}

func TestLogLinesCannotBeForged(t *testing.T) {
	var logs bytes.Buffer
	sc := scenario{method: "GET", target: "/socket.io/?EIO=4&transport=polling"}
	cfg := CreateConfig()
	guard := newTestGuard(t, cfg, http.NotFoundHandler(), &logs) // the web app's 404: an error-level line
	req := newScenarioRequest(sc)
	req.Host = "evil\nlevel=error event=fake"
	guard.ServeHTTP(httptest.NewRecorder(), req)
	if strings.Count(logs.String(), "\n") != 1 || !strings.Contains(logs.String(), `host="evil\nlevel=error event=fake"`) {
		t.Errorf("request data must be quoted in the log: %q", logs.String())
	}
}

func TestInspect(t *testing.T) {
	cfg := CreateConfig()
	cfg.InspectPath = "/socket.io/.guard"
	cfg.SetMissingOrigin = true
	guard := newTestGuard(t, cfg, http.NotFoundHandler(), nil)

	// Some traffic first, so the counters have something to show.
	guard.ServeHTTP(httptest.NewRecorder(), newScenarioRequest(scenario{method: "GET", target: "/socket.io/"}))

	req := newScenarioRequest(scenario{method: "GET", target: "/socket.io/.guard?EIO=4&transport=websocket&sid=SECRET-SID&room=x",
		headers: strippedWebsocketHeaders()})
	req.Header.Set("Cookie", "sid=SECRET-COOKIE")
	req.Header.Set("Authorization", "Bearer SECRET-TOKEN")
	req.Header.Set("X-Forwarded-Proto", "wss")
	rec := httptest.NewRecorder()
	guard.ServeHTTP(rec, req)

	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("inspect answered %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	body := rec.Body.String()
	for _, secret := range []string{"SECRET-SID", "SECRET-COOKIE", "SECRET-TOKEN"} {
		if strings.Contains(body, secret) {
			t.Errorf("inspection echoes %s:\n%s", secret, body)
		}
	}
	var got inspection
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("inspection is not JSON: %v", err)
	}
	// A request with a sid is no handshake: only the upgrade is repaired.
	if got.Verdict.Action != "forward" || strings.Join(got.Verdict.Repairs, ",") != "upgrade" {
		t.Errorf("verdict = %+v, want forward after repairing upgrade", got.Verdict)
	}
	if !got.Headers.SecWebSocketKey || got.Headers.Upgrade != "" || !got.Headers.CookiePresent || got.Headers.XForwardedProto != "wss" {
		t.Errorf("headers = %+v", got.Headers)
	}
	if got.Query["room"] != nil || strings.Join(got.OtherQueryKeys, ",") != "room" || got.Query["sid"][0] != "REDACTED" || got.Query["EIO"][0] != "4" {
		t.Errorf("query = %v, other keys %v: want Engine.IO keys with values (sid redacted), the app's own by name only", got.Query, got.OtherQueryKeys)
	}
	if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("inspect answer headers: %v", rec.Header())
	}
	if got.Counters.EngineIORequests != 1 || got.Counters.Rejections["query-missing"] != 1 {
		t.Errorf("counters = %+v", got.Counters)
	}

	// An inspection of a request the guard would refuse says so.
	rec = httptest.NewRecorder()
	guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: "/socket.io/.guard"}))
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	if got.Verdict.Action != "reject" || got.Verdict.Error != "query-missing" || got.Verdict.Status != 400 {
		t.Errorf("verdict = %+v, want reject query-missing", got.Verdict)
	}
}

func TestInspectOffByDefault(t *testing.T) {
	rec := runScenario(t, scenario{method: "GET", target: "/socket.io/.guard", wantStatus: 400, wantError: "query-missing"}, nil)
	if strings.Contains(rec.Body.String(), "verdict") {
		t.Errorf("inspection answered although inspectPath is empty")
	}
}

// TestUpgradeCompletesThroughTheGuard runs a real 101 handshake through the
// guard and Go's reverse proxy (what Traefik uses): the proxy must be able to
// hijack the client connection through the guard's websocket watcher, also
// after the guard restored stripped upgrade headers.
func TestUpgradeCompletesThroughTheGuard(t *testing.T) {
	backend := echoUpgradeBackend()
	defer backend.Close()

	target, _ := url.Parse(backend.URL)
	guard := newTestGuard(t, CreateConfig(), httputil.NewSingleHostReverseProxy(target), nil)
	front := httptest.NewServer(guard)
	defer front.Close()

	cases := []struct {
		name        string
		headers     string
		wantRepair  bool
		wantUpgrade bool
	}{
		{"headers intact", "Upgrade: websocket\r\nConnection: Upgrade\r\n", false, true},
		{"headers stripped by a front proxy", "", true, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn, br, resp := rawWebsocketHandshake(t, front, "EIO=4&transport=websocket", c.headers)
			if resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d, want 101", resp.StatusCode)
			}
			if got := resp.Header.Get(headerRepaired) == "upgrade"; got != c.wantRepair {
				t.Errorf("%s = %q", headerRepaired, resp.Header.Get(headerRepaired))
			}
			_, _ = io.WriteString(conn, "2probe\n")
			line, err := br.ReadString('\n')
			if err != nil || line != "echo 2probe\n" {
				t.Errorf("after 101 the tunnel carried %q, %v", line, err)
			}
		})
	}
	if c := guard.counters.snapshot(); c.WebsocketHandshakes != 2 || c.WebsocketUpgrades != 2 || c.WebsocketFailed != 0 {
		t.Errorf("counters after two 101s: %+v", c)
	}
}

// echoUpgradeBackend answers a websocket handshake (Upgrade and Connection
// as a server reads them) with a 101 and echoes one line, and anything else
// as Engine.IO refuses a plain GET on its websocket transport (400, code 3)
// — also a handshake whose query asks for it (refuse=1).
func echoUpgradeBackend() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if !headerHasToken(req.Header, "Upgrade", "websocket") || !headerHasToken(req.Header, "Connection", "upgrade") || req.URL.Query().Get("refuse") != "" {
			http.Error(rw, `{"code":3,"message":"Bad request"}`, http.StatusBadRequest)
			return
		}
		conn, brw, err := http.NewResponseController(rw).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		_, _ = brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		_ = brw.Flush()
		line, _ := brw.ReadString('\n') // echo one line
		_, _ = brw.WriteString("echo " + line)
		_ = brw.Flush()
	}))
}

// rawWebsocketHandshake sends a websocket handshake for /socket.io/?query
// with upgradeHeaders (CRLF-terminated lines, or none) to front over a raw
// connection, closed when the test ends, and reads the answer's head: the
// connection and its reader stay usable for the tunnel after a 101.
func rawWebsocketHandshake(t *testing.T, front *httptest.Server, query, upgradeHeaders string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", front.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	_, _ = io.WriteString(conn, "GET /socket.io/?"+query+" HTTP/1.1\r\nHost: v2.sysmayal.cloud\r\n"+
		upgradeHeaders+"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return conn, br, resp
}

// TestWebsocketWithDiagnoseResponsesOff: with diagnoseResponses off a
// websocket handshake still goes through the guard's watcher (forwarded
// from ServeHTTP, so that no deeper frame stays allocated while it is
// open): a 101 is handed over and counted, a refusal reaches the client as
// the server wrote it — unread, unmarked — and is counted as failed.
func TestWebsocketWithDiagnoseResponsesOff(t *testing.T) {
	backend := echoUpgradeBackend()
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	config := CreateConfig()
	config.DiagnoseResponses = false
	guard := newTestGuard(t, config, httputil.NewSingleHostReverseProxy(target), nil)
	front := httptest.NewServer(guard)
	defer front.Close()
	for _, c := range []struct {
		name, query string
		wantStatus  int
	}{
		{"a handshake the server takes", "EIO=4&transport=websocket", http.StatusSwitchingProtocols},
		{"a handshake the server refuses", "EIO=4&transport=websocket&refuse=1", http.StatusBadRequest},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, resp := rawWebsocketHandshake(t, front, c.query, "Upgrade: websocket\r\nConnection: Upgrade\r\n")
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
			if resp.StatusCode != c.wantStatus || resp.Header.Get(headerDiagnosis) != "" {
				t.Errorf("status %d, diagnosis %q, want %d unmarked (body %q)", resp.StatusCode, resp.Header.Get(headerDiagnosis), c.wantStatus, body)
			}
			if c.wantStatus == http.StatusBadRequest && string(body) != "{\"code\":3,\"message\":\"Bad request\"}\n" {
				t.Errorf("the refusal reached the client as %q, not as the server wrote it", body)
			}
		})
	}
	if c := guard.counters.snapshot(); c.WebsocketHandshakes != 2 || c.WebsocketUpgrades != 1 || c.WebsocketFailed != 1 {
		t.Errorf("counters after a 101 and a refusal: %+v", c)
	}
}

// TestReadEngineIOQuery: the guard reads the query as engine.io (Node's
// URLSearchParams) will, whatever the spelling, and notices a repeated key.
func TestReadEngineIOQuery(t *testing.T) {
	cases := []struct {
		query                  string
		eio, transport         string
		hasEIO, hasTransp, sid bool
		jsonp                  bool
		ambiguous              string
		refused                string // the problem the reader reports instead
	}{
		{query: "EIO=4&transport=polling&t=N8hyd6w", eio: "4", transport: "polling", hasEIO: true, hasTransp: true},
		{query: "EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", eio: "4", transport: "websocket", hasEIO: true, hasTransp: true, sid: true},
		{query: "transport=polling&EIO=3&b64=1", eio: "3", transport: "polling", hasEIO: true, hasTransp: true},
		{query: "EIO=4;transport=polling", eio: "4", transport: "polling", hasEIO: true, hasTransp: true}, // Traefik forwards ";" as "&"
		{query: "EIO=4&transport=web%73ocket", eio: "4", transport: "websocket", hasEIO: true, hasTransp: true},
		{query: "%45IO=%34&%74ransport=polling", eio: "4", transport: "polling", hasEIO: true, hasTransp: true},
		{query: "EIO=&transport=", hasEIO: true, hasTransp: true},
		{query: "sid=&EIO=4&transport=polling", eio: "4", transport: "polling", hasEIO: true, hasTransp: true}, // empty sid is a handshake
		{query: "eio=4&Transport=polling"}, // keys are case-sensitive
		{query: ""},
		{query: "&&&"},
		{query: "EIO=4&transport=polling&app=a%26transport%3Dwebsocket", eio: "4", transport: "polling", hasEIO: true, hasTransp: true}, // an escaped & is data
		{query: "EIO+=4&+transport=polling"}, // "EIO " is not EIO for the server either

		// JSONP, however spelled.
		{query: "EIO=4&transport=polling&j=0", eio: "4", transport: "polling", hasEIO: true, hasTransp: true, jsonp: true},
		{query: "EIO=4&transport=polling&%6A=0", eio: "4", transport: "polling", hasEIO: true, hasTransp: true, jsonp: true},
		{query: "EIO=4&transport=polling;j=0", eio: "4", transport: "polling", hasEIO: true, hasTransp: true, jsonp: true},
		{query: "EIO=4&transport=polling&j", eio: "4", transport: "polling", hasEIO: true, hasTransp: true, jsonp: true}, // a bare key is present
		{query: "EIO=4&transport=polling&jj=0&xj=1", eio: "4", transport: "polling", hasEIO: true, hasTransp: true},

		// A repeated key: servers disagree on which copy counts.
		{query: "EIO=4&EIO=3&transport=polling", ambiguous: "EIO"},
		{query: "EIO=4&transport=polling&transport=websocket", ambiguous: "transport"},
		{query: "EIO=4&transport=polling;%74ransport=websocket", ambiguous: "transport"},
		{query: "EIO=4&transport=polling&sid=a&sid=b", ambiguous: "sid"},
		{query: "EIO=4&transport=polling&sid=&sid=b", ambiguous: "sid"},
		{query: "EIO=4&transport=polling&j&j", ambiguous: "j"},
		{query: strings.Repeat("jx&", 10) + "EIO=4&transport=polling&j=1", eio: "4", transport: "polling", hasEIO: true, hasTransp: true, jsonp: true},

		// A malformed escape: servers disagree on the pair (URLSearchParams
		// keeps it as written, Go's url.ParseQuery drops it).
		{query: "EIO=%zz&transport=polling", refused: "query-malformed"},
		{query: "EIO=4&transport=po%lling", refused: "query-malformed"},
		{query: "EIO=4&transport=polling&j=%zz", refused: "query-malformed"},
		{query: "EIO=4&transport=polling&app=50%", refused: "query-malformed"},

		// The limits: read whole up to them, refused unread past them.
		{query: "x=" + strings.Repeat("y", maxQueryLength-len("x=&EIO=4&transport=polling")) + "&EIO=4&transport=polling", eio: "4", transport: "polling", hasEIO: true, hasTransp: true},
		{query: "x=" + strings.Repeat("y", maxQueryLength-len("x=&EIO=4&transport=polling")+1) + "&EIO=4&transport=polling", refused: "query-too-long"},
		{query: strings.Repeat("x=1&", maxQueryPairs-2) + "EIO=4&transport=polling", eio: "4", transport: "polling", hasEIO: true, hasTransp: true},
		{query: strings.Repeat("x=1&", maxQueryPairs-1) + "EIO=4&transport=polling", refused: "query-too-long"},
		{query: strings.Repeat("x=1;", maxQueryPairs-1) + "EIO=4&transport=polling", refused: "query-too-long"},
		{query: strings.Repeat("x=1&", 20000) + "EIO=4&transport=polling", refused: "query-too-long"},
	}
	for _, c := range cases {
		var r engineIORequest
		p := readEngineIOQuery(c.query, &r)
		switch {
		case c.refused != "" || p != nil:
			if p == nil || p.id != c.refused {
				t.Errorf("%.80q: reader says %v, want %q", c.query, p, c.refused)
			}
		case c.ambiguous != "": // which copy the guard read does not matter: it refuses
			if r.ambiguousKey != c.ambiguous {
				t.Errorf("%.80q: ambiguous key %q, want %q", c.query, r.ambiguousKey, c.ambiguous)
			}
		case r.eio != c.eio || r.transport != c.transport || r.hasEIO != c.hasEIO || r.hasTransport != c.hasTransp || r.hasSID != c.sid ||
			r.hasJSONP != c.jsonp || r.ambiguousKey != "":
			t.Errorf("%.80q: got %+v", c.query, r)
		}
	}
}

func TestCommonPrefix(t *testing.T) {
	cases := []struct {
		paths   []string
		inspect string
		want    string
	}{
		{[]string{"/socket.io/"}, "", "/socket.io"},
		{[]string{"/socket.io/"}, "/socket.io/.guard", "/socket.io"},
		{[]string{"/socket.io/", "/ws/"}, "", "/"},
		{[]string{"/socket.io/"}, "/guard", "/"},
		{[]string{"/realtime/socket.io/", "/realtime/ws/"}, "", "/realtime/"},
	}
	for _, c := range cases {
		if got := commonPrefix(c.paths, c.inspect); got != c.want {
			t.Errorf("%v %q: %q, want %q", c.paths, c.inspect, got, c.want)
		}
	}
}

func TestMatchEngineIOPath(t *testing.T) {
	prefixes := []string{"/socket.io/", "/ws/"}
	cases := []struct {
		path         string
		prefix       string
		missingSlash bool
		ok           bool
	}{
		{"/socket.io/", "/socket.io/", false, true},
		{"/socket.io", "/socket.io/", true, true},
		{"/socket.io/anything", "/socket.io/", false, true},
		{"/ws", "/ws/", true, true},
		{"/ws/", "/ws/", false, true},
		{"/socket.iox", "", false, false},
		{"/socket.i", "", false, false},
		{"/", "", false, false},
		{"", "", false, false},
		{"/api/socket.io/", "", false, false},
	}
	for _, c := range cases {
		prefix, missing, ok := matchEngineIOPath(prefixes, c.path)
		if prefix != c.prefix || missing != c.missingSlash || ok != c.ok {
			t.Errorf("%q: got (%q, %v, %v)", c.path, prefix, missing, ok)
		}
	}
}

// headerHasToken reads a comma-separated header as net/http's httpguts does
// (any line, any case, spaces and tabs around each element): the tests'
// own reading, independent of the guard's.
func headerHasToken(h http.Header, name, token string) bool {
	for _, line := range h.Values(name) {
		for _, item := range strings.Split(line, ",") {
			if strings.EqualFold(strings.Trim(item, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// TestEveryRejectionIsDescribed: each problem findProblem can return has
// its detail's words (every refusal of a request calls describeRejection[p]).
func TestEveryRejectionIsDescribed(t *testing.T) {
	answeredElsewhere := map[*problem]bool{&problemPathEscaped: true, &problemNoSocketIORoute: true, &problemBackendNotSocketIO: true, &problemInspectionRateLimited: true}
	for _, p := range allProblems {
		if !p.diagnosis && !answeredElsewhere[p] && describeRejection[p] == nil {
			t.Errorf("%s has no describeRejection entry", p.id)
		}
	}
}

// TestWebSocketHandshakeRefusalsSayWhatIsWrong: each flaw of a stripped
// websocket handshake is refused with a detail that shows the flawed value
// (the method's flaw under the same id), on the short way and the full way
// alike; and the key is judged as socket.io's ws server judges it.
func TestWebSocketHandshakeRefusalsSayWhatIsWrong(t *testing.T) {
	stripped := func(extra map[string]string) map[string]string {
		h := websocketHeaders(map[string]string{"Upgrade": "", "Connection": ""})
		for k, v := range extra {
			h[k] = v
		}
		return h
	}
	cases := []struct {
		name       string
		method     string
		headers    map[string]string
		wantError  string
		wantDetail string // a part of the detail; "" when repaired
	}{
		{"a POST (an upgrade of a session)", "POST", stripped(nil), "websocket-handshake-invalid", `method "POST" (a websocket handshake is a GET)`},
		{"version 8", "GET", stripped(map[string]string{"Sec-WebSocket-Version": "8"}), "websocket-handshake-invalid", `Sec-WebSocket-Version "8" (must be 13, once)`},
		{"version 13 and a no-break space", "GET", stripped(map[string]string{"Sec-WebSocket-Version": "13\u00a0"}), "websocket-handshake-invalid", `Sec-WebSocket-Version "13\u00a0"`},
		{"no key", "GET", stripped(map[string]string{"Sec-WebSocket-Key": ""}), "websocket-handshake-invalid", `Sec-WebSocket-Key "" (must be one line)`},
		{"a short key", "GET", stripped(map[string]string{"Sec-WebSocket-Key": "a2V5"}), "websocket-handshake-invalid", `Sec-WebSocket-Key "a2V5" (must be 16 bytes in base64)`},
		{"a key of 24 bytes outside base64", "GET", stripped(map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=!"}), "websocket-handshake-invalid", "must be 16 bytes in base64"},
		{"a key and a no-break space", "GET", stripped(map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==\u00a0"}), "websocket-handshake-invalid", "must be 16 bytes in base64"},
		{"a key of 200 bytes, shown cut", "GET", stripped(map[string]string{"Sec-WebSocket-Key": strings.Repeat("k", 200)}), "websocket-handshake-invalid", `"` + strings.Repeat("k", maxShownValue) + `…"`},
		{"a body", "GET", stripped(map[string]string{"Content-Length": "5"}), "websocket-handshake-invalid", `a request body (a websocket handshake has none)`},
		{"a chunked body", "GET", stripped(map[string]string{"Transfer-Encoding": "chunked"}), "websocket-handshake-invalid", `a request body (a websocket handshake has none)`},
		{"another protocol", "GET", websocketHeaders(map[string]string{"Upgrade": "h2c"}), "websocket-handshake-invalid", `Upgrade "h2c" (a websocket handshake asks for exactly websocket)`},
		{"a Connection list too long", "GET", websocketHeaders(map[string]string{"Connection": strings.Repeat("a,", 200) + "Upgrade"}), "header-too-large", "is longer than the guard reads (up to 4 lines and 256 bytes in all)"},
		{"a key whose last character has bits base64 would drop (ws takes it)", "GET", stripped(map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZR=="}), "", ""},
	}
	for _, c := range cases {
		for _, query := range []string{"EIO=4&transport=websocket", "EIO=4&transport=websocket;app=1"} { // the short way, the full way
			c := c
			if c.method == "POST" {
				query += "&sid=lv_VI97HAXpY6yYWAAAC" // without a sid, a POST is bad-handshake-method
			}
			t.Run(c.name+"/"+query, func(t *testing.T) {
				cfg := CreateConfig()
				frappeRecipe(cfg)
				guard := newTestGuard(t, cfg, http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) { rw.WriteHeader(http.StatusSwitchingProtocols) }), nil)
				req := httptest.NewRequest(c.method, "/socket.io/?"+query, nil)
				for k, v := range c.headers {
					if v != "" {
						req.Header.Set(k, v)
					}
				}
				if c.headers["Content-Length"] != "" {
					req.ContentLength = 5
				}
				rec := httptest.NewRecorder()
				guard.ServeHTTP(rec, req)
				if c.wantError == "" {
					if got := rec.Header().Get(headerRepaired); got != "upgrade,origin" && got != "upgrade" {
						t.Errorf("status %d, repaired %q, body %q: want the upgrade repaired", rec.Code, got, rec.Body.String())
					}
					return
				}
				checkGuardAnswer(t, rec, c.wantError)
				var answer guardAnswer
				_ = json.Unmarshal(rec.Body.Bytes(), &answer)
				if !strings.Contains(answer.Guard.Detail, c.wantDetail) {
					t.Errorf("detail = %q, want it to contain %q", answer.Guard.Detail, c.wantDetail)
				}
			})
		}
	}
}

// TestInspectionIsRateLimited: the inspection answers at most
// inspectionsPerSecond times a second per router (JSON and Prometheus
// alike); past that, 429 inspection-rate-limited with Retry-After, counted;
// the next second it answers again.
func TestInspectionIsRateLimited(t *testing.T) {
	cfg := CreateConfig()
	cfg.InspectPath = "/socket.io/.guard"
	guard := newTestGuard(t, cfg, http.NotFoundHandler(), nil)
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	guard.log.now = func() time.Time { return now }
	inspect := func(target string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, httptest.NewRequest("GET", target, nil))
		return rec
	}
	for i := 0; i < inspectionsPerSecond; i++ {
		target := "/socket.io/.guard"
		if i%2 == 1 {
			target += "?format=prometheus"
		}
		if rec := inspect(target); rec.Code != http.StatusOK {
			t.Fatalf("inspection %d: status %d, want 200", i+1, rec.Code)
		}
	}
	rec := inspect("/socket.io/.guard?format=prometheus")
	if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("inspection %d in one second: status %d, Retry-After %q; want 429 and 1", inspectionsPerSecond+1, rec.Code, rec.Header().Get("Retry-After"))
	}
	checkGuardAnswer(t, rec, "inspection-rate-limited")
	if !strings.Contains(rec.Body.String(), strconv.Itoa(inspectionsPerSecond)+" inspections in one second") ||
		!strings.Contains(problemInspectionRateLimited.hint, strconv.Itoa(inspectionsPerSecond)+" times a second") {
		t.Errorf("the answer does not say the limit (%d): %s", inspectionsPerSecond, rec.Body.String())
	}
	now = now.Add(time.Second)
	rec = inspect("/socket.io/.guard")
	if rec.Code != http.StatusOK {
		t.Fatalf("a second later: status %d, want 200", rec.Code)
	}
	var answer inspection
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatal(err)
	}
	if got := answer.Counters.Rejections["inspection-rate-limited"]; got != 1 {
		t.Errorf("counted %d inspection-rate-limited, want 1", got)
	}
}
