package main

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestParseOpen(t *testing.T) {
	cases := []struct {
		body string
		sid  string
		ok   bool
	}{
		{`0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`, "lv_VI97HAXpY6yYWAAAC", true},
		{`96:0{"sid":"abc","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":5000}2:40`, "abc", true}, // EIO=3, Socket.IO v2
		{`{"code":0,"message":"Transport unknown"}`, "", false},
		{`<html>404</html>`, "", false},
		{`0{"upgrades":[]}`, "", false},
	}
	for _, c := range cases {
		open, ok := parseOpen(c.body)
		if ok != c.ok || open.SID != c.sid {
			t.Errorf("%q: %+v %v", c.body, open, ok)
		}
	}
}

func TestNamespaceAnswer(t *testing.T) {
	site := &target{namespace: "/raven.localhost"}
	root := &target{namespace: "/"}
	cases := []struct {
		t         *target
		payload   string
		connected bool
		message   string
		found     bool
	}{
		{site, `40/raven.localhost,{"sid":"x"}`, true, "", true},
		{site, `44/raven.localhost,{"message":"Invalid origin"}`, false, "Invalid origin", true},
		{site, "2\x1e" + `44/raven.localhost,{"message":"Invalid namespace"}`, false, "Invalid namespace", true},
		{site, `40/other,{"sid":"x"}`, false, "", false},
		{root, `40{"sid":"x"}`, true, "", true},
		{root, `44{"message":"Not authorized"}`, false, "Not authorized", true},
		{root, `3probe`, false, "", false},
	}
	for _, c := range cases {
		connected, message, found := c.t.namespaceAnswer(c.payload)
		if connected != c.connected || message != c.message || found != c.found {
			t.Errorf("%s %q: (%v %q %v)", c.t.namespace, c.payload, connected, message, found)
		}
	}
}

// The plugin's ids where the cause is the same, from what an answer proves.
func TestClassifyFailure(t *testing.T) {
	guardAnswer := `{"code":3,"message":"Bad request","guard":{"error":"no-socketio-route","detail":"…","hint":"add a router with rule Host(` + "`v2.sysmayal.cloud`" + `) && PathPrefix(` + "`/socket.io`" + `) to the Socket.IO service, with a higher priority than the router that uses the middleware sio-fallback@docker"}}`
	cases := []struct {
		a         answer
		websocket bool
		id        string
		fixHas    string
	}{
		{answer{Status: 421, GuardError: "no-socketio-route", Body: guardAnswer}, false, "no-socketio-route", "Host(`v2.sysmayal.cloud`) && PathPrefix(`/socket.io`) to the Socket.IO service, with a higher priority than the router that uses the middleware sio-fallback@docker"},
		{answer{Status: 421, GuardError: "no-socketio-route", Body: "not json"}, false, "no-socketio-route", "Host(`v2.sysmayal.cloud`)"},
		{answer{Status: 400, Diagnosis: "upgrade-lost-downstream"}, true, "upgrade-lost-downstream", "nginx sidecar"},
		{answer{Status: 404, ContentType: "text/plain; charset=utf-8", Body: "404 page not found\n"}, false, "no-socketio-route", "Host(`v2.sysmayal.cloud`)"},
		{answer{Status: 404, ContentType: "text/html", Body: "<h1>Page not found</h1>"}, false, "backend-not-socketio", "point that route"},
		{answer{Status: 200, ContentType: "text/html", Body: "<!doctype html>"}, false, "backend-not-socketio", "point that route"},
		{answer{Status: 400, ContentType: "application/json", Body: `{"code":1,"message":"Session ID unknown"}`}, false, "session-unknown", "--replicas-check"},
		{answer{Status: 403, Mitigated: "challenge", ContentType: "text/html", Body: "<html>Just a moment...</html>"}, false, "waf-challenge", "cf-mitigated: challenge"},
		{answer{Status: 401, WWWAuthenticate: `Basic realm="traefik"`, Body: "401 Unauthorized\n"}, false, "auth-required", `WWW-Authenticate: Basic realm="traefik"`},
		{answer{Status: 401, Body: "401 Unauthorized\n"}, false, "unexpected-answer", ""},
		{redirectAnswer(301, "https://v2.sysmayal.cloud/socket.io/?EIO=4&transport=polling", "http", ""), false, "redirected", "a hop redirects http to https"},
		{redirectAnswer(302, "https://auth.example.com/login?rd=https%3A%2F%2Fv2.sysmayal.cloud%2Fsocket.io%2F", "https", ""), false, "auth-required", "to a login page (https://auth.example.com/login, its query carrying the return address"},
		{redirectAnswer(302, "https://user:SECRET@auth.example.com/cb;jsessionid=SECRET?state=SECRET", "https", ""), false, "redirected", "another host, https://auth.example.com/cb…:"},
		{redirectAnswer(302, "/socket.io/?EIO=4&sid=SECRET", "https", ""), false, "redirected", "answered 302 to /socket.io/, on this site"},
		{redirectAnswer(302, "https://www.sysmayal.cloud/socket.io/", "https", ""), false, "redirected", "another host, https://www.sysmayal.cloud/socket.io/"},
		{redirectAnswer(302, "/socket.io/", "https", "redirected"), false, "redirected", "on this site: a hop rewrites the path"},
		{answer{Status: 400, Diagnosis: "session-unknown-no-sticky-cookie", Body: `{"code":1,"message":"Session ID unknown"}`}, false, "session-unknown-no-sticky-cookie", "carried no sticky cookie"},
		{redirectAnswer(308, "/socket.io/?EIO=4&transport=websocket", "https", ""), true, "redirected", "browsers never follow a redirected websocket handshake"},
		{redirectAnswer(301, "https://v2.sysmayal.cloud/socket.io/", "https", ""), false, "redirected", "on this site: a hop rewrites the path"},
		{answer{Status: 400, ContentType: "text/html", Body: "Session ID unknown"}, true, "session-unknown", "a restart"},
		{answer{Status: 400, ContentType: "application/json", Body: `{"code":5,"message":"Unsupported protocol version"}`}, false, "backend-eio-mismatch", "server itself refused EIO=3"},
		{answer{Status: 400, Diagnosis: "backend-eio-mismatch", Body: `{"code":5,"message":"Unsupported protocol version"}`}, false, "backend-eio-mismatch", "eioVersions: 4"},
		{answer{Status: 400, GuardError: "eio-unsupported"}, false, "eio-unsupported", "socketioguard refused EIO=3"},
		{answer{Status: 403, ContentType: "application/json", Body: `{"code":4,"message":"Forbidden"}`}, false, "backend-forbidden", "allowRequest"},
		{answer{Status: 400, ContentType: "text/html", Body: "Forbidden"}, true, "backend-forbidden", "allowRequest"},
		{answer{Status: 400, ContentType: "application/json", Body: `{"code":3,"message":"Bad request"}`}, true, "upgrade-missing", "proxy_http_version"},
		{answer{Status: 400, ContentType: "text/html", Body: "Missing or invalid Sec-WebSocket-Key header"}, true, "websocket-refused", "Missing or invalid Sec-WebSocket-Key header"},
		{answer{Status: 500, ContentType: "text/plain; charset=utf-8", Body: "Internal Server Error"}, true, "hijack-failed", "Hijacker"},
		{answer{Status: 500, ContentType: "application/json", Body: `{"error":"boom"}`}, true, "gateway-error", "down or unreachable"},
		{answer{Status: 502, ContentType: "text/html", Body: "<center>502 Bad Gateway</center>"}, false, "gateway-error", "down or unreachable"},
	}
	for _, c := range cases {
		id, fix := classifyFailure(c.a, c.websocket, "v2.sysmayal.cloud", "3")
		if id != c.id || !strings.Contains(fix, c.fixHas) || strings.Contains(fix, "<host>") || strings.Contains(fix, "SECRET") {
			t.Errorf("%+v: %q (fix %q), want %q with %q", c.a, id, fix, c.id, c.fixHas)
		}
	}
}

// Frappe's refusals, each with its own fix, from what the run knows.
func TestNamespaceFix(t *testing.T) {
	cases := []struct {
		message, origin string
		originByGuard   bool
		want            string
	}{
		{"Invalid origin", "", false, "Enable setMissingOrigin"},
		{"Invalid origin", "https://v2.sysmayal.cloud", false, "a hop between here and Frappe rewrites Host"},
		{"Invalid origin", "", true, "sent by socketioguard"},
		{"Invalid origin", "https://evil.example", false, "names another host than v2.sysmayal.cloud"},
		{"Invalid namespace", "", false, "X-Frappe-Site-Name"},
		{"No cookie transmitted.", "", false, "--cookie 'sid=<session>'"},
		{"No authentication method used. Use cookie or authorization header.", "", false, "without sid"},
		{"Unauthorized: Error: Not Found", "https://v2.sysmayal.cloud", false, "https://v2.sysmayal.cloud/api/method/frappe.realtime.get_user_info, which must be reachable from the realtime server"},
		{"Unauthorized: Error: connect ECONNREFUSED", "", true, "https://v2.sysmayal.cloud/api/method/frappe.realtime.get_user_info"},
	}
	for _, c := range cases {
		tg, err := newTarget(doctorOptions{rawURL: "https://v2.sysmayal.cloud", namespace: "/v2.sysmayal.cloud", eio: "4", origin: c.origin})
		if err != nil {
			t.Fatal(err)
		}
		d := &session{o: doctorOptions{origin: c.origin, namespace: "/v2.sysmayal.cloud"}, t: tg, originByGuard: c.originByGuard}
		if got := d.namespaceFix(c.message); !strings.Contains(got, c.want) {
			t.Errorf("%q (origin %q, by guard %v): %q, want %q", c.message, c.origin, c.originByGuard, got, c.want)
		}
	}
}

// What a held websocket's end says about the hops.
func TestHoldVerdict(t *testing.T) {
	cut := errors.New("failed to get reader: EOF")
	cases := []struct {
		h    held
		want string
	}{
		{held{lasted: 10 * time.Second, pings: 2}, "pass"},
		{held{lasted: 2 * time.Second, err: cut}, "hop-idle-timeout"},
		{held{lasted: 61 * time.Second, pings: 2, err: cut}, "hop-max-lifetime"},
		{held{lasted: 5 * time.Second, pings: 0, serverClosed: true, err: cut}, "server-closed"},
	}
	for _, c := range cases {
		s := holdVerdict(c.h, 10*time.Second, 25*time.Second, 20*time.Second)
		if got := s.Status; got != c.want && s.ID != c.want {
			t.Errorf("%+v: %s %s %q", c.h, s.Status, s.ID, s.Summary)
		}
		if s.Status == fail && (s.Fix == "" || !strings.Contains(s.Summary, "pingInterval 25s")) {
			t.Errorf("%+v: %q / %q", c.h, s.Summary, s.Fix)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{nil, "usage: socketioguard doctor URL"},
		{[]string{"doctor"}, "want exactly one URL, got 0"},
		{[]string{"doctor", "a", "b"}, "want exactly one URL, got 2"},
		{[]string{"doctor", "https://x", "--eio", "5"}, `--eio "5" is not 3 or 4`},
		{[]string{"doctor", "https://x", "--timeout", "-1s"}, "--timeout -1s must be positive"},
		{[]string{"doctor", "https://x", "--bogus"}, "flag provided but not defined: -bogus"},
	}
	for _, c := range cases {
		var stdout, stderr bytes.Buffer
		if code := run(c.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), c.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", c.args, code, stderr.String(), c.want)
		}
	}
}

func TestTargetFromURL(t *testing.T) {
	cases := []struct {
		url, path, want string
	}{
		{"https://v2.sysmayal.cloud", "", "https://v2.sysmayal.cloud/socket.io/?EIO=4"},
		{"v2.sysmayal.cloud", "", "https://v2.sysmayal.cloud/socket.io/?EIO=4"},
		{"http://127.0.0.1:8005/socket.io", "", "http://127.0.0.1:8005/socket.io/?EIO=4"},
		{"wss://h/custom/", "", "https://h/custom/?EIO=4"},
		{"https://h", "/ws", "https://h/ws/?EIO=4"},
	}
	for _, c := range cases {
		tg, err := newTarget(doctorOptions{rawURL: c.url, path: c.path, eio: "4", namespace: "/"})
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if got := tg.endpoint(tg.query("polling", "")); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %s, want %s…", c.url, got, c.want)
		}
	}
	if _, err := newTarget(doctorOptions{rawURL: "ftp://h"}); err == nil || !strings.Contains(err.Error(), `scheme "ftp" is not http or https`) {
		t.Errorf("ftp: %v", err)
	}
}

func TestParseConnectTo(t *testing.T) {
	m, err := parseConnectTo([]string{"erp.example.test:443:127.0.0.1:8443", "erp.example.test:80:127.0.0.1:8080"})
	if err != nil || m["erp.example.test:443"] != "127.0.0.1:8443" || m["erp.example.test:80"] != "127.0.0.1:8080" {
		t.Errorf("parseConnectTo: %v %v", m, err)
	}
	for _, bad := range []string{"erp.example.test:443", "erp.example.test:443:127.0.0.1:0", ":443:127.0.0.1:8443", "erp:x:127.0.0.1:1"} {
		if _, err := parseConnectTo([]string{bad}); err == nil || !strings.Contains(err.Error(), "--connect-to") {
			t.Errorf("parseConnectTo(%q): %v, want an error naming --connect-to", bad, err)
		}
	}
}

// redirectAnswer is a redirect as the doctor reads it off the wire
// (hopHeaders: what it shows of the Location, whether it is a login page's).
func redirectAnswer(status int, location, scheme, diagnosis string) answer {
	u, _ := url.Parse(scheme + "://v2.sysmayal.cloud/socket.io/")
	resp := &http.Response{StatusCode: status, Header: http.Header{"Location": {location}}, Request: &http.Request{URL: u}}
	a := answer{Status: status, Diagnosis: diagnosis}
	a.hopHeaders(resp)
	return a
}

// TestInspectAsksAgainPastTheGuardsBudget: the guard answers 20 inspections
// a second per router; the doctor, refused with inspection-rate-limited,
// asks once more a second later (and only once).
func TestInspectAsksAgainPastTheGuardsBudget(t *testing.T) {
	for _, refusals := range []int{1, 2} {
		asked := 0
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			asked++
			if asked <= refusals {
				w.Header().Set("X-Socketio-Guard-Error", "inspection-rate-limited")
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			_, _ = w.Write([]byte(`{"middleware":"sio-guard@file","mode":"guard"}`))
		}))
		tg, err := newTarget(doctorOptions{rawURL: srv.URL, eio: "4", namespace: "/"})
		if err != nil {
			t.Fatal(err)
		}
		d := &session{o: doctorOptions{inspectPath: "/socket.io/.guard", timeout: 5 * time.Second}, t: tg}
		got := d.inspect(context.Background())
		srv.Close()
		if want := refusals == 1; (got != nil) != want || asked != 2 {
			t.Errorf("%d refusals: answer %v after %d requests; want an answer %v after 2", refusals, got, asked, want)
		}
	}
}
