package stack

import (
	"os"
	"path/filepath"
	"strings"
)

// HandshakeFloorModule is the module the handshake floor is loaded under
// (Traefik and Yaegi load each plugin by its module).
const HandshakeFloorModule = "example.com/hsfloor/socketioguard"

// handshakeFloorServeHTTP replaces the guard's ServeHTTP in the floor
// variant: the path lookup and the guard's recognition of a polling
// handshake (its polling expression, matched without the sid group), the
// guard's own Origin repair, and the guard's own capture (heldAnswer, at
// most 64 KiB held) sent on as the reference plugin sends it — no
// counters, method routing, short-way dispatch, copy of the headers set
// before, or diagnosis.
const handshakeFloorServeHTTP = `func (g *Guard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	polling := g.pollingQuery.FindStringSubmatchIndex(req.URL.RawQuery)
	if !g.shortWayPaths[req.URL.Path] || polling == nil || polling[2] >= 0 {
		g.next.ServeHTTP(rw, req)
		return
	}
	repairMissingOrigin(g, rw, req)
	recorder := &httptest.ResponseRecorder{HeaderMap: rw.Header(), Code: http.StatusOK}
	answer := &heldAnswer{ResponseWriter: recorder, recorder: recorder, g: g, req: req, client: rw}
	g.next.ServeHTTP(answer, req)
	if answer.sent {
		return
	}
	if recorder.Code != http.StatusOK {
		rw.WriteHeader(recorder.Code)
	}
	_, _ = rw.Write(answer.body)
}
`

// WriteHandshakeFloor writes the plugin of the repository at repo into
// dir, its ServeHTTP replaced by handshakeFloorServeHTTP, as a local
// plugin of HandshakeFloorModule: the floor the polling handshake is
// measured against (make bench, and e2e/interpreted in process).
func WriteHandshakeFloor(repo, dir string) error {
	return writeServeHTTPVariant(repo, dir, handshakeFloorServeHTTP, HandshakeFloorModule, "socketioguard, handshake floor")
}

// WebsocketMemoryFloorModule is the module the websocket memory floor is
// loaded under.
const WebsocketMemoryFloorModule = "example.com/wsfloor/socketioguard"

// websocketMemoryFloorServeHTTP replaces the guard's ServeHTTP in the
// websocket memory floor (issue 24: "the guard calling next.ServeHTTP from
// its shallowest frame"): the guard's whole way to forwarding a websocket
// handshake, which then goes to next with the client's own writer, not
// through the watcher — nothing of the answer seen, the upgrade not
// counted, no refusal held.
const websocketMemoryFloorServeHTTP = `func (g *Guard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	var w *websocketWatcher
	if g.shortWayPaths[req.URL.Path] {
		w = serveShortWay(g, rw, req)
	} else {
		w = serveOther(g, rw, req)
	}
	if w != nil {
		g.next.ServeHTTP(rw, req)
	}
}
`

// WriteWebsocketMemoryFloor writes the plugin of the repository at repo
// into dir, its ServeHTTP replaced by websocketMemoryFloorServeHTTP, as a
// local plugin of WebsocketMemoryFloorModule: what an open websocket keeps
// measured against it (e2e/interpreted, BenchmarkHeapPerOpenWebsocket).
func WriteWebsocketMemoryFloor(repo, dir string) error {
	return writeServeHTTPVariant(repo, dir, websocketMemoryFloorServeHTTP, WebsocketMemoryFloorModule, "socketioguard, websocket memory floor")
}

// writeServeHTTPVariant writes the plugin's source files (not its tests)
// into dir with the guard's ServeHTTP replaced by serveHTTP, as a local
// plugin of its own module.
func writeServeHTTPVariant(repo, dir, serveHTTP, module, displayName string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(repo, "*.go"))
	if err != nil {
		return err
	}
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		src, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		text := string(src)
		if start := strings.Index(text, "func (g *Guard) ServeHTTP("); start >= 0 {
			end := start + strings.Index(text[start:], "\n}\n") + 3
			text = text[:start] + serveHTTP + text[end:]
			if !strings.Contains(text, "\t\"net/http/httptest\"\n") {
				text = strings.Replace(text, "\t\"net/http\"\n", "\t\"net/http\"\n\t\"net/http/httptest\"\n", 1)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(file)), []byte(text), 0o644); err != nil {
			return err
		}
	}
	return WritePluginModule(dir, module, displayName, "experiment")
}

// WritePluginModule makes a folder of plugin source a local plugin of its
// own module: its go.mod and the manifest Traefik reads.
func WritePluginModule(dir, module, displayName, summary string) error {
	manifest := "displayName: " + displayName + "\ntype: middleware\nimport: " + module + "\nsummary: " + summary + "\ntestData: {}\n"
	if err := os.WriteFile(filepath.Join(dir, ".traefik.yml"), []byte(manifest), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+module+"\n\ngo 1.22\n"), 0o644)
}
