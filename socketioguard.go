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
// lighter fallbackGuard (at the end of this file).
func (g *Guard) handler() http.Handler {
	if g.fallback {
		return &fallbackGuard{next: g.next, commonPrefix: g.commonPrefix, guard: g}
	}
	return g
}

// ---- The route ----
//
// Every request enters at ServeHTTP (fallbackGuard.ServeHTTP in fallback
// mode). The common polling requests and websocket handshakes take the
// short way (serveShortWay: few interpreted calls); everything else the full
// way (serveFullWay). This file is the route; each stage is a file below it,
// which calls only further down: inspect.go (the inspection, a reader of
// what the stages decide and count), repair.go, validate.go and diagnose.go
// (forward and diagnose), classify.go, answers.go (the guard's own answers),
// then what they share — config.go, counters.go, errors.go (the problems),
// origin.go, logging.go.

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
//
// A websocket handshake the guard forwards comes back up here as its
// watcher, and is forwarded from this frame: Traefik's proxy tunnels the
// websocket inside next.ServeHTTP, and every interpreted frame on the stack
// then stays allocated for the connection's life — here only this one
// (3.0 KiB of live heap per open websocket in process instead of 5.9, and
// 3.1 instead of 7.1 for one whose stripped upgrade was repaired; every
// request pays 4 allocations for it; measured, e2e/interpreted and
// bench/websocket-memory.md).
func (g *Guard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	var w *websocketWatcher
	if g.shortWayPaths[req.URL.Path] {
		w = serveShortWay(g, rw, req)
	} else {
		w = serveOther(g, rw, req)
	}
	if w != nil {
		g.next.ServeHTTP(w, req) // for a 101, returns when the websocket closes
		finishRefusedWebsocket(g, w)
	}
}

// serveOther: a request whose path the short way does not serve, on the
// full way if it may be an Engine.IO path. Like every stage below
// ServeHTTP, it returns the watcher of a websocket handshake to forward,
// nil when the request was answered or forwarded.
func serveOther(g *Guard, rw http.ResponseWriter, req *http.Request) *websocketWatcher {
	if !strings.HasPrefix(req.URL.Path, g.commonPrefix) {
		g.next.ServeHTTP(rw, req)
		return nil
	}
	return serveFullWay(g, rw, req)
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
// not as Traefik forwards them. Anything else it hands to serveFullWay,
// which reads, refuses or repairs it in full.
//
// Under Yaegi every expression costs a frame slot on every call, executed or
// not, and every call into the standard library goes through reflect (see
// bench/report.md): a request is recognised by one compiled regular
// expression per transport instead of reading its query (whose sid group
// tells a poll from a polling handshake: one match for either), and each
// kind goes on to a function of its own, which holds only its own work: a
// poll pays 3 allocations for its call, each handshake 14 fewer than when
// the poll's work was here (measured, e2e/interpreted). The expressions'
// work grows with the query: maxShortWayQuery bounds it.
func serveShortWay(g *Guard, rw http.ResponseWriter, req *http.Request) *websocketWatcher {
	query := req.URL.RawQuery
	if len(query) > maxShortWayQuery || req.URL.RawPath != "" {
		return serveFullWay(g, rw, req) // it reads (or refuses) it
	}
	if polling := g.pollingQuery.FindStringSubmatchIndex(query); polling != nil {
		if polling[2] >= 0 { // its sid pair
			return serveShortPoll(g, rw, req)
		}
		return serveShortHandshake(g, rw, req)
	}
	return serveShortWebsocket(g, rw, req, query)
}

// serveShortPoll: the short way of a poll (GET or POST) whose query the
// expression proves whole; another method goes the full way.
func serveShortPoll(g *Guard, rw http.ResponseWriter, req *http.Request) *websocketWatcher {
	if req.Method != http.MethodGet && req.Method != http.MethodPost {
		return serveFullWay(g, rw, req)
	}
	atomic.AddInt64(&g.otherRequests, 1)
	forwardCaptured(g, rw, req)
	return nil
}

// serveShortHandshake: the short way of a polling handshake (a GET, with
// the Origin repair) whose query the expression proves whole. A query the
// expression proves needs no second reading on the full way: a polling
// handshake's with another method than GET is refused at once (an OPTIONS
// preflight excepted). (The polling handshake is what every client and
// every reconnect sends: its function holds nothing else, as under Yaegi a
// call costs every expression of the called function; and forwardCaptured
// is written out here, for a GET, one interpreted call fewer: 0.9–2.1 µs
// of a handshake's time in process, bench/lean-short-way.md.)
func serveShortHandshake(g *Guard, rw http.ResponseWriter, req *http.Request) *websocketWatcher {
	if req.Method != http.MethodGet {
		return refuseHandshakeMethod(g, rw, req)
	}
	repairMissingOrigin(g, rw, req)
	atomic.AddInt64(&g.pollingHandshakes, 1)
	if !g.diagnoseResponses {
		forwardCaptured(g, rw, req) // which passes it on unread (2 slots fewer than g.next.ServeHTTP here)
		return nil
	}
	header := rw.Header()
	recorder := &httptest.ResponseRecorder{HeaderMap: header, Code: http.StatusOK}
	answer := &heldAnswer{ResponseWriter: recorder, recorder: recorder, g: g, req: req, client: rw}
	if len(header) > 0 {
		answer.headersBefore = header.Clone() // the repair's marker, or an earlier middleware's
	}
	g.next.ServeHTTP(answer, req)
	if answer.sent {
		return nil // grown past maxHeldAnswer: sent on as it came
	}
	if recorder.Code == http.StatusOK && g.engineIOContentTypes[header.Get("Content-Type")] {
		_, _ = rw.Write(answer.body) // passesUnread(answer), for a GET
		return nil
	}
	sendHeldAnswer(answer)
	return nil
}

// refuseHandshakeMethod: a polling handshake's query (the short way's
// expression proved it whole) with another method than GET, which is
// bad-handshake-method whatever else the request carries — but for a CORS
// preflight, which goes on to the server's CORS layer as on the full way.
func refuseHandshakeMethod(g *Guard, rw http.ResponseWriter, req *http.Request) *websocketWatcher {
	if req.Method == http.MethodOptions {
		return serveFullWay(g, rw, req)
	}
	atomic.AddInt64(&g.otherRequests, 1)
	reject(g, rw, req, &problemBadHandshakeMethod, problemBadHandshakeMethod.status, describeBadHandshakeMethod(g, req, nil), "")
	return nil
}

// serveShortWebsocket: the short way of a websocket handshake (a GET) whose
// query the expression proves whole; any other query goes the full way.
// One that arrived whole gets the Origin repair if it is a direct websocket
// (which opens a session), is counted, and goes back up to be forwarded
// from ServeHTTP, watched; one whose upgrade headers are not as Traefik
// forwards them goes straight to their judgement (judgeShortWebsocket).
func serveShortWebsocket(g *Guard, rw http.ResponseWriter, req *http.Request, query string) *websocketWatcher {
	if req.Method != http.MethodGet {
		return serveFullWay(g, rw, req)
	}
	websocket := g.websocketQuery.FindStringSubmatchIndex(query)
	if websocket == nil {
		return serveFullWay(g, rw, req)
	}
	if !upgradeAsTraefikForwards(req) {
		return judgeShortWebsocket(g, rw, req, websocket[2] >= 0)
	}
	if websocket[2] < 0 { // no sid pair: a direct websocket
		repairMissingOrigin(g, rw, req)
	}
	atomic.AddInt64(&g.websocketHandshakes, 1)
	return watchWebsocket(g, rw, req, true)
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

// judgeShortWebsocket: the full way's judgement of a websocket handshake's
// upgrade headers (judgeUpgrade), refused or repaired and forwarded, for a
// handshake whose query the short way has read: Engine.IO's keys once each,
// an accepted EIO, no JSONP, the path as configured. Only the upgrade is
// left to judge, so the query is not read again (a request an attacker
// fills with upgrade headers costs the guard the judgement alone).
func judgeShortWebsocket(g *Guard, rw http.ResponseWriter, req *http.Request, hasSID bool) *websocketWatcher {
	eio := &engineIORequest{transport: transportWebsocket, hasSID: hasSID} // what the judgement and the repair read
	if p := judgeUpgrade(g, req, eio); p != nil {
		atomic.AddInt64(&g.otherRequests, 1)
		reject(g, rw, req, p, p.status, describeRejection[p](g, req, eio), "")
		return nil
	}
	return repairAndForward(g, rw, req, eio) // counts it
}

// serveFullWay reads, validates and repairs an Engine.IO request in full,
// and passes everything else under the common prefix untouched; it answers
// the request itself when it must be refused. Each stage is a function of
// its own, so that a request pays (under Yaegi) only for the stages it goes
// through: a refused request never builds the forwarding's frame, and the
// other way round.
func serveFullWay(g *Guard, rw http.ResponseWriter, req *http.Request) *websocketWatcher {
	eio := classify(g, rw, req)
	if eio == nil {
		return nil // answered or passed on by classify
	}
	if eio.proven {
		return repairAndForward(g, rw, req, eio)
	}
	if p := findProblem(g, req, eio); p != nil {
		atomic.AddInt64(&g.otherRequests, 1)
		reject(g, rw, req, p, p.status, describeRejection[p](g, req, eio), "")
		return nil
	}
	return repairAndForward(g, rw, req, eio)
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
	prefix, missingSlash, isEngineIO := matchEngineIOPath(g.paths, path)
	// The client bundle the Socket.IO server serves is a plain download,
	// unless its query carries Engine.IO's keys (a server with serveClient
	// off hands it to Engine.IO).
	plainBundle := len(path) > len(prefix) && g.clientBundles[path[len(prefix):]] && !carriesEngineIOKeys(req)
	if !isEngineIO || plainBundle || path == g.inspectPath && req.Method == http.MethodGet ||
		g.fallback || req.Method == http.MethodOptions {
		classifyOther(g, rw, req, path, isEngineIO, plainBundle)
		return nil
	}
	return readEngineIORequest(g, req, missingSlash) // counted where it is refused or forwarded
}

// classifyOther serves what classify does not read in full: what is no
// Engine.IO request (passed on untouched; an escaped Engine.IO path
// refused), the client bundle (passed on), the inspection, fallback mode's
// answer, and a CORS preflight (the server's CORS layer's business).
func classifyOther(g *Guard, rw http.ResponseWriter, req *http.Request, path string, isEngineIO, plainBundle bool) {
	switch {
	case !isEngineIO:
		if _, _, decodedIsEngineIO := matchEngineIOPath(g.paths, req.URL.Path); decodedIsEngineIO {
			refuseEscapedPath(g, rw, req) // the server may read it as its path, or not: the guard cannot check it as either
			return
		}
		g.next.ServeHTTP(rw, req)
	case plainBundle:
		g.next.ServeHTTP(rw, req)
	case path == g.inspectPath && req.Method == http.MethodGet:
		serveInspect(g, rw, req)
	case g.fallback:
		atomic.AddInt64(&g.otherRequests, 1)
		rejectMisrouted(g, rw, req)
	default: // OPTIONS
		atomic.AddInt64(&g.otherRequests, 1)
		g.next.ServeHTTP(rw, req)
	}
}

// repairAndForward repairs what a hop stripped, where the request proves
// what it was, counts the request (a handshake in its own counter) and
// forwards it. (Only these
// can need a repair: a poll of an open session, the most common request
// here, skips the call; the Origin is a handshake's.)
func repairAndForward(g *Guard, rw http.ResponseWriter, req *http.Request, eio *engineIORequest) *websocketWatcher {
	if eio.missingSlash || eio.transport == transportWebsocket || g.setMissingOrigin && !eio.hasSID {
		repairs, originWithheld := plannedRepairs(g, req, eio)
		if originWithheld != "" {
			withholdOrigin(g, req, originWithheld)
		}
		applyRepairs(g, rw, req, repairs)
	}
	if eio.transport == transportWebsocket {
		atomic.AddInt64(&g.websocketHandshakes, 1)
		// It leaves with its upgrade headers (usable, or restored by the
		// repair); its answer is evidence about the hops behind Traefik
		// only when it is a handshake every server takes as one.
		// (A GET without a body over HTTP/1.x, as every websocket handshake
		// is: Node's HTTP parser takes an upgrade with a body for a plain
		// request.)
		return watchWebsocket(g, rw, req, req.Method == http.MethodGet && req.ContentLength == 0 && req.ProtoMajor < 2)
	}
	if eio.hasSID {
		atomic.AddInt64(&g.otherRequests, 1)
	} else {
		atomic.AddInt64(&g.pollingHandshakes, 1)
	}
	forwardCaptured(g, rw, req)
	return nil
}

// ---- Fallback mode ----
//
// On the routers that must not receive Socket.IO traffic: the full way
// answers every Engine.IO request with rejectMisrouted.

// fallbackGuard is the handler New builds in fallback mode. Most requests a
// fallback router sees share no prefix with the Engine.IO paths: one
// comparison sends them on (nothing of the guard mode's short way). next
// and commonPrefix are the guard's, copied one selector nearer: reached
// through guard, every request would cost 3 allocations more under Yaegi.
type fallbackGuard struct {
	next         http.Handler
	commonPrefix string
	guard        *Guard
}

func (f *fallbackGuard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if !strings.HasPrefix(req.URL.Path, f.commonPrefix) {
		f.next.ServeHTTP(rw, req)
		return
	}
	if w := serveFullWay(f.guard, rw, req); w != nil { // never in fallback mode: every Engine.IO request is refused there
		f.next.ServeHTTP(w, req)
		finishRefusedWebsocket(f.guard, w)
	}
}
