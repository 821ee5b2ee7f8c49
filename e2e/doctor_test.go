package e2e

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDoctorNamesTheBrokenHop runs `socketioguard doctor` (built from
// cmd/socketioguard as a user installs it) against the suite's stacks: each
// broken one must fail at the right step with the right id, each healthy
// one must pass.
func TestDoctorNamesTheBrokenHop(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doctorBin := filepath.Join(t.TempDir(), "socketioguard")
	build := exec.Command("go", "build", "-o", doctorBin, ".")
	build.Dir = filepath.Join(e.st.Tools.Repo, "cmd", "socketioguard")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/socketioguard: %v\n%s", err, out)
	}

	rt := e.realtime("realtime")
	replicaB := e.realtime("replica-b")
	web := e.webapp()
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
  services:
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
  routers:`, frappeSiteMiddleware, realtimeURL(rt), realtimeURL(rt), realtimeURL(replicaB), realtimeURL(rt), realtimeURL(replicaB), sidecarNoUpgrade.URL(), web.URL())
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
	eps := []string{"healthy", "sidecarlost", "misrouted", "noroute", "webbehind", "noorigin", "roundrobin", "sticky"}
	tr := e.traefik(eps, dyn.String(), routers...)
	strippingFront := e.nginx("front-strips", nginxProxy(tr.URL("healthy"), ""))
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
	}{
		{"healthy, every check incl. stickiness and an event", tr.URL("healthy"), []string{"--replicas-check", "4", "--wait-event", "message_created", "--subscribe", doctype + "/" + channel}, true, true, 0, ""},
		{"front proxy strips upgrade headers (repaired by the guard)", strippingFront.URL(), nil, false, true, 0, ""},
		{"sidecar behind Traefik loses the upgrade", tr.URL("sidecarlost"), nil, false, false, 4, "upgrade-lost-downstream"},
		{"web router catches /socket.io (fallback mode)", tr.URL("misrouted"), nil, false, false, 2, "no-socketio-route"},
		{"no router for the host (Traefik's own 404)", tr.URL("noroute"), nil, false, false, 2, "no-socketio-route"},
		{"web app behind the Socket.IO router", tr.URL("webbehind"), []string{"--namespace", "/"}, false, false, 2, "backend-not-socketio"},
		{"a hop drops the query string", dropsQuery.URL(), nil, false, false, 2, "query-missing"},
		{"Frappe refuses the missing Origin", tr.URL("noorigin"), nil, false, false, 6, "namespace-refused"},
		{"two replicas without stickiness", tr.URL("roundrobin"), nil, false, false, 3, "session-unknown"},
		{"two replicas with sticky.cookie", tr.URL("sticky"), []string{"--replicas-check", "4"}, false, true, 0, ""},
	}
	for _, c := range cases {
		args := append([]string{"doctor", c.url, "--namespace", namespace, "--cookie", "sid=doctor", "--timeout", "10s", "--json"}, c.args...)
		cmd := exec.Command(doctorBin, args...)
		if c.publish {
			// The event the doctor waits for is published once it had time to subscribe.
			go func() {
				time.Sleep(3 * time.Second)
				_ = rt.Publish(namespace, room, "message_created", ravenMessage("doctor"))
			}()
		}
		out, err := cmd.Output()
		exit := 0
		if ee, ok := err.(*exec.ExitError); ok {
			exit = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var r struct {
			OK    bool `json:"ok"`
			Steps []struct {
				N       int    `json:"n"`
				Status  string `json:"status"`
				ID      string `json:"id"`
				Summary string `json:"summary"`
				Fix     string `json:"fix"`
			} `json:"steps"`
		}
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("%s: doctor --json printed %q: %v", c.name, out, err)
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
		if c.wantOK {
			for _, s := range r.Steps {
				if s.Status == "skip" && (s.N < 7 || len(c.args) > 0 && s.N == 7) {
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
