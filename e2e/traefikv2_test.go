package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestOnTraefikV2 runs a subset of the scenarios on the v2.11 line (Yaegi
// v0.16.1 since v2.11.1; built from the Go module proxy like v3.6.12): the
// repair behind a stripping nginx, the fallback's 421, backend-not-socketio,
// and a websocket's 101 intact.
func TestOnTraefikV2(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	web := e.webapp()
	tr, err := e.st.StartTraefik(stack.TraefikOptions{Name: "traefik-v2", V2: true,
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
	if out, err := exec.Command(e.st.Tools.TraefikV2, "version").Output(); err != nil || !strings.Contains(string(out), "Version:      v2.11.") {
		t.Fatalf("%s is not a Traefik v2.11: %v\n%s", e.st.Tools.TraefikV2, err, out)
	}

	t.Run("behind a stripping nginx: repaired, websocket, event delivered", func(t *testing.T) {
		front := e.nginx("front-strips", nginxProxy(tr.URL("healthy"), "proxy_set_header Host $http_host;"))
		r := e.client("v2-page", front.URL(), true, origin(front.URL()), session)
		expectDelivered(t, r, "websocket", "v2-page")
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
