package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// What a failed answer means: the plugin's error ids and their fixes.

// classify names a failed answer for this session (host, EIO version).
func (d *session) classify(a answer, websocketRequest bool) (id, fix string) {
	return classifyFailure(a, websocketRequest, d.t.base.Hostname(), d.o.eio)
}

// classifyFailure names a failed answer with the plugin's error ids: the
// guard's own headers first (and its own hint, whole), then only what the
// status and body prove.
func classifyFailure(a answer, websocketRequest bool, host, eio string) (id, fix string) {
	if a.GuardError != "" {
		if hint := guardHint(a.Body); hint != "" {
			return a.GuardError, hint
		}
		return a.GuardError, fixFor(a.GuardError, host, eio)
	}
	// A hop's answer is read by the doctor itself (it has the Location and
	// the challenge), whether or not the guard marked it.
	if id, fix := classifyHop(a, websocketRequest, host); id != "" {
		return id, fix
	}
	if a.Diagnosis != "" {
		return a.Diagnosis, fixFor(a.Diagnosis, host, eio)
	}
	code, _, isEngineIO := engineIOError(a.Body)
	text := strings.TrimSpace(a.Body)
	switch {
	case a.Status == 0:
		return "no-answer", "no HTTP answer"
	case a.Status == http.StatusNotFound && text == "404 page not found":
		return "no-socketio-route", "Traefik has no router for this host and path: " + fixFor("no-socketio-route", host, eio)
	case a.Status == http.StatusNotFound || strings.HasPrefix(a.ContentType, "text/html") && a.Status == http.StatusOK:
		return "backend-not-socketio", fixFor("backend-not-socketio", host, eio)
	case isEngineIO && code == 1 || websocketRequest && text == "Session ID unknown":
		return "session-unknown", fixFor("session-unknown", host, eio)
	case isEngineIO && code == 0:
		return "transport-unknown", fixFor("transport-unknown", host, eio)
	case isEngineIO && code == 2:
		return "bad-handshake-method", fixFor("bad-handshake-method", host, eio)
	case isEngineIO && code == 4 || websocketRequest && a.Status == http.StatusBadRequest && text == "Forbidden":
		return "backend-forbidden", fixFor("backend-forbidden", host, eio)
	case isEngineIO && code == 5:
		// No guard header: the Socket.IO server itself refused the version.
		return "backend-eio-mismatch", fixFor("backend-eio-mismatch", host, eio)
	case websocketRequest && a.Status == http.StatusBadRequest && isEngineIO && code == 3:
		return "upgrade-missing", fixFor("upgrade-missing", host, eio)
	case websocketRequest && a.Status == http.StatusBadRequest:
		return "websocket-refused", fmt.Sprintf("the websocket handshake arrived with its upgrade headers and was refused — usually by the Socket.IO server, possibly by a hop in front of it: %q", trim(text, 120))
	case websocketRequest && a.Status == http.StatusInternalServerError && text == "Internal Server Error":
		return "hijack-failed", fixFor("hijack-failed", host, eio)
	case a.Status >= 500:
		return "gateway-error", fmt.Sprintf("a proxy answered %d: the hop behind it (the Socket.IO server?) is down or unreachable", a.Status)
	}
	return "unexpected-answer", "an answer Engine.IO never gives: look at the evidence for which hop wrote it"
}

// classifyHop names the hops that answer in the Socket.IO server's place
// with a mark of their own: a redirect (its Location), an authentication
// challenge (WWW-Authenticate), a WAF's challenge (cf-mitigated).
func classifyHop(a answer, websocketRequest bool, host string) (id, fix string) {
	switch {
	case a.Mitigated != "" && (a.Status == http.StatusForbidden || a.Status == http.StatusServiceUnavailable):
		return "waf-challenge", fmt.Sprintf("a WAF or bot protection answered %d with cf-mitigated: %s (Cloudflare's managed challenge, louislam/uptime-kuma#3866): a browser solves it for the page, but Engine.IO's XHR and websocket requests cannot. Exempt the Socket.IO path from the challenge (a WAF skip rule for %s/socket.io/)", a.Status, a.Mitigated, host)
	case a.Status == http.StatusUnauthorized && a.WWWAuthenticate != "":
		return "auth-required", fmt.Sprintf("an HTTP authentication layer answered 401 (WWW-Authenticate: %s): usually forward-auth or basic auth on the Socket.IO router (ItalyPaleAle/traefik-forward-auth#19, frappe/helm#248), possibly one in the Socket.IO server's own HTTP stack (Engine.IO and Frappe never answer 401 themselves). Exempt /socket.io from it (Frappe authenticates the socket itself with the session cookie), or make sure the browser's credentials reach it on XHR and websocket requests too", a.WWWAuthenticate)
	case a.Status >= 300 && a.Status < 400 && a.Location != "" && a.loginRedirect:
		return "auth-required", fmt.Sprintf("answered %d to a login page (%s, its query carrying the return address, as forward-auth, oauth2-proxy and Authelia send it): an authentication layer guards /socket.io and this request lacked its credentials. Exempt /socket.io from it (Frappe authenticates the socket itself with the session cookie), or make its cookie reach /socket.io (domain, path, SameSite)", a.Status, a.Location)
	case a.Status >= 300 && a.Status < 400 && a.Location != "":
		return "redirected", redirectFix(a, websocketRequest, host)
	}
	return "", ""
}

// returnAddressKeys are query keys that tell a login page where to send the
// user back (the guard's list, hops.go).
var returnAddressKeys = []string{"rd", "redirect_uri", "redirect_url", "redirect-to", "redirect", "return_to", "returnTo", "returnUrl", "ReturnUrl", "return_url", "next", "continue", "service", "goto"}

// loginRedirect: the Location's query carries a return address.
func loginRedirect(location string) bool {
	to, err := url.Parse(location)
	if err != nil {
		return false
	}
	query := to.Query()
	for _, key := range returnAddressKeys {
		if query.Get(key) != "" {
			return true
		}
	}
	return false
}

// shownLocation is a Location as the doctor prints it: scheme, host and the
// path up to its first ";" or escape — never userinfo, the query (a login
// redirect's state) or what a path may carry encoded; "" stays "".
func shownLocation(location string) string {
	if location == "" {
		return ""
	}
	to, err := url.Parse(location)
	if err != nil || strings.Contains(location, "\\") {
		return "<a Location that is no URL as Go reads it>"
	}
	path := to.EscapedPath()
	if i := strings.IndexAny(path, ";%"); i >= 0 {
		path = path[:i] + "…"
	}
	shown := url.URL{Scheme: to.Scheme, Host: to.Host}
	if to.Opaque != "" {
		return to.Scheme + ":…"
	}
	return trim(shown.String()+path, 200)
}

// redirectFix says where a redirect points and what fails: browsers follow
// a redirected poll, never a redirected websocket handshake
// (traefik/traefik#5571, qlever-dev/qlue-ui#73).
func redirectFix(a answer, websocketRequest bool, host string) string {
	what := "a browser follows this redirect for a poll, but never for the websocket handshake: the client stays on long-polling or fails to upgrade"
	if websocketRequest {
		what = "browsers never follow a redirected websocket handshake: the upgrade fails"
	}
	to, err := url.Parse(a.Location)
	switch {
	case err != nil:
		return fmt.Sprintf("answered %d to %q (%s)", a.Status, a.Location, what)
	case to.Host != "" && to.Hostname() != host:
		return fmt.Sprintf("answered %d to another host, %s: an authentication layer's login page, or a hop that sends this path elsewhere; %s. Exempt /socket.io from that redirect", a.Status, a.Location, what)
	case to.Scheme == "https" && a.requestScheme == "http":
		return fmt.Sprintf("answered %d to %s: a hop redirects http to https; %s. Use the https URL (the page's own origin); if the client already uses https, a hop behind the TLS termination sees http and redirects: make it trust the forwarded scheme", a.Status, a.Location, what)
	case to.Host == "" || to.Hostname() == host:
		return fmt.Sprintf("answered %d to %s, on this site: a hop rewrites the path (a trailing slash added or removed, a prefix); %s. Route the Engine.IO path exactly as the client sends it", a.Status, a.Location, what)
	}
	return fmt.Sprintf("answered %d to %s; %s", a.Status, a.Location, what)
}

// guardHint is the hint of one of socketioguard's own JSON answers, whole
// (it names the router rule with the host, for instance).
func guardHint(body string) string {
	var answer struct {
		Guard struct {
			Hint string `json:"hint"`
		} `json:"guard"`
	}
	if json.Unmarshal([]byte(body), &answer) != nil {
		return ""
	}
	return answer.Guard.Hint
}

// fixFor is the plugin's error reference in one line (readme.md, "Error
// reference"), with this run's host and EIO version filled in.
func fixFor(id, host, eio string) string {
	fix, ok := fixes[id]
	if !ok {
		return "see readme.md, Error reference: " + id
	}
	return strings.NewReplacer("<host>", host, "<eio>", eio).Replace(fix)
}

var fixes = map[string]string{
	"query-missing":                    "a hop dropped the query string (nginx rewrite, proxy_pass without $is_args$args): forward the request URI unchanged",
	"query-ambiguous":                  "the query carries EIO, transport, sid or j twice: a hop appends its own copy; remove that rule",
	"jsonp-refused":                    "socketioguard refuses JSONP polling (the j parameter) unless allowJSONP: Socket.IO clients since v3 never use it",
	"eio-unsupported":                  "socketioguard refused EIO=<eio> at the edge (its eioVersions): use a client of the server's version, or extend eioVersions if the server accepts it",
	"backend-eio-mismatch":             "the Socket.IO server itself refused EIO=<eio> (a server without allowEIO3 — Frappe sets none — refuses EIO=3): use a Socket.IO v3/v4 client (EIO=4), or enable allowEIO3 on the server. With socketioguard in front, set eioVersions: 4 so that it refuses such clients at the edge with a clear answer",
	"backend-forbidden":                "the Socket.IO server's allowRequest refused the request (code 4 Forbidden): look at its origin, CORS or authentication check, not at the proxies",
	"transport-unknown":                "the transport is not enabled: check the client's and the server's transports",
	"bad-handshake-method":             "a POST arrived without its sid: a hop dropped part of the query",
	"upgrade-missing":                  "a hop strips Upgrade/Connection: nginx needs proxy_http_version 1.1 and proxy_set_header Upgrade $http_upgrade / Connection \"upgrade\" (or put socketioguard in Traefik with repairUpgrade)",
	"upgrade-impossible":               "websockets need HTTP/1.1",
	"websocket-handshake-invalid":      "socketioguard would not turn this request into a websocket upgrade: it is not shaped like a browser's handshake",
	"no-socketio-route":                "add a router Host(`<host>`) && PathPrefix(`/socket.io`) to the Socket.IO service, with a higher priority than the web app's",
	"backend-not-socketio":             "the web app, not the Socket.IO server, answers /socket.io: point that route at the Socket.IO service (Frappe: socketio_port 9000/9001)",
	"session-unknown":                  "the server does not know the session: either its requests reach several Socket.IO processes (sticky sessions: loadBalancer.sticky.cookie, or one replica) or the session ended there (a restart, a ping timeout); run again with --replicas-check 10: sessions that break at once mean replicas without stickiness",
	"session-unknown-no-sticky-cookie": "the server does not know the session, and the request carried no sticky cookie of the service, so the load balancer chose a replica afresh: a client that does not send the cookie (non-browser clients: keep a cookie jar; a page on another site: withCredentials and the cookie sameSite: none, secure: true)",
	"session-unknown-sticky-cookie":    "the server does not know the session although the request carried the sticky cookie: the replica it names lost the session (a restart, a ping timeout) or is gone (the load balancer then replaces the cookie)",
	"upgrade-lost-downstream":          "a hop between Traefik and the Socket.IO server (nginx sidecar) drops Upgrade/Connection: add proxy_http_version 1.1 and the two proxy_set_header lines there",
	"websocket-refused":                "the websocket handshake arrived with its upgrade headers and was refused — usually by the Socket.IO server, possibly by a hop in front of it (see the evidence's body)",
	"hijack-failed":                    "polling works but Traefik answers the websocket handshake with a bare 500: a middleware on this router wraps the response writer without http.Hijacker, so Traefik cannot hand the connection over (it logs \"can't switch protocols using non-Hijacker ResponseWriter\" at DEBUG). Take that middleware off the Socket.IO router, or use a version that implements Hijack",
}
