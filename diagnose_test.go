package socketioguard

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// proxyUpgrade behaves like Traefik's proxy after the backend answered 101:
// it asks for the client connection, and when the writer cannot hand it
// over, answers with Traefik's own 500 (pkg/proxy/httputil ErrorHandler).
var proxyUpgrade = http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
	conn, _, err := http.NewResponseController(rw).Hijack()
	if errors.Is(err, http.ErrNotSupported) {
		rw.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(rw, "Internal Server Error")
		return
	}
	if conn != nil {
		conn.Close()
	}
})

// writerWithoutHijack is the bug reported against several public plugins:
// a ResponseWriter wrapper that does not offer Hijack.
type writerWithoutHijack struct{ rw http.ResponseWriter }

func (w writerWithoutHijack) Header() http.Header         { return w.rw.Header() }
func (w writerWithoutHijack) Write(b []byte) (int, error) { return w.rw.Write(b) }
func (w writerWithoutHijack) WriteHeader(status int)      { w.rw.WriteHeader(status) }

func breaksHijack(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		next.ServeHTTP(writerWithoutHijack{rw}, req)
	})
}

// TestHijackFailedIsNamedWhereverTheCulpritStands: a middleware that cannot
// hand the connection over makes every websocket a bare 500; the guard names
// it, before or after itself in the chain, and says which side to look at.
func TestHijackFailedIsNamedWhereverTheCulpritStands(t *testing.T) {
	cases := []struct {
		name      string
		chain     func(guard func(next http.Handler) http.Handler) http.Handler
		headers   map[string]string
		wantID    string
		wantWhere string
	}{
		{"culprit before the guard", func(guard func(http.Handler) http.Handler) http.Handler { return breaksHijack(guard(proxyUpgrade)) },
			websocketHeaders(nil), "hijack-failed", "BEFORE socketioguard"},
		{"culprit after the guard", func(guard func(http.Handler) http.Handler) http.Handler { return guard(breaksHijack(proxyUpgrade)) },
			websocketHeaders(nil), "hijack-failed", "AFTER socketioguard"},
		{"culprit after the guard, upgrade repaired first", func(guard func(http.Handler) http.Handler) http.Handler { return guard(breaksHijack(proxyUpgrade)) },
			strippedWebsocketHeaders(), "hijack-failed", "AFTER socketioguard"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			guard := func(next http.Handler) http.Handler { return newTestGuard(t, CreateConfig(), next, &logs) }
			req := newScenarioRequest(scenario{method: "GET", target: "/socket.io/?EIO=4&transport=websocket", headers: c.headers})
			rec := httptest.NewRecorder() // itself offers no Hijack, as behind a culprit
			c.chain(guard).ServeHTTP(rec, req)
			if rec.Code != 500 || rec.Header().Get(headerDiagnosis) != c.wantID || rec.Body.String() != "Internal Server Error" {
				t.Errorf("answer %d %q, diagnosis %q", rec.Code, rec.Body.String(), rec.Header().Get(headerDiagnosis))
			}
			if !strings.Contains(logs.String(), "level=error") || !strings.Contains(logs.String(), c.wantWhere) {
				t.Errorf("log should name the side of the culprit (%s): %q", c.wantWhere, logs.String())
			}
		})
	}
}

// TestRefusalMessageIsLoggedSafely: the server's own reason is in the log
// line, its first line only, shortened, with control characters escaped.
func TestRefusalMessageIsLoggedSafely(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"Missing or invalid Sec-WebSocket-Key header", `message="Missing or invalid Sec-WebSocket-Key header"`},
		{"bad\x1b[31m thing\r\nlevel=error event=forged", `message="bad\x1b[31m thing\r"`},
		{strings.Repeat("x", 300), `message="` + strings.Repeat("x", 120) + "…\""},
	} {
		var logs bytes.Buffer
		cfg := CreateConfig()
		cfg.LogLevel = "warn"
		backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			writeBackendAnswer(rw, backendAnswer{400, "text/html", c.body, ""})
		})
		guard := newTestGuard(t, cfg, backend, &logs)
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: "/socket.io/?EIO=4&transport=websocket", headers: websocketHeaders(nil)}))
		if rec.Header().Get(headerDiagnosis) != "websocket-refused" || rec.Body.String() != c.body {
			t.Errorf("%q: diagnosis %q, body %q", c.body, rec.Header().Get(headerDiagnosis), rec.Body.String())
		}
		if strings.Count(logs.String(), "\n") != 1 || !strings.Contains(logs.String(), "event=websocket-refused") || !strings.Contains(logs.String(), c.want) {
			t.Errorf("%q: log %q, want %s", c.body, logs.String(), c.want)
		}
	}
}

// TestPollAnswersAreHeldWhole: a poll of an open session is answered from
// the backend's complete answer (held by a compiled recorder): headers,
// status and body as the backend wrote them, headers set before forwarding
// kept. The trade-offs, as documented: an informational 1xx the backend sends
// first reaches the client, and the final answer then goes out with status
// 200 (Engine.IO servers send no 1xx).
func TestPollAnswersAreHeldWhole(t *testing.T) {
	const target = "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"
	t.Run("the answer as written", func(t *testing.T) {
		backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			rw.Header().Add("Set-Cookie", "sio_sticky=a")
			rw.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(rw, "4")
			_, _ = io.WriteString(rw, "2")
		})
		guard := newTestGuard(t, CreateConfig(), backend, nil)
		rec := httptest.NewRecorder()
		rec.Header().Set("X-Earlier", "kept")
		guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: target}))
		if rec.Code != 200 || rec.Body.String() != "42" || rec.Header().Get("Set-Cookie") != "sio_sticky=a" || rec.Header().Get("X-Earlier") != "kept" {
			t.Errorf("answer %d %q %v", rec.Code, rec.Body.String(), rec.Header())
		}
	})
	t.Run("an answer larger than Engine.IO's own (held whole, sent whole)", func(t *testing.T) {
		large := strings.Repeat("4hello", 1<<20/6*4) // ~4 MiB: four times engine.io's default maxHttpBufferSize
		backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			rw.WriteHeader(http.StatusOK)
			for rest := large; rest != ""; {
				chunk := rest
				if len(chunk) > 32<<10 {
					chunk = chunk[:32<<10]
				}
				_, _ = io.WriteString(rw, chunk)
				rest = rest[len(chunk):]
			}
		})
		guard := newTestGuard(t, CreateConfig(), backend, nil)
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: target}))
		if rec.Code != 200 || rec.Body.String() != large {
			t.Errorf("answer %d, %d bytes (want %d)", rec.Code, rec.Body.Len(), len(large))
		}
	})
	t.Run("a 1xx first", func(t *testing.T) {
		backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			rw.WriteHeader(http.StatusEarlyHints)
			rw.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(rw, "ok")
		})
		guard := newTestGuard(t, CreateConfig(), backend, nil) // a variable first: Yaegi cannot pass a call's result as an interface
		front := httptest.NewServer(guard)
		defer front.Close()
		resp, err := http.Post(front.URL+target, "text/plain", strings.NewReader("2"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "ok" {
			t.Errorf("after a 103: %d %q", resp.StatusCode, body)
		}
	})
}
