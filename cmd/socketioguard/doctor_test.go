package main

import (
	"bytes"
	"strings"
	"testing"
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
	cases := []struct {
		a         answer
		websocket bool
		id        string
	}{
		{answer{Status: 421, GuardError: "no-socketio-route"}, false, "no-socketio-route"},
		{answer{Status: 400, Diagnosis: "upgrade-lost-downstream"}, true, "upgrade-lost-downstream"},
		{answer{Status: 404, ContentType: "text/plain; charset=utf-8", Body: "404 page not found\n"}, false, "no-socketio-route"},
		{answer{Status: 404, ContentType: "text/html", Body: "<h1>Page not found</h1>"}, false, "backend-not-socketio"},
		{answer{Status: 200, ContentType: "text/html", Body: "<!doctype html>"}, false, "backend-not-socketio"},
		{answer{Status: 400, ContentType: "application/json", Body: `{"code":1,"message":"Session ID unknown"}`}, false, "session-unknown"},
		{answer{Status: 400, ContentType: "text/html", Body: "Session ID unknown"}, true, "session-unknown"},
		{answer{Status: 400, ContentType: "application/json", Body: `{"code":5,"message":"Unsupported protocol version"}`}, false, "eio-unsupported"},
		{answer{Status: 400, ContentType: "application/json", Body: `{"code":3,"message":"Bad request"}`}, true, "upgrade-missing"},
		{answer{Status: 502, ContentType: "text/html", Body: "<center>502 Bad Gateway</center>"}, false, "gateway-error"},
	}
	for _, c := range cases {
		id, fix := classifyFailure(c.a, c.websocket)
		if id != c.id || fix == "" {
			t.Errorf("%+v: %q (fix %q), want %q", c.a, id, fix, c.id)
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
