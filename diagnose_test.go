package socketioguard

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"
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
// the backend's complete answer (captured by a compiled recorder): headers,
// status and body as the backend wrote them, headers set before forwarding
// kept, whatever the answer's size.
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
}

// TestInformationalAnswersPassAtOnce: to a request that asked for 100
// Continue (Expect: 100-continue) the guard lets informational answers pass
// as they come, and the final answer keeps its own status — read and marked
// like any other.
func TestInformationalAnswersPassAtOnce(t *testing.T) {
	const target = "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"
	for _, c := range []struct {
		name       string
		informal   int
		answer     backendAnswer
		wantStatus int
		diagnosis  string
	}{
		{"100 then the answer", http.StatusContinue, socketIOPostOK, 200, ""},
		{"103 then the answer", http.StatusEarlyHints, socketIOPostOK, 200, ""},
		{"100 then a refusal, still read", http.StatusContinue, sessionUnknown, 400, "session-unknown"},
		{"100 then the web app's 404, still replaced", http.StatusContinue, webApp404, 502, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				rw.WriteHeader(c.informal)
				writeBackendAnswer(rw, c.answer)
			})
			guard := newTestGuard(t, CreateConfig(), backend, nil)
			front := httptest.NewServer(guard)
			defer front.Close()
			var informal []int
			ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
				Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { informal = append(informal, code); return nil },
			})
			req, _ := http.NewRequestWithContext(ctx, "POST", front.URL+target, strings.NewReader("2"))
			req.Header.Set("Expect", "100-continue")
			resp, err := (&http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.wantStatus || resp.Header.Get(headerDiagnosis) != c.diagnosis ||
				c.wantStatus != 502 && string(body) != c.answer.body || c.wantStatus == 502 && resp.Header.Get(headerError) != "backend-not-socketio" {
				t.Errorf("after a %d: %d %q, diagnosis %q", c.informal, resp.StatusCode, body, resp.Header.Get(headerDiagnosis))
			}
			if c.informal != http.StatusContinue && (len(informal) != 1 || informal[0] != c.informal) {
				t.Errorf("the client saw informational answers %v, want [%d]", informal, c.informal)
			}
		})
	}
}

// TestExpectContinueThroughAProxy: a poll POST and a polling handshake with
// Expect: 100-continue, through the guard and Go's reverse proxy (Traefik's)
// to a server that answers 100 Continue by itself (as Node does): the
// server's answer reaches the client with its own status.
func TestExpectContinueThroughAProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		_, _ = io.ReadAll(req.Body) // Go's server sends 100 Continue here
		if req.URL.Query().Get("sid") == "" {
			writeBackendAnswer(rw, socketIOHandshake)
			return
		}
		writeBackendAnswer(rw, sessionUnknown)
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	proxy := httputil.NewSingleHostReverseProxy(target)
	guard := newTestGuard(t, CreateConfig(), proxy, nil)
	front := httptest.NewServer(guard)
	defer front.Close()
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
	for _, c := range []struct {
		method, query string
		want          backendAnswer
		diagnosis     string
	}{
		{"POST", "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", sessionUnknown, "session-unknown"},
		{"GET", "EIO=4&transport=polling&t=x", socketIOHandshake, ""},
	} {
		req, _ := http.NewRequest(c.method, front.URL+"/socket.io/?"+c.query, strings.NewReader(strings.Repeat("x", 2048)))
		req.Header.Set("Expect", "100-continue")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.method, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want.status || string(body) != c.want.body || resp.Header.Get(headerDiagnosis) != c.diagnosis {
			t.Errorf("%s with Expect: %d %q, diagnosis %q", c.method, resp.StatusCode, body, resp.Header.Get(headerDiagnosis))
		}
	}
}
