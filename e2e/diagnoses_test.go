package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestDiagnosesOnTheRealStack: each of the guard's diagnoses on a real
// Traefik in front of the Frappe-like Socket.IO 4.8 server, named only where
// the answer proves it — and the answers themselves unchanged.
func TestDiagnosesOnTheRealStack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	refusing := e.realtimeWith("refusing", stack.RealtimeOptions{ServerIP: stack.Addr(e.sessions().Port), RefuseRequests: true})
	tr, err := e.st.StartTraefik(stack.TraefikOptions{
		EntryPoints:  []string{"guard", "forbidden", "culpritbefore", "culpritafter"},
		LocalPlugins: map[string]string{"nohijack": filepath.Join(e.st.Tools.Repo, "e2e", "plugins", "nohijack")},
		Routers:      []string{"guard@file", "forbidden@file", "culpritbefore@file", "culpritafter@file"},
		Dynamic: fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: {setMissingOrigin: true, logLevel: warn}
    nohijack:
      plugin:
        nohijack: {}
  services:
    realtime: {loadBalancer: {servers: [{url: %s}]}}
    refusing: {loadBalancer: {servers: [{url: %s}]}}
  routers:
    guard: {rule: "PathPrefix(%[4]s)", entryPoints: [guard], middlewares: [frappe-site, sio-guard], service: realtime}
    forbidden: {rule: "PathPrefix(%[4]s)", entryPoints: [forbidden], middlewares: [frappe-site, sio-guard], service: refusing}
    culpritbefore: {rule: "PathPrefix(%[4]s)", entryPoints: [culpritbefore], middlewares: [frappe-site, nohijack, sio-guard], service: realtime}
    culpritafter: {rule: "PathPrefix(%[4]s)", entryPoints: [culpritafter], middlewares: [frappe-site, sio-guard, nohijack], service: realtime}
`, frappeSiteMiddleware, realtimeURL(rt), realtimeURL(refusing), "`/socket.io`"),
	})
	e.must(err)

	t.Run("a bad Sec-WebSocket-Key is the server's refusal, not a lost upgrade", func(t *testing.T) {
		a := rawUpgrade(t, tr.Ports["guard"], "EIO=4&transport=websocket", "not-a-key")
		if a.Status != 400 || a.Header.Get("X-Socketio-Guard-Diagnosis") != "websocket-refused" {
			t.Fatalf("answer %d %q, diagnosis %q", a.Status, a.Body, a.Header.Get("X-Socketio-Guard-Diagnosis"))
		}
		if strings.TrimSpace(a.Body) != "Missing or invalid Sec-WebSocket-Key header" {
			t.Errorf("ws refused with %q", a.Body)
		}
		expectLog(t, tr, "level=warn", "event=websocket-refused", `message="Missing or invalid Sec-WebSocket-Key header"`)
	})
	t.Run("the guard alone still completes the 101", func(t *testing.T) {
		ws := dialWebsocket(t, tr.URL("guard"), "EIO=4&transport=websocket", nil)
		if ws.Status != 101 || !strings.HasPrefix(ws.Body, "0{") {
			t.Errorf("direct websocket: %d %q", ws.Status, ws.Body)
		}
	})
	t.Run("EIO=3 to a server without allowEIO3", func(t *testing.T) {
		a := get(t, tr.URL("guard")+"/socket.io/?EIO=3&transport=polling", nil)
		if a.Status != 400 || a.Header.Get("X-Socketio-Guard-Diagnosis") != "backend-eio-mismatch" || !strings.Contains(a.Body, `"code":5`) {
			t.Errorf("answer %d %q, diagnosis %q", a.Status, a.Body, a.Header.Get("X-Socketio-Guard-Diagnosis"))
		}
	})
	t.Run("allowRequest refuses a polling handshake", func(t *testing.T) {
		a := get(t, tr.URL("forbidden")+"/socket.io/?EIO=4&transport=polling", nil)
		if a.Status != 403 || a.Header.Get("X-Socketio-Guard-Diagnosis") != "backend-forbidden" || !strings.Contains(a.Body, `"code":4`) {
			t.Errorf("answer %d %q, diagnosis %q", a.Status, a.Body, a.Header.Get("X-Socketio-Guard-Diagnosis"))
		}
	})
	t.Run("allowRequest refuses a websocket", func(t *testing.T) {
		a := rawUpgrade(t, tr.Ports["forbidden"], "EIO=4&transport=websocket", "dGhlIHNhbXBsZSBub25jZQ==")
		if a.Status != 400 || a.Header.Get("X-Socketio-Guard-Diagnosis") != "backend-forbidden" || strings.TrimSpace(a.Body) != "Forbidden" {
			t.Errorf("answer %d %q, diagnosis %q", a.Status, a.Body, a.Header.Get("X-Socketio-Guard-Diagnosis"))
		}
	})
	t.Run("a middleware without Hijack before the guard", func(t *testing.T) {
		a := rawUpgrade(t, tr.Ports["culpritbefore"], "EIO=4&transport=websocket", "dGhlIHNhbXBsZSBub25jZQ==")
		if a.Status != 500 || a.Header.Get("X-Socketio-Guard-Diagnosis") != "hijack-failed" {
			t.Errorf("answer %d %q, diagnosis %q", a.Status, a.Body, a.Header.Get("X-Socketio-Guard-Diagnosis"))
		}
		expectLog(t, tr, "level=error", "event=hijack-failed", "BEFORE socketioguard")
	})
	t.Run("a middleware without Hijack after the guard", func(t *testing.T) {
		a := rawUpgrade(t, tr.Ports["culpritafter"], "EIO=4&transport=websocket", "dGhlIHNhbXBsZSBub25jZQ==")
		if a.Status != 500 || a.Header.Get("X-Socketio-Guard-Diagnosis") != "hijack-failed" {
			t.Errorf("answer %d %q, diagnosis %q", a.Status, a.Body, a.Header.Get("X-Socketio-Guard-Diagnosis"))
		}
		expectLog(t, tr, "level=error", "event=hijack-failed", "AFTER socketioguard")
	})
	t.Run("a single server restarted under a polling client", func(t *testing.T) {
		sid, _ := handshake(t, tr.URL("guard"), nil)
		restarted, err := rt.Restart(e.st, "realtime-restarted")
		e.must(err)
		defer restarted.Stop()
		var a answer
		for i := 0; i < 50; i++ { // Traefik's connection to the old process must notice it is gone
			a = get(t, tr.URL("guard")+"/socket.io/?EIO=4&transport=polling&sid="+sid, nil)
			if a.Status != http.StatusBadGateway {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if a.Status != 400 || a.Header.Get("X-Socketio-Guard-Diagnosis") != "session-unknown" {
			t.Fatalf("answer %d %q, diagnosis %q", a.Status, a.Body, a.Header.Get("X-Socketio-Guard-Diagnosis"))
		}
		expectLog(t, tr, "event=session-unknown", "a restart", "--replicas-check")
	})
}

// rawUpgrade sends a websocket handshake with intact upgrade headers and the
// given key, as written on the wire (a client library would fix the key).
func rawUpgrade(t *testing.T, port int, query, key string) answer {
	t.Helper()
	conn, err := net.DialTimeout("tcp", stack.Addr(port), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET /socket.io/?%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nCookie: sid=e2e-session\r\n\r\n", query, port, key)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer resp.Body.Close()
	body := ""
	if resp.StatusCode != http.StatusSwitchingProtocols {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		body = string(b)
	}
	return answer{Status: resp.StatusCode, Header: resp.Header, Body: body}
}
