package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// The suite runs on the main Traefik, v3.7.13 (built as close to the
// release as the Go module proxy allows: the readme's "Which Traefik"); a
// subset runs on v3.6.12 and on the v2.11 line (Yaegi v0.16.1 since
// v2.11.1), each built from the Go module proxy the same way.

// TestMainTraefikIsTheRelease: the binary the suite calls the main Traefik
// says it is v3.7.13, and every other test's Traefik is that one.
func TestMainTraefikIsTheRelease(t *testing.T) {
	tools, err := stack.FindTools()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(tools.Traefik, "version").Output()
	if err != nil || !strings.Contains(string(out), "Version:      "+stack.MainTraefik+"\n") {
		t.Fatalf("%s is not Traefik %s: %v\n%s", tools.Traefik, stack.MainTraefik, err, out)
	}
}

// TestOnOtherTraefikLines runs a subset of the scenarios on v3.6.12 and on
// v2.11.54: the repair behind a stripping nginx, the fallback's 421,
// backend-not-socketio, and a websocket's 101 intact. (The hardening pass's
// attacks run on every line too: hardening_test.go.)
func TestOnOtherTraefikLines(t *testing.T) {
	for _, line := range []struct{ line, version string }{{"v3.6", "v3.6.12"}, {"v2", "v2.11."}} {
		line := line
		t.Run(line.version, func(t *testing.T) {
			t.Parallel()
			runSubset(t, line.line, line.version)
		})
	}
}

func runSubset(t *testing.T, line, version string) {
	e := newEnv(t)
	rt := e.realtime("realtime")
	web := e.webapp()
	tr, err := e.st.StartTraefik(stack.TraefikOptions{Name: "traefik-" + line, Line: line,
		EntryPoints: []string{"healthy", "misrouted", "webbehind"}, Routers: []string{"healthy@file", "misrouted@file", "webbehind@file"},
		Dynamic: fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: {setMissingOrigin: true, eioVersions: "4", logLevel: warn}
    sio-fallback:
      plugin:
        socketioguard: {mode: fallback}
  services:
    realtime: {loadBalancer: {servers: [{url: %s}]}}
    webapp: {loadBalancer: {servers: [{url: %s}]}}
  routers:
    healthy: {rule: "Host(%[4]s) && PathPrefix(%[5]s)", entryPoints: [healthy], middlewares: [frappe-site, sio-guard], service: realtime}
    misrouted: {rule: "PathPrefix(%[6]s)", entryPoints: [misrouted], middlewares: [sio-fallback], service: webapp}
    webbehind: {rule: "PathPrefix(%[5]s)", entryPoints: [webbehind], middlewares: [sio-guard], service: webapp}
`, frappeSiteMiddleware, realtimeURL(rt), web.URL(), "`127.0.0.1`", "`/socket.io`", "`/`"),
	})
	e.must(err)
	binary := map[string]string{"v3.6": e.st.Tools.TraefikV36, "v2": e.st.Tools.TraefikV2}[line]
	if out, err := exec.Command(binary, "version").Output(); err != nil || !strings.Contains(string(out), "Version:      "+version) {
		t.Fatalf("%s is not a Traefik %s: %v\n%s", binary, version, err, out)
	}

	t.Run("behind a stripping nginx: repaired, websocket, event delivered", func(t *testing.T) {
		front := e.nginx("front-strips", nginxProxy(tr.URL("healthy"), "proxy_set_header Host $http_host;"))
		r := e.client("page-"+line, front.URL(), true, origin(front.URL()), session)
		expectDelivered(t, r, "websocket", "page-"+line)
		expectLog(t, tr, "event=repaired-upgrade")
	})
	t.Run("a websocket's 101, headers intact", func(t *testing.T) {
		ws := dialWebsocket(t, tr.URL("healthy"), "EIO=4&transport=websocket", map[string]string{"Origin": tr.URL("healthy"), "Cookie": "sid=e2e-session"})
		if ws.Status != 101 || !strings.HasPrefix(ws.Body, "0{") || ws.Header.Get("X-Socketio-Guard-Repaired") != "" {
			t.Errorf("direct websocket: %d %q repaired=%q", ws.Status, ws.Body, ws.Header.Get("X-Socketio-Guard-Repaired"))
		}
	})
	t.Run("the fallback's 421", func(t *testing.T) {
		expectGuardError(t, get(t, tr.URL("misrouted")+"/socket.io/?EIO=4&transport=polling", nil), 421, "no-socketio-route")
	})
	t.Run("the web app behind the Socket.IO router", func(t *testing.T) {
		expectGuardError(t, get(t, tr.URL("webbehind")+"/socket.io/?EIO=4&transport=polling", nil), 502, "backend-not-socketio")
	})
}

// TestTraefikV37Changes: what Traefik v3.7's changes do to Socket.IO traffic
// through the guard (v3.7.13's changelog and migration notes), on the main
// Traefik — and, for the retry middleware's fix, on v3.6.12 beside it.
func TestTraefikV37Changes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	dynamic := fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: {setMissingOrigin: true, eioVersions: "4"}
    retry:
      retry: {attempts: 2}
    no-encoded-slash:
      encodedCharacters: {allowEncodedSlash: false}
  services:
    realtime: {loadBalancer: {servers: [{url: %s}]}}
  routers:
    plain: {rule: "PathPrefix(%[3]s)", entryPoints: [plain], middlewares: [frappe-site, sio-guard], service: realtime}
    retried: {rule: "PathPrefix(%[3]s)", entryPoints: [retried], middlewares: [frappe-site, retry, sio-guard], service: realtime}
    encoded: {rule: "PathPrefix(%[3]s)", entryPoints: [encoded], middlewares: [no-encoded-slash, frappe-site, sio-guard], service: realtime}
`, frappeSiteMiddleware, realtimeURL(rt), "`/socket.io`")
	tr, err := e.st.StartTraefik(stack.TraefikOptions{EntryPoints: []string{"plain", "retried", "encoded"},
		Routers: []string{"plain@file", "retried@file", "encoded@file"}, Dynamic: dynamic})
	e.must(err)

	// v3.7.8 (traefik/traefik#13513, PR #13520): the retry middleware on a
	// websocket's router panicked when the websocket closed.
	t.Run("the retry middleware on a websocket's router, the websocket closed", func(t *testing.T) {
		websocketsThroughRetry(t, tr.URL("retried"))
		if tr.Exited() || strings.Contains(tr.Logs(), "panic") {
			t.Errorf("Traefik after websockets closed through the retry middleware: exited %v, a panic in its log: %v", tr.Exited(), strings.Contains(tr.Logs(), "panic"))
		}
	})
	// v3.7.9 (PRs #13542, #13543, #13556): HTTP/1 CONNECT is answered 501 by
	// Traefik's proxy. The guard answers a CONNECT without sid itself (only a
	// GET opens a session) and passes one with a sid, as any other method:
	// Traefik's 501 then.
	t.Run("CONNECT", func(t *testing.T) {
		withSID := rawExchange(t, tr.URL("plain"), "CONNECT /socket.io/?EIO=4&transport=polling&sid=x HTTP/1.1\r\n")
		handshake := rawExchange(t, tr.URL("plain"), "CONNECT /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n")
		if withSID.Status != 501 || withSID.Header.Get("X-Socketio-Guard-Error") != "" || handshake.Header.Get("X-Socketio-Guard-Error") != "bad-handshake-method" {
			t.Errorf("CONNECT with a sid: %d %q; without: %d %q", withSID.Status, withSID.Header.Get("X-Socketio-Guard-Error"), handshake.Status, handshake.Header.Get("X-Socketio-Guard-Error"))
		}
	})
	// v3.7.13 (PR #13797): the proxy drops an Upgrade that names h2c; the
	// guard, before the proxy, refuses an Upgrade that is not exactly websocket.
	t.Run("Upgrade: websocket, h2c", func(t *testing.T) {
		got := rawExchange(t, tr.URL("plain"), "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
		if got.Status != 400 || got.Header.Get("X-Socketio-Guard-Error") != "websocket-handshake-invalid" {
			t.Errorf("%d %q", got.Status, got.Header.Get("X-Socketio-Guard-Error"))
		}
	})
	// v3.7.0 (PR #12555): encodedCharacters as a middleware. Before the
	// guard it answers an encoded slash itself (400, no body); without it,
	// the guard refuses an Engine.IO path that is one only once decoded.
	t.Run("the encodedCharacters middleware before the guard", func(t *testing.T) {
		with := rawExchange(t, tr.URL("encoded"), "GET /socket.io%2F?EIO=4&transport=polling HTTP/1.1\r\n")
		without := rawExchange(t, tr.URL("plain"), "GET /socket.io%2F?EIO=4&transport=polling HTTP/1.1\r\n")
		if with.Status != 400 || with.Header.Get("X-Socketio-Guard-Error") != "" || without.Header.Get("X-Socketio-Guard-Error") != "path-escaped" {
			t.Errorf("with the middleware %d %q, without %d %q", with.Status, with.Header.Get("X-Socketio-Guard-Error"), without.Status, without.Header.Get("X-Socketio-Guard-Error"))
		}
	})
}

// websocketsThroughRetry opens websockets through base, exchanges the probe
// and closes them, each side in turn.
func websocketsThroughRetry(t *testing.T, base string) {
	t.Helper()
	for i := 0; i < 3; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/socket.io/?EIO=4&transport=websocket",
			&websocket.DialOptions{HTTPHeader: map[string][]string{"Origin": {base}, "Cookie": {"sid=e2e-session"}}})
		if err != nil {
			cancel()
			t.Fatalf("websocket through the retry middleware: %v (%v)", err, resp)
		}
		_, _, _ = conn.Read(ctx) // the open packet
		if i%2 == 0 {
			conn.Close(websocket.StatusNormalClosure, "")
		} else {
			conn.CloseNow()
		}
		cancel()
	}
	time.Sleep(500 * time.Millisecond)
}
