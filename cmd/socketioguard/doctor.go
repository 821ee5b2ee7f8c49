package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Step results.
const (
	pass = "pass"
	fail = "fail"
	skip = "skip"
)

// step is one line of the report.
type step struct {
	N        int     `json:"n"`
	Name     string  `json:"name"`
	Status   string  `json:"status"`
	ID       string  `json:"id,omitempty"` // the plugin's error ids where the cause is the same
	Summary  string  `json:"summary"`
	Evidence *answer `json:"evidence,omitempty"`
	Fix      string  `json:"fix,omitempty"`
}

// report is the doctor's whole answer (--json prints it as is).
type report struct {
	URL       string `json:"url"`
	Namespace string `json:"namespace"`
	OK        bool   `json:"ok"`
	Steps     []step `json:"steps"`
}

type doctorOptions struct {
	rawURL        string
	path          string
	namespace     string
	origin        string
	cookie        string
	eio           string
	replicasCheck int
	waitEvent     string
	subscribe     string
	timeout       time.Duration
	insecure      bool
}

// doctor runs the checks in order. A failure of the network, the handshake
// or the polling round trip is hard (nothing after it can work, so the rest
// is skipped and says so); later failures are reported and the run goes on.
func doctor(ctx context.Context, o doctorOptions) report {
	d := &session{o: o}
	r := report{URL: o.rawURL, Namespace: o.namespace}
	t, err := newTarget(o)
	if err != nil {
		r.Steps = append(r.Steps, step{N: 1, Name: "network", Status: fail, ID: "bad-url", Summary: err.Error(),
			Fix: "give the site's URL, e.g. https://v2.sysmayal.cloud (the path defaults to /socket.io/)"})
		return finish(r)
	}
	d.t = t
	checks := []struct {
		name string
		hard bool
		run  func(context.Context) step
	}{
		{"network", true, d.network},
		{"handshake", true, d.handshake},
		{"polling", true, d.polling},
		{"upgrade", false, d.upgrade},
		{"websocket", false, d.directWebsocket},
		{"namespace", false, d.namespaceConnect},
		{"stickiness", false, d.stickiness},
		{"event", false, d.event},
	}
	stopped := ""
	for i, c := range checks {
		var s step
		if stopped != "" {
			s = step{Status: skip, Summary: "skipped: " + stopped}
		} else {
			s = c.run(ctx)
		}
		s.N, s.Name = i+1, c.name
		r.Steps = append(r.Steps, s)
		if s.Status == fail && c.hard {
			stopped = fmt.Sprintf("step %d (%s) failed", i+1, c.name)
		}
	}
	return finish(r)
}

func finish(r report) report {
	r.OK = true
	for _, s := range r.Steps {
		if s.Status == fail {
			r.OK = false
		}
	}
	return r
}

// session carries what one step learns for the next (the sid, the namespace answer).
type session struct {
	o               doctorOptions
	t               *target
	open            openPacket
	namespaceResult string // what the polling GET said to the CONNECT packet
	namespaceOK     bool
	namespaceSeen   bool
}

func (d *session) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, d.o.timeout)
}

// 1. DNS, TCP, TLS.
func (d *session) network(parent context.Context) step {
	ctx, cancel := d.ctx(parent)
	defer cancel()
	host, port := d.t.base.Hostname(), d.t.base.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[d.t.base.Scheme]
	}
	addrs, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		return step{Status: fail, ID: "dns", Summary: fmt.Sprintf("cannot resolve %s: %v", host, err), Fix: "check the host name and its DNS records"}
	}
	started := time.Now()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", net.JoinHostPort(host, port))
	if err != nil {
		return step{Status: fail, ID: "tcp", Summary: fmt.Sprintf("%s → %v: cannot connect to port %s: %v", host, addrs, port, err),
			Fix: "nothing listens there: check the entrypoint's port, firewalls, and that the proxy runs"}
	}
	defer conn.Close()
	summary := fmt.Sprintf("%s → %s, TCP to port %s in %s", host, strings.Join(addrs, ","), port, time.Since(started).Round(100*time.Microsecond))
	if d.t.base.Scheme != "https" {
		return step{Status: pass, Summary: summary + " (no TLS)"}
	}
	tc := tls.Client(conn, &tls.Config{ServerName: host, InsecureSkipVerify: true}) //nolint:gosec // verified below, to report why
	if err := tc.HandshakeContext(ctx); err != nil {
		return step{Status: fail, ID: "tls", Summary: "TLS handshake failed: " + err.Error(), Fix: "check the entrypoint's TLS configuration (certResolver, certificates)"}
	}
	certs := tc.ConnectionState().PeerCertificates
	leaf := certs[0]
	intermediates := x509.NewCertPool()
	for _, c := range certs[1:] {
		intermediates.AddCert(c)
	}
	days := int(time.Until(leaf.NotAfter).Hours() / 24)
	summary += fmt.Sprintf(", TLS %s, certificate for %s valid %d more days", tlsVersion(tc.ConnectionState().Version), strings.Join(leaf.DNSNames, ","), days)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: host, Intermediates: intermediates}); err != nil {
		if d.o.insecure {
			return step{Status: pass, Summary: summary + " (NOT trusted: " + err.Error() + "; --insecure)"}
		}
		return step{Status: fail, ID: "tls-certificate", Summary: summary + ": " + err.Error(),
			Fix: "browsers refuse this certificate too: fix the certificate (name, chain, expiry); --insecure checks the rest anyway"}
	}
	return step{Status: pass, Summary: summary}
}

func tlsVersion(v uint16) string {
	return map[uint16]string{tls.VersionTLS12: "1.2", tls.VersionTLS13: "1.3"}[v]
}

// 2. polling handshake.
func (d *session) handshake(parent context.Context) step {
	ctx, cancel := d.ctx(parent)
	defer cancel()
	url := d.t.endpoint(d.t.query("polling", ""))
	a, err := d.t.do(ctx, http.MethodGet, url, "")
	if err != nil {
		return step{Status: fail, ID: "no-answer", Summary: fmt.Sprintf("GET %s: %v", url, err),
			Fix: "the request got no HTTP answer: a server without a handler for this path (Frappe's realtime server never answers paths it does not own, e.g. /socket.io without the slash), or a timeout"}
	}
	open, ok := parseOpen(a.Body)
	if a.Status != http.StatusOK || !ok {
		id, fix := classifyFailure(a, false)
		return step{Status: fail, ID: id, Summary: fmt.Sprintf("GET %s → %d %s", url, a.Status, a.ContentType), Evidence: &a, Fix: fix}
	}
	d.open = open
	summary := fmt.Sprintf("200 %s in %s: sid %s…, upgrades %v, pingInterval %d ms, pingTimeout %d ms",
		a.ContentType, a.Elapsed, open.SID[:min(6, len(open.SID))], open.Upgrades, open.PingInterval, open.PingTimeout)
	if a.Repaired != "" {
		summary += ", the guard repaired: " + a.Repaired
	}
	if open.PingInterval+open.PingTimeout > 0 && d.o.eio == "4" && !strings.HasPrefix(a.ContentType, "text/plain") {
		return step{Status: fail, ID: "content-type", Summary: summary + ", but Content-Type is not text/plain", Evidence: &a,
			Fix: "a hop rewrites the answer's Content-Type; Engine.IO clients may refuse it"}
	}
	return step{Status: pass, Summary: summary, Evidence: &a}
}

// 3. a polling round trip with the sid: POST the namespace CONNECT, GET its answer.
func (d *session) polling(parent context.Context) step {
	ctx, cancel := d.ctx(parent)
	defer cancel()
	url := d.t.endpoint(d.t.query("polling", d.open.SID))
	post, err := d.t.do(ctx, http.MethodPost, url, d.t.connectPacket())
	if err != nil {
		return step{Status: fail, ID: "no-answer", Summary: "POST with sid: " + err.Error()}
	}
	if post.Status != http.StatusOK || strings.TrimSpace(post.Body) != "ok" {
		id, fix := classifyFailure(post, false)
		return step{Status: fail, ID: id, Summary: fmt.Sprintf("POST with sid → %d", post.Status), Evidence: &post, Fix: fix}
	}
	get, err := d.t.do(ctx, http.MethodGet, url, "")
	if err != nil {
		return step{Status: fail, ID: "no-answer", Summary: "GET with sid: " + err.Error(),
			Fix: "the long-poll got no answer in time: a proxy timeout shorter than pingInterval, or buffering"}
	}
	if get.Status != http.StatusOK {
		id, fix := classifyFailure(get, false)
		return step{Status: fail, ID: id, Summary: fmt.Sprintf("GET with sid → %d", get.Status), Evidence: &get, Fix: fix}
	}
	d.namespaceOK, d.namespaceResult, d.namespaceSeen = d.t.namespaceAnswer(get.Body)
	return step{Status: pass, Summary: fmt.Sprintf("POST → 200 ok, GET → 200 in %s with %d packet(s)", get.Elapsed, strings.Count(get.Body, "\x1e")+1)}
}

// 4. websocket upgrade of the polling session: 2probe / 3probe / 5.
func (d *session) upgrade(parent context.Context) step {
	if !contains(d.open.Upgrades, "websocket") {
		return step{Status: skip, Summary: fmt.Sprintf("the server offers no websocket upgrade (upgrades %v)", d.open.Upgrades)}
	}
	ctx, cancel := d.ctx(parent)
	defer cancel()
	conn, a, err := d.t.dialWebsocket(ctx, d.open.SID)
	if err != nil {
		id, fix := classifyFailure(a, true)
		return step{Status: fail, ID: id, Summary: fmt.Sprintf("websocket with sid → %d: %v", a.Status, shortErr(err)), Evidence: &a, Fix: fix}
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte("2probe")); err != nil {
		return step{Status: fail, ID: "probe", Summary: "cannot send 2probe: " + err.Error()}
	}
	if _, err := readText(ctx, conn, func(s string) bool { return s == "3probe" }); err != nil {
		return step{Status: fail, ID: "probe", Summary: "no 3probe answer: " + shortErr(err),
			Fix: "the 101 arrived but no Engine.IO frames: a hop buffers or closes the tunnel (nginx: proxy_buffering off, proxy_read_timeout above 45 s)"}
	}
	if err := conn.Write(ctx, websocket.MessageText, []byte("5")); err != nil {
		return step{Status: fail, ID: "probe", Summary: "cannot send the upgrade packet: " + err.Error()}
	}
	conn.Close(websocket.StatusNormalClosure, "")
	summary := fmt.Sprintf("101 in %s, 2probe → 3probe, upgraded", a.Elapsed)
	if strings.Contains(a.Repaired, "upgrade") {
		summary += " — only because socketioguard restored Upgrade/Connection: a hop in front of Traefik strips them"
	}
	return step{Status: pass, Summary: summary, Evidence: &a}
}

// 5. direct websocket, as clients with transports: ["websocket"] open it.
func (d *session) directWebsocket(parent context.Context) step {
	ctx, cancel := d.ctx(parent)
	defer cancel()
	conn, a, err := d.t.dialWebsocket(ctx, "")
	if err != nil {
		id, fix := classifyFailure(a, true)
		return step{Status: fail, ID: id, Summary: fmt.Sprintf("websocket without sid → %d: %v", a.Status, shortErr(err)), Evidence: &a, Fix: fix}
	}
	defer conn.CloseNow()
	first, err := readText(ctx, conn, func(string) bool { return true })
	if _, ok := parseOpen(first); err != nil || !ok {
		return step{Status: fail, ID: "probe", Summary: fmt.Sprintf("first frame %q: %v", first, err)}
	}
	conn.Close(websocket.StatusNormalClosure, "")
	return step{Status: pass, Summary: fmt.Sprintf("101 in %s, open packet received", a.Elapsed), Evidence: &a}
}

// 6. the namespace CONNECT sent in step 3.
func (d *session) namespaceConnect(context.Context) step {
	switch {
	case !d.namespaceSeen:
		return step{Status: fail, ID: "namespace-no-answer", Summary: fmt.Sprintf("no answer to CONNECT %s in the poll", d.o.namespace),
			Fix: "the server did not answer the Socket.IO CONNECT: is it a Socket.IO (not bare Engine.IO) server, of a compatible version?"}
	case d.namespaceOK:
		return step{Status: pass, Summary: "connected to " + d.o.namespace}
	}
	return step{Status: fail, ID: "namespace-refused", Summary: fmt.Sprintf("%s refused: %q", d.o.namespace, d.namespaceResult), Fix: namespaceFix(d.namespaceResult)}
}

// 7. stickiness: N sessions, each followed by a POST that must reach the same process.
func (d *session) stickiness(parent context.Context) step {
	n := d.o.replicasCheck
	if n <= 0 {
		return step{Status: skip, Summary: "not asked (--replicas-check N)"}
	}
	unknown, errs := 0, 0
	for i := 0; i < n; i++ {
		ctx, cancel := d.ctx(parent)
		t := d.t.freshClient() // each session is a new browser, with its own (sticky) cookies
		a, err := t.do(ctx, http.MethodGet, t.endpoint(t.query("polling", "")), "")
		open, ok := parseOpen(a.Body)
		if err != nil || !ok {
			cancel()
			errs++
			continue
		}
		url := t.endpoint(t.query("polling", open.SID))
		post, err := t.do(ctx, http.MethodPost, url, "6") // noop: only the session matters
		if err == nil && post.Status == http.StatusBadRequest {
			if code, _, _ := engineIOError(post.Body); code == 1 {
				unknown++
			}
		}
		_, _ = t.do(ctx, http.MethodPost, url, "1") // close the session
		cancel()
	}
	summary := fmt.Sprintf("%d sessions: %d answered \"Session ID unknown\" on their next request, %d handshakes failed", n, unknown, errs)
	if unknown > 0 {
		return step{Status: fail, ID: "session-unknown", Summary: summary,
			Fix: "requests of one session reach different Socket.IO processes: enable sticky sessions (Traefik: loadBalancer.sticky.cookie) or run one replica; use @socket.io/redis-adapter so events reach every replica"}
	}
	return step{Status: pass, Summary: summary}
}

// 8. wait for an event in the namespace, over a websocket.
func (d *session) event(parent context.Context) step {
	if d.o.waitEvent == "" {
		return step{Status: skip, Summary: "not asked (--wait-event NAME)"}
	}
	ctx, cancel := d.ctx(parent)
	defer cancel()
	conn, a, err := d.t.dialWebsocket(ctx, "")
	if err != nil {
		id, fix := classifyFailure(a, true)
		return step{Status: fail, ID: id, Summary: "websocket: " + shortErr(err), Evidence: &a, Fix: fix}
	}
	defer conn.CloseNow()
	if _, err := readText(ctx, conn, func(s string) bool { return strings.HasPrefix(s, "0{") }); err != nil {
		return step{Status: fail, ID: "probe", Summary: "no open packet: " + shortErr(err)}
	}
	_ = conn.Write(ctx, websocket.MessageText, []byte(d.t.connectPacket()))
	answer, err := readText(ctx, conn, func(s string) bool { _, _, found := d.t.namespaceAnswer(s); return found })
	if err != nil {
		return step{Status: fail, ID: "namespace-no-answer", Summary: "no answer to CONNECT: " + shortErr(err)}
	}
	if ok, msg, _ := d.t.namespaceAnswer(answer); !ok {
		return step{Status: fail, ID: "namespace-refused", Summary: fmt.Sprintf("%s refused: %q", d.o.namespace, msg), Fix: namespaceFix(msg)}
	}
	nsPrefix := "42"
	if d.o.namespace != "/" {
		nsPrefix += d.o.namespace + ","
	}
	if d.o.subscribe != "" { // Frappe: join doc:<doctype>/<name>
		doctype, name, _ := strings.Cut(d.o.subscribe, "/")
		_ = conn.Write(ctx, websocket.MessageText, []byte(fmt.Sprintf(`%s["doc_subscribe",%q,%q]`, nsPrefix, doctype, name)))
	}
	started := time.Now()
	want := nsPrefix + `["` + d.o.waitEvent + `"`
	got, err := readText(ctx, conn, func(s string) bool { return strings.HasPrefix(s, want) })
	if err != nil {
		return step{Status: fail, ID: "event-missing", Summary: fmt.Sprintf("no %s within %s", d.o.waitEvent, d.o.timeout),
			Fix: "the transport works but the event never came: check that it is published to a room this client joined (Frappe: doc:<doctype>/<name>, --subscribe) in this namespace"}
	}
	return step{Status: pass, Summary: fmt.Sprintf("%s after %s: %s", d.o.waitEvent, time.Since(started).Round(time.Millisecond), trim(strings.TrimPrefix(got, nsPrefix), 160))}
}

// classifyFailure names a failed answer with the plugin's error ids: the
// guard's own headers first, then what the status and body prove.
func classifyFailure(a answer, websocketRequest bool) (id, fix string) {
	if a.GuardError != "" {
		return a.GuardError, fixes[a.GuardError]
	}
	if a.Diagnosis != "" {
		return a.Diagnosis, fixes[a.Diagnosis]
	}
	code, _, isEngineIO := engineIOError(a.Body)
	switch {
	case a.Status == 0:
		return "no-answer", "no HTTP answer"
	case a.Status == http.StatusNotFound && strings.TrimSpace(a.Body) == "404 page not found":
		return "no-socketio-route", "Traefik has no router for this host and path: " + fixes["no-socketio-route"]
	case a.Status == http.StatusNotFound || strings.HasPrefix(a.ContentType, "text/html") && a.Status < 400:
		return "backend-not-socketio", fixes["backend-not-socketio"]
	case isEngineIO && code == 1 || strings.TrimSpace(a.Body) == "Session ID unknown":
		return "session-unknown", fixes["session-unknown"]
	case isEngineIO && code == 0:
		return "transport-unknown", fixes["transport-unknown"]
	case isEngineIO && code == 2:
		return "bad-handshake-method", fixes["bad-handshake-method"]
	case isEngineIO && code == 5:
		return "eio-unsupported", fixes["eio-unsupported"]
	case websocketRequest && a.Status == http.StatusBadRequest:
		return "upgrade-missing", fixes["upgrade-missing"]
	case a.Status >= 500:
		return "gateway-error", fmt.Sprintf("a proxy answered %d: the hop behind it (the Socket.IO server?) is down or unreachable", a.Status)
	}
	return "unexpected-answer", "an answer Engine.IO never gives: look at the evidence for which hop wrote it"
}

// fixes are the plugin's error reference in one line each (readme.md, "Error reference").
var fixes = map[string]string{
	"query-missing":           "a hop dropped the query string (nginx rewrite, proxy_pass without $is_args$args): forward the request URI unchanged",
	"eio-unsupported":         "client and server speak different Engine.IO versions (EIO=4: client v3/v4; EIO=3: v2 with allowEIO3)",
	"transport-unknown":       "the transport is not enabled: check the client's and the server's transports",
	"bad-handshake-method":    "a POST arrived without its sid: a hop dropped part of the query",
	"upgrade-missing":         "a hop strips Upgrade/Connection: nginx needs proxy_http_version 1.1 and proxy_set_header Upgrade $http_upgrade / Connection \"upgrade\" (or put socketioguard in Traefik with repairUpgrade)",
	"upgrade-impossible":      "websockets need HTTP/1.1",
	"no-socketio-route":       "add a router Host(`<host>`) && PathPrefix(`/socket.io`) to the Socket.IO service, with a higher priority than the web app's",
	"backend-not-socketio":    "the web app, not the Socket.IO server, answers /socket.io: point that route at the Socket.IO service (Frappe: socketio_port 9000/9001)",
	"session-unknown":         "the session's requests reach another Socket.IO process: sticky sessions (loadBalancer.sticky.cookie) or one replica",
	"upgrade-lost-downstream": "a hop between Traefik and the Socket.IO server (nginx sidecar) drops Upgrade/Connection: add proxy_http_version 1.1 and the two proxy_set_header lines there",
}

// namespaceFix explains Frappe's refusals (frappe/realtime/middlewares/authenticate.js).
func namespaceFix(message string) string {
	switch message {
	case "Invalid origin":
		return "Frappe compares the hostnames of Origin and Host; browsers send no Origin on same-origin polling: enable setMissingOrigin on socketioguard (or pass --origin to check with one)"
	case "Invalid namespace":
		return "the namespace must be the site name: set X-Frappe-Site-Name in the proxy, or pass --namespace /<site>"
	case "No cookie transmitted.", "No sid transmitted.":
		return "Frappe needs the session cookie: pass --cookie 'sid=<your session>'"
	}
	return "the Socket.IO server's middleware refused the connection; the message above is its reason"
}

func shortErr(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprintf("closed with %d %s", ce.Code, ce.Reason)
	}
	s := err.Error()
	if i := strings.Index(s, ": "); i > 0 && strings.Contains(s, "expected handshake response status code 101") {
		return "no 101"
	}
	return s
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
