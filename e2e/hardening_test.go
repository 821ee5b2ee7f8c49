package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestAttacksThroughTraefik sends the second hardening pass's attacks
// through a real Traefik — the main one (v3.7.13), and the same on v3.6.12
// and v2.11.54 — to the
// Frappe-like Socket.IO 4.8 server, on an entrypoint with the guard (Frappe
// recipe, every log line written) and, where it tells what the guard
// prevents, on one without: each gets the verdict the readme promises, no
// attack puts an error-level line into Traefik's log, the guard's lines stay
// short, and a real client still connects and ends on websocket.
func TestAttacksThroughTraefik(t *testing.T) {
	onTraefikLines(t, everyTraefikLine, runAttacks)
}

// attack is one request, sent raw (every byte as written), and what it must get.
type attack struct {
	name       string
	request    string // the request line and headers (Host and the end of headers are added), and any body after a blank line
	entrypoint string // "guarded" (default) or "plain"
	wantStatus int
	wantError  string // X-Socketio-Guard-Error
	wantBody   string // a regular expression the body must match, when set
	// asWithout: the request must get what it gets without the guard (the
	// same status, no guard header), whatever the server makes of it — but
	// for one documented difference (the readme's Limits): when the server
	// breaks off an answer the guard holds (a poll's, in its first 64 KiB),
	// Traefik answers 500 where without the guard the client gets the
	// answer's status and then a broken connection. Node's HTTP server answers 431
	// and closes to a request line and headers over 16 KiB.
	asWithout bool
}

func runAttacks(t *testing.T, line string) {
	e := newEnv(t)
	rt := e.realtime("realtime")
	tr, err := e.st.StartTraefik(stack.TraefikOptions{Line: line, Name: "traefik" + line,
		EntryPoints: []string{"guarded", "plain"}, Routers: []string{"sio-guarded@file", "sio-plain@file"},
		Dynamic: guardedAndPlainRoutes(realtimeURL(rt), `{setMissingOrigin: true, eioVersions: "4", logLevel: debug, inspectPath: /socket.io/.guard}`),
	})
	e.must(err)
	mib := strings.Repeat("a", 1<<20-16<<10) // about the most Traefik accepts in request line and headers (maxHeaderBytes, 1 MiB)
	kib64 := strings.Repeat("a", 64<<10)
	websocketHeaders := "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"

	attacks := []attack{
		// 1. Cost: inputs past the guard's limits are decided without reading them.
		{name: "a 1 MiB Upgrade list, no Connection", request: "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nUpgrade: " +
			strings.Repeat("a, ", len(mib)/3) + "websocket\r\n" + websocketHeaders, wantStatus: 400, wantError: "websocket-handshake-invalid"},
		{name: "a 64 KiB Upgrade list with Connection: Upgrade", request: "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: " +
			strings.Repeat("a, ", len(kib64)/3) + "websocket\r\n" + websocketHeaders, wantStatus: 400, wantError: "websocket-handshake-invalid"},
		{name: "a 1 MiB query", request: "GET /socket.io/?" + strings.Repeat("p=1&", len(mib)/4) + "EIO=4&transport=polling&j=0 HTTP/1.1\r\n",
			wantStatus: 414, wantError: "query-too-long"},
		{name: "a query of 100 pairs", request: "GET /socket.io/?" + strings.Repeat("p&", 100) + "EIO=4&transport=polling HTTP/1.1\r\n",
			wantStatus: 414, wantError: "query-too-long"},
		// The guard reads a path up to its Engine.IO prefix, and passes inputs
		// it decides on without reading them; Node's HTTP server refuses a
		// request line and headers over 16 KiB itself.
		{name: "a 1 MiB path under the Engine.IO path", request: "GET /socket.io/" + mib + "?EIO=4&transport=polling HTTP/1.1\r\n", asWithout: true},
		{name: "an 8 KiB path under the Engine.IO path", request: "GET /socket.io/" + kib64[:8<<10] + "?EIO=4&transport=polling HTTP/1.1\r\n",
			wantStatus: 200, wantBody: `^0\{"sid"`},
		{name: "a 64 KiB Sec-WebSocket-Key, upgrade stripped", request: "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nSec-WebSocket-Key: " + kib64 + "\r\nSec-WebSocket-Version: 13\r\n",
			wantStatus: 400, wantError: "websocket-handshake-invalid"},
		{name: "a 64 KiB Sec-WebSocket-Version, upgrade stripped", request: "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: " + kib64 + "\r\n",
			wantStatus: 400, wantError: "websocket-handshake-invalid"},
		{name: "a 64 KiB Origin", request: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nOrigin: http://" + kib64 + "\r\n", asWithout: true},
		{name: "an 8 KiB Origin (present: passed as sent)", request: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nOrigin: http://" + kib64[:8<<10] + "\r\n",
			wantStatus: 200, wantBody: `^0\{"sid"`},
		{name: "a 64 KiB X-Forwarded-Proto (Traefik replaces it)", request: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nX-Forwarded-Proto: " + kib64 + "\r\n",
			wantStatus: 200, wantBody: `^0\{"sid"`},
		{name: "a 64 KiB Sec-Fetch-Site", request: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nSec-Fetch-Site: " + kib64 + "\r\n", asWithout: true},
		{name: "an 8 KiB Sec-Fetch-Site (no Origin set)", request: "GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nSec-Fetch-Site: " + kib64[:8<<10] + "\r\n",
			wantStatus: 200, wantBody: `^0\{"sid"`},
		{name: "a 64 KiB method", request: strings.Repeat("G", len(kib64)) + " /socket.io/?EIO=4&transport=polling HTTP/1.1\r\n",
			wantStatus: 400, wantError: "bad-handshake-method"},
		{name: "the inspection of a 1 MiB query key", request: "GET /socket.io/.guard?" + mib + "=1&EIO=4&transport=polling HTTP/1.1\r\n",
			wantStatus: 200, wantBody: `not read`},

		// 2. The client bundle: exactly the names the server serves.
		{name: "JSONP through a name the server does not serve, without the guard: the server answers it", entrypoint: "plain",
			request: "GET /socket.io/socket.io.evil.js?EIO=4&transport=polling&j=0 HTTP/1.1\r\n", wantStatus: 200, wantBody: `^___eio\[0\]\(`},
		{name: "the same with the guard", request: "GET /socket.io/socket.io.evil.js?EIO=4&transport=polling&j=0 HTTP/1.1\r\n",
			wantStatus: 400, wantError: "jsonp-refused"},
		{name: "a bundle's name with Engine.IO's keys", request: "GET /socket.io/socket.io.min.js?EIO=4&transport=polling&j=0 HTTP/1.1\r\n",
			wantStatus: 400, wantError: "jsonp-refused"},
		{name: "a bundle's name with a cache buster", request: "GET /socket.io/socket.io.min.js?v=4.8.4 HTTP/1.1\r\n",
			wantStatus: 200, wantBody: `Socket\.IO`},

		// 3. What Traefik forwards, not what the guard would read otherwise.
		{name: "Upgrade with a trailing non-ASCII space, without the guard: Traefik's own 500", entrypoint: "plain",
			request:    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\u00a0\r\n" + websocketHeaders,
			wantStatus: 500, wantBody: `^Internal Server Error$`},
		{name: "the same with the guard: refused before Traefik's proxy, no hijack-failed",
			request:    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\u00a0\r\n" + websocketHeaders,
			wantStatus: 400, wantError: "websocket-handshake-invalid"},
		{name: "Upgrade as a list with a tab (Traefik's proxy refuses it)",
			request:    "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket,\tx\r\n" + websocketHeaders,
			wantStatus: 400, wantError: "websocket-handshake-invalid"},
		{name: "a path that is the Engine.IO path only once decoded", request: "GET /socket.io%2F?EIO=4&transport=polling&j=0 HTTP/1.1\r\n",
			wantStatus: 400, wantError: "path-escaped"},
		{name: "a websocket handshake with a body", request: "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n" +
			"Connection: Upgrade\r\nUpgrade: websocket\r\n" + websocketHeaders + "Content-Length: 5\r\n\r\nhello", asWithout: true},
	}
	// The guard's own lines written while the attacks ran (every level: logLevel debug).
	before := len(tr.Logs())
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			entrypoint := a.entrypoint
			if entrypoint == "" {
				entrypoint = "guarded"
			}
			got := rawExchange(t, tr.URL(entrypoint), a.request)
			if a.asWithout {
				without := rawExchange(t, tr.URL("plain"), a.request)
				t.Logf("with the guard %d, without %d", got.Status, without.Status)
				a.wantStatus = without.Status
				if brokenOff(without) && brokenOff(got) {
					a.wantStatus = got.Status // the same outcome, told apart only by when Node broke off
				}
			}
			if got.Status != a.wantStatus || got.Header.Get("X-Socketio-Guard-Error") != a.wantError || got.Header.Get("X-Socketio-Guard-Diagnosis") != "" {
				t.Errorf("%d %s=%q %s=%q, want %d %q and no diagnosis (body %.200q)", got.Status, "error", got.Header.Get("X-Socketio-Guard-Error"),
					"diagnosis", got.Header.Get("X-Socketio-Guard-Diagnosis"), a.wantStatus, a.wantError, got.Body)
			}
			if a.wantBody != "" && !regexp.MustCompile(a.wantBody).MatchString(got.Body) {
				t.Errorf("body %.200q does not match %s", got.Body, a.wantBody)
			}
			if a.wantError != "" && len(got.Body) > 4096 {
				t.Errorf("a %d-byte answer", len(got.Body))
			}
		})
	}
	time.Sleep(300 * time.Millisecond) // the last lines through Traefik's logger
	lines, longest, bytes := guardLines(tr.Logs()[before:])
	t.Logf("the guard wrote %d lines, %d bytes, the longest %d bytes, for %d attacks", len(lines), bytes, longest, len(attacks))
	for _, l := range lines {
		if strings.Contains(l, "level=error") {
			t.Errorf("an attack put an error-level line into Traefik's log: %.300s", l)
		}
	}
	if longest > 2048 {
		t.Errorf("a %d-byte log line", longest)
	}

	// 4. Expect: 100-continue gets the server's answer with its own status.
	t.Run("Expect: 100-continue", func(t *testing.T) {
		base := tr.URL("guarded")
		sid, _ := handshake(t, base, map[string]string{"Origin": base})
		for _, c := range []struct {
			name, method, query, body string
			wantStatus                int
			wantBody, diagnosis       string
		}{
			{"a poll POST", "POST", "EIO=4&transport=polling&sid=" + sid, "2", 200, "^ok$", ""},
			{"a poll POST of an unknown session", "POST", "EIO=4&transport=polling&sid=unknown-session", "2", 400, `"code":1`, "session-unknown"},
			{"a polling handshake", "GET", "EIO=4&transport=polling&t=expect", "", 200, `^0\{"sid"`, ""},
		} {
			got := expectContinue(t, c.method, base+"/socket.io/?"+c.query, c.body)
			if got.Status != c.wantStatus || !regexp.MustCompile(c.wantBody).MatchString(got.Body) || got.Header.Get("X-Socketio-Guard-Diagnosis") != c.diagnosis {
				t.Errorf("%s with Expect: %d %q diagnosis %q, want %d %s %q", c.name, got.Status, got.Body, got.Header.Get("X-Socketio-Guard-Diagnosis"), c.wantStatus, c.wantBody, c.diagnosis)
			}
			t.Logf("%s with Expect: %d, informational answers %v", c.name, got.Status, got.informal)
		}
	})

	// 1. The inspection, which costs the guard more than any other request,
	// answers 20 a second per router; a flood gets the refusal.
	t.Run("an inspection flood", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // a second of its own: the attacks above asked for one
		answered, limited := 0, 0
		for i := 0; i < 40; i++ {
			a := rawExchange(t, tr.URL("guarded"), "GET /socket.io/.guard?"+kib64[:1<<10]+"=1&EIO=4&transport=polling HTTP/1.1\r\n")
			switch {
			case a.Status == 200 && strings.Contains(a.Body, `"middleware"`):
				answered++
			case a.Status == 429 && a.Header.Get("X-Socketio-Guard-Error") == "inspection-rate-limited" && a.Header.Get("Retry-After") == "1":
				limited++
			default:
				t.Errorf("inspection %d: %d %q %.200q", i+1, a.Status, a.Header.Get("X-Socketio-Guard-Error"), a.Body)
			}
		}
		// 40 requests take well under two seconds here: 20 answered in the
		// first, perhaps some more in the next.
		if answered < 20 || limited < 1 || answered+limited != 40 {
			t.Errorf("%d answered, %d refused inspection-rate-limited of 40; want 20 (or a few more, past a second) answered, the rest refused", answered, limited)
		}
		t.Logf("%d answered, %d refused", answered, limited)
	})

	// Real clients are none the worse.
	t.Run("socket.io-client still connects and ends on websocket", func(t *testing.T) {
		r := e.client("client-after-attacks", tr.URL("guarded"), true, origin(tr.URL("guarded")), session)
		expectDelivered(t, r, "websocket", "client-after-attacks")
	})
}

// TestClientBundlesAreServed: each file the Socket.IO 4.8 server serves under
// its path (its CLIENT_FILES) passes through the guard as a plain download.
func TestClientBundlesAreServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	tr := e.traefik([]string{"guarded", "plain"}, guardedAndPlainRoutes(realtimeURL(rt), `{setMissingOrigin: true, eioVersions: "4"}`), "sio-guarded@file", "sio-plain@file")
	for _, name := range []string{
		"socket.io.js", "socket.io.js.map", "socket.io.min.js", "socket.io.min.js.map",
		"socket.io.esm.min.js", "socket.io.esm.min.js.map", "socket.io.msgpack.min.js", "socket.io.msgpack.min.js.map",
	} {
		a := get(t, tr.URL("guarded")+"/socket.io/"+name, nil)
		if a.Status != 200 || !strings.HasPrefix(a.Header.Get("Content-Type"), "application/") || a.Header.Get("X-Socketio-Guard-Error") != "" || len(a.Body) < 1000 {
			t.Errorf("%s: %d %q %q, %d bytes", name, a.Status, a.Header.Get("Content-Type"), a.Header.Get("X-Socketio-Guard-Error"), len(a.Body))
		}
	}
}

// brokenOff: Node refused a request line and headers over 16 KiB and closed
// the connection — Traefik then relays its 431 and a broken connection,
// answers 502 (Node closed before answering), sends nothing (0), or, when
// the guard captures the answer whole, answers 500 from its recovery.
func brokenOff(a answer) bool {
	return a.Status == 431 || a.Status == 502 || a.Status == 0 || a.Status == 500 && a.Body == "Internal Server Error\n"
}

// rawExchange sends a request as written (Host added) to base and reads the
// answer (status 0 when the connection closed without one).
func rawExchange(t *testing.T, base, request string) answer {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(20 * time.Second))
	head, body, _ := strings.Cut(request, "\r\n\r\n")
	if !strings.HasSuffix(head, "\r\n") {
		head += "\r\n"
	}
	if _, err := io.WriteString(conn, head+"Host: 127.0.0.1\r\n\r\n"+body); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Logf("reading the answer: %v", err)
		return answer{Header: http.Header{}}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return answer{resp.StatusCode, resp.Header, string(b)}
}

// expectContinue sends a request with Expect: 100-continue as a client that
// waits for 100 Continue before its body does (curl, .NET).
func expectContinue(t *testing.T, method, url, body string) informedAnswer {
	t.Helper()
	return exchangeInformed(t, method, url, body, map[string]string{"Expect": "100-continue", "Origin": strings.SplitN(url, "/socket.io", 2)[0]})
}

// informedAnswer is an answer with the informational answers before it.
type informedAnswer struct {
	answer
	informal []int
}

// exchangeInformed sends a request (with these headers) as a client that
// waits up to 10 s for 100 Continue before its body when it asks for one,
// and returns the answer with the informational answers before it.
func exchangeInformed(t *testing.T, method, url, body string, header map[string]string) informedAnswer {
	t.Helper()
	var got informedAnswer
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { got.informal = append(got.informal, code); return nil },
	})
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, reader)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second}}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	got.answer = answer{resp.StatusCode, resp.Header, string(b)}
	return got
}

// guardLines are the guard's lines in a piece of Traefik's log, their total
// size and the longest.
func guardLines(log string) (lines []string, longest, total int) {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "socketioguard: level=") {
			lines = append(lines, l)
			total += len(l)
			longest = max(longest, len(l))
		}
	}
	return lines, longest, total
}

var _ = fmt.Sprint
