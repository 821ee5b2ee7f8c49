package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/traefik/paerser/file"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// The site and channel of the report: Raven publishes message_created to the
// room doc:Raven Channel/<channel id> in the site's namespace.
const (
	site      = "raven.localhost"
	namespace = "/" + site
	channel   = "general"
	doctype   = "Raven Channel"
	room      = "doc:" + doctype + "/" + channel
	session   = "Cookie: sid=e2e-session"
)

// env is one scenario's stack; everything it started is stopped at the end,
// and every process's output is printed when the scenario failed.
type env struct {
	t          *testing.T
	st         *stack.Stack
	redisProc  *stack.Redis
	sessionApp *stack.Webapp
}

func newEnv(t *testing.T) *env {
	t.Helper()
	tools, err := stack.FindTools()
	if err != nil {
		t.Fatal(err)
	}
	st := stack.New(tools, t.TempDir())
	t.Cleanup(func() {
		st.StopAll()
		if t.Failed() {
			t.Logf("processes' output:\n%s", st.Logs())
			dumpNginxLogs(t, st.Dir)
		}
	})
	return &env{t: t, st: st}
}

func dumpNginxLogs(t *testing.T, dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		for _, name := range []string{"error.log", "access.log"} {
			if b, err := os.ReadFile(dir + "/" + e.Name() + "/logs/" + name); err == nil && len(b) > 0 {
				t.Logf("----- %s/%s -----\n%s", e.Name(), name, stack.Tail(string(b), 4000))
			}
		}
	}
}

func (e *env) must(err error) {
	e.t.Helper()
	if err != nil {
		e.t.Fatal(err)
	}
}

// realtime starts a Frappe-like realtime server subscribed to the env's
// Redis, whose session callbacks go to the env's web app (Frappe's
// server_ip), so that scenarios about the transport do not depend on the
// Origin being reachable; the scenarios about the Origin callback start
// theirs without it.
func (e *env) realtime(name string) *stack.Realtime {
	e.t.Helper()
	return e.realtimeWith(name, stack.RealtimeOptions{ServerIP: stack.Addr(e.sessions().Port)})
}

// redis is the env's Redis (Frappe's redis_queue), started once.
func (e *env) redis() *stack.Redis {
	e.t.Helper()
	if e.redisProc == nil {
		r, err := e.st.StartRedis("redis", 0)
		e.must(err)
		e.redisProc = r
	}
	return e.redisProc
}

// publish is frappe.publish_realtime through the env's web app and Redis.
func (e *env) publish(room, event string, message any) {
	e.t.Helper()
	_, err := e.sessions().Publish(site, room, event, message)
	e.must(err)
}

// realtimeWith starts one with options; the suite's clients wait for
// subscriptions to be acknowledged (AckSubscriptions), which Frappe does not do.
func (e *env) realtimeWith(name string, o stack.RealtimeOptions) *stack.Realtime {
	e.t.Helper()
	if o.Redis == "" {
		o.Redis = e.redis().URL()
	}
	o.AckSubscriptions = true
	rt, err := e.st.StartRealtime(name, o)
	e.must(err)
	return rt
}

// sessions is the web app that answers the realtime servers' session
// callbacks (get_user_info, can_subscribe_doc) and publishes events to the
// env's Redis, started once per env.
func (e *env) sessions() *stack.Webapp {
	e.t.Helper()
	if e.sessionApp == nil {
		w, err := e.st.StartWebapp("sessions", stack.WebappOptions{Site: site, Redis: e.redis().URL()})
		e.must(err)
		e.sessionApp = w
	}
	return e.sessionApp
}

func (e *env) webapp() *stack.Webapp {
	e.t.Helper()
	w, err := e.st.StartWebapp("webapp", stack.WebappOptions{})
	e.must(err)
	return w
}

func (e *env) nginx(name, servers string) *stack.Nginx {
	e.t.Helper()
	n, err := e.st.StartNginx(name, servers)
	e.must(err)
	return n
}

func (e *env) traefik(entryPoints []string, dynamic string, routers ...string) *stack.Traefik {
	e.t.Helper()
	tr, err := e.st.StartTraefik(stack.TraefikOptions{EntryPoints: entryPoints, Dynamic: dynamic, Routers: routers})
	e.must(err)
	return tr
}

// client runs socket.io-client against base as a Raven page would: the
// site's namespace, subscribed to the channel, waiting for message_created.
// With publish, the event is published once through Redis (as
// frappe.publish_realtime does) when the client reports ready.
func (e *env) client(name, base string, publish bool, headers ...string) stack.ClientEvent {
	e.t.Helper()
	opts := stack.ClientOptions{
		URL: base, Namespace: namespace, Headers: headers, Subscribe: doctype + "/" + channel,
		Timeout: 12 * time.Second, Settle: 1500 * time.Millisecond,
	}
	if publish {
		opts.WaitEvent = "message_created"
		opts.Events = 1
	}
	run, err := e.st.StartClient(name, opts)
	e.must(err)
	result, err := run.Next(15*time.Second, "ready")
	e.must(err)
	if result.Type == "ready" { // else the client ended without connecting
		if publish {
			e.publish(room, "message_created", ravenMessage(name))
		}
		result, err = run.Result(20 * time.Second)
		e.must(err)
	}
	e.t.Logf("%s: connected=%v transport=%s upgraded=%v events=%d errors=%v", name, result.Ever, result.Transport, result.Upgraded, len(result.Events), result.Errors)
	return result
}

// ravenMessage is Raven's message_created payload.
func ravenMessage(id string) map[string]any {
	return map[string]any{
		"channel_id": channel,
		"sender":     "Administrator",
		"message_id": "E2E-" + id,
		"message_details": map[string]any{
			"text": "Hello from " + id, "message_type": "Text",
		},
	}
}

func origin(base string) string { return "Origin: " + base }

// expectDelivered: the client connected, ended on the given transport and
// received the published event, exactly as published.
func expectDelivered(t *testing.T, r stack.ClientEvent, transport, id string) {
	t.Helper()
	if !r.Ever || r.Transport != transport {
		t.Errorf("client: connected=%v transport=%q, want connected on %s (errors %v)", r.Ever, r.Transport, transport, r.Errors)
	}
	if len(r.Events) != 1 {
		t.Fatalf("client received %d message_created events, want 1", len(r.Events))
	}
	var msg struct {
		ChannelID string `json:"channel_id"`
		MessageID string `json:"message_id"`
	}
	_ = json.Unmarshal(r.Events[0], &msg)
	if msg.ChannelID != channel || msg.MessageID != "E2E-"+id {
		t.Errorf("event payload = %s", r.Events[0])
	}
}

// expectStayedOnPolling: the websocket upgrade failed silently, as the report
// describes ("works, but slowly"): the event still arrived, over polling.
func expectStayedOnPolling(t *testing.T, r stack.ClientEvent, id string) {
	t.Helper()
	expectDelivered(t, r, "polling", id)
	if r.Upgraded {
		t.Errorf("the client upgraded to websocket: the upgrade headers were not lost")
	}
}

// expectRefused: the client never connected and saw the given error first.
func expectRefused(t *testing.T, r stack.ClientEvent, message string, status int) {
	t.Helper()
	if r.Ever {
		t.Fatalf("client connected, want refused with %q", message)
	}
	if len(r.Errors) == 0 || r.Errors[0].Message != message {
		t.Fatalf("client errors %v, want %q", r.Errors, message)
	}
	if status != 0 {
		var desc int
		_ = json.Unmarshal(r.Errors[0].Description, &desc)
		if desc != status {
			t.Errorf("client error description %s, want HTTP status %d", r.Errors[0].Description, status)
		}
	}
}

// guardAnswer is the JSON the guard writes itself.
type guardAnswer struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Guard   struct {
		Error  string `json:"error"`
		Detail string `json:"detail"`
		Hint   string `json:"hint"`
	} `json:"guard"`
}

// answer is what a plain HTTP request got.
type answer struct {
	Status int
	Header http.Header
	Body   string
}

func get(t *testing.T, url string, headers map[string]string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	resp, body, err := stack.Get(ctx, url, headers)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return answer{resp.StatusCode, resp.Header, body}
}

// expectGuardError: the answer is the guard's own, with the given id and status.
func expectGuardError(t *testing.T, a answer, status int, id string) guardAnswer {
	t.Helper()
	var g guardAnswer
	if a.Status != status || a.Header.Get("X-Socketio-Guard-Error") != id || a.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("answer %d %q %s=%q, want %d application/json %s (body %q)", a.Status, a.Header.Get("Content-Type"),
			"X-Socketio-Guard-Error", a.Header.Get("X-Socketio-Guard-Error"), status, id, a.Body)
	}
	if err := json.Unmarshal([]byte(a.Body), &g); err != nil || g.Guard.Error != id || g.Guard.Hint == "" {
		t.Fatalf("body %q is not the guard's JSON for %s", a.Body, id)
	}
	return g
}

// handshake opens an Engine.IO session by polling and returns its sid.
func handshake(t *testing.T, base string, headers map[string]string) (string, answer) {
	t.Helper()
	a := get(t, base+"/socket.io/?EIO=4&transport=polling&t=e2e", headers)
	if a.Status != 200 || !strings.HasPrefix(a.Body, "0{") {
		t.Fatalf("handshake through %s: %d %q", base, a.Status, a.Body)
	}
	var open struct {
		SID          string   `json:"sid"`
		Upgrades     []string `json:"upgrades"`
		PingInterval int      `json:"pingInterval"`
		PingTimeout  int      `json:"pingTimeout"`
	}
	if err := json.Unmarshal([]byte(a.Body[1:]), &open); err != nil || open.SID == "" {
		t.Fatalf("open packet %q: %v", a.Body, err)
	}
	return open.SID, a
}

// dialWebsocket attempts a websocket handshake and returns the HTTP answer
// (101 on success, with the connection closed again).
func dialWebsocket(t *testing.T, base, query string, headers map[string]string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	h := http.Header{}
	for k, v := range headers {
		h.Set(k, v)
	}
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?" + query
	conn, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h})
	if resp == nil {
		t.Fatalf("websocket %s: no HTTP answer: %v", url, err)
	}
	a := answer{Status: resp.StatusCode, Header: resp.Header}
	if conn != nil {
		_, first, rerr := conn.Read(ctx)
		if rerr == nil {
			a.Body = string(first)
		}
		conn.Close(websocket.StatusNormalClosure, "")
	} else if resp.Body != nil {
		buf := make([]byte, 512)
		n, _ := resp.Body.Read(buf)
		a.Body = string(buf[:n])
	}
	return a
}

// expectLog: Traefik's output carries a guard line with these fields.
func expectLog(t *testing.T, tr *stack.Traefik, fields ...string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		for _, line := range strings.Split(tr.Logs(), "\n") {
			if !strings.Contains(line, "socketioguard: level=") {
				continue
			}
			all := true
			for _, f := range fields {
				all = all && strings.Contains(line, f)
			}
			if all {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Errorf("no guard log line with %v in Traefik's output", fields)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Fragments of configuration shared by the scenarios.

// nginxProxy is a server block proxying everything to upstream; extra lines
// go into the location (e.g. the upgrade lines, or a rewrite).
func nginxProxy(upstream, extra string) string {
	return fmt.Sprintf(`
  server {
    listen 127.0.0.1:{{port}};
    location / {
      %s
      proxy_pass %s;
    }
  }`, extra, upstream)
}

// The report's nginx sidecar (section 3.2), pointed at upstream.
func reportSidecar(upstream string) string {
	return fmt.Sprintf(`
  upstream socketio_backend {
    server %s;
  }
  server {
    listen 127.0.0.1:{{port}};
    location /socket.io/ {
      proxy_pass http://socketio_backend;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Real-IP $remote_addr;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 86400;
      proxy_send_timeout 86400;
      proxy_buffering off;
    }
  }`, strings.TrimPrefix(upstream, "http://"))
}

// The same sidecar without the upgrade lines (nginx's defaults).
func sidecarWithoutUpgrade(upstream string) string {
	return fmt.Sprintf(`
  server {
    listen 127.0.0.1:{{port}};
    location /socket.io/ {
      proxy_pass %s;
      proxy_set_header Host $host;
      proxy_read_timeout 86400;
      proxy_buffering off;
    }
  }`, upstream)
}

const frappeSiteMiddleware = `
    frappe-site:
      headers:
        customRequestHeaders:
          X-Frappe-Site-Name: ` + site

func realtimeURL(rt *stack.Realtime) string { return fmt.Sprintf("http://127.0.0.1:%d", rt.Port) }

func itoa(n int) string { return fmt.Sprint(n) }

// decodeFile decodes a dynamic configuration file as Traefik's file provider does.
func decodeFile(path string, conf *dynamicConfiguration) error { return file.Decode(path, conf) }

type nopHandler struct{}

func (nopHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// guardedRoute is the dynamic configuration of the simplest guarded route:
// entrypoint websecure, router "sio" for /socket.io with the guard
// (configured by pluginYAML, a flow mapping) in front of upstream.
func guardedRoute(upstream, pluginYAML string) string {
	return fmt.Sprintf(`
http:
  middlewares:
    sio-guard:
      plugin:
        socketioguard: %s
  routers:
    sio:
      rule: PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [websecure]
      middlewares: [sio-guard]
      service: realtime
  services:
    realtime:
      loadBalancer:
        servers:
          - url: %s
`, pluginYAML, upstream)
}

// guardedAndPlainRoutes: the Frappe route to upstream twice, on entrypoint
// "guarded" with the guard (configured by pluginYAML, a flow mapping) and on
// "plain" without it, both with the site header — a scenario and its control.
// Host() is pinned, as every route whose guard may set the Origin must be.
func guardedAndPlainRoutes(upstream, pluginYAML string) string {
	return fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: %s
  routers:
    sio-guarded:
      rule: Host(`+"`127.0.0.1`"+`) && PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [guarded]
      middlewares: [frappe-site, sio-guard]
      service: realtime
    sio-plain:
      rule: Host(`+"`127.0.0.1`"+`) && PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [plain]
      middlewares: [frappe-site]
      service: realtime
  services:
    realtime:
      loadBalancer:
        servers:
          - url: %s
`, frappeSiteMiddleware, pluginYAML, upstream)
}

// frappeRoute: entrypoint websecure, router "frappe-socketio" for /socket.io
// with the site header and the guard (configured by pluginYAML, a flow
// mapping) in front of upstream (e.g. the nginx sidecar).
func frappeRoute(upstream, pluginYAML string) string {
	return fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: %s
  routers:
    frappe-socketio:
      rule: Host(`+"`127.0.0.1`"+`) && PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [websecure]
      middlewares: [frappe-site, sio-guard]
      service: frappe-socketio
  services:
    frappe-socketio:
      loadBalancer:
        servers:
          - url: %s
`, frappeSiteMiddleware, pluginYAML, upstream)
}

// traefikLine is a Traefik the suite builds: its name in test output and
// the stack's Line for it ("" is the main one).
type traefikLine struct{ name, line string }

// everyTraefikLine: the main Traefik, v3.6 and v2.11 (v3 embeds Yaegi
// v0.16, v2 v0.15).
var everyTraefikLine = []traefikLine{{stack.MainTraefik, ""}, {"v3.6.12", "v3.6"}, {"v2.11.54", "v2"}}

// onTraefikLines runs run on each line, the lines in parallel.
func onTraefikLines(t *testing.T, lines []traefikLine, run func(t *testing.T, line string)) {
	for _, l := range lines {
		l := l
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			run(t, l.line)
		})
	}
}

// startGuardedAndPlain starts a Traefik of line with guardedAndPlainRoutes
// to upstream: the Frappe recipe's guard on entrypoint "guarded", none on
// "plain".
func startGuardedAndPlain(e *env, line, name, upstream string) *stack.Traefik {
	tr, err := e.st.StartTraefik(stack.TraefikOptions{Line: line, Name: name + line,
		EntryPoints: []string{"guarded", "plain"}, Routers: []string{"sio-guarded@file", "sio-plain@file"},
		Dynamic: guardedAndPlainRoutes(upstream, `{setMissingOrigin: true, eioVersions: "4"}`),
	})
	e.must(err)
	return tr
}
