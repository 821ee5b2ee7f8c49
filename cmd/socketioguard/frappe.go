package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
)

// Frappe's refusals: what its realtime server's authentication says, and
// what to change.

// namespaceFix explains Frappe's refusals (frappe/realtime/middlewares/
// authenticate.js), with what this run knows: whether an Origin reached
// Frappe (the doctor's --origin, or socketioguard's), and which.
func (d *session) namespaceFix(message string) string {
	host := d.t.base.Hostname()
	origin, originBy := d.o.origin, "--origin"
	if origin == "" && d.originByGuard {
		origin, originBy = d.t.base.Scheme+"://"+d.t.base.Host, "socketioguard (setMissingOrigin, from the Host it saw)"
	}
	switch {
	case message == "Invalid origin" && origin == "":
		return "Frappe compares the hostnames of Origin and Host, and no Origin reached it: browsers send none on same-origin polling requests. Enable setMissingOrigin on socketioguard (and pin Host() on the router), or pass --origin " + d.t.base.Scheme + "://" + d.t.base.Host + " to check as the site's own page"
	case message == "Invalid origin" && hostnameOf(origin) != host:
		return fmt.Sprintf("the Origin sent by %s (%s) names another host than %s, and Frappe refuses pages of other hosts; pass --origin %s://%s to check as the site's own page", originBy, origin, host, d.t.base.Scheme, d.t.base.Host)
	case message == "Invalid origin":
		return fmt.Sprintf("the Origin %s (sent by %s) matches %s, so Frappe saw another Host: a hop between here and Frappe rewrites Host (nginx proxy_set_header Host with an upstream name, Traefik passHostHeader: false). Forward the client's Host unchanged", origin, originBy, host)
	case message == "Invalid namespace":
		return fmt.Sprintf("the namespace must be /<site>, and Frappe resolves the site from X-Frappe-Site-Name (else Host or Origin): you connected %s. Set X-Frappe-Site-Name to the site name in the proxy (Traefik: a headers middleware with customRequestHeaders) or pass --namespace /<site>", d.o.namespace)
	case message == "No cookie transmitted.":
		return "Frappe needs the session cookie and no Cookie header reached it: pass --cookie 'sid=<session>' (a browser sends its own; if it does not reach Frappe, a hop drops Cookie)"
	case message == "No authentication method used. Use cookie or authorization header.":
		return "a Cookie reached Frappe but without sid, and no Authorization header: pass --cookie 'sid=<session of a logged-in user>' (Frappe also takes an Authorization header)"
	case strings.HasPrefix(message, "Unauthorized"):
		callback := "<Origin>/api/method/frappe.realtime.get_user_info"
		if origin != "" {
			callback = origin + "/api/method/frappe.realtime.get_user_info"
		}
		return fmt.Sprintf("Frappe's realtime server could not check the session: it calls %s, which must be reachable from the realtime server and answer (a tunnel or public URL it cannot reach, a certificate it does not trust); or set server_ip in Frappe's configuration so that it calls the web server directly", callback)
	}
	return "the Socket.IO server's middleware refused the connection; the message above is its reason"
}

// maxDeskPage bounds what the doctor reads of Frappe's desk page (its boot
// data makes it a few MiB at most).
const maxDeskPage = 16 << 20

var (
	// desk.html: `window.dev_server = {{ dev_server }};` renders 0 or 1
	// (frappe/__init__.py: int(sbool(os.environ.get("DEV_SERVER")))).
	deskDevServer = regexp.MustCompile(`window\.dev_server\s*=\s*([A-Za-z0-9"']+)`)
	// the boot data's socketio_port (frappe.conf.socketio_port).
	deskSocketIOPort = regexp.MustCompile(`"socketio_port"\s*:\s*"?([0-9]{1,5})`)
)

// 10. deskPage reads the boot data of the site's desk page (/app, with the
// --cookie session): with window.dev_server set, Frappe's socket client
// connects the browser to <host>:<socketio_port> directly (socketio_client
// get_host), never through the URL the other steps checked
// (frappe/frappe_docker#1529, frappe/erpnext#28167).
func (d *session) deskPage(parent context.Context) step {
	if d.o.cookie == "" {
		return step{Status: skip, Summary: "not evaluated: the desk page shows its boot data to a logged-in session only (--cookie 'sid=…')"}
	}
	ctx, cancel := d.ctx(parent)
	defer cancel()
	desk := *d.t.base
	desk.Path, desk.RawQuery = "/app", ""
	status, page, err := d.t.readPage(ctx, desk.String(), maxDeskPage)
	if err != nil || status != http.StatusOK {
		what := fmt.Sprintf("answered %d", status)
		if err != nil {
			what = shortErr(err)
		}
		return step{Status: skip, Summary: fmt.Sprintf("not evaluated: %s %s (no desk page of a logged-in session there)", desk.String(), what)}
	}
	m := deskDevServer.FindStringSubmatch(page)
	if m == nil {
		return step{Status: skip, Summary: fmt.Sprintf("not evaluated: %s has no window.dev_server (not Frappe's desk page, or one of another version)", desk.String())}
	}
	if value := strings.Trim(m[1], `"'`); value == "0" || value == "false" || value == "" {
		return step{Status: pass, Summary: fmt.Sprintf("the desk page connects browsers through %s://%s%s (window.dev_server = %s)", d.t.base.Scheme, d.t.base.Host, d.t.path, m[1])}
	}
	port := "9000"
	if p := deskSocketIOPort.FindStringSubmatch(page); p != nil {
		port = p[1]
	}
	direct := fmt.Sprintf("%s://%s:%s/socket.io/", d.t.base.Scheme, d.t.base.Hostname(), port)
	return step{Status: fail, ID: "dev-server-port",
		Summary: fmt.Sprintf("the desk page sets window.dev_server = %s: Frappe's socket client then connects browsers to %s directly (boot socketio_port, else 9000), never through %s://%s%s — which is what the steps above checked", m[1], direct, d.t.base.Scheme, d.t.base.Host, d.t.path),
		Fix:     "Frappe's web process runs as a development server (DEV_SERVER in its environment: bench start sets it unless --no-dev); behind Traefik run it without (gunicorn as bench setup production or frappe_docker does), so the client connects to the page's own origin. Or, for a development bench, make that port reach the Socket.IO server (and it bypasses Traefik and the guard)"}
}

// readPage GETs a page with the run's headers and returns up to max bytes of it.
func (t *target) readPage(ctx context.Context, url string, max int64) (int, string, error) {
	resp, err := t.send(ctx, http.MethodGet, url, "")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	page, err := io.ReadAll(io.LimitReader(resp.Body, max))
	return resp.StatusCode, string(page), err
}
