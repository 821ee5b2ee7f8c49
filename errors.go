package socketioguard

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
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

// The query keys Engine.IO servers read. A request that carries one of them
// twice is refused (query-ambiguous): engine.io (Node) takes the last value,
// python-engineio the first, so the guard could not know which one it checked.
const (
	keyEIO       = "EIO"
	keyTransport = "transport"
	keySID       = "sid"
	keyJSONP     = "j"
)

// problem is one documented thing the guard can find. The id is public: it
// is the value of X-Socketio-Guard-Error / -Diagnosis, the log's event and
// the readme's error reference, and users write it in alerting rules.
type problem struct {
	id        string
	diagnosis bool // a diagnosis of the backend's answer (kept and marked), not a rejection
	status    int  // the guard's answer; 0 for diagnoses, which keep the backend's
	code      int  // Engine.IO error code of the guard's answer
	level     logLevel
	hint      string
	index     int // its counter (counters.byProblem); set by init
	// answerPrefix and hintJSON: the guard's answer with this problem, in
	// JSON, up to the detail, and the hint; set by init (answerParts).
	answerPrefix, hintJSON string
	errorHeader            []string // X-Socketio-Guard-Error's value, shared (see jsonContentType)
}

// Levels: error is for what the evidence proves an operator must fix — the
// backend's (or Traefik's) own answer, which a client cannot make up. What a
// client can produce by itself (every rejection judges the client's own
// request; and the diagnoses marked so) is logged at warn, so that no client
// can put a false alarm into Traefik's log at its default level. The readme's
// Security section says, per id, which inputs could produce its evidence.

// Rejections: the guard answers before the backend sees the request.
var (
	problemQueryTooLong = problem{
		id: "query-too-long", status: http.StatusRequestURITooLong, code: codeBadRequest, level: levelWarn,
		hint: "socketioguard reads an Engine.IO request's whole query (to know every key the server will read) and refuses queries longer than 4096 bytes or with more than 32 pairs; Socket.IO clients send under 100 bytes: send large application data in the auth option (the CONNECT packet) rather than in the query",
	}
	problemQueryMalformed = problem{
		id: "query-malformed", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "the query has a percent sign that is not followed by two hexadecimal digits; servers read such a query differently (engine.io keeps the pair as written, Go servers drop it), so the guard cannot know what the server will check; encode the query (encodeURIComponent), as Socket.IO clients do",
	}
	problemQueryAmbiguous = problem{
		id: "query-ambiguous", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "send each of EIO, transport, sid and j once: Socket.IO clients never repeat them, and servers disagree on which copy counts; if a proxy rule appends its own copy of one of them, remove that rule",
	}
	problemJSONPRefused = problem{
		id: "jsonp-refused", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "JSONP polling (the j parameter) answers with a script that any web page can include and read; Socket.IO clients since v3 never use it. Only Socket.IO v2 clients with forceJSONP need it: set allowJSONP: true for them (see the readme's Security section)",
	}
	problemQueryMissing = problem{
		id: "query-missing", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "Socket.IO clients always send EIO and transport: a hop between the client and Traefik dropped the query string (e.g. an nginx rewrite or proxy_pass without $is_args$args; forward the request URI unchanged) — or the client is not a Socket.IO client (a scanner, a health check of /socket.io/)",
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
	problemHeaderTooLarge = problem{
		id: "header-too-large", status: http.StatusRequestHeaderFieldsTooLarge, code: codeBadRequest, level: levelWarn,
		hint: "socketioguard reads the Connection header of a websocket handshake up to 4 lines and 256 bytes (Traefik's entrypoint leaves it as \"Upgrade\"); a browser sends \"Upgrade\" or \"keep-alive, Upgrade\": look for the hop or client that fills it",
	}
	problemUpgradeMissing = problem{
		id: "upgrade-missing", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "transport=websocket arrived without Upgrade: websocket and Connection: upgrade; a proxy in front of Traefik strips hop-by-hop headers (nginx needs proxy_http_version 1.1 and proxy_set_header Upgrade/Connection) — or the client is no websocket client (a browser's handshake always carries Sec-WebSocket-Key, which proxies pass on)",
	}
	problemWebSocketHandshakeInvalid = problem{
		id: "websocket-handshake-invalid", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "the request asks for a websocket but is not shaped like a browser's websocket handshake (Upgrade exactly websocket, or stripped; GET, Sec-WebSocket-Version 13, a 16-byte Sec-WebSocket-Key, no body), so the guard will neither pass it as one nor turn it into one; this is the client's doing, not a stripping proxy's",
	}
	// problemWebSocketHandshakeRequest is websocket-handshake-invalid for a
	// method other than GET or a body: a problem value of its own only for
	// its detail (counted and shown under the same id).
	problemWebSocketHandshakeRequest = problem{
		id: problemWebSocketHandshakeInvalid.id, status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: problemWebSocketHandshakeInvalid.hint,
	}
	problemUpgradeImpossible = problem{
		id: "upgrade-impossible", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "websockets need HTTP/1.1 and Traefik does not accept them over HTTP/2 or HTTP/3; let the client open its websocket over HTTP/1.1",
	}
	problemPathEscaped = problem{
		id: "path-escaped", status: http.StatusBadRequest, code: codeBadRequest, level: levelWarn,
		hint: "the path reaches the Engine.IO path only once its percent-escapes are decoded (e.g. /socket.io%2F); Traefik forwards it escaped, which engine.io does not take as its path and a server that decodes paths does, so the guard cannot check it as either. Socket.IO clients never escape their path: look for the client or hop that does",
	}
	problemInspectionRateLimited = problem{
		id: "inspection-rate-limited", status: http.StatusTooManyRequests, code: codeBadRequest, level: levelWarn,
		hint: "the guard answers its inspection (inspectPath) at most 20 times a second per router: each answer costs it far more than any Engine.IO request (bench/report.md), and anyone who can reach the route may ask. Ask again after a second (Retry-After); a Prometheus scrape every few seconds is far below the limit",
	}
	problemNoSocketIORoute = problem{
		id: "no-socketio-route", status: 0, code: codeBadRequest, level: levelWarn,
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
		id: "session-unknown", diagnosis: true, level: levelWarn,
		hint: "the Socket.IO server does not know this sid. Either the session ended in that process — a restart, a ping timeout, a client gone mid-upgrade: the client opens a new one by itself —, or the session's requests reach several replicas without sticky sessions (use loadBalancer.sticky.cookie, or one replica), or the load balancer took the sticky cookie's replica out for a while and sent its sessions elsewhere (a failed health check: on a busy replica one answer slower than healthCheck.timeout is enough). To tell them apart: socketioguard doctor <url> --replicas-check 10 (sessions that break at once mean replicas without stickiness); with a sticky cookie of your own name, set the guard's stickyCookie to it and these are named by the cookie (session-unknown-no-sticky-cookie, session-unknown-sticky-cookie)",
	}
	problemSessionUnknownNoStickyCookie = problem{
		id: "session-unknown-no-sticky-cookie", diagnosis: true, level: levelWarn,
		hint: "the Socket.IO server does not know this sid, and the request carried no sticky cookie of the service (the message names it), so the load balancer chose a replica for it afresh: with more than one replica, such a client's sessions break. The client does not send the cookie: a non-browser client without a cookie jar (keep one), a page on another site (socket.io-client withCredentials: true, and the cookie sameSite: none with secure: true), or a cookie the browser refused (secure: true over http)",
	}
	problemSessionUnknownStickyCookie = problem{
		id: "session-unknown-sticky-cookie", diagnosis: true, level: levelWarn,
		hint: "the Socket.IO server does not know this sid although the request carried the service's sticky cookie (the message says whether the load balancer kept it): kept, the replica it names lost the session (a restart, a ping timeout: clients open a new one by themselves) or the cookie is another service's or edge's with other servers; replaced, the replica it named is gone or unhealthy (a failed health check — on a busy replica one answer slower than healthCheck.timeout is enough —, removed, restarted under another address)",
	}
	problemRedirected = problem{
		id: "redirected", diagnosis: true, level: levelWarn,
		hint: "Engine.IO never redirects: a middleware after the guard or a hop behind Traefik answered this Engine.IO request with a redirect (the message says where it points). Clients follow a redirected poll but never a redirected websocket handshake, so websockets fail. http to https: let that hop take X-Forwarded-Proto from Traefik, or redirect at Traefik's entrypoint and connect to https:// directly; a path: route /socket.io/ unchanged (no trailing-slash or prefix rewrite); another host: connect to the canonical host, or exempt /socket.io from the redirect",
	}
	problemAuthRequired = problem{
		id: "auth-required", diagnosis: true, level: levelWarn,
		hint: "an authentication layer answered in the Socket.IO server's place (a 401 with WWW-Authenticate, or a redirect to a login page with a return address): forward-auth, basicAuth, oauth2-proxy or the like guards /socket.io and this request did not carry its credentials. Browsers send no Authorization on a websocket and send the layer's cookie only where its domain, path and SameSite allow (a page on another site needs withCredentials); exempt /socket.io from the layer (Frappe's realtime server checks the session itself) or make its cookie reach /socket.io. Less likely: a 401 of the Socket.IO server's own HTTP stack (a custom handler)",
	}
	problemUpgradeLostDownstream = problem{
		id: "upgrade-lost-downstream", diagnosis: true, level: levelError,
		hint: "Traefik forwarded a websocket handshake with Upgrade/Connection, but Engine.IO answered it as a plain request (400 code 3): a hop between Traefik and the Socket.IO server (e.g. an nginx sidecar) drops them; add proxy_http_version 1.1 and proxy_set_header Upgrade $http_upgrade / Connection \"upgrade\" there",
	}
	problemWebSocketRefused = problem{
		id: "websocket-refused", diagnosis: true, level: levelWarn,
		hint: "the websocket handshake left Traefik with its upgrade headers and was refused (the message field says why): usually by the Socket.IO server — ws's invalid Sec-WebSocket-Key, python-engineio's origin check, engine.io's transport or session checks, one client's doing — but a hop behind Traefik can answer 400 too (e.g. nginx's own 400 for headers too large): the message tells them apart",
	}
	problemBackendEIOMismatch = problem{
		id: "backend-eio-mismatch", diagnosis: true, level: levelWarn,
		hint: "the Socket.IO server refused the client's Engine.IO version (400 code 5), which the guard's eioVersions let through: e.g. EIO=3 (a Socket.IO v2 client) to a server without allowEIO3 (Frappe sets none); align eioVersions with the server (the guard then refuses at the edge with eio-unsupported), or enable allowEIO3 on the server",
	}
	problemBackendForbidden = problem{
		id: "backend-forbidden", diagnosis: true, level: levelWarn,
		hint: "the Socket.IO server's allowRequest refused the request (Engine.IO code 4 Forbidden): its own origin, CORS or authentication check; look at that check's configuration on the server, not at the proxies",
	}
	problemHijackFailedBefore = problem{
		id: "hijack-failed", diagnosis: true, level: levelError,
		hint: "Traefik could not hand the websocket connection over (a 500 instead of the 101): a middleware placed BEFORE socketioguard in this router's chain (entrypoint middlewares come first) wraps the response writer without http.Hijacker, so every websocket fails. Take that middleware off the Socket.IO router, or use a version that implements Hijack; Traefik logs \"can't switch protocols using non-Hijacker ResponseWriter\" at DEBUG",
	}
	problemHijackFailedAfter = problem{
		id: "hijack-failed", diagnosis: true, level: levelError,
		hint: "Traefik answered 500 to a websocket handshake the guard forwarded with its upgrade headers, and never asked the guard for the connection: most likely a middleware placed AFTER socketioguard in this router's chain wraps the response writer without http.Hijacker (Traefik logs \"can't switch protocols using non-Hijacker ResponseWriter\" at DEBUG); take it off the Socket.IO router. Less likely: a backend that switched to another protocol, or a panic in a middleware",
	}
)

// allProblems are every problem the guard counts; init gives each its counter.
var allProblems = []*problem{
	&problemQueryTooLong, &problemQueryMalformed, &problemQueryAmbiguous, &problemJSONPRefused, &problemQueryMissing,
	&problemEIOUnsupported, &problemTransportUnknown, &problemBadHandshakeMethod, &problemHeaderTooLarge,
	&problemUpgradeMissing, &problemWebSocketHandshakeInvalid, &problemWebSocketHandshakeRequest, &problemUpgradeImpossible, &problemPathEscaped,
	&problemInspectionRateLimited,
	&problemNoSocketIORoute, &problemBackendNotSocketIO,
	&problemSessionUnknown, &problemSessionUnknownNoStickyCookie, &problemSessionUnknownStickyCookie,
	&problemRedirected, &problemAuthRequired, &problemUpgradeLostDownstream, &problemWebSocketRefused, &problemBackendEIOMismatch,
	&problemBackendForbidden, &problemHijackFailedBefore, &problemHijackFailedAfter,
}

func init() {
	for i, p := range allProblems {
		p.index = i
		answerParts(p)
	}
}

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

// answerParts builds a problem's answer up to its detail, and its hint, in
// JSON (the body is {"code":N,"message":"…","guard":{"error":"…","detail":"…","hint":"…"}}).
func answerParts(p *problem) {
	p.answerPrefix = `{"code":` + strconv.Itoa(p.code) + `,"message":` + jsonString(engineIOMessages[p.code]) +
		`,"guard":{"error":` + jsonString(p.id) + `,"detail":`
	p.hintJSON = jsonString(p.hint)
	p.errorHeader = []string{p.id}
}

// jsonString is s as a JSON string.
func jsonString(s string) string {
	quoted, _ := json.Marshal(s) // a string always encodes
	return string(quoted)
}

// maxShownQuery bounds the part of a query a detail shows.
const maxShownQuery = 200

// redactedQuery is a query as a detail shows it: its first 200 bytes, with
// the value of every key that spells sid (however escaped: "%73id", "+sid",
// after ";") hidden. Only what is shown is read, by one compiled call.
func redactedQuery(rawQuery string) string {
	return sidValue.ReplaceAllString(shortenedTo(rawQuery, maxShownQuery), "${1}REDACTED")
}

// sidValue matches the value of any key that contains s, i, d in a row,
// each written plainly or as its escape (hiding a few other values too is
// harmless; showing a session id is not).
var sidValue = regexp.MustCompile(`((?:s|%73)(?:i|%69)(?:d|%64)[^&;=]*=)[^&;]*`)

// The values of the headers every answer of the guard's carries, shared by
// all answers (a new slice each is an allocation each under Yaegi): nothing
// writes a header's value in place — net/http's and Traefik's middlewares
// set (a new slice) or add (a copy, as these are full) — so sharing them is
// safe. errorHeader is each problem's own.
var jsonContentType, noStore, noSniff = []string{"application/json"}, []string{"no-store"}, []string{"nosniff"}
