package socketioguard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
)

// sniffLimit bounds how much of a 400 answer is held back to read its
// Engine.IO error; Engine.IO's error bodies are under 60 bytes.
const sniffLimit = 512

type answerState int

const (
	awaitingHeader answerState = iota
	passingThrough             // the backend's answer goes to the client as it comes
	replacing                  // the backend is not Socket.IO: its answer is dropped
	sniffing                   // a 400: held back (up to sniffLimit) to read its code
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

	state   answerState
	status  int
	sniffed []byte
}

func newAnswerWatcher(g *Guard, rw http.ResponseWriter, req *http.Request, websocket bool) *answerWatcher {
	w := &answerWatcher{guard: g, rw: rw, req: req, websocket: websocket}
	if len(rw.Header()) > 0 {
		w.headersBefore = rw.Header().Clone()
	}
	if websocket {
		w.upgradeForwarded = headerHasToken(req.Header, "Connection", "upgrade") && headerHasToken(req.Header, "Upgrade", "websocket")
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

// judge recognises the web app (or any non-Engine.IO server) answering:
// Engine.IO never answers 404 on its path, and never answers a polling
// request with HTML, except "ok" (200 text/html) to a polling POST. Gateway
// errors (5xx) are the hop's own answer and are left alone; Engine.IO's
// refused upgrades are text/html 400s.
func (w *answerWatcher) judge(status int) answerState {
	switch {
	case status == http.StatusNotFound:
		return replacing
	case status == http.StatusBadRequest:
		return sniffing
	case w.websocket || status >= 500 || w.req.Method == http.MethodPost && status == http.StatusOK:
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
	conn, brw, err := http.NewResponseController(w.rw).Hijack()
	if err == nil {
		w.state = hijacked
	}
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

// sendSniffed marks a held-back 400 with its diagnosis and sends it unchanged.
func (w *answerWatcher) sendSniffed() {
	w.state = passingThrough
	if p := w.diagnose400(w.sniffed); p != nil {
		w.rw.Header().Set(headerDiagnosis, p.id)
		w.guard.counters.countDiagnosis(p.id)
		w.guard.log.event(p.level, p.id, w.req, p.hint)
	}
	w.rw.WriteHeader(w.status)
	if len(w.sniffed) > 0 {
		_, _ = w.rw.Write(w.sniffed)
	}
	w.sniffed = nil
}

// diagnose400 reads a 400 answer: Engine.IO polling errors are JSON
// {"code":N,...}; refused upgrades are plain text carrying the same message.
func (w *answerWatcher) diagnose400(body []byte) *problem {
	if engineIOErrorCode(body) == 1 || (w.websocket && string(bytes.TrimSpace(body)) == engineIOMessages[1]) {
		return &problemSessionUnknown
	}
	if w.upgradeForwarded {
		return &problemUpgradeLostDownstream
	}
	return nil
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
