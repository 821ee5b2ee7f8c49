package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Site is the demo's Frappe site; its namespace is "/" + Site.
const Site = "raven.localhost"

// Demo is the report's deployment running locally: the web app (Frappe's
// 8000), the realtime server (9000), Traefik with the guard on one public
// entrypoint, and with Broken, the report's broken variants next to it.
type Demo struct {
	Stack    *Stack
	Redis    *Redis
	Webapp   *Webapp
	Realtime *Realtime
	Traefik  *Traefik
	Front    *Nginx // Broken only: the header-stripping front proxy
	// URL is the public entrypoint (http://127.0.0.1:8005 when free).
	URL string
	// Variants are the broken variants' URLs by name (Broken only).
	Variants map[string]string
}

// DemoOptions choose the public ports and the broken variants.
type DemoOptions struct {
	Port   int  // public entrypoint; 0 = 8005 (or a free port when busy)
	Broken bool // also start the stripped / misrouted / no-origin variants on Port+1..+3
	Tee    io.Writer
}

// StartDemo starts the demo's processes from the repository's own files:
// demo/traefik/*.yml, demo/nginx/*.conf, demo/page, e2e/node.
func StartDemo(st *Stack, o DemoOptions) (*Demo, error) {
	if o.Port == 0 {
		o.Port = 8005
	}
	demoDir := filepath.Join(st.Tools.Repo, "demo")
	d := &Demo{Stack: st, Variants: map[string]string{}}
	var err error
	// Frappe's redis_queue: the web app publishes events there, the realtime
	// server subscribes to them.
	if d.Redis, err = st.StartRedis("redis", 0); err != nil {
		return nil, err
	}
	d.Webapp, err = st.StartWebapp("webapp", WebappOptions{StaticDir: filepath.Join(demoDir, "page"), Site: Site, Redis: d.Redis.URL()})
	if err != nil {
		return nil, err
	}
	// No server_ip: the realtime server calls the Origin back, as Frappe does
	// by default, so the Origin the guard sets must reach the web app through
	// Traefik (the demo's web router).
	d.Realtime, err = st.StartRealtime("realtime", RealtimeOptions{Redis: d.Redis.URL()})
	if err != nil {
		return nil, err
	}
	realtimePort := d.Realtime.Port

	to := TraefikOptions{
		Name:         "traefik",
		EntryPoints:  []string{"web"},
		Ports:        map[string]int{"web": o.Port},
		DynamicFiles: []string{filepath.Join(demoDir, "traefik", "dynamic.yml")},
		Env: []string{
			"SIO_SITE=" + Site,
			"SIO_REALTIME_URL=" + fmt.Sprintf("http://127.0.0.1:%d", realtimePort),
			"SIO_WEBAPP_URL=" + d.Webapp.URL(),
		},
		Routers:  []string{"frappe-socketio@file", "frappe-web@file"},
		LogLevel: "DEBUG", // the guard's warn/info lines reach Traefik's log at DEBUG
		Tee:      o.Tee,
	}
	if o.Broken {
		to.EntryPoints = append(to.EntryPoints, "misrouted", "noorigin")
		to.Ports["misrouted"] = o.Port + 2
		to.Ports["noorigin"] = o.Port + 3
		to.DynamicFiles = append(to.DynamicFiles, filepath.Join(demoDir, "traefik", "broken.yml"))
		to.Routers = append(to.Routers, "misrouted-web@file", "no-origin-socketio@file")
	}
	d.Traefik, err = st.StartTraefik(to)
	if err != nil {
		return nil, err
	}
	d.URL = d.Traefik.URL("web")

	if o.Broken {
		conf, err := os.ReadFile(filepath.Join(demoDir, "nginx", "front-strips-upgrade.conf"))
		if err != nil {
			return nil, err
		}
		server := strings.NewReplacer("${FRONT_LISTEN}", "127.0.0.1:{{port}}", "${FRONT_UPSTREAM}", d.URL).Replace(string(conf))
		d.Front, err = st.StartNginxOn("front-nginx", o.Port+1, server)
		if err != nil {
			return nil, err
		}
		d.Variants["stripped"] = d.Front.URL()
		d.Variants["misrouted"] = d.Traefik.URL("misrouted")
		d.Variants["noorigin"] = d.Traefik.URL("noorigin")
	}
	return d, nil
}

// Check is one of the report's deployment checks.
type Check struct {
	Name   string
	OK     bool
	Detail string
}

// RunChecks runs the report's three deployment checks (section 3.3 / 4.2):
// the handshake on the realtime port, the same through Traefik, and a
// published message_created reaching a connected client without refresh.
func (d *Demo) RunChecks() []Check {
	local := fmt.Sprintf("http://127.0.0.1:%d/socket.io/?EIO=4&transport=polling", d.Realtime.Port)
	return ReportChecks(d.Stack, d.URL, func() HandshakeAnswer { return getHandshake(local) })
}

// HandshakeAnswer is what a polling handshake got: the curl of the report's
// checks, wherever it ran (this machine, or inside the realtime container).
type HandshakeAnswer struct {
	URL         string
	Status      int
	ContentType string
	Body        string
	Guard       string // X-Socketio-Guard-Error
	Err         error
}

// ReportChecks runs the report's three checks against a deployment: local
// answers the handshake on the realtime server's own port, public is the
// URL users reach (Traefik's entrypoint).
func ReportChecks(st *Stack, public string, local func() HandshakeAnswer) []Check {
	var checks []Check
	localKeys, localDetail, localOK := handshakeShape(local())
	checks = append(checks, Check{"local handshake (realtime port)", localOK, localDetail})

	extKeys, extDetail, extOK := handshakeShape(getHandshake(public + "/socket.io/?EIO=4&transport=polling"))
	if extOK && localOK && extKeys != localKeys {
		extOK, extDetail = false, fmt.Sprintf("Engine.IO JSON differs: %s through Traefik, %s locally", extKeys, localKeys)
	} else if extOK {
		extDetail += ", same Engine.IO JSON as locally"
	}
	checks = append(checks, Check{"external handshake (through Traefik)", extOK, extDetail})

	checks = append(checks, checkPublish(st, public))
	return checks
}

func getHandshake(url string) HandshakeAnswer {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, body, err := Get(ctx, url, nil)
	if err != nil {
		return HandshakeAnswer{URL: url, Err: err}
	}
	return HandshakeAnswer{URL: url, Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: body, Guard: resp.Header.Get("X-Socketio-Guard-Error")}
}

// handshakeShape describes a polling handshake's open packet.
func handshakeShape(a HandshakeAnswer) (keys, detail string, ok bool) {
	if a.Err != nil {
		return "", fmt.Sprintf("GET %s: %v", a.URL, a.Err), false
	}
	if a.Status != 200 || !strings.HasPrefix(a.Body, "0{") {
		return "", fmt.Sprintf("GET %s → %d %q (guard error %q)", a.URL, a.Status, Trim(a.Body, 120), a.Guard), false
	}
	var open map[string]any
	if err := json.Unmarshal([]byte(a.Body[1:]), &open); err != nil {
		return "", fmt.Sprintf("open packet %q: %v", Trim(a.Body, 120), err), false
	}
	names := make([]string, 0, len(open))
	for k := range open {
		names = append(names, k)
	}
	sort.Strings(names)
	return strings.Join(names, ","), fmt.Sprintf("curl %s → 200, %s, upgrades %v", a.URL, a.ContentType, open["upgrades"]), true
}

// checkPublish connects a socket.io client as the page does (no Origin on
// the polling handshake, the session cookie), sends a message through the
// web app's API, and waits for message_created.
func checkPublish(st *Stack, public string) Check {
	c := Check{Name: "publish_realtime → connected client"}
	run, err := st.StartClient("check-client", ClientOptions{
		URL: public, Namespace: "/" + Site, Headers: []string{"Cookie: sid=demo-check"},
		Subscribe: "Raven Channel/general", WaitEvent: "message_created", Events: 1,
		Timeout: 15 * time.Second, Settle: 1500 * time.Millisecond,
	})
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	defer run.Stop()
	ready, err := run.Next(20*time.Second, "ready")
	if err != nil || ready.Type != "ready" {
		c.Detail = fmt.Sprintf("the client did not connect: %v %v", err, ready.Errors)
		return c
	}
	started := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := postJSON(ctx, public+"/api/method/raven.api.send_message", `{"channel_id":"general","text":"deployment check"}`); err != nil {
		c.Detail = "send_message: " + err.Error()
		return c
	}
	event, err := run.Next(20*time.Second, "event")
	elapsed := time.Since(started)
	if err != nil {
		c.Detail = err.Error()
		return c
	}
	if event.Type != "event" {
		c.Detail = fmt.Sprintf("no message_created arrived (transport %s, errors %v)", event.Transport, event.Errors)
		return c
	}
	result, _ := run.Result(5 * time.Second)
	c.OK = true
	c.Detail = fmt.Sprintf("message_created reached a connected client over %s, %s after send_message", result.Transport, elapsed.Round(time.Millisecond))
	return c
}

// Trim keeps the beginning of a text, marking the cut.
func Trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
