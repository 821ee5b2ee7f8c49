package socketioguard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
)

// ---- Forward and diagnose ----
//
// The request leaves for the backend; the answer to a poll or a polling
// handshake is captured whole by a compiled writer and sent on (the short
// way's cost), the answer to a websocket handshake (or to a request that
// asked for 100 Continue) is watched by an interpreted writer that lets it
// pass as it comes. Either reads the answer only where its status says it
// may tell what broke.
//
// Under Yaegi, every call from Traefik's proxy into an interpreted method
// goes through reflect, and every field set and every expression of a
// function costs each request: the watchers embed the client's writer (its
// Header and Write need no interpreted call), override only WriteHeader
// (and Hijack, for websockets), and the reading of an answer lives out of
// the functions the common answer goes through.

// forwardWatched forwards a request of the full way.
func forwardWatched(g *Guard, rw http.ResponseWriter, req *http.Request, websocket, upgradeForwarded bool) {
	if websocket {
		forwardWebsocket(g, rw, req, upgradeForwarded)
		return
	}
	forwardCaptured(g, rw, req)
}

// forwardCaptured forwards a poll or a polling handshake and sends the
// answer on. The answer is captured by a compiled writer (httptest's
// recorder) rather than watched through an interpreted one, which costs a
// poll about 5 % more throughput inside Traefik (measured): an Engine.IO
// polling answer is one complete payload (bounded by the server's
// maxPayload), so holding it until it is complete delays nothing. A request
// with Expect (100-continue) is watched instead: the server's 100 Continue
// must reach the client at once, and a recorder would take it for the
// answer's status.
func forwardCaptured(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if !g.settings.diagnoseResponses || req.Header["Expect"] != nil {
		forwardPoll(g, rw, req)
		return
	}
	header := rw.Header()
	var before http.Header // the headers set before forwarding (by the repair, or an earlier middleware)
	if len(header) > 0 {
		before = header.Clone()
	}
	answer := httptest.NewRecorder()
	// The backend's headers go straight into rw's. (HeaderMap is deprecated
	// for reading a handler's result; setting it is the one way to give the
	// recorder rw's own header map, which spares copying them afterwards.)
	answer.HeaderMap = header
	g.next.ServeHTTP(answer, req)
	if answer.Code == http.StatusOK && (req.Method == http.MethodPost || g.settings.engineIOContentTypes[header.Get("Content-Type")]) {
		_, _ = answer.Body.WriteTo(rw) // the 200 goes out with the first byte
		return
	}
	sendCapturedAnswer(g, rw, req, answer, before)
}

// sendCapturedAnswer sends a captured answer that is not the usual one on,
// through the same reading as a held one.
func sendCapturedAnswer(g *Guard, rw http.ResponseWriter, req *http.Request, answer *httptest.ResponseRecorder, before http.Header) {
	sendHeldAnswer(g, req, &heldAnswer{status: answer.Code, client: rw, held: answer}, before, nil)
}

// forwardPoll forwards a poll or a polling handshake through the watcher.
func forwardPoll(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if !g.settings.diagnoseResponses {
		g.next.ServeHTTP(rw, req)
		return
	}
	var headersBefore http.Header // set by the repair or an earlier middleware
	if header := rw.Header(); len(header) > 0 {
		headersBefore = header.Clone()
	}
	w := &answerWatcher{ResponseWriter: rw, passing200: g.settings.engineIOContentTypes, anyPasses200: req.Method == http.MethodPost}
	g.next.ServeHTTP(w, req)
	if w.answer.held != nil {
		sendHeldAnswer(g, req, &w.answer, headersBefore, nil)
	}
}

// forwardWebsocket forwards a websocket handshake. upgradeForwarded: it
// leaves Traefik as one every server takes as one (with usable upgrade
// headers, as a GET without a body over HTTP/1.x: see repairAndForward),
// which makes a plain refusal of it evidence of a hop behind Traefik.
func forwardWebsocket(g *Guard, rw http.ResponseWriter, req *http.Request, upgradeForwarded bool) {
	if !g.settings.diagnoseResponses {
		g.next.ServeHTTP(rw, req)
		return
	}
	var headersBefore http.Header
	if header := rw.Header(); len(header) > 0 {
		headersBefore = header.Clone()
	}
	w := &websocketWatcher{ResponseWriter: rw, guard: g, upgradeForwarded: upgradeForwarded}
	g.next.ServeHTTP(w, req) // for a 101, returns when the websocket closes
	if w.hijacked {
		return
	}
	atomic.AddInt64(&g.counters.websocketFailed, 1) // answered without a 101
	if w.answer.held != nil {
		sendHeldAnswer(g, req, &w.answer, headersBefore, w)
	}
}

// answerWatcher watches the answer to a poll or a polling handshake: a 200
// passes at once when its Content-Type is one of passing200 (Engine.IO's
// polling answers), or whatever it is when anyPasses200 (a POST's "ok").
type answerWatcher struct {
	// ResponseWriter is the client's writer; once an answer is held, the
	// recorder that holds it.
	http.ResponseWriter
	passing200   map[string]bool
	anyPasses200 bool
	answer       heldAnswer
}

// WriteHeader passes the common answer on; holdAnswer decides on the rest.
func (w *answerWatcher) WriteHeader(status int) {
	if status == 200 && (w.anyPasses200 || w.passing200[w.ResponseWriter.Header().Get("Content-Type")]) {
		w.ResponseWriter.WriteHeader(status)
		return
	}
	w.ResponseWriter = holdAnswer(&w.answer, w.ResponseWriter, status)
}

// websocketWatcher watches the answer to a websocket handshake: Traefik's
// proxy hijacks the connection for a 101 (Hijack); any other answer is held.
type websocketWatcher struct {
	http.ResponseWriter
	guard            *Guard
	upgradeForwarded bool
	answer           heldAnswer
	// hijackAttempted / hijacked / hijackFailed: Traefik's proxy asked the
	// guard for the connection (it got a 101), and whether the writer below
	// handed it over.
	hijackAttempted, hijacked, hijackFailed bool
}

func (w *websocketWatcher) WriteHeader(status int) {
	w.ResponseWriter = holdAnswer(&w.answer, w.ResponseWriter, status)
}

// Hijack hands the client connection to Traefik's proxy for a 101 upgrade.
func (w *websocketWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijackAttempted = true
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		w.hijackFailed = true // the writer below cannot hand the connection over
		return conn, brw, err
	}
	w.hijacked = true
	atomic.AddInt64(&w.guard.counters.websocketUpgrades, 1) // now, not when the websocket closes
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach the client's writer (Flush,
// in compiled Go; under Yaegi an interpreted writer offers compiled code
// only ResponseWriter and Hijacker, which Engine.IO answers do not miss).
func (w *answerWatcher) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// heldAnswer is an answer a watcher holds to read it.
type heldAnswer struct {
	status int
	client http.ResponseWriter        // the client's writer
	held   *httptest.ResponseRecorder // the answer, or nil
}

// holdAnswer returns the writer the rest of the answer goes to: the
// client's for an informational 1xx (the proxy relays 100 Continue and 103
// Early Hints as they come) or a superfluous call, otherwise a recorder that
// holds it, its headers staying where they were set.
func holdAnswer(a *heldAnswer, current http.ResponseWriter, status int) http.ResponseWriter {
	if status < 200 || a.held != nil {
		current.WriteHeader(status)
		return current
	}
	a.status = status
	a.client = current
	a.held = httptest.NewRecorder()
	a.held.HeaderMap = current.Header()
	return a.held
}

// sendHeldAnswer sends a held answer on (ws: the websocket's watcher, or
// nil). Engine.IO never answers 404 on its path, and never answers a
// polling GET with a 200 HTML page: those come from another server, and are
// replaced (keeping exactly headersBefore). Everything else is sent on
// unchanged, marked where it proves what broke (readHeldAnswer).
func sendHeldAnswer(g *Guard, req *http.Request, a *heldAnswer, headersBefore http.Header, ws *websocketWatcher) {
	if a.status == http.StatusNotFound ||
		a.status == http.StatusOK && ws == nil && req.Method == http.MethodGet && isHTML(a.client.Header().Get("Content-Type")) {
		replaceWithGuardAnswer(g, req, a, headersBefore, ws != nil)
		return
	}
	body := a.held.Body.Bytes()
	if p, message := readHeldAnswer(g, req, a, body, headersBefore, ws); p != nil {
		markDiagnosis(g, req, a, p, message)
	}
	a.client.WriteHeader(a.status)
	if len(body) > 0 {
		_, _ = a.client.Write(body)
	}
}

func isHTML(contentType string) bool {
	return len(contentType) >= 9 && strings.EqualFold(contentType[:9], "text/html")
}

// readHeldAnswer names a held answer, with the log line's message, only
// where the answer proves what broke. Engine.IO's refusals are 400s (403 for
// allowRequest's); a 500 to a websocket handshake is Traefik's own when the
// connection could not be handed over; a redirect or a 401 with
// WWW-Authenticate is never Engine.IO's — a hop answered in its place (see
// hops.go). Gateway errors and other pages pass unnamed.
func readHeldAnswer(g *Guard, req *http.Request, a *heldAnswer, body []byte, headersBefore http.Header, ws *websocketWatcher) (*problem, string) {
	status := a.status
	switch {
	case status == http.StatusBadRequest || status == http.StatusForbidden || ws != nil && status == http.StatusInternalServerError:
		p := diagnose(status, body, ws)
		if p == &problemSessionUnknown {
			return diagnoseSessionUnknown(g, req, a.client.Header(), headersBefore)
		}
		if p == &problemWebSocketRefused {
			return p, serverMessage(body)
		}
		return p, ""
	case status == http.StatusUnauthorized:
		return diagnoseAuthChallenge(a.client.Header(), headersBefore)
	case redirectStatuses[status]:
		return diagnoseRedirect(req, a.client.Header(), headersBefore, ws != nil)
	}
	return nil, ""
}

// markDiagnosis marks an answer with what it proves, counts and logs it.
func markDiagnosis(g *Guard, req *http.Request, a *heldAnswer, p *problem, message string) {
	a.client.Header().Set(headerDiagnosis, p.id)
	atomic.AddInt64(&g.counters.byProblem[p.index], 1)
	if p.level <= g.log.level {
		g.log.event(p.level, p.id, req, p.hint, message)
	}
}

func replaceWithGuardAnswer(g *Guard, req *http.Request, a *heldAnswer, headersBefore http.Header, websocket bool) {
	h := a.client.Header()
	contentType := h.Get("Content-Type")
	for k := range h {
		delete(h, k)
	}
	for k, values := range headersBefore {
		h[k] = values
	}
	transport := "polling"
	if websocket {
		transport = "websocket"
	}
	detail := fmt.Sprintf("%s %s (%s) was answered %d %q by the service behind this router, which is not a Socket.IO server",
		shortened(req.Method), shortened(req.URL.Path), transport, a.status, shortened(contentType))
	reject(g, a.client, req, &problemBackendNotSocketIO, problemBackendNotSocketIO.status, detail, "")
}

// diagnose names a held refusal, only where the answer proves it (ws: the
// websocket's watcher, or nil for a poll). Engine.IO writes polling refusals
// as JSON {"code":N,...} (400, or 403 for code 4) and websocket refusals raw:
// 400, text/html, the message as body. A handshake that reached engine.io
// without its upgrade headers is handled as a plain request and refused with
// JSON code 3.
func diagnose(status int, body []byte, ws *websocketWatcher) *problem {
	code := engineIOErrorCode(body)
	text := string(bytes.TrimSpace(shortenedBytes(body)))
	websocket := ws != nil
	switch {
	case status == http.StatusInternalServerError: // websocket only: see sendHeldAnswer
		return diagnoseHijack(ws, text)
	case code == 1 || websocket && text == engineIOMessages[1]:
		return &problemSessionUnknown
	case code == 4 || websocket && status == http.StatusBadRequest && text == engineIOMessages[4]:
		return &problemBackendForbidden
	case code == 5 && !websocket:
		return &problemBackendEIOMismatch
	case !websocket || !ws.upgradeForwarded || status != http.StatusBadRequest:
		return nil
	case code == codeBadRequest:
		return &problemUpgradeLostDownstream
	}
	return &problemWebSocketRefused // the server's own reason: ws, python-engineio, engine.io raw
}

// traefikErrorBody is what Traefik's proxy writes with its own 500
// (pkg/proxy/httputil ErrorHandler: the status text, no content type).
const traefikErrorBody = "Internal Server Error"

// diagnoseHijack names Traefik's own 500 to a websocket handshake the guard
// forwarded as an upgrade every server takes as one: the connection could
// not be handed over. (Traefik's proxy answers the same 500 to an upgrade it
// refuses — an Upgrade that is not printable ASCII —, which is why only an
// Upgrade of exactly "websocket" counts as forwarded.)
func diagnoseHijack(ws *websocketWatcher, text string) *problem {
	switch {
	case ws.hijackFailed:
		return &problemHijackFailedBefore // the guard's own Hijack was refused
	case ws.upgradeForwarded && !ws.hijackAttempted && text == traefikErrorBody:
		return &problemHijackFailedAfter
	}
	return nil
}

// maxReadAnswer bounds what the diagnosis reads of a held answer: Engine.IO's
// error bodies are under 60 bytes.
const maxReadAnswer = 512

func shortenedBytes(body []byte) []byte {
	if len(body) > maxReadAnswer {
		return body[:maxReadAnswer]
	}
	return body
}

// serverMessage is the first line of a refusal, at most 120 characters,
// for the log (which quotes and escapes it).
func serverMessage(body []byte) string {
	line, _, _ := strings.Cut(string(bytes.TrimSpace(shortenedBytes(body))), "\n")
	return shortenedTo(line, 120)
}

// engineIOErrorCode returns the "code" of an Engine.IO JSON error, or -1.
func engineIOErrorCode(body []byte) int {
	if len(body) > maxReadAnswer {
		return -1
	}
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return -1
	}
	var answer struct {
		Code *int `json:"code"`
	}
	if err := json.Unmarshal(trimmed, &answer); err != nil || answer.Code == nil {
		return -1
	}
	return *answer.Code
}
