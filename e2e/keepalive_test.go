package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestIdleConnectionsAndNodesKeepAlive: the readme's advice on Traefik's
// idle connections to a Node Socket.IO server (Recipes: "Traefik's idle
// connections and Node's keep-alive"), on every Traefik line. Node's own
// HTTP server — Socket.IO's, Frappe's realtime process's — closes an idle
// keep-alive connection 5 s after its last answer (6 s in releases with
// its second of grace, Node 20.20 among them); Traefik keeps one
// 90 s and sends the next request on it. When the server's event loop is
// busy across that moment (a replica every client reconnects to at once),
// the closing timer runs before the request that came in meanwhile is read:
// the connection is reset under it, and Traefik answers 502 — a POST is
// not sent again (a GET would be). Below Node's 5 s (idleConnTimeout 4s)
// Traefik has closed the connection itself and opens a new one: 200. The
// guard, on both routers, passes the 502 on unnamed (from inside Traefik
// it cannot tell it from a server that died mid-request).
func TestIdleConnectionsAndNodesKeepAlive(t *testing.T) {
	onTraefikLines(t, everyTraefikLine, idleConnectionsMeetKeepAlive)
}

func idleConnectionsMeetKeepAlive(t *testing.T, line string) {
	e := newEnv(t)
	port, err := stack.FreePort()
	e.must(err)
	node, err := e.st.Start("keepalive"+line, nil, e.st.Tools.Node, filepath.Join(e.st.Tools.NodeDir, "keepalive.js"), "--port", fmt.Sprint(port))
	e.must(err)
	e.must(stack.WaitTCP(node, stack.Addr(port), 10*time.Second))
	server := fmt.Sprintf("http://%s", stack.Addr(port))
	tr, err := e.st.StartTraefik(stack.TraefikOptions{Line: line, Name: "traefik-keepalive" + line,
		EntryPoints: []string{"idle90s", "idle4s"}, Routers: []string{"sio-idle90s@file", "sio-idle4s@file"},
		Dynamic: fmt.Sprintf(`
http:
  middlewares:
    sio-guard:
      plugin:
        socketioguard: {setMissingOrigin: true, eioVersions: "4"}
  routers:
    sio-idle90s:
      rule: PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [idle90s]
      middlewares: [sio-guard]
      service: node-idle90s
    sio-idle4s:
      rule: PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [idle4s]
      middlewares: [sio-guard]
      service: node-idle4s
  services:
    node-idle90s:
      loadBalancer:
        servers: [{url: %[1]s}]
    node-idle4s:
      loadBalancer:
        serversTransport: idle4s
        servers: [{url: %[1]s}]
  serversTransports:
    idle4s:
      forwardingTimeouts: {idleConnTimeout: 4s}
`, server)})
	e.must(err)
	const poll = "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"
	postBoth := func() map[string]answer { // at once through both entrypoints (a failed POST: status 0)
		got := map[string]answer{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, ep := range []string{"idle90s", "idle4s"} {
			wg.Add(1)
			go func(ep string) {
				defer wg.Done()
				a, err := postPoll(tr.URL(ep) + poll)
				if err != nil {
					t.Errorf("POST through %s: %v", ep, err)
				}
				mu.Lock()
				got[ep] = a
				mu.Unlock()
			}(ep)
		}
		wg.Wait()
		return got
	}
	for ep, a := range postBoth() { // each service now keeps one idle connection to the server
		if a.Status != 200 || a.Body != "ok" {
			t.Fatalf("first POST through %s: %d %q", ep, a.Status, a.Body)
		}
	}
	idle := time.Now()
	// 4.5 s later — after Traefik closed the connection it keeps 4 s, before
	// Node closes the other (5 s, or 6 s) — the server's event loop is kept
	// busy for 2 s, past both moments Node may close it, and both POSTs
	// arrive while it is.
	time.Sleep(4500 * time.Millisecond)
	if a := get(t, server+"/stall?ms=2000", nil); a.Status != 200 || a.Body != "stalling" {
		t.Fatalf("stall: %d %q", a.Status, a.Body)
	}
	if late := time.Since(idle); late > 4900*time.Millisecond {
		t.Fatalf("the stall began %v after the last answers, too late to come before Node's close (5 s): this machine was too slow for the test", late)
	}
	got := postBoth()
	t.Logf("POST during the stall: idleConnTimeout 90s (Traefik's default) %d %q, 4s %d %q", got["idle90s"].Status, got["idle90s"].Body, got["idle4s"].Status, got["idle4s"].Body)
	if a := got["idle90s"]; a.Status != 502 || a.Header.Get("X-Socketio-Guard-Diagnosis") != "" || a.Header.Get("X-Socketio-Guard-Error") != "" {
		t.Errorf("with Traefik's default idle timeout: %d (diagnosis %q, error %q), want Traefik's 502, unnamed",
			a.Status, a.Header.Get("X-Socketio-Guard-Diagnosis"), a.Header.Get("X-Socketio-Guard-Error"))
	}
	if a := got["idle4s"]; a.Status != 200 || a.Body != "ok" {
		t.Errorf("with idleConnTimeout 4s: %d %q, want 200 \"ok\"", a.Status, a.Body)
	}
}

// postPoll POSTs a poll's data ("40") as its own client and reads the answer.
func postPoll(url string) (answer, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader("40"))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return answer{resp.StatusCode, resp.Header, string(body)}, err
}
