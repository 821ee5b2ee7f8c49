package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestWhatOperatorsWatch: the guard's ids in Traefik's JSON access log (the
// readme's recipe), Traefik's own Prometheus metrics after a misrouted
// request, and the guard's handshake counters — the signal no proxy gives:
// clients stuck on long-polling — scraped in Prometheus' format.
func TestWhatOperatorsWatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt := e.realtime("realtime")
	sidecar := e.nginx("sidecar-no-upgrade", sidecarWithoutUpgrade(realtimeURL(rt)))
	web := e.webapp()
	accessLog := filepath.Join(e.st.Dir, "access.json")
	tr, err := e.st.StartTraefik(stack.TraefikOptions{
		EntryPoints: []string{"healthy", "lost", "misrouted"}, Metrics: true,
		Routers: []string{"healthy@file", "lost@file", "misrouted@file"},
		// The readme's access-log recipe: keep the guard's headers, drop the rest.
		ExtraStatic: fmt.Sprintf(`accessLog:
  filePath: %s
  format: json
  fields:
    headers:
      defaultMode: drop
      names:
        X-Socketio-Guard-Error: keep
        X-Socketio-Guard-Diagnosis: keep
        X-Socketio-Guard-Repaired: keep
`, accessLog),
		Dynamic: fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: {setMissingOrigin: true, inspectPath: /socket.io/.guard}
    sio-fallback:
      plugin:
        socketioguard: {mode: fallback}
  services:
    realtime: {loadBalancer: {servers: [{url: %s}]}}
    sidecar: {loadBalancer: {servers: [{url: %s}]}}
    webapp: {loadBalancer: {servers: [{url: %s}]}}
  routers:
    healthy: {rule: "Host(%[5]s) && PathPrefix(%[6]s)", entryPoints: [healthy], middlewares: [frappe-site, sio-guard], service: realtime}
    lost: {rule: "Host(%[5]s) && PathPrefix(%[6]s)", entryPoints: [lost], middlewares: [frappe-site, sio-guard], service: sidecar}
    misrouted: {rule: "PathPrefix(%[7]s)", entryPoints: [misrouted], middlewares: [sio-fallback], service: webapp}
`, frappeSiteMiddleware, realtimeURL(rt), sidecar.URL(), web.URL(), "`127.0.0.1`", "`/socket.io`", "`/`"),
	})
	e.must(err)
	front := e.nginx("front-strips", nginxProxy(tr.URL("healthy"), "proxy_set_header Host $http_host;"))

	// A healthy client (behind a front proxy that strips the upgrade: repaired),
	// a client behind a sidecar that loses it, and a misrouted request.
	expectDelivered(t, e.client("healthy-page", front.URL(), true, origin(front.URL()), session), "websocket", "healthy-page")
	expectStayedOnPolling(t, e.client("lost-page", tr.URL("lost"), true, origin(tr.URL("lost")), session), "lost-page")
	get(t, tr.URL("misrouted")+"/socket.io/?EIO=4&transport=polling", nil)

	t.Run("the guard's ids in Traefik's JSON access log", func(t *testing.T) {
		var repaired, misrouted, lost bool
		deadline := time.Now().Add(5 * time.Second)
		for !(repaired && misrouted && lost) && time.Now().Before(deadline) {
			f, err := os.Open(accessLog)
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var line map[string]any
				if json.Unmarshal(sc.Bytes(), &line) != nil {
					continue
				}
				status, _ := line["DownstreamStatus"].(float64)
				// A websocket is logged when it closes; Traefik v3.6 records a
				// hijacked 101 with DownstreamStatus 0.
				path, _ := line["RequestPath"].(string)
				repaired = repaired || strings.Contains(path, "transport=websocket") && (status == 101 || status == 0) &&
					line["downstream_X-Socketio-Guard-Repaired"] == "upgrade"
				misrouted = misrouted || status == 421 && line["downstream_X-Socketio-Guard-Error"] == "no-socketio-route"
				lost = lost || status == 400 && line["downstream_X-Socketio-Guard-Diagnosis"] == "upgrade-lost-downstream"
			}
			f.Close()
			time.Sleep(100 * time.Millisecond)
		}
		if !repaired || !misrouted || !lost {
			raw, _ := os.ReadFile(accessLog)
			t.Errorf("access log: repaired websocket %v, 421 no-socketio-route %v, 400 upgrade-lost-downstream %v:\n%s", repaired, misrouted, lost, stack.Tail(string(raw), 3000))
		}
	})

	t.Run("Traefik's own metrics count the 421 per router", func(t *testing.T) {
		families := scrape(t, tr.URL("traefik")+"/metrics", nil)
		found := false
		for _, m := range families["traefik_router_requests_total"].GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			found = found || labels["router"] == "misrouted@file" && labels["code"] == "421" && m.GetCounter().GetValue() >= 1
		}
		if !found {
			t.Errorf("no traefik_router_requests_total{router=\"misrouted@file\",code=\"421\"} sample")
		}
	})

	t.Run("the guard's handshake counters, scraped in Prometheus' format", func(t *testing.T) {
		value := func(base, name string) float64 {
			families := scrape(t, base+"/socket.io/.guard", map[string]string{"Accept": "text/plain;version=0.0.4"})
			metrics := families[name].GetMetric()
			if len(metrics) != 1 {
				t.Fatalf("%s: %d samples", name, len(metrics))
			}
			return metrics[0].GetCounter().GetValue()
		}
		healthy := tr.URL("healthy")
		if h, u := value(healthy, "socketioguard_polling_handshakes_total"), value(healthy, "socketioguard_websocket_upgrades_total"); h < 1 || u < 1 {
			t.Errorf("healthy route: %v polling handshakes, %v upgrades; want both counted", h, u)
		}
		lost := tr.URL("lost")
		if h, u, f := value(lost, "socketioguard_polling_handshakes_total"), value(lost, "socketioguard_websocket_upgrades_total"), value(lost, "socketioguard_websocket_failed_total"); h < 1 || u != 0 || f < 1 {
			t.Errorf("route losing the upgrade: %v polling handshakes, %v upgrades, %v failed; want handshakes and failures, no upgrade", h, u, f)
		}
	})
}

// scrape GETs a Prometheus text-format page and parses it with Prometheus'
// own parser.
func scrape(t *testing.T, url string, headers map[string]string) map[string]*dto.MetricFamily {
	t.Helper()
	a := get(t, url, headers)
	if a.Status != 200 {
		t.Fatalf("GET %s: %d %q", url, a.Status, a.Body)
	}
	var parser expfmt.TextParser
	families, err := parser.TextToMetricFamilies(strings.NewReader(a.Body))
	if err != nil {
		t.Fatalf("%s does not parse as Prometheus text: %v\n%s", url, err, stack.Tail(a.Body, 2000))
	}
	return families
}
