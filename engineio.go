package socketioguard

import (
	"encoding/base64"
	"fmt"
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

	hasEIO, hasTransport bool
	eio, transport       string
	hasSIDKey            bool   // sid is in the query, perhaps empty
	hasSID               bool   // sid is in the query and not empty
	hasJSONP             bool   // j is in the query: JSONP polling
	ambiguousKey         string // an Engine.IO key the query carries twice

	// Upgrade evidence. Traefik's entrypoint has already removed the headers
	// named in Connection and deleted Connection unless it carried "upgrade".
	upgradeWebsocket  bool // Upgrade has the "websocket" token
	upgradeOther      bool // Upgrade is set to something else (e.g. h2c)
	connectionUpgrade bool // Connection has the "upgrade" token
	hasWebSocketProof bool // Sec-WebSocket-Key or -Version: end-to-end, survives proxies
	overHTTP2OrLater  bool // websockets need HTTP/1.1 in Traefik (no RFC 8441)
	// handshakeFlaw says which part of an RFC 6455 handshake a request with
	// stripped upgrade headers lacks ("" = none: it may be repaired).
	handshakeFlaw string
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
	r.overHTTP2OrLater = req.ProtoMajor >= 2
	if r.hasUsableUpgrade() {
		return // nothing to repair: the server judges the handshake itself
	}
	r.hasWebSocketProof = len(h.Values("Sec-WebSocket-Key")) > 0 || len(h.Values("Sec-WebSocket-Version")) > 0
	if r.hasWebSocketProof {
		r.handshakeFlaw = websocketHandshakeFlaw(req)
	}
}

// websocketHandshakeFlaw checks that a request is shaped like the opening
// handshake of RFC 6455 (section 4.1), which every browser sends: GET,
// Sec-WebSocket-Version 13, a Sec-WebSocket-Key of 16 base64 bytes, no body.
// Only such a request may be turned back into an upgrade: anything else
// (a request with a body, say) would travel into the backend's websocket
// after the 101. It returns which part did not fit, or "".
func websocketHandshakeFlaw(req *http.Request) string {
	if req.Method != http.MethodGet {
		return fmt.Sprintf("method %s (a websocket handshake is a GET)", req.Method)
	}
	versions := req.Header.Values("Sec-WebSocket-Version")
	if len(versions) != 1 || strings.TrimSpace(versions[0]) != "13" {
		return fmt.Sprintf("Sec-WebSocket-Version %q (must be 13, once)", shortened(strings.Join(versions, ", ")))
	}
	keys := req.Header.Values("Sec-WebSocket-Key")
	if len(keys) != 1 {
		return fmt.Sprintf("%d Sec-WebSocket-Key headers (must be one)", len(keys))
	}
	if key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0])); err != nil || len(key) != 16 {
		return fmt.Sprintf("Sec-WebSocket-Key %q (must be 16 bytes in base64)", shortened(keys[0]))
	}
	contentLength := strings.TrimSpace(req.Header.Get("Content-Length"))
	if req.ContentLength != 0 || len(req.TransferEncoding) > 0 || len(req.Header.Values("Transfer-Encoding")) > 0 ||
		contentLength != "" && contentLength != "0" {
		return "a request body (a websocket handshake has none)"
	}
	return ""
}

// shortened cuts a value an attacker chose before it goes into an answer.
func shortened(s string) string { return shortenedTo(s, 64) }

// shortenedTo cuts s to max bytes, marking the cut.
func shortenedTo(s string, max int) string {
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// The query keys Engine.IO servers read. A request that carries one of them
// twice is refused (query-ambiguous): engine.io (Node) takes the last value,
// python-engineio the first, so the guard could not know which one it checked.
const (
	keyEIO       = "EIO"
	keyTransport = "transport"
	keySID       = "sid"
	keyJSONP     = "j"
)

// maxParsedQuery: a query up to this length is read by url.ParseQuery, one
// compiled call; a longer one (up to the 1 MiB Traefik accepts) by a few
// compiled passes that allocate nothing per parameter.
const maxParsedQuery = 4096

// readEngineIOQuery reads EIO, transport, sid and j the way the backend will
// see them: keys and values percent-decoded, "+" as space, "&" and ";" both
// separating pairs (Traefik forwards ";" as "&"), malformed escapes kept as
// they are (as engine.io's URLSearchParams does), unknown parameters (the
// application's own) ignored. Under Traefik the plugin is interpreted, where
// a loop over the pairs would cost per pair: the work is done by compiled
// calls, bounded by the query's length whatever its content.
func readEngineIOQuery(rawQuery string, r *engineIORequest) {
	if len(rawQuery) <= maxParsedQuery {
		// url.ParseQuery decodes exactly like URLSearchParams wherever it
		// does not fail (it fails on ";" and on malformed escapes).
		if values, err := url.ParseQuery(rawQuery); err == nil {
			setEngineIOKeys(r, values[keyEIO], values[keyTransport], values[keySID], values[keyJSONP])
			return
		}
	}
	if strings.ContainsAny(rawQuery, "%;") {
		rawQuery = engineIOKeyNormalizer.Replace(rawQuery)
	}
	normalized := "&" + rawQuery + "&"
	setEngineIOKeys(r, scanKey(normalized, keyEIO), scanKey(normalized, keyTransport), scanKey(normalized, keySID), scanKey(normalized, keyJSONP))
}

// setEngineIOKeys records the values found for each key.
func setEngineIOKeys(r *engineIORequest, eio, transport, sid, jsonp []string) {
	r.hasEIO = len(eio) > 0
	if r.hasEIO {
		r.eio = eio[0]
	}
	r.hasTransport = len(transport) > 0
	if r.hasTransport {
		r.transport = transport[0]
	}
	r.hasSIDKey = len(sid) > 0
	r.hasSID = r.hasSIDKey && sid[0] != "" // an empty sid is a handshake, as for Engine.IO
	r.hasJSONP = len(jsonp) > 0            // even empty: engine.io answers JSONP to "j="
	switch {
	case len(eio) > 1:
		r.ambiguousKey = keyEIO
	case len(transport) > 1:
		r.ambiguousKey = keyTransport
	case len(sid) > 1:
		r.ambiguousKey = keySID
	case len(jsonp) > 1:
		r.ambiguousKey = keyJSONP
	}
}

// engineIOKeyNormalizer prepares a query for scanKey in one compiled pass:
// ";" becomes "&", and the percent-escapes of the letters of the four keys
// are decoded, so that "%6A=0" or "%45IO=3" are found as the server will
// read them (a server decodes a key once; so does a single Replacer pass).
var engineIOKeyNormalizer = strings.NewReplacer(
	";", "&",
	"%45", "E", "%49", "I", "%4F", "O", "%4f", "O",
	"%74", "t", "%72", "r", "%61", "a", "%6E", "n", "%6e", "n", "%73", "s", "%70", "p",
	"%6F", "o", "%6f", "o", "%69", "i", "%64", "d", "%6A", "j", "%6a", "j",
)

// scanKey finds a key in a normalized query ("&" + query + "&"): its value,
// decoded ("" when the key stands bare), or two entries when the key is
// there more than once (which copy counts is then unknowable, and the request
// is refused).
func scanKey(normalized, key string) []string {
	withValue, bare := "&"+key+"=", "&"+key+"&"
	count := strings.Count(normalized, withValue) + strings.Count(normalized, bare)
	if count == 1 && strings.Contains(normalized, bare+key+"&") {
		count = 2 // "&j&j&": Count does not see overlapping matches
	}
	switch count {
	case 0:
		return nil
	case 1:
		value := ""
		if i := strings.Index(normalized, withValue); i >= 0 {
			rest := normalized[i+len(withValue):]
			value = queryValue(rest[:strings.IndexByte(rest, '&')])
		}
		return []string{value}
	}
	return []string{"", ""}
}

// maxDecodedValue: no accepted EIO or transport value is longer, escaped.
const maxDecodedValue = 64

// queryValue decodes a value as a server would. Values too long to be an
// accepted one are kept raw (they are refused, and shown shortened).
func queryValue(raw string) string {
	if !strings.ContainsAny(raw, "%+") || len(raw) > maxDecodedValue {
		return raw
	}
	if v, err := url.QueryUnescape(raw); err == nil {
		return v
	}
	return lenientUnescape(raw)
}

// lenientUnescape decodes like URLSearchParams: "+" is a space, a valid
// escape is decoded, a malformed one ("%zz", a lone "%") stays as it is.
func lenientUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			b.WriteByte(' ')
		case c == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]):
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}

// hasUsableUpgrade is true when Traefik's proxy will forward the request as
// a websocket handshake: it needs both Upgrade and the Connection token.
func (r *engineIORequest) hasUsableUpgrade() bool {
	return r.upgradeWebsocket && r.connectionUpgrade
}

// headerHasToken reports whether a comma-separated header contains a token,
// case-insensitively, across all its lines.
func headerHasToken(h http.Header, name, token string) bool {
	lines := h.Values(name)
	if len(lines) == 1 && strings.EqualFold(lines[0], token) {
		return true // the usual "Upgrade: websocket", "Connection: Upgrade"
	}
	return listHasToken(lines, token)
}

func listHasToken(lines []string, token string) bool {
	for _, line := range lines {
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
