package socketioguard

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
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

// mebibyte is about the largest input a client can send through Traefik
// (entryPoints.<name>.http.maxHeaderBytes: 1 MiB for request line and
// headers together, by default).
const mebibyte = 1 << 20

// TestEveryInputPastItsLimit: each input the guard reads, at the largest size
// Traefik accepts, is decided on without being read past its limit: refused
// with its id where the guard must read it whole, decided as reading it would
// decide elsewhere — and the answer and every log line stay short.
func TestEveryInputPastItsLimit(t *testing.T) {
	huge := strings.Repeat("a", mebibyte)
	list := strings.Repeat("a,", mebibyte/2) + "websocket"
	poll := "/socket.io/?EIO=4&transport=polling"
	websocket := "/socket.io/?EIO=4&transport=websocket"
	cases := []struct {
		name      string
		config    func(*Config)
		method    string
		target    string
		host      string
		headers   map[string]string
		answer    backendAnswer
		wantCode  int
		wantError string
		wantSeen  map[string]string // headers the backend must see, when forwarded
	}{
		{name: "query, Engine.IO keys at its end", target: "/socket.io/?" + strings.Repeat("p=1&", mebibyte/4) + "EIO=4&transport=polling&j=0",
			wantCode: 414, wantError: "query-too-long"},
		{name: "query of many short pairs", target: poll + strings.Repeat("&p", maxQueryPairs), wantCode: 414, wantError: "query-too-long"},
		{name: "path (read up to the prefix; shown cut)", target: "/socket.io/" + huge + "?EIO=4&transport=polling", answer: webApp404,
			wantCode: 502, wantError: "backend-not-socketio"},
		{name: "Upgrade, a list (no Connection)", target: websocket, headers: websocketHeaders(map[string]string{"Upgrade": list, "Connection": ""}),
			wantCode: 400, wantError: "websocket-handshake-invalid"},
		{name: "Upgrade, a list with Connection", target: websocket, headers: websocketHeaders(map[string]string{"Upgrade": list}),
			wantCode: 400, wantError: "websocket-handshake-invalid"},
		{name: "Connection", target: websocket, headers: websocketHeaders(map[string]string{"Connection": strings.Repeat("keep-alive, ", mebibyte/12) + "Upgrade"}),
			wantCode: 431, wantError: "header-too-large"},
		{name: "Sec-WebSocket-Key", target: websocket, headers: websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Sec-WebSocket-Key": huge}),
			wantCode: 400, wantError: "websocket-handshake-invalid"},
		{name: "Sec-WebSocket-Version", target: websocket, headers: websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Sec-WebSocket-Version": huge}),
			wantCode: 400, wantError: "websocket-handshake-invalid"},
		{name: "Origin (present: never changed)", config: frappeRecipe, target: poll, headers: map[string]string{"Origin": huge},
			wantCode: 200, wantSeen: map[string]string{"Origin": huge}},
		{name: "X-Forwarded-Proto (its first 64 bytes name no scheme: the connection's)", config: frappeRecipe, target: poll,
			headers: map[string]string{"X-Forwarded-Proto": huge + ",https"}, wantCode: 200, wantSeen: map[string]string{"Origin": "http://v2.sysmayal.cloud"}},
		{name: "Host (not a plain host: no Origin)", config: frappeRecipe, target: poll, host: huge, wantCode: 200, wantSeen: map[string]string{"Origin": ""}},
		{name: "Sec-Fetch-Site (no Origin)", config: frappeRecipe, target: poll, headers: map[string]string{"Sec-Fetch-Site": huge},
			wantCode: 200, wantSeen: map[string]string{"Origin": ""}},
		{name: "method", method: strings.Repeat("G", mebibyte), target: poll, wantCode: 400, wantError: "bad-handshake-method"},
		{name: "fallback: Host and path", config: func(c *Config) { c.Mode = "fallback" }, target: "/socket.io/" + huge, host: huge,
			wantCode: 421, wantError: "no-socketio-route"},
		{name: "inspection: a query past the limit", config: func(c *Config) { c.InspectPath = "/socket.io/.guard" },
			target: "/socket.io/.guard?" + huge + "=1&EIO=4&transport=polling", headers: map[string]string{"Accept": huge, "Upgrade": huge, "Origin": huge},
			wantCode: 200},
		{name: "inspection: a query of many pairs", config: func(c *Config) { c.InspectPath = "/socket.io/.guard" },
			target: "/socket.io/.guard?" + strings.Repeat("a&", maxQueryPairs) + "EIO=4&transport=polling", wantCode: 200},
		{name: "inspection: a long key within the limit", config: func(c *Config) { c.InspectPath = "/socket.io/.guard" },
			target: "/socket.io/.guard?" + strings.Repeat("k", 4000) + "=1&EIO=4&transport=polling", wantCode: 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			cfg := CreateConfig()
			cfg.LogLevel = "debug"
			if c.config != nil {
				c.config(cfg)
			}
			var seen *http.Request
			backend := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
				seen = req
				writeBackendAnswer(rw, c.answer)
			})
			guard := newTestGuard(t, cfg, backend, &logs)
			method := c.method
			if method == "" {
				method = "GET"
			}
			req := newScenarioRequest(scenario{method: "GET", target: c.target, headers: c.headers})
			req.Method = method
			if c.host != "" {
				req.Host = c.host
			}
			rec := httptest.NewRecorder()
			guard.handler().ServeHTTP(rec, req)
			if rec.Code != c.wantCode || rec.Header().Get(headerError) != c.wantError {
				t.Errorf("answer %d %q, want %d %q: %.300s", rec.Code, rec.Header().Get(headerError), c.wantCode, c.wantError, rec.Body.String())
			}
			if (c.wantError != "" || c.wantCode == 200 && seen == nil) && rec.Body.Len() > 8192 {
				t.Errorf("a %d-byte answer", rec.Body.Len())
			}
			for _, line := range strings.SplitAfter(logs.String(), "\n") {
				if len(line) > 2048 {
					t.Errorf("a %d-byte log line: %.200s…", len(line), line)
				}
			}
			for name, want := range c.wantSeen {
				if seen == nil || seen.Header.Get(name) != want {
					t.Errorf("the backend did not see %s %.40q", name, want)
				}
			}
		})
	}
}

// costInputs place one value where the guard reads it, around a request that
// goes as far into the guard as that input lets it: the inputs of
// TestEveryInputPastItsLimit and the attack rows of make bench.
var costInputs = []struct {
	name    string
	inspect bool
	request func(v string) *http.Request
}{
	{"query", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/?t="+url.QueryEscape(v)+"&EIO=4&transport=polling", nil, "")
	}},
	{"path", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/"+url.PathEscape(v)+"?EIO=4&transport=polling&sid=x", nil, "")
	}},
	{"Upgrade", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/?EIO=4&transport=websocket", websocketHeaders(map[string]string{"Upgrade": v, "Connection": ""}), "")
	}},
	{"Connection", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/?EIO=4&transport=websocket", websocketHeaders(map[string]string{"Connection": v}), "")
	}},
	{"Sec-WebSocket-Key", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/?EIO=4&transport=websocket", websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Sec-WebSocket-Key": v}), "")
	}},
	{"Sec-WebSocket-Version", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/?EIO=4&transport=websocket", websocketHeaders(map[string]string{"Upgrade": "", "Connection": "", "Sec-WebSocket-Version": v}), "")
	}},
	{"Origin", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/?EIO=4&transport=polling", map[string]string{"Origin": v}, "")
	}},
	{"X-Forwarded-Proto", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/?EIO=4&transport=polling", map[string]string{"X-Forwarded-Proto": v}, "")
	}},
	{"Sec-Fetch-Site", false, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/?EIO=4&transport=polling", map[string]string{"Sec-Fetch-Site": v}, "")
	}},
	{"Host", false, func(v string) *http.Request { return costRequest("GET", "/socket.io/?EIO=4&transport=polling", nil, v) }},
	{"method", false, func(v string) *http.Request {
		return costRequest(strings.Repeat("G", len(v)), "/socket.io/?EIO=4&transport=polling", nil, "")
	}},
	{"inspection: query", true, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/.guard?"+url.QueryEscape(v)+"=1&EIO=4&transport=polling", nil, "")
	}},
	{"inspection: Accept and headers", true, func(v string) *http.Request {
		return costRequest("GET", "/socket.io/.guard?EIO=4&transport=websocket", map[string]string{"Accept": v, "Upgrade": v, "Origin": v, "X-Forwarded-For": v}, "")
	}},
}

func costRequest(method, target string, headers map[string]string, host string) *http.Request {
	req := newScenarioRequest(scenario{method: "GET", target: target, headers: headers})
	req.Method = method
	if host != "" {
		req.Host = host
	}
	return req
}

// servingAllocations is what serving one request costs in allocations (the
// least of a few measurements). The requests are built before (a repair changes a
// request: each run gets a fresh one), sharing the one long value: what is
// counted is the guard's own. Each measurement has a guard of its own
// (newGuard): its 11 requests stay within the inspection's 20 answers a
// second, so that an inspection is always measured answered, never refused
// (which costs less) by how fast the measurements before it ran.
func servingAllocations(newGuard func() http.Handler, build func(value string) *http.Request, value string) float64 {
	const runs = 10
	least := -1.0
	for attempt := 0; attempt < 5; attempt++ {
		guard := newGuard()
		requests := make([]*http.Request, runs+1) // AllocsPerRun calls once more to warm up
		for i := range requests {
			requests[i] = build(value)
		}
		rw := &discardWriter{header: http.Header{}}
		next := 0
		allocs := testing.AllocsPerRun(runs, func() {
			for k := range rw.header {
				delete(rw.header, k)
			}
			guard.ServeHTTP(rw, requests[next])
			next++
		})
		if least < 0 || allocs < least {
			least = allocs
		}
	}
	return least
}

// costGuard is the guard the cost tests measure: the Frappe recipe, the
// inspection where asked, a backend that answers like Engine.IO.
func costGuard(t testing.TB, inspect bool) http.Handler {
	cfg := CreateConfig()
	frappeRecipe(cfg)
	if inspect {
		cfg.InspectPath = "/socket.io/.guard"
	}
	handler, err := New(context.Background(), okBackend, cfg, "sio-guard@file")
	if err != nil {
		t.Fatal(err)
	}
	return handler
}

// TestCostDoesNotGrowPastTheLimits: past every limit the guard reads, serving
// a request costs the same number of allocations whatever the length of the
// input (here 16 KiB and 512 KiB of it), compiled and under Yaegi.
func TestCostDoesNotGrowPastTheLimits(t *testing.T) {
	if raceDetector {
		t.Skip("allocation counts are not exact under the race detector (go test without -race, and yaegi test, run this)")
	}
	for _, in := range costInputs {
		guard := func() http.Handler { return costGuard(t, in.inspect) }
		short := servingAllocations(guard, in.request, strings.Repeat("a,", 8<<10))
		long := servingAllocations(guard, in.request, strings.Repeat("a,", 256<<10))
		if long > short {
			t.Errorf("%s: %v allocations with 16 KiB of it, %v with 512 KiB", in.name, short, long)
		}
	}
}

// FuzzCostDoesNotGrowPastTheLimits: the same for any content — any unit the
// input is made of (separators, escapes, spaces, bytes a parser might
// stumble on), at 16 KiB and 256 KiB, in any of the inputs.
func FuzzCostDoesNotGrowPastTheLimits(f *testing.F) {
	for i := range costInputs {
		for _, unit := range []string{"a,", "%", "&", ";", " ", "%41", "\u0085", ",websocket", "\xff", "=", "sid=x&"} {
			f.Add(uint8(i), unit)
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, unit string) {
		if unit == "" || len(unit) > 64 || raceDetector {
			return
		}
		in := costInputs[int(which)%len(costInputs)]
		guard := func() http.Handler { return costGuard(t, in.inspect) }
		value := func(n int) string { return strings.Repeat(unit, n/len(unit)+1)[:n] }
		short := servingAllocations(guard, in.request, value(16<<10))
		long := servingAllocations(guard, in.request, value(256<<10))
		if long > short {
			t.Fatalf("%s of %q: %v allocations at 16 KiB, %v at 256 KiB", in.name, unit, short, long)
		}
	})
}
