package interpreted

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
)

// hammerRequest is one request of the mix and the status its client must get.
type hammerRequest struct {
	method, target string
	headers        map[string]string
	want           int
}

var hammerMix = []hammerRequest{
	{"GET", "/socket.io/?EIO=4&transport=polling&t=a", nil, 200},
	{"GET", "/socket.io/?EIO=4&transport=polling&sid=known", map[string]string{"Sec-Fetch-Site": "same-origin"}, 200},
	{"POST", "/socket.io/?EIO=4&transport=polling&sid=known", map[string]string{"Origin": "https://v2.sysmayal.cloud"}, 200},
	{"GET", "/socket.io/?EIO=4&transport=polling&sid=gone", nil, 400},            // session-unknown, diagnosed
	{"GET", "/socket.io/?EIO=4&transport=polling&t=b&web=1", nil, 502},           // the web app answers: replaced
	{"GET", "/socket.io/?EIO=4&transport=polling&j=0", nil, 400},                 // jsonp-refused
	{"GET", "/socket.io/?EIO=4&transport=polling&transport=websocket", nil, 400}, // query-ambiguous
	{"GET", "/socket.io/", nil, 400},                                             // query-missing
	{"GET", "/socket.io/?EIO=4&transport=polling", map[string]string{"Sec-Fetch-Site": "cross-site"}, 200},
	{"GET", "/socket.io/?EIO=4&transport=websocket", map[string]string{"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "13"}, 200},
	{"GET", "/socket.io/?EIO=4&transport=websocket", map[string]string{"Sec-WebSocket-Key": "short", "Sec-WebSocket-Version": "13"}, 400},
	{"GET", "/socket.io/.guard?EIO=4&transport=polling&room=x", nil, 200},
	{"GET", "/app/raven", nil, 200},
}

// proxyLikeBackend answers as the service behind Traefik's proxy would:
// Header() several times, WriteHeader, Write in parts.
var proxyLikeBackend = http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
	h := rw.Header()
	q := req.URL.RawQuery
	switch {
	case strings.Contains(q, "web=1"):
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Set-Cookie", "sid=Guest")
		rw.WriteHeader(404)
		_, _ = io.WriteString(rw, "<html>Not found</html>")
	case strings.Contains(q, "sid=gone"):
		h.Set("Content-Type", "application/json")
		rw.WriteHeader(400)
		_, _ = io.WriteString(rw, `{"code":1,`)
		_, _ = io.WriteString(rw, `"message":"Session ID unknown"}`)
	default:
		h.Set("Content-Type", "text/plain; charset=UTF-8")
		_ = rw.Header().Get("Content-Length")
		rw.WriteHeader(200)
		_, _ = io.WriteString(rw, `0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"]}`)
	}
})

// TestInterpretedGuardUnderConcurrentLoad hammers ONE interpreted guard (as
// Traefik shares one per router) from many goroutines with a mix of good and
// bad requests, under -race. Every client must get its own answer.
//
// Yaegi v0.16.1 fills a lazy type cache on the first concurrent use of an
// interpreted type (a racy write of the same value inside Yaegi, not in the
// plugin): the test first sends each kind of request once, as Traefik's
// first requests after a reload would, then starts the goroutines.
func TestInterpretedGuardUnderConcurrentLoad(t *testing.T) {
	var logs LockedBuffer
	p, err := LoadWorkingTree(t.TempDir(), &logs, &logs)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p.Handler(proxyLikeBackend, map[string]any{
		"setMissingOrigin": "true", "eioVersions": "4", "logLevel": "debug", "inspectPath": "/socket.io/.guard",
	}, "hammer@file")
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("SOCKETIOGUARD_HAMMER_COLD") == "" {
		for _, r := range hammerMix {
			serveOne(t, h, r)
		}
	}

	const goroutines, rounds = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, goroutines*rounds*len(hammerMix))
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < rounds; i++ {
				r := hammerMix[(g+i)%len(hammerMix)]
				if err := check(h, r); err != nil {
					errs <- err
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if !strings.Contains(logs.String(), "event=jsonp-refused") {
		t.Errorf("the guard's log lines are missing:\n%s", logs.String())
	}
}

func serveOne(t *testing.T, h http.Handler, r hammerRequest) {
	t.Helper()
	if err := check(h, r); err != nil {
		t.Fatal(err)
	}
}

func check(h http.Handler, r hammerRequest) error {
	req := httptest.NewRequest(r.method, r.target, nil)
	req.Host = "v2.sysmayal.cloud"
	for k, v := range r.headers {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	// The guard answers at most 20 inspections a second per router; the mix
	// asks for more, and the rest must be refused as such.
	rateLimited := strings.HasPrefix(r.target, "/socket.io/.guard") && rec.Code == http.StatusTooManyRequests &&
		rec.Header().Get("X-Socketio-Guard-Error") == "inspection-rate-limited"
	if rec.Code != r.want && !rateLimited {
		return fmt.Errorf("%s %s: %d, want %d (%s)", r.method, r.target, rec.Code, r.want, rec.Body.String())
	}
	return nil
}
