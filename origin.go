package socketioguard

import (
	"net/http"
	"regexp"
	"strings"
)

// ---- The request's own origin, as Traefik saw it ----
//
// Read by the Origin repair and by the diagnosis of a redirect.

// originFor is <scheme>://<host> of the request as the client addressed it,
// or "" when Host is not a plain host name or address with an optional port
// (the Origin is a URL the Socket.IO server may call back: Frappe does).
// Traefik sets X-Forwarded-Proto (http, https, or ws/wss for upgrades).
//
// Every handshake the guard repairs comes here: isPlainHost's test is
// written out (one call less under Yaegi), and an X-Forwarded-Proto that
// is absent or as Traefik sets it takes one map lookup.
func originFor(req *http.Request) string {
	host := req.Host
	if host == "" || len(host) > maxPlainHost || !plainHost.MatchString(host) { // isPlainHost
		return ""
	}
	forwardedProto := req.Header.Get("X-Forwarded-Proto")
	if forwardedScheme := forwardedSchemes[forwardedProto]; forwardedScheme != "" {
		return forwardedScheme + "://" + host // what Traefik sets: one value, lower case
	}
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	if forwardedProto != "" {
		if forwardedScheme := forwardedSchemes[firstForwardedProto(forwardedProto)]; forwardedScheme != "" {
			scheme = forwardedScheme
		}
	}
	return scheme + "://" + host
}

// firstForwardedProto is the first element of an X-Forwarded-Proto list,
// trimmed and in lower case, read in its first 64 bytes only: an element
// longer than that is no scheme the guard knows.
func firstForwardedProto(value string) string {
	if len(value) > 64 {
		value = value[:64]
	}
	proto, _, _ := strings.Cut(value, ",")
	return strings.ToLower(strings.TrimSpace(proto))
}

// forwardedSchemes: the scheme an X-Forwarded-Proto value says the client
// used (Traefik sends ws/wss for upgrades).
var forwardedSchemes = map[string]string{"https": "https", "wss": "https", "http": "http", "ws": "http"}

// plainHost accepts name[:port], IPv4[:port] and [IPv6][:port], and :port
// alone (as Go's server reads a Host): a name starts with a letter or digit
// and holds letters, digits, dots and hyphens; an address in brackets holds
// hexadecimal digits, colons and dots; a port is 1 to 5 digits; 261 bytes at
// most (checked before the expression reads it). One compiled match
// (FuzzPlainHost holds it to the rule written out).
func isPlainHost(host string) bool {
	return host != "" && len(host) <= maxPlainHost && plainHost.MatchString(host)
}

// maxPlainHost: a DNS name (253 bytes) and a port.
const maxPlainHost = 261

var plainHost = regexp.MustCompile(`^(?:\[[0-9A-Fa-f:.]*\]|[A-Za-z0-9][A-Za-z0-9.-]*)?(?::[0-9]{1,5})?$`)
