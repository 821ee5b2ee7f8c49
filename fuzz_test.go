package socketioguard

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// FuzzServeHTTP sends arbitrary path/query/header combinations through the
// guard (with the Frappe recipe's setMissingOrigin). It must never panic; a
// request outside the Engine.IO paths reaches the backend exactly as it
// arrived, with nothing added to the answer; and for every request it
// forwards, what an attacker could aim at holds:
//   - an Origin that is present is never changed;
//   - an Origin is added only when Sec-Fetch-Site is absent or exactly same-origin;
//   - the query reaches the backend byte for byte;
//   - Upgrade is only ever added to a GET shaped like an RFC 6455 handshake;
//   - EIO, transport, sid and j have at most one value each, however spelled.
func FuzzServeHTTP(f *testing.F) {
	f.Add("GET", "/socket.io/", "EIO=4&transport=polling&t=x", "", "", "", "", false, "", "", "", uint8(0))
	f.Add("GET", "/socket.io", "EIO=4&transport=websocket&sid=abc", "", "", "dGhlIHNhbXBsZSBub25jZQ==", "13", false, "", "same-origin", "", uint8(1))
	f.Add("GET", "/socket.io/", "EIO=4&transport=websocket", "websocket", "Upgrade", "k", "13", true, "https://a.example", "", "", uint8(2))
	f.Add("POST", "/socket.io/", "EIO=3;transport=polling;sid=", "h2c", "keep-alive, upgrade", "", "", false, "", "cross-site", "5", uint8(3))
	f.Add("OPTIONS", "/socket.io/socket.io.min.js", "%zz=%&EIO", "", "", "", "", false, "", "", "", uint8(0))
	f.Add("GET", "/api/method/ping", "EIO=4&transport=polling", "websocket", "Upgrade", "k", "13", false, "", "same-site", "", uint8(1))
	f.Add("PUT", "/socket.iox", "transport=websocket", "", "close", "", "", true, "", "", "", uint8(2))
	f.Add("GET", "/socket.io/", "EIO=4&transport=polling&%6A=0&transport=websocket", "", "", "dGhlIHNhbXBsZSBub25jZQ==", "13", false, "", "none", "0", uint8(3))
	f.Fuzz(func(t *testing.T, method, path, rawQuery, upgrade, connection, wsKey, wsVersion string, http2 bool, origin, fetchSite, contentLength string, configuration uint8) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") {
			return
		}
		req := &http.Request{
			Method:     method,
			URL:        &url.URL{Path: path, RawQuery: rawQuery},
			Proto:      "HTTP/1.1",
			ProtoMajor: 1,
			ProtoMinor: 1,
			Host:       "v2.sysmayal.cloud",
			Header:     http.Header{},
			RemoteAddr: "192.0.2.1:4242",
		}
		req.RequestURI = req.URL.RequestURI()
		if http2 {
			req.Proto = "HTTP/2.0"
			req.ProtoMajor = 2
			req.ProtoMinor = 0
		}
		setIfNotEmpty(req.Header, "Upgrade", upgrade)
		setIfNotEmpty(req.Header, "Connection", connection)
		setIfNotEmpty(req.Header, "Sec-WebSocket-Key", wsKey)
		setIfNotEmpty(req.Header, "Sec-WebSocket-Version", wsVersion)
		setIfNotEmpty(req.Header, "Origin", origin)
		setIfNotEmpty(req.Header, "Sec-Fetch-Site", fetchSite)
		setIfNotEmpty(req.Header, "Content-Length", contentLength)
		before := req.Clone(context.Background())

		var seen *http.Request
		backend := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			seen = r
			rw.WriteHeader(http.StatusNotFound)
		})
		cfg := CreateConfig()
		cfg.SetMissingOrigin = true
		cfg.InspectPath = "/socket.io/.guard"
		fuzzConfigurations[int(configuration)%len(fuzzConfigurations)](cfg)
		guard := newTestGuard(t, cfg, backend, nil)
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, req)

		// The client bundle under the Engine.IO path is a plain download (the
		// Socket.IO server serves it before Engine.IO sees the request): it
		// must pass untouched like any other request, unless its query
		// carries Engine.IO's keys (then it is an Engine.IO request).
		if prefix, _, isEngineIO := matchEngineIOPath(guard.settings.paths, path); isEngineIO &&
			!(len(path) > len(prefix) && guard.settings.clientBundles[path[len(prefix):]] && !carriesEngineIOKeys(before)) {
			if seen != nil {
				checkForwardedEngineIORequest(t, before, seen)
			}
			return
		}
		if seen == nil {
			t.Fatalf("non-Engine.IO request %s %q was not forwarded", method, path)
		}
		if seen.URL.String() != before.URL.String() || seen.RequestURI != before.RequestURI ||
			!reflect.DeepEqual(seen.Header, before.Header) || seen.Host != before.Host {
			t.Fatalf("non-Engine.IO request changed: %v %v -> %v %v", before.URL, before.Header, seen.URL, seen.Header)
		}
		for name := range rec.Header() {
			if strings.HasPrefix(name, "X-Socketio-Guard") {
				t.Fatalf("non-Engine.IO answer got %s", name)
			}
		}
		if rec.Code != http.StatusNotFound {
			t.Fatalf("non-Engine.IO answer changed to %d", rec.Code)
		}
	})
}

// fuzzConfigurations: the Frappe recipe, and the configurations without
// the short way (websocket only, more than eight paths) or without the
// websocket's (polling only), whose full way reads every request itself.
var fuzzConfigurations = []func(*Config){
	func(*Config) {},
	func(c *Config) { c.Transports = []string{"websocket"} },
	func(c *Config) {
		c.Paths = []string{"/a/", "/b/", "/c/", "/d/", "/e/", "/f/", "/g/", "/h/", "/socket.io/"}
	},
	func(c *Config) { c.Transports = []string{"polling"} },
}

// checkForwardedEngineIORequest holds the guard's promises about a request it
// forwarded (before: as it arrived; seen: as the backend got it).
func checkForwardedEngineIORequest(t *testing.T, before, seen *http.Request) {
	t.Helper()
	if seen.URL.RawQuery != before.URL.RawQuery {
		t.Fatalf("query changed: %q -> %q", before.URL.RawQuery, seen.URL.RawQuery)
	}
	if _, after, _ := strings.Cut(seen.RequestURI, "?"); strings.Contains(before.RequestURI, "?") && after != before.URL.RawQuery {
		t.Fatalf("RequestURI's query changed: %q -> %q", before.RequestURI, seen.RequestURI)
	}
	// An empty Origin counts as absent (the readme's promise); a server
	// trims header values, so one of spaces arrives empty.
	absent := strings.TrimSpace(before.Header.Get("Origin")) == ""
	if origin := before.Header.Get("Origin"); !absent && seen.Header.Get("Origin") != origin {
		t.Fatalf("a present Origin changed: %q -> %q", origin, seen.Header.Get("Origin"))
	}
	if absent && seen.Header.Get("Origin") != before.Header.Get("Origin") {
		if fetchSite, present := before.Header["Sec-Fetch-Site"]; present && !(len(fetchSite) == 1 && fetchSite[0] == "same-origin") {
			t.Fatalf("Origin %q added with Sec-Fetch-Site %q", seen.Header.Get("Origin"), fetchSite)
		}
	}
	if !headerHasToken(before.Header, "Upgrade", "websocket") && headerHasToken(seen.Header, "Upgrade", "websocket") && !shapedLikeRFC6455(before) {
		t.Fatalf("Upgrade added to %s %v", before.Method, before.Header)
	}
	values := searchParams(seen.URL.RawQuery)
	for _, key := range []string{"EIO", "transport", "sid", "j"} {
		if len(values[key]) > 1 {
			t.Fatalf("forwarded with %d values for %s: %q", len(values[key]), key, seen.URL.RawQuery)
		}
	}
}

// shapedLikeRFC6455: the opening handshake of RFC 6455 (section 4.1) as a
// browser sends it — the tests' own reading, independent of the guard's.
func shapedLikeRFC6455(req *http.Request) bool {
	versions, keys := req.Header.Values("Sec-WebSocket-Version"), req.Header.Values("Sec-WebSocket-Key")
	if req.Method != "GET" || len(versions) != 1 || strings.TrimSpace(versions[0]) != "13" || len(keys) != 1 {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(keys[0]))
	contentLength := strings.TrimSpace(req.Header.Get("Content-Length"))
	return err == nil && len(key) == 16 && req.ContentLength == 0 && req.Header.Get("Transfer-Encoding") == "" &&
		(contentLength == "" || contentLength == "0")
}

// FuzzReadEngineIOQuery checks the guard's query reader against a plain
// reading of the query as engine.io's URLSearchParams does it (with ";" also
// separating, as Traefik forwards it): within the reader's limits and without
// a malformed escape, the same keys present, the same values, and a repeated
// key always noticed; past its limits, or with a malformed escape, refused
// as such.
func FuzzReadEngineIOQuery(f *testing.F) {
	f.Add("EIO=4&transport=polling&t=N8hyd6w")
	f.Add("EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC")
	f.Add("transport=web%73ocket&EIO=4&EIO=3")
	f.Add("EIO=%zz&transport=+polling")
	f.Add("sid=&sid=x")
	f.Add("%6A=0;%45IO=4&j")
	f.Add(strings.Repeat("p=1&", maxQueryPairs) + "EIO=4&%6a&j=1")
	f.Add(strings.Repeat("p", maxQueryLength) + "&EIO=4")
	f.Fuzz(func(t *testing.T, rawQuery string) {
		var r engineIORequest
		got := readEngineIOQuery(rawQuery, &r)
		pairs := strings.Count(rawQuery, "&") + strings.Count(rawQuery, ";") + 1
		switch {
		case len(rawQuery) > maxQueryLength || pairs > maxQueryPairs:
			if got != &problemQueryTooLong {
				t.Fatalf("%d bytes in %d pairs: read (%v)", len(rawQuery), pairs, got)
			}
		case hasMalformedEscape(rawQuery):
			if got != &problemQueryMalformed {
				t.Fatalf("%q has a malformed escape: read (%v)", rawQuery, got)
			}
		case got != nil:
			t.Fatalf("%q: refused as %s", rawQuery, got.id)
		default:
			checkQueryReading(t, rawQuery, r)
		}
	})
}

// hasMalformedEscape: a % not followed by two hexadecimal digits.
func hasMalformedEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && (i+2 >= len(s) || !isHexDigit(s[i+1]) || !isHexDigit(s[i+2])) {
			return true
		}
	}
	return false
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func checkQueryReading(t *testing.T, rawQuery string, r engineIORequest) {
	t.Helper()
	values := searchParams(rawQuery)
	repeated := false
	for _, key := range []string{"EIO", "transport", "sid", "j"} {
		repeated = repeated || len(values[key]) > 1
	}
	if (r.ambiguousKey != "") != repeated {
		t.Fatalf("%q: ambiguous %q, URLSearchParams reads %v", rawQuery, r.ambiguousKey, values)
	}
	if repeated {
		return
	}
	if r.hasEIO != (values["EIO"] != nil) || r.hasTransport != (values["transport"] != nil) || r.hasJSONP != (values["j"] != nil) ||
		r.hasSID != (len(values["sid"]) == 1 && values["sid"][0] != "") {
		t.Fatalf("%q: read %+v, URLSearchParams reads %v", rawQuery, r, values)
	}
	for key, got := range map[string]string{"EIO": r.eio, "transport": r.transport} {
		if want := values[key]; want != nil && got != want[0] {
			t.Fatalf("%q: %s %q, URLSearchParams reads %q", rawQuery, key, got, want[0])
		}
	}
}

// searchParams reads a query as the WHATWG URLSearchParams does, the way
// engine.io builds its query: pairs split at "&" (and ";" here), at the first
// "=", "+" as space, valid escapes decoded, malformed ones kept.
func searchParams(rawQuery string) map[string][]string {
	values := map[string][]string{}
	for _, pair := range strings.FieldsFunc(rawQuery, func(r rune) bool { return r == '&' || r == ';' }) {
		key, value, _ := strings.Cut(pair, "=")
		values[decodeComponent(key)] = append(values[decodeComponent(key)], decodeComponent(value))
	}
	return values
}

func decodeComponent(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if b, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil && !strings.ContainsAny(s[i+1:i+3], "+-") {
				out = append(out, byte(b))
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}

func setIfNotEmpty(h http.Header, name, value string) {
	if value != "" {
		h.Set(name, value)
	}
}

// FuzzPlainHost holds isPlainHost (one regular expression) to the rule
// written out step by step.
func FuzzPlainHost(f *testing.F) {
	for _, host := range []string{"v2.sysmayal.cloud", "localhost:8000", "127.0.0.1", "[::1]:443", "[fe80::1%25eth0]", ":80",
		"-bad", ".bad", "a b", "host:", "host:123456", "evil.example/x", "[::1]x", strings.Repeat("a", 262)} {
		f.Add(host)
	}
	f.Fuzz(func(t *testing.T, host string) {
		if got, want := isPlainHost(host), plainHostWrittenOut(host); got != want {
			t.Fatalf("isPlainHost(%q) = %v, the rule written out says %v", host, got, want)
		}
	})
}

func plainHostWrittenOut(host string) bool {
	if host == "" || len(host) > 261 {
		return false
	}
	name, port := host, ""
	if strings.HasPrefix(host, "[") {
		end := strings.IndexByte(host, ']')
		if end < 0 || strings.Trim(host[1:end], "0123456789abcdefABCDEF:.") != "" {
			return false
		}
		name, port = "", host[end+1:]
	} else if i := strings.IndexByte(host, ':'); i >= 0 {
		name, port = host[:i], host[i:]
	}
	if name != "" && (strings.Trim(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" || name[0] == '.' || name[0] == '-') {
		return false
	}
	return port == "" || len(port) > 1 && len(port) <= 6 && port[0] == ':' && strings.Trim(port[1:], "0123456789") == ""
}
