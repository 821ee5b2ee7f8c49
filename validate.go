package socketioguard

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
)

// ---- Validate: refuse what cannot work ----
//
// A refusal is answered by the guard (answers.go) and never forwarded.

// findProblem returns the first problem that makes the request unusable for
// the Socket.IO server (or unsafe to pass on), or nil.
func findProblem(g *Guard, req *http.Request, eio *engineIORequest) *problem {
	switch {
	case eio.queryProblem != nil:
		return eio.queryProblem
	case eio.ambiguousKey != "":
		return &problemQueryAmbiguous
	case !eio.hasEIO && !eio.hasTransport:
		return &problemQueryMissing
	case eio.hasJSONP && !g.allowJSONP:
		return &problemJSONPRefused
	case !g.eioAccepted[eio.eio]: // missing, or not accepted
		return &problemEIOUnsupported
	case !g.transportAccepted[eio.transport]:
		return &problemTransportUnknown
	case !eio.hasSID && req.Method != http.MethodGet:
		return &problemBadHandshakeMethod
	case eio.transport == transportWebsocket:
		return judgeUpgrade(g, req, eio)
	}
	return nil
}

// judgeUpgrade reads a websocket handshake's upgrade headers as Traefik's
// proxy reads them (net/http/httputil's upgradeType) and returns the
// problem that keeps it from being forwarded as it is or repaired, or nil;
// what it read stays in r for the repair and the forwarding. A handshake
// with neither Upgrade nor Connection — stripped by a hop, the report's
// case — is judged by judgeStrippedUpgrade alone (one function each, so
// that each pays under Yaegi only for what it reads).
func judgeUpgrade(g *Guard, req *http.Request, r *engineIORequest) *problem {
	if h := req.Header; len(h["Connection"]) > 0 || len(h["Upgrade"]) > 0 {
		return judgeUpgradeHeaders(g, req, r)
	}
	return judgeStrippedUpgrade(g, req, r)
}

// judgeUpgradeHeaders: Connection must carry the upgrade token, and
// Upgrade's first line is the protocol asked for — forwarded as that one
// line, and answered 500 by the proxy when it is not printable ASCII. Only
// "websocket" itself counts as a websocket upgrade: what Traefik's proxy
// treats as one (its isWebSocketUpgrade) and what every websocket server
// accepts. Each read is bounded whatever the header's length.
func judgeUpgradeHeaders(g *Guard, req *http.Request, r *engineIORequest) *problem {
	asksUpgrade := false
	if connection := req.Header["Connection"]; len(connection) > 0 { // absent: no token, nothing too large
		token, tooLarge := connectionAsksUpgrade(connection) // two statements: Yaegi loses a tuple's second field
		if tooLarge {
			return &problemHeaderTooLarge // the rest unread
		}
		asksUpgrade = token
	}
	upgrade := req.Header.Get("Upgrade")
	isWebsocket := strings.EqualFold(upgrade, "websocket")
	r.usableUpgrade = asksUpgrade && isWebsocket
	switch {
	case r.usableUpgrade:
		return nil // nothing to repair: the server judges the handshake itself
	case upgrade != "" && !isWebsocket && req.ProtoMajor < 2: // another protocol (h2c, a list, a bad byte): never rewritten
		r.handshakeFlaw = flawUpgradeOther
		return &problemWebSocketHandshakeInvalid
	}
	return judgeStrippedUpgrade(g, req, r)
}

// judgeStrippedUpgrade: a websocket handshake without usable upgrade
// headers is repaired (nil) only where it proves what it was.
func judgeStrippedUpgrade(g *Guard, req *http.Request, r *engineIORequest) *problem {
	if req.ProtoMajor >= 2 { // websockets need HTTP/1.1 in Traefik (no RFC 8441)
		return &problemUpgradeImpossible
	}
	h := req.Header
	r.hasWebSocketProof = len(h["Sec-Websocket-Key"]) > 0 || len(h["Sec-Websocket-Version"]) > 0
	if !g.repairUpgrade || !r.hasWebSocketProof {
		return &problemUpgradeMissing
	}
	if r.handshakeFlaw = websocketHandshakeFlaw(req); r.handshakeFlaw != noFlaw {
		return flawProblems[r.handshakeFlaw]
	}
	return nil // repaired
}

// maxConnectionHeader bounds the Connection header the guard reads, in all
// its lines: Traefik's entrypoint leaves it as "Upgrade" (or a short list of
// the headers entryPoints.<name>.forwardedHeaders.connection keeps).
const maxConnectionHeader = 256

// connectionAsksUpgrade reports whether Connection carries the upgrade
// token as Traefik's proxy looks for it (httpguts.HeaderValuesContainsToken:
// in any line, comma-separated, spaces and tabs around, any case), or that it
// is longer than the guard reads (tooLarge).
func connectionAsksUpgrade(lines []string) (upgrade, tooLarge bool) {
	if len(lines) == 1 && strings.EqualFold(lines[0], "upgrade") {
		return true, false // what Traefik's entrypoint leaves
	}
	if len(lines) == 0 {
		return false, false
	}
	if len(lines) > 4 {
		return false, true
	}
	size := 0
	for _, line := range lines {
		size += len(line) + 1
	}
	if size > maxConnectionHeader {
		return false, true
	}
	return upgradeToken.MatchString(strings.Join(lines, ",")), false
}

var upgradeToken = regexp.MustCompile(`(?i)(?:^|,)[ \t]*upgrade[ \t]*(?:,|$)`)

// The parts of a websocket handshake a request can lack (handshakeFlaw).
const (
	noFlaw = iota
	flawUpgradeOther
	flawMethod
	flawVersion
	flawKeyCount
	flawKey
	flawBody
)

// websocketHandshakeFlaw checks that a request is shaped like the opening
// handshake of RFC 6455 (section 4.1), which every browser sends: GET,
// Sec-WebSocket-Version 13, a Sec-WebSocket-Key of 16 base64 bytes, no body.
// Only such a request may be turned back into an upgrade: anything else
// (a request with a body, say) would travel into the backend's websocket
// after the 101. It returns which part did not fit, or noFlaw.
func websocketHandshakeFlaw(req *http.Request) int {
	versions, keys := req.Header["Sec-Websocket-Version"], req.Header["Sec-Websocket-Key"]
	switch {
	case req.Method != http.MethodGet:
		return flawMethod
	case len(versions) != 1 || versions[0] != "13": // as browsers send it (the server has trimmed spaces and tabs)
		return flawVersion
	case len(keys) != 1:
		return flawKeyCount
	case len(keys[0]) != 24 || !webSocketKey.MatchString(keys[0]):
		return flawKey
	case !hasNoBody(req):
		return flawBody
	}
	return noFlaw
}

// flawBefore and flawAfter word each handshakeFlaw for the refusal's
// detail, around the lines of the header flawHeaders names as shownLines
// shows them. (Put together by concatenation, with no branch: fmt costs a
// refusal some twenty allocations under Yaegi, a branch some ten; the
// method's and the body's flaws, which no one header shows, are a problem
// of their own, whose words are describeWebSocketHandshakeRequest's.)
var (
	flawBefore = []string{
		flawUpgradeOther: "transport=websocket with another upgrade than websocket, which the guard does not rewrite: Upgrade ",
		flawVersion:      flawNotRestorable + "Sec-WebSocket-Version ",
		flawKeyCount:     flawNotRestorable + "Sec-WebSocket-Key ",
		flawKey:          flawNotRestorable + "Sec-WebSocket-Key ",
	}
	flawAfter = []string{
		flawUpgradeOther: " (a websocket handshake asks for exactly websocket)",
		flawVersion:      " (must be 13, once)",
		flawKeyCount:     " (must be one line)",
		flawKey:          " (must be 16 bytes in base64)",
	}
	flawHeaders = []string{flawUpgradeOther: "Upgrade", flawVersion: "Sec-Websocket-Version", flawKeyCount: "Sec-Websocket-Key", flawKey: "Sec-Websocket-Key"}
	// flawProblems: the problem of each flaw.
	flawProblems = []*problem{
		flawUpgradeOther: &problemWebSocketHandshakeInvalid, flawMethod: &problemWebSocketHandshakeRequest, flawVersion: &problemWebSocketHandshakeInvalid,
		flawKeyCount: &problemWebSocketHandshakeInvalid, flawKey: &problemWebSocketHandshakeInvalid, flawBody: &problemWebSocketHandshakeRequest,
	}
)

const flawNotRestorable = "transport=websocket without Upgrade/Connection, and not a websocket handshake the guard may restore: "

// webSocketKey is a Sec-WebSocket-Key of 16 bytes in base64, as the ws
// library (socket.io's websocket server) accepts it: 22 characters of the
// base64 alphabet and "==" (read only when it is 24 bytes long).
var webSocketKey = regexp.MustCompile(`^[+/0-9A-Za-z]{22}==$`)

// hasNoBody: no body, as the server read the request nor as its headers announce one.
func hasNoBody(req *http.Request) bool {
	contentLength := req.Header["Content-Length"]
	return req.ContentLength == 0 && len(req.TransferEncoding) == 0 && len(req.Header["Transfer-Encoding"]) == 0 &&
		(len(contentLength) == 0 || len(contentLength) == 1 && contentLength[0] == "0")
}

// describeRejection words each rejection's detail: the offending value and
// what is accepted (one function each: only the one that applies is built).
var describeRejection = map[*problem]func(*Guard, *http.Request, *engineIORequest) string{
	&problemQueryTooLong:              describeQueryTooLong,
	&problemQueryMalformed:            describeQueryMalformed,
	&problemQueryAmbiguous:            describeQueryAmbiguous,
	&problemJSONPRefused:              describeJSONPRefused,
	&problemQueryMissing:              describeQueryMissing,
	&problemEIOUnsupported:            describeEIOUnsupported,
	&problemTransportUnknown:          describeTransportUnknown,
	&problemBadHandshakeMethod:        describeBadHandshakeMethod,
	&problemHeaderTooLarge:            describeHeaderTooLarge,
	&problemUpgradeMissing:            describeUpgradeMissing,
	&problemWebSocketHandshakeInvalid: describeWebSocketHandshakeInvalid,
	&problemWebSocketHandshakeRequest: describeWebSocketHandshakeRequest,
	&problemUpgradeImpossible:         describeUpgradeImpossible,
}

func describeQueryTooLong(_ *Guard, req *http.Request, _ *engineIORequest) string {
	if len(req.URL.RawQuery) > maxQueryLength {
		return fmt.Sprintf("the query is %d bytes; the guard reads queries of up to %d bytes", len(req.URL.RawQuery), maxQueryLength)
	}
	return fmt.Sprintf("the query has more than %d pairs; the guard reads queries of up to %d pairs", maxQueryPairs, maxQueryPairs)
}

func describeQueryMalformed(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return fmt.Sprintf("the query has a %% not followed by two hexadecimal digits (query: %q)", redactedQuery(req.URL.RawQuery))
}

func describeQueryAmbiguous(_ *Guard, req *http.Request, eio *engineIORequest) string {
	return fmt.Sprintf("the query carries %s more than once (query: %q); engine.io reads the last value, python-engineio the first, and no Socket.IO client repeats it",
		eio.ambiguousKey, redactedQuery(req.URL.RawQuery))
}

func describeQueryMissing(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return fmt.Sprintf("%s %s arrived without EIO and transport in the query (query: %q)", shortened(req.Method), shortened(req.URL.Path), redactedQuery(req.URL.RawQuery))
}

func describeJSONPRefused(*Guard, *http.Request, *engineIORequest) string {
	return "the query has a j parameter (JSONP polling), which allowJSONP does not allow"
}

func describeEIOUnsupported(g *Guard, _ *http.Request, eio *engineIORequest) string {
	if !eio.hasEIO {
		return "EIO is missing; accepted: " + strings.Join(g.eioVersions, ", ")
	}
	return fmt.Sprintf("EIO %q is not one of %s", shortened(eio.eio), strings.Join(g.eioVersions, ", "))
}

func describeTransportUnknown(g *Guard, _ *http.Request, eio *engineIORequest) string {
	if !eio.hasTransport {
		return "transport is missing; accepted: " + strings.Join(g.transports, ", ")
	}
	return fmt.Sprintf("transport %q is not one of %s", shortened(eio.transport), strings.Join(g.transports, ", "))
}

func describeBadHandshakeMethod(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return shortened(req.Method) + " without sid; only GET may open a session"
}

func describeUpgradeImpossible(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return "transport=websocket over " + shortened(req.Proto)
}

func describeWebSocketHandshakeInvalid(_ *Guard, req *http.Request, eio *engineIORequest) string {
	return flawBefore[eio.handshakeFlaw] + shownLines(req.Header[flawHeaders[eio.handshakeFlaw]]) + flawAfter[eio.handshakeFlaw]
}

func describeWebSocketHandshakeRequest(_ *Guard, req *http.Request, eio *engineIORequest) string {
	if eio.handshakeFlaw == flawMethod {
		return flawNotRestorable + "method " + strconv.Quote(shortened(req.Method)) + " (a websocket handshake is a GET)"
	}
	return flawNotRestorable + "a request body (a websocket handshake has none)"
}
func describeHeaderTooLarge(_ *Guard, req *http.Request, _ *engineIORequest) string {
	return "Connection " + shownLines(req.Header["Connection"]) + " is longer than the guard reads (up to 4 lines and 256 bytes in all)"
}

func describeUpgradeMissing(_ *Guard, req *http.Request, eio *engineIORequest) string {
	detail := "transport=websocket with Upgrade " + shownLines(req.Header["Upgrade"]) + " and Connection " + shownLines(req.Header["Connection"])
	if !eio.hasWebSocketProof {
		return detail + ", and no Sec-WebSocket-Key/-Version that would prove a websocket handshake"
	}
	return detail + "; repairUpgrade is off, so the guard did not restore them"
}

// refuseEscapedPath answers a request whose path is an Engine.IO path only
// once decoded (/socket.io%2F…): Traefik forwards the path as it came, so
// engine.io would not take it as its own while a server that decodes the
// path (an ASGI python-engineio) would — the guard cannot check it as
// either, and no Socket.IO client escapes its path.
func refuseEscapedPath(g *Guard, rw http.ResponseWriter, req *http.Request) {
	atomic.AddInt64(&g.otherRequests, 1)
	detail := fmt.Sprintf("the path %q reads %q once decoded, but Traefik forwards it escaped", shortened(req.URL.RawPath), shortened(req.URL.Path))
	reject(g, rw, req, &problemPathEscaped, problemPathEscaped.status, detail, "")
}

// shownLines is how a header's lines are shown in a detail or a reason: the
// first, quoted and shortened, and how many more there are.
func shownLines(lines []string) string {
	if len(lines) == 0 {
		return `""`
	}
	first := lines[0]
	if len(first) > maxShownValue { // shortened, written out: one call less on a refusal's way
		first = first[:maxShownValue] + "…"
	}
	if len(lines) == 1 {
		return strconv.Quote(first)
	}
	return shownFirstOfMore(first, len(lines))
}

// shownFirstOfMore is shownLines' words for several lines (apart: a call
// costs every line shown under Yaegi, whether it has more or not).
func shownFirstOfMore(first string, lines int) string {
	return strconv.Quote(first) + " and " + strconv.Itoa(lines-1) + " more lines"
}

// rejectMisrouted answers an Engine.IO request that reached a router in
// fallback mode: the Socket.IO route is missing or has a lower priority.
func rejectMisrouted(g *Guard, rw http.ResponseWriter, req *http.Request) {
	host := shortened(req.Host)
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	}
	detail := fmt.Sprintf("%s %s for host %q reached a router that does not serve Socket.IO", shortened(req.Method), shortened(req.URL.Path), host)
	hint := fmt.Sprintf("add a router with rule Host(`%s`) && PathPrefix(`%s`) to the Socket.IO service, with a higher priority than the router that uses the middleware %s",
		host, strings.TrimSuffix(g.paths[0], "/"), g.name)
	reject(g, rw, req, &problemNoSocketIORoute, g.fallbackStatus, detail, hint)
}
