package interpreted

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// The plugin's request loop as Traefik runs it — interpreted by Yaegi — in
// process, next to the catalog-demo-kind passthrough plugin, to show where
// the time goes (compare with the root package's compiled benchmarks).

type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

var okBackend = http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { rw.WriteHeader(http.StatusOK) })

func interpretedHandler(b *testing.B, module, src string, config map[string]any) http.Handler {
	b.Helper()
	return interpretedHandlerWith(b, module, src, config, okBackend)
}

func interpretedHandlerWith(b *testing.B, module, src string, config map[string]any, next http.Handler) http.Handler {
	b.Helper()
	dir := b.TempDir()
	if err := stack.MountPluginFrom(src, module, dir); err != nil {
		b.Fatal(err)
	}
	p, err := Load(filepath.Join(dir, "plugins-local"), module, "", io.Discard, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	h, err := p.Handler(next, config, "bench@file")
	if err != nil {
		b.Fatal(err)
	}
	return h
}

func benchLoop(b *testing.B, h http.Handler, target string) {
	req := httptest.NewRequest(http.MethodGet, target, nil)
	rw := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(rw, req)
	}
}

func repo(b *testing.B) string {
	tools, err := stack.FindTools()
	if err != nil && tools.Repo == "" {
		b.Fatal(err)
	}
	return tools.Repo
}

const (
	pollingTarget = "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC&t=PaB3x1c"
	webTarget     = "/app/raven/channel/general"
)

func BenchmarkYaegiPassthrough(b *testing.B) {
	src := filepath.Join(repo(b), "e2e", "bench", "passthrough")
	benchLoop(b, interpretedHandler(b, "example.com/passthrough", src, map[string]any{"headers": map[string]any{"X-Demo": "bench"}}), pollingTarget)
}

func BenchmarkYaegiGuardPolling(b *testing.B) {
	benchLoop(b, interpretedHandler(b, stack.PluginModule, repo(b), nil), pollingTarget)
}

func BenchmarkYaegiGuardNonEngineIO(b *testing.B) {
	benchLoop(b, interpretedHandler(b, stack.PluginModule, repo(b), nil), webTarget)
}

func BenchmarkYaegiFallbackNonEngineIO(b *testing.B) {
	benchLoop(b, interpretedHandler(b, stack.PluginModule, repo(b), map[string]any{"mode": "fallback"}), webTarget)
}

func BenchmarkYaegiGuardPollingNoDiagnosis(b *testing.B) {
	benchLoop(b, interpretedHandler(b, stack.PluginModule, repo(b), map[string]any{"diagnoseResponses": false}), pollingTarget)
}

// hugeTarget carries a 1 MiB query (Traefik's default maxHeaderBytes) with
// the Engine.IO keys at its end: what a client can make the guard do.
var hugeTarget = "/socket.io/?" + strings.Repeat("p=1&", (1<<20)/4) + "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"

func BenchmarkYaegiGuardHugeQuery(b *testing.B) {
	benchLoop(b, interpretedHandler(b, stack.PluginModule, repo(b), nil), hugeTarget)
}

func BenchmarkYaegiPassthroughHugeQuery(b *testing.B) {
	src := filepath.Join(repo(b), "e2e", "bench", "passthrough")
	benchLoop(b, interpretedHandler(b, "example.com/passthrough", src, map[string]any{"headers": map[string]any{"X-Demo": "bench"}}), hugeTarget)
}

// ---- With a backend that behaves like Traefik's proxy ----
//
// Traefik's proxy calls Header() several times (copying the backend's
// headers), WriteHeader once and Write at least once for a polling answer,
// and hijacks the connection for a websocket's 101: the cost of watching the
// answer counts only with such a backend (okBackend only calls WriteHeader).

// proxyWriter is the ResponseWriter Traefik's proxy writes to, with Hijack
// (a pipe) for websocket handshakes.
type proxyWriter struct {
	header http.Header
}

func (w *proxyWriter) Header() http.Header         { return w.header }
func (w *proxyWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *proxyWriter) WriteHeader(int)             {}
func (w *proxyWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	client, server := net.Pipe()
	client.Close()
	return server, bufio.NewReadWriter(bufio.NewReader(server), bufio.NewWriter(server)), nil
}

var engineIOPollAnswer = []byte(`40/raven.localhost,{"sid":"lv_VI97HAXpY6yYWAAAC"}`)

// proxyBackend answers as Traefik's proxy would write the Socket.IO
// server's answer: headers copied one by one, status, body; a websocket
// handshake is hijacked (the 101 goes on the raw connection).
var proxyBackend = http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
	if req.Header.Get("Upgrade") != "" {
		if conn, _, err := http.NewResponseController(rw).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	h := rw.Header()
	h.Set("Content-Type", "text/plain; charset=UTF-8")
	rw.Header().Set("Content-Length", "52")
	rw.Header().Set("Date", "Thu, 26 Nov 2026 12:00:00 GMT")
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(engineIOPollAnswer)
})

// The Frappe recipe's configuration, which the cost targets are measured with.
var frappeRecipe = map[string]any{"setMissingOrigin": "true", "eioVersions": "4"}

func proxyLoop(b *testing.B, h http.Handler, method, target string, headers map[string]string) {
	attackLoop(b, h, method, target, headers, "")
}

// attackLoop is proxyLoop with a Host of the caller's ("" for the usual one).
func attackLoop(b *testing.B, h http.Handler, method, target string, headers map[string]string, host string) {
	req := httptest.NewRequest("GET", target, nil)
	req.Method = method // any token, as Go's server accepts
	req.Host = "v2.sysmayal.cloud"
	if host != "" {
		req.Host = host
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// The request is reused: what a repair set on it (the Origin) goes,
		// so that every round is the request as the client sent it.
		delete(req.Header, "Origin")
		h.ServeHTTP(&proxyWriter{header: http.Header{}}, req)
	}
}

func passthroughHandler(b *testing.B) http.Handler { return passthroughHandlerWith(b, proxyBackend) }

func passthroughHandlerWith(b *testing.B, next http.Handler) http.Handler {
	src := filepath.Join(repo(b), "e2e", "bench", "passthrough")
	return interpretedHandlerWith(b, "example.com/passthrough", src, map[string]any{"headers": map[string]any{"X-Demo": "bench"}}, next)
}

// captureHandler is the reference plugin that only captures the answer
// (e2e/bench/capture): the floor under the guard's short way.
func captureHandler(b *testing.B) http.Handler {
	src := filepath.Join(repo(b), "e2e", "bench", "capture")
	return interpretedHandlerWith(b, "example.com/capture", src, nil, proxyBackend)
}

func guardHandler(b *testing.B) http.Handler { return guardHandlerWith(b, proxyBackend) }

func guardHandlerWith(b *testing.B, next http.Handler) http.Handler {
	return interpretedHandlerWith(b, stack.PluginModule, repo(b), frappeRecipe, next)
}

var wsHeaders = map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}

const (
	pollWithSID    = "/socket.io/?EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC"
	pollAppFirst   = "/socket.io/?token=abc&room=doc%3ARaven&EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC"
	pollHandshake  = "/socket.io/?EIO=4&transport=polling&t=PaB3x1c"
	wsUpgradeOfSID = "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC"
)

func BenchmarkProxyPassthroughPollGET(b *testing.B) {
	proxyLoop(b, passthroughHandler(b), "GET", pollWithSID, nil)
}
func BenchmarkProxyCaptureOnlyPollGET(b *testing.B) {
	proxyLoop(b, captureHandler(b), "GET", pollWithSID, nil)
}
func BenchmarkProxyGuardPollGET(b *testing.B) { proxyLoop(b, guardHandler(b), "GET", pollWithSID, nil) }

func BenchmarkProxyGuardPollGETAppParamsFirst(b *testing.B) {
	proxyLoop(b, guardHandler(b), "GET", pollAppFirst, nil)
}
func BenchmarkProxyPassthroughPollPOST(b *testing.B) {
	proxyLoop(b, passthroughHandler(b), "POST", pollWithSID, nil)
}
func BenchmarkProxyGuardPollPOST(b *testing.B) {
	proxyLoop(b, guardHandler(b), "POST", pollWithSID, nil)
}
func BenchmarkProxyPassthroughHandshake(b *testing.B) {
	proxyLoop(b, passthroughHandler(b), "GET", pollHandshake, nil)
}
func BenchmarkProxyGuardHandshake(b *testing.B) {
	proxyLoop(b, guardHandler(b), "GET", pollHandshake, nil)
}

// BenchmarkProxyHandshakeFloor is the polling handshake through the floor
// make bench measures the guard's against (stack.WriteHandshakeFloor): the
// guard cut down to its recognition of the handshake (the polling
// expression, its sid group unmatched), the Origin repair and the capture.
func BenchmarkProxyHandshakeFloor(b *testing.B) {
	dir := filepath.Join(b.TempDir(), "floor")
	if err := stack.WriteHandshakeFloor(repo(b), dir); err != nil {
		b.Fatal(err)
	}
	proxyLoop(b, interpretedHandlerWith(b, stack.HandshakeFloorModule, dir, frappeRecipe, proxyBackend), "GET", pollHandshake, nil)
}
func BenchmarkProxyPassthroughWebsocketHandshake(b *testing.B) {
	proxyLoop(b, passthroughHandler(b), "GET", wsUpgradeOfSID, wsHeaders)
}
func BenchmarkProxyGuardWebsocketHandshake(b *testing.B) {
	proxyLoop(b, guardHandler(b), "GET", wsUpgradeOfSID, wsHeaders)
}
