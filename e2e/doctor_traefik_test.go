package e2e

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestDoctorReadsTraefiksConfiguration runs `socketioguard doctor
// --traefik-api` against real Traefiks of each line the suite runs: one
// whose configuration has a case of each rule (the API behind basic auth on
// a router, as users expose it) and one with none (every check green). The
// writeTimeout it names is also shown cutting a real long-poll.
func TestDoctorReadsTraefiksConfiguration(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	doctorBin := buildDoctor(t, e)
	callbacks := stack.Addr(e.sessions().Port)
	rt := e.realtimeWith("realtime", stack.RealtimeOptions{ServerIP: callbacks, PingInterval: 5 * time.Second})
	second := e.realtimeWith("second", stack.RealtimeOptions{ServerIP: callbacks, PingInterval: 5 * time.Second})
	web := e.webapp()
	sum := sha1.Sum([]byte("s3cret"))
	htpasswd := "admin:{SHA}" + base64.StdEncoding.EncodeToString(sum[:])

	// broken: each rule has a case. Router "sio" (the one the doctor
	// checks): the guard with inspectPath, a middleware without Hijack after
	// it, on an entrypoint whose writeTimeout (3 s) is below the server's
	// pingInterval (5 s), beside a web router without the fallback. Router
	// "b": two servers without stickiness, retry, setMissingOrigin without
	// Host(). Router "c": an h2c:// server. Router "typo": a middleware
	// name that does not exist (the plugin alias mismatch), its service's
	// sticky cookie named otherwise than its guard's stickyCookie says.
	broken := fmt.Sprintf(`
http:
  middlewares:%[1]s
    sio-guard:
      plugin:
        socketioguard: {inspectPath: /socket.io/.guard}
    sio-guard-b:
      plugin:
        socketioguard: {setMissingOrigin: true}
    sio-guard-c:
      plugin:
        socketioguard: {stickyCookie: sio_replica}
    nohijack:
      plugin:
        nohijack: {}
    retry3:
      retry: {attempts: 3}
    api-auth:
      basicAuth: {users: [%[6]q]}
  services:
    realtime: {loadBalancer: {servers: [{url: %[2]s}]}}
    two: {loadBalancer: {servers: [{url: %[2]s}, {url: %[3]s}]}}
    h2c: {loadBalancer: {servers: [{url: %[4]q}], sticky: {cookie: {name: sio_sticky}}}}
    web: {loadBalancer: {servers: [{url: %[5]s}]}}
  routers:
    sio: {rule: "Host(%[7]s) && PathPrefix(%[8]s)", entryPoints: [site], middlewares: [frappe-site, sio-guard, nohijack], service: realtime}
    web: {rule: "Host(%[7]s)", entryPoints: [site], service: web}
    b: {rule: "PathPrefix(%[8]s)", entryPoints: [other], middlewares: [frappe-site, sio-guard-b, retry3], service: two}
    c: {rule: "Host(%[9]s) && PathPrefix(%[8]s)", entryPoints: [other], middlewares: [sio-guard-c], service: h2c}
    typo: {rule: "Host(%[10]s)", entryPoints: [other], middlewares: [sio-gaurd], service: realtime}
    api: {rule: "PathPrefix(%[11]s)", entryPoints: [dashboard], middlewares: [api-auth], service: api@internal}
`, frappeSiteMiddleware, realtimeURL(rt), realtimeURL(second), strings.Replace(realtimeURL(rt), "http://", "h2c://", 1), web.URL(), htpasswd,
		"`127.0.0.1`", "`/socket.io`", "`h2c.example.test`", "`typo.example.test`", "`/api`")
	healthy := fmt.Sprintf(`
http:
  middlewares:%[1]s
    sio-guard:
      plugin:
        socketioguard: {setMissingOrigin: true, inspectPath: /socket.io/.guard}
    sio-fallback:
      plugin:
        socketioguard: {mode: fallback}
    api-auth:
      basicAuth: {users: [%[4]q]}
  services:
    realtime: {loadBalancer: {servers: [{url: %[2]s}]}}
    web: {loadBalancer: {servers: [{url: %[3]s}]}}
  routers:
    sio: {rule: "Host(%[5]s) && PathPrefix(%[6]s)", entryPoints: [site], middlewares: [frappe-site, sio-guard], service: realtime}
    web: {rule: "Host(%[5]s)", entryPoints: [site], middlewares: [sio-fallback], service: web}
    api: {rule: "PathPrefix(%[7]s)", entryPoints: [dashboard], middlewares: [api-auth], service: api@internal}
`, frappeSiteMiddleware, realtimeURL(rt), web.URL(), htpasswd, "`127.0.0.1`", "`/socket.io`", "`/api`")

	for _, l := range everyTraefikLine {
		t.Run("Traefik "+l.name, func(t *testing.T) {
			plugins := map[string]string{"nohijack": filepath.Join(e.st.Tools.Repo, "e2e", "plugins", "nohijack")}
			bad, err := e.st.StartTraefik(stack.TraefikOptions{Name: "broken-" + l.name, Line: l.line, EntryPoints: []string{"site", "other", "dashboard"},
				TransportYAML: map[string]string{"site": "respondingTimeouts: {writeTimeout: 3s}"},
				LocalPlugins:  plugins, Dynamic: broken, Routers: []string{"sio@file", "b@file", "c@file", "api@file"}})
			e.must(err)
			good, err := e.st.StartTraefik(stack.TraefikOptions{Name: "healthy-" + l.name, Line: l.line, EntryPoints: []string{"site", "dashboard"},
				Dynamic: healthy, Routers: []string{"sio@file", "web@file", "api@file"}})
			e.must(err)

			doctor := func(tr *stack.Traefik) (int, configOutput, string) {
				api := strings.Replace(tr.URL("dashboard"), "http://", "http://admin:s3cret@", 1)
				cmd := exec.Command(doctorBin, "doctor", tr.URL("site"), "--namespace", namespace, "--cookie", "sid=doctor", "--timeout", "10s", "--traefik-api", api, "--json")
				out, err := cmd.Output()
				exit := 0
				if ee, ok := err.(*exec.ExitError); ok {
					exit = ee.ExitCode()
				} else if err != nil {
					t.Fatal(err)
				}
				var r configOutput
				if err := json.Unmarshal(out, &r); err != nil {
					t.Fatalf("doctor --json: %v\n%s", err, out)
				}
				if strings.Contains(string(out), "s3cret") {
					t.Errorf("the doctor printed the API's password")
				}
				// The terminal form, for the log (and the readme).
				text, _ := exec.Command(doctorBin, "doctor", tr.URL("site"), "--namespace", namespace, "--cookie", "sid=doctor", "--timeout", "10s", "--traefik-api", api).Output()
				return exit, r, string(text)
			}

			exit, r, text := doctor(good)
			t.Logf("healthy configuration:\n%s", text)
			if exit != 0 || r.Traefik == nil || r.Traefik.Error != "" {
				t.Errorf("healthy: exit %d, %+v", exit, r.Traefik)
			} else {
				for _, f := range r.Traefik.Findings {
					if f.Status != "pass" {
						t.Errorf("healthy: %s %s: %s", f.Status, f.ID, f.Summary)
					}
				}
			}

			// A TLS-terminating nginx in front of the broken Traefik, whose
			// forwarded headers that Traefik does not trust (no trustedIPs).
			cert, key := writeCertificate(t, t.TempDir(), "127.0.0.1")
			front := e.nginx("tls-front-"+l.name, fmt.Sprintf(`server {
  listen 127.0.0.1:{{port}} ssl;
  ssl_certificate %s;
  ssl_certificate_key %s;
  location / {
    proxy_pass %s;
    proxy_set_header Host $host;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
  }
}`, cert, key, bad.URL("site")))
			api := strings.Replace(bad.URL("dashboard"), "http://", "http://admin:s3cret@", 1)
			out, _ := exec.Command(doctorBin, "doctor", "https://127.0.0.1:"+itoa(front.Port), "--insecure", "--namespace", namespace, "--cookie", "sid=doctor",
				"--timeout", "10s", "--traefik-api", api, "--json").Output()
			var viaFront configOutput
			if err := json.Unmarshal(out, &viaFront); err != nil || viaFront.Traefik == nil {
				t.Fatalf("doctor through the TLS front: %v\n%s", err, out)
			}
			untrusted := false
			for _, f := range viaFront.Traefik.Findings {
				if f.ID == "forwarded-headers-untrusted" {
					untrusted = f.Status == "fail"
					t.Logf("through a TLS-terminating nginx: %s %s", f.Status, f.Summary)
				}
			}
			if !untrusted {
				t.Errorf("through a TLS-terminating nginx Traefik does not trust: no forwarded-headers-untrusted failure in %+v", viaFront.Traefik.Findings)
			}

			exit, r, text = doctor(bad)
			t.Logf("broken configuration:\n%s", text)
			if exit != 1 || r.Traefik == nil || r.Traefik.Error != "" {
				t.Fatalf("broken: exit %d, %+v", exit, r.Traefik)
			}
			retry, h2c := "fail", "pass"
			switch l.line {
			case "v3.6":
				retry, h2c = "fail", "fail"
			case "v2":
				retry, h2c = "warn", "warn"
			default:
				retry = "pass" // v3.7.13 has both fixes
			}
			want := []struct{ id, status, says string }{
				{"socketio-router", "pass", "router sio@file receives"},
				{"middleware-not-found", "fail", `middleware "sio-gaurd@file" does not exist`},
				{"hijack-failed", "fail", "nohijack@file"},
				{"no-stickiness", "fail", "service two@file: 2 servers, no sticky cookie"},
				{"sticky-cookie-name", "fail", `router c@file: sio-guard-c@file has stickyCookie "sio_replica", service h2c@file's sticky cookie is named sio_sticky`},
				{"retry-on-websocket", retry, "b@file"},
				{"h2c-websocket", h2c, "h2c://"},
				{"origin-without-host", "fail", "router b@file runs sio-guard-b"},
				{"fallback-missing", "warn", "web@file"},
				{"write-timeout", "fail", "writeTimeout 3s is not above the Socket.IO server's pingInterval 5s"},
			}
			for _, w := range want {
				found := false
				for _, f := range r.Traefik.Findings {
					if f.ID == w.id && f.Status == w.status && strings.Contains(f.Summary+"\n"+strings.Join(f.Evidence, "\n"), w.says) {
						found = true
					}
				}
				if !found {
					t.Errorf("broken: no %s %s saying %q in %+v", w.status, w.id, w.says, r.Traefik.Findings)
				}
			}

			// The writeTimeout it names cuts a real long-poll: a poll is held
			// up to pingInterval (5 s) and answered with the ping; behind the
			// healthy entrypoint it arrives, behind writeTimeout 3s it never does.
			for _, c := range []struct {
				tr      *stack.Traefik
				arrives bool
			}{{good, true}, {bad, false}} {
				client := &http.Client{Timeout: 12 * time.Second}
				sid := pollingSession(t, client, c.tr.URL("site"))
				started := time.Now()
				body, err := longPoll(client, c.tr.URL("site")+"/socket.io/?EIO=4&transport=polling&sid="+sid)
				arrived := err == nil && strings.HasPrefix(body, "2")
				t.Logf("%s: a long-poll held for pingInterval 5s: ping arrived %v after %s (%v)", c.tr.Name, arrived, time.Since(started).Round(100*time.Millisecond), err)
				if arrived != c.arrives {
					t.Errorf("%s: the held poll's ping arrived %v, want %v (body %q, err %v)", c.tr.Name, arrived, c.arrives, body, err)
				}
			}
		})
	}
}

func longPoll(client *http.Client, url string) (string, error) {
	resp, err := client.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return string(b), err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}

type configOutput struct {
	OK      bool `json:"ok"`
	Traefik *struct {
		Version  string `json:"version"`
		Error    string `json:"error"`
		Findings []struct {
			ID       string   `json:"id"`
			Status   string   `json:"status"`
			Summary  string   `json:"summary"`
			Evidence []string `json:"evidence"`
			Fix      string   `json:"fix"`
		} `json:"findings"`
	} `json:"traefik"`
}
