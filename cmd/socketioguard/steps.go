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

// The doctor's request steps, in the order it runs them (doctor.go's
// checks): each sends real requests and returns one step of the report.

// 1. DNS, TCP, TLS.
func (d *session) network(parent context.Context) step {
	ctx, cancel := d.ctx(parent)
	defer cancel()
	host, port := d.t.base.Hostname(), d.t.base.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[d.t.base.Scheme]
	}
	dial := net.JoinHostPort(host, port)
	var addrs []string
	if to, ok := d.o.connectTo[dial]; ok {
		// --connect-to: no DNS; the connection goes where the user said.
		dial, addrs = to, []string{to + " (--connect-to)"}
	} else {
		var err error
		if addrs, err = net.DefaultResolver.LookupHost(ctx, host); err != nil {
			return step{Status: fail, ID: "dns", Summary: fmt.Sprintf("cannot resolve %s: %v", host, err), Fix: "check the host name and its DNS records"}
		}
	}
	started := time.Now()
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", dial)
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
		id, fix := d.classify(a, false)
		return step{Status: fail, ID: id, Summary: fmt.Sprintf("GET %s → %d %s", url, a.Status, a.ContentType), Evidence: &a, Fix: fix}
	}
	d.open = open
	d.originByGuard = strings.Contains(a.Repaired, "origin")
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
		id, fix := d.classify(post, false)
		return step{Status: fail, ID: id, Summary: fmt.Sprintf("POST with sid → %d", post.Status), Evidence: &post, Fix: fix}
	}
	get, err := d.t.do(ctx, http.MethodGet, url, "")
	if err != nil {
		return step{Status: fail, ID: "no-answer", Summary: "GET with sid: " + err.Error(),
			Fix: "the long-poll got no answer in time: a proxy timeout shorter than pingInterval, or buffering"}
	}
	if get.Status != http.StatusOK {
		id, fix := d.classify(get, false)
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
		id, fix := d.classify(a, true)
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
	conn, _, a, failed := d.openDirectWebsocket(ctx)
	if failed != nil {
		return *failed
	}
	defer conn.CloseNow()
	conn.Close(websocket.StatusNormalClosure, "")
	return step{Status: pass, Summary: fmt.Sprintf("101 in %s, open packet received", a.Elapsed), Evidence: &a}
}

// openDirectWebsocket dials a websocket without sid and reads its open
// packet; on failure it returns the failed step instead.
func (d *session) openDirectWebsocket(ctx context.Context) (*websocket.Conn, openPacket, answer, *step) {
	conn, a, err := d.t.dialWebsocket(ctx, "")
	if err != nil {
		id, fix := d.classify(a, true)
		return nil, openPacket{}, a, &step{Status: fail, ID: id, Summary: fmt.Sprintf("websocket without sid → %d: %v", a.Status, shortErr(err)), Evidence: &a, Fix: fix}
	}
	first, err := readText(ctx, conn, func(string) bool { return true })
	open, ok := parseOpen(first)
	if err != nil || !ok {
		conn.CloseNow()
		return nil, openPacket{}, a, &step{Status: fail, ID: "probe", Summary: fmt.Sprintf("first frame %q: %v", first, err)}
	}
	return conn, open, a, nil
}

// 6. the namespace CONNECT sent in step 3.
func (d *session) namespaceConnect(parent context.Context) step {
	switch {
	case !d.namespaceSeen:
		return step{Status: fail, ID: "namespace-no-answer", Summary: fmt.Sprintf("no answer to CONNECT %s in the poll", d.o.namespace),
			Fix: "the server did not answer the Socket.IO CONNECT: is it a Socket.IO (not bare Engine.IO) server, of a compatible version?"}
	case d.namespaceOK && d.o.namespace == "/":
		return step{Status: pass, Summary: "connected to / — the default namespace, which Frappe serves without authentication: " +
			"nothing app-specific was checked. Apps usually live in their own namespace (Frappe: /<site>); pass --namespace"}
	case d.namespaceOK:
		ctx, cancel := d.ctx(parent)
		defer cancel()
		summary := "connected to " + d.o.namespace
		if d.frappeUser = d.t.frappeSessionUser(ctx); d.frappeUser == "Guest" {
			summary += " as Guest: Frappe did not recognise the session in --cookie (it connects unknown sessions as Guest and refuses their doc_subscribe without a word)"
		} else if d.frappeUser != "" {
			summary += " as " + d.frappeUser
		}
		return step{Status: pass, Summary: summary}
	}
	if d.namespaceResult == "No cookie transmitted." && d.o.authorization != "" && d.o.cookie == "" {
		return step{Status: fail, ID: "token-without-cookie", Summary: fmt.Sprintf("%s refused: %q although an Authorization header was sent", d.o.namespace, d.namespaceResult),
			Fix: "Frappe's realtime server refuses any connection without a Cookie header before it reads Authorization (frappe/realtime/middlewares/authenticate.js; frappe/frappe#27970, frappe/frappe#34125): a token client must also send a Cookie header. Any cookie without sid lets Frappe go on to the Authorization header (e.g. --cookie 'token_client=1'); the Socket.IO client: extraHeaders { Cookie: … } (Node) — browsers send the site's cookies themselves"}
	}
	return step{Status: fail, ID: "namespace-refused", Summary: fmt.Sprintf("%s refused: %q", d.o.namespace, d.namespaceResult), Fix: d.namespaceFix(d.namespaceResult)}
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
		id, fix := d.classify(a, true)
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
		return step{Status: fail, ID: "namespace-refused", Summary: fmt.Sprintf("%s refused: %q", d.o.namespace, msg), Fix: d.namespaceFix(msg)}
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
	if err != nil && d.frappeUser == "Guest" {
		return step{Status: fail, ID: "session-guest", Summary: fmt.Sprintf("no %s within %s: the namespace connected as Guest", d.o.waitEvent, d.o.timeout),
			Fix: "Frappe did not recognise the session in --cookie: it connected the client as Guest and refused doc_subscribe without a word. Pass the sid cookie of a logged-in session (log in again: the session may have expired)"}
	}
	if err != nil && d.frappeUser != "" && d.t.base.Scheme == "https" {
		if s, named := d.callbackScheme(parent); named {
			return s
		}
	}
	if err != nil {
		return step{Status: fail, ID: "event-missing", Summary: fmt.Sprintf("no %s within %s", d.o.waitEvent, d.o.timeout),
			Fix: "the transport works but the event never came: check that it is published to a room this client joined (Frappe: doc:<doctype>/<name>, --subscribe) in this namespace"}
	}
	return step{Status: pass, Summary: fmt.Sprintf("%s after %s: %s", d.o.waitEvent, time.Since(started).Round(time.Millisecond), trim(strings.TrimPrefix(got, nsPrefix), 160))}
}

// callbackScheme: no event over a websocket-first connection, the session
// valid over https — does the session survive a callback over http, as
// Frappe's realtime server makes it when the Origin it received says http
// (frappe/helm#281; Traefik's "wss" through frappe_docker's nginx)?
func (d *session) callbackScheme(parent context.Context) (step, bool) {
	ctx, cancel := d.ctx(parent)
	defer cancel()
	a, err := d.t.callbackOverHTTP(ctx)
	host := d.t.base.Hostname()
	var what string
	switch {
	case err != nil:
		what = fmt.Sprintf("a callback to http://%s cannot connect (%s)", host, shortErr(err))
	case a.Status >= 300 && a.Status < 400 && strings.HasPrefix(a.Location, "https://"):
		what = fmt.Sprintf("a callback to http://%s is redirected (%d) to %s: Frappe develop/v16 calls back with fetch and the session as a Cookie, which fetch drops on that redirect (the scheme changes), so the socket joins as Guest; Frappe v15 (superagent, ?sid=) keeps it", host, a.Status, a.Location)
	case a.Status != http.StatusOK:
		what = fmt.Sprintf("a callback to http://%s answers %d", host, a.Status)
	default:
		return step{}, false // over http the session holds too: not this
	}
	return step{Status: fail, ID: "callback-scheme", Evidence: &a,
		Summary: fmt.Sprintf("no %s within %s over a websocket-first connection, although Frappe knows the session over https (%s); %s", d.o.waitEvent, d.o.timeout, d.frappeUser, what),
		Fix:     fmt.Sprintf("if an http:// Origin reaches Frappe for this https site, its session callback goes to http://%s and the socket joins as Guest (connected, no events): a hop that builds the Origin from its own $scheme behind a TLS-terminating proxy (frappe/helm#281), or frappe_docker's nginx behind Traefik, whose X-Forwarded-Proto map passes https but not Traefik's wss — a client that opens a websocket first is then called back over http (examples/frappe-docker: X-Forwarded-Proto: https on the /socket.io router). Make the Origin say https. It could also be an event published to a room this client did not join", host)}, true
}

// 9. hold an upgraded session open, answering pings like a client, and
// report whether and when a hop cut it (off unless --hold).
func (d *session) hold(parent context.Context) step {
	if d.o.hold <= 0 {
		return step{Status: skip, Summary: "not asked (--hold DURATION)"}
	}
	ctx, cancel := context.WithTimeout(parent, d.o.hold+d.o.timeout)
	defer cancel()
	conn, open, _, failed := d.openDirectWebsocket(ctx)
	if failed != nil {
		return *failed
	}
	defer conn.CloseNow()
	held := heldSession(ctx, conn, d.o.hold, d.o.eio, time.Duration(open.PingInterval)*time.Millisecond)
	return holdVerdict(held, d.o.hold, time.Duration(open.PingInterval)*time.Millisecond, time.Duration(open.PingTimeout)*time.Millisecond)
}

// held is what happened to a session held open.
type held struct {
	lasted       time.Duration
	pings        int  // heartbeats exchanged
	serverClosed bool // Engine.IO close packet, or a close frame from the server
	err          error
}

// heldSession answers the server's pings (EIO=4) or sends its own (EIO=3)
// until d passes or the connection ends.
func heldSession(ctx context.Context, conn *websocket.Conn, d time.Duration, eio string, pingInterval time.Duration) held {
	started := time.Now()
	holdCtx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if eio == "3" && pingInterval > 0 { // Engine.IO v3: the client pings
		go func() {
			ticker := time.NewTicker(pingInterval)
			defer ticker.Stop()
			for {
				select {
				case <-holdCtx.Done():
					return
				case <-ticker.C:
					_ = conn.Write(holdCtx, websocket.MessageText, []byte("2"))
				}
			}
		}()
	}
	h := held{}
	for {
		_, msg, err := conn.Read(holdCtx)
		h.lasted = time.Since(started)
		if err != nil {
			if holdCtx.Err() != nil && ctx.Err() == nil {
				return h // held for the whole duration
			}
			var ce websocket.CloseError
			h.serverClosed = errors.As(err, &ce) && (ce.Code == websocket.StatusNormalClosure || ce.Code == websocket.StatusGoingAway)
			h.err = err
			return h
		}
		switch string(msg) {
		case "2": // ping (EIO=4): answer like a client
			h.pings++
			_ = conn.Write(holdCtx, websocket.MessageText, []byte("3"))
		case "3": // pong (EIO=3)
			h.pings++
		case "1": // the server closes the session
			h.serverClosed = true
			h.err = errors.New("Engine.IO close packet")
			return h
		}
	}
}

// holdVerdict says whether the session survived, and if not, which hop
// limit the timing points at.
func holdVerdict(h held, d, pingInterval, pingTimeout time.Duration) step {
	lasted := h.lasted.Round(100 * time.Millisecond)
	timing := fmt.Sprintf("pingInterval %s, pingTimeout %s", pingInterval, pingTimeout)
	switch {
	case h.err == nil:
		return step{Status: pass, Summary: fmt.Sprintf("websocket held for %s, %d heartbeat(s) exchanged (%s)", d, h.pings, timing)}
	case h.serverClosed:
		return step{Status: fail, ID: "server-closed", Summary: fmt.Sprintf("the server closed the session after %s (%d heartbeats; %s)", lasted, h.pings, timing),
			Fix: "the Socket.IO server ended the session itself: a restart, or a missed heartbeat (pingTimeout)"}
	case h.pings == 0 && h.lasted < pingInterval:
		return step{Status: fail, ID: "hop-idle-timeout", Summary: fmt.Sprintf("the websocket was cut after %s of silence, before the server's first ping (%s): %s", lasted, timing, shortErr(h.err)),
			Fix: fmt.Sprintf("a hop between here and the Socket.IO server closes connections idle for about %s, less than pingInterval: raise its idle timeout above pingInterval + pingTimeout (%s) — nginx: proxy_read_timeout and proxy_send_timeout; cloud load balancers and tunnels: their idle timeout — or lower the server's pingInterval", lasted, pingInterval+pingTimeout)}
	}
	return step{Status: fail, ID: "hop-max-lifetime", Summary: fmt.Sprintf("the websocket was cut after %s although %d heartbeat(s) flowed (%s): %s", lasted, h.pings, timing, shortErr(h.err)),
		Fix: fmt.Sprintf("a hop limits how long a connection may live (about %s), whatever flows: some load balancers and tunnels do. Raise or remove that limit; clients reconnect, but every cut costs a reconnection and the events in between", lasted)}
}
