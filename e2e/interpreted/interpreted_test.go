package interpreted

import (
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// Both plugins the benchmarks interpret load and serve a request.
func TestLoadsThePluginsTheBenchmarksUse(t *testing.T) {
	tools, err := stack.FindTools()
	if err != nil && tools.Repo == "" {
		t.Fatal(err)
	}
	// The experiments' variants of the guard (make bench, make instructions,
	// BenchmarkHeapPerOpenWebsocket): the working tree's source with its
	// ServeHTTP replaced, which must still load and serve.
	handshakeFloor, websocketFloor := filepath.Join(t.TempDir(), "hsfloor"), filepath.Join(t.TempDir(), "wsfloor")
	if err := stack.WriteHandshakeFloor(tools.Repo, handshakeFloor); err != nil {
		t.Fatal(err)
	}
	if err := stack.WriteWebsocketMemoryFloor(tools.Repo, websocketFloor); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		module, src string
		config      map[string]any
		target      string
		want        int
	}{
		{stack.PluginModule, tools.Repo, nil, "/socket.io/", http.StatusBadRequest},
		{stack.PluginModule, tools.Repo, map[string]any{"mode": "fallback"}, "/socket.io/?EIO=4&transport=polling", 421},
		{"example.com/passthrough", filepath.Join(tools.Repo, "e2e", "bench", "passthrough"), map[string]any{"headers": map[string]any{"X-Demo": "x"}}, "/", http.StatusOK},
		{"example.com/capture", filepath.Join(tools.Repo, "e2e", "bench", "capture"), nil, "/socket.io/?EIO=4&transport=polling", http.StatusOK},
		{stack.HandshakeFloorModule, handshakeFloor, nil, "/socket.io/?EIO=4&transport=polling", http.StatusOK},
		{stack.WebsocketMemoryFloorModule, websocketFloor, nil, "/socket.io/", http.StatusBadRequest},
	}
	for _, c := range cases {
		dir := t.TempDir()
		if err := stack.MountPluginFrom(c.src, c.module, dir); err != nil {
			t.Fatal(err)
		}
		p, err := Load(filepath.Join(dir, "plugins-local"), c.module, "", io.Discard, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		h, err := p.Handler(okBackend, c.config, "test@file")
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, c.target, nil))
		if rec.Code != c.want {
			t.Errorf("%s %v %s: %d, want %d", c.module, c.config, c.target, rec.Code, c.want)
		}
	}
}
