package socketioguard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"strconv"
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

// TestPollAnswersAreSentAsWritten: a poll of an open session is answered
// from the backend's answer as the backend wrote it: headers, status and
// body, headers set before forwarding kept.
func TestPollAnswersAreSentAsWritten(t *testing.T) {
	const target = "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"
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
}

// TestAnswersPastTheBoundStreamOn: the guard holds at most 64 KiB
// (maxHeldAnswer) of an answer it reads. Past that, the answer goes on from there as
// it comes — every byte the backend wrote has reached the client when its
// next Write begins —, judged by its beginning (a 4 MiB answer is never one
// of Engine.IO's refusals), or is replaced by the guard's own answer and
// the rest dropped. Whatever the way: the short way's capture (with or
// without Expect), the websocket handshake's watcher.
func TestAnswersPastTheBoundStreamOn(t *testing.T) {
	const (
		poll      = "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"
		handshake = "/socket.io/?EIO=4&transport=polling&t=PaB3x1c"
		websocket = "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC"
		size      = 4 << 20  // four times engine.io's default maxHttpBufferSize
		bound     = 64 << 10 // the readme's (Limits and choices), not maxHeldAnswer: what users were promised
	)
	expect := map[string]string{"Expect": "100-continue"}
	cases := []struct {
		name          string
		method        string
		target        string
		headers       map[string]string
		status        int
		contentType   string
		beginning     string // the body's first bytes (the rest is filler)
		wantStatus    int
		wantDiagnosis string
		replaced      bool // the guard's own answer instead, the rest dropped
	}{
		{"a 4 MiB poll answer (the short way's capture)", "GET", poll, nil, 200, "text/plain; charset=UTF-8", "", 200, "", false},
		{"a 4 MiB answer to a POST", "POST", poll, nil, 200, "text/html", "", 200, "", false},
		{"a 4 MiB poll answer to a request with Expect", "GET", poll, expect, 200, "text/plain; charset=UTF-8", "", 200, "", false},
		{"a 4 MiB 400 page to a poll", "GET", poll, nil, 400, "text/html", "<html>", 400, "", false},
		{"a 4 MiB 400 page to a poll with Expect", "GET", poll, expect, 400, "text/html", "<html>", 400, "", false},
		{"a 400 that begins as Engine.IO's Session ID unknown, then 4 MiB", "GET", poll, nil, 400, "application/json", `{"code":1,"message":"Session ID unknown"}`, 400, "", false},
		{"a 4 MiB 404 page to a poll", "GET", poll, nil, 404, "text/html", "<html>", http.StatusBadGateway, "", true},
		{"a 4 MiB 404 page to a poll with Expect", "GET", poll, expect, 404, "text/html", "<html>", http.StatusBadGateway, "", true},
		{"a 4 MiB web app page to a polling handshake", "GET", handshake, nil, 200, "text/html; charset=utf-8", "<!DOCTYPE html>", http.StatusBadGateway, "", true},
		{"a 4 MiB web app page to a websocket handshake", "GET", websocket, websocketHeaders(nil), 200, "text/html; charset=utf-8", "<!DOCTYPE html>", 200, "", false},
		{"a 4 MiB 404 page to a websocket handshake", "GET", websocket, websocketHeaders(nil), 404, "text/html", "<html>", http.StatusBadGateway, "", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			body := c.beginning + strings.Repeat("x", size-len(c.beginning))
			client := httptest.NewRecorder()
			var lagging []string
			backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				rw.Header().Set("Content-Type", c.contentType)
				rw.WriteHeader(c.status)
				sentAtCrossing := -1
				for written := 0; written < len(body); {
					if written > bound {
						switch {
						case sentAtCrossing < 0:
							sentAtCrossing = client.Body.Len()
						case c.replaced && client.Body.Len() != sentAtCrossing:
							lagging = append(lagging, fmt.Sprintf("after %d bytes the client has %d, after the crossing %d (the rest must be dropped)", written, client.Body.Len(), sentAtCrossing))
						case !c.replaced && client.Body.Len() != written:
							lagging = append(lagging, fmt.Sprintf("after %d bytes the client has %d (held, not streamed)", written, client.Body.Len()))
						}
					}
					end := written + 32<<10 // Traefik's proxy writes what it reads, 32 KiB at most
					if end > len(body) {
						end = len(body)
					}
					n, _ := rw.Write([]byte(body[written:end]))
					written += n
				}
			})
			guard := newTestGuard(t, CreateConfig(), backend, &bytes.Buffer{})
			guard.ServeHTTP(client, newScenarioRequest(scenario{method: c.method, target: c.target, headers: c.headers}))
			if len(lagging) > 0 {
				t.Errorf("%s (and %d more)", lagging[0], len(lagging)-1)
			}
			if client.Code != c.wantStatus || client.Header().Get(headerDiagnosis) != c.wantDiagnosis {
				t.Errorf("answer %d, diagnosis %q; want %d, %q", client.Code, client.Header().Get(headerDiagnosis), c.wantStatus, c.wantDiagnosis)
			}
			switch {
			case c.replaced && (client.Header().Get(headerError) != "backend-not-socketio" || client.Body.Len() > 4096):
				t.Errorf("error %q, %d bytes: want the guard's own answer alone", client.Header().Get(headerError), client.Body.Len())
			case c.replaced && client.Header().Get("Content-Length") != strconv.Itoa(client.Body.Len()):
				t.Errorf("Content-Length %q for %d bytes: the guard's answer must be complete while the server still sends", client.Header().Get("Content-Length"), client.Body.Len())
			case !c.replaced && client.Body.String() != body:
				t.Errorf("%d bytes reached the client, want %d as written", client.Body.Len(), len(body))
			}
		})
	}
}

// TestInformationalAnswersPassAtOnce: the guard lets informational answers
// pass as they come — to a request that asked for 100 Continue (Expect:
// 100-continue), and a 103 Early Hints a hop sends unasked — and the final
// answer keeps its own status, read and marked like any other.
func TestInformationalAnswersPassAtOnce(t *testing.T) {
	const target = "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"
	for _, c := range []struct {
		name       string
		expect     bool // the request asks for 100 Continue
		informal   int
		answer     backendAnswer
		wantStatus int
		diagnosis  string
	}{
		{"100 then the answer", true, http.StatusContinue, socketIOPostOK, 200, ""},
		{"103 then the answer", true, http.StatusEarlyHints, socketIOPostOK, 200, ""},
		{"100 then a refusal, still read", true, http.StatusContinue, sessionUnknown, 400, "session-unknown"},
		{"100 then the web app's 404, still replaced", true, http.StatusContinue, webApp404, 502, ""},
		{"103 unasked then the answer", false, http.StatusEarlyHints, socketIOPostOK, 200, ""},
		{"103 unasked then a refusal, still read", false, http.StatusEarlyHints, sessionUnknown, 400, "session-unknown"},
		{"103 unasked then the web app's 404, still replaced", false, http.StatusEarlyHints, webApp404, 502, ""},
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
			if c.expect {
				req.Header.Set("Expect", "100-continue")
			}
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

// TestEarlyHintsThroughAProxy: a 103 Early Hints a hop sends unasked before
// the answer, through the guard and Go's reverse proxy (Traefik's, which
// relays it as it comes): the client gets the 103, then the answer with its
// own status, read as any other — not the 103's place taken by a 200.
func TestEarlyHintsThroughAProxy(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		rw.Header().Set("Link", "</assets/app.css>; rel=preload")
		rw.WriteHeader(http.StatusEarlyHints)
		switch {
		case req.URL.Query().Get("sid") == "":
			writeBackendAnswer(rw, socketIOHandshake)
		case strings.HasPrefix(req.URL.Query().Get("sid"), "web"):
			writeBackendAnswer(rw, webApp404)
		default:
			writeBackendAnswer(rw, sessionUnknown)
		}
	}))
	defer backend.Close()
	target, _ := url.Parse(backend.URL)
	guard := newTestGuard(t, CreateConfig(), httputil.NewSingleHostReverseProxy(target), nil)
	front := httptest.NewServer(guard)
	defer front.Close()
	for _, c := range []struct {
		name, query          string
		wantStatus           int
		wantError, diagnosis string
	}{
		{"a polling handshake", "EIO=4&transport=polling&t=x", 200, "", ""},
		{"a poll of an unknown session", "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", 400, "", "session-unknown"},
		{"a poll the web app answers 404", "EIO=4&transport=polling&sid=web_VI97HAXpY6yYWAAAC", 502, "backend-not-socketio", ""},
	} {
		var informal []int
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
			Got1xxResponse: func(code int, _ textproto.MIMEHeader) error { informal = append(informal, code); return nil },
		})
		req, _ := http.NewRequestWithContext(ctx, "GET", front.URL+"/socket.io/?"+c.query, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.wantStatus || resp.Header.Get(headerError) != c.wantError || resp.Header.Get(headerDiagnosis) != c.diagnosis {
			t.Errorf("%s after a 103: %d, error %q, diagnosis %q; want %d %q %q", c.name, resp.StatusCode,
				resp.Header.Get(headerError), resp.Header.Get(headerDiagnosis), c.wantStatus, c.wantError, c.diagnosis)
		}
		if len(informal) != 1 || informal[0] != http.StatusEarlyHints {
			t.Errorf("%s: the client saw informational answers %v, want [103]", c.name, informal)
		}
	}
}

// TestEarlyHintsHideTheStickyCookie: behind a load balancer that sets its
// sticky cookie before it proxies (Traefik's), a "Session ID unknown" to a
// request that carried the cookie is named by what the load balancer did
// with it — but after an informational answer the proxy has emptied the
// header map, the load balancer's Set-Cookie with it: the guard then says
// session-unknown and why, not "the load balancer kept it". For a poll and
// for a websocket handshake, with the cookie's name configured (stickyCookie)
// or learned from the Set-Cookie.
func TestEarlyHintsHideTheStickyCookie(t *testing.T) {
	for _, run := range []struct {
		hints      bool
		configured string
	}{{false, ""}, {true, ""}, {false, "_abcde"}, {true, "_abcde"}} {
		hints := run.hints
		backend := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
			if hints {
				rw.Header().Set("Link", "</assets/app.css>; rel=preload")
				rw.WriteHeader(http.StatusEarlyHints)
			}
			writeBackendAnswer(rw, sessionUnknown)
		}))
		target, _ := url.Parse(backend.URL)
		proxy := httputil.NewSingleHostReverseProxy(target)
		loadBalancer := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
			http.SetCookie(rw, &http.Cookie{Name: "_abcde", Value: "replica-2", Path: "/"}) // the old replica is gone: a new one chosen
			proxy.ServeHTTP(rw, req)
		})
		cfg := CreateConfig()
		cfg.StickyCookie = run.configured
		guard := newTestGuard(t, cfg, loadBalancer, nil)
		front := httptest.NewServer(guard) // a server: a recorder would keep the 103 (and Yaegi wants the guard in a variable here)
		for _, c := range []struct {
			name, target string
			headers      map[string]string
		}{
			{"a poll", "/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC", nil},
			{"a websocket handshake", "/socket.io/?EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC", websocketHeaders(nil)},
		} {
			req, _ := http.NewRequest("GET", front.URL+c.target, nil)
			for k, v := range c.headers {
				req.Header.Set(k, v)
			}
			req.Header.Set("Cookie", "_abcde=replica-1")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			want := "session-unknown-sticky-cookie"
			if hints {
				want = "session-unknown"
			}
			if resp.StatusCode != 400 || resp.Header.Get(headerDiagnosis) != want {
				t.Errorf("%s (103 first: %v, stickyCookie %q): %d, diagnosis %q; want 400 %q", c.name, hints, run.configured, resp.StatusCode, resp.Header.Get(headerDiagnosis), want)
			}
		}
		front.Close()
		backend.Close()
	}
}
