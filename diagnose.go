package socketioguard

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
)

// ---- Forward and diagnose ----
//
// The request leaves for the backend; the answer to a poll or a polling
// handshake is captured (heldAnswer: headers by a compiled recorder, the
// status and the body, up to maxHeldAnswer, by the guard's WriteHeader and
// Write) and sent on (the short way's cost), the answer to a websocket
// handshake is watched by an interpreted writer that hands a 101's
// connection over at once and holds any other answer the same way. An
// informational answer (100 Continue, 103 Early Hints),
// which Traefik's proxy relays as it comes, goes to the client at once
// either way. An answer held past maxHeldAnswer is sent on then, read by
// its beginning, and the rest streams.
//
// Under Yaegi, every call from Traefik's proxy into an interpreted method
// goes through reflect, and every field set and every expression of a
// function costs each request: the writers embed a compiled writer (whose
// Header, and Write of a watched answer, need no interpreted call),
// override only what they must see (WriteHeader and Write of a held
// answer, WriteHeader and Hijack of a watched one), and the reading of an
// answer lives out of the functions the common answer goes through.

// forwardCaptured forwards a poll or a polling handshake and sends the
// answer on (the short way's polling handshake has it written out, for a
// GET: serveShortHandshake; each change here goes there too). The answer
// is captured (a heldAnswer, in httptest's compiled recorder for the
// headers, which are rw's own) rather than passed on as it comes: an
// Engine.IO polling answer is one complete payload, so holding it until it
// is complete delays nothing. An answer that grows past
// maxHeldAnswer is sent on from there as it comes (heldAnswer.Write); an
// informational one goes to the client at once (heldAnswer.WriteHeader).
func forwardCaptured(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if !g.diagnoseResponses {
		g.next.ServeHTTP(rw, req)
		return
	}
	header := rw.Header()
	// The backend's headers go straight into rw's. (HeaderMap is deprecated
	// for reading a handler's result; setting it is the one way to give the
	// recorder rw's own header map, which spares copying them afterwards.)
	recorder := &httptest.ResponseRecorder{HeaderMap: header, Code: http.StatusOK}
	answer := &heldAnswer{ResponseWriter: recorder, recorder: recorder, g: g, req: req, client: rw}
	if len(header) > 0 {
		answer.headersBefore = header.Clone() // set by the repair, or an earlier middleware
	}
	g.next.ServeHTTP(answer, req)
	if answer.sent {
		return // grown past maxHeldAnswer: sent on as it came
	}
	// passesUnread(answer), written out: the call costs a poll 14
	// allocations more under Yaegi (measured).
	if recorder.Code == http.StatusOK && (req.Method == http.MethodPost || g.engineIOContentTypes[header.Get("Content-Type")]) {
		_, _ = rw.Write(answer.body) // the 200 goes out with the first byte
		return
	}
	sendHeldAnswer(answer)
}

// watchWebsocket builds the watcher a websocket handshake is forwarded
// through (from ServeHTTP, the shallowest frame: see there). With
// diagnoseResponses off it reads no answer (holdAnswer sends each on as it
// comes) but still sees the 101, and the handshake still goes back up to
// ServeHTTP: forwarded from here, every frame on the way would stay
// allocated for the websocket's life (4.2 KiB of live heap per open
// websocket in process, against 3.0 with the watcher; measured,
// e2e/interpreted). upgradeForwarded: it leaves Traefik as one every server
// takes as one (with usable upgrade headers, as a GET without a body over
// HTTP/1.x: see repairAndForward), which makes a plain refusal of it
// evidence of a hop behind Traefik.
func watchWebsocket(g *Guard, rw http.ResponseWriter, req *http.Request, upgradeForwarded bool) *websocketWatcher {
	w := &websocketWatcher{ResponseWriter: rw, guard: g, req: req, upgradeForwarded: upgradeForwarded}
	if header := rw.Header(); len(header) > 0 {
		w.headersBefore = header.Clone()
	}
	return w
}

// finishRefusedWebsocket, once the watched handshake's forwarding returned:
// for one answered without a 101, counts it and sends the answer the
// watcher held. (A function of its own: the frame that forwards stays
// allocated for an open websocket's life, and under Yaegi it holds a slot
// for every expression in it, executed or not — measured, about 0.3 KiB
// per open websocket; even the test of hijacked costs every request that
// ServeHTTP serves 2 allocations there.)
func finishRefusedWebsocket(g *Guard, w *websocketWatcher) {
	if w.hijacked {
		return // the websocket was open, and is now closed
	}
	atomic.AddInt64(&g.websocketFailed, 1)
	if w.answer != nil && !w.answer.sent {
		sendHeldAnswer(w.answer)
	}
}

// websocketWatcher watches the answer to a websocket handshake: Traefik's
// proxy hijacks the connection for a 101 (Hijack); any other answer is held.
type websocketWatcher struct {
	http.ResponseWriter
	guard            *Guard
	req              *http.Request
	headersBefore    http.Header
	upgradeForwarded bool
	answer           *heldAnswer
	// hijackAttempted / hijacked / hijackFailed: Traefik's proxy asked the
	// guard for the connection (it got a 101), and whether the writer below
	// handed it over.
	hijackAttempted, hijacked, hijackFailed bool
	// informational: an informational answer went to the client before
	// the answer (see heldAnswer.informational).
	informational bool
}

func (w *websocketWatcher) WriteHeader(status int) {
	w.ResponseWriter = holdAnswer(w, status)
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
	// headersBefore is read only for a refusal: not kept for the websocket's life.
	w.headersBefore = nil
	atomic.AddInt64(&w.guard.websocketUpgrades, 1) // now, not when the websocket closes
	return conn, brw, err
}

// maxHeldAnswer bounds what the guard holds of an answer's body: an answer
// that grows past it is sent on then, read by its beginning as every held
// answer is (maxReadAnswer), and the rest passes to the client as it comes.
// Engine.IO's polling answers are mostly under a kilobyte; a server sends
// one of up to its maxHttpBufferSize (1 MB by default) when packets piled
// up for a client.
const maxHeldAnswer = 64 << 10

// heldAnswer is an answer the guard holds to read it before it is sent on:
// its headers (in a compiled recorder whose header map is the client's, so
// the headers stay where they are set: Header is the recorder's), its status
// (WriteHeader is the guard's, which records it in the recorder) and its
// body up to maxHeldAnswer (Write is the guard's).
type heldAnswer struct {
	// ResponseWriter is the recorder. (An embedded interface: Yaegi v0.15
	// refuses an embedded *httptest.ResponseRecorder beside other fields.)
	http.ResponseWriter
	recorder      *httptest.ResponseRecorder
	body          []byte // the body held (the recorder holds none)
	g             *Guard
	req           *http.Request
	client        http.ResponseWriter // the client's writer
	headersBefore http.Header         // set before forwarding, kept when the guard's own answer replaces this one
	ws            *websocketWatcher   // the websocket's watcher, or nil
	// informational: an informational answer went to the client ahead of
	// this one, and the proxy emptied the header map then — what was set
	// before forwarding (a sticky cookie the load balancer set, too) is gone.
	informational bool
	// sent: the answer grew past maxHeldAnswer and was sent on; the rest of
	// its body goes to rest (the client's writer, or nil when the guard's
	// own answer replaced it).
	sent bool
	rest http.ResponseWriter
}

// Write holds the body until it grows past maxHeldAnswer (one interpreted
// call per Write of Traefik's proxy: a poll's answer comes in one).
func (a *heldAnswer) Write(p []byte) (int, error) {
	if len(a.body)+len(p) > maxHeldAnswer || a.sent {
		return writePastHold(a, p)
	}
	a.body = append(a.body, p...)
	return len(p), nil
}

// WriteString is Write's (the recorder's own would hold the string whole).
func (a *heldAnswer) WriteString(s string) (int, error) { return a.Write([]byte(s)) }

// WriteHeader records the answer's status, but for an informational one,
// which goes to the client at once: Traefik's proxy relays a 100 Continue
// (to a request with Expect) and a 103 Early Hints (which a hop may send
// unasked) as they come, and the recorder would keep the first status it is
// given and drop the answer's own — a 404 or a refusal would reach the
// client as a 200. (One interpreted call per answer: the price of the
// answer's own status; measured, bench/report.md.)
func (a *heldAnswer) WriteHeader(status int) {
	if status < 200 && status != http.StatusSwitchingProtocols {
		a.client.WriteHeader(status)
		a.informational = true
		return
	}
	a.recorder.WriteHeader(status)
}

// writePastHold sends a held answer on when it grows past maxHeldAnswer —
// unread if it is a 200 of Engine.IO's on the short way, through the same
// reading as every held answer otherwise — and the rest of its body after it.
func writePastHold(a *heldAnswer, p []byte) (int, error) {
	if !a.sent {
		a.sent = true
		switch {
		case passesUnread(a):
			_, _ = a.client.Write(a.body)
			a.rest = a.client
		case notEngineIOs(a):
			replaceWhileServerSends(a) // a.rest stays nil: the rest goes nowhere
		default:
			sendHeldAnswer(a)
			a.rest = a.client
		}
		a.body = nil // what was held is sent: nothing more is held
	}
	if a.rest == nil {
		return len(p), nil // the guard's own answer replaced the server's
	}
	return a.rest.Write(p)
}

// passesUnread: a 200 of Engine.IO's to a poll or a polling handshake (its
// polling Content-Type, or any to a POST: "ok"), which the guard sends on
// without reading. (Not a websocket handshake's: a 200 to one is read.)
func passesUnread(a *heldAnswer) bool {
	return a.ws == nil && a.recorder.Code == http.StatusOK &&
		(a.req.Method == http.MethodPost || a.g.engineIOContentTypes[a.client.Header().Get("Content-Type")])
}

// replaceWhileServerSends writes the guard's own answer in place of one the
// server is still sending (to nowhere, until it is done): complete, with
// its length, and flushed, so that the client has it now.
func replaceWhileServerSends(a *heldAnswer) {
	client := a.client
	own := &httptest.ResponseRecorder{HeaderMap: client.Header(), Code: http.StatusOK, Body: new(bytes.Buffer)}
	a.client = own
	replaceWithGuardAnswer(a)
	a.client = client
	client.Header().Set("Content-Length", strconv.Itoa(own.Body.Len()))
	client.WriteHeader(own.Code)
	_, _ = client.Write(own.Body.Bytes())
	_ = http.NewResponseController(client).Flush()
}

// holdAnswer returns the writer the rest of a watched websocket handshake's
// answer goes to: with diagnoseResponses off the client's, each status as it
// comes (nothing is read); once an answer is held, the heldAnswer (whose WriteHeader
// sends an informational 1xx on and drops a superfluous call); before, the
// client's for an informational 1xx (the proxy relays 100 Continue and 103
// Early Hints as they come); otherwise a new heldAnswer (w.answer) that
// holds it, its headers staying where they were set.
func holdAnswer(w *websocketWatcher, status int) http.ResponseWriter {
	if !w.guard.diagnoseResponses {
		w.ResponseWriter.WriteHeader(status) // nothing is read: it goes on as it comes
		return w.ResponseWriter
	}
	if w.answer != nil {
		w.answer.WriteHeader(status)
		return w.answer
	}
	if status < 200 {
		w.informational = true
		w.ResponseWriter.WriteHeader(status)
		return w.ResponseWriter
	}
	recorder := &httptest.ResponseRecorder{HeaderMap: w.ResponseWriter.Header()}
	recorder.WriteHeader(status)
	w.answer = &heldAnswer{ResponseWriter: recorder, recorder: recorder, g: w.guard, req: w.req, client: w.ResponseWriter, headersBefore: w.headersBefore, ws: w, informational: w.informational}
	return w.answer
}

// sendHeldAnswer sends a held answer on. Engine.IO never answers 404 on its
// path, and never answers a polling GET with a 200 HTML page: those come
// from another server, and are replaced (keeping exactly headersBefore).
// Everything else is sent on unchanged, marked where it proves what broke
// (readHeldAnswer).
func sendHeldAnswer(a *heldAnswer) {
	if notEngineIOs(a) {
		replaceWithGuardAnswer(a)
		return
	}
	body := a.body
	if p, message := readHeldAnswer(a, body); p != nil {
		markDiagnosis(a, p, message)
	}
	a.client.WriteHeader(a.recorder.Code)
	if len(body) > 0 {
		_, _ = a.client.Write(body)
	}
}

// notEngineIOs: a held answer no Engine.IO server gives (see sendHeldAnswer).
func notEngineIOs(a *heldAnswer) bool {
	return a.recorder.Code == http.StatusNotFound ||
		a.recorder.Code == http.StatusOK && a.ws == nil && a.req.Method == http.MethodGet && isHTML(a.client.Header().Get("Content-Type"))
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
func readHeldAnswer(a *heldAnswer, body []byte) (*problem, string) {
	status, ws := a.recorder.Code, a.ws
	switch {
	case status == http.StatusBadRequest || status == http.StatusForbidden || ws != nil && status == http.StatusInternalServerError:
		p := diagnose(status, body, ws)
		if p == &problemSessionUnknown {
			if a.informational {
				return p, "an informational answer went ahead of this one, and the proxy dropped the headers set before it: whether the load balancer set its sticky cookie is not known"
			}
			return diagnoseSessionUnknown(a.g, a.req, a.client.Header(), a.headersBefore)
		}
		if p == &problemWebSocketRefused {
			return p, serverMessage(body)
		}
		return p, ""
	case status == http.StatusUnauthorized:
		return diagnoseAuthChallenge(a.client.Header(), a.headersBefore)
	case redirectStatuses[status]:
		return diagnoseRedirect(a.req, a.client.Header(), a.headersBefore, ws != nil)
	}
	return nil, ""
}

// markDiagnosis marks an answer with what it proves, counts and logs it.
func markDiagnosis(a *heldAnswer, p *problem, message string) {
	a.client.Header().Set(headerDiagnosis, p.id)
	atomic.AddInt64(&a.g.byProblem[p.index], 1)
	if p.level <= a.g.log.level {
		a.g.log.event(p.level, p.id, a.req, p.hint, message)
	}
}

func replaceWithGuardAnswer(a *heldAnswer) {
	h := a.client.Header()
	contentType := h.Get("Content-Type")
	for k := range h {
		delete(h, k)
	}
	for k, values := range a.headersBefore {
		h[k] = values
	}
	transport := "polling"
	if a.ws != nil {
		transport = "websocket"
	}
	detail := fmt.Sprintf("%s %s (%s) was answered %d %q by the service behind this router, which is not a Socket.IO server",
		shortened(a.req.Method), shortened(a.req.URL.Path), transport, a.recorder.Code, shortened(contentType))
	reject(a.g, a.client, a.req, &problemBackendNotSocketIO, problemBackendNotSocketIO.status, detail, "")
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
