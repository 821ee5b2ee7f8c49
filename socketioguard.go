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
	"encoding/base64"
	"fmt"
	"log"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"time"
)

// Guard is the middleware handler built by New.
type Guard struct {
	next     http.Handler
	name     string
	settings settings
	log      *logger
	counters *counters
}

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
// everything else the full way: serveCandidate → prepare, whose stages
// follow in this file in that order (classify, validate, repair),
// then diagnose.go (forward and diagnose) and errors.go (the guard's own
// answers). Fallback mode and the inspection are apart (fallback.go,
// inspect.go).

// ServeHTTP: classify → validate → repair → forward → diagnose.
//
// Under Traefik this code is interpreted by Yaegi, where a call costs in
// proportion to everything the called function contains, executed or not,
// and the frames of the functions on the stack stay allocated while a
// websocket lives (the proxy tunnels inside next.ServeHTTP). Hence: few
// calls on the common requests' way, the rare work in functions of its own,
// error texts built only when rejecting.
func (g *Guard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if g.settings.shortWayPaths[req.URL.Path] && serveShortWay(g, rw, req) {
		return
	}
	if !strings.HasPrefix(req.URL.Path, g.settings.commonPrefix) {
		g.next.ServeHTTP(rw, req)
		return
	}
	g.serveCandidate(rw, req)
}

// serveShortWay serves the common Engine.IO requests in few interpreted
// calls: a poll of an open session (GET or POST with a sid), a polling
// handshake (GET, no sid) and a websocket handshake that arrived with its
// upgrade headers — when their query is one the short way recognises whole
// (see shortWayQuery: Engine.IO's keys once each, EIO accepted, EIO before
// transport as socket.io-client sends them, any application parameters
// around them, no JSONP). It reports false for anything else, which
// serveCandidate reads, refuses or repairs in full. Of the repairs, only the
// Origin can apply (to a handshake).
//
// Under Yaegi every expression costs a frame slot on every call, executed or
// not, and every call into the standard library goes through reflect (see
// bench/report.md): a poll is recognised by one compiled regular expression
// instead of reading its query, and what is rarer lives in the functions it
// calls.
func serveShortWay(g *Guard, rw http.ResponseWriter, req *http.Request) bool {
	query := req.URL.RawQuery
	if len(query) > maxShortWayQuery {
		return false
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

// serveShortHandshake: the short way of a polling handshake (with the Origin
// repair) and of a websocket handshake, both GETs.
func serveShortHandshake(g *Guard, rw http.ResponseWriter, req *http.Request, query string) bool {
	if req.Method != http.MethodGet {
		return false
	}
	if g.settings.handshakeQuery.MatchString(query) {
		atomic.AddInt64(&g.counters.requests, 1)
		repairMissingOrigin(g, rw, req)
		atomic.AddInt64(&g.counters.pollingHandshakes, 1)
		forwardCaptured(g, rw, req)
		return true
	}
	if g.settings.websocketQuery == nil || !g.settings.websocketQuery.MatchString(query) ||
		!headerHasToken(req.Header, "Upgrade", "websocket") || !headerHasToken(req.Header, "Connection", "upgrade") {
		return false
	}
	atomic.AddInt64(&g.counters.requests, 1)
	if !strings.Contains(query, "&"+keySID+"=") { // exact: the expression puts sid after EIO and transport
		repairMissingOrigin(g, rw, req)
	}
	atomic.AddInt64(&g.counters.websocketHandshakes, 1)
	forwardWatched(g, rw, req, true)
	return true
}

// serveCandidate: a path that may be an Engine.IO path, or the inspect path.
func (g *Guard) serveCandidate(rw http.ResponseWriter, req *http.Request) {
	path := req.URL.Path
	if path == g.settings.inspectPath && req.Method == http.MethodGet {
		g.serveInspect(rw, req)
		return
	}
	prefix, missingSlash, isEngineIO := matchEngineIOPath(g.settings.paths, path)
	if !isEngineIO || len(path) > len(prefix) && isClientBundle(prefix, path) {
		g.next.ServeHTTP(rw, req) // everything else passes untouched
		return
	}
	if forward, websocket := g.prepare(rw, req, missingSlash); forward {
		forwardWatched(g, rw, req, websocket)
	}
}

// prepare reads, validates and repairs an Engine.IO request. It answers the
// request itself (forward false) when it must be refused, and says whether it
// is a websocket handshake.
func (g *Guard) prepare(rw http.ResponseWriter, req *http.Request, missingSlash bool) (forward, websocket bool) {
	atomic.AddInt64(&g.counters.requests, 1)
	if g.settings.fallback {
		g.rejectMisrouted(rw, req)
		return false, false
	}
	eio := readEngineIORequest(req, missingSlash)
	websocket = eio.transport == transportWebsocket

	// Validate: refuse what the Socket.IO server would refuse anyway, but
	// with an answer that says which hop broke the request.
	if p := g.findProblem(req, eio); p != nil {
		g.rejectInvalid(rw, req, eio, p)
		return false, websocket
	}

	// Repair what a hop stripped, where the request proves what it was
	// (only these can need a repair: the common polling request skips the call).
	if eio.missingSlash || websocket || g.settings.setMissingOrigin {
		repairs, originWithheld := g.plannedRepairs(req, eio)
		if originWithheld != "" {
			g.withholdOrigin(req, originWithheld)
		}
		g.applyRepairs(rw, req, repairs)
	}

	if req.Method == http.MethodGet && (websocket || !eio.hasSID) {
		countHandshake(g.counters, eio) // most requests (polls with a sid) skip the call
	}
	return true, websocket
}

// countHandshake counts the handshakes that go on to the Socket.IO server.
func countHandshake(c *counters, eio *engineIORequest) {
	switch {
	case eio.transport == transportWebsocket:
		atomic.AddInt64(&c.websocketHandshakes, 1)
	case !eio.hasSID:
		atomic.AddInt64(&c.pollingHandshakes, 1)
	}
}

// ---- Classify: what the request is ----
//
// The Engine.IO path, the query keys Engine.IO servers read, and the upgrade
// evidence.

// engineIORequest is what the guard reads from a request on an Engine.IO path:
// the query parameters Engine.IO servers check, and the upgrade evidence.
type engineIORequest struct {
	// missingSlash is true for "/socket.io" when the configured prefix is
	// "/socket.io/" (Engine.IO servers only answer the form with the slash).
	missingSlash bool

	hasEIO, hasTransport bool
	eio, transport       string
	hasSIDKey            bool   // sid is in the query, perhaps empty
	hasSID               bool   // sid is in the query and not empty
	hasJSONP             bool   // j is in the query: JSONP polling
	ambiguousKey         string // an Engine.IO key the query carries twice

	// Upgrade evidence. Traefik's entrypoint has already removed the headers
	// named in Connection and deleted Connection unless it carried "upgrade".
	upgradeWebsocket  bool // Upgrade has the "websocket" token
	upgradeOther      bool // Upgrade is set to something else (e.g. h2c)
	connectionUpgrade bool // Connection has the "upgrade" token
	hasWebSocketProof bool // Sec-WebSocket-Key or -Version: end-to-end, survives proxies
	overHTTP2OrLater  bool // websockets need HTTP/1.1 in Traefik (no RFC 8441)
	// handshakeFlaw says which part of an RFC 6455 handshake a request with
	// stripped upgrade headers lacks ("" = none: it may be repaired).
	handshakeFlaw string
}

// matchEngineIOPath reports which configured prefix a path belongs to: it
// starts with the prefix, or equals the prefix without its trailing slash.
// It allocates nothing: it runs on every request of the router.
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

// isClientBundle recognises the files a Socket.IO server serves under its own
// path (serveClient: /socket.io/socket.io.min.js, .map, .esm.min.js…): they
// are plain downloads, not Engine.IO requests.
func isClientBundle(prefix, path string) bool {
	rest := path[len(prefix)-1:]
	if len(rest) < 2 || strings.Contains(rest[1:], "/") {
		return false
	}
	return strings.HasPrefix(rest, "/socket.io") && (strings.HasSuffix(rest, ".js") || strings.HasSuffix(rest, ".js.map"))
}

func readEngineIORequest(req *http.Request, missingSlash bool) *engineIORequest {
	r := &engineIORequest{missingSlash: missingSlash}
	readEngineIOQuery(req.URL.RawQuery, r)
	if r.transport == transportWebsocket { // the upgrade evidence only matters to websocket handshakes
		readUpgradeEvidence(req, r)
	}
	return r
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

// maxParsedQuery: a query up to this length is read by url.ParseQuery, one
// compiled call; a longer one (up to the 1 MiB Traefik accepts) by a few
// compiled passes that allocate nothing per parameter.
const maxParsedQuery = 4096

// readEngineIOQuery reads EIO, transport, sid and j the way the backend will
// see them: keys and values percent-decoded, "+" as space, "&" and ";" both
// separating pairs (Traefik forwards ";" as "&"), malformed escapes kept as
// they are (as engine.io's URLSearchParams does), unknown parameters (the
// application's own) ignored. Under Traefik the plugin is interpreted, where
// a loop over the pairs would cost per pair: the work is done by compiled
// calls, bounded by the query's length whatever its content.
func readEngineIOQuery(rawQuery string, r *engineIORequest) {
	if len(rawQuery) <= maxParsedQuery {
		// url.ParseQuery decodes exactly like URLSearchParams wherever it
		// does not fail (it fails on ";" and on malformed escapes).
		if values, err := url.ParseQuery(rawQuery); err == nil {
			setEngineIOKeys(r, values[keyEIO], values[keyTransport], values[keySID], values[keyJSONP])
			return
		}
	}
	if strings.ContainsAny(rawQuery, "%;") {
		rawQuery = engineIOKeyNormalizer.Replace(rawQuery)
	}
	normalized := "&" + rawQuery + "&"
	setEngineIOKeys(r, scanKey(normalized, keyEIO), scanKey(normalized, keyTransport), scanKey(normalized, keySID), scanKey(normalized, keyJSONP))
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

// engineIOKeyNormalizer prepares a query for scanKey in one compiled pass:
// ";" becomes "&", and the percent-escapes of the letters of the four keys
// are decoded, so that "%6A=0" or "%45IO=3" are found as the server will
// read them (a server decodes a key once; so does a single Replacer pass).
var engineIOKeyNormalizer = strings.NewReplacer(
	";", "&",
	"%45", "E", "%49", "I", "%4F", "O", "%4f", "O",
	"%74", "t", "%72", "r", "%61", "a", "%6E", "n", "%6e", "n", "%73", "s", "%70", "p",
	"%6F", "o", "%6f", "o", "%69", "i", "%64", "d", "%6A", "j", "%6a", "j",
)

// scanKey finds a key in a normalized query ("&" + query + "&"): its value,
// decoded ("" when the key stands bare), or two entries when the key is
// there more than once (which copy counts is then unknowable, and the request
// is refused).
func scanKey(normalized, key string) []string {
	withValue, bare := "&"+key+"=", "&"+key+"&"
	count := strings.Count(normalized, withValue) + strings.Count(normalized, bare)
	if count == 1 && strings.Contains(normalized, bare+key+"&") {
		count = 2 // "&j&j&": Count does not see overlapping matches
	}
	switch count {
	case 0:
		return nil
	case 1:
		value := ""
		if i := strings.Index(normalized, withValue); i >= 0 {
			rest := normalized[i+len(withValue):]
			value = queryValue(rest[:strings.IndexByte(rest, '&')])
		}
		return []string{value}
	}
	return []string{"", ""}
}

// maxDecodedValue: no accepted EIO or transport value is longer, escaped.
const maxDecodedValue = 64

// queryValue decodes a value as a server would. Values too long to be an
// accepted one are kept raw (they are refused, and shown shortened).
func queryValue(raw string) string {
	if !strings.ContainsAny(raw, "%+") || len(raw) > maxDecodedValue {
		return raw
	}
	if v, err := url.QueryUnescape(raw); err == nil {
		return v
	}
	return lenientUnescape(raw)
}

// lenientUnescape decodes like URLSearchParams: "+" is a space, a valid
// escape is decoded, a malformed one ("%zz", a lone "%") stays as it is.
func lenientUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

func readUpgradeEvidence(req *http.Request, r *engineIORequest) {
	h := req.Header
	r.upgradeWebsocket = headerHasToken(h, "Upgrade", "websocket")
	r.upgradeOther = !r.upgradeWebsocket && strings.TrimSpace(h.Get("Upgrade")) != ""
	r.connectionUpgrade = headerHasToken(h, "Connection", "upgrade")
	r.overHTTP2OrLater = req.ProtoMajor >= 2
	if r.hasUsableUpgrade() {
		return // nothing to repair: the server judges the handshake itself
	}
	r.hasWebSocketProof = len(h.Values("Sec-WebSocket-Key")) > 0 || len(h.Values("Sec-WebSocket-Version")) > 0
	if r.hasWebSocketProof {
		r.handshakeFlaw = websocketHandshakeFlaw(req)
	}
}

// hasUsableUpgrade is true when Traefik's proxy will forward the request as
// a websocket handshake: it needs both Upgrade and the Connection token.
func (r *engineIORequest) hasUsableUpgrade() bool {
	return r.upgradeWebsocket && r.connectionUpgrade
}

// headerHasToken reports whether a comma-separated header contains a token,
// case-insensitively, across all its lines.
func headerHasToken(h http.Header, name, token string) bool {
	lines := h.Values(name)
	if len(lines) == 1 && strings.EqualFold(lines[0], token) {
		return true // the usual "Upgrade: websocket", "Connection: Upgrade"
	}
	return listHasToken(lines, token)
}

func listHasToken(lines []string, token string) bool {
	for _, line := range lines {
		for line != "" {
			var item string
			item, line, _ = strings.Cut(line, ",")
			if strings.EqualFold(strings.TrimSpace(item), token) {
				return true
			}
		}
	}
	return false
}

// websocketHandshakeFlaw checks that a request is shaped like the opening
// handshake of RFC 6455 (section 4.1), which every browser sends: GET,
// Sec-WebSocket-Version 13, a Sec-WebSocket-Key of 16 base64 bytes, no body.
// Only such a request may be turned back into an upgrade: anything else
// (a request with a body, say) would travel into the backend's websocket
// after the 101. It returns which part did not fit, or "".
func websocketHandshakeFlaw(req *http.Request) string {
	if req.Method != http.MethodGet {
		return fmt.Sprintf("method %s (a websocket handshake is a GET)", req.Method)
	}
	versions := req.Header.Values("Sec-WebSocket-Version")
	if len(versions) != 1 || strings.TrimSpace(versions[0]) != "13" {
		return fmt.Sprintf("Sec-WebSocket-Version %q (must be 13, once)", shortened(strings.Join(versions, ", ")))
	}
	keys := req.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return fmt.Sprintf("%d Sec-WebSocket-Key headers (must be one)", len(keys))
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(key) != 16 {
		return fmt.Sprintf("Sec-WebSocket-Key %q (must be 16 bytes in base64)", shortened(keys[0]))
	}
	contentLength := strings.TrimSpace(req.Header.Get("Content-Length"))
	if req.ContentLength != 0 || len(req.TransferEncoding) > 0 || len(req.Header.Values("Transfer-Encoding")) > 0 ||
		contentLength != "" && contentLength != "0" {
		return "a request body (a websocket handshake has none)"
	}
	return ""
}

// ---- Validate: refuse what cannot work ----
//
// A refusal is answered by the guard (errors.go) and never forwarded.

// findProblem returns the first problem that makes the request unusable for
// the Socket.IO server (or unsafe to pass on), or nil. CORS preflights
// (OPTIONS) are the server's CORS layer's business and pass.
func (g *Guard) findProblem(req *http.Request, eio *engineIORequest) *problem {
	switch {
	case req.Method == http.MethodOptions:
		return nil
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
	case eio.transport != transportWebsocket || eio.hasUsableUpgrade():
		return nil
	case eio.overHTTP2OrLater:
		return &problemUpgradeImpossible
	case !g.settings.repairUpgrade || !eio.hasWebSocketProof || eio.upgradeOther:
		return &problemUpgradeMissing
	case eio.handshakeFlaw != "":
		return &problemWebSocketHandshakeInvalid
	}
	return nil // repaired below
}

func (g *Guard) rejectInvalid(rw http.ResponseWriter, req *http.Request, eio *engineIORequest, p *problem) {
	g.reject(rw, req, *p, p.status, g.describeProblem(p, req, eio), p.hint)
}

// describeProblem is the detail of a rejection: the offending value and
// what is accepted.
func (g *Guard) describeProblem(p *problem, req *http.Request, eio *engineIORequest) string {
	switch p.id {
	case problemQueryAmbiguous.id:
		return fmt.Sprintf("the query carries %s more than once (query: %q); engine.io reads the last value, python-engineio the first, and no Socket.IO client repeats it",
			eio.ambiguousKey, redactedQuery(req.URL.RawQuery))
	case problemQueryMissing.id:
		return fmt.Sprintf("%s %s arrived without EIO and transport in the query (query: %q)", req.Method, req.URL.Path, redactedQuery(req.URL.RawQuery))
	case problemJSONPRefused.id:
		return "the query has a j parameter (JSONP polling), which allowJSONP does not allow"
	case problemEIOUnsupported.id:
		if !eio.hasEIO {
			return fmt.Sprintf("EIO is missing; accepted: %s", strings.Join(g.settings.eioVersions, ", "))
		}
		return fmt.Sprintf("EIO %q is not one of %s", shortened(eio.eio), strings.Join(g.settings.eioVersions, ", "))
	case problemTransportUnknown.id:
		if !eio.hasTransport {
			return fmt.Sprintf("transport is missing; accepted: %s", strings.Join(g.settings.transports, ", "))
		}
		return fmt.Sprintf("transport %q is not one of %s", shortened(eio.transport), strings.Join(g.settings.transports, ", "))
	case problemBadHandshakeMethod.id:
		return fmt.Sprintf("%s without sid; only GET may open a session", req.Method)
	case problemUpgradeImpossible.id:
		return fmt.Sprintf("transport=websocket over %s", req.Proto)
	case problemWebSocketHandshakeInvalid.id:
		return "transport=websocket without Upgrade/Connection, and not a websocket handshake the guard may restore: " + eio.handshakeFlaw
	}
	detail := fmt.Sprintf("transport=websocket with Upgrade %q and Connection %q", shortened(req.Header.Get("Upgrade")), shortened(req.Header.Get("Connection")))
	switch {
	case !eio.hasWebSocketProof:
		return detail + ", and no Sec-WebSocket-Key/-Version that would prove a websocket handshake"
	case eio.upgradeOther:
		return detail + ": Upgrade names another protocol, which the guard does not rewrite"
	}
	return detail + "; repairUpgrade is off, so the guard did not restore them"
}

// ---- Repair: restore what a hop stripped ----
//
// Only where the request proves what it was.

// plannedRepairs lists what applyRepairs will change, in the order of
// X-Socketio-Guard-Repaired, and why a missing Origin is left missing ("" when
// it is not). It changes nothing, so inspection can show it.
func (g *Guard) plannedRepairs(req *http.Request, eio *engineIORequest) (repairs []string, originWithheld string) {
	if g.settings.normalizePath && eio.missingSlash {
		repairs = append(repairs, repairPath)
	}
	if g.settings.repairUpgrade && eio.transport == transportWebsocket && !eio.hasUsableUpgrade() &&
		eio.hasWebSocketProof && eio.handshakeFlaw == "" && !eio.upgradeOther && !eio.overHTTP2OrLater {
		repairs = append(repairs, repairUpgrade)
	}
	if g.settings.setMissingOrigin && !eio.hasSID && strings.TrimSpace(req.Header.Get("Origin")) == "" {
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
// both ways.
func repairMissingOrigin(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if !g.settings.setMissingOrigin || strings.TrimSpace(req.Header.Get("Origin")) != "" {
		return
	}
	origin := originFor(req) // "" when Host is not a plain host
	if fetchSite, present := req.Header["Sec-Fetch-Site"]; origin == "" || present && (len(fetchSite) != 1 || fetchSite[0] != "same-origin") {
		g.withholdOrigin(req, originWithheldBecause(req, false))
		return
	}
	req.Header.Set("Origin", origin)
	atomic.AddInt64(&g.counters.originRepairs, 1) // countRepair's own way for it, without the method call (24 allocations)
	if levelInfo <= g.log.level {
		g.log.event(levelInfo, "repaired-"+repairOrigin, req, repairHints[repairOrigin], "")
	}
	rw.Header().Set(headerRepaired, repairOrigin)
}

// originWithheldBecause says why a missing Origin must stay missing, or "".
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
		return "jsonp: a JSONP request is a script any page can include"
	}
	if fetchSite, present := req.Header["Sec-Fetch-Site"]; present && (len(fetchSite) != 1 || fetchSite[0] != "same-origin") {
		return fetchSiteReason(fetchSite)
	}
	if !isPlainHost(req.Host) {
		return hostReason(req.Host)
	}
	return ""
}

// fetchSiteReason and hostReason word a withheld Origin's reason (apart:
// most handshakes need neither, and Yaegi would build their frames anyway).
func fetchSiteReason(fetchSite []string) string {
	return fmt.Sprintf("sec-fetch-site: the browser says the request comes from a %s page (Sec-Fetch-Site %q), not from this site's own", fetchSiteKind(fetchSite), shortened(strings.Join(fetchSite, ", ")))
}

func hostReason(host string) string {
	return fmt.Sprintf("host: Host %q is not a plain host name or address", shortened(host))
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

// originFor is <scheme>://<host> of the request as the client addressed it,
// or "" when Host is not a plain host name or address with an optional port
// (the Origin is a URL the Socket.IO server may call back: Frappe does).
// Traefik sets X-Forwarded-Proto (http, https, or ws/wss for upgrades).
func originFor(req *http.Request) string {
	host := req.Host
	if !isPlainHost(host) {
		return ""
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	forwardedProto := req.Header.Get("X-Forwarded-Proto")
	if forwardedScheme := forwardedSchemes[forwardedProto]; forwardedScheme != "" {
		return forwardedScheme + "://" + host // what Traefik sets: one value, lower case
	}
	proto, _, _ := strings.Cut(forwardedProto, ",")
	if forwardedScheme := forwardedSchemes[strings.ToLower(strings.TrimSpace(proto))]; forwardedScheme != "" {
		scheme = forwardedScheme
	}
	return scheme + "://" + host
}

// forwardedSchemes: the scheme an X-Forwarded-Proto value says the client
// used (Traefik sends ws/wss for upgrades).
var forwardedSchemes = map[string]string{"https": "https", "wss": "https", "http": "http", "ws": "http"}

// plainHost accepts name[:port], IPv4[:port] and [IPv6][:port], and :port
// alone (as Go's server reads a Host): a name starts with a letter or digit
// and holds letters, digits, dots and hyphens; an address in brackets holds
// hexadecimal digits, colons and dots; a port is 1 to 5 digits; 261 bytes at
// most. One compiled match (FuzzPlainHost holds it to the rule written out).
func isPlainHost(host string) bool {
	return host != "" && len(host) <= 261 && plainHost.MatchString(host)
}

var plainHost = regexp.MustCompile(`^(?:\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9][A-Za-z0-9.-]*)?(?::[0-9]{1,5})?$`)

func (g *Guard) applyRepairs(rw http.ResponseWriter, req *http.Request, repairs []string) {
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
		if !headerHasToken(req.Header, "Connection", "upgrade") {
			req.Header.Add("Connection", "Upgrade")
		}
	case repairOrigin:
		req.Header.Set("Origin", originFor(req))
	}
	g.counters.countRepair(repair)
	level := levelInfo
	if repair == repairUpgrade {
		level = levelWarn
	}
	if level <= g.log.level { // the event's words are built only when they are written
		g.log.event(level, "repaired-"+repair, req, repairHints[repair], "")
	}
}

// withholdOrigin records a missing Origin the guard did not set.
func (g *Guard) withholdOrigin(req *http.Request, reason string) {
	kind, _, _ := strings.Cut(reason, ":")
	g.counters.countWithheld(repairOrigin + ":" + kind)
	g.log.event(levelInfo, "origin-not-set", req, reason, "")
}
