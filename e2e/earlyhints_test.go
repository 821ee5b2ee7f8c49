package e2e

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestEarlyHintsThroughTraefik: a server (or a hop in front of it) that
// sends 103 Early Hints before its answer, behind a real Traefik — the main
// one (v3.7.13), v3.6.12 and v2.11.54, whose proxies relay an informational
// answer as it comes. With the guard the client gets the 103 and then the
// answer with its own status, as without it: a refusal stays a refusal
// (and is read), a web app's 404 is still named, and nothing becomes a 200.
// The server here is a stand-in on loopback: what matters is the 103, which
// Engine.IO servers do not send themselves.
func TestEarlyHintsThroughTraefik(t *testing.T) {
	onTraefikLines(t, everyTraefikLine, earlyHintsThrough)
}

func earlyHintsThrough(t *testing.T, line string) {
	answers := map[string]struct {
		status      int
		contentType string
		body        string
	}{
		"handshake": {200, "text/plain; charset=UTF-8", `0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`},
		"unknown":   {400, "application/json", `{"code":1,"message":"Session ID unknown"}`},
		"webapp":    {404, "text/html; charset=utf-8", "<html><body>Page not found</body></html>"},
	}
	server := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		a := answers[req.URL.Query().Get("answer")]
		rw.Header().Set("Link", "</assets/app.css>; rel=preload")
		rw.WriteHeader(http.StatusEarlyHints)
		rw.Header().Del("Link")
		rw.Header().Set("Content-Type", a.contentType)
		rw.WriteHeader(a.status)
		_, _ = io.WriteString(rw, a.body)
	}))
	defer server.Close()
	tr := startGuardedAndPlain(newEnv(t), line, "traefik-hints", server.URL)
	for _, c := range []struct {
		name, query          string
		wantStatus           int // with the guard
		wantError, diagnosis string
	}{
		{"a polling handshake", "EIO=4&transport=polling&t=x&answer=handshake", 200, "", ""},
		{"a poll of an unknown session", "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC&answer=unknown", 400, "", "session-unknown"},
		{"a poll the web app answers", "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC&answer=webapp", 502, "backend-not-socketio", ""},
	} {
		plain := exchangeInformed(t, "GET", tr.URL("plain")+"/socket.io/?"+c.query, "", nil)
		guarded := exchangeInformed(t, "GET", tr.URL("guarded")+"/socket.io/?"+c.query, "", nil)
		t.Logf("%s after a 103: without the guard %d %v, with it %d %v", c.name, plain.Status, plain.informal, guarded.Status, guarded.informal)
		if guarded.Status != c.wantStatus || guarded.Header.Get("X-Socketio-Guard-Error") != c.wantError || guarded.Header.Get("X-Socketio-Guard-Diagnosis") != c.diagnosis {
			t.Errorf("%s with the guard: %d, error %q, diagnosis %q; want %d %q %q (body %.200q)", c.name, guarded.Status,
				guarded.Header.Get("X-Socketio-Guard-Error"), guarded.Header.Get("X-Socketio-Guard-Diagnosis"), c.wantStatus, c.wantError, c.diagnosis, guarded.Body)
		}
		if c.wantError == "" && (guarded.Status != plain.Status || guarded.Body != plain.Body) {
			t.Errorf("%s: with the guard %d %q, without it %d %q", c.name, guarded.Status, guarded.Body, plain.Status, plain.Body)
		}
		if len(guarded.informal) != 1 || guarded.informal[0] != http.StatusEarlyHints {
			t.Errorf("%s: the client saw informational answers %v with the guard, want [103] (without it: %v)", c.name, guarded.informal, plain.informal)
		}
	}
}
