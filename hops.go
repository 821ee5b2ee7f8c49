package socketioguard

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// ---- Diagnose: answers a hop gave in the Socket.IO server's place ----
//
// Engine.IO never redirects and never asks for credentials: a 3xx with a
// Location or a 401 with WWW-Authenticate to an Engine.IO request comes
// from a middleware after the guard or a hop behind Traefik. And its
// "Session ID unknown" is told apart by the load balancer's sticky cookie,
// which Traefik's load balancer sets on the very answer when the request
// carried none (or one naming a server it no longer has).
//
// What is read here is the backend's answer (its Location, its Set-Cookie)
// and the request's Cookie, each within a bound, by compiled calls; these
// functions run only for the answers they name, never on a common answer's
// way.

// redirectStatuses are the statuses that send a client elsewhere (304 and
// 300 do not).
var redirectStatuses = map[int]bool{301: true, 302: true, 303: true, 307: true, 308: true}

// maxReadLocation bounds what the diagnosis reads of a Location: a
// redirect's target may carry the request's own query back.
const maxReadLocation = 2048

// returnAddressKeys are query keys with which a login page is told where to
// send the user back (Authelia and oauth2-proxy's rd, OAuth's redirect_uri,
// CAS's service, Frappe's redirect-to, …): a redirect carrying one is an
// authentication layer's, not a canonical-host or scheme redirect.
var returnAddressKeys = []string{"rd", "redirect_uri", "redirect_url", "redirect-to", "redirect", "return_to", "returnTo", "returnUrl", "ReturnUrl", "return_url", "next", "continue", "service", "goto"}

// diagnoseRedirect names a redirect of an Engine.IO request by where its
// Location points (answer: the answer's headers; before: those set before
// forwarding, which do not count).
func diagnoseRedirect(req *http.Request, answer, before http.Header, websocket bool) (*problem, string) {
	location := answer.Get("Location")
	if location == "" || before.Get("Location") == location {
		return nil, ""
	}
	what := "a poll was redirected (clients follow that on polling; to another origin it also needs CORS there)"
	if websocket {
		what = "the websocket handshake was redirected (no client follows that: the websocket fails)"
	}
	if len(location) > maxReadLocation {
		return &problemRedirected, what + ", to a Location longer than 2048 bytes"
	}
	target, err := url.Parse(location)
	if err != nil {
		return &problemRedirected, what + ", to a Location that is no URL"
	}
	if loginRedirect(target) {
		return &problemAuthRequired, what + " to a login page, " + shownTarget(req, target, location) + ": its query carries a return address"
	}
	scheme := "http"
	if origin := originFor(req); origin != "" {
		scheme, _, _ = strings.Cut(origin, "://")
	}
	targetScheme := strings.ToLower(target.Scheme)
	switch {
	case strings.Contains(location, "\\") || targetScheme != "" && (target.Host == "" || targetScheme != "http" && targetScheme != "https"):
		// Browsers read a backslash as a slash and "http:host/…" as a host
		// where Go reads a path: where it sends the client is not judged.
		return &problemRedirected, what + ", to a Location browsers and Go read differently (a backslash, a scheme without //, or no http URL): where it points is not judged"
	case target.Host != "" && !sameHostName(target.Hostname(), req.Host):
		return &problemRedirected, what + " to another host, " + shownTarget(req, target, location) + ": a canonical-host redirect (www and the bare name) or an authentication layer's login page"
	case targetScheme != "" && targetScheme != scheme:
		return &problemRedirected, what + " from " + scheme + " to " + shortened(targetScheme) + " on the same host: " + schemeRedirectCause(scheme, targetScheme)
	}
	return &problemRedirected, what + " to the path " + shownTarget(req, &url.URL{Path: target.Path, RawPath: target.RawPath}, location) + " on the same host: a path rewrite (a trailing slash added or removed, a prefix)"
}

// sameHostName compares host names without their ports: a redirect from
// http to https changes the port, and a hop builds an absolute Location with
// its own (nginx's port_in_redirect).
func sameHostName(name, requestHost string) bool {
	request := url.URL{Host: requestHost}
	return strings.EqualFold(name, request.Hostname())
}

// schemeRedirectCause says who sends a client from one scheme to the other.
func schemeRedirectCause(scheme, targetScheme string) string {
	if scheme == "https" {
		return "a hop behind Traefik builds its redirect from its own plain http (it does not take X-Forwarded-Proto from Traefik)"
	}
	return "the client came over http and a hop behind Traefik sends it to https, which websockets do not follow (connect to https:// directly; redirect at Traefik's entrypoint) — or that hop does not take X-Forwarded-Proto from a Traefik that terminates TLS"
}

// loginRedirect: the target's query carries a return address.
func loginRedirect(target *url.URL) bool {
	query := target.Query()
	for _, key := range returnAddressKeys {
		if query.Get(key) != "" {
			return true
		}
	}
	return false
}

// shownTarget is a redirect's target as a log line shows it: scheme, host
// and the path up to its first ";" or escape — never its userinfo, its query
// or what a path may carry encoded (a login page's return address with the
// sid, a session id as a path parameter); only scheme and host when the
// Location holds the request's sid anywhere.
func shownTarget(req *http.Request, target *url.URL, location string) string {
	path := target.EscapedPath()
	if i := strings.IndexAny(path, ";%"); i >= 0 {
		path = path[:i] + "…"
	}
	if sid := req.URL.Query().Get(keySID); sid != "" && strings.Contains(location, sid) { // the query is at most 4096 bytes here
		path = "/…"
	}
	shown := url.URL{Scheme: target.Scheme, Host: target.Host}
	if path == "" {
		path = "/"
	}
	return shortened(shown.String() + path)
}

// diagnoseAuthChallenge names a 401 that asks for credentials.
func diagnoseAuthChallenge(answer, before http.Header) (*problem, string) {
	challenge := answer.Get("WWW-Authenticate")
	if challenge == "" || before.Get("WWW-Authenticate") == challenge {
		return nil, ""
	}
	scheme, _, _ := strings.Cut(shortenedTo(challenge, 32), " ")
	return &problemAuthRequired, "401 with WWW-Authenticate " + scheme + ": credentials this request did not carry"
}

// maxReadCookie bounds what the diagnosis reads of the request's Cookie
// lines (the first 4, each in its first 8 KiB: browsers send a few KiB) and
// of the answer's Set-Cookie lines (the first 8).
const (
	maxReadCookie      = 8192
	maxReadCookieLines = 4
	maxReadSetCookies  = 8
)

// diagnoseSessionUnknown splits "Session ID unknown" by the sticky cookie:
// its name is the stickyCookie option's, or learned from this answer's
// Set-Cookie when Traefik's load balancer set one under its default name
// (see stickyCookieSet). Without either, the two causes stay one diagnosis.
func diagnoseSessionUnknown(g *Guard, req *http.Request, answer, before http.Header) (*problem, string) {
	name, set := stickyCookieSet(g.stickyCookie, answer, before)
	if name == "" {
		return &problemSessionUnknown, ""
	}
	carried, read := requestCarriesCookie(req, name)
	switch {
	case !read:
		return &problemSessionUnknown, "the request's Cookie header is longer than the guard reads"
	case !carried && set:
		return &problemSessionUnknownNoStickyCookie, "the request carried no cookie " + name + ": the load balancer chose a replica afresh and set one on this answer"
	case !carried:
		return &problemSessionUnknownNoStickyCookie, "the request carried no cookie " + name
	case set:
		return &problemSessionUnknownStickyCookie, "the request carried " + name + " and the load balancer replaced it on this answer: the replica it named is gone or unhealthy (or the cookie was of Traefik before v3, rewritten in place)"
	}
	return &problemSessionUnknownStickyCookie, "the request carried " + name + " and the load balancer kept it: the replica it names does not know this session (restarted, or the session timed out), or the cookie is another service's or edge's"
}

// stickyCookieSet returns the sticky cookie's name and whether this answer
// sets it: a Set-Cookie of the configured name, or (none configured) one
// named as Traefik's load balancer names it by default ("_" and five
// hexadecimal digits). Engine.IO sets no cookie on its refusals; a cookie
// set before forwarding (an earlier middleware's) makes the answer's
// Set-Cookie lines unreadable as the load balancer's, and is not judged.
func stickyCookieSet(configured string, answer, before http.Header) (string, bool) {
	lines := answer["Set-Cookie"]
	if before["Set-Cookie"] != nil || len(lines) == 0 {
		return configured, false
	}
	if len(lines) > maxReadSetCookies {
		lines = lines[:maxReadSetCookies]
	}
	// Read as Go's HTTP stack reads them (Traefik's load balancer writes them
	// with http.SetCookie); a deletion (no value, Max-Age 0) sets nothing.
	set := &http.Response{Header: http.Header{"Set-Cookie": lines}}
	for _, c := range set.Cookies() {
		if c.Value != "" && c.MaxAge >= 0 && (c.Name == configured || configured == "" && traefikDefaultCookieName.MatchString(c.Name)) {
			return c.Name, true
		}
	}
	return configured, false
}

// traefikDefaultCookieName: Traefik's load balancer names its sticky
// cookie "_" and the first five hexadecimal digits of a hash of the
// service's name when loadBalancer.sticky.cookie.name is not set
// (pkg/server/cookie GenerateName, v2 and v3 alike).
var traefikDefaultCookieName = regexp.MustCompile(`^_[0-9a-f]{5}$`)

// requestCarriesCookie reports whether the request carries a cookie of that
// name, and false for read when the Cookie lines are longer than the guard
// reads and the name was not in their beginning.
//
// The lines are read as Traefik's load balancer reads them (Request.Cookie).
func requestCarriesCookie(req *http.Request, name string) (carried, read bool) {
	lines := req.Header["Cookie"]
	read = len(lines) <= maxReadCookieLines
	if !read {
		lines = lines[:maxReadCookieLines]
	}
	cut := make([]string, len(lines))
	for i, line := range lines {
		if len(line) > maxReadCookie {
			line, read = line[:maxReadCookie], false
		}
		cut[i] = line
	}
	if _, err := (&http.Request{Header: http.Header{"Cookie": cut}}).Cookie(name); err == nil {
		return true, true
	}
	return false, read
}
