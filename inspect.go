package socketioguard

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// counters are per middleware instance (Traefik builds one per router).
// The traffic counters are counted atomically; the rest, rare, under the mutex.
type counters struct {
	requests int64 // every Engine.IO request
	// The signal no proxy gives: how many clients get past long-polling.
	pollingHandshakes   int64 // polling handshakes (GET, no sid) forwarded
	websocketHandshakes int64 // websocket handshakes forwarded
	websocketUpgrades   int64 // … that ended in a 101 handed over (needs diagnoseResponses)
	websocketFailed     int64 // … answered without a 101 (refused, or the upgrade lost)
	// originRepairs: the repair most handshakes get (setMissingOrigin), kept
	// apart from the map and its lock; snapshot shows it as repairs["origin"].
	originRepairs int64

	mu         sync.Mutex
	repairs    map[string]int64
	withheld   map[string]int64 // repairs not made, as "<repair>:<reason>"
	rejections map[string]int64
	diagnoses  map[string]int64
}

func newCounters() *counters {
	return &counters{
		repairs:    map[string]int64{},
		withheld:   map[string]int64{},
		rejections: map[string]int64{},
		diagnoses:  map[string]int64{},
	}
}

// countRepair counts the Origin repair, which most handshakes get, without
// the lock; the others under it.
func (c *counters) countRepair(kind string) {
	if kind == repairOrigin {
		atomic.AddInt64(&c.originRepairs, 1)
		return
	}
	c.add(c.repairs, kind)
}

func (c *counters) countWithheld(kind string) { c.add(c.withheld, kind) }
func (c *counters) countRejection(id string)  { c.add(c.rejections, id) }
func (c *counters) countDiagnosis(id string)  { c.add(c.diagnoses, id) }

func (c *counters) add(m map[string]int64, key string) {
	c.mu.Lock()
	m[key]++
	c.mu.Unlock()
}

type counterSnapshot struct {
	EngineIORequests    int64            `json:"engineIORequests"`
	PollingHandshakes   int64            `json:"pollingHandshakes"`
	WebsocketHandshakes int64            `json:"websocketHandshakes"`
	WebsocketUpgrades   int64            `json:"websocketUpgrades"`
	WebsocketFailed     int64            `json:"websocketFailed"`
	Repairs             map[string]int64 `json:"repairs"`
	Withheld            map[string]int64 `json:"withheld"`
	Rejections          map[string]int64 `json:"rejections"`
	Diagnoses           map[string]int64 `json:"diagnoses"`
}

func (c *counters) snapshot() counterSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	repairs := copyCounts(c.repairs)
	if n := atomic.LoadInt64(&c.originRepairs); n > 0 {
		repairs[repairOrigin] = n
	}
	return counterSnapshot{
		EngineIORequests:    atomic.LoadInt64(&c.requests),
		PollingHandshakes:   atomic.LoadInt64(&c.pollingHandshakes),
		WebsocketHandshakes: atomic.LoadInt64(&c.websocketHandshakes),
		WebsocketUpgrades:   atomic.LoadInt64(&c.websocketUpgrades),
		WebsocketFailed:     atomic.LoadInt64(&c.websocketFailed),
		Repairs:             repairs,
		Withheld:            copyCounts(c.withheld),
		Rejections:          copyCounts(c.rejections),
		Diagnoses:           copyCounts(c.diagnoses),
	}
}

func copyCounts(m map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// inspection is the answer to a GET on inspectPath: what arrived at the guard
// (after every hop in front of it, Traefik's entrypoint included) and what
// the guard would do with an Engine.IO request like it. It never contains
// Cookie, Authorization, the sid value or the values of the application's
// own query parameters (only their names).
type inspection struct {
	Middleware     string              `json:"middleware"`
	Mode           string              `json:"mode"`
	Request        inspectedRequest    `json:"request"`
	Headers        inspectedHeaders    `json:"headers"`
	Verdict        inspectionVerdict   `json:"verdict"`
	Counters       counterSnapshot     `json:"counters"`
	Query          map[string][]string `json:"query"`          // the keys Engine.IO defines
	OtherQueryKeys []string            `json:"otherQueryKeys"` // names only
}

type inspectedRequest struct {
	Method     string `json:"method"`
	Proto      string `json:"proto"`
	Host       string `json:"host"`
	Path       string `json:"path"`
	RemoteAddr string `json:"remoteAddr"`
	TLS        bool   `json:"tls"`
}

type inspectedHeaders struct {
	Upgrade                string `json:"upgrade"`
	Connection             string `json:"connection"`
	SecWebSocketKey        bool   `json:"secWebSocketKeyPresent"`
	SecWebSocketVersion    string `json:"secWebSocketVersion"`
	SecWebSocketExtensions string `json:"secWebSocketExtensions"`
	SecWebSocketProtocol   string `json:"secWebSocketProtocol"`
	Origin                 string `json:"origin"`
	XForwardedFor          string `json:"xForwardedFor"`
	XForwardedProto        string `json:"xForwardedProto"`
	XForwardedHost         string `json:"xForwardedHost"`
	XForwardedPort         string `json:"xForwardedPort"`
	XRealIP                string `json:"xRealIp"`
	XFrappeSiteName        string `json:"xFrappeSiteName"`
	SecFetchSite           string `json:"secFetchSite"`
	CookiePresent          bool   `json:"cookiePresent"`
}

type inspectionVerdict struct {
	Action  string   `json:"action"` // forward or reject
	Repairs []string `json:"repairs"`
	// OriginNotSet says why setMissingOrigin leaves this request's missing Origin missing.
	OriginNotSet string `json:"originNotSet,omitempty"`
	Status       int    `json:"status,omitempty"`
	Error        string `json:"error,omitempty"`
	Detail       string `json:"detail,omitempty"`
	Hint         string `json:"hint,omitempty"`
}

func (g *Guard) serveInspect(rw http.ResponseWriter, req *http.Request) {
	if wantsPrometheus(req) {
		g.serveMetrics(rw)
		return
	}
	h := req.Header
	answer := inspection{
		Middleware: g.name,
		Mode:       modeGuard,
		Request: inspectedRequest{
			Method:     req.Method,
			Proto:      req.Proto,
			Host:       req.Host,
			Path:       req.URL.Path,
			RemoteAddr: req.RemoteAddr,
			TLS:        req.TLS != nil,
		},
		Headers: inspectedHeaders{
			Upgrade:                h.Get("Upgrade"),
			Connection:             h.Get("Connection"),
			SecWebSocketKey:        h.Get("Sec-WebSocket-Key") != "",
			SecWebSocketVersion:    h.Get("Sec-WebSocket-Version"),
			SecWebSocketExtensions: h.Get("Sec-WebSocket-Extensions"),
			SecWebSocketProtocol:   h.Get("Sec-WebSocket-Protocol"),
			Origin:                 h.Get("Origin"),
			XForwardedFor:          h.Get("X-Forwarded-For"),
			XForwardedProto:        h.Get("X-Forwarded-Proto"),
			XForwardedHost:         h.Get("X-Forwarded-Host"),
			XForwardedPort:         h.Get("X-Forwarded-Port"),
			XRealIP:                h.Get("X-Real-Ip"),
			XFrappeSiteName:        h.Get("X-Frappe-Site-Name"),
			SecFetchSite:           h.Get("Sec-Fetch-Site"),
			CookiePresent:          h.Get("Cookie") != "",
		},
		Counters: g.counters.snapshot(),
		Verdict:  g.verdictFor(req),
	}
	answer.Query, answer.OtherQueryKeys = inspectedQuery(req.URL.RawQuery)
	if g.settings.fallback {
		answer.Mode = modeFallback
	}

	body, err := json.MarshalIndent(answer, "", "  ")
	if err != nil {
		http.Error(rw, "socketioguard: cannot encode the inspection", http.StatusInternalServerError)
		return
	}
	rw.Header().Set("Content-Type", "application/json")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(append(body, '\n'))
}

// verdictFor runs the guard's decisions (without their effects) on the
// inspection request as if its path were the first Engine.IO path.
func (g *Guard) verdictFor(req *http.Request) inspectionVerdict {
	if g.settings.fallback {
		return inspectionVerdict{
			Action: "reject", Repairs: []string{}, Status: g.settings.fallbackStatus,
			Error: problemNoSocketIORoute.id, Detail: "fallback mode answers every Engine.IO request",
		}
	}
	eio := readEngineIORequest(req, false)
	if p := g.findProblem(req, eio); p != nil {
		return inspectionVerdict{Action: "reject", Repairs: []string{}, Status: p.status, Error: p.id, Detail: g.describeProblem(p, req, eio), Hint: p.hint}
	}
	repairs, originWithheld := g.plannedRepairs(req, eio)
	if repairs == nil {
		repairs = []string{}
	}
	return inspectionVerdict{Action: "forward", Repairs: repairs, OriginNotSet: originWithheld}
}

// engineIOQueryKeys are the query keys Engine.IO defines; the inspection
// shows their values (sid redacted) and only the names of all others.
var engineIOQueryKeys = []string{keyEIO, keyTransport, keySID, "t", "b64", keyJSONP}

// maxInspectedPairs bounds the inspection's work on a huge query.
const maxInspectedPairs = 100

func inspectedQuery(rawQuery string) (engineIO map[string][]string, otherKeys []string) {
	engineIO, otherKeys = map[string][]string{}, []string{}
	rest := rawQuery
	for read := 0; rest != ""; read++ {
		if read == maxInspectedPairs {
			otherKeys = append(otherKeys, fmt.Sprintf("(%d more bytes of query not read)", len(rest)))
			break
		}
		pair := rest
		if end := strings.IndexAny(rest, "&;"); end >= 0 {
			pair, rest = rest[:end], rest[end+1:]
		} else {
			rest = ""
		}
		if pair == "" {
			continue
		}
		rawKey, rawValue, _ := strings.Cut(pair, "=")
		key := lenientUnescape(rawKey)
		switch {
		case key == keySID:
			engineIO[key] = append(engineIO[key], "REDACTED")
		case contains(engineIOQueryKeys, key):
			engineIO[key] = append(engineIO[key], shortened(lenientUnescape(rawValue)))
		case !contains(otherKeys, key):
			otherKeys = append(otherKeys, shortened(key))
		}
	}
	return engineIO, otherKeys
}

// wantsPrometheus: a Prometheus scrape (its Accept names text/plain) or
// ?format=prometheus asks for the counters in Prometheus' text format.
func wantsPrometheus(req *http.Request) bool {
	return strings.Contains(req.Header.Get("Accept"), "text/plain") || strings.Contains(req.URL.RawQuery, "format=prometheus")
}

// serveMetrics writes every counter in Prometheus' text exposition format,
// labelled with the middleware's name (one instance per router).
func (g *Guard) serveMetrics(rw http.ResponseWriter) {
	c := g.counters.snapshot()
	mw := promLabel("middleware", g.name)
	var b strings.Builder
	metric := func(name, help string) {
		fmt.Fprintf(&b, "# HELP socketioguard_%s %s\n# TYPE socketioguard_%s counter\n", name, help, name)
	}
	single := func(name, help string, v int64) {
		metric(name, help)
		fmt.Fprintf(&b, "socketioguard_%s{%s} %d\n", name, mw, v)
	}
	byKey := func(name, help, label string, m map[string]int64) {
		metric(name, help)
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(&b, "socketioguard_%s{%s,%s} %d\n", name, mw, promLabel(label, k), m[k])
		}
	}
	single("engineio_requests_total", "Engine.IO requests the guard saw.", c.EngineIORequests)
	single("polling_handshakes_total", "Polling handshakes (GET without sid) forwarded to the Socket.IO server.", c.PollingHandshakes)
	single("websocket_handshakes_total", "Websocket handshakes forwarded to the Socket.IO server.", c.WebsocketHandshakes)
	single("websocket_upgrades_total", "Websocket handshakes that ended in a 101 handed over (counted with diagnoseResponses on).", c.WebsocketUpgrades)
	single("websocket_failed_total", "Websocket handshakes forwarded and answered without a 101 (refused, or the upgrade lost).", c.WebsocketFailed)
	byKey("repairs_total", "Requests repaired, by repair.", "repair", c.Repairs)
	byKey("withheld_total", "Repairs not made, by repair and reason.", "withheld", c.Withheld)
	byKey("rejections_total", "Requests the guard answered itself, by error id.", "error", c.Rejections)
	byKey("diagnoses_total", "Backend answers marked, by diagnosis id.", "diagnosis", c.Diagnoses)
	rw.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	rw.Header().Set("Cache-Control", "no-store")
	rw.Header().Set("X-Content-Type-Options", "nosniff")
	rw.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(rw, b.String())
}

// promLabel is name="value" with the value escaped as the format requires.
func promLabel(name, value string) string {
	return name + `="` + promLabelEscaper.Replace(value) + `"`
}

// promLabelEscaper escapes a label value (built once, not per label).
var promLabelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
