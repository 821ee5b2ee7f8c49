package socketioguard

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
)

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
	rejections, diagnoses := map[string]int64{}, map[string]int64{}
	for _, p := range allProblems {
		n := atomic.LoadInt64(&c.byProblem[p.index])
		if n == 0 {
			continue
		}
		if p.diagnosis {
			diagnoses[p.id] += n
		} else {
			rejections[p.id] += n
		}
	}
	otherRequests, pollingHandshakes, websocketHandshakes := atomic.LoadInt64(&c.otherRequests), atomic.LoadInt64(&c.pollingHandshakes), atomic.LoadInt64(&c.websocketHandshakes)
	return counterSnapshot{
		EngineIORequests:    otherRequests + pollingHandshakes + websocketHandshakes,
		PollingHandshakes:   pollingHandshakes,
		WebsocketHandshakes: websocketHandshakes,
		WebsocketUpgrades:   atomic.LoadInt64(&c.websocketUpgrades),
		WebsocketFailed:     atomic.LoadInt64(&c.websocketFailed),
		Repairs: nonZero(map[string]int64{
			repairOrigin: atomic.LoadInt64(&c.originRepairs), repairPath: atomic.LoadInt64(&c.pathRepairs),
			repairUpgrade: atomic.LoadInt64(&c.upgradeRepairs),
		}),
		Withheld: nonZero(map[string]int64{
			repairOrigin + ":" + withheldJSONP: atomic.LoadInt64(&c.withheldJSONP), repairOrigin + ":" + withheldFetchSite: atomic.LoadInt64(&c.withheldFetchSite),
			repairOrigin + ":" + withheldHost: atomic.LoadInt64(&c.withheldHost),
		}),
		Rejections: rejections,
		Diagnoses:  diagnoses,
	}
}

// nonZero drops the counts that are 0, as the counters' maps show them.
func nonZero(m map[string]int64) map[string]int64 {
	for k, v := range m {
		if v == 0 {
			delete(m, k)
		}
	}
	return m
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

// inspectionsPerSecond bounds the inspection's answers (JSON or Prometheus)
// per middleware instance: an answer costs the guard some 1,370 allocations
// under Yaegi (the request, the verdict, every counter; bench/report.md),
// three times the bound on any other request, and anyone who can reach the
// route may ask for it. Past the budget: 429 inspection-rate-limited, which
// costs no more than a refusal.
const inspectionsPerSecond = 20

// retryAfterOneSecond is the Retry-After of an inspection past its budget
// (shared, see jsonContentType).
var retryAfterOneSecond = []string{"1"}

func serveInspect(g *Guard, rw http.ResponseWriter, req *http.Request) {
	g.inspectionsMu.Lock()
	_, admitted := g.inspections.take(g.log.now(), inspectionsPerSecond)
	g.inspectionsMu.Unlock()
	if !admitted {
		rw.Header()["Retry-After"] = retryAfterOneSecond
		reject(g, rw, req, &problemInspectionRateLimited, problemInspectionRateLimited.status,
			"more than 20 inspections in one second on this router", "")
		return
	}
	if wantsPrometheus(req) {
		serveMetrics(g, rw)
		return
	}
	writeInspection(g, rw, req)
}

// writeInspection writes the inspection's JSON answer (a function of its
// own: an inspection past its budget does not build this frame).
func writeInspection(g *Guard, rw http.ResponseWriter, req *http.Request) {
	h := req.Header
	answer := inspection{
		Middleware: g.name,
		Mode:       modeGuard,
		Request: inspectedRequest{
			Method:     shortened(req.Method),
			Proto:      req.Proto,
			Host:       shortened(req.Host),
			Path:       shortened(req.URL.Path),
			RemoteAddr: req.RemoteAddr,
			TLS:        req.TLS != nil,
		},
		Headers: inspectedHeaders{
			Upgrade:                shortened(h.Get("Upgrade")),
			Connection:             shortened(h.Get("Connection")),
			SecWebSocketKey:        h.Get("Sec-WebSocket-Key") != "",
			SecWebSocketVersion:    shortened(h.Get("Sec-WebSocket-Version")),
			SecWebSocketExtensions: shortened(h.Get("Sec-WebSocket-Extensions")),
			SecWebSocketProtocol:   shortened(h.Get("Sec-WebSocket-Protocol")),
			Origin:                 shortened(h.Get("Origin")),
			XForwardedFor:          shortened(h.Get("X-Forwarded-For")),
			XForwardedProto:        shortened(h.Get("X-Forwarded-Proto")),
			XForwardedHost:         shortened(h.Get("X-Forwarded-Host")),
			XForwardedPort:         shortened(h.Get("X-Forwarded-Port")),
			XRealIP:                shortened(h.Get("X-Real-Ip")),
			XFrappeSiteName:        shortened(h.Get("X-Frappe-Site-Name")),
			SecFetchSite:           shortened(h.Get("Sec-Fetch-Site")),
			CookiePresent:          h.Get("Cookie") != "",
		},
		Counters: g.counters.snapshot(),
		Verdict:  verdictFor(g, req),
	}
	answer.Query, answer.OtherQueryKeys = inspectedQuery(req.URL.RawQuery)
	if g.fallback {
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
func verdictFor(g *Guard, req *http.Request) inspectionVerdict {
	if g.fallback {
		return inspectionVerdict{
			Action: "reject", Repairs: []string{}, Status: g.fallbackStatus,
			Error: problemNoSocketIORoute.id, Detail: "fallback mode answers every Engine.IO request",
		}
	}
	eio := &engineIORequest{}
	eio.queryProblem = readEngineIOQuery(req.URL.RawQuery, eio)
	if p := findProblem(g, req, eio); p != nil {
		return inspectionVerdict{Action: "reject", Repairs: []string{}, Status: p.status, Error: p.id, Detail: describeRejection[p](g, req, eio), Hint: p.hint}
	}
	repairs, originWithheld := plannedRepairs(g, req, eio)
	if repairs == nil {
		repairs = []string{}
	}
	return inspectionVerdict{Action: "forward", Repairs: repairs, OriginNotSet: originWithheldReason(req, originWithheld)}
}

// engineIOQueryKeys are the query keys Engine.IO defines; the inspection
// shows their values (sid redacted) and only the names of all others.
var engineIOQueryKeys = []string{keyEIO, keyTransport, keySID, "t", "b64", keyJSONP}

// inspectedQuery reads a query for the inspection as the guard reads it
// (url.ParseQuery, within the same limits): the Engine.IO keys with their
// values, the others by name, sorted.
func inspectedQuery(rawQuery string) (engineIO map[string][]string, otherKeys []string) {
	// (Each result assigned before it is returned: Yaegi v0.16.1 returns an
	// append call's result into the wrong named result.)
	engineIO, otherKeys = map[string][]string{}, []string{}
	query := rawQuery
	if len(query) > maxQueryLength {
		otherKeys = append(otherKeys, fmt.Sprintf("(a %d-byte query: not read)", len(query)))
		return engineIO, otherKeys
	}
	query = strings.ReplaceAll(query, ";", "&")
	if strings.Count(query, "&") >= maxQueryPairs {
		otherKeys = append(otherKeys, fmt.Sprintf("(more than %d pairs: not read)", maxQueryPairs))
		return engineIO, otherKeys
	}
	values, err := url.ParseQuery(query) // at most 32 keys; a pair with a malformed escape is left out
	for key, vals := range values {
		switch {
		case key == keySID:
			for range vals {
				engineIO[key] = append(engineIO[key], "REDACTED")
			}
		case contains(engineIOQueryKeys, key):
			for _, v := range vals {
				engineIO[key] = append(engineIO[key], shortened(v))
			}
		default:
			otherKeys = append(otherKeys, shortened(key))
		}
	}
	sort.Strings(otherKeys)
	if err != nil {
		otherKeys = append(otherKeys, "(pairs with a malformed escape: not read)")
	}
	return engineIO, otherKeys
}

// wantsPrometheus: a Prometheus scrape (its Accept names text/plain) or
// ?format=prometheus asks for the counters in Prometheus' text format.
// Both are read in their first 1 KiB.
func wantsPrometheus(req *http.Request) bool {
	return strings.Contains(shortenedTo(req.Header.Get("Accept"), 1024), "text/plain") ||
		strings.Contains(shortenedTo(req.URL.RawQuery, 1024), "format=prometheus")
}

// serveMetrics writes every counter in Prometheus' text exposition format,
// labelled with the middleware's name (one instance per router).
func serveMetrics(g *Guard, rw http.ResponseWriter) {
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
	single("websocket_upgrades_total", "Websocket handshakes that ended in a 101 handed over.", c.WebsocketUpgrades)
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
