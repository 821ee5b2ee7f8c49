package socketioguard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHandshakeCountersAndPrometheusFormat: the counters an operator alerts
// on ("upgrades / handshakes fell below 0.9"), served in Prometheus' text
// format to a scrape.
func TestHandshakeCountersAndPrometheusFormat(t *testing.T) {
	cfg := CreateConfig()
	cfg.InspectPath = "/socket.io/.guard"
	backend := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		if strings.Contains(req.URL.RawQuery, "transport=websocket") {
			writeBackendAnswer(rw, badRequest) // the upgrade lost further down
			return
		}
		writeBackendAnswer(rw, socketIOHandshake)
	})
	guard := newTestGuard(t, cfg, backend, nil)
	name := `sio-guard@"file"` // a name that needs escaping in a label
	guard.name = name
	for _, target := range []string{
		"/socket.io/?EIO=4&transport=polling",
		"/socket.io/?EIO=4&transport=polling",
		"/socket.io/?EIO=4&transport=polling&sid=abc", // not a handshake
		"/socket.io/?EIO=4&transport=websocket&sid=abc",
		"/socket.io/", // refused by the guard: not forwarded
	} {
		headers := map[string]string(nil)
		if strings.Contains(target, "websocket") {
			headers = websocketHeaders(nil)
		}
		guard.ServeHTTP(httptest.NewRecorder(), newScenarioRequest(scenario{method: "GET", target: target, headers: headers}))
	}
	c := guard.counters.snapshot()
	if c.PollingHandshakes != 2 || c.WebsocketHandshakes != 1 || c.WebsocketFailed != 1 || c.WebsocketUpgrades != 0 || c.EngineIORequests != 5 {
		t.Errorf("counters = %+v", c)
	}

	for _, how := range []map[string]string{
		{"Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"}, // Prometheus' own
		{"X-Query": "format=prometheus"},
	} {
		target := "/socket.io/.guard"
		if how["X-Query"] != "" {
			target += "?" + how["X-Query"]
		}
		rec := httptest.NewRecorder()
		guard.ServeHTTP(rec, newScenarioRequest(scenario{method: "GET", target: target, headers: map[string]string{"Accept": how["Accept"]}}))
		body := rec.Body.String()
		if !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Fatalf("%v: Content-Type %q", how, rec.Header().Get("Content-Type"))
		}
		for _, want := range []string{
			"# TYPE socketioguard_polling_handshakes_total counter",
			`socketioguard_polling_handshakes_total{middleware="sio-guard@\"file\""} 2`,
			`socketioguard_websocket_upgrades_total{middleware="sio-guard@\"file\""} 0`,
			`socketioguard_websocket_failed_total{middleware="sio-guard@\"file\""} 1`,
			`socketioguard_rejections_total{middleware="sio-guard@\"file\"",error="query-missing"} 1`,
			`socketioguard_diagnoses_total{middleware="sio-guard@\"file\"",diagnosis="upgrade-lost-downstream"} 1`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%v: metrics lack %s:\n%s", how, want, body)
			}
		}
	}
}

// TestEveryEngineIORequestCountsOnce: engineIORequests counts every
// Engine.IO request once, whichever way it takes (short or full, forwarded
// or refused), and a handshake forwarded also once in its own counter —
// the request path counts each where it decides what the request is.
func TestEveryEngineIORequestCountsOnce(t *testing.T) {
	frappe := func(cfg *Config) { cfg.SetMissingOrigin = true; cfg.EIOVersions = []string{"4"} }
	websocketOnly := func(cfg *Config) { cfg.Transports = []string{"websocket"} }
	fallback := func(cfg *Config) { cfg.Mode = "fallback" }
	stripped := websocketHeaders(map[string]string{"Upgrade": "", "Connection": ""})
	cases := []struct {
		name                            string
		configure                       func(*Config)
		method, target                  string
		headers                         map[string]string
		requests, polling, websocketsHS int64
	}{
		{"poll (short way)", frappe, "GET", "/socket.io/?EIO=4&transport=polling&t=x&sid=abc", nil, 1, 0, 0},
		{"poll POST (short way)", frappe, "POST", "/socket.io/?EIO=4&transport=polling&t=x&sid=abc", nil, 1, 0, 0},
		{"polling handshake (short way)", frappe, "GET", "/socket.io/?EIO=4&transport=polling&t=x", nil, 1, 1, 0},
		{"polling handshake with PUT: refused (short way)", frappe, "PUT", "/socket.io/?EIO=4&transport=polling&t=x", nil, 1, 0, 0},
		{"CORS preflight", frappe, "OPTIONS", "/socket.io/?EIO=4&transport=polling&t=x", nil, 1, 0, 0},
		{"websocket handshake (short way)", frappe, "GET", "/socket.io/?EIO=4&transport=websocket", websocketHeaders(nil), 1, 0, 1},
		{"websocket upgrade of a session (short way)", frappe, "GET", "/socket.io/?EIO=4&transport=websocket&sid=abc", websocketHeaders(nil), 1, 0, 1},
		{"websocket handshake, upgrade stripped: repaired", frappe, "GET", "/socket.io/?EIO=4&transport=websocket&sid=abc", stripped, 1, 0, 1},
		{"websocket handshake, upgrade stripped, no proof: refused", frappe, "GET", "/socket.io/?EIO=4&transport=websocket&sid=abc", nil, 1, 0, 0},
		{"polling handshake (full way: transport first)", frappe, "GET", "/socket.io/?transport=polling&EIO=4", nil, 1, 1, 0},
		{"poll (full way: transport first)", frappe, "GET", "/socket.io/?transport=polling&EIO=4&sid=abc", nil, 1, 0, 0},
		{"websocket handshake (full way)", frappe, "GET", "/socket.io/?transport=websocket&EIO=4", websocketHeaders(nil), 1, 0, 1},
		{"no query: refused (full way)", frappe, "GET", "/socket.io/", nil, 1, 0, 0},
		{"escaped path: refused", frappe, "GET", "/socket.io%2F?EIO=4&transport=polling", nil, 1, 0, 0},
		{"poll, short way off (websocket only): refused", websocketOnly, "GET", "/socket.io/?EIO=4&transport=polling&sid=abc", nil, 1, 0, 0},
		{"websocket handshake, short way off", websocketOnly, "GET", "/socket.io/?EIO=4&transport=websocket", websocketHeaders(nil), 1, 0, 1},
		{"fallback mode: refused", fallback, "GET", "/socket.io/?EIO=4&transport=polling", nil, 1, 0, 0},
		{"fallback mode: the web app", fallback, "GET", "/app/raven", nil, 0, 0, 0},
		{"the web app", frappe, "GET", "/app/raven", nil, 0, 0, 0},
		{"the client bundle", frappe, "GET", "/socket.io/socket.io.js", nil, 0, 0, 0},
		{"the inspection", frappe, "GET", "/socket.io/.guard", nil, 0, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := CreateConfig()
			cfg.InspectPath = "/socket.io/.guard"
			tc.configure(cfg)
			guard := newTestGuard(t, cfg, http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				writeBackendAnswer(rw, socketIOHandshake)
			}), nil)
			// Through the handler New hands Traefik (fallbackGuard in fallback mode).
			guard.handler().ServeHTTP(httptest.NewRecorder(), newScenarioRequest(scenario{method: tc.method, target: tc.target, headers: tc.headers}))
			c := guard.counters.snapshot()
			if c.EngineIORequests != tc.requests || c.PollingHandshakes != tc.polling || c.WebsocketHandshakes != tc.websocketsHS {
				t.Errorf("engineIORequests %d, pollingHandshakes %d, websocketHandshakes %d; want %d, %d, %d (counters %+v)",
					c.EngineIORequests, c.PollingHandshakes, c.WebsocketHandshakes, tc.requests, tc.polling, tc.websocketsHS, c)
			}
		})
	}
}
