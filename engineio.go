package socketioguard

import (
	"net/http"
	"net/url"
	"strings"
)

// engineIORequest is what the guard reads from a request on an Engine.IO path:
// the query parameters Engine.IO servers check, and the upgrade evidence.
type engineIORequest struct {
	// missingSlash is true for "/socket.io" when the configured prefix is
	// "/socket.io/" (Engine.IO servers only answer the form with the slash).
	missingSlash bool

	hasEIO, hasTransport, hasSID bool
	eio, transport               string

	// Upgrade evidence. Traefik's entrypoint has already removed the headers
	// named in Connection and deleted Connection unless it carried "upgrade".
	upgradeWebsocket    bool // Upgrade has the "websocket" token
	upgradeOther        bool // Upgrade is set to something else (e.g. h2c)
	connectionUpgrade   bool // Connection has the "upgrade" token
	hasWebSocketKey     bool // Sec-WebSocket-Key: end-to-end, survives proxies
	hasWebSocketVersion bool // Sec-WebSocket-Version: likewise
	overHTTP2OrLater    bool // websockets need HTTP/1.1 in Traefik (no RFC 8441)
}

// matchEngineIOPath reports which configured prefix a path belongs to: it
// starts with the prefix, or equals the prefix without its trailing slash.
// It allocates nothing: it runs on every request of the router.
func matchEngineIOPath(prefixes []string, path string) (prefix string, missingSlash, ok bool) {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return p, false, true
		}
		if len(path) == len(p)-1 && strings.HasPrefix(p, path) {
			return p, true, true
		}
	}
	return "", false, false
}

// isClientBundle recognises the files a Socket.IO server serves under its own
// path (serveClient: /socket.io/socket.io.min.js, .map, .esm.min.js…): they
// are plain downloads, not Engine.IO requests.
func isClientBundle(prefix, path string) bool {
	rest := path[len(prefix)-1:]
	if len(rest) < 2 || strings.Contains(rest[1:], "/") {
		return false
	}
	return strings.HasPrefix(rest, "/socket.io") && (strings.HasSuffix(rest, ".js") || strings.HasSuffix(rest, ".js.map"))
}

func readEngineIORequest(req *http.Request, missingSlash bool) *engineIORequest {
	r := &engineIORequest{missingSlash: missingSlash}
	readEngineIOQuery(req.URL.RawQuery, r)
	if r.transport == transportWebsocket { // the upgrade evidence only matters to websocket handshakes
		readUpgradeEvidence(req, r)
	}
	return r
}

func readUpgradeEvidence(req *http.Request, r *engineIORequest) {
	h := req.Header
	r.upgradeWebsocket = headerHasToken(h, "Upgrade", "websocket")
	r.upgradeOther = !r.upgradeWebsocket && strings.TrimSpace(h.Get("Upgrade")) != ""
	r.connectionUpgrade = headerHasToken(h, "Connection", "upgrade")
	r.hasWebSocketKey = strings.TrimSpace(h.Get("Sec-WebSocket-Key")) != ""
	r.hasWebSocketVersion = strings.TrimSpace(h.Get("Sec-WebSocket-Version")) != ""
	r.overHTTP2OrLater = req.ProtoMajor >= 2
}

// readEngineIOQuery finds the first EIO, transport and sid values the way the
// backend will see them. Traefik forwards ";" as "&", so both separate pairs.
// Unknown parameters are the application's own and are ignored.
//
// It leans on url.ParseQuery on purpose: under Traefik the plugin is
// interpreted, and one call into the compiled standard library costs less
// than a loop over the pairs written here. (A pair with a malformed escape is
// skipped, as net/url does.)
func readEngineIOQuery(rawQuery string, r *engineIORequest) {
	if strings.Contains(rawQuery, ";") {
		rawQuery = strings.ReplaceAll(rawQuery, ";", "&")
	}
	values, _ := url.ParseQuery(rawQuery)
	if eio, ok := values["EIO"]; ok {
		r.hasEIO = true
		r.eio = eio[0]
	}
	if transport, ok := values["transport"]; ok {
		r.hasTransport = true
		r.transport = transport[0]
	}
	if sid, ok := values["sid"]; ok {
		r.hasSID = sid[0] != "" // an empty sid is a handshake, as for Engine.IO
	}
}

// hasUsableUpgrade is true when Traefik's proxy will forward the request as
// a websocket handshake: it needs both Upgrade and the Connection token.
func (r *engineIORequest) hasUsableUpgrade() bool {
	return r.upgradeWebsocket && r.connectionUpgrade
}

// upgradeProvable is true when the request proves it is a websocket
// handshake although a hop stripped Upgrade/Connection: browsers always send
// Sec-WebSocket-Key and -Version, and proxies forward those end-to-end.
func (r *engineIORequest) upgradeProvable(method string) bool {
	return method == http.MethodGet && r.hasWebSocketKey && r.hasWebSocketVersion &&
		!r.upgradeOther && !r.overHTTP2OrLater
}

// headerHasToken reports whether a comma-separated header contains a token,
// case-insensitively, across all its lines.
func headerHasToken(h http.Header, name, token string) bool {
	for _, line := range h.Values(name) {
		for line != "" {
			var item string
			item, line, _ = strings.Cut(line, ",")
			if strings.EqualFold(strings.TrimSpace(item), token) {
				return true
			}
		}
	}
	return false
}
