package socketioguard

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// hopCase is an Engine.IO request answered by some hop in the Socket.IO
// server's place (or by the server, behind a sticky load balancer), and what
// the guard must mark and log. The answer itself always goes out unchanged.
type hopCase struct {
	name      string
	sticky    string // the stickyCookie option
	target    string
	headers   map[string]string
	before    map[string]string // set on the client's writer before forwarding
	status    int
	answer    map[string]string // the answer's headers ("Set-Cookie" may hold lines split by "\n")
	body      string
	diagnosis string // "" = unnamed
	message   string // in the log line
}

const (
	pollTarget      = "/socket.io/?EIO=4&transport=polling&t=Pb1"
	sessionTarget   = "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"
	websocketTarget = "/socket.io/?EIO=4&transport=websocket"
	unknownSID      = `{"code":1,"message":"Session ID unknown"}`
	// traefikCookie is a sticky cookie as Traefik's load balancer sets it
	// under its default name (for a service "socketio@file").
	traefikCookie = "_1b2c3=4f2a7e1d0c9b8a76; Path=/; HttpOnly"
)

func hopCases() []hopCase {
	https := map[string]string{"X-Forwarded-Proto": "https"}
	return []hopCase{
		// Redirects (field failure 13): where Location points says which hop.
		{
			name: "an https site's hop redirects to its own http", target: pollTarget, headers: https,
			status: 301, answer: map[string]string{"Location": "http://v2.sysmayal.cloud/socket.io/?EIO=4&transport=polling&t=Pb1"},
			diagnosis: "redirected", message: "from https to http on the same host",
		},
		{
			name: "a websocket over http sent to https", target: websocketTarget, headers: websocketHeaders(map[string]string{"X-Forwarded-Proto": "ws"}),
			status: 308, answer: map[string]string{"Location": "https://v2.sysmayal.cloud/socket.io/?EIO=4&transport=websocket"},
			diagnosis: "redirected", message: "the websocket handshake was redirected (no client follows that",
		},
		{
			name: "a trailing slash removed by a hop", target: pollTarget,
			status: 301, answer: map[string]string{"Location": "/socket.io?EIO=4&transport=polling&t=Pb1"},
			diagnosis: "redirected", message: "to the path /socket.io on the same host",
		},
		{
			name: "a canonical-host redirect", target: pollTarget, headers: https,
			status: 301, answer: map[string]string{"Location": "https://www.sysmayal.cloud/socket.io/?EIO=4&transport=polling"},
			diagnosis: "redirected", message: "to another host, https://www.sysmayal.cloud/socket.io/",
		},
		{
			name: "an absolute Location with the hop's own port is the same host (nginx's port_in_redirect)", target: pollTarget,
			status: 301, answer: map[string]string{"Location": "http://v2.sysmayal.cloud:8080/socket.io?EIO=4"},
			diagnosis: "redirected", message: "to the path /socket.io on the same host",
		},
		{
			name: "a scheme-relative Location to the same host is a path redirect", target: pollTarget, headers: https,
			status: 302, answer: map[string]string{"Location": "//v2.sysmayal.cloud/socket.io/x"},
			diagnosis: "redirected", message: "to the path /socket.io/x",
		},
		// What a Location may carry that a log line must not show, and
		// Locations browsers read otherwise than Go.
		{
			name: "a login page's return address encoded in the path is not shown", target: sessionTarget,
			status: 302, answer: map[string]string{"Location": "/auth/login/%2Fsocket.io%2F%3FEIO%3D4%26sid%3Dlv_VI97HAXpY6yYWAAAC"},
			diagnosis: "redirected", message: "to the path /… on the same host", // it holds the sid: not even the path
		},
		{
			name: "an encoded path is shown up to its first escape", target: pollTarget,
			status: 302, answer: map[string]string{"Location": "/auth/login/%2Fsocket.io%2F%3Ftoken%3DSECRETSTATE"},
			diagnosis: "redirected", message: "to the path /auth/login/… on the same host",
		},
		{
			name: "a path parameter (a session id) is not shown", target: pollTarget,
			status: 302, answer: map[string]string{"Location": "https://auth.example.test/cb;jsessionid=SECRETSTATE"},
			diagnosis: "redirected", message: "to another host, https://auth.example.test/cb…:",
		},
		{
			name: "a Location holding the request's sid shows scheme and host only", target: sessionTarget,
			status: 302, answer: map[string]string{"Location": "https://other.example.test/x/lv_VI97HAXpY6yYWAAAC"},
			diagnosis: "redirected", message: "to another host, https://other.example.test/…:",
		},
		{
			name: "userinfo is never shown", target: pollTarget,
			status: 302, answer: map[string]string{"Location": "https://user:SECRETSTATE@auth.example.test/login?rd=x"},
			diagnosis: "auth-required", message: "to a login page, https://auth.example.test/login:",
		},
		{
			name: "a backslash (browsers read a slash) is not judged", target: pollTarget,
			status: 302, answer: map[string]string{"Location": "/\\evil.example.test/socket.io/"},
			diagnosis: "redirected", message: "where it points is not judged",
		},
		{
			name: "a scheme without // is not judged", target: pollTarget, headers: https,
			status: 302, answer: map[string]string{"Location": "http:evil.example.test/x"},
			diagnosis: "redirected", message: "where it points is not judged",
		},
		{
			name: "a javascript: Location is not judged", target: pollTarget,
			status: 302, answer: map[string]string{"Location": "javascript:alert(1)"},
			diagnosis: "redirected", message: "where it points is not judged",
		},
		{
			name: "a login redirect relative to this very URL", target: pollTarget,
			status: 302, answer: map[string]string{"Location": "?rd=/x"},
			diagnosis: "auth-required", message: "to a login page, /:",
		},
		// Authentication layers (field failure 16).
		{
			name: "forward-auth sends the poll to its login page (Authelia's rd)", target: pollTarget, headers: https,
			status: 302, answer: map[string]string{"Location": "https://auth.sysmayal.cloud/?rd=https%3A%2F%2Fv2.sysmayal.cloud%2Fsocket.io%2F&rm=GET"},
			diagnosis: "auth-required", message: "to a login page, https://auth.sysmayal.cloud/: its query carries a return address",
		},
		{
			name: "oauth2-proxy on the same host (sign_in?rd=)", target: websocketTarget, headers: websocketHeaders(nil),
			status: 302, answer: map[string]string{"Location": "/oauth2/sign_in?rd=%2Fsocket.io%2F"},
			diagnosis: "auth-required", message: "to a login page, /oauth2/sign_in",
		},
		{
			name: "an OAuth provider's redirect never shows its state", target: pollTarget,
			status: 307, answer: map[string]string{"Location": "https://accounts.example.test/o/oauth2/auth?client_id=c&redirect_uri=https%3A%2F%2Fv2.sysmayal.cloud%2F_oauth&state=SECRETSTATE"},
			diagnosis: "auth-required", message: "https://accounts.example.test/o/oauth2/auth:",
		},
		{
			name: "basicAuth's 401", target: pollTarget,
			status: 401, answer: map[string]string{"WWW-Authenticate": `Basic realm="traefik"`}, body: "401 Unauthorized\n",
			diagnosis: "auth-required", message: "401 with WWW-Authenticate Basic:",
		},
		{
			name: "a 401 page without a challenge stays unnamed", target: pollTarget,
			status: 401, body: "<html>Sign in</html>",
		},
		{
			name: "a redirect without Location stays unnamed", target: pollTarget,
			status: 302, body: "Found",
		},
		{
			name: "304 Not Modified is no redirect", target: pollTarget,
			status: 304, answer: map[string]string{"Location": "/elsewhere"},
		},
		{
			name: "a Location set before forwarding is not the answer's", target: pollTarget,
			before: map[string]string{"Location": "/elsewhere"}, status: 302, answer: map[string]string{"Location": "/elsewhere"},
		},
		{
			name: "a Location past 2048 bytes is not read", target: pollTarget,
			status: 302, answer: map[string]string{"Location": "/socket.io/?rd=" + strings.Repeat("a", 3000)},
			diagnosis: "redirected", message: "to a Location longer than 2048 bytes",
		},
		// Session ID unknown, split by the sticky cookie (field failure 14).
		{
			name: "no sticky cookie carried: Traefik's load balancer sets one", target: sessionTarget,
			status: 400, answer: map[string]string{"Set-Cookie": traefikCookie}, body: unknownSID,
			diagnosis: "session-unknown-no-sticky-cookie", message: "the request carried no cookie _1b2c3: the load balancer chose a replica afresh",
		},
		{
			name: "a stale sticky cookie: the load balancer replaces it", target: sessionTarget,
			headers: map[string]string{"Cookie": "sid=Guest; _1b2c3=0000000000000000"},
			status:  400, answer: map[string]string{"Set-Cookie": traefikCookie}, body: unknownSID,
			diagnosis: "session-unknown-sticky-cookie", message: "replaced it on this answer: the replica it named is gone",
		},
		{
			name: "a kept sticky cookie (its name configured)", sticky: "sio_replica", target: sessionTarget,
			headers: map[string]string{"Cookie": "sio_replica=4f2a7e1d0c9b8a76"}, status: 400, body: unknownSID,
			diagnosis: "session-unknown-sticky-cookie", message: "the load balancer kept it",
		},
		{
			name: "a configured sticky cookie not carried, none set", sticky: "sio_replica", target: sessionTarget,
			headers: map[string]string{"Cookie": "sid=abc; other_sio_replica=1"}, status: 400, body: unknownSID,
			diagnosis: "session-unknown-no-sticky-cookie", message: "the request carried no cookie sio_replica",
		},
		{
			name: "a websocket's Session ID unknown, split the same way", target: websocketTarget + "&sid=lv_VI97HAXpY6yYWAAAC",
			headers: websocketHeaders(nil), status: 400, answer: map[string]string{"Set-Cookie": traefikCookie}, body: "Session ID unknown",
			diagnosis: "session-unknown-no-sticky-cookie", message: "carried no cookie _1b2c3",
		},
		{
			name: "a cookie of another name and shape is not taken for the sticky one", target: sessionTarget,
			status: 400, answer: map[string]string{"Set-Cookie": "io=abc; Path=/"}, body: unknownSID,
			diagnosis: "session-unknown",
		},
		{
			name: "an unconfigured name is not guessed from the request's cookies", target: sessionTarget,
			headers: map[string]string{"Cookie": "_1b2c3=4f2a7e1d0c9b8a76"}, status: 400, body: unknownSID,
			diagnosis: "session-unknown",
		},
		{
			name: "a Set-Cookie of an earlier middleware makes the answer's unreadable", target: sessionTarget,
			before: map[string]string{"Set-Cookie": "_aaaaa=1"}, status: 400, answer: map[string]string{"Set-Cookie": traefikCookie}, body: unknownSID,
			diagnosis: "session-unknown",
		},
		{
			name: "a Cookie header past what the guard reads is not judged", target: sessionTarget,
			headers: map[string]string{"Cookie": strings.Repeat("a=b; ", 3000) + "_1b2c3=1"},
			status:  400, answer: map[string]string{"Set-Cookie": traefikCookie}, body: unknownSID,
			diagnosis: "session-unknown", message: "longer than the guard reads",
		},
		{
			name: "a deletion of the cookie is no cookie set", target: sessionTarget,
			headers: map[string]string{"Cookie": "_1b2c3=4f2a7e1d0c9b8a76"},
			status:  400, answer: map[string]string{"Set-Cookie": "_1b2c3=; Max-Age=0"}, body: unknownSID,
			diagnosis: "session-unknown",
		},
		{
			name: "the Cookie header read as Traefik reads it (a tab after the semicolon)", target: sessionTarget,
			headers: map[string]string{"Cookie": "a=b;\t_1b2c3=0000000000000000"},
			status:  400, answer: map[string]string{"Set-Cookie": traefikCookie}, body: unknownSID,
			diagnosis: "session-unknown-sticky-cookie", message: "replaced it",
		},
		{
			name: "a quoted value holding the name is not the cookie", sticky: "sio", target: sessionTarget,
			headers: map[string]string{"Cookie": `x="; sio=1"`}, status: 400, body: unknownSID,
			diagnosis: "session-unknown-no-sticky-cookie",
		},
		{
			name: "the sticky cookie's name inside another cookie's value does not count", sticky: "sio_replica", target: sessionTarget,
			headers: map[string]string{"Cookie": "note=sio_replica=1"}, status: 400, body: unknownSID,
			diagnosis: "session-unknown-no-sticky-cookie",
		},
	}
}

func TestHopAnswersAreNamedByTheirEvidence(t *testing.T) {
	for _, c := range hopCases() {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := CreateConfig()
			cfg.LogLevel = "warn"
			cfg.StickyCookie = c.sticky
			backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				for k, v := range c.answer {
					for _, line := range strings.Split(v, "\n") {
						rw.Header().Add(k, line)
					}
				}
				rw.WriteHeader(c.status)
				_, _ = rw.Write([]byte(c.body))
			})
			guard := newTestGuard(t, cfg, backend, &logs)
			rec := httptest.NewRecorder()
			for k, v := range c.before {
				rec.Header().Set(k, v)
			}
			guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: c.target, headers: c.headers}))

			if rec.Code != c.status || rec.Body.String() != c.body {
				t.Errorf("answer %d %q, want the hop's %d %q unchanged", rec.Code, rec.Body.String(), c.status, c.body)
			}
			for k, v := range c.answer {
				if c.before[k] != "" {
					v = c.before[k] + "\n" + v // the load balancer adds its lines (http.SetCookie)
				}
				if got := strings.Join(rec.Header().Values(k), "\n"); got != v {
					t.Errorf("%s = %q, want the hop's %q", k, got, v)
				}
			}
			if got := rec.Header().Get(headerDiagnosis); got != c.diagnosis {
				t.Errorf("diagnosis %q, want %q", got, c.diagnosis)
			}
			line := logs.String()
			if c.diagnosis == "" {
				if line != "" {
					t.Errorf("an unnamed answer was logged: %q", line)
				}
				return
			}
			if strings.Count(line, "\n") != 1 || !strings.Contains(line, "level=warn") || !strings.Contains(line, "event="+c.diagnosis) {
				t.Errorf("log %q, want one warn line for %s", line, c.diagnosis)
			}
			if c.message != "" && !strings.Contains(line, c.message) {
				t.Errorf("log %q, want %q in it", line, c.message)
			}
			if len(line) > 2048 || strings.Contains(line, "SECRETSTATE") || strings.Contains(line, "4f2a7e1d") || strings.Contains(line, "lv_VI97") || strings.Contains(line, "evil") {
				t.Errorf("log line too long or shows a secret (%d bytes): %q", len(line), line)
			}
		})
	}
}

func TestStickyCookieOption(t *testing.T) {
	for _, c := range []struct {
		value, want string
		ok          bool
	}{
		{"", "", true},
		{"  sio_replica ", "sio_replica", true},
		{"_TRAEFIK_BACKEND", "_TRAEFIK_BACKEND", true},
		{"a-b.c~d|e", "a-b.c~d|e", true},
		{"bad name", "", false},
		{"semi;colon", "", false},
		{"eq=uals", "", false},
		{"ünïcode", "", false},
		{strings.Repeat("a", 129), "", false},
	} {
		cfg := CreateConfig()
		cfg.StickyCookie = c.value
		s, err := validate(cfg)
		if (err == nil) != c.ok || c.ok && s.stickyCookie != c.want {
			t.Errorf("stickyCookie %q: settings %q, error %v", c.value, s.stickyCookie, err)
		}
		if err != nil && (!strings.Contains(err.Error(), "stickyCookie") || !strings.Contains(err.Error(), "loadBalancer.sticky.cookie.name")) {
			t.Errorf("stickyCookie %q: error %q must name the key and what to give", c.value, err)
		}
	}
}

// FuzzHopAnswers sends arbitrary redirects, challenges, Set-Cookie lines and
// request cookies through the guard: it never panics, the answer goes out
// unchanged, a mark is one of the hop diagnoses (or none), and the log line
// stays short and never shows a Location's query or a cookie's value.
func FuzzHopAnswers(f *testing.F) {
	f.Add(302, "https://auth.example.test/?rd=https%3A%2F%2Fv2.sysmayal.cloud&state=QQQSECRET", "", "", "", "")
	f.Add(301, "http://v2.sysmayal.cloud:8080/socket.io", "", "", "", "https")
	f.Add(401, "", `Basic realm="x"`, "", "", "")
	f.Add(400, "", "", "_1b2c3=QQQSECRET; Path=/", "a=b; _1b2c3=QQQSECRET", "")
	f.Add(400, "", "", "sio=QQQSECRET", "sio=QQQSECRET", "")
	f.Add(308, "%zz://[::1", "", "", "", "wss")
	f.Fuzz(func(t *testing.T, status int, location, challenge, setCookie, cookie, proto string) {
		if status < 200 || status > 599 || status == http.StatusNotFound { // a 404 is replaced (backend-not-socketio)
			return
		}
		var logs bytes.Buffer
		cfg := CreateConfig()
		cfg.LogLevel = "warn"
		cfg.StickyCookie = "sio"
		body := `{"code":1,"message":"Session ID unknown"}`
		backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			for k, v := range map[string]string{"Location": location, "WWW-Authenticate": challenge, "Set-Cookie": setCookie} {
				if v != "" {
					rw.Header()[k] = []string{v}
				}
			}
			rw.WriteHeader(status)
			_, _ = io.WriteString(rw, body)
		})
		guard := newTestGuard(t, cfg, backend, &logs)
		req := newScenarioRequest(scenario{method: "GET", target: sessionTarget})
		if cookie != "" {
			req.Header["Cookie"] = []string{cookie}
		}
		if proto != "" {
			req.Header["X-Forwarded-Proto"] = []string{proto}
		}
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, req)
		if rec.Code != status || rec.Body.String() != body || location != "" && rec.Header().Get("Location") != location {
			t.Fatalf("the answer changed: %d %q %q", rec.Code, rec.Body.String(), rec.Header().Get("Location"))
		}
		switch got := rec.Header().Get(headerDiagnosis); got {
		case "", "redirected", "auth-required", "session-unknown", "session-unknown-no-sticky-cookie", "session-unknown-sticky-cookie", "backend-forbidden", "backend-eio-mismatch":
		default:
			t.Fatalf("marked %q", got)
		}
		line := logs.String()
		if len(line) > 4096 || strings.Count(line, "\n") > 1 || strings.Contains(line, "QQQSECRET") {
			t.Fatalf("log line (%d bytes): %q", len(line), line)
		}
	})
}
