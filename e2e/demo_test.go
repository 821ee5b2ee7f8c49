package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/traefik/paerser/parser"
	"gopkg.in/yaml.v3"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestDemoCommandRunsTheReportsChecks runs `make demo`'s command the way a
// user does (with --checks-only so it ends) and expects three PASS lines.
func TestDemoCommandRunsTheReportsChecks(t *testing.T) {
	t.Parallel()
	port, err := stack.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/demo").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/demo: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "--checks-only", "--port", itoa(port))
	out, err := cmd.CombinedOutput()
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("demo --checks-only: %v", err)
	}
	for _, check := range []string{"PASS  1. local handshake", "PASS  2. external handshake", "PASS  3. publish_realtime"} {
		if !strings.Contains(string(out), check) {
			t.Errorf("demo output lacks %q", check)
		}
	}
}

// TestBrowserRavenPage drives the demo's channel page in headless Chromium:
// the message appears without reload over websocket — also behind the front
// proxy that strips the upgrade headers — and the broken variants show the
// guard's explanation instead of a vague banner.
func TestBrowserRavenPage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	chromium := chromiumPath()
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("no Chromium at %s: run scripts/setup-e2e.sh --browser (make e2e does)", chromium)
	}
	port, err := stack.FreePort()
	e.must(err)
	demo, err := stack.StartDemo(e.st, stack.DemoOptions{Port: port, Broken: true})
	e.must(err)
	shots := os.Getenv("SOCKETIOGUARD_ARTIFACTS")
	if shots == "" {
		shots = t.TempDir()
	}

	cases := []struct {
		name, url, expect string
		wantProblem       string
		wantHint          string
	}{
		{"main page", demo.URL + "/", "connected", "", ""},
		{"behind a front proxy that strips Upgrade/Connection", demo.Variants["stripped"] + "/", "connected", "", ""},
		{"misrouted /socket.io", demo.Variants["misrouted"] + "/", "problem", "no-socketio-route", "PathPrefix(`/socket.io`)"},
		{"no Origin repair", demo.Variants["noorigin"] + "/", "problem", "(refused by the Socket.IO server)", "setMissingOrigin"},
	}
	for i, c := range cases {
		shot := filepath.Join(shots, "browser-"+itoa(i+1)+".png")
		r := runBrowser(t, e, c.url, c.expect, shot)
		if !r.OK {
			t.Errorf("%s: %s (console: %v)", c.name, r.Error, r.ConsoleErrors)
			continue
		}
		if r.Reloaded {
			t.Errorf("%s: the page reloaded", c.name)
		}
		if c.expect == "connected" {
			last := r.Messages[len(r.Messages)-1]
			if r.Transport != "websocket" || last.Via != "via websocket" {
				t.Errorf("%s: transport %q, message %+v", c.name, r.Transport, last)
			}
		} else if r.Problem == nil || r.Problem.ID != c.wantProblem || !strings.Contains(r.Problem.Hint, c.wantHint) {
			t.Errorf("%s: page shows %+v, want %s with a hint about %s", c.name, r.Problem, c.wantProblem, c.wantHint)
		}
		t.Logf("%s: transport=%s problem=%+v screenshot %s", c.name, r.Transport, r.Problem, shot)
	}
	// The header-stripping proxy's websocket was repaired by the guard.
	expectLog(t, demo.Traefik, "event=repaired-upgrade", "host=127.0.0.1:"+itoa(demo.Front.Port))
}

type browserResult struct {
	OK        bool   `json:"ok"`
	Transport string `json:"transport"`
	Messages  []struct {
		Text string `json:"text"`
		Via  string `json:"via"`
	} `json:"messages"`
	Problem *struct {
		ID     string `json:"id"`
		Cause  string `json:"cause"`
		Detail string `json:"detail"`
		Hint   string `json:"hint"`
	} `json:"problem"`
	Reloaded      bool     `json:"reloaded"`
	ConsoleErrors []string `json:"consoleErrors"`
	Error         string   `json:"error"`
}

func runBrowser(t *testing.T, e *env, url, expect, screenshot string) browserResult {
	t.Helper()
	p, err := e.st.Start("chromium "+expect, nil, e.st.Tools.Node, filepath.Join(e.st.Tools.NodeDir, "browser.js"),
		"--url", url, "--expect", expect, "--screenshot", screenshot, "--timeout", "20000")
	e.must(err)
	select {
	case <-waitChan(p):
	case <-time.After(60 * time.Second):
		p.Stop()
		t.Fatalf("browser.js did not finish within 60 s:\n%s", p.Logs())
	}
	lines := strings.Split(strings.TrimSpace(p.Logs()), "\n")
	var r browserResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("browser.js output: %v\n%s", err, p.Logs())
	}
	return r
}

func waitChan(p *stack.Process) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		p.Wait()
		close(ch)
	}()
	return ch
}

// TestDemoComposeFile reads the compose file without an engine (compose_test.go
// runs it on one): it parses, every mounted path exists, the plugin is
// mounted where Traefik looks for local plugins, and the plugin
// configuration in its labels decodes (paerser, then mapstructure) into what
// New accepts — the same configuration as demo/traefik/dynamic.yml, which
// `make demo` uses.
func TestDemoComposeFile(t *testing.T) {
	tools, _ := stack.FindTools()
	demoDir := filepath.Join(tools.Repo, "demo")
	raw, err := os.ReadFile(filepath.Join(demoDir, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Command     any               `yaml:"command"`
			WorkingDir  string            `yaml:"working_dir"`
			Volumes     []string          `yaml:"volumes"`
			Labels      []string          `yaml:"labels"`
			Ports       []string          `yaml:"ports"`
			Environment map[string]string `yaml:"environment"`
			Profiles    []string          `yaml:"profiles"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &compose); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	images := map[string]string{"traefik": "traefik:" + stack.MainTraefik, "realtime": "node:20", "webapp": "node:20", "front-nginx": "nginx:", "redis": "redis:7"}
	for name, prefix := range images {
		svc, ok := compose.Services[name]
		if !ok || !strings.HasPrefix(svc.Image, prefix) {
			t.Errorf("service %s: image %q, want %s…", name, svc.Image, prefix)
		}
		if name == "traefik" && svc.Image != prefix {
			t.Errorf("service traefik: image %q, want exactly %s (the release the suite runs)", svc.Image, prefix)
		}
	}

	labels := map[string]string{}
	for name, svc := range compose.Services {
		for _, v := range svc.Volumes {
			if strings.HasPrefix(v, "${DOCKER_SOCK:-/var/run/docker.sock}:") {
				continue // the Docker engine's socket, on the user's machine
			}
			host, target, _ := strings.Cut(v, ":")
			if strings.Contains(v, "docker.sock") {
				t.Errorf("service %s mounts the engine's socket as %q: its path should come from DOCKER_SOCK, default /var/run/docker.sock", name, host)
			}
			if _, err := os.Stat(filepath.Join(demoDir, host)); err != nil {
				t.Errorf("service %s mounts %s, which does not exist", name, host)
			}
			if name == "traefik" && strings.HasPrefix(target, "/plugins-local/src/") {
				if target != "/plugins-local/src/"+stack.PluginModule+":ro" && target != "/plugins-local/src/"+stack.PluginModule {
					t.Errorf("plugin mounted at %s", target)
				}
				if _, err := os.Stat(filepath.Join(demoDir, host, ".traefik.yml")); err != nil {
					t.Errorf("the plugin mount %s has no .traefik.yml", host)
				}
			}
		}
		for _, l := range svc.Labels {
			k, v, _ := strings.Cut(l, "=")
			labels[k] = v
		}
	}
	command, _ := json.Marshal(compose.Services["traefik"].Command)
	if !strings.Contains(string(command), "--experimental.localplugins.socketioguard.modulename="+stack.PluginModule) ||
		compose.Services["traefik"].WorkingDir != "/" || strings.Contains(string(command), "api.insecure") || strings.Contains(string(command), "--api.dashboard=true") {
		t.Errorf("traefik's command/working_dir do not load the local plugin as documented: %s (working_dir %q)", command, compose.Services["traefik"].WorkingDir)
	}

	// Labels → dynamic configuration, as Traefik's docker provider decodes them.
	fromLabels := &dynamicConfiguration{HTTP: &httpConfiguration{}}
	if err := parser.Decode(labels, fromLabels, parser.DefaultRootName, "traefik.http"); err != nil {
		t.Fatalf("labels do not decode: %v", err)
	}
	// demo/traefik/dynamic.yml, with its env templates filled as make demo fills them.
	dynamic, err := os.ReadFile(filepath.Join(demoDir, "traefik", "dynamic.yml"))
	if err != nil {
		t.Fatal(err)
	}
	rendered := regexp.MustCompile(`\{\{ env "(\w+)" \}\}`).ReplaceAllStringFunc(string(dynamic), func(m string) string {
		return map[string]string{"SIO_SITE": stack.Site, "SIO_REALTIME_URL": "http://127.0.0.1:9000", "SIO_WEBAPP_URL": "http://127.0.0.1:8000"}[m[len(`{{ env "`):len(m)-len(`" }}`)]]
	})
	fromFile := &dynamicConfiguration{}
	path := filepath.Join(t.TempDir(), "dynamic.yml")
	e := os.WriteFile(path, []byte(rendered), 0o644)
	if e != nil {
		t.Fatal(e)
	}
	if err := decodeFile(path, fromFile); err != nil {
		t.Fatalf("demo/traefik/dynamic.yml: %v", err)
	}

	// Same routers (rule, entrypoints, middlewares, service) and site header.
	for name, want := range fromFile.HTTP.Routers {
		got := fromLabels.HTTP.Routers[name]
		if got == nil || got.Rule != want.Rule || strings.Join(got.Middlewares, ",") != strings.Join(want.Middlewares, ",") ||
			got.Service != want.Service || strings.Join(got.EntryPoints, ",") != strings.Join(want.EntryPoints, ",") {
			t.Errorf("router %s: labels %+v, dynamic.yml %+v", name, got, want)
		}
	}
	site := func(c *dynamicConfiguration) string {
		m := c.HTTP.Middlewares["frappe-site"]
		if m == nil || m.Headers == nil {
			return ""
		}
		return m.Headers.CustomRequestHeaders["X-Frappe-Site-Name"]
	}
	if site(fromLabels) != stack.Site || site(fromFile) != stack.Site {
		t.Errorf("X-Frappe-Site-Name: labels %q, dynamic.yml %q", site(fromLabels), site(fromFile))
	}

	p := loadInterpreted(t)
	for _, mw := range []string{"sio-guard", "sio-fallback"} {
		var decoded []string
		for source, conf := range map[string]*dynamicConfiguration{"labels": fromLabels, "dynamic.yml": fromFile} {
			m := conf.HTTP.Middlewares[mw]
			if m == nil || m.Plugin["socketioguard"] == nil {
				t.Fatalf("%s: no %s plugin middleware", source, mw)
			}
			decoded = append(decoded, p.mustNew(t, m.Plugin["socketioguard"], source+" "+mw+"@docker"))
		}
		if decoded[0] != decoded[1] {
			t.Errorf("%s differs between compose labels and dynamic.yml:\n%s\n%s", mw, decoded[0], decoded[1])
		}
	}
}

// TestComposeFileLoadsWithTheComposeSpec: the compose file as docker compose
// v2 reads it — the Compose specification's reference loader
// (compose-spec/compose-go/v2), every profile on — with the same services
// and the same Traefik labels as the plain YAML reading above checks.
func TestComposeFileLoadsWithTheComposeSpec(t *testing.T) {
	tools, _ := stack.FindTools()
	file := filepath.Join(tools.Repo, "demo", "docker-compose.yml")
	opts, err := cli.NewProjectOptions([]string{file}, cli.WithProfiles([]string{"*"}), cli.WithWorkingDirectory(filepath.Dir(file)))
	if err != nil {
		t.Fatal(err)
	}
	project, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("compose-go refuses demo/docker-compose.yml: %v", err)
	}
	if project.Name != "socketioguard-demo" {
		t.Errorf("project name %q", project.Name)
	}
	raw, _ := os.ReadFile(file)
	var plain struct {
		Services map[string]struct {
			Labels []string `yaml:"labels"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &plain); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"traefik", "realtime", "webapp", "redis", "front-nginx"} {
		svc, ok := project.Services[name]
		if !ok {
			t.Errorf("service %s missing with every profile on (loaded: %v)", name, project.ServiceNames())
			continue
		}
		for _, l := range plain.Services[name].Labels {
			k, v, _ := strings.Cut(l, "=")
			if svc.Labels[k] != v {
				t.Errorf("%s: label %s is %q for compose-go, %q in the file", name, k, svc.Labels[k], v)
			}
		}
	}
}
