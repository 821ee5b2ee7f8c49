package socketioguard

import (
	"net/http"
	"net/url"
	"strings"
)

// ---- Classify: what the request is ----
//
// The Engine.IO path, the query keys Engine.IO servers read, and the upgrade
// evidence.

// engineIORequest is what the guard reads from a request on an Engine.IO path:
// the query parameters Engine.IO servers check, and (judgeUpgrade) the
// upgrade evidence.
type engineIORequest struct {
	// missingSlash is true for "/socket.io" when the configured prefix is
	// "/socket.io/" (Engine.IO servers only answer the form with the slash).
	missingSlash bool

	// proven: the short way's polling expression, its sid group matched,
	// proved the query whole (a poll of an open session: EIO accepted,
	// polling, a sid, no JSONP, each key once); the fields below it are then
	// only transport and hasSID.
	proven bool
	// queryProblem: the query could not be read as the server will read it
	// (too long, too many parameters, a malformed escape); nil when read.
	queryProblem         *problem
	hasEIO, hasTransport bool
	eio, transport       string
	hasSIDKey            bool   // sid is in the query, perhaps empty
	hasSID               bool   // sid is in the query and not empty
	hasJSONP             bool   // j is in the query: JSONP polling
	ambiguousKey         string // an Engine.IO key the query carries twice

	// Upgrade evidence, as judgeUpgrade read it. Traefik's entrypoint has
	// already removed the headers named in Connection, and left Connection
	// (as "Upgrade") only when it asked for the upgrade and Upgrade is set.
	// usableUpgrade: Traefik's proxy will forward the request as a websocket
	// handshake (it needs both Upgrade and the Connection token).
	usableUpgrade     bool
	hasWebSocketProof bool // Sec-WebSocket-Key or -Version: end-to-end, survives proxies
	// handshakeFlaw says which part of an RFC 6455 handshake a request with
	// stripped upgrade headers lacks (noFlaw: it may be repaired), or that
	// Upgrade names another protocol; describeWebSocketHandshakeInvalid
	// words it (describeWebSocketHandshakeRequest the method and the body).
	handshakeFlaw int
}

// matchEngineIOPath reports which configured prefix a path belongs to: it
// starts with the prefix, or equals the prefix without its trailing slash.
// It reads no more of the path than the prefixes' length.
func matchEngineIOPath(prefixes []string, path string) (prefix string, missingSlash, ok bool) {
	for _, p := range prefixes {
		if strings.HasPrefix(path, p) {
			return p, false, true
		}
		if len(path) == len(p)-1 && strings.HasPrefix(p, path) {
			return p, true, true
		}
	}
	return "", false, false
}

// readEngineIORequest reads what the full way checks of an Engine.IO
// request. A poll of an open session whose query the short way's expression
// proves whole (its path took the full way: a repaired or longer one) is
// taken as proven, its query not read again: nothing in it to refuse.
func readEngineIORequest(g *Guard, req *http.Request, missingSlash bool) *engineIORequest {
	if query := req.URL.RawQuery; len(query) <= maxShortWayQuery {
		if polling := g.pollingQuery.FindStringSubmatchIndex(query); polling != nil && polling[2] >= 0 {
			return &engineIORequest{missingSlash: missingSlash, proven: true, transport: transportPolling, hasSID: true}
		}
	}
	eio := &engineIORequest{missingSlash: missingSlash}
	eio.queryProblem = readEngineIOQuery(req.URL.RawQuery, eio)
	return eio
}

// carriesEngineIOKeys: a client bundle's name with EIO, transport, sid or j
// in its query (however spelled) is an Engine.IO request all the same: a
// server with serveClient off hands it to Engine.IO. A query the guard
// cannot read counts as carrying them (it is then refused as unreadable).
func carriesEngineIOKeys(req *http.Request) bool {
	if req.URL.RawQuery == "" {
		return false
	}
	var r engineIORequest
	return readEngineIOQuery(req.URL.RawQuery, &r) != nil || r.hasEIO || r.hasTransport || r.hasSIDKey || r.hasJSONP
}

// readEngineIOQuery reads EIO, transport, sid and j the way the backend will
// see them: keys and values percent-decoded, "+" as space, "&" and ";" both
// separating pairs (Traefik forwards ";" as "&"), unknown parameters (the
// application's own) ignored. It returns the problem that keeps it from
// reading the query that way, or nil.
//
// A malformed escape ("%zz", a lone "%") is refused rather than read: servers
// read it differently (engine.io's URLSearchParams keeps the pair as
// written, Go's url.ParseQuery drops it), so the guard could check one pair
// and the server serve another; and reading it as engine.io does would take
// a loop over the query's bytes.
func readEngineIOQuery(rawQuery string, r *engineIORequest) *problem {
	if len(rawQuery) > maxQueryLength {
		return &problemQueryTooLong
	}
	query := rawQuery
	if strings.IndexByte(query, ';') >= 0 {
		query = strings.ReplaceAll(query, ";", "&")
	}
	if strings.Count(query, "&") >= maxQueryPairs {
		return &problemQueryTooLong
	}
	values, err := url.ParseQuery(query)
	if err != nil {
		return &problemQueryMalformed
	}
	setEngineIOKeys(r, values[keyEIO], values[keyTransport], values[keySID], values[keyJSONP])
	return nil
}

// setEngineIOKeys records the values found for each key.
func setEngineIOKeys(r *engineIORequest, eio, transport, sid, jsonp []string) {
	r.hasEIO = len(eio) > 0
	if r.hasEIO {
		r.eio = eio[0]
	}
	r.hasTransport = len(transport) > 0
	if r.hasTransport {
		r.transport = transport[0]
	}
	r.hasSIDKey = len(sid) > 0
	r.hasSID = r.hasSIDKey && sid[0] != "" // an empty sid is a handshake, as for Engine.IO
	r.hasJSONP = len(jsonp) > 0            // even empty: engine.io answers JSONP to "j="
	switch {
	case len(eio) > 1:
		r.ambiguousKey = keyEIO
	case len(transport) > 1:
		r.ambiguousKey = keyTransport
	case len(sid) > 1:
		r.ambiguousKey = keySID
	case len(jsonp) > 1:
		r.ambiguousKey = keyJSONP
	}
}
