// Package socketioguard is a Traefik middleware plugin that keeps Socket.IO
// (Engine.IO) traffic intact on its way through proxies, repairs what a hop
// stripped when the request proves what it was, and answers with a clear,
// documented error when a request reached the wrong place.
//
// A request's path through the guard: classify → validate → repair →
// forward → diagnose the answer.
package socketioguard

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// New validates the configuration and builds the handler. Traefik calls it
// once per router and again on every configuration reload: it stays cheap
// and starts no goroutines.
func New(_ context.Context, next http.Handler, config *Config, name string) (http.Handler, error) {
	s, err := validate(config)
	if err != nil {
		return nil, fmt.Errorf("socketioguard %s: %w", name, err)
	}
	g := &Guard{
		next:     next,
		name:     name,
		settings: s,
		log: &logger{
			middleware: name,
			level:      s.logLevel,
			stdout:     printWriter{},
			stderr:     log.Writer(),
			now:        time.Now,
		},
		counters: newCounters(),
	}
	handler := g.handler() // a variable first: Yaegi cannot return a call's result as an interface
	return handler, nil
}

// handler is what New hands to Traefik: the guard, or in fallback mode the
// lighter handler of fallback.go.
func (g *Guard) handler() http.Handler {
	if g.settings.fallback {
		return &fallbackGuard{next: g.next, commonPrefix: g.settings.commonPrefix, guard: g}
	}
	return g
}

// ---- The route ----
//
// Every request enters at ServeHTTP. The common polling requests and websocket
// handshakes take the short way (serveShortWay: few interpreted calls);
// everything else the full way (serveFullWay), whose stages follow in this
// file in the order a request meets them (classify, validate, repair), then
// diagnose.go (forward and diagnose) and errors.go (the guard's own answers).
// Fallback mode and the inspection are apart (fallback.go, inspect.go).

// ServeHTTP: classify → validate → repair → forward → diagnose.
//
// Under Traefik this code is interpreted by Yaegi, where a call costs in
// proportion to everything the called function contains, executed or not,
// and the frames of the functions on the stack stay allocated while a
// websocket lives (the proxy tunnels inside next.ServeHTTP). Hence: few
// calls on the common requests' way, the rare work in functions of its own,
// error texts built only when rejecting. And since any client can send up to
// the 1 MiB of request line and headers Traefik accepts, no input is read in
// proportion to its length: each has a limit checked before it is read, and
// what is read is read by one compiled call (see the readme's "What a request
// can cost").
func (g *Guard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if !g.settings.shortWayPaths[req.URL.Path] || !serveShortWay(g, rw, req) {
		serveOther(g, rw, req)
	}
}

// serveOther: a request the short way does not serve, on the full way if
// its path may be an Engine.IO path.
func serveOther(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if !strings.HasPrefix(req.URL.Path, g.settings.commonPrefix) {
		g.next.ServeHTTP(rw, req)
		return
	}
	serveFullWay(g, rw, req)
}

// serveShortWay serves the common Engine.IO requests in few interpreted
// calls: a poll of an open session (GET or POST with a sid), a polling
// handshake (GET, no sid) and a websocket handshake that arrived with its
// upgrade headers as Traefik forwards them — when their query is one the
// short way recognises whole (see shortWayQuery: Engine.IO's keys once
// each, EIO accepted, EIO before transport as socket.io-client sends them,
// any application parameters around them, no JSONP) and their path is
// forwarded as it reads (no RawPath: nothing in it escaped). A handshake's
// query it recognises is not read again: the short way also refuses a
// polling handshake's with another method than GET, and judges (refuses,
// or repairs and forwards) a websocket handshake whose upgrade headers are
// not as Traefik forwards them. It reports false for anything else, which
// serveFullWay reads, refuses or repairs in full.
//
// Under Yaegi every expression costs a frame slot on every call, executed or
// not, and every call into the standard library goes through reflect (see
// bench/report.md): a poll is recognised by one compiled regular expression
// instead of reading its query, and what is rarer lives in the functions it
// calls. The expression's work grows with the query: maxShortWayQuery
// bounds it.
func serveShortWay(g *Guard, rw http.ResponseWriter, req *http.Request) bool {
	query := req.URL.RawQuery
	if len(query) > maxShortWayQuery || req.URL.RawPath != "" {
		return false // the full way reads (or refuses) it
	}
	if !g.settings.pollQuery.MatchString(query) {
		return serveShortHandshake(g, rw, req, query)
	}
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		return false
	}
	atomic.AddInt64(&g.counters.requests, 1)
	forwardCaptured(g, rw, req)
	return true
}

// serveShortHandshake: the short way of a polling handshake (a GET, with
// the Origin repair) and of a websocket handshake (a GET) whose query the
// expression proves whole. A query the expression proves needs no second
// reading on the full way: a polling handshake's with another method than
// GET is refused at once (an OPTIONS preflight excepted), and a websocket
// handshake whose upgrade headers are not as Traefik forwards them goes
// straight to their judgement (judgeShortWebsocket). (The frames of the
// functions on a websocket's way to next.ServeHTTP stay allocated while it
// lives: what returns before forwarding is in functions of its own.)
func serveShortHandshake(g *Guard, rw http.ResponseWriter, req *http.Request, query string) bool {
	if g.settings.handshakeQuery.MatchString(query) {
		if req.Method != http.MethodGet {
			return refuseHandshakeMethod(g, rw, req)
		}
		atomic.AddInt64(&g.counters.requests, 1)
		repairMissingOrigin(g, rw, req)
		atomic.AddInt64(&g.counters.pollingHandshakes, 1)
		forwardCaptured(g, rw, req)
		return true
	}
	if req.Method != http.MethodGet || !g.settings.websocketQuery.MatchString(query) {
		return false
	}
	if !upgradeAsTraefikForwards(req) {
		judgeShortWebsocket(g, rw, req, query)
		return true
	}
	serveShortWebsocket(g, rw, req, query)
	return true
}

// refuseHandshakeMethod: a polling handshake's query (the short way's
// expression proved it whole) with another method than GET, which is
// bad-handshake-method whatever else the request carries — but for a CORS
// preflight, which goes on to the server's CORS layer as on the full way.
func refuseHandshakeMethod(g *Guard, rw http.ResponseWriter, req *http.Request) bool {
	if req.Method == http.MethodOptions {
		return false
	}
	atomic.AddInt64(&g.counters.requests, 1)
	reject(g, rw, req, &problemBadHandshakeMethod, problemBadHandshakeMethod.status, describeBadHandshakeMethod(g, req, nil), "")
	return true
}

// upgradeAsTraefikForwards is the short way's test of a websocket handshake
// that arrived whole: Upgrade exactly "websocket" (what Traefik's proxy takes
// as a websocket upgrade and every websocket server accepts), Connection
// exactly "Upgrade" (what Traefik's entrypoint leaves of a Connection that
// asked for the upgrade), and no body. Anything else is judged in full
// (judgeShortWebsocket).
func upgradeAsTraefikForwards(req *http.Request) bool {
	upgrade, connection := req.Header["Upgrade"], req.Header["Connection"]
	return req.ContentLength == 0 && len(upgrade) == 1 && len(connection) == 1 &&
		strings.EqualFold(upgrade[0], "websocket") && strings.EqualFold(connection[0], "upgrade")
}

// serveShortWebsocket: a websocket handshake that arrived whole (the Origin
// repair for a direct websocket, which opens a session).
func serveShortWebsocket(g *Guard, rw http.ResponseWriter, req *http.Request, query string) {
	atomic.AddInt64(&g.counters.requests, 1)
	if !strings.Contains(query, "&"+keySID+"=") { // exact: the expression puts sid after EIO and transport, never empty
		repairMissingOrigin(g, rw, req)
	}
	atomic.AddInt64(&g.counters.websocketHandshakes, 1)
	forwardWebsocket(g, rw, req, true)
}

// judgeShortWebsocket: the full way's judgement of a websocket handshake's
// upgrade headers (judgeUpgrade), refused or repaired and forwarded, for a
// handshake whose query the short way has read: Engine.IO's keys once each,
// an accepted EIO, no JSONP, the path as configured. Only the upgrade is
// left to judge, so the query is not read again (a request an attacker
// fills with upgrade headers costs the guard the judgement alone).
func judgeShortWebsocket(g *Guard, rw http.ResponseWriter, req *http.Request, query string) {
	atomic.AddInt64(&g.counters.requests, 1)
	hasSID := strings.Contains(query, "&"+keySID+"=")
	eio := &engineIORequest{transport: transportWebsocket, hasSID: hasSID} // what the judgement and the repair read
	if p := judgeUpgrade(g, req, eio); p != nil {
		reject(g, rw, req, p, p.status, describeRejection[p](g, req, eio), "")
		return
	}
	repairAndForward(g, rw, req, eio)
}

// serveFullWay reads, validates and repairs an Engine.IO request in full,
// and passes everything else under the common prefix untouched; it answers
// the request itself when it must be refused. Each stage is a function of
// its own, so that a request pays (under Yaegi) only for the stages it goes
// through: a refused request never builds the forwarding's frame, and the
// other way round.
func serveFullWay(g *Guard, rw http.ResponseWriter, req *http.Request) {
	eio := classify(g, rw, req)
	if eio == nil {
		return // answered or passed on by classify
	}
	if p := findProblem(g, req, eio); p != nil {
		reject(g, rw, req, p, p.status, describeRejection[p](g, req, eio), "")
		return
	}
	repairAndForward(g, rw, req, eio)
}

// classify reads what an Engine.IO request carries: the path as Traefik
// forwards it (escaped) and the query (a websocket handshake's upgrade
// headers are read where they are judged, judgeUpgrade). A request that is
// no Engine.IO request, or one classify answers itself (the inspection,
// fallback mode, an escaped path), gets nil.
func classify(g *Guard, rw http.ResponseWriter, req *http.Request) *engineIORequest {
	path := req.URL.Path
	if req.URL.RawPath != "" {
		path = req.URL.RawPath // Traefik forwards the path as it came, escapes and all
	}
	prefix, missingSlash, isEngineIO := matchEngineIOPath(g.settings.paths, path)
	// The client bundle the Socket.IO server serves is a plain download,
	// unless its query carries Engine.IO's keys (a server with serveClient
	// off hands it to Engine.IO).
	plainBundle := len(path) > len(prefix) && g.settings.clientBundles[path[len(prefix):]] && !carriesEngineIOKeys(req)
	if !isEngineIO || plainBundle || path == g.settings.inspectPath && req.Method == http.MethodGet ||
		g.settings.fallback || req.Method == http.MethodOptions {
		classifyOther(g, rw, req, path, isEngineIO, plainBundle)
		return nil
	}
	atomic.AddInt64(&g.counters.requests, 1)
	eio := &engineIORequest{missingSlash: missingSlash}
	eio.queryProblem = readEngineIOQuery(req.URL.RawQuery, eio)
	return eio
}

// classifyOther serves what classify does not read in full: what is no
// Engine.IO request (passed on untouched; an escaped Engine.IO path
// refused), the client bundle (passed on), the inspection, fallback mode's
// answer, and a CORS preflight (the server's CORS layer's business).
func classifyOther(g *Guard, rw http.ResponseWriter, req *http.Request, path string, isEngineIO, plainBundle bool) {
	switch {
	case !isEngineIO:
		if _, _, decodedIsEngineIO := matchEngineIOPath(g.settings.paths, req.URL.Path); decodedIsEngineIO {
			refuseEscapedPath(g, rw, req) // the server may read it as its path, or not: the guard cannot check it as either
			return
		}
		g.next.ServeHTTP(rw, req)
	case plainBundle:
		g.next.ServeHTTP(rw, req)
	case path == g.settings.inspectPath && req.Method == http.MethodGet:
		serveInspect(g, rw, req)
	case g.settings.fallback:
		atomic.AddInt64(&g.counters.requests, 1)
		rejectMisrouted(g, rw, req)
	default: // OPTIONS
		atomic.AddInt64(&g.counters.requests, 1)
		g.next.ServeHTTP(rw, req)
	}
}

// repairAndForward repairs what a hop stripped, where the request proves
// what it was, counts the handshakes and forwards the request. (Only these
// can need a repair: a poll of an open session, the most common request
// here, skips the call; the Origin is a handshake's.)
func repairAndForward(g *Guard, rw http.ResponseWriter, req *http.Request, eio *engineIORequest) {
	if eio.missingSlash || eio.transport == transportWebsocket || g.settings.setMissingOrigin && !eio.hasSID {
		repairs, originWithheld := plannedRepairs(g, req, eio)
		if originWithheld != "" {
			withholdOrigin(g, req, originWithheld)
		}
		applyRepairs(g, rw, req, repairs)
	}
	if eio.transport == transportWebsocket {
		atomic.AddInt64(&g.counters.websocketHandshakes, 1)
		// It leaves with its upgrade headers (usable, or restored by the
		// repair); its answer is evidence about the hops behind Traefik
		// only when it is a handshake every server takes as one.
		// (A GET without a body over HTTP/1.x, as every websocket handshake
		// is: Node's HTTP parser takes an upgrade with a body for a plain
		// request.)
		forwardWebsocket(g, rw, req, req.Method == http.MethodGet && req.ContentLength == 0 && req.ProtoMajor < 2)
		return
	}
	if !eio.hasSID {
		atomic.AddInt64(&g.counters.pollingHandshakes, 1)
	}
	forwardCaptured(g, rw, req)
}

// ---- Classify: what the request is ----
//
// The Engine.IO path, the query keys Engine.IO servers read, and the upgrade
// evidence.

// engineIORequest is what the guard reads from a request on an Engine.IO path:
// the query parameters Engine.IO servers check, and (judgeUpgrade) the
// upgrade evidence.
type engineIORequest struct {
	// missingSlash is true for "/socket.io" when the configured prefix is
	// "/socket.io/" (Engine.IO servers only answer the form with the slash).
	missingSlash bool

	// queryProblem: the query could not be read as the server will read it
	// (too long, too many parameters, a malformed escape); nil when read.
	queryProblem         *problem
	hasEIO, hasTransport bool
	eio, transport       string
	hasSIDKey            bool   // sid is in the query, perhaps empty
	hasSID               bool   // sid is in the query and not empty
	hasJSONP             bool   // j is in the query: JSONP polling
	ambiguousKey         string // an Engine.IO key the query carries twice

	// Upgrade evidence, as judgeUpgrade read it. Traefik's entrypoint has
	// already removed the headers named in Connection, and left Connection
	// (as "Upgrade") only when it asked for the upgrade and Upgrade is set.
	// usableUpgrade: Traefik's proxy will forward the request as a websocket
	// handshake (it needs both Upgrade and the Connection token).
	usableUpgrade     bool
	hasWebSocketProof bool // Sec-WebSocket-Key or -Version: end-to-end, survives proxies
	// handshakeFlaw says which part of an RFC 6455 handshake a request with
	// stripped upgrade headers lacks (noFlaw: it may be repaired), or that
	// Upgrade names another protocol; describeWebSocketHandshakeInvalid
	// words it (describeWebSocketHandshakeRequest the method and the body).
	handshakeFlaw int
}

// matchEngineIOPath reports which configured prefix a path belongs to: it
// starts with the prefix, or equals the prefix without its trailing slash.
// It reads no more of the path than the prefixes' length.
func matchEngineIOPath(prefixes []string, path string) (prefix string, missingSlash, ok bool) {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return p, false, true
		}
		if len(path) == len(p)-1 && strings.HasPrefix(p, path) {
			return p, true, true
		}
	}
	return "", false, false
}

// carriesEngineIOKeys: a client bundle's name with EIO, transport, sid or j
// in its query (however spelled) is an Engine.IO request all the same: a
// server with serveClient off hands it to Engine.IO. A query the guard
// cannot read counts as carrying them (it is then refused as unreadable).
func carriesEngineIOKeys(req *http.Request) bool {
	if req.URL.RawQuery == "" {
		return false
	}
	var r engineIORequest
	return readEngineIOQuery(req.URL.RawQuery, &r) != nil || r.hasEIO || r.hasTransport || r.hasSIDKey || r.hasJSONP
}

// readEngineIOQuery reads EIO, transport, sid and j the way the backend will
// see them: keys and values percent-decoded, "+" as space, "&" and ";" both
// separating pairs (Traefik forwards ";" as "&"), unknown parameters (the
// application's own) ignored. It returns the problem that keeps it from
// reading the query that way, or nil.
//
// A malformed escape ("%zz", a lone "%") is refused rather than read: servers
// read it differently (engine.io's URLSearchParams keeps the pair as
// written, Go's url.ParseQuery drops it), so the guard could check one pair
// and the server serve another; and reading it as engine.io does would take
// a loop over the query's bytes.
func readEngineIOQuery(rawQuery string, r *engineIORequest) *problem {
	if len(rawQuery) > maxQueryLength {
		return &problemQueryTooLong
	}
	query := rawQuery
	if strings.IndexByte(query, ';') >= 0 {
		query = strings.ReplaceAll(query, ";", "&")
	}
	if strings.Count(query, "&") >= maxQueryPairs {
		return &problemQueryTooLong
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return &problemQueryMalformed
	}
	setEngineIOKeys(r, values[keyEIO], values[keyTransport], values[keySID], values[keyJSONP])
	return nil
}

// setEngineIOKeys records the values found for each key.
func setEngineIOKeys(r *engineIORequest, eio, transport, sid, jsonp []string) {
	r.hasEIO = len(eio) > 0
	if r.hasEIO {
		r.eio = eio[0]
	}
	r.hasTransport = len(transport) > 0
	if r.hasTransport {
		r.transport = transport[0]
	}
	r.hasSIDKey = len(sid) > 0
	r.hasSID = r.hasSIDKey && sid[0] != "" // an empty sid is a handshake, as for Engine.IO
	r.hasJSONP = len(jsonp) > 0            // even empty: engine.io answers JSONP to "j="
	switch {
	case len(eio) > 1:
		r.ambiguousKey = keyEIO
	case len(transport) > 1:
		r.ambiguousKey = keyTransport
	case len(sid) > 1:
		r.ambiguousKey = keySID
	case len(jsonp) > 1:
		r.ambiguousKey = keyJSONP
	}
}

// ---- Validate: refuse what cannot work ----
//
// A refusal is answered by the guard (errors.go) and never forwarded.

// findProblem returns the first problem that makes the request unusable for
// the Socket.IO server (or unsafe to pass on), or nil.
func findProblem(g *Guard, req *http.Request, eio *engineIORequest) *problem {
	switch {
	case eio.queryProblem != nil:
		return eio.queryProblem
	case eio.ambiguousKey != "":
		return &problemQueryAmbiguous
	case !eio.hasEIO && !eio.hasTransport:
		return &problemQueryMissing
	case eio.hasJSONP && !g.settings.allowJSONP:
		return &problemJSONPRefused
	case !g.settings.eioAccepted[eio.eio]: // missing, or not accepted
		return &problemEIOUnsupported
	case !g.settings.transportAccepted[eio.transport]:
		return &problemTransportUnknown
	case !eio.hasSID && req.Method != http.MethodGet:
		return &problemBadHandshakeMethod
	case eio.transport == transportWebsocket:
		return judgeUpgrade(g, req, eio)
	}
	return nil
}

// judgeUpgrade reads a websocket handshake's upgrade headers as Traefik's
// proxy reads them (net/http/httputil's upgradeType) and returns the
// problem that keeps it from being forwarded as it is or repaired, or nil;
// what it read stays in r for the repair and the forwarding. A handshake
// with neither Upgrade nor Connection — stripped by a hop, the report's
// case — is judged by judgeStrippedUpgrade alone (one function each, so
// that each pays under Yaegi only for what it reads).
func judgeUpgrade(g *Guard, req *http.Request, r *engineIORequest) *problem {
	if h := req.Header; len(h["Connection"]) > 0 || len(h["Upgrade"]) > 0 {
		return judgeUpgradeHeaders(g, req, r)
	}
	return judgeStrippedUpgrade(g, req, r)
}

// judgeUpgradeHeaders: Connection must carry the upgrade token, and
// Upgrade's first line is the protocol asked for — forwarded as that one
// line, and answered 500 by the proxy when it is not printable ASCII. Only
// "websocket" itself counts as a websocket upgrade: what Traefik's proxy
// treats as one (its isWebSocketUpgrade) and what every websocket server
// accepts. Each read is bounded whatever the header's length.
func judgeUpgradeHeaders(g *Guard, req *http.Request, r *engineIORequest) *problem {
	asksUpgrade := false
	if connection := req.Header["Connection"]; len(connection) > 0 { // absent: no token, nothing too large
		token, tooLarge := connectionAsksUpgrade(connection) // two statements: Yaegi loses a tuple's second field
		if tooLarge {
			return &problemHeaderTooLarge // the rest unread
		}
		asksUpgrade = token
	}
	upgrade := req.Header.Get("Upgrade")
	isWebsocket := strings.EqualFold(upgrade, "websocket")
	r.usableUpgrade = asksUpgrade && isWebsocket
	switch {
	case r.usableUpgrade:
		return nil // nothing to repair: the server judges the handshake itself
	case upgrade != "" && !isWebsocket && req.ProtoMajor < 2: // another protocol (h2c, a list, a bad byte): never rewritten
		r.handshakeFlaw = flawUpgradeOther
		return &problemWebSocketHandshakeInvalid
	}
	return judgeStrippedUpgrade(g, req, r)
}

// judgeStrippedUpgrade: a websocket handshake without usable upgrade
// headers is repaired (nil) only where it proves what it was.
func judgeStrippedUpgrade(g *Guard, req *http.Request, r *engineIORequest) *problem {
	if req.ProtoMajor >= 2 { // websockets need HTTP/1.1 in Traefik (no RFC 8441)
		return &problemUpgradeImpossible
	}
	h := req.Header
	r.hasWebSocketProof = len(h["Sec-Websocket-Key"]) > 0 || len(h["Sec-Websocket-Version"]) > 0
	if !g.settings.repairUpgrade || !r.hasWebSocketProof {
		return &problemUpgradeMissing
	}
	if r.handshakeFlaw = websocketHandshakeFlaw(req); r.handshakeFlaw != noFlaw {
		return flawProblems[r.handshakeFlaw]
	}
	return nil // repaired
}

// maxConnectionHeader bounds the Connection header the guard reads, in all
// its lines: Traefik's entrypoint leaves it as "Upgrade" (or a short list of
// the headers entryPoints.<name>.forwardedHeaders.connection keeps).
const maxConnectionHeader = 256

// connectionAsksUpgrade reports whether Connection carries the upgrade
// token as Traefik's proxy looks for it (httpguts.HeaderValuesContainsToken:
// in any line, comma-separated, spaces and tabs around, any case), or that it
// is longer than the guard reads (tooLarge).
func connectionAsksUpgrade(lines []string) (upgrade, tooLarge bool) {
	if len(lines) == 1 && strings.EqualFold(lines[0], "upgrade") {
		return true, false // what Traefik's entrypoint leaves
	}
	if len(lines) == 0 {
		return false, false
	}
	if len(lines) > 4 {
		return false, true
	}
	size := 0
	for _, line := range lines {
		size += len(line) + 1
	}
	if size > maxConnectionHeader {
		return false, true
	}
	return upgradeToken.MatchString(strings.Join(lines, ",")), false
}

var upgradeToken = regexp.MustCompile(`(?i)(?:^|,)[ \t]*upgrade[ \t]*(?:,|$)`)

// The parts of a websocket handshake a request can lack (handshakeFlaw).
const (
	noFlaw = iota
	flawUpgradeOther
	flawMethod
	flawVersion
	flawKeyCount
	flawKey
	flawBody
)

// websocketHandshakeFlaw checks that a request is shaped like the opening
// handshake of RFC 6455 (section 4.1), which every browser sends: GET,
// Sec-WebSocket-Version 13, a Sec-WebSocket-Key of 16 base64 bytes, no body.
// Only such a request may be turned back into an upgrade: anything else
// (a request with a body, say) would travel into the backend's websocket
// after the 101. It returns which part did not fit, or noFlaw.
func websocketHandshakeFlaw(req *http.Request) int {
	versions, keys := req.Header["Sec-Websocket-Version"], req.Header["Sec-Websocket-Key"]
	switch {
	case req.Method != http.MethodGet:
		return flawMethod
	case len(versions) != 1 || versions[0] != "13": // as browsers send it (the server has trimmed spaces and tabs)
		return flawVersion
	case len(keys) != 1:
		return flawKeyCount
	case len(keys[0]) != 24 || !webSocketKey.MatchString(keys[0]):
		return flawKey
	case !hasNoBody(req):
		return flawBody
	}
	return noFlaw
}

// flawBefore and flawAfter word each handshakeFlaw for the refusal's
// detail, around the lines of the header flawHeaders names as shownLines
// shows them. (Put together by concatenation, with no branch: fmt costs a
// refusal some twenty allocations under Yaegi, a branch some ten; the
// method's and the body's flaws, which no one header shows, are a problem
// of their own, whose words are describeWebSocketHandshakeRequest's.)
var (
	flawBefore = []string{
		flawUpgradeOther: "transport=websocket with another upgrade than websocket, which the guard does not rewrite: Upgrade ",
		flawVersion:      flawNotRestorable + "Sec-WebSocket-Version ",
		flawKeyCount:     flawNotRestorable + "Sec-WebSocket-Key ",
		flawKey:          flawNotRestorable + "Sec-WebSocket-Key ",
	}
	flawAfter = []string{
		flawUpgradeOther: " (a websocket handshake asks for exactly websocket)",
		flawVersion:      " (must be 13, once)",
		flawKeyCount:     " (must be one line)",
		flawKey:          " (must be 16 bytes in base64)",
	}
	flawHeaders = []string{flawUpgradeOther: "Upgrade", flawVersion: "Sec-Websocket-Version", flawKeyCount: "Sec-Websocket-Key", flawKey: "Sec-Websocket-Key"}
	// flawProblems: the problem of each flaw.
	flawProblems = []*problem{
		flawUpgradeOther: &problemWebSocketHandshakeInvalid, flawMethod: &problemWebSocketHandshakeRequest, flawVersion: &problemWebSocketHandshakeInvalid,
		flawKeyCount: &problemWebSocketHandshakeInvalid, flawKey: &problemWebSocketHandshakeInvalid, flawBody: &problemWebSocketHandshakeRequest,
	}
)

const flawNotRestorable = "transport=websocket without Upgrade/Connection, and not a websocket handshake the guard may restore: "

// webSocketKey is a Sec-WebSocket-Key of 16 bytes in base64, as the ws
// library (socket.io's websocket server) accepts it: 22 characters of the
// base64 alphabet and "==" (read only when it is 24 bytes long).
var webSocketKey = regexp.MustCompile(`^[+/0-9A-Za-z]{22}==$`)

// hasNoBody: no body, as the server read the request nor as its headers announce one.
func hasNoBody(req *http.Request) bool {
	contentLength := req.Header["Content-Length"]
	return req.ContentLength == 0 && len(req.TransferEncoding) == 0 && len(req.Header["Transfer-Encoding"]) == 0 &&
		(len(contentLength) == 0 || len(contentLength) == 1 && contentLength[0] == "0")
}

// describeRejection words each rejection's detail: the offending value and
// what is accepted (one function each: only the one that applies is built).
var describeRejection = map[*problem]func(*Guard, *http.Request, *engineIORequest) string{
	&problemQueryTooLong:              describeQueryTooLong,
	&problemQueryMalformed:            describeQueryMalformed,
	&problemQueryAmbiguous:            describeQueryAmbiguous,
	&problemJSONPRefused:              describeJSONPRefused,
	&problemQueryMissing:              describeQueryMissing,
	&problemEIOUnsupported:            describeEIOUnsupported,
	&problemTransportUnknown:          describeTransportUnknown,
	&problemBadHandshakeMethod:        describeBadHandshakeMethod,
	&problemHeaderTooLarge:            describeHeaderTooLarge,
	&problemUpgradeMissing:            describeUpgradeMissing,
	&problemWebSocketHandshakeInvalid: describeWebSocketHandshakeInvalid,
	&problemWebSocketHandshakeRequest: describeWebSocketHandshakeRequest,
	&problemUpgradeImpossible:         describeUpgradeImpossible,
}

func describeQueryTooLong(_ *Guard, req *http.Request, _ *engineIORequest) string {
	if len(req.URL.RawQuery) > maxQueryLength {
		return fmt.Sprintf("the query is %d bytes; the guard reads queries of up to %d bytes", len(req.URL.RawQuery), maxQueryLength)
	}
	return fmt.Sprintf("the query has more than %d pairs; the guard reads queries of up to %d pairs", maxQueryPairs, maxQueryPairs)
}

func describeQueryMalformed(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return fmt.Sprintf("the query has a %% not followed by two hexadecimal digits (query: %q)", redactedQuery(req.URL.RawQuery))
}

func describeQueryAmbiguous(_ *Guard, req *http.Request, eio *engineIORequest) string {
	return fmt.Sprintf("the query carries %s more than once (query: %q); engine.io reads the last value, python-engineio the first, and no Socket.IO client repeats it",
		eio.ambiguousKey, redactedQuery(req.URL.RawQuery))
}

func describeQueryMissing(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return fmt.Sprintf("%s %s arrived without EIO and transport in the query (query: %q)", shortened(req.Method), shortened(req.URL.Path), redactedQuery(req.URL.RawQuery))
}

func describeJSONPRefused(*Guard, *http.Request, *engineIORequest) string {
	return "the query has a j parameter (JSONP polling), which allowJSONP does not allow"
}

func describeEIOUnsupported(g *Guard, _ *http.Request, eio *engineIORequest) string {
	if !eio.hasEIO {
		return "EIO is missing; accepted: " + strings.Join(g.settings.eioVersions, ", ")
	}
	return fmt.Sprintf("EIO %q is not one of %s", shortened(eio.eio), strings.Join(g.settings.eioVersions, ", "))
}

func describeTransportUnknown(g *Guard, _ *http.Request, eio *engineIORequest) string {
	if !eio.hasTransport {
		return "transport is missing; accepted: " + strings.Join(g.settings.transports, ", ")
	}
	return fmt.Sprintf("transport %q is not one of %s", shortened(eio.transport), strings.Join(g.settings.transports, ", "))
}

func describeBadHandshakeMethod(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return shortened(req.Method) + " without sid; only GET may open a session"
}

func describeUpgradeImpossible(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return "transport=websocket over " + shortened(req.Proto)
}

func describeWebSocketHandshakeInvalid(_ *Guard, req *http.Request, eio *engineIORequest) string {
	return flawBefore[eio.handshakeFlaw] + shownLines(req.Header[flawHeaders[eio.handshakeFlaw]]) + flawAfter[eio.handshakeFlaw]
}

func describeWebSocketHandshakeRequest(_ *Guard, req *http.Request, eio *engineIORequest) string {
	if eio.handshakeFlaw == flawMethod {
		return flawNotRestorable + "method " + strconv.Quote(shortened(req.Method)) + " (a websocket handshake is a GET)"
	}
	return flawNotRestorable + "a request body (a websocket handshake has none)"
}
func describeHeaderTooLarge(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return "Connection " + shownLines(req.Header["Connection"]) + " is longer than the guard reads (up to 4 lines and 256 bytes in all)"
}

func describeUpgradeMissing(_ *Guard, req *http.Request, eio *engineIORequest) string {
	detail := "transport=websocket with Upgrade " + shownLines(req.Header["Upgrade"]) + " and Connection " + shownLines(req.Header["Connection"])
	if !eio.hasWebSocketProof {
		return detail + ", and no Sec-WebSocket-Key/-Version that would prove a websocket handshake"
	}
	return detail + "; repairUpgrade is off, so the guard did not restore them"
}

// refuseEscapedPath answers a request whose path is an Engine.IO path only
// once decoded (/socket.io%2F…): Traefik forwards the path as it came, so
// engine.io would not take it as its own while a server that decodes the
// path (an ASGI python-engineio) would — the guard cannot check it as
// either, and no Socket.IO client escapes its path.
func refuseEscapedPath(g *Guard, rw http.ResponseWriter, req *http.Request) {
	atomic.AddInt64(&g.counters.requests, 1)
	detail := fmt.Sprintf("the path %q reads %q once decoded, but Traefik forwards it escaped", shortened(req.URL.RawPath), shortened(req.URL.Path))
	reject(g, rw, req, &problemPathEscaped, problemPathEscaped.status, detail, "")
}

// shownLines is how a header's lines are shown in a detail or a reason: the
// first, quoted and shortened, and how many more there are.
func shownLines(lines []string) string {
	if len(lines) == 0 {
		return `""`
	}
	first := lines[0]
	if len(first) > maxShownValue { // shortened, written out: one call less on a refusal's way
		first = first[:maxShownValue] + "…"
	}
	if len(lines) == 1 {
		return strconv.Quote(first)
	}
	return shownFirstOfMore(first, len(lines))
}

// shownFirstOfMore is shownLines' words for several lines (apart: a call
// costs every line shown under Yaegi, whether it has more or not).
func shownFirstOfMore(first string, lines int) string {
	return strconv.Quote(first) + " and " + strconv.Itoa(lines-1) + " more lines"
}

// ---- Repair: restore what a hop stripped ----
//
// Only where the request proves what it was.

// plannedRepairs lists what applyRepairs will change, in the order of
// X-Socketio-Guard-Repaired, and why a missing Origin is left missing ("" when
// it is not). It changes nothing, so inspection can show it.
func plannedRepairs(g *Guard, req *http.Request, eio *engineIORequest) (repairs []string, originWithheld string) {
	if g.settings.normalizePath && eio.missingSlash {
		repairs = append(repairs, repairPath)
	}
	if eio.transport == transportWebsocket && !eio.usableUpgrade { // judgeUpgrade found it repairable
		repairs = append(repairs, repairUpgrade)
	}
	if g.settings.setMissingOrigin && !eio.hasSID && req.Header.Get("Origin") == "" {
		if originWithheld = originWithheldBecause(req, eio.hasJSONP); originWithheld == "" {
			repairs = append(repairs, repairOrigin)
		}
	}
	return repairs, originWithheld
}

// repairMissingOrigin is the Origin repair of a handshake on the short way,
// written out for its cost (352 allocations per polling handshake under
// Yaegi, against 430 through originWithheldBecause and repairOne, measured):
// the full way decides the same through plannedRepairs,
// originWithheldBecause and repairOne, and every scenario of the tables runs
// both ways. An Origin counts as missing when it is absent or empty (the
// server has trimmed spaces and tabs around it).
func repairMissingOrigin(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if !g.settings.setMissingOrigin || req.Header.Get("Origin") != "" {
		return
	}
	origin := originFor(req) // "" when Host is not a plain host
	if fetchSite, present := req.Header["Sec-Fetch-Site"]; origin == "" || present && (len(fetchSite) != 1 || fetchSite[0] != "same-origin") {
		withholdOrigin(g, req, originWithheldBecause(req, false))
		return
	}
	req.Header.Set("Origin", origin)
	atomic.AddInt64(&g.counters.originRepairs, 1) // countNamed's own way for it, without the call
	if levelInfo <= g.log.level {
		g.log.event(levelInfo, "repaired-"+repairOrigin, req, repairHints[repairOrigin], "")
	}
	rw.Header().Set(headerRepaired, repairOrigin)
}

// originWithheldBecause says why a missing Origin must stay missing (one of
// the reasons counters.go names: withheldJSONP, withheldFetchSite,
// withheldHost), or "".
//
// The Origin the guard sets tells the Socket.IO server "this request comes
// from a page of this very site". That holds for a browser's same-origin
// request and says nothing new for a non-browser client (which can send any
// Origin itself). It must not be said of a request another site's page made
// a browser send with the victim's cookies (a <script>, <img> or navigation
// carries no Origin): browsers mark those with Sec-Fetch-Site, and JSONP is
// the way such a page would read the answer.
func originWithheldBecause(req *http.Request, jsonp bool) string {
	if jsonp {
		return withheldJSONP
	}
	if fetchSite, present := req.Header["Sec-Fetch-Site"]; present && (len(fetchSite) != 1 || fetchSite[0] != "same-origin") {
		return withheldFetchSite
	}
	if !isPlainHost(req.Host) {
		return withheldHost
	}
	return ""
}

// originWithheldReason words a withheld Origin's reason, for the log and the
// inspection (built only for them).
func originWithheldReason(req *http.Request, reason string) string {
	switch reason {
	case withheldJSONP:
		return "jsonp: a JSONP request is a script any page can include"
	case withheldFetchSite:
		fetchSite := req.Header["Sec-Fetch-Site"]
		return fmt.Sprintf("sec-fetch-site: the browser says the request comes from a %s page (Sec-Fetch-Site %s), not from this site's own",
			fetchSiteKind(fetchSite), shownLines(fetchSite))
	case withheldHost:
		return fmt.Sprintf("host: Host %q is not a plain host name or address", shortened(req.Host))
	}
	return ""
}

// fetchSiteKind names a Sec-Fetch-Site value for the log and the counters.
func fetchSiteKind(values []string) string {
	if len(values) == 1 {
		switch values[0] {
		case "same-site", "cross-site", "none":
			return values[0]
		}
	}
	return "unknown"
}

func applyRepairs(g *Guard, rw http.ResponseWriter, req *http.Request, repairs []string) {
	if len(repairs) == 0 {
		return
	}
	for _, repair := range repairs {
		repairOne(g, req, repair)
	}
	rw.Header().Set(headerRepaired, strings.Join(repairs, ","))
}

// repairOne makes one repair, counts and logs it.
func repairOne(g *Guard, req *http.Request, repair string) {
	switch repair {
	case repairPath:
		// Traefik's proxy re-reads RequestURI, so both must change
		// (as Traefik's own stripPrefix does). The query stays as sent.
		req.URL.Path += "/"
		if req.URL.RawPath != "" {
			req.URL.RawPath += "/"
		}
		req.RequestURI = req.URL.RequestURI()
	case repairUpgrade:
		req.Header.Set("Upgrade", "websocket")
		if upgrade, _ := connectionAsksUpgrade(req.Header["Connection"]); !upgrade {
			req.Header.Add("Connection", "Upgrade")
		}
	case repairOrigin:
		req.Header.Set("Origin", originFor(req))
	}
	countNamed(g.counters, repair)
	level := levelInfo
	if repair == repairUpgrade {
		level = levelWarn
	}
	if level <= g.log.level { // the event's words are built only when they are written
		g.log.event(level, "repaired-"+repair, req, repairHints[repair], "")
	}
}

// withholdOrigin records a missing Origin the guard did not set.
func withholdOrigin(g *Guard, req *http.Request, reason string) {
	countNamed(g.counters, reason)
	if levelInfo <= g.log.level {
		g.log.event(levelInfo, "origin-not-set", req, originWithheldReason(req, reason), "")
	}
}
