package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestLargeAnswersStreamThroughTraefik: a poll answered with 8 MiB reaches
// the client through a real Traefik as it comes — the backend writes the
// first MiB and then waits until the client has read half of one, which it
// could not if the guard held the answer whole — and a 404 page of 8 MiB to
// a poll is replaced by the guard's own answer before the backend is done.
// On each Yaegi a Traefik line embeds (v3: v0.16, v2: v0.15).
func TestLargeAnswersStreamThroughTraefik(t *testing.T) {
	onTraefikLines(t, []traefikLine{everyTraefikLine[0], everyTraefikLine[2]}, runLargeAnswers)
}

func runLargeAnswers(t *testing.T, line string) {
	const (
		size      = 8 << 20
		firstPart = 1 << 20 // written before the backend waits for the client
		clientHas = 512 << 10
	)
	body := strings.Repeat("4hello", size/6)
	type backendAnswer struct {
		status      int
		contentType string
		proceed     chan struct{} // closed by the client side when it may go on
		waitedOut   atomic.Bool   // the backend's wait ended by its timeout: the client saw nothing in time
	}
	answers := map[string]*backendAnswer{
		"poll": {status: 200, contentType: "text/plain; charset=UTF-8", proceed: make(chan struct{})},
		"page": {status: 404, contentType: "text/html", proceed: make(chan struct{})},
	}
	backend := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		a := answers[req.URL.Query().Get("answer")]
		if a == nil {
			http.NotFound(rw, req)
			return
		}
		rw.Header().Set("Content-Type", a.contentType)
		rw.WriteHeader(a.status)
		_, _ = io.WriteString(rw, body[:firstPart])
		http.NewResponseController(rw).Flush()
		select {
		case <-a.proceed:
		case <-time.After(10 * time.Second):
			a.waitedOut.Store(true)
		case <-req.Context().Done():
			return
		}
		_, _ = io.WriteString(rw, body[firstPart:])
	}))
	defer backend.Close()

	tr := startGuardedAndPlain(newEnv(t), line, "traefik-large", backend.URL)

	get := func(t *testing.T, answer string) *http.Response {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		req, err := http.NewRequestWithContext(ctx, "GET", tr.URL("guarded")+"/socket.io/?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC&answer="+answer, nil)
		if err != nil {
			t.Fatal(err)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}

	t.Run("an 8 MiB poll answer streams on", func(t *testing.T) {
		a := answers["poll"]
		res := get(t, "poll")
		first := make([]byte, clientHas)
		_, err := io.ReadFull(res.Body, first)
		close(a.proceed) // the client has the beginning while the backend still holds the rest
		if err != nil {
			t.Fatalf("reading the first %d bytes: %v", clientHas, err)
		}
		rest, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatalf("reading the rest: %v", err)
		}
		if res.StatusCode != 200 || string(first)+string(rest) != body {
			t.Errorf("%d, %d bytes; want 200 and the %d bytes as written", res.StatusCode, len(first)+len(rest), len(body))
		}
		if a.waitedOut.Load() {
			t.Errorf("the backend waited 10 s with 1 MiB written and the client had less than %d bytes: the answer was held, not streamed", clientHas)
		}
	})

	t.Run("an 8 MiB 404 page is replaced before the backend is done", func(t *testing.T) {
		a := answers["page"]
		res := get(t, "page")
		answer, err := io.ReadAll(res.Body) // the guard's answer is complete while the backend still waits
		close(a.proceed)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		if res.StatusCode != http.StatusBadGateway || res.Header.Get("X-Socketio-Guard-Error") != "backend-not-socketio" || len(answer) > 4096 {
			t.Errorf("%d %q, %d bytes; want 502 backend-not-socketio and the guard's answer alone", res.StatusCode, res.Header.Get("X-Socketio-Guard-Error"), len(answer))
		}
		if a.waitedOut.Load() {
			t.Errorf("the backend waited out its 10 s before the client had the guard's answer")
		}
	})
}
