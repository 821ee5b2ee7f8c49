package stack

import (
	"fmt"
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
	return writeServeHTTPVariant(repo, dir, HandshakeFloorModule, "socketioguard, handshake floor", func(string) (string, error) {
		return handshakeFloorServeHTTP, nil
	})
}

// WebsocketMemoryFloorModule is the module the websocket memory floor is
// loaded under.
const WebsocketMemoryFloorModule = "example.com/wsfloor/socketioguard"

// WriteWebsocketMemoryFloor writes the plugin of the repository at repo
// into dir as a local plugin of WebsocketMemoryFloorModule, its ServeHTTP
// the guard's own but for the forwarding of a websocket handshake: with the
// client's own writer instead of the watcher (issue 24: "the guard calling
// next.ServeHTTP from its shallowest frame") — the guard's whole way to
// forwarding it, nothing of the answer seen, the upgrade not counted, no
// refusal held. What an open websocket keeps is measured against it
// (e2e/interpreted, BenchmarkHeapPerOpenWebsocket).
func WriteWebsocketMemoryFloor(repo, dir string) error {
	return writeServeHTTPVariant(repo, dir, WebsocketMemoryFloorModule, "socketioguard, websocket memory floor", func(serveHTTP string) (string, error) {
		const watched, finish, unwatched = "g.next.ServeHTTP(w, req)", "finishRefusedWebsocket(g, w)", "g.next.ServeHTTP(rw, req)"
		start, end := strings.Index(serveHTTP, watched), strings.Index(serveHTTP, finish)
		if start < 0 || end < start {
			return "", fmt.Errorf("the guard's ServeHTTP no longer forwards a websocket handshake by %s and %s: WriteWebsocketMemoryFloor needs to follow it", watched, finish)
		}
		return serveHTTP[:start] + unwatched + serveHTTP[end+len(finish):], nil
	})
}

// writeServeHTTPVariant writes the plugin's source files (not its tests)
// into dir with the guard's ServeHTTP rewritten by rewrite (which gets the
// function's source), as a local plugin of its own module.
func writeServeHTTPVariant(repo, dir, module, displayName string, rewrite func(serveHTTP string) (string, error)) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(repo, "*.go"))
	if err != nil {
		return err
	}
	rewritten := false
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
			variant, err := rewrite(text[start:end])
			if err != nil {
				return err
			}
			text, rewritten = text[:start]+variant+text[end:], true
			if !strings.Contains(text, "\t\"net/http/httptest\"\n") {
				text = strings.Replace(text, "\t\"net/http\"\n", "\t\"net/http\"\n\t\"net/http/httptest\"\n", 1)
			}
		}
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(file)), []byte(text), 0o644); err != nil {
			return err
		}
	}
	if !rewritten {
		return fmt.Errorf("no func (g *Guard) ServeHTTP in %s's *.go", repo)
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
