package socketioguard

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
)

// ---- Repair: restore what a hop stripped ----
//
// Only where the request proves what it was.

// plannedRepairs lists what applyRepairs will change, in the order of
// X-Socketio-Guard-Repaired, and why a missing Origin is left missing ("" when
// it is not). It changes nothing, so inspection can show it.
func plannedRepairs(g *Guard, req *http.Request, eio *engineIORequest) (repairs []string, originWithheld string) {
	if g.normalizePath && eio.missingSlash {
		repairs = append(repairs, repairPath)
	}
	if eio.transport == transportWebsocket && !eio.usableUpgrade { // judgeUpgrade found it repairable
		repairs = append(repairs, repairUpgrade)
	}
	if g.setMissingOrigin && !eio.hasSID && req.Header.Get("Origin") == "" {
		if originWithheld = originWithheldBecause(req, eio.hasJSONP); originWithheld == "" {
			repairs = append(repairs, repairOrigin)
		}
	}
	return repairs, originWithheld
}

// repairMissingOrigin is the Origin repair of a handshake on the short way,
// written out for its cost (352 allocations per polling handshake under
// Yaegi, against 430 through originWithheldBecause and repairOne, measured):
// the full way decides the same through plannedRepairs,
// originWithheldBecause and repairOne, and every scenario of the tables runs
// both ways. An Origin counts as missing when it is absent or empty (the
// server has trimmed spaces and tabs around it).
func repairMissingOrigin(g *Guard, rw http.ResponseWriter, req *http.Request) {
	if !g.setMissingOrigin || req.Header.Get("Origin") != "" {
		return
	}
	origin := originFor(req) // "" when Host is not a plain host
	if fetchSite, present := req.Header["Sec-Fetch-Site"]; origin == "" || present && (len(fetchSite) != 1 || fetchSite[0] != "same-origin") {
		withholdOrigin(g, req, originWithheldBecause(req, false))
		return
	}
	req.Header.Set("Origin", origin)
	atomic.AddInt64(&g.originRepairs, 1) // countNamed's own way for it, without the call
	if levelInfo <= g.log.level {
		g.log.event(levelInfo, "repaired-"+repairOrigin, req, repairHints[repairOrigin], "")
	}
	rw.Header().Set(headerRepaired, repairOrigin)
}

// originWithheldBecause says why a missing Origin must stay missing (one of
// the reasons counters.go names: withheldJSONP, withheldFetchSite,
// withheldHost), or "".
//
// The Origin the guard sets tells the Socket.IO server "this request comes
// from a page of this very site". That holds for a browser's same-origin
// request and says nothing new for a non-browser client (which can send any
// Origin itself). It must not be said of a request another site's page made
// a browser send with the victim's cookies (a <script>, <img> or navigation
// carries no Origin): browsers mark those with Sec-Fetch-Site, and JSONP is
// the way such a page would read the answer.
func originWithheldBecause(req *http.Request, jsonp bool) string {
	if jsonp {
		return withheldJSONP
	}
	if fetchSite, present := req.Header["Sec-Fetch-Site"]; present && (len(fetchSite) != 1 || fetchSite[0] != "same-origin") {
		return withheldFetchSite
	}
	if !isPlainHost(req.Host) {
		return withheldHost
	}
	return ""
}

// originWithheldReason words a withheld Origin's reason, for the log and the
// inspection (built only for them).
func originWithheldReason(req *http.Request, reason string) string {
	switch reason {
	case withheldJSONP:
		return "jsonp: a JSONP request is a script any page can include"
	case withheldFetchSite:
		fetchSite := req.Header["Sec-Fetch-Site"]
		return fmt.Sprintf("sec-fetch-site: the browser says the request comes from a %s page (Sec-Fetch-Site %s), not from this site's own",
			fetchSiteKind(fetchSite), shownLines(fetchSite))
	case withheldHost:
		return fmt.Sprintf("host: Host %q is not a plain host name or address", shortened(req.Host))
	}
	return ""
}

// fetchSiteKind names a Sec-Fetch-Site value for the log and the counters.
func fetchSiteKind(values []string) string {
	if len(values) == 1 {
		switch values[0] {
		case "same-site", "cross-site", "none":
			return values[0]
		}
	}
	return "unknown"
}

func applyRepairs(g *Guard, rw http.ResponseWriter, req *http.Request, repairs []string) {
	if len(repairs) == 0 {
		return
	}
	for _, repair := range repairs {
		repairOne(g, req, repair)
	}
	rw.Header().Set(headerRepaired, strings.Join(repairs, ","))
}

// repairOne makes one repair, counts and logs it.
func repairOne(g *Guard, req *http.Request, repair string) {
	switch repair {
	case repairPath:
		// Traefik's proxy re-reads RequestURI, so both must change
		// (as Traefik's own stripPrefix does). The query stays as sent.
		req.URL.Path += "/"
		if req.URL.RawPath != "" {
			req.URL.RawPath += "/"
		}
		req.RequestURI = req.URL.RequestURI()
	case repairUpgrade:
		req.Header.Set("Upgrade", "websocket")
		if upgrade, _ := connectionAsksUpgrade(req.Header["Connection"]); !upgrade {
			req.Header.Add("Connection", "Upgrade")
		}
	case repairOrigin:
		req.Header.Set("Origin", originFor(req))
	}
	countNamed(g.counters, repair)
	level := levelInfo
	if repair == repairUpgrade {
		level = levelWarn
	}
	if level <= g.log.level { // the event's words are built only when they are written
		g.log.event(level, "repaired-"+repair, req, repairHints[repair], "")
	}
}

// withholdOrigin records a missing Origin the guard did not set.
func withholdOrigin(g *Guard, req *http.Request, reason string) {
	countNamed(g.counters, reason)
	if levelInfo <= g.log.level {
		g.log.event(levelInfo, "origin-not-set", req, originWithheldReason(req, reason), "")
	}
}
