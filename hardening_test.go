package socketioguard

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestOriginWithheldIsCountedLoggedAndInspected: when setMissingOrigin leaves
// a missing Origin missing, the operator can see why.
func TestOriginWithheldIsCountedLoggedAndInspected(t *testing.T) {
	var logs bytes.Buffer
	cfg := CreateConfig()
	frappeRecipe(cfg)
	cfg.LogLevel = "info"
	cfg.InspectPath = "/socket.io/.guard"
	guard := newTestGuard(t, cfg, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { writeBackendAnswer(rw, socketIOHandshake) }), &logs)

	for _, fetchSite := range []string{"same-site", "cross-site", "cross-site"} {
		req := newScenarioRequest(scenario{method: "GET", target: "/socket.io/?EIO=4&transport=polling", headers: map[string]string{"Sec-Fetch-Site": fetchSite}})
		guard.ServeHTTP(httptest.NewRecorder(), req)
	}
	if !strings.Contains(logs.String(), "level=info") || !strings.Contains(logs.String(), "event=origin-not-set") || !strings.Contains(logs.String(), "cross-site page") {
		t.Errorf("log should say at info why the Origin was not set: %q", logs.String())
	}
	got := guard.counters.snapshot()
	if got.Withheld["origin:sec-fetch-site"] != 3 || got.Repairs["origin"] != 0 {
		t.Errorf("counters = %+v", got)
	}

	rec := httptest.NewRecorder()
	guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: "/socket.io/.guard?EIO=4&transport=polling", headers: map[string]string{"Sec-Fetch-Site": "same-site"}}))
	var answer inspection
	if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
		t.Fatal(err)
	}
	if len(answer.Verdict.Repairs) != 0 || !strings.Contains(answer.Verdict.OriginNotSet, "same-site") || answer.Headers.SecFetchSite != "same-site" {
		t.Errorf("inspection verdict = %+v, headers %+v", answer.Verdict, answer.Headers)
	}
}

// TestInspectPathMustNotBeAnEngineIOPath: it would answer every handshake.
func TestInspectPathMustNotBeAnEngineIOPath(t *testing.T) {
	for _, c := range []struct {
		paths   []string
		inspect string
	}{
		{[]string{"/socket.io/"}, "/socket.io/"},
		{[]string{"/socket.io/"}, "/socket.io"},
		{[]string{"/ws/", "/socket.io/"}, " /socket.io "},
	} {
		cfg := CreateConfig()
		cfg.Paths, cfg.InspectPath = c.paths, c.inspect
		_, err := New(context.Background(), http.NotFoundHandler(), cfg, "sio-guard@file")
		if err == nil || !strings.Contains(err.Error(), "inspectPath") || !strings.Contains(err.Error(), `"/socket.io/"`) || !strings.Contains(err.Error(), "/socket.io/.guard") {
			t.Errorf("paths %v, inspectPath %q: %v", c.paths, c.inspect, err)
		}
	}
}

// TestDetailsNeverShowTheSID: however the sid key is spelled, its value stays
// out of the answer and the log.
func TestDetailsNeverShowTheSID(t *testing.T) {
	for _, query := range []string{
		"sid=SECRET", "x=1;sid=SECRET", "%73id=SECRET", "+sid=SECRET", "%20sid%20=SECRET", "x=1&s%69d=SECRET&y=2",
		strings.Repeat("a", 190) + "&sid=SECRET", "t=1&sid=SECRET&sid=SECRET2",
	} {
		var logs bytes.Buffer
		rec := httptest.NewRecorder()
		guard := newTestGuard(t, CreateConfig(), http.NotFoundHandler(), &logs)
		guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: "/socket.io/?" + query}))
		if rec.Code != http.StatusBadRequest || strings.Contains(rec.Body.String(), "SECRET") || strings.Contains(logs.String(), "SECRET") {
			t.Errorf("%q: %d %s\n%s", query, rec.Code, rec.Body.String(), logs.String())
		}
	}
	if got := redactedQuery("x=1;%73id=S&sid&+sid=T"); got != "x=1;%73id=REDACTED&sid&+sid=REDACTED" {
		t.Errorf("redactedQuery = %q", got)
	}
	if got := redactedQuery(strings.Repeat("y", 1<<20)); len(got) > 210 || !strings.HasSuffix(got, "…") {
		t.Errorf("a huge query is shown at %d bytes", len(got))
	}
}

// TestReplacedAnswerKeepsOnlyTheHeadersSetBefore: an earlier middleware's
// cookie stays, the web app's cookie (and every other header it added) goes.
func TestReplacedAnswerKeepsOnlyTheHeadersSetBefore(t *testing.T) {
	backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Add("Set-Cookie", "sid=Guest; Path=/")
		rw.Header().Add("Vary", "Cookie")
		writeBackendAnswer(rw, webApp404)
	})
	guard := newTestGuard(t, CreateConfig(), backend, nil)
	earlier := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		rw.Header().Add("Set-Cookie", "lb=replica-a; Path=/")
		rw.Header().Set("Vary", "Origin")
		guard.ServeHTTP(rw, req)
	})
	rec := httptest.NewRecorder()
	earlier.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: "/socket.io/?EIO=4&transport=polling"}))
	if rec.Code != http.StatusBadGateway || rec.Header().Get(headerError) != "backend-not-socketio" {
		t.Fatalf("answer %d %v", rec.Code, rec.Header())
	}
	if got := rec.Header().Values("Set-Cookie"); len(got) != 1 || got[0] != "lb=replica-a; Path=/" {
		t.Errorf("Set-Cookie = %q, want only the earlier middleware's", got)
	}
	if got := rec.Header().Values("Vary"); len(got) != 1 || got[0] != "Origin" {
		t.Errorf("Vary = %q, want only the earlier middleware's", got)
	}
}

// TestHugeQueryStaysBounded: a 1 MiB query is read with the same verdict as
// a short one (the work is a few compiled passes; see BenchmarkHugeQuery).
func TestHugeQueryStaysBounded(t *testing.T) {
	padding := strings.Repeat("p=1&", (1<<20)/4)
	cases := []struct{ query, wantError string }{
		{padding + "EIO=4&transport=polling", ""},
		{"EIO=4&transport=polling&" + padding, ""},
		{padding + "EIO=4&transport=polling&j=0", "jsonp-refused"},
		{padding + "EIO=4&transport=polling&transport=websocket", "query-ambiguous"},
		{padding, "query-missing"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		guard := newTestGuard(t, CreateConfig(), http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) { writeBackendAnswer(rw, socketIOHandshake) }), nil)
		guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: "/socket.io/?" + c.query}))
		if got := rec.Header().Get(headerError); got != c.wantError || len(rec.Body.String()) > 4096 {
			t.Errorf("%d-byte query: error %q (want %q), %d-byte answer", len(c.query), got, c.wantError, rec.Body.Len())
		}
	}
}
