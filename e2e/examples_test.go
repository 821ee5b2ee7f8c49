package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// exampleEnv fills the examples' {{ env "…" }} templates as Traefik's file
// provider would from its environment.
func renderExample(t *testing.T, path string, env map[string]string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return regexp.MustCompile(`\{\{ env "(\w+)" \}\}`).ReplaceAllStringFunc(string(raw), func(m string) string {
		return env[m[len(`{{ env "`):len(m)-len(`" }}`)]]
	})
}

// TestExamplesAreWhatTraefikReads: every examples/*/dynamic.yml decodes with
// Traefik's own file decoder (paerser), each socketioguard middleware's
// configuration goes through Traefik's plugin decoding to New, and every
// router whose guard sets the Origin pins Host().
func TestExamplesAreWhatTraefikReads(t *testing.T) {
	tools, _ := stack.FindTools()
	files, _ := filepath.Glob(filepath.Join(tools.Repo, "examples", "*", "dynamic.yml"))
	if len(files) < 2 {
		t.Fatalf("examples: %v", files)
	}
	p := loadInterpreted(t)
	for _, file := range files {
		rendered := renderExample(t, file, map[string]string{"SITE_HOST": "v2.sysmayal.cloud", "SITE_NAME": "v2.sysmayal.cloud",
			"SOCKETIO_URL": "http://127.0.0.1:9000", "WEB_URL": "http://127.0.0.1:8000"})
		path := filepath.Join(t.TempDir(), "dynamic.yml")
		if err := os.WriteFile(path, []byte(rendered), 0o644); err != nil {
			t.Fatal(err)
		}
		conf := &dynamicConfiguration{}
		if err := decodeFile(path, conf); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		setsOrigin := map[string]bool{}
		for name, m := range conf.HTTP.Middlewares {
			if m.Plugin == nil || m.Plugin["socketioguard"] == nil {
				continue
			}
			decoded := p.mustNew(t, m.Plugin["socketioguard"], filepath.Base(filepath.Dir(file))+"/"+name+"@file")
			setsOrigin[name] = strings.Contains(decoded, `"setMissingOrigin":true`)
		}
		for name, r := range conf.HTTP.Routers {
			for _, mw := range r.Middlewares {
				if setsOrigin[mw] && !strings.Contains(r.Rule, "Host(") {
					t.Errorf("%s: router %s uses %s (setMissingOrigin) without pinning Host(): %s", file, name, mw, r.Rule)
				}
			}
		}
	}
}

// TestNginxFrontExample runs examples/nginx-front for real: nginx terminating
// TLS in front of Traefik. With the example's forwardedHeaders.trustedIPs the
// Origin the guard sets is https://…; without it Traefik replaces
// X-Forwarded-Proto and the Origin says http:// — the URL Frappe calls back.
func TestNginxFrontExample(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dir := filepath.Join(e.st.Tools.Repo, "examples", "nginx-front")
	var static struct {
		EntryPoints map[string]struct {
			ForwardedHeaders struct {
				TrustedIPs []string `yaml:"trustedIPs"`
			} `yaml:"forwardedHeaders"`
		} `yaml:"entryPoints"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, "traefik.yml"))
	e.must(err)
	e.must(yaml.Unmarshal(raw, &static))
	trusted := static.EntryPoints["web"].ForwardedHeaders.TrustedIPs
	if len(trusted) == 0 {
		t.Fatalf("examples/nginx-front/traefik.yml trusts no front proxy")
	}
	// The Socket.IO server's stand-in answers a handshake carrying the Origin it got.
	echo := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		body, _ := json.Marshal(map[string]string{"sid": "echo", "origin": req.Header.Get("Origin")})
		_, _ = rw.Write(append([]byte("0"), body...))
	}))
	t.Cleanup(echo.Close)
	web := e.webapp()
	certFile, keyFile := writeCertificate(t, e.st.Dir, "127.0.0.1")
	confTemplate, err := os.ReadFile(filepath.Join(dir, "nginx.conf"))
	e.must(err)

	origins := map[string]string{}
	for _, variant := range []string{"trusted", "untrusted"} {
		o := stack.TraefikOptions{Name: "traefik-" + variant, EntryPoints: []string{"web"}, Routers: []string{"frappe-socketio@file"},
			DynamicFiles: []string{filepath.Join(dir, "dynamic.yml")},
			Env:          []string{"SITE_HOST=127.0.0.1", "SITE_NAME=" + site, "SOCKETIO_URL=" + echo.URL, "WEB_URL=" + web.URL()}}
		if variant == "trusted" {
			o.EntryPointYAML = map[string]string{"web": "forwardedHeaders:\n  trustedIPs: [" + strings.Join(trusted, ", ") + "]"}
		}
		tr, err := e.st.StartTraefik(o)
		e.must(err)
		front := e.nginx("front-"+variant, strings.NewReplacer("${LISTEN}", "127.0.0.1:{{port}}", "${CERT}", certFile, "${KEY}", keyFile,
			"${TRAEFIK}", tr.URL("web")).Replace(string(confTemplate)))
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := client.Get("https://127.0.0.1:" + itoa(front.Port) + "/socket.io/?EIO=4&transport=polling")
		e.must(err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var open struct {
			Origin string `json:"origin"`
		}
		if resp.StatusCode != 200 || len(body) < 2 || json.Unmarshal(body[1:], &open) != nil {
			t.Fatalf("%s: %d %q", variant, resp.StatusCode, body)
		}
		origins[variant] = open.Origin
	}
	if origins["trusted"] != "https://127.0.0.1" || origins["untrusted"] != "http://127.0.0.1" {
		t.Errorf("Origin set by the guard: with trustedIPs %q, without %q; want https://127.0.0.1 and http://127.0.0.1", origins["trusted"], origins["untrusted"])
	}
}
