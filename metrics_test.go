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
