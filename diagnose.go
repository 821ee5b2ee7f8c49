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
// The request leaves for the backend; the answer is watched (the full way) or
// captured (the short way) and read where it says what broke.

// forwardWatched forwards a request of the full way (and a websocket
// handshake of the short way) through the writer that watches the answer,
// when diagnosis is on. CORS preflights are the server's CORS layer's.
func forwardWatched(g *Guard, rw http.ResponseWriter, req *http.Request, websocket bool) {
	if !g.settings.diagnoseResponses || req.Method == http.MethodOptions {
		g.next.ServeHTTP(rw, req)
		return
	}
	// A websocket handshake that gets here leaves with its upgrade headers
	// (usable, or restored by the repair).
	watcher := newAnswerWatcher(g, rw, req, websocket, websocket)
	g.next.ServeHTTP(watcher, req)
	if watcher.state != passingThrough && watcher.state != hijacked {
		watcher.finish()
	}
}

// forwardCaptured forwards a request of the short way and sends the answer
// on. The answer is captured by a compiled writer (httptest's recorder)
// rather than watched through an interpreted one: under Yaegi every call
// from Traefik's proxy into an interpreted writer goes through reflect. An
// Engine.IO polling answer is one complete payload (bounded by the server's
// maxPayload), so holding it until it is complete delays nothing; the
// answers the guard must read (404, 400, 403, an HTML page to a GET) go
// through the same diagnosis as on the full way.
func forwardCaptured(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if !g.settings.diagnoseResponses {
		g.next.ServeHTTP(rw, req)
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
	// A pre-filter of judge's rule: the usual answers go out here, the
	// others to sendCapturedAnswer, which applies the rule itself.
	if answer.Code == http.StatusOK && (req.Method == http.MethodPost || g.settings.engineIOContentTypes[header.Get("Content-Type")]) {
		_, _ = answer.Body.WriteTo(rw) // the 200 goes out with the first byte
		return
	}
	sendCapturedAnswer(g, rw, req, answer, before)
}

// sendCapturedAnswer sends a captured answer on, through the diagnosis when
// judge would not just pass it.
func sendCapturedAnswer(g *Guard, rw http.ResponseWriter, req *http.Request, answer *httptest.ResponseRecorder, before http.Header) {
	// One condition, not a case list: Yaegi v0.16.1 skips a tagless case
	// whose first expression is false and second true.
	if answer.Code == http.StatusNotFound || answer.Code == http.StatusBadRequest || answer.Code == http.StatusForbidden ||
		answer.Code == http.StatusOK && req.Method == http.MethodGet && isHTML(rw.Header().Get("Content-Type")) {
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

// sniffLimit bounds how much of an error answer is held back to read it;
// Engine.IO's error bodies are under 60 bytes.
const sniffLimit = 512

type answerState int

const (
	awaitingHeader answerState = iota
	passingThrough             // the backend's answer goes to the client as it comes
	replacing                  // the backend is not Socket.IO: its answer is dropped
	sniffing                   // an error: held back (up to sniffLimit) to read what it says
	hijacked                   // a 101: the connection belongs to the proxy now
)

// answerWatcher sits between Traefik's proxy and the client for one Engine.IO
// request. It never buffers a successful answer and hands Hijack straight
// through, so a 101 upgrade completes exactly as without the guard.
type answerWatcher struct {
	guard     *Guard
	rw        http.ResponseWriter
	req       *http.Request
	websocket bool
	// upgradeForwarded: the request left Traefik as a websocket handshake,
	// so a 400 means a hop further down dropped the upgrade.
	upgradeForwarded bool
	// headersBefore are the answer's headers as they were before forwarding
	// (set by the guard or earlier middlewares); an answer the guard replaces
	// keeps exactly these values and none the backend added.
	headersBefore http.Header

	// hijackAttempted / hijackFailed: Traefik's proxy asked the guard for
	// the connection (it got a 101), and whether the writer below refused.
	hijackAttempted, hijackFailed bool

	state   answerState
	status  int
	sniffed []byte
}

func newAnswerWatcher(g *Guard, rw http.ResponseWriter, req *http.Request, websocket, upgradeForwarded bool) *answerWatcher {
	w := &answerWatcher{guard: g, rw: rw, req: req, websocket: websocket, upgradeForwarded: upgradeForwarded}
	if len(rw.Header()) > 0 {
		w.headersBefore = rw.Header().Clone()
	}
	return w
}

func (w *answerWatcher) Header() http.Header { return w.rw.Header() }

// WriteHeader decides, from the status and content type alone, whether the
// answer passes (almost always), is held back to be read (a 400) or is
// replaced (not from Socket.IO). The common case stays short: it runs
// interpreted, on every Engine.IO answer.
func (w *answerWatcher) WriteHeader(status int) {
	if w.state != awaitingHeader || status < 200 {
		w.writeHeaderAgain(status)
		return
	}
	w.status = status
	if w.websocket {
		atomic.AddInt64(&w.guard.counters.websocketFailed, 1) // a 101 never comes here: the proxy hijacks
	}
	w.state = w.judge(status)
	if w.state == passingThrough {
		w.rw.WriteHeader(status)
	}
}

// writeHeaderAgain handles informational statuses (e.g. 103; a 101 never
// comes here: the proxy hijacks) and superfluous calls.
func (w *answerWatcher) writeHeaderAgain(status int) {
	if w.state == awaitingHeader || w.state == passingThrough {
		w.rw.WriteHeader(status) // net/http sends 1xx, or reports the superfluous call
	}
}

// judge decides from the status and content type alone. Engine.IO never
// answers 404 on its path, and never answers a polling request with a 200
// HTML page (its "ok" to a POST aside): those come from another server, and
// are replaced. Its refusals are 400s (403 for allowRequest's), held back to
// be read; so is a 500 to a websocket handshake, which Traefik writes itself
// when the connection could not be handed over. Everything else — gateway
// errors, redirects and 401/403 pages of an authentication layer — is some
// hop's own answer and passes unchanged, unnamed.
func (w *answerWatcher) judge(status int) answerState {
	switch {
	case status == http.StatusNotFound:
		return replacing
	case status == http.StatusBadRequest || status == http.StatusForbidden:
		return sniffing
	case w.websocket && status == http.StatusInternalServerError:
		return sniffing
	case w.websocket || status != http.StatusOK || w.req.Method == http.MethodPost:
		return passingThrough
	case isHTML(w.rw.Header().Get("Content-Type")):
		return replacing
	}
	return passingThrough
}

func isHTML(contentType string) bool {
	return len(contentType) >= 9 && strings.EqualFold(contentType[:9], "text/html")
}

func (w *answerWatcher) Write(b []byte) (int, error) {
	if w.state == passingThrough {
		return w.rw.Write(b)
	}
	return w.writeHeld(b)
}

// writeHeld is Write for every state but passing through.
func (w *answerWatcher) writeHeld(b []byte) (int, error) {
	if w.state == awaitingHeader {
		w.WriteHeader(http.StatusOK)
		if w.state == passingThrough {
			return w.rw.Write(b)
		}
	}
	switch w.state {
	case replacing:
		return len(b), nil
	case sniffing:
		if len(w.sniffed)+len(b) <= sniffLimit {
			w.sniffed = append(w.sniffed, b...)
			return len(b), nil
		}
		// Too large for an Engine.IO error: decide on what we have, then stream.
		w.sendSniffed()
	}
	return w.rw.Write(b)
}

// Flush keeps streaming answers streaming (compiled Traefik; under Yaegi an
// interpreted writer cannot offer Flush, which Engine.IO answers do not need).
func (w *answerWatcher) Flush() {
	if w.state != passingThrough {
		return
	}
	_ = http.NewResponseController(w.rw).Flush()
}

// Hijack hands the client connection to Traefik's proxy for a 101 upgrade.
func (w *answerWatcher) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.hijackAttempted = true
	conn, brw, err := http.NewResponseController(w.rw).Hijack()
	if err != nil {
		w.hijackFailed = true // the writer below cannot hand the connection over
		return conn, brw, err
	}
	w.state = hijacked
	atomic.AddInt64(&w.guard.counters.websocketUpgrades, 1)
	return conn, brw, err
}

// Unwrap lets http.ResponseController reach the writer below.
func (w *answerWatcher) Unwrap() http.ResponseWriter { return w.rw }

// finish runs after the backend's answer is complete.
func (w *answerWatcher) finish() {
	switch w.state {
	case replacing:
		w.replaceWithGuardAnswer()
	case sniffing:
		w.sendSniffed()
	}
}

func (w *answerWatcher) replaceWithGuardAnswer() {
	h := w.rw.Header()
	contentType := h.Get("Content-Type")
	for k := range h {
		delete(h, k)
	}
	for k, values := range w.headersBefore {
		h[k] = values
	}
	transport := "polling"
	if w.websocket {
		transport = "websocket"
	}
	detail := fmt.Sprintf("%s %s (%s) was answered %d %q by the service behind this router, which is not a Socket.IO server",
		w.req.Method, w.req.URL.Path, transport, w.status, contentType)
	w.guard.reject(w.rw, w.req, problemBackendNotSocketIO, problemBackendNotSocketIO.status, detail, problemBackendNotSocketIO.hint)
}

// sendSniffed marks a held-back answer with its diagnosis and sends it unchanged.
func (w *answerWatcher) sendSniffed() {
	w.state = passingThrough
	if p := w.diagnose(w.sniffed); p != nil {
		message := ""
		if p.id == problemWebSocketRefused.id {
			message = serverMessage(w.sniffed)
		}
		w.rw.Header().Set(headerDiagnosis, p.id)
		w.guard.counters.countDiagnosis(p.id)
		w.guard.log.event(p.level, p.id, w.req, p.hint, message)
	}
	w.rw.WriteHeader(w.status)
	if len(w.sniffed) > 0 {
		_, _ = w.rw.Write(w.sniffed)
	}
	w.sniffed = nil
}

// diagnose names a held-back answer, only where the answer proves it.
// Engine.IO writes polling refusals as JSON {"code":N,...} (400, or 403 for
// code 4) and websocket refusals raw: 400, text/html, the message as body.
// A handshake that reached engine.io without its upgrade headers is handled
// as a plain request and refused with JSON code 3.
func (w *answerWatcher) diagnose(body []byte) *problem {
	code := engineIOErrorCode(body)
	text := string(bytes.TrimSpace(body))
	switch {
	case w.status == http.StatusInternalServerError: // websocket only: see judge
		return w.diagnoseHijack(text)
	case code == 1 || w.websocket && text == engineIOMessages[1]:
		return &problemSessionUnknown
	case code == 4 || w.websocket && w.status == http.StatusBadRequest && text == engineIOMessages[4]:
		return &problemBackendForbidden
	case code == 5 && !w.websocket:
		return &problemBackendEIOMismatch
	case !w.websocket || !w.upgradeForwarded || w.status != http.StatusBadRequest:
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
// forwarded as an upgrade: the connection could not be handed over.
func (w *answerWatcher) diagnoseHijack(text string) *problem {
	switch {
	case w.hijackFailed:
		return &problemHijackFailedBefore // the guard's own Hijack was refused
	case w.upgradeForwarded && !w.hijackAttempted && text == traefikErrorBody:
		return &problemHijackFailedAfter
	}
	return nil
}

// serverMessage is the first line of a refusal, at most 120 characters,
// for the log (which quotes and escapes it).
func serverMessage(body []byte) string {
	line, _, _ := strings.Cut(string(bytes.TrimSpace(body)), "\n")
	return shortenedTo(line, 120)
}

// engineIOErrorCode returns the "code" of an Engine.IO JSON error, or -1.
func engineIOErrorCode(body []byte) int {
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
