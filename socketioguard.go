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
	"net/http/httptest"
	"net/url"
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
	return &Guard{
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
	}, nil
}

// ServeHTTP: classify → validate → repair (prepare) → forward → diagnose.
//
// Under Traefik this code is interpreted by Yaegi, where a call costs in
// proportion to everything the called function contains, executed or not,
// and the frames of the functions on the stack stay allocated while a
// websocket lives (the proxy tunnels inside next.ServeHTTP). Hence: small
// functions on the per-request path, error texts built only when rejecting,
// and the work done in prepare, which has returned before forwarding.
func (g *Guard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if g.settings.shortWayPaths[req.URL.Path] && serveShortWay(g, rw, req) {
		return
	}
	// Most requests a fallback router sees share no prefix with the Engine.IO
	// paths: one comparison sends them on.
	if !strings.HasPrefix(req.URL.Path, g.settings.commonPrefix) {
		g.next.ServeHTTP(rw, req)
		return
	}
	g.serveCandidate(rw, req)
}

// serveShortWay serves the common polling requests — a poll of an open
// session (GET or POST with a sid) and a polling handshake (GET without one)
// — when nothing about them needs a second look: transport=polling, an
// accepted EIO, no JSONP, a query url.ParseQuery reads whole and short
// enough. It reports false for anything else, which serveCandidate reads,
// refuses or repairs in full. Of the repairs, only the Origin can apply
// (to a handshake).
//
// The backend's answer is captured by a compiled writer (httptest's
// recorder) rather than watched through an interpreted one: under Yaegi every
// call from Traefik's proxy into an interpreted writer goes through reflect.
// An Engine.IO polling answer is one complete payload (bounded by the
// server's maxPayload), so holding it until it is complete delays nothing;
// the answers the guard must read (404, 400, 403, an HTML page to a GET) are
// handed to the same diagnosis as the full path.
//
// Under Yaegi every expression here costs a frame slot on every poll,
// executed or not (see bench/report.md): what is rare lives in the functions
// it calls, and each test is written once.
func serveShortWay(g *Guard, rw http.ResponseWriter, req *http.Request) bool {
	query := req.URL.RawQuery
	if len(query) > maxParsedQuery {
		return false
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return false
	}
	transport, eio := values[keyTransport], values[keyEIO]
	if len(transport) != 1 || len(eio) != 1 || !g.settings.eioAccepted[eio[0]] || values[keyJSONP] != nil {
		return false
	}
	if transport[0] != transportPolling {
		return transport[0] == transportWebsocket && serveWebsocketHandshake(g, rw, req, values)
	}
	method := req.Method
	if sid := values[keySID]; sid == nil {
		if method != http.MethodGet {
			return false
		}
		prepareShortHandshake(g, rw, req)
	} else if len(sid) != 1 || sid[0] == "" || method != http.MethodGet && method != http.MethodPost {
		return false
	}
	atomic.AddInt64(&g.counters.requests, 1)
	header := rw.Header() // the backend's headers go straight into rw's
	if len(header) > 0 || !g.settings.diagnoseResponses {
		return servePollUnusual(g, rw, req)
	}
	answer := httptest.NewRecorder()
	answer.HeaderMap = header
	g.next.ServeHTTP(answer, req)
	// A pre-filter of judge's rule: the usual answers go out here, the
	// others to sendPollAnswer, which applies the rule itself. (A call to a
	// shared function here would cost every poll ~30 allocations under Yaegi.)
	if answer.Code == http.StatusOK && (method == http.MethodPost || g.settings.engineIOContentTypes[header.Get("Content-Type")]) {
		_, _ = answer.Body.WriteTo(rw) // the 200 goes out with the first byte
		return true
	}
	sendPollAnswer(g, rw, req, answer, nil)
	return true
}

// prepareShortHandshake: what a polling handshake on the short way needs
// beyond a poll: the Origin repair and its counter.
func prepareShortHandshake(g *Guard, rw http.ResponseWriter, req *http.Request) {
	repairMissingOrigin(g, rw, req)
	atomic.AddInt64(&g.counters.pollingHandshakes, 1)
}

// repairMissingOrigin is the Origin repair of a handshake the short way
// serves (plannedRepairs decides the same for the full path).
func repairMissingOrigin(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if g.settings.setMissingOrigin && strings.TrimSpace(req.Header.Get("Origin")) == "" {
		if reason := originWithheldBecause(req, false); reason != "" {
			g.withholdOrigin(req, reason)
		} else {
			g.applyRepairs(rw, req, []string{repairOrigin})
		}
	}
}

// serveWebsocketHandshake serves a websocket handshake whose query the short
// way has read (one EIO, accepted; one transport; no JSONP). A GET that
// arrives with its upgrade headers — what browsers send through a hop that
// keeps them — needs no more than the Origin repair; anything else takes the
// rest of the full path, without reading the query again.
func serveWebsocketHandshake(g *Guard, rw http.ResponseWriter, req *http.Request, values url.Values) bool {
	if !g.settings.transportAccepted[transportWebsocket] {
		return false // refused in full (transport-unknown)
	}
	sid := values[keySID]
	if len(sid) > 1 || req.Method != http.MethodGet || !headerHasToken(req.Header, "Upgrade", "websocket") || !headerHasToken(req.Header, "Connection", "upgrade") {
		eio := &engineIORequest{}
		setEngineIOKeys(eio, values[keyEIO], values[keyTransport], sid, nil)
		readUpgradeEvidence(req, eio)
		atomic.AddInt64(&g.counters.requests, 1)
		watcher, forward := g.validateAndRepair(rw, req, eio)
		forwardWatched(g, rw, req, watcher, forward)
		return true
	}
	atomic.AddInt64(&g.counters.requests, 1)
	if len(sid) == 0 || sid[0] == "" {
		repairMissingOrigin(g, rw, req)
	}
	atomic.AddInt64(&g.counters.websocketHandshakes, 1)
	if !g.settings.diagnoseResponses {
		g.next.ServeHTTP(rw, req)
		return true
	}
	forwardWatched(g, rw, req, newAnswerWatcher(g, rw, req, true, true), true)
	return true
}

// servePollUnusual forwards a poll when diagnosis is off, or when headers
// were set before forwarding (by the guard's caller), which an answer the
// guard replaces must keep.
func servePollUnusual(g *Guard, rw http.ResponseWriter, req *http.Request) bool {
	if !g.settings.diagnoseResponses {
		g.next.ServeHTTP(rw, req)
		return true
	}
	answer := httptest.NewRecorder()
	answer.HeaderMap = rw.Header()
	before := answer.HeaderMap.Clone()
	g.next.ServeHTTP(answer, req)
	sendPollAnswer(g, rw, req, answer, before)
	return true
}

// sendPollAnswer sends a captured poll answer on, through the diagnosis when
// judge would not just pass it.
func sendPollAnswer(g *Guard, rw http.ResponseWriter, req *http.Request, answer *httptest.ResponseRecorder, before http.Header) {
	// One condition, not a case list: Yaegi v0.16.1 skips a tagless case
	// whose first expression is false and second true.
	if answer.Code == http.StatusNotFound || answer.Code == http.StatusBadRequest || answer.Code == http.StatusForbidden ||
		answer.Code == http.StatusOK && req.Method == http.MethodGet && isHTML(answer.HeaderMap.Get("Content-Type")) {
		replayForDiagnosis(&answerWatcher{guard: g, rw: rw, req: req, headersBefore: before}, answer)
		return
	}
	rw.WriteHeader(answer.Code)
	_, _ = answer.Body.WriteTo(rw)
}

// replayForDiagnosis plays a captured answer (its headers already in place)
// through the answer watcher — the answers a poll's watcher would not just
// pass on (see answerWatcher.judge) — as if the backend were writing it now.
func replayForDiagnosis(watcher *answerWatcher, answer *httptest.ResponseRecorder) {
	watcher.WriteHeader(answer.Code)
	_, _ = watcher.Write(answer.Body.Bytes())
	if watcher.state != passingThrough {
		watcher.finish()
	}
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
	watcher, forward := g.prepare(rw, req, missingSlash)
	forwardWatched(g, rw, req, watcher, forward)
}

// forwardWatched forwards a prepared request, through the watcher when there
// is one.
func forwardWatched(g *Guard, rw http.ResponseWriter, req *http.Request, watcher *answerWatcher, forward bool) {
	switch {
	case !forward: // answered by the guard
	case watcher == nil:
		g.next.ServeHTTP(rw, req)
	default:
		g.next.ServeHTTP(watcher, req)
		if watcher.state != passingThrough && watcher.state != hijacked {
			watcher.finish()
		}
	}
}

// prepare validates and repairs an Engine.IO request. It answers the request
// itself (forward false) when it must be refused, and returns the writer that
// watches the backend's answer when diagnosis is on.
func (g *Guard) prepare(rw http.ResponseWriter, req *http.Request, missingSlash bool) (*answerWatcher, bool) {
	atomic.AddInt64(&g.counters.requests, 1)
	if g.settings.fallback {
		g.rejectMisrouted(rw, req)
		return nil, false
	}
	return g.validateAndRepair(rw, req, readEngineIORequest(req, missingSlash))
}

// validateAndRepair is prepare once the request is read.
func (g *Guard) validateAndRepair(rw http.ResponseWriter, req *http.Request, eio *engineIORequest) (*answerWatcher, bool) {
	// Validate: refuse what the Socket.IO server would refuse anyway, but
	// with an answer that says which hop broke the request.
	if p := g.findProblem(req, eio); p != nil {
		g.rejectInvalid(rw, req, eio, p)
		return nil, false
	}

	// Repair what a hop stripped, where the request proves what it was
	// (only these can need a repair: the common polling request skips the call).
	if eio.missingSlash || eio.transport == transportWebsocket || g.settings.setMissingOrigin {
		repairs, originWithheld := g.plannedRepairs(req, eio)
		if originWithheld != "" {
			g.withholdOrigin(req, originWithheld)
		}
		g.applyRepairs(rw, req, repairs)
	}

	if req.Method == http.MethodGet && (eio.transport == transportWebsocket || !eio.hasSID) {
		countHandshake(g.counters, eio) // most requests (polls with a sid) skip the call
	}
	if !g.settings.diagnoseResponses || req.Method == http.MethodOptions {
		return nil, true
	}
	// A websocket handshake that got here leaves with its upgrade headers
	// (usable, or restored above).
	websocket := eio.transport == transportWebsocket
	return newAnswerWatcher(g, rw, req, websocket, websocket), true
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

func (g *Guard) rejectInvalid(rw http.ResponseWriter, req *http.Request, eio *engineIORequest, p *problem) {
	g.reject(rw, req, *p, p.status, g.describeProblem(p, req, eio), p.hint)
}

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
	if fetchSite, present := req.Header["Sec-Fetch-Site"]; present {
		if len(fetchSite) != 1 || fetchSite[0] != "same-origin" {
			return fmt.Sprintf("sec-fetch-site: the browser says the request comes from a %s page (Sec-Fetch-Site %q), not from this site's own", fetchSiteKind(fetchSite), shortened(strings.Join(fetchSite, ", ")))
		}
	}
	if originFor(req) == "" {
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

func (g *Guard) applyRepairs(rw http.ResponseWriter, req *http.Request, repairs []string) {
	if len(repairs) == 0 {
		return
	}
	for _, repair := range repairs {
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
		g.log.event(level, "repaired-"+repair, req, repairHints[repair], "")
	}
	rw.Header().Set(headerRepaired, strings.Join(repairs, ","))
}

// withholdOrigin records a missing Origin the guard did not set.
func (g *Guard) withholdOrigin(req *http.Request, reason string) {
	kind, _, _ := strings.Cut(reason, ":")
	g.counters.countWithheld(repairOrigin + ":" + kind)
	g.log.event(levelInfo, "origin-not-set", req, reason, "")
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
	proto, _, _ := strings.Cut(req.Header.Get("X-Forwarded-Proto"), ",")
	switch strings.ToLower(strings.TrimSpace(proto)) {
	case "https", "wss":
		scheme = "https"
	case "http", "ws":
		scheme = "http"
	}
	return scheme + "://" + host
}

// isPlainHost accepts name[:port], IPv4[:port] and [IPv6][:port].
func isPlainHost(host string) bool {
	if host == "" || len(host) > 261 {
		return false
	}
	name, port := host, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 || strings.Trim(host[1:end], "0123456789abcdefABCDEF:.") != "" {
			return false
		}
		name, port = "", host[end+1:]
	} else if i := strings.IndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i:]
	}
	if name != "" && (strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" || name[0] == '.' || name[0] == '-') {
		return false
	}
	return port == "" || len(port) > 1 && len(port) <= 6 && port[0] == ':' && strings.Trim(port[1:], "0123456789") == ""
}

// rejectMisrouted answers an Engine.IO request that reached a router in
// fallback mode: the Socket.IO route is missing or has a lower priority.
func (g *Guard) rejectMisrouted(rw http.ResponseWriter, req *http.Request) {
	host := req.Host
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	}
	detail := fmt.Sprintf("%s %s for host %q reached a router that does not serve Socket.IO", req.Method, req.URL.Path, host)
	hint := fmt.Sprintf("add a router with rule Host(`%s`) && PathPrefix(`%s`) to the Socket.IO service, with a higher priority than the router that uses the middleware %s",
		host, strings.TrimSuffix(g.settings.paths[0], "/"), g.name)
	g.reject(rw, req, problemNoSocketIORoute, g.settings.fallbackStatus, detail, hint)
}

func (g *Guard) reject(rw http.ResponseWriter, req *http.Request, p problem, status int, detail, hint string) {
	g.counters.countRejection(p.id)
	g.log.event(p.level, p.id, req, hint, "")
	writeGuardAnswer(rw, status, p, detail, hint)
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
