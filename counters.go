package socketioguard

import "sync/atomic"

// ---- Count: what the request path counts ----
//
// The request path increments these as it goes (an atomic add where it
// happens, or countNamed); the inspection and the Prometheus text
// (inspect.go) only read them.

// counters are per middleware instance (Traefik builds one per router).
// Every count is an atomic add (no lock on any request's way).
type counters struct {
	// Every Engine.IO request counts once, where the request path decides
	// what it is: a handshake it forwards in its own counter, any other
	// (a poll, a refusal, a preflight) in otherRequests. Their sum is the
	// inspection's engineIORequests: one atomic add per handshake, not two.
	otherRequests int64
	// The signal no proxy gives: how many clients get past long-polling.
	pollingHandshakes   int64 // polling handshakes (GET, no sid) forwarded
	websocketHandshakes int64 // websocket handshakes forwarded
	websocketUpgrades   int64 // … that ended in a 101 handed over
	websocketFailed     int64 // … answered without a 101 (refused, or the upgrade lost)
	// Repairs made, and the Origin repairs withheld (by reason).
	originRepairs, pathRepairs, upgradeRepairs     int64
	withheldJSONP, withheldFetchSite, withheldHost int64
	// byProblem counts each rejection and diagnosis (by problem.index).
	byProblem []int64
}

// The reasons a missing Origin is left missing, as counted
// (withheld["origin:<reason>"]) and logged.
const (
	withheldJSONP     = "jsonp"
	withheldFetchSite = "sec-fetch-site"
	withheldHost      = "host"
)

func newCounters() *counters {
	return &counters{byProblem: make([]int64, len(allProblems))}
}

// countNamed counts a repair made (by its name) or a missing Origin left
// missing (by the reason's name): each has a counter of its own.
func countNamed(c *counters, name string) {
	switch name {
	case repairOrigin:
		atomic.AddInt64(&c.originRepairs, 1)
	case repairPath:
		atomic.AddInt64(&c.pathRepairs, 1)
	case repairUpgrade:
		atomic.AddInt64(&c.upgradeRepairs, 1)
	case withheldJSONP:
		atomic.AddInt64(&c.withheldJSONP, 1)
	case withheldFetchSite:
		atomic.AddInt64(&c.withheldFetchSite, 1)
	case withheldHost:
		atomic.AddInt64(&c.withheldHost, 1)
	}
}
