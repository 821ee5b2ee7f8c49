package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestDoctorNamesTheBrokenHop runs `socketioguard doctor` (built from
// cmd/socketioguard as a user installs it) against the suite's stacks: each
// broken one must fail at the right step with the right id, each healthy
// one must pass.
func TestDoctorNamesTheBrokenHop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doctorBin := buildDoctor(t, e)

	rt := e.realtime("realtime")
	replicaB := e.realtime("replica-b")
	// A server pinging every 5 s behind an nginx that cuts connections idle
	// for 2 s: a hop's idle timeout below pingInterval.
	slowPing := e.realtimeWith("slow-ping", stack.RealtimeOptions{ServerIP: stack.Addr(e.sessions().Port), PingInterval: 5 * time.Second})
	idleSidecar := e.nginx("sidecar-idle-2s", fmt.Sprintf(`
  server {
    listen 127.0.0.1:{{port}};
    location /socket.io/ {
      proxy_pass %s;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_read_timeout 2s;
    }
  }`, realtimeURL(slowPing)))
	// Frappe's default: the session callback goes to the Origin (no server_ip).
	originCallback := e.realtimeWith("origin-callback", stack.RealtimeOptions{})
	web := e.webapp()
	// Frappe's web process run as a development server (DEV_SERVER): its desk
	// page sends browsers to the Socket.IO server's own port, past Traefik.
	devDesk, err := e.st.StartWebapp("dev-desk", stack.WebappOptions{Site: site, DevServerPort: rt.Port})
	e.must(err)
	sidecarNoUpgrade := e.nginx("sidecar-no-upgrade", sidecarWithoutUpgrade(realtimeURL(rt)))
	routers := []string{}
	var dyn strings.Builder
	fmt.Fprintf(&dyn, `
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: {}
    sio-guard-frappe:
      plugin:
        socketioguard:
          setMissingOrigin: true
    sio-fallback:
      plugin:
        socketioguard:
          mode: fallback
    nohijack:
      plugin:
        nohijack: {}
    basic-auth:
      basicAuth: {users: ["admin:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g="]}
    to-https:
      redirectScheme: {scheme: https, permanent: true}
  services:
    sessions:
      loadBalancer:
        servers: [{url: %s}]
    sidecar-idle:
      loadBalancer:
        servers: [{url: %s}]
    origin-callback:
      loadBalancer:
        servers: [{url: %s}]
    realtime:
      loadBalancer:
        servers: [{url: %s}]
    replicas:
      loadBalancer:
        servers: [{url: %s}, {url: %s}]
    replicas-sticky:
      loadBalancer:
        sticky: {cookie: {name: sio_sticky}}
        servers: [{url: %s}, {url: %s}]
    sidecar-no-upgrade:
      loadBalancer:
        servers: [{url: %s}]
    webapp:
      loadBalancer:
        servers: [{url: %s}]
    dev-desk:
      loadBalancer:
        servers: [{url: %s}]
  routers:
    devserver-web:
      rule: Host(`+"`127.0.0.1`"+`)
      entryPoints: [devserver]
      service: dev-desk
    healthy-web:
      rule: Host(`+"`127.0.0.1`"+`)
      entryPoints: [healthy]
      service: sessions
    originback-web:
      rule: Host(`+"`127.0.0.1`"+`)
      entryPoints: [originback]
      service: sessions`, frappeSiteMiddleware, e.sessions().URL(), idleSidecar.URL(), realtimeURL(originCallback), realtimeURL(rt), realtimeURL(rt), realtimeURL(replicaB), realtimeURL(rt), realtimeURL(replicaB), sidecarNoUpgrade.URL(), web.URL(), devDesk.URL())
	route := func(ep, rule, middlewares, service string) {
		fmt.Fprintf(&dyn, "\n    %s:\n      rule: %q\n      entryPoints: [%s]\n      middlewares: [%s]\n      service: %s", ep, rule, ep, middlewares, service)
		routers = append(routers, ep+"@file")
	}
	sio := "PathPrefix(`/socket.io`)"
	pinnedSIO := "Host(`127.0.0.1`) && " + sio // the guard sets the Origin from Host
	route("healthy", pinnedSIO, "frappe-site, sio-guard-frappe", "realtime")
	route("sidecarlost", pinnedSIO, "frappe-site, sio-guard-frappe", "sidecar-no-upgrade")
	route("misrouted", "PathPrefix(`/`)", "sio-fallback", "webapp")
	route("noroute", "Host(`v2.sysmayal.cloud`)", "", "realtime")
	route("webbehind", sio, "sio-guard", "webapp")
	route("noorigin", sio, "frappe-site", "realtime")
	route("roundrobin", sio, "frappe-site, sio-guard-frappe", "replicas")
	route("sticky", sio, "frappe-site, sio-guard-frappe", "replicas-sticky")
	route("culpritbefore", pinnedSIO, "frappe-site, nohijack, sio-guard-frappe", "realtime")
	route("culpritafter", pinnedSIO, "frappe-site, sio-guard-frappe, nohijack", "realtime")
	route("idle", pinnedSIO, "frappe-site, sio-guard-frappe", "sidecar-idle")
	// The Origin the guard sets is the URL Frappe calls back: reachable
	// through Traefik's web router, or not (no router for it on that entrypoint).
	route("originback", pinnedSIO, "frappe-site, sio-guard-frappe", "origin-callback")
	route("originlost", pinnedSIO, "frappe-site, sio-guard-frappe", "origin-callback")
	// Hops that answer in the Socket.IO server's place: an authentication
	// layer, an http → https redirect.
	route("authfront", pinnedSIO, "basic-auth, frappe-site, sio-guard-frappe", "realtime")
	route("tohttps", pinnedSIO, "to-https, frappe-site, sio-guard-frappe", "realtime")
	route("devserver", pinnedSIO, "frappe-site, sio-guard-frappe", "realtime")
	eps := []string{"devserver", "authfront", "tohttps", "healthy", "sidecarlost", "misrouted", "noroute", "webbehind", "noorigin", "roundrobin", "sticky", "culpritbefore", "culpritafter", "idle", "originback", "originlost"}
	tr, err := e.st.StartTraefik(stack.TraefikOptions{EntryPoints: eps, Dynamic: dyn.String(), Routers: append(routers, "healthy-web@file", "originback-web@file", "devserver-web@file"),
		LocalPlugins: map[string]string{"nohijack": filepath.Join(e.st.Tools.Repo, "e2e", "plugins", "nohijack")}})
	e.must(err)
	strippingFront := e.nginx("front-strips", nginxProxy(tr.URL("healthy"), ""))
	// A stand-in for a WAF's bot challenge (Cloudflare's managed challenge
	// answers 403 with cf-mitigated: challenge): an nginx in front.
	wafChallenge := e.nginx("waf-challenge", `
  server {
    listen 127.0.0.1:{{port}};
    location / {
      add_header cf-mitigated challenge always;
      return 403 "<html><title>Just a moment...</title></html>";
    }
  }`)
	dropsQuery := e.nginx("front-drops-query", nginxProxy(tr.URL("healthy"), `rewrite ^/socket.io/.*$ /socket.io/? break;
      proxy_http_version 1.1;`))

	cases := []struct {
		name     string
		url      string
		args     []string
		publish  bool
		wantOK   bool
		failStep int
		failID   string
		wantText string // in a step's summary or fix
	}{
		{"healthy, every check incl. stickiness and an event", tr.URL("healthy"), []string{"--replicas-check", "4", "--wait-event", "message_created", "--subscribe", doctype + "/" + channel}, true, true, 0, "", "the desk page connects browsers through"},
		{"front proxy strips upgrade headers (repaired by the guard)", strippingFront.URL(), nil, false, true, 0, "", ""},
		{"sidecar behind Traefik loses the upgrade", tr.URL("sidecarlost"), nil, false, false, 4, "upgrade-lost-downstream", ""},
		{"web router catches /socket.io (fallback mode)", tr.URL("misrouted"), nil, false, false, 2, "no-socketio-route", "Host(`127.0.0.1`) && PathPrefix(`/socket.io`) to the Socket.IO service, with a higher priority than the router that uses the middleware sio-fallback@file"},
		{"no router for the host (Traefik's own 404)", tr.URL("noroute"), nil, false, false, 2, "no-socketio-route", ""},
		{"web app behind the Socket.IO router", tr.URL("webbehind"), []string{"--namespace", "/"}, false, false, 2, "backend-not-socketio", ""},
		{"a hop drops the query string", dropsQuery.URL(), nil, false, false, 2, "query-missing", ""},
		{"an authentication layer in front (basic auth)", tr.URL("authfront"), nil, false, false, 2, "auth-required", `WWW-Authenticate: Basic realm="traefik"`},
		{"a hop redirects http to https", tr.URL("tohttps"), nil, false, false, 2, "redirected", "a hop redirects http to https"},
		{"a WAF's bot challenge on /socket.io", wafChallenge.URL(), nil, false, false, 2, "waf-challenge", "cf-mitigated: challenge"},
		{"a token client without a cookie", tr.URL("healthy"), []string{"--cookie", "", "--authorization", "token key:secret"}, false, false, 6, "token-without-cookie", "must also send a Cookie header"},
		{"a token client with a cookie without sid", tr.URL("healthy"), []string{"--cookie", "token_client=1", "--authorization", "token key:secret"}, false, true, 0, "", ""},
		{"Frappe refuses the missing Origin", tr.URL("noorigin"), nil, false, false, 6, "namespace-refused", "no Origin reached it"},
		{"a middleware without Hijack before the guard", tr.URL("culpritbefore"), nil, false, false, 4, "hijack-failed", "Hijacker"},
		{"a middleware without Hijack after the guard", tr.URL("culpritafter"), nil, false, false, 4, "hijack-failed", "Hijacker"},
		{"a Socket.IO v2 client against a server without allowEIO3", tr.URL("healthy"), []string{"--eio", "3"}, false, false, 2, "backend-eio-mismatch", "eioVersions: 4"},
		{"a session Frappe does not know (Guest)", tr.URL("healthy"), []string{"--cookie", "sid=expired-42", "--wait-event", "message_created", "--subscribe", doctype + "/" + channel, "--timeout", "4s"}, true, false, 8, "session-guest", "as Guest"},
		{"only the default namespace", tr.URL("healthy"), []string{"--namespace", "/"}, false, true, 0, "", "nothing app-specific was checked"},
		{"a hop's idle timeout below pingInterval", tr.URL("idle"), []string{"--hold", "8s"}, false, false, 9, "hop-idle-timeout", "pingInterval 5s"},
		{"Frappe calls back the Origin the guard set, through the web router", tr.URL("originback"), nil, false, true, 0, "", ""},
		{"Frappe cannot reach the Origin the guard set", tr.URL("originlost"), nil, false, false, 6, "namespace-refused", "/api/method/frappe.realtime.get_user_info, which must be reachable from the realtime server"},
		{"the desk page sends browsers to the Socket.IO port directly (DEV_SERVER)", tr.URL("devserver"), nil, false, false, 10, "dev-server-port", fmt.Sprintf("connects browsers to http://127.0.0.1:%d/socket.io/ directly", rt.Port)},
		{"two replicas without stickiness", tr.URL("roundrobin"), nil, false, false, 3, "session-unknown", ""},
		{"two replicas with sticky.cookie", tr.URL("sticky"), []string{"--replicas-check", "4"}, false, true, 0, "", ""},
	}
	for _, c := range cases {
		args := append([]string{"doctor", c.url, "--namespace", namespace, "--cookie", "sid=doctor", "--timeout", "10s", "--json"}, c.args...)
		cmd := exec.Command(doctorBin, args...)
		if c.publish {
			// The event the doctor waits for is published once it had time to subscribe.
			go func() {
				time.Sleep(3 * time.Second)
				_, _ = e.sessions().Publish(site, room, "message_created", ravenMessage("doctor"))
			}()
		}
		out, err := cmd.Output()
		exit := 0
		if ee, ok := err.(*exec.ExitError); ok {
			exit = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var r doctorReport
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s: doctor --json printed %q: %v", c.name, out, err)
		}
		if strings.Contains(string(out), "key:secret") {
			t.Errorf("%s: the doctor printed the Authorization header's value", c.name)
		}
		firstFail := 0
		var failed string
		for _, s := range r.Steps {
			if s.Status == "fail" && firstFail == 0 {
				firstFail, failed = s.N, s.ID
				if s.Fix == "" {
					t.Errorf("%s: step %d failed without a fix", c.name, s.N)
				}
			}
		}
		t.Logf("%-60s exit %d, first failure: step %d %s", c.name, exit, firstFail, failed)
		if r.OK != c.wantOK || (exit == 0) != c.wantOK || firstFail != c.failStep || failed != c.failID {
			t.Errorf("%s: ok=%v exit=%d first failure step %d %q; want ok=%v step %d %q\n%s", c.name, r.OK, exit, firstFail, failed, c.wantOK, c.failStep, c.failID, out)
		}
		if c.wantText != "" {
			found := false
			for _, s := range r.Steps {
				found = found || strings.Contains(s.Summary+" "+s.Fix, c.wantText)
			}
			if !found {
				t.Errorf("%s: no step says %q:\n%s", c.name, c.wantText, out)
			}
		}
		if c.wantOK {
			for _, s := range r.Steps {
				if s.Status == "skip" && (s.N < 7 || strings.Contains(strings.Join(c.args, " "), "--replicas-check") && s.N == 7) {
					t.Errorf("%s: step %d skipped: %s", c.name, s.N, s.Summary)
				}
			}
		}
	}

	// The terminal form: an aligned table with the evidence and the fix under a failure.
	out, _ := exec.Command(doctorBin, "doctor", tr.URL("sidecarlost"), "--namespace", namespace, "--cookie", "sid=doctor").Output()
	for _, want := range []string{"  PASS  1 network", "  FAIL  4 upgrade", "[upgrade-lost-downstream]", "evidence: status 400", "X-Socketio-Guard-Diagnosis: upgrade-lost-downstream", "fix: "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("doctor's table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "\x1b[") {
		t.Errorf("colour codes when stdout is not a terminal")
	}
}

// buildDoctor builds cmd/socketioguard into the test's directory.
func buildDoctor(t *testing.T, e *env) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "socketioguard")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = filepath.Join(e.st.Tools.Repo, "cmd", "socketioguard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/socketioguard: %v\n%s", err, out)
	}
	return bin
}

// doctorReport is what the e2e tests read of `doctor --json`.
type doctorReport struct {
	OK    bool `json:"ok"`
	Steps []struct {
		N       int    `json:"n"`
		Status  string `json:"status"`
		ID      string `json:"id"`
		Summary string `json:"summary"`
		Fix     string `json:"fix"`
	} `json:"steps"`
}
