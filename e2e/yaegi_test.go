package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/traefik/paerser/file"
	"github.com/traefik/paerser/parser"

	"github.com/sysmayal/socketioguard/e2e/interpreted"
)

// Yaegi conformance: the plugin loaded and configured exactly as Traefik
// v3.7.13 does it (package interpreted).

// interpretedPlugin is the plugin inside a Yaegi interpreter, with the
// writers Traefik would hand it as stdout and stderr.
type interpretedPlugin struct {
	*interpreted.Plugin
	stdout, stderr *interpreted.LockedBuffer
}

func loadInterpreted(t *testing.T) *interpretedPlugin {
	t.Helper()
	p := &interpretedPlugin{stdout: &interpreted.LockedBuffer{}, stderr: &interpreted.LockedBuffer{}}
	var err error
	if p.Plugin, err = interpreted.LoadWorkingTree(t.TempDir(), p.stdout, p.stderr); err != nil {
		t.Fatal(err)
	}
	return p
}

// mustNew decodes a plugin configuration as Traefik does and builds the
// middleware; it returns the decoded Config as JSON.
func (p *interpretedPlugin) mustNew(t *testing.T, conf map[string]any, name string) string {
	t.Helper()
	cfg, err := p.CreateConfig(conf)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if _, err := p.New(nopHandler{}, cfg, name); err != nil {
		t.Fatalf("%s: New refuses it: %v", name, err)
	}
	out, _ := json.Marshal(cfg.Interface())
	return string(out)
}

func (p *interpretedPlugin) handler(t *testing.T, next http.Handler, config map[string]any) http.Handler {
	t.Helper()
	h, err := p.Handler(next, config, "sio-guard@file")
	if err != nil {
		t.Fatalf("%v: %v", config, err)
	}
	return h
}

// The shape of Traefik's dynamic.Configuration (pkg/config/dynamic) for what
// this project configures — routers, services, the headers middleware and a
// middleware's plugin map (Middleware.Plugin map[string]PluginConf,
// PluginConf map[string]any) — with Traefik's tags, for paerser to decode into.
type dynamicConfiguration struct {
	HTTP *httpConfiguration `json:"http,omitempty" toml:"http,omitempty" yaml:"http,omitempty" export:"true"`
}

type httpConfiguration struct {
	Routers     map[string]*router     `json:"routers,omitempty" toml:"routers,omitempty" yaml:"routers,omitempty" export:"true"`
	Services    map[string]*service    `json:"services,omitempty" toml:"services,omitempty" yaml:"services,omitempty" export:"true"`
	Middlewares map[string]*middleware `json:"middlewares,omitempty" toml:"middlewares,omitempty" yaml:"middlewares,omitempty" export:"true"`
}

type router struct {
	EntryPoints []string `json:"entryPoints,omitempty" toml:"entryPoints,omitempty" yaml:"entryPoints,omitempty" export:"true"`
	Middlewares []string `json:"middlewares,omitempty" toml:"middlewares,omitempty" yaml:"middlewares,omitempty" export:"true"`
	Service     string   `json:"service,omitempty" toml:"service,omitempty" yaml:"service,omitempty" export:"true"`
	Rule        string   `json:"rule,omitempty" toml:"rule,omitempty" yaml:"rule,omitempty"`
	Priority    int      `json:"priority,omitempty" toml:"priority,omitempty,omitzero" yaml:"priority,omitempty" export:"true"`
}

type service struct {
	LoadBalancer *struct {
		Servers []struct {
			URL  string `json:"url,omitempty" toml:"url,omitempty" yaml:"url,omitempty" label:"-"`
			Port string `json:"-" toml:"-" yaml:"-"`
		} `json:"servers,omitempty" toml:"servers,omitempty" yaml:"servers,omitempty" label-slice-as-struct:"server" export:"true"`
	} `json:"loadBalancer,omitempty" toml:"loadBalancer,omitempty" yaml:"loadBalancer,omitempty" export:"true"`
}

type middleware struct {
	Headers *struct {
		CustomRequestHeaders map[string]string `json:"customRequestHeaders,omitempty" toml:"customRequestHeaders,omitempty" yaml:"customRequestHeaders,omitempty" export:"true"`
	} `json:"headers,omitempty" toml:"headers,omitempty" yaml:"headers,omitempty" export:"true"`
	Plugin map[string]pluginConf `json:"plugin,omitempty" toml:"plugin,omitempty" yaml:"plugin,omitempty" export:"true"`
}

type pluginConf map[string]any

// One configuration, as a user writes it in each provider.
var (
	dockerLabels = map[string]string{
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.paths":             "/socket.io/,/realtime/",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.mode":              "guard",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.eioVersions":       "4",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.transports":        "polling,websocket",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.repairUpgrade":     "true",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.normalizePath":     "false",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.setMissingOrigin":  "true",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.allowJSONP":        "true",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.diagnoseResponses": "true",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.fallbackStatus":    "404",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.logLevel":          "warn",
		"traefik.http.middlewares.sio-guard.plugin.socketioguard.inspectPath":       "/socket.io/.guard",
	}
	// The indexed list syntax of labels.
	dockerLabelsIndexed = func() map[string]string {
		labels := map[string]string{}
		for k, v := range dockerLabels {
			labels[k] = v
		}
		delete(labels, "traefik.http.middlewares.sio-guard.plugin.socketioguard.paths")
		labels["traefik.http.middlewares.sio-guard.plugin.socketioguard.paths[0]"] = "/socket.io/"
		labels["traefik.http.middlewares.sio-guard.plugin.socketioguard.paths[1]"] = "/realtime/"
		return labels
	}()
	fileYAML = `
http:
  middlewares:
    sio-guard:
      plugin:
        socketioguard:
          paths:
            - /socket.io/
            - /realtime/
          mode: guard
          eioVersions: [4]
          transports: [polling, websocket]
          repairUpgrade: true
          normalizePath: false
          setMissingOrigin: true
          allowJSONP: true
          diagnoseResponses: true
          fallbackStatus: 404
          logLevel: warn
          inspectPath: /socket.io/.guard
`
	fileTOML = `
[http.middlewares.sio-guard.plugin.socketioguard]
  paths = ["/socket.io/", "/realtime/"]
  mode = "guard"
  eioVersions = ["4"]
  transports = ["polling", "websocket"]
  repairUpgrade = true
  normalizePath = false
  setMissingOrigin = true
  allowJSONP = true
  diagnoseResponses = true
  fallbackStatus = 404
  logLevel = "warn"
  inspectPath = "/socket.io/.guard"
`
	// spec.plugin of a Kubernetes Middleware, as the API server hands it over (JSON).
	crdSpecPlugin = `{"socketioguard": {"paths": ["/socket.io/", "/realtime/"], "mode": "guard", "eioVersions": [4],
	  "transports": ["polling", "websocket"], "repairUpgrade": true, "normalizePath": false, "setMissingOrigin": true, "allowJSONP": true,
	  "diagnoseResponses": true, "fallbackStatus": 404, "logLevel": "warn", "inspectPath": "/socket.io/.guard"}}`
)

func pluginConfigFrom(t *testing.T, conf *dynamicConfiguration) map[string]any {
	t.Helper()
	if conf.HTTP == nil || conf.HTTP.Middlewares["sio-guard"] == nil {
		t.Fatalf("no sio-guard middleware decoded")
	}
	pc, ok := conf.HTTP.Middlewares["sio-guard"].Plugin["socketioguard"]
	if !ok {
		t.Fatalf("no socketioguard plugin configuration decoded")
	}
	return pc
}

// TestConfigDecodesAlikeFromEveryProvider: Docker labels (both list forms),
// a YAML file, a TOML file and a Kubernetes CRD must give the same Config.
func TestConfigDecodesAlikeFromEveryProvider(t *testing.T) {
	p := loadInterpreted(t)
	sources := map[string]map[string]any{}

	for name, labels := range map[string]map[string]string{"docker labels": dockerLabels, "docker labels, indexed lists": dockerLabelsIndexed} {
		conf := &dynamicConfiguration{HTTP: &httpConfiguration{}}
		// As Traefik's docker provider: label.DecodeConfiguration → parser.Decode.
		if err := parser.Decode(labels, conf, parser.DefaultRootName, "traefik.http"); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sources[name] = pluginConfigFrom(t, conf)
	}
	for name, content := range map[string]string{"dynamic.yml": fileYAML, "dynamic.toml": fileTOML} {
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		conf := &dynamicConfiguration{}
		// As Traefik's file provider.
		if err := file.Decode(path, conf); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		sources[name] = pluginConfigFrom(t, conf)
	}
	// As Traefik's CRD provider (createPluginMiddleware): JSON into PluginConf.
	crd := map[string]pluginConf{}
	if err := json.Unmarshal([]byte(crdSpecPlugin), &crd); err != nil {
		t.Fatal(err)
	}
	sources["kubernetes crd"] = crd["socketioguard"]

	var want string
	for name, raw := range sources {
		cfg, err := p.CreateConfig(raw)
		if err != nil {
			t.Fatalf("%s: decode: %v", name, err)
		}
		if _, err := p.New(http.NotFoundHandler(), cfg, "sio-guard@docker"); err != nil {
			t.Fatalf("%s: New refused it: %v", name, err)
		}
		got, _ := json.Marshal(cfg.Interface())
		t.Logf("%-28s → %s", name, got)
		if want == "" {
			want = string(got)
		} else if string(got) != want {
			t.Errorf("%s decodes to\n%s\nothers to\n%s", name, got, want)
		}
	}
	for _, field := range []string{`"paths":["/socket.io/","/realtime/"]`, `"eioVersions":["4"]`, `"fallbackStatus":404`, `"setMissingOrigin":true`, `"allowJSONP":true`} {
		if !strings.Contains(want, field) {
			t.Errorf("decoded config lacks %s: %s", field, want)
		}
	}
}

// TestBadConfigIsRefusedThroughTraefiksDecoder: the errors a user sees in
// Traefik's log for label values that decode but are wrong.
func TestBadConfigIsRefusedThroughTraefiksDecoder(t *testing.T) {
	p := loadInterpreted(t)
	cases := []struct {
		config  map[string]any
		wantErr string
	}{
		{map[string]any{"mode": "bogus"}, `mode "bogus" is not one of guard, fallback`},
		{map[string]any{"paths": "socket.io"}, `paths[0] "socket.io" must start with /`},
		{map[string]any{"fallbackStatus": "200"}, "fallbackStatus 200 is not an HTTP error status"},
		{map[string]any{"eioVersions": "4,5"}, `eioVersions[1] "5" is not one of 3, 4`},
		{map[string]any{"logLevel": "trace"}, `logLevel "trace" is not one of off, error, warn, info, debug`},
		{map[string]any{"inspectPath": "/socket.io"}, `inspectPath "/socket.io" is the Engine.IO path paths[0] "/socket.io/"`},
	}
	for _, c := range cases {
		cfg, err := p.CreateConfig(c.config)
		if err != nil {
			t.Fatalf("%v: decode: %v", c.config, err)
		}
		_, err = p.New(http.NotFoundHandler(), cfg, "sio-guard@docker")
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Errorf("%v: error %v, want %q", c.config, err, c.wantErr)
		}
	}
	// What mapstructure itself refuses (a word where a number belongs).
	if _, err := p.CreateConfig(map[string]any{"fallbackStatus": "many"}); err == nil {
		t.Errorf("fallbackStatus=many decoded")
	}
}

// TestInterpretedGuardInFrontOfAReverseProxy runs the request table through
// the interpreted handler in front of httputil.ReverseProxy (Traefik's proxy)
// to a real websocket backend: a 101 upgrade must complete through it.
func TestInterpretedGuardInFrontOfAReverseProxy(t *testing.T) {
	p := loadInterpreted(t)

	// A real Engine.IO-shaped backend: websocket echo with coder/websocket,
	// the polling handshake, and Engine.IO's 400 for unknown sessions.
	backend := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		q := req.URL.Query()
		switch {
		case q.Get("transport") == "websocket":
			conn, err := websocket.Accept(rw, req, &websocket.AcceptOptions{InsecureSkipVerify: true})
			if err != nil {
				return // Accept answered 400 (no upgrade headers)
			}
			defer conn.CloseNow()
			ctx := req.Context()
			for {
				typ, msg, err := conn.Read(ctx)
				if err != nil {
					return
				}
				if err := conn.Write(ctx, typ, bytes.Replace(msg, []byte("probe"), []byte("probe-echo"), 1)); err != nil {
					return
				}
			}
		case q.Get("sid") == "unknown":
			rw.Header().Set("Content-Type", "application/json")
			rw.WriteHeader(http.StatusBadRequest)
			io.WriteString(rw, `{"code":1,"message":"Session ID unknown"}`)
		default:
			rw.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			io.WriteString(rw, handshakeBody)
		}
	}))
	defer backend.Close()
	webApp := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		rw.Header().Set("Content-Type", "text/html")
		rw.WriteHeader(http.StatusNotFound)
		io.WriteString(rw, "<h1>Page not found</h1>")
	}))
	defer webApp.Close()

	proxyTo := func(u string) http.Handler {
		target, _ := url.Parse(u)
		return httputil.NewSingleHostReverseProxy(target)
	}
	guard := httptest.NewServer(p.handler(t, proxyTo(backend.URL), map[string]any{"logLevel": "warn"}))
	defer guard.Close()
	misrouted := httptest.NewServer(p.handler(t, proxyTo(webApp.URL), nil))
	defer misrouted.Close()
	fallback := httptest.NewServer(p.handler(t, proxyTo(webApp.URL), map[string]any{"mode": "fallback"}))
	defer fallback.Close()

	polling := []struct {
		name, base, target     string
		status                 int
		errorID, diagnosis, in string
	}{
		{"healthy handshake", guard.URL, "/socket.io/?EIO=4&transport=polling&t=x", 200, "", "", "0{"},
		{"query dropped", guard.URL, "/socket.io/", 400, "query-missing", "", `"error":"query-missing"`},
		{"old client", guard.URL, "/socket.io/?EIO=2&transport=polling", 400, "eio-unsupported", "", `"code":5`},
		{"unknown transport", guard.URL, "/socket.io/?EIO=4&transport=flashsocket", 400, "transport-unknown", "", `"code":0`},
		{"session on another replica", guard.URL, "/socket.io/?EIO=4&transport=polling&sid=unknown", 400, "", "session-unknown", `"code":1`},
		{"web app behind the Socket.IO router", misrouted.URL, "/socket.io/?EIO=4&transport=polling", 502, "backend-not-socketio", "", `"error":"backend-not-socketio"`},
		{"Socket.IO on the web router", fallback.URL, "/socket.io/?EIO=4&transport=polling", 421, "no-socketio-route", "", `"error":"no-socketio-route"`},
		{"web page on the web router", fallback.URL, "/app/raven", 404, "", "", "Page not found"},
	}
	for _, c := range polling {
		a := get(t, c.base+c.target, nil)
		if a.Status != c.status || a.Header.Get("X-Socketio-Guard-Error") != c.errorID ||
			a.Header.Get("X-Socketio-Guard-Diagnosis") != c.diagnosis || !strings.Contains(a.Body, c.in) {
			t.Errorf("%s: %d error=%q diagnosis=%q body %q", c.name, a.Status, a.Header.Get("X-Socketio-Guard-Error"),
				a.Header.Get("X-Socketio-Guard-Diagnosis"), a.Body)
		}
	}

	upgrades := []struct {
		name         string
		stripHeaders bool
		wantRepaired string
	}{
		{"websocket with upgrade headers intact", false, ""},
		{"websocket after a proxy stripped Upgrade/Connection", true, "upgrade"},
	}
	for _, c := range upgrades {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		client := &http.Client{Transport: &hopByHopStripper{strip: c.stripHeaders, next: http.DefaultTransport}}
		conn, resp, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(guard.URL, "http")+"/socket.io/?EIO=4&transport=websocket",
			&websocket.DialOptions{HTTPClient: client})
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			cancel()
			continue
		}
		if resp.StatusCode != 101 || resp.Header.Get("X-Socketio-Guard-Repaired") != c.wantRepaired {
			t.Errorf("%s: %d repaired=%q", c.name, resp.StatusCode, resp.Header.Get("X-Socketio-Guard-Repaired"))
		}
		if err := conn.Write(ctx, websocket.MessageText, []byte("2probe")); err != nil {
			t.Errorf("%s: write: %v", c.name, err)
		}
		if _, msg, err := conn.Read(ctx); err != nil || string(msg) != "2probe-echo" {
			t.Errorf("%s: after 101 read %q, %v", c.name, msg, err)
		}
		conn.Close(websocket.StatusNormalClosure, "")
		cancel()
	}
	if !strings.Contains(p.stdout.String(), "event=repaired-upgrade") {
		t.Errorf("the interpreted guard did not log the repair on its stdout: %q", p.stdout.String())
	}
	// Error level (stderr, what Traefik shows by default): what the backend's
	// answer proves; a rejection of the client's own request is a warning.
	if !strings.Contains(p.stderr.String(), "event=backend-not-socketio") || strings.Contains(p.stderr.String(), "event=query-missing") {
		t.Errorf("the interpreted guard's stderr should carry backend-not-socketio and no query-missing: %q", p.stderr.String())
	}
	if !strings.Contains(p.stdout.String(), "level=warn") || !strings.Contains(p.stdout.String(), "event=query-missing") {
		t.Errorf("the interpreted guard did not log the rejection at warn on its stdout: %q", p.stdout.String())
	}
}

// hopByHopStripper plays a proxy in front of Traefik that drops Upgrade and
// Connection but forwards Sec-WebSocket-* (as nginx does without the upgrade
// lines). Go's transport still hands over the connection on a 101.
type hopByHopStripper struct {
	strip bool
	next  http.RoundTripper
}

func (s *hopByHopStripper) RoundTrip(req *http.Request) (*http.Response, error) {
	if s.strip {
		req = req.Clone(req.Context())
		req.Header.Del("Upgrade")
		req.Header.Del("Connection")
	}
	return s.next.RoundTrip(req)
}

const handshakeBody = `0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`
