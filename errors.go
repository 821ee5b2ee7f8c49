package socketioguard

import (
	"encoding/json"
	"net/http"
	"strings"
)

// Engine.IO's own error codes and messages (engine.io server.ts), reused in
// the guard's answers so that Engine.IO clients still parse them.
const (
	codeTransportUnknown    = 0
	codeBadHandshakeMethod  = 2
	codeBadRequest          = 3
	codeUnsupportedProtocol = 5
)

var engineIOMessages = map[int]string{
	0: "Transport unknown",
	1: "Session ID unknown",
	2: "Bad handshake method",
	3: "Bad request",
	4: "Forbidden",
	5: "Unsupported protocol version",
}

// problem is one documented thing the guard can find. The id is public: it
// is the value of X-Socketio-Guard-Error / -Diagnosis, the log's event and
// the readme's error reference, and users write it in alerting rules.
type problem struct {
	id     string
	status int // the guard's answer; 0 for diagnoses, which keep the backend's
	code   int // Engine.IO error code of the guard's answer
	level  logLevel
	hint   string
}

// Rejections: the guard answers before the backend sees the request.
var (
	problemQueryAmbiguous = problem{
		id: "query-ambiguous", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "send each of EIO, transport, sid and j once: Socket.IO clients never repeat them, and servers disagree on which copy counts; if a proxy rule appends its own copy of one of them, remove that rule",
	}
	problemJSONPRefused = problem{
		id: "jsonp-refused", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "JSONP polling (the j parameter) answers with a script that any web page can include and read; Socket.IO clients since v3 never use it. Only Socket.IO v2 clients with forceJSONP need it: set allowJSONP: true for them (see the readme's Security section)",
	}
	problemQueryMissing = problem{
		id: "query-missing", status: http.StatusBadRequest, code: codeBadRequest, level: levelError,
		hint: "a hop between the client and Traefik dropped the query string (e.g. an nginx rewrite or proxy_pass without $is_args$args); forward the request URI unchanged",
	}
	problemEIOUnsupported = problem{
		id: "eio-unsupported", status: http.StatusBadRequest, code: codeUnsupportedProtocol, level: levelWarn,
		hint: "socketioguard refused this Engine.IO version at the edge (its eioVersions), before the server: EIO=4 is socket.io-client v3/v4, EIO=3 is v2. Use a client of the server's version; only if the Socket.IO server accepts EIO=3 (allowEIO3 — Frappe does not) add 3 to eioVersions",
	}
	problemTransportUnknown = problem{
		id: "transport-unknown", status: http.StatusBadRequest, code: codeTransportUnknown, level: levelWarn,
		hint: "transport must be one of the configured transports (polling, websocket); check the client's transports option",
	}
	problemBadHandshakeMethod = problem{
		id: "bad-handshake-method", status: http.StatusBadRequest, code: codeBadHandshakeMethod, level: levelWarn,
		hint: "a request without sid must be the GET handshake; if the client sent a sid, a hop dropped part of the query string",
	}
	problemUpgradeMissing = problem{
		id: "upgrade-missing", status: http.StatusBadRequest, code: codeBadRequest, level: levelError,
		hint: "transport=websocket arrived without Upgrade: websocket and Connection: upgrade; a proxy in front of Traefik strips hop-by-hop headers (nginx needs proxy_http_version 1.1 and proxy_set_header Upgrade/Connection)",
	}
	problemWebSocketHandshakeInvalid = problem{
		id: "websocket-handshake-invalid", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "the request asks for a websocket without Upgrade/Connection and is not shaped like a browser's websocket handshake (GET, Sec-WebSocket-Version 13, a 16-byte Sec-WebSocket-Key, no body), so the guard will not turn it into one; this is the client's doing, not a stripping proxy's",
	}
	problemUpgradeImpossible = problem{
		id: "upgrade-impossible", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "websockets need HTTP/1.1 and Traefik does not accept them over HTTP/2 or HTTP/3; let the client open its websocket over HTTP/1.1",
	}
	problemNoSocketIORoute = problem{
		id: "no-socketio-route", status: 0, code: codeBadRequest, level: levelError,
		hint: "", // built per request: it names the host
	}
	problemBackendNotSocketIO = problem{
		id: "backend-not-socketio", status: http.StatusBadGateway, code: codeBadRequest, level: levelError,
		hint: "the service behind this router is not the Socket.IO server (the web app answered; a 200 HTML page can also be an authentication layer's login page); point the router for PathPrefix(`/socket.io`) at the Socket.IO service and make sure no other router claims /socket.io for this host",
	}
)

// Diagnoses: the backend's answer is kept and marked.
var (
	problemSessionUnknown = problem{
		id: "session-unknown", level: levelWarn,
		hint: "the Socket.IO server does not know this sid. Either the session ended in that process — a restart, a ping timeout, a client gone mid-upgrade: the client opens a new one by itself — or the session's requests reach several replicas without sticky sessions (use loadBalancer.sticky.cookie, or one replica). To tell them apart: socketioguard doctor <url> --replicas-check 10 (sessions that break at once mean replicas without stickiness)",
	}
	problemUpgradeLostDownstream = problem{
		id: "upgrade-lost-downstream", level: levelError,
		hint: "Traefik forwarded a websocket handshake with Upgrade/Connection, but Engine.IO answered it as a plain request (400 code 3): a hop between Traefik and the Socket.IO server (e.g. an nginx sidecar) drops them; add proxy_http_version 1.1 and proxy_set_header Upgrade $http_upgrade / Connection \"upgrade\" there",
	}
	problemWebSocketRefused = problem{
		id: "websocket-refused", level: levelWarn,
		hint: "the websocket handshake left Traefik with its upgrade headers and was refused (the message field says why): usually by the Socket.IO server — ws's invalid Sec-WebSocket-Key, python-engineio's origin check, engine.io's transport or session checks, one client's doing — but a hop behind Traefik can answer 400 too (e.g. nginx's own 400 for headers too large): the message tells them apart",
	}
	problemBackendEIOMismatch = problem{
		id: "backend-eio-mismatch", level: levelWarn,
		hint: "the Socket.IO server refused the client's Engine.IO version (400 code 5), which the guard's eioVersions let through: e.g. EIO=3 (a Socket.IO v2 client) to a server without allowEIO3 (Frappe sets none); align eioVersions with the server (the guard then refuses at the edge with eio-unsupported), or enable allowEIO3 on the server",
	}
	problemBackendForbidden = problem{
		id: "backend-forbidden", level: levelWarn,
		hint: "the Socket.IO server's allowRequest refused the request (Engine.IO code 4 Forbidden): its own origin, CORS or authentication check; look at that check's configuration on the server, not at the proxies",
	}
	problemHijackFailedBefore = problem{
		id: "hijack-failed", level: levelError,
		hint: "Traefik could not hand the websocket connection over (a 500 instead of the 101): a middleware placed BEFORE socketioguard in this router's chain (entrypoint middlewares come first) wraps the response writer without http.Hijacker, so every websocket fails. Take that middleware off the Socket.IO router, or use a version that implements Hijack; Traefik logs \"can't switch protocols using non-Hijacker ResponseWriter\" at DEBUG",
	}
	problemHijackFailedAfter = problem{
		id: "hijack-failed", level: levelError,
		hint: "Traefik answered 500 to a websocket handshake the guard forwarded with its upgrade headers, and never asked the guard for the connection: most likely a middleware placed AFTER socketioguard in this router's chain wraps the response writer without http.Hijacker (Traefik logs \"can't switch protocols using non-Hijacker ResponseWriter\" at DEBUG); take it off the Socket.IO router. Less likely: a backend that switched to another protocol, or a panic in a middleware",
	}
)

// Repairs, named as in X-Socketio-Guard-Repaired.
const (
	repairUpgrade = "upgrade"
	repairPath    = "path"
	repairOrigin  = "origin"
)

var repairHints = map[string]string{
	repairUpgrade: "a hop in front of Traefik strips the hop-by-hop headers Upgrade/Connection; the guard restored them from Sec-WebSocket-Key/-Version, but fix that hop (nginx: proxy_http_version 1.1, proxy_set_header Upgrade $http_upgrade, proxy_set_header Connection \"upgrade\")",
	repairPath:    "the request came without the trailing slash Engine.IO servers require; the guard added it",
	repairOrigin:  "the request had no Origin; the guard set it to the request's own scheme and host",
}

const (
	headerError     = "X-Socketio-Guard-Error"
	headerDiagnosis = "X-Socketio-Guard-Diagnosis"
	headerRepaired  = "X-Socketio-Guard-Repaired"
)

// guardAnswer is the body of every answer the guard writes itself: Engine.IO's
// error shape, so clients still parse it, plus what a human needs to fix it.
type guardAnswer struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Guard   guardAnswerInfo `json:"guard"`
}

type guardAnswerInfo struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
	Hint   string `json:"hint"`
}

// ---- The guard's own answers ----
//
// Shared by every stage that refuses or replaces an answer.

func (g *Guard) reject(rw http.ResponseWriter, req *http.Request, p problem, status int, detail, hint string) {
	g.counters.countRejection(p.id)
	g.log.event(p.level, p.id, req, hint, "")
	writeGuardAnswer(rw, status, p, detail, hint)
}

func writeGuardAnswer(rw http.ResponseWriter, status int, p problem, detail, hint string) {
	body, err := json.Marshal(guardAnswer{
		Code:    p.code,
		Message: engineIOMessages[p.code],
		Guard:   guardAnswerInfo{Error: p.id, Detail: detail, Hint: hint},
	})
	if err != nil { // cannot happen with string fields; keep the answer valid anyway
		body = []byte(`{"code":3,"message":"Bad request"}`)
	}
	h := rw.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(headerError, p.id)
	rw.WriteHeader(status)
	_, _ = rw.Write(body)
}

// redactedQuery shortens a query for an error detail and hides every sid
// value, however the key is spelled ("%73id", "+sid", after ";"): any key
// that, decoded and trimmed, is sid. Only what is shown is read.
func redactedQuery(rawQuery string) string {
	const max = 200
	q, truncated := rawQuery, len(rawQuery) > 2*max
	if truncated {
		q = q[:2*max]
	}
	q = redactSID(q)
	if len(q) > max {
		q, truncated = q[:max], true
	}
	if truncated {
		q += "…"
	}
	return q
}

func redactSID(rawQuery string) string {
	var b strings.Builder
	rest := rawQuery
	for {
		end := strings.IndexAny(rest, "&;")
		pair := rest
		if end >= 0 {
			pair = rest[:end]
		}
		key, _, hasValue := strings.Cut(pair, "=")
		if hasValue && strings.TrimSpace(lenientUnescape(key)) == keySID {
			pair = key + "=REDACTED"
		}
		b.WriteString(pair)
		if end < 0 {
			return b.String()
		}
		b.WriteByte(rest[end])
		rest = rest[end+1:]
	}
}

// shortened cuts a value an attacker chose before it goes into an answer.
func shortened(s string) string { return shortenedTo(s, 64) }

// shortenedTo cuts s to max bytes, marking the cut.
func shortenedTo(s string, max int) string {
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}
