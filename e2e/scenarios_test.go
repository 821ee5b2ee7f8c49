package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// The report's scenarios on a real stack: Traefik v3.7.13 running the
// working tree's plugin under Yaegi, Debian's nginx, a Frappe-like Socket.IO
// 4.8 server and socket.io-client 4.8, all on loopback. Scenarios marked (c)
// also run without the guard, to show that the difference is the guard's.

// Scenario 1: the report's prod path — Traefik (guard) → nginx sidecar with
// the report's config → Socket.IO: websocket, event delivered.
func TestScenario1ReportProdPath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	sidecar := e.nginx("sidecar", reportSidecar(realtimeURL(rt)))
	tr := e.traefik([]string{"websecure"}, frappeRoute(sidecar.URL(), "{logLevel: debug}"), "frappe-socketio@file")
	base := tr.URL("websecure")

	// The report's check 3.3: the handshake through the public URL.
	_, a := handshake(t, base, nil)
	for name := range a.Header {
		if strings.HasPrefix(name, "X-Socketio-Guard") {
			t.Errorf("a healthy handshake got %s: %s", name, a.Header.Get(name))
		}
	}
	ws := dialWebsocket(t, base, "EIO=4&transport=websocket", map[string]string{"Origin": base})
	if ws.Status != 101 || !strings.HasPrefix(ws.Body, "0{") || ws.Header.Get("X-Socketio-Guard-Repaired") != "" {
		t.Errorf("direct websocket: %d %q repaired=%q", ws.Status, ws.Body, ws.Header.Get("X-Socketio-Guard-Repaired"))
	}

	r := e.client("raven-page", base, true, origin(base), session)
	expectDelivered(t, r, "websocket", "raven-page")
	if strings.Contains(tr.Logs(), "level=error") {
		t.Errorf("the guard logged an error on a healthy path")
	}
}

// Scenario 2 (c): a front nginx without the upgrade lines → Traefik (guard)
// → Socket.IO. With the guard the client ends on websocket; without it, the
// client stays on long-polling.
func TestScenario2FrontProxyStripsUpgrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	tr := e.traefik([]string{"guarded", "plain"}, guardedAndPlainRoutes(realtimeURL(rt), "{logLevel: warn}"), "sio-guarded@file", "sio-plain@file")
	// nginx as a tutorial writes it: proxy_pass alone (HTTP/1.0, hop-by-hop headers dropped).
	frontGuarded := e.nginx("front-guarded", nginxProxy(tr.URL("guarded"), ""))
	frontPlain := e.nginx("front-plain", nginxProxy(tr.URL("plain"), ""))

	t.Run("with the guard: repaired, websocket", func(t *testing.T) {
		base := frontGuarded.URL()
		ws := dialWebsocket(t, base, "EIO=4&transport=websocket", map[string]string{"Origin": base})
		if ws.Status != 101 || ws.Header.Get("X-Socketio-Guard-Repaired") != "upgrade" {
			t.Errorf("websocket through the front proxy: %d, X-Socketio-Guard-Repaired=%q", ws.Status, ws.Header.Get("X-Socketio-Guard-Repaired"))
		}
		r := e.client("guarded-client", base, true, origin(base), session)
		expectDelivered(t, r, "websocket", "guarded-client")
		if !r.Upgraded {
			t.Errorf("the client did not upgrade from polling")
		}
		expectLog(t, tr, "level=warn", "event=repaired-upgrade", "middleware=sio-guard@file", "hint=")
	})
	t.Run("without the guard: stuck on polling", func(t *testing.T) {
		base := frontPlain.URL()
		ws := dialWebsocket(t, base, "EIO=4&transport=websocket", map[string]string{"Origin": base})
		if ws.Status != 400 {
			t.Errorf("websocket through the front proxy without the guard: %d, want 400", ws.Status)
		}
		r := e.client("plain-client", base, true, origin(base), session)
		expectStayedOnPolling(t, r, "plain-client")
	})
}

// Scenario 3: the nginx sidecar behind Traefik lacks the upgrade lines: the
// client stays on polling, and the guard says where the upgrade was lost.
func TestScenario3SidecarLosesUpgrade(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	sidecar := e.nginx("sidecar", sidecarWithoutUpgrade(realtimeURL(rt)))
	tr := e.traefik([]string{"websecure"}, frappeRoute(sidecar.URL(), "{}"), "frappe-socketio@file")
	base := tr.URL("websecure")

	sid, _ := handshake(t, base, nil)
	ws := dialWebsocket(t, base, "EIO=4&transport=websocket&sid="+sid, map[string]string{"Origin": base})
	if ws.Status != 400 || ws.Header.Get("X-Socketio-Guard-Diagnosis") != "upgrade-lost-downstream" {
		t.Errorf("upgrade through the sidecar: %d diagnosis=%q (body %q)", ws.Status, ws.Header.Get("X-Socketio-Guard-Diagnosis"), ws.Body)
	}
	expectLog(t, tr, "level=error", "event=upgrade-lost-downstream", "proxy_http_version 1.1")

	r := e.client("raven-page", base, true, origin(base), session)
	expectStayedOnPolling(t, r, "raven-page")
}

// Scenario 4 (c): the report's sandbox — one public port routes / to the web
// app (8000's role) and /socket.io/ to Socket.IO (9000's role). Then the
// misrouted variant: the web router catches /socket.io.
func TestScenario4SandboxSinglePort(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	web := e.webapp()
	tr := e.traefik([]string{"sandbox", "misrouted", "misrouted-plain"}, fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: {}
    sio-fallback:
      plugin:
        socketioguard:
          mode: fallback
          logLevel: warn
  routers:
    web:
      rule: PathPrefix(`+"`/`"+`)
      entryPoints: [sandbox]
      service: webapp
    socketio:
      rule: PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [sandbox]
      middlewares: [frappe-site, sio-guard]
      service: realtime
    web-misrouted:
      rule: PathPrefix(`+"`/`"+`)
      entryPoints: [misrouted]
      middlewares: [sio-fallback]
      service: webapp
    web-misrouted-plain:
      rule: PathPrefix(`+"`/`"+`)
      entryPoints: [misrouted-plain]
      service: webapp
  services:
    webapp:
      loadBalancer:
        servers:
          - url: %s
    realtime:
      loadBalancer:
        servers:
          - url: %s
`, frappeSiteMiddleware, web.URL(), realtimeURL(rt)), "web@file", "socketio@file", "web-misrouted@file", "web-misrouted-plain@file")

	t.Run("single port with both routes: event delivered", func(t *testing.T) {
		base := tr.URL("sandbox")
		if a := get(t, base+"/", nil); a.Status != 200 || !strings.Contains(a.Body, "Frappe") {
			t.Errorf("web app through the sandbox port: %d", a.Status)
		}
		handshake(t, base, nil)
		r := e.client("sandbox-page", base, true, origin(base), session)
		expectDelivered(t, r, "websocket", "sandbox-page")
	})
	t.Run("misrouted, fallback mode: 421 no-socketio-route", func(t *testing.T) {
		base := tr.URL("misrouted")
		g := expectGuardError(t, get(t, base+"/socket.io/?EIO=4&transport=polling&t=x", nil), 421, "no-socketio-route")
		if !strings.Contains(g.Guard.Hint, "PathPrefix(`/socket.io`)") || !strings.Contains(g.Guard.Hint, "Host(`127.0.0.1`)") {
			t.Errorf("hint does not give the router rule: %q", g.Guard.Hint)
		}
		expectLog(t, tr, "level=warn", "event=no-socketio-route", "middleware=sio-fallback@file") // any client can send it: warn
		if a := get(t, base+"/", nil); a.Status != 200 {
			t.Errorf("the web app's own page through the fallback router: %d", a.Status)
		}
		r := e.client("misrouted-page", base, false, origin(base), session)
		expectRefused(t, r, "xhr poll error", 421)
	})
	t.Run("misrouted, without the guard: the web app's 404", func(t *testing.T) {
		base := tr.URL("misrouted-plain")
		a := get(t, base+"/socket.io/?EIO=4&transport=polling&t=x", nil)
		if a.Status != 404 || a.Header.Get("X-Socketio-Guard-Error") != "" || !strings.Contains(a.Body, "Page not found") {
			t.Errorf("without the guard: %d %q", a.Status, a.Body)
		}
		r := e.client("misrouted-plain-page", base, false, origin(base), session)
		expectRefused(t, r, "xhr poll error", 404)
	})
}

// Scenario 5 (c): no route at all for the host. A catch-all router (priority
// 1, noop@internal, fallback mode) answers 421 JSON instead of Traefik's plain 404.
func TestScenario5NoRouteForHost(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	tr := e.traefik([]string{"guarded", "plain"}, fmt.Sprintf(`
http:
  middlewares:
    sio-fallback:
      plugin:
        socketioguard:
          mode: fallback
  routers:
    socketio:
      rule: Host(`+"`v2.sysmayal.cloud`"+`) && PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [guarded, plain]
      service: realtime
    socketio-fallback:
      rule: PathPrefix(`+"`/`"+`)
      priority: 1
      entryPoints: [guarded]
      middlewares: [sio-fallback]
      service: noop@internal
  services:
    realtime:
      loadBalancer:
        servers:
          - url: %s
`, realtimeURL(rt)), "socketio@file", "socketio-fallback@file")

	t.Run("with the catch-all fallback: 421 JSON", func(t *testing.T) {
		base := tr.URL("guarded")
		g := expectGuardError(t, get(t, base+"/socket.io/?EIO=4&transport=polling", nil), 421, "no-socketio-route")
		if !strings.Contains(g.Guard.Detail, `"127.0.0.1"`) {
			t.Errorf("detail does not name the host: %q", g.Guard.Detail)
		}
		r := e.client("guarded-page", base, false, origin(base), session)
		expectRefused(t, r, "xhr poll error", 421)
		// Anything else still gets the catch-all's own answer (noop@internal: 418).
		if a := get(t, base+"/favicon.ico", nil); a.Status != 418 {
			t.Errorf("a non-Engine.IO request on the catch-all: %d, want noop@internal's 418", a.Status)
		}
	})
	t.Run("without: Traefik's plain 404", func(t *testing.T) {
		base := tr.URL("plain")
		a := get(t, base+"/socket.io/?EIO=4&transport=polling", nil)
		if a.Status != 404 || strings.TrimSpace(a.Body) != "404 page not found" {
			t.Errorf("without the fallback: %d %q", a.Status, a.Body)
		}
		r := e.client("plain-page", base, false, origin(base), session)
		expectRefused(t, r, "xhr poll error", 404)
	})
}

// Scenario 6 (c): Frappe's origin check. Browsers send no Origin on the
// same-origin polling handshake: refused ("Invalid origin") without the
// guard, accepted with setMissingOrigin. A foreign Origin stays refused.
func TestScenario6FrappeOriginCheck(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	tr := e.traefik([]string{"guarded", "plain"}, guardedAndPlainRoutes(realtimeURL(rt), `{setMissingOrigin: "true", logLevel: info}`), "sio-guarded@file", "sio-plain@file")

	t.Run("without the guard: Invalid origin", func(t *testing.T) {
		r := e.client("plain-no-origin", tr.URL("plain"), false, session)
		expectRefused(t, r, "Invalid origin", 0)
	})
	t.Run("with setMissingOrigin: connected", func(t *testing.T) {
		base := tr.URL("guarded")
		_, a := handshake(t, base, nil)
		if a.Header.Get("X-Socketio-Guard-Repaired") != "origin" {
			t.Errorf("handshake without Origin: X-Socketio-Guard-Repaired=%q", a.Header.Get("X-Socketio-Guard-Repaired"))
		}
		r := e.client("guarded-no-origin", base, true, session)
		expectDelivered(t, r, "websocket", "guarded-no-origin")
		expectLog(t, tr, "level=info", "event=repaired-origin")
	})
	t.Run("a foreign Origin is never overwritten", func(t *testing.T) {
		r := e.client("guarded-foreign-origin", tr.URL("guarded"), false, "Origin: https://evil.example", session)
		expectRefused(t, r, "Invalid origin", 0)
	})
}

// Scenario 7: two Socket.IO replicas in one service. Without stickiness the
// guard marks session-unknown; with sticky.cookie events arrive over websocket.
func TestScenario7Replicas(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.realtime("replica-a")
	b := e.realtime("replica-b")
	tr := e.traefik([]string{"roundrobin", "sticky"}, fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard:
          logLevel: warn
  routers:
    sio-roundrobin:
      rule: PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [roundrobin]
      middlewares: [frappe-site, sio-guard]
      service: replicas
    sio-sticky:
      rule: PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [sticky]
      middlewares: [frappe-site, sio-guard]
      service: replicas-sticky
  services:
    replicas:
      loadBalancer:
        servers:
          - url: %[2]s
          - url: %[3]s
    replicas-sticky:
      loadBalancer:
        sticky:
          cookie:
            name: sio_sticky
            httpOnly: true
        servers:
          - url: %[2]s
          - url: %[3]s
`, frappeSiteMiddleware, realtimeURL(a), realtimeURL(b)), "sio-roundrobin@file", "sio-sticky@file")

	t.Run("round robin: session-unknown marked", func(t *testing.T) {
		base := tr.URL("roundrobin")
		diagnosed := 0
		for i := 0; i < 4 && diagnosed == 0; i++ {
			sid, _ := handshake(t, base, nil)
			poll := get(t, base+"/socket.io/?EIO=4&transport=polling&sid="+sid, nil)
			if poll.Status == 400 {
				if poll.Header.Get("X-Socketio-Guard-Diagnosis") != "session-unknown" || !strings.Contains(poll.Body, `"code":1`) {
					t.Fatalf("400 from the other replica: diagnosis=%q body %q", poll.Header.Get("X-Socketio-Guard-Diagnosis"), poll.Body)
				}
				diagnosed++
			}
		}
		if diagnosed == 0 {
			t.Fatalf("round robin never sent a poll to the other replica")
		}
		expectLog(t, tr, "level=warn", "event=session-unknown", "sticky")
	})
	t.Run("sticky cookie: websocket, event delivered", func(t *testing.T) {
		base := tr.URL("sticky")
		r := e.client("sticky-page", base, true, origin(base), session)
		expectDelivered(t, r, "websocket", "sticky-page")
	})
}

// Scenario 8: a hop drops the query string (an nginx rewrite): 400 query-missing.
func TestScenario8QueryDropped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	tr := e.traefik([]string{"websecure"}, guardedRoute(realtimeURL(rt), "{logLevel: warn}"), "sio@file")
	// "rewrite … ?" replaces the URI and drops the arguments.
	front := e.nginx("front", nginxProxy(tr.URL("websecure"), `rewrite ^/socket.io/.*$ /socket.io/? break;
      proxy_http_version 1.1;`))

	expectGuardError(t, get(t, front.URL()+"/socket.io/?EIO=4&transport=polling&t=x", nil), 400, "query-missing")
	expectLog(t, tr, "level=warn", "event=query-missing", "path=/socket.io/") // any client can send it: warn, not error
	r := e.client("raven-page", front.URL(), false, origin(front.URL()), session)
	expectRefused(t, r, "xhr poll error", 400)
}

// Scenario 9: the web app behind the Socket.IO router: 502 backend-not-socketio.
func TestScenario9WebAppBehindSocketIORouter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	web := e.webapp()
	tr := e.traefik([]string{"websecure"}, fmt.Sprintf(`
http:
  middlewares:
    sio-guard:
      plugin:
        socketioguard: {}
  routers:
    frappe-socketio:
      rule: PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [websecure]
      middlewares: [sio-guard]
      service: frappe-web
  services:
    frappe-web:
      loadBalancer:
        servers:
          - url: %s
`, web.URL()), "frappe-socketio@file")
	base := tr.URL("websecure")

	a := get(t, base+"/socket.io/?EIO=4&transport=polling&t=x", nil)
	g := expectGuardError(t, a, 502, "backend-not-socketio")
	if a.Header.Get("Set-Cookie") != "" || !strings.Contains(g.Guard.Detail, "404") {
		t.Errorf("the web app's answer leaked through: Set-Cookie=%q detail=%q", a.Header.Get("Set-Cookie"), g.Guard.Detail)
	}
	expectLog(t, tr, "level=error", "event=backend-not-socketio")
	r := e.client("raven-page", base, false, origin(base), session)
	expectRefused(t, r, "xhr poll error", 502)
}

// Scenario 10: a long-poll held for the server's pingInterval (25 s) passes
// through the guard with Traefik's default timeouts.
func TestScenario10LongPoll(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	tr := e.traefik([]string{"websecure"}, guardedRoute(realtimeURL(rt), "{}"), "sio@file")
	base := tr.URL("websecure")

	sid, a := handshake(t, base, nil)
	var open struct{ PingInterval int }
	_ = json.Unmarshal([]byte(a.Body[1:]), &open)
	if open.PingInterval != 25000 {
		t.Fatalf("pingInterval %d, want Socket.IO's default 25000", open.PingInterval)
	}
	started := time.Now()
	poll := get(t, base+"/socket.io/?EIO=4&transport=polling&sid="+sid, nil)
	held := time.Since(started)
	t.Logf("long-poll held %s, answered %d %q", held.Round(time.Millisecond), poll.Status, poll.Body)
	if poll.Status != 200 || poll.Body != "2" {
		t.Fatalf("long-poll answered %d %q, want 200 with the server's ping packet \"2\"", poll.Status, poll.Body)
	}
	if held < 20*time.Second {
		t.Errorf("the poll came back after %s: it was not held until the ping", held)
	}
	for name := range poll.Header {
		if strings.HasPrefix(name, "X-Socketio-Guard") {
			t.Errorf("the long-poll got %s", name)
		}
	}
}

// The guard's lines go through Traefik's own logger: at Traefik's default
// level (ERROR) an operator sees the errors and not the warnings, in
// Traefik's format, tagged with the plugin.
func TestGuardLogsFollowTraefiksLogLevel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	web := e.webapp()
	tr, err := e.st.StartTraefik(stack.TraefikOptions{
		EntryPoints: []string{"websecure", "webbehind"}, LogLevel: "ERROR", Routers: []string{"sio@file", "webbehind@file"},
		Dynamic: fmt.Sprintf(`
http:
  middlewares:
    sio-guard:
      plugin:
        socketioguard: {logLevel: debug}
  routers:
    sio: {rule: "PathPrefix(%[3]s)", entryPoints: [websecure], middlewares: [sio-guard], service: realtime}
    webbehind: {rule: "PathPrefix(%[3]s)", entryPoints: [webbehind], middlewares: [sio-guard], service: webapp}
  services:
    realtime: {loadBalancer: {servers: [{url: %[1]s}]}}
    webapp: {loadBalancer: {servers: [{url: %[2]s}]}}
`, realtimeURL(rt), web.URL(), "`/socket.io`"),
	})
	e.must(err)
	base := tr.URL("websecure")
	expectGuardError(t, get(t, base+"/socket.io/", nil), 400, "query-missing")
	if ws := dialWebsocket(t, base, "EIO=4&transport=websocket&sid=x", map[string]string{"Origin": base}); ws.Status != 400 {
		t.Errorf("websocket with an unknown sid: %d", ws.Status)
	}
	handshake(t, base, map[string]string{"Origin": base})
	expectGuardError(t, get(t, tr.URL("webbehind")+"/socket.io/?EIO=4&transport=polling", nil), 502, "backend-not-socketio")
	expectLog(t, tr, "ERR", "event=backend-not-socketio")
	time.Sleep(500 * time.Millisecond)
	for _, quiet := range []string{"event=query-missing", "event=session-unknown", "level=warn", "level=debug"} {
		if strings.Contains(tr.Logs(), quiet) {
			t.Errorf("Traefik at ERROR shows the guard's %s line:\n%s", quiet, tr.Logs())
		}
	}
}
