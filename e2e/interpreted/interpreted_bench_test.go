package interpreted

import (
	"io"
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
	dir := b.TempDir()
	if err := stack.MountPluginFrom(src, module, dir); err != nil {
		b.Fatal(err)
	}
	p, err := Load(filepath.Join(dir, "plugins-local"), module, "", io.Discard, io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	h, err := p.Handler(okBackend, config, "bench@file")
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
