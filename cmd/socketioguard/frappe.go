package main

import (
	"fmt"
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
