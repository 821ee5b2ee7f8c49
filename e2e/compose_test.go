package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestComposeOnADockerEngine starts a Docker engine of its own (Debian's
// dockerd, own data root, exec root and socket; stopped by PID, also on
// failure) and runs the compose files users run on it, with images built
// here under the names the files use (e2e/images). It never skips: when the
// engine cannot start, it fails with dockerd's own words.
func TestComposeOnADockerEngine(t *testing.T) {
	t.Parallel()
	tools, err := stack.FindDockerTools()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()

	began := time.Now()
	docker, err := e.st.StartDocker(tools)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := docker.Stop(); err != nil {
			t.Errorf("stopping the test's dockerd: %v", err)
		}
	})
	t.Logf("dockerd answered on %s after %s", docker.Socket, time.Since(began).Round(time.Millisecond))

	began = time.Now()
	images, err := docker.EnsureImages(ctx, e.st.Tools)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range images {
		if img.Built {
			t.Logf("image %s built in %s", img.Name, img.Took.Round(time.Second))
		} else {
			t.Logf("image %s: cached", img.Name)
		}
	}
	t.Logf("images ready after %s", time.Since(began).Round(time.Millisecond))

	// The Traefik image's tag and the binary inside name the same release.
	out, err := docker.Run(ctx, "run", "--rm", "traefik:"+stack.MainTraefik, "version")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^Version:\s+` + regexp.QuoteMeta(stack.MainTraefik) + `$`).MatchString(out) {
		t.Fatalf("traefik:%s runs %q", stack.MainTraefik, out)
	}

	t.Run("demo", func(t *testing.T) { composeDemo(t, e, docker, ctx) })
	t.Run("frappe production", func(t *testing.T) { composeFrappe(t, e, docker, ctx) })
}

// composeDemo: demo/docker-compose.yml as its header says to run it, both
// profiles. Traefik's Docker provider reads the labels; the report's three
// checks pass through it; the page in Chromium ends on websocket, also behind
// the broken profile's front nginx, whose stripped upgrade the guard
// repairs; /socket.io/.guard answers; after down nothing of the demo is left.
func composeDemo(t *testing.T, e *env, docker *stack.Docker, ctx context.Context) {
	port, err := stack.FreePort()
	e.must(err)
	brokenPort, err := stack.FreePort()
	e.must(err)
	file := filepath.Join(e.st.Tools.Repo, "demo", "docker-compose.yml")
	project := "socketioguard-demo"
	vars := []string{
		"DEMO_PORT=" + itoa(port), "DEMO_BROKEN_PORT=" + itoa(brokenPort),
		"DOCKER_SOCK=" + docker.Socket,
	}
	compose := func(args ...string) (string, error) {
		return docker.RunEnv(ctx, vars, append([]string{"compose", "-f", file}, args...)...)
	}
	downed := false
	down := func() {
		if out, err := compose("--profile", "broken", "down", "--volumes", "--remove-orphans", "--timeout", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
		downed = true
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := compose("--profile", "broken", "logs", "--no-color", "--tail", "80")
			t.Logf("compose logs:\n%s", logs)
		}
		if !downed {
			down()
		}
	})

	public := "http://127.0.0.1:" + itoa(port)
	began := time.Now()
	if out, err := compose("up", "--detach"); err != nil {
		t.Fatalf("compose up: %v\n%s", err, out)
	}
	// The Node services run npm ci (offline, from the image's cache) before
	// listening; Traefik routes once the Docker provider has read the labels.
	waitHandshake(t, public, 3*time.Minute)
	t.Logf("compose up → first handshake through Traefik: %s", time.Since(began).Round(time.Millisecond))

	local := func() stack.HandshakeAnswer {
		const url = "http://127.0.0.1:9000/socket.io/?EIO=4&transport=polling"
		script := `fetch(process.argv[1]).then(async r => console.log(JSON.stringify({status: r.status, type: r.headers.get("content-type"), body: await r.text()}))).catch(e => { console.error(String(e)); process.exit(1) })`
		out, err := compose("exec", "-T", "realtime", "node", "-e", script, url)
		a := stack.HandshakeAnswer{URL: url + " (inside the realtime container)", Err: err}
		var got struct {
			Status int
			Type   string
			Body   string
		}
		if err == nil {
			a.Err = json.Unmarshal([]byte(strings.TrimSpace(out)), &got)
		}
		a.Status, a.ContentType, a.Body = got.Status, got.Type, got.Body
		return a
	}
	for i, c := range stack.ReportChecks(e.st, public, local) {
		t.Logf("%d. %s: %v — %s", i+1, c.Name, c.OK, c.Detail)
		if !c.OK {
			t.Errorf("check %q failed: %s", c.Name, c.Detail)
		}
	}

	shots := os.Getenv("SOCKETIOGUARD_ARTIFACTS")
	if shots == "" {
		shots = t.TempDir()
	}
	browse := func(name, url string) {
		r := runBrowser(t, e, url, "connected", filepath.Join(shots, "compose-"+name+".png"))
		switch {
		case !r.OK:
			t.Errorf("%s: %s (console: %v)", name, r.Error, r.ConsoleErrors)
		case r.Transport != "websocket" || len(r.Messages) == 0 || r.Messages[len(r.Messages)-1].Via != "via websocket":
			t.Errorf("%s: transport %q, messages %+v", name, r.Transport, r.Messages)
		default:
			t.Logf("%s: the page ended on %s, message %q arrived %s", name, r.Transport, r.Messages[len(r.Messages)-1].Text, r.Messages[len(r.Messages)-1].Via)
		}
	}
	browse("page", public+"/")

	// The broken profile adds the front nginx that strips Upgrade/Connection.
	if out, err := compose("--profile", "broken", "up", "--detach"); err != nil {
		t.Fatalf("compose --profile broken up: %v\n%s", err, out)
	}
	brokenURL := "http://127.0.0.1:" + itoa(brokenPort)
	waitHandshake(t, brokenURL, time.Minute)
	before := inspectRoute(t, public)
	browse("behind the stripping front nginx", brokenURL+"/")
	after := inspectRoute(t, public)
	if after.Middleware != "sio-guard@docker" {
		t.Errorf("/socket.io/.guard answered for middleware %q, want sio-guard@docker (the labels' middleware)", after.Middleware)
	}
	if after.Counters.Repairs["upgrade"] <= before.Counters.Repairs["upgrade"] {
		t.Errorf("the guard repaired no upgrade behind the stripping nginx: repairs %v before, %v after", before.Counters.Repairs, after.Counters.Repairs)
	}
	t.Logf("/socket.io/.guard: middleware %s, repairs %v → %v, websocket upgrades %d", after.Middleware, before.Counters.Repairs, after.Counters.Repairs, after.Counters.WebsocketUpgrades)

	began = time.Now()
	down()
	t.Logf("compose down: %s", time.Since(began).Round(time.Millisecond))
	for _, kind := range []string{"container", "network", "volume"} {
		args := []string{kind, "ls", "--quiet", "--filter", "label=com.docker.compose.project=" + project}
		if kind == "container" {
			args = []string{"ps", "--all", "--quiet", "--filter", "label=com.docker.compose.project=" + project}
		}
		out, err := docker.Run(ctx, args...)
		if err != nil || strings.TrimSpace(out) != "" {
			t.Errorf("after down, %ss of %s are left: %q %v", kind, project, out, err)
		}
	}
}

// waitHandshake polls a public URL's Engine.IO handshake and the web app's
// ping until both answer (bounded in time).
func waitHandshake(t *testing.T, base string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, body, err := stack.Get(ctx, base+"/socket.io/?EIO=4&transport=polling", nil)
		cancel()
		if err == nil && resp.StatusCode == 200 && strings.HasPrefix(body, "0{") {
			// The realtime server calls the web app back to authenticate
			// a client: wait for the web app too (its ping).
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			resp, body, err = stack.Get(ctx, base+"/api/method/ping", nil)
			cancel()
			if err == nil && resp.StatusCode == 200 && strings.Contains(body, "pong") {
				return
			}
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%d %q", resp.StatusCode, stack.Trim(body, 120))
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("no Engine.IO handshake and web app ping at %s within %s: last %s", base, within, last)
}

type inspectAnswer struct {
	Middleware string `json:"middleware"`
	Counters   struct {
		WebsocketUpgrades int            `json:"websocketUpgrades"`
		Repairs           map[string]int `json:"repairs"`
	} `json:"counters"`
}

func inspectRoute(t *testing.T, base string) inspectAnswer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, body, err := stack.Get(ctx, base+"/socket.io/.guard", nil)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s/socket.io/.guard: %v %v %q", base, err, resp, stack.Trim(body, 200))
	}
	var a inspectAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		t.Fatalf("/socket.io/.guard: %v\n%s", err, stack.Trim(body, 400))
	}
	return a
}

// frappeSite is the site of the Frappe topology: its public name resolves to
// Traefik inside the compose network (an alias) and to 127.0.0.1 for the
// test's clients.
const frappeSite = "erp.example.test"

// frappeRun is one client's session through the Frappe topology, as the
// realtime server logged it.
type frappeRun struct {
	realtime, clientKind string
	recipe               bool
	pollingOrigin        string // Origin of the Engine.IO polling requests ("" when none)
	websocketOrigin      string // Origin of the websocket request
	callbackUser         string // whom Frappe's get_user_info callback answered for
	event                bool   // message_created arrived
	detail               string
}

// composeFrappe runs Frappe's production topology (e2e/frappedocker: Traefik
// with TLS, Frappe's frontend nginx directives, the Frappe-faithful realtime
// server and web app, Redis) without and with the recipe
// (examples/frappe-docker), with Frappe v15's and develop's callback client,
// and a client that polls first (Frappe desk, frappe-react-sdk) and one that
// opens a websocket first. It records which Origin reached the realtime
// server on polling and websocket requests, whom the callback answered for,
// and whether message_created arrived.
func composeFrappe(t *testing.T, e *env, docker *stack.Docker, ctx context.Context) {
	certs := t.TempDir()
	caFile := writeSiteCertificates(t, certs, frappeSite)
	httpsPort, err := stack.FreePort()
	e.must(err)
	httpPort, err := stack.FreePort()
	e.must(err)
	topology := filepath.Join(e.st.Tools.Repo, "e2e", "frappedocker", "compose.yaml")
	recipe := filepath.Join(e.st.Tools.Repo, "examples", "frappe-docker", "compose.socketioguard.yaml")
	base := []string{
		"DOCKER_SOCK=" + docker.Socket, "CERTS_DIR=" + certs, "SITE=" + frappeSite,
		"SITES_RULE=Host(`" + frappeSite + "`)",
		"HTTPS_PUBLISH_PORT=" + itoa(httpsPort), "HTTP_PUBLISH_PORT=" + itoa(httpPort),
	}
	compose := func(vars []string, withRecipe bool, args ...string) (string, error) {
		files := []string{"compose", "-f", topology}
		if withRecipe {
			files = append(files, "-f", recipe)
		}
		return docker.RunEnv(ctx, append(append([]string{}, base...), vars...), append(files, args...)...)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := compose(nil, true, "logs", "--no-color", "--tail", "60")
			t.Logf("compose logs:\n%s", logs)
		}
		if out, err := compose(nil, true, "down", "--volumes", "--remove-orphans", "--timeout", "5"); err != nil {
			t.Errorf("compose down: %v\n%s", err, out)
		}
	})
	client := siteClient(t, caFile, httpsPort)
	public := "https://" + frappeSite + ":" + itoa(httpsPort)
	doctorBin := buildDoctor(t, e)

	var runs []frappeRun
	for _, phase := range []struct {
		realtime string
		recipe   bool
	}{{"v15", false}, {"develop", false}, {"v15", true}, {"develop", true}} {
		vars := []string{"FRAPPE_REALTIME=" + phase.realtime}
		began := time.Now()
		if out, err := compose(vars, phase.recipe, "up", "--detach", "--remove-orphans"); err != nil {
			t.Fatalf("compose up (%s, recipe %v): %v\n%s", phase.realtime, phase.recipe, err, out)
		}
		waitFrappe(t, client, public, phase.recipe)
		t.Logf("frappe topology up (realtime %s, recipe %v) in %s", phase.realtime, phase.recipe, time.Since(began).Round(time.Millisecond))
		for _, kind := range []string{"polling first", "websocket first"} {
			run := frappeRun{realtime: phase.realtime, recipe: phase.recipe, clientKind: kind}
			since := time.Now().UTC().Add(-time.Second).Format(time.RFC3339Nano)
			transports := "polling,websocket"
			if kind == "websocket first" {
				transports = "websocket"
			}
			run.event, run.detail = frappeSession(t, e, client, public, caFile, transports)
			logs, err := compose(vars, phase.recipe, "logs", "--no-color", "--no-log-prefix", "--since", since, "websocket")
			e.must(err)
			run.pollingOrigin, run.websocketOrigin, run.callbackUser = readArrivals(logs)
			runs = append(runs, run)
			t.Logf("realtime %-7s recipe %-5v %-15s polling Origin %-28q websocket Origin %-28q callback user %-13q message_created %v %s",
				run.realtime, run.recipe, run.clientKind, run.pollingOrigin, run.websocketOrigin, run.callbackUser, run.event, run.detail)
		}
		if phase.realtime == "develop" {
			// The doctor from outside: its event step opens a websocket first.
			id := frappeDoctor(t, doctorBin, client, public, httpsPort, httpPort)
			if want := map[bool]string{false: "callback-scheme", true: ""}[phase.recipe]; id != want {
				t.Errorf("doctor, realtime develop, recipe %v: step 8 %q, want %q", phase.recipe, id, want)
			}
		}
	}

	// What the facts predict (notes: frappe.md, field-failures.md #18;
	// examples/frappe-docker/readme.md): polling requests carry Origin
	// https://<site> (X-Forwarded-Proto https maps through); the websocket
	// request carries http://<site> (Traefik's "wss" does not) unless the
	// recipe sets https; the session is authenticated on the first request,
	// so only a websocket-first client is called back over http://, which
	// Traefik redirects to https:// — v15's superagent keeps the ?sid=,
	// develop's fetch drops the Cookie: Guest, no events.
	for _, r := range runs {
		name := fmt.Sprintf("realtime %s, recipe %v, %s", r.realtime, r.recipe, r.clientKind)
		wantWS := "http://" + frappeSite
		if r.recipe {
			wantWS = "https://" + frappeSite
		}
		if r.clientKind == "polling first" && r.pollingOrigin != "https://"+frappeSite {
			t.Errorf("%s: polling Origin %q, want https://%s", name, r.pollingOrigin, frappeSite)
		}
		if r.websocketOrigin != wantWS {
			t.Errorf("%s: websocket Origin %q, want %s", name, r.websocketOrigin, wantWS)
		}
		broken := r.realtime == "develop" && !r.recipe && r.clientKind == "websocket first"
		switch {
		case broken && (r.event || r.callbackUser != "Guest"):
			t.Errorf("%s: expected the session lost on the http→https redirect (Guest, no events), got user %q, event %v", name, r.callbackUser, r.event)
		case !broken && (!r.event || r.callbackUser != "Administrator"):
			t.Errorf("%s: user %q, message_created %v (%s)", name, r.callbackUser, r.event, r.detail)
		}
	}
}

// frappeDoctor runs socketioguard doctor against the site as a user would
// (its public name; --connect-to sends 443 and 80 to the published ports),
// publishes message_created while step 8 waits, and returns step 8's id.
func frappeDoctor(t *testing.T, doctorBin string, client *http.Client, public string, httpsPort, httpPort int) string {
	t.Helper()
	go func() {
		time.Sleep(4 * time.Second)
		req, _ := http.NewRequest(http.MethodPost, public+"/api/method/raven.api.send_message", strings.NewReader(`{"channel_id":"general","text":"doctor"}`))
		req.Header.Set("Content-Type", "application/json")
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	out, _ := exec.Command(doctorBin, "doctor", "https://"+frappeSite, "--insecure",
		"--connect-to", frappeSite+":443:127.0.0.1:"+itoa(httpsPort), "--connect-to", frappeSite+":80:127.0.0.1:"+itoa(httpPort),
		"--namespace", "/"+frappeSite, "--cookie", "sid=frappe-session", "--wait-event", "message_created", "--subscribe", doctype+"/"+channel,
		"--timeout", "8s", "--json").Output()
	var r doctorReport
	if err := json.Unmarshal(out, &r); err != nil || len(r.Steps) < 8 {
		t.Fatalf("doctor --json: %v\n%s", err, out)
	}
	for _, s := range r.Steps[:6] {
		if s.Status == "fail" {
			t.Errorf("doctor step %d failed: %s %s", s.N, s.ID, s.Summary)
		}
	}
	t.Logf("doctor step 8: %s %s %s", r.Steps[7].Status, r.Steps[7].ID, r.Steps[7].Summary)
	return r.Steps[7].ID
}

// frappeSession connects a socket.io client as the site's page does (the
// session cookie, the site's namespace, Raven's channel), publishes
// message_created through the web app, and says whether it arrived.
func frappeSession(t *testing.T, e *env, client *http.Client, public, caFile, transports string) (bool, string) {
	run, err := e.st.StartClient("frappe-client", stack.ClientOptions{
		URL: public, Namespace: "/" + frappeSite, Transports: transports,
		Headers: []string{"Cookie: sid=frappe-session"}, Subscribe: "Raven Channel/general",
		WaitEvent: "message_created", Events: 1, Timeout: 12 * time.Second, Settle: 1500 * time.Millisecond,
		Resolve: frappeSite + "=127.0.0.1", Env: []string{"NODE_EXTRA_CA_CERTS=" + caFile},
	})
	e.must(err)
	defer run.Stop()
	ready, err := run.Next(20*time.Second, "ready")
	if err != nil || ready.Type != "ready" {
		return false, fmt.Sprintf("not connected: %v %v", err, ready.Errors)
	}
	req, _ := http.NewRequest(http.MethodPost, public+"/api/method/raven.api.send_message", strings.NewReader(`{"channel_id":"general","text":"frappe topology"}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return false, "send_message: " + err.Error()
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return false, fmt.Sprintf("send_message: %d", resp.StatusCode)
	}
	event, err := run.Next(10*time.Second, "event")
	if err != nil || event.Type != "event" {
		return false, fmt.Sprintf("(connected over %s; no message_created: %v)", ready.Transport, err)
	}
	return true, "(over " + ready.Transport + ")"
}

// readArrivals reads realtime.js --log-origins lines: the first Origin of a
// polling request and of a websocket request, and the callback's user.
func readArrivals(logs string) (polling, websocket, user string) {
	arrived := regexp.MustCompile(`arrived (request|upgrade) transport=(\S+) sid=\S+ origin=(\S+)`)
	answered := regexp.MustCompile(`callback for \S+ answered user=(\S+)`)
	for _, line := range strings.Split(logs, "\n") {
		if m := arrived.FindStringSubmatch(line); m != nil {
			origin := strings.TrimPrefix(m[3], "-")
			if m[2] == "polling" && polling == "" {
				polling = origin
			}
			if m[2] == "websocket" && websocket == "" {
				websocket = origin
			}
		}
		if m := answered.FindStringSubmatch(line); m != nil && user == "" {
			user = m[1]
		}
	}
	return polling, websocket, user
}

// waitFrappe waits until the site answers an Engine.IO handshake and
// Frappe's ping through Traefik and nginx and, with the recipe, the guard's
// router is the one serving /socket.io (an EIO=3 handshake gets the guard's
// refusal), without it, not.
func waitFrappe(t *testing.T, client *http.Client, public string, recipe bool) {
	t.Helper()
	get := func(path string) (*http.Response, string, error) {
		resp, err := client.Get(public + path)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return resp, string(body), nil
	}
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		ok, guarded, what := func() (bool, bool, string) {
			resp, body, err := get("/socket.io/?EIO=4&transport=polling")
			if err != nil {
				return false, false, err.Error()
			}
			if resp.StatusCode != 200 || !strings.HasPrefix(body, "0{") {
				return false, false, fmt.Sprintf("%d %q", resp.StatusCode, stack.Trim(body, 100))
			}
			probe, _, err := get("/socket.io/?EIO=3&transport=polling")
			if err != nil {
				return false, false, err.Error()
			}
			// The realtime server answering is not enough: its
			// authentication calls the web app back (get_user_info), and a
			// client that connects before the web app listens is refused
			// ("Unauthorized: Error: Bad Gateway"), so wait for Frappe's
			// ping through the site too.
			ping, pong, err := get("/api/method/ping")
			if err != nil {
				return false, false, err.Error()
			}
			if ping.StatusCode != 200 || !strings.Contains(pong, "pong") {
				return false, false, fmt.Sprintf("/api/method/ping: %d %q", ping.StatusCode, stack.Trim(pong, 100))
			}
			return true, probe.Header.Get("X-Socketio-Guard-Error") != "", "guard " + probe.Header.Get("X-Socketio-Guard-Error")
		}()
		if ok && guarded == recipe {
			return
		}
		last = what
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("the Frappe topology did not answer as expected (recipe %v) within 3 min: last %s", recipe, last)
}

// siteClient is an HTTPS client that trusts the test's CA and finds the
// site's name at 127.0.0.1:port.
func siteClient(t *testing.T, caFile string, port int) *http.Client {
	pemBytes, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemBytes)
	client := hostClient(port)
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{RootCAs: pool}
	return client
}

// writeSiteCertificates writes a CA (ca.pem), a certificate for the site
// signed by it, and Traefik's file-provider configuration serving it
// (tls.yml, paths as the proxy container mounts them at /certs).
func writeSiteCertificates(t *testing.T, dir, site string) string {
	t.Helper()
	ca, err := stack.NewCertificate(dir, "ca", nil, true, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stack.NewCertificate(dir, "site", []string{site}, false, ca); err != nil {
		t.Fatal(err)
	}
	tlsYAML := "tls:\n  stores:\n    default:\n      defaultCertificate:\n        certFile: /certs/site.pem\n        keyFile: /certs/site-key.pem\n"
	if err := os.WriteFile(filepath.Join(dir, "tls.yml"), []byte(tlsYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	// The containers read the key as another user than the test's.
	if err := os.Chmod(filepath.Join(dir, "site-key.pem"), 0o644); err != nil {
		t.Fatal(err)
	}
	return ca.CertFile
}
