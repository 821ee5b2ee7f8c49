package socketioguard

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Config is the middleware's dynamic configuration. Traefik decodes it with
// mapstructure: keys match the field names case-insensitively, and label
// strings ("true", "421", "/socket.io/,/ws/") are converted to these types.
type Config struct {
	// Paths are the Engine.IO endpoint prefixes, each starting and ending with "/".
	Paths []string `json:"paths,omitempty"`
	// Mode is "guard" (on the Socket.IO router) or "fallback" (on routers that
	// must not receive Socket.IO traffic).
	Mode string `json:"mode,omitempty"`
	// EIOVersions are the accepted values of the EIO query parameter.
	EIOVersions []string `json:"eioVersions,omitempty"`
	// Transports are the accepted values of the transport query parameter.
	Transports []string `json:"transports,omitempty"`
	// RepairUpgrade restores Upgrade/Connection on websocket handshakes whose
	// Sec-WebSocket-* headers prove what they are.
	RepairUpgrade bool `json:"repairUpgrade,omitempty"`
	// NormalizePath turns "/socket.io?…" into "/socket.io/?…".
	NormalizePath bool `json:"normalizePath,omitempty"`
	// SetMissingOrigin sets Origin to <scheme>://<host> when a request has none.
	SetMissingOrigin bool `json:"setMissingOrigin,omitempty"`
	// AllowJSONP lets JSONP polling requests (a "j" query parameter) through.
	AllowJSONP bool `json:"allowJSONP,omitempty"`
	// DiagnoseResponses inspects the backend's answers to Engine.IO requests.
	DiagnoseResponses bool `json:"diagnoseResponses,omitempty"`
	// FallbackStatus is the status fallback mode answers Engine.IO requests with.
	FallbackStatus int `json:"fallbackStatus,omitempty"`
	// LogLevel is one of off, error, warn, info, debug.
	LogLevel string `json:"logLevel,omitempty"`
	// InspectPath, when set, is answered with a JSON description of the request.
	InspectPath string `json:"inspectPath,omitempty"`
	// StickyCookie is the name of the service's sticky cookie
	// (loadBalancer.sticky.cookie.name), read only to tell the causes of
	// "Session ID unknown" apart.
	StickyCookie string `json:"stickyCookie,omitempty"`
}

// CreateConfig returns the defaults; Traefik decodes the user's keys over them.
func CreateConfig() *Config {
	return &Config{
		Paths:             []string{"/socket.io/"},
		Mode:              modeGuard,
		EIOVersions:       []string{"3", "4"},
		Transports:        []string{transportPolling, transportWebsocket},
		RepairUpgrade:     true,
		NormalizePath:     true,
		SetMissingOrigin:  false,
		AllowJSONP:        false,
		DiagnoseResponses: true,
		FallbackStatus:    421,
		LogLevel:          "error",
		InspectPath:       "",
		StickyCookie:      "",
	}
}

const (
	modeGuard    = "guard"
	modeFallback = "fallback"

	transportPolling   = "polling"
	transportWebsocket = "websocket"
)

var (
	allowedModes       = []string{modeGuard, modeFallback}
	allowedEIOVersions = []string{"3", "4"}
	allowedTransports  = []string{transportPolling, transportWebsocket}
	allowedLogLevels   = []string{"off", "error", "warn", "info", "debug"}
)

// Guard is the middleware handler built by New.
type Guard struct {
	next http.Handler
	name string
	// settings and counters are embedded: their fields are read one
	// selector deep (g.pollingQuery, &g.otherRequests). Under Yaegi every
	// selector is a frame slot, allocated on every call of the function that
	// holds it (g.settings one of 208 bytes): 4 allocations fewer per poll
	// and 7 per polling handshake (measured, e2e/interpreted).
	settings
	*counters
	log *logger
	// inspections: the inspection's answers in the current second
	// (inspectionsPerSecond), under inspectionsMu.
	inspectionsMu sync.Mutex
	inspections   perSecondBudget
}

// settings is a validated Config, in the form ServeHTTP uses.
type settings struct {
	paths         []string
	shortWayPaths map[string]bool // guard mode: the paths a request may take the short way on
	clientBundles map[string]bool // the client bundles' names (socketIOClientBundles)
	// The queries the short way serves (see shortWayQuery), by transport,
	// when it is on (shortWayPaths), noQuery otherwise; websocketQuery is
	// also noQuery when websocket is not an accepted transport. Each
	// expression's first group is the sid pair: a polling query with it is
	// a poll, without it a polling handshake.
	pollingQuery, websocketQuery *regexp.Regexp
	// engineIOContentTypes: the Content-Types of Engine.IO's polling answers,
	// which the short way sends on without a second look.
	engineIOContentTypes map[string]bool
	commonPrefix         string // what every Engine.IO path and the inspect path start with
	fallback             bool
	eioVersions          []string
	transports           []string
	eioAccepted          map[string]bool // the same, for one lookup per request
	transportAccepted    map[string]bool
	repairUpgrade        bool
	normalizePath        bool
	setMissingOrigin     bool
	allowJSONP           bool
	diagnoseResponses    bool
	fallbackStatus       int
	logLevel             logLevel
	inspectPath          string
	stickyCookie         string
}

// validate turns a Config into settings, or explains the first bad key:
// which key, which value, what is allowed and what to do.
func validate(cfg *Config) (settings, error) {
	if cfg == nil {
		cfg = CreateConfig()
	}
	s := settings{
		repairUpgrade:     cfg.RepairUpgrade,
		normalizePath:     cfg.NormalizePath,
		setMissingOrigin:  cfg.SetMissingOrigin,
		allowJSONP:        cfg.AllowJSONP,
		diagnoseResponses: cfg.DiagnoseResponses,
		fallbackStatus:    cfg.FallbackStatus,
	}

	var err error
	if s.paths, err = validatePaths(cfg.Paths); err != nil {
		return s, err
	}

	switch mode := strings.TrimSpace(cfg.Mode); mode {
	case modeGuard:
	case modeFallback:
		s.fallback = true
	default:
		return s, fmt.Errorf("mode %q is not one of %s: use guard on the router that serves Socket.IO, fallback on routers that must not receive it", cfg.Mode, strings.Join(allowedModes, ", "))
	}

	if s.eioVersions, err = validateChoices("eioVersions", cfg.EIOVersions, allowedEIOVersions,
		"4 is Socket.IO v3/v4, 3 is Socket.IO v2 (a v4 server with allowEIO3)"); err != nil {
		return s, err
	}
	if s.transports, err = validateChoices("transports", cfg.Transports, allowedTransports,
		"webtransport never travels over HTTP/1.1 and cannot be guarded"); err != nil {
		return s, err
	}

	s.eioAccepted = setOf(s.eioVersions)
	s.transportAccepted = setOf(s.transports)

	if s.fallbackStatus < 400 || s.fallbackStatus > 599 {
		return s, fmt.Errorf("fallbackStatus %d is not an HTTP error status: use a number from 400 to 599 (default 421 Misdirected Request)", cfg.FallbackStatus)
	}

	level, ok := parseLogLevel(strings.TrimSpace(cfg.LogLevel))
	if !ok {
		return s, fmt.Errorf("logLevel %q is not one of %s", cfg.LogLevel, strings.Join(allowedLogLevels, ", "))
	}
	s.logLevel = level

	if s.inspectPath, err = validateInspectPath(cfg.InspectPath, s.paths); err != nil {
		return s, err
	}
	if s.stickyCookie, err = validateStickyCookie(cfg.StickyCookie); err != nil {
		return s, err
	}
	s.commonPrefix = commonPrefix(s.paths, s.inspectPath)
	s.clientBundles = setOf(socketIOClientBundles)
	// The short way's path lookup costs the same for a path of any length
	// only in a map of at most eight entries (Go compares a long key's length
	// before hashing it there); with more paths, every request takes the full way.
	// Without the short way its expressions match nothing (the full way
	// tries pollingQuery too: readEngineIORequest).
	s.pollingQuery, s.websocketQuery = noQuery, noQuery
	if !s.fallback && s.transportAccepted[transportPolling] && len(s.paths) <= 8 {
		s.shortWayPaths = setOf(s.paths)
		s.pollingQuery = shortWayQuery(s.eioVersions, transportPolling)
		s.websocketQuery = noQuery // websocket not accepted: the full way refuses it
		if s.transportAccepted[transportWebsocket] {
			s.websocketQuery = shortWayQuery(s.eioVersions, transportWebsocket)
		}
		s.engineIOContentTypes = setOf([]string{"text/plain; charset=UTF-8", "application/octet-stream"})
	}
	return s, nil
}

// validateStickyCookie: a cookie name as Traefik writes one (its
// sanitizeName keeps letters, digits and !#$%&'*+-.^_`|~ and turns anything
// else into _), at most 128 bytes.
func validateStickyCookie(raw string) (string, error) {
	name := strings.TrimSpace(raw)
	if name == "" || len(name) <= 128 && cookieName.MatchString(name) {
		return name, nil
	}
	return "", fmt.Errorf("stickyCookie %q is not a cookie name: give the service's loadBalancer.sticky.cookie.name as Traefik writes it (up to 128 letters, digits and !#$%%&'*+-.^_`|~; Traefik turns other characters into _), or leave it empty: Traefik's default name (_ and five hexadecimal digits) is then read from the load balancer's own Set-Cookie", raw)
}

var cookieName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")

func validatePaths(paths []string) ([]string, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("paths is empty: give at least one Engine.IO endpoint prefix, e.g. /socket.io/")
	}
	clean := make([]string, 0, len(paths))
	for i, raw := range paths {
		p := strings.TrimSpace(raw)
		switch {
		case p == "":
			return nil, fmt.Errorf("paths[%d] is empty: each path is an Engine.IO endpoint prefix such as /socket.io/", i)
		case !strings.HasPrefix(p, "/"):
			return nil, fmt.Errorf("paths[%d] %q must start with /: write /%s", i, raw, strings.TrimSuffix(p, "/")+"/")
		case !strings.HasSuffix(p, "/"):
			return nil, fmt.Errorf("paths[%d] %q must end with /: write %s/ (requests to %s are still recognised)", i, raw, p, p)
		case p == "/":
			return nil, fmt.Errorf("paths[%d] %q would treat every request as Engine.IO: use the Socket.IO server's path, e.g. /socket.io/", i, raw)
		case strings.ContainsAny(p, "?#* \t"):
			return nil, fmt.Errorf("paths[%d] %q is not a plain path prefix: no query, fragment, wildcard or space", i, raw)
		case !plainPath.MatchString(p):
			return nil, fmt.Errorf("paths[%d] %q has characters a client must escape (or a %%): write the path with letters, digits and - . _ ~ / : @ $ & + , ; = only (the characters a path carries unescaped)", i, raw)
		}
		clean = append(clean, p)
	}
	return clean, nil
}

// validateChoices checks a list option against its allowed values.
func validateChoices(key string, values, allowed []string, why string) ([]string, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("%s is empty: allowed values are %s", key, strings.Join(allowed, ", "))
	}
	clean := make([]string, 0, len(values))
	for i, raw := range values {
		v := strings.TrimSpace(raw)
		if !contains(allowed, v) {
			return nil, fmt.Errorf("%s[%d] %q is not one of %s (%s)", key, i, raw, strings.Join(allowed, ", "), why)
		}
		clean = append(clean, v)
	}
	return clean, nil
}

// plainPath: a path Traefik forwards as it reads (nothing in it is escaped),
// so that a request's path starts with it both decoded and as forwarded.
var plainPath = regexp.MustCompile(`^[A-Za-z0-9._~/:@$&+,;=-]+$`)

func validateInspectPath(raw string, paths []string) (string, error) {
	p := strings.TrimSpace(raw)
	if p == "" {
		return "", nil
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#* \t") {
		return "", fmt.Errorf("inspectPath %q must be a plain absolute path such as /socket.io/.guard (or empty to turn inspection off)", raw)
	}
	for i, engineIOPath := range paths {
		if p == engineIOPath || p == strings.TrimSuffix(engineIOPath, "/") {
			return "", fmt.Errorf("inspectPath %q is the Engine.IO path paths[%d] %q, so it would answer every Socket.IO handshake: use a path of its own, e.g. %s.guard", raw, i, engineIOPath, engineIOPath)
		}
	}
	return p, nil
}

// commonPrefix is the longest prefix shared by the paths (each without its
// trailing slash, since "/socket.io" is recognised too) and the inspect path.
func commonPrefix(paths []string, inspectPath string) string {
	prefix := strings.TrimSuffix(paths[0], "/")
	candidates := append([]string{}, paths...)
	if inspectPath != "" {
		candidates = append(candidates, inspectPath)
	}
	for _, p := range candidates {
		for !strings.HasPrefix(p, prefix) {
			prefix = prefix[:len(prefix)-1]
		}
	}
	return prefix
}

func setOf(list []string) map[string]bool {
	set := make(map[string]bool, len(list))
	for _, v := range list {
		set[v] = true
	}
	return set
}

func contains(list []string, v string) bool {
	for _, item := range list {
		if item == v {
			return true
		}
	}
	return false
}

// socketIOClientBundles are the files the Socket.IO 4 server serves under its
// own path when serveClient is on (socket.io/dist/index.js, CLIENT_FILES):
// plain downloads, not Engine.IO requests. Any other name under the path
// goes to Engine.IO, which reads its query as usual. (Eight names: a Go map
// of at most eight entries compares a long key's length before hashing it.)
var socketIOClientBundles = []string{
	"socket.io.js", "socket.io.js.map",
	"socket.io.min.js", "socket.io.min.js.map",
	"socket.io.esm.min.js", "socket.io.esm.min.js.map",
	"socket.io.msgpack.min.js", "socket.io.msgpack.min.js.map",
}

// The guard reads a query whole, to know every key the server will read,
// with one compiled call (url.ParseQuery), whose work grows with the query's
// length and its allocations with its pairs. Longer queries, or with more
// pairs, are refused unread (query-too-long): Socket.IO clients send under
// 100 bytes in 3 to 5 pairs, and Node's HTTP server refuses a request line
// and headers over 16 KiB anyway. (The short way's queries, of at most
// maxShortWayQuery bytes, cannot hold more pairs than this: it need not
// count them.)
const (
	maxQueryLength = 4096
	maxQueryPairs  = 64
)

// maxShortWayQuery bounds the queries the short way matches: the
// expression's work grows with the query (socket.io-client sends under 100
// bytes); longer ones take the full way. A query this long holds at most
// maxQueryPairs pairs (no pair is empty): the short way need not count them.
const maxShortWayQuery = 2 * maxQueryPairs

// shortWayQuery builds the regular expression of the queries the short way
// serves without reading them: EIO (an accepted version) and then transport
// (this one) as consecutive pairs, as socket.io-client sends them; a sid of
// Engine.IO's own alphabet after them, or none (the expression's first
// group: a poll of an open session, or the websocket upgrade of one, has
// it, a polling handshake or a direct websocket has not); any other
// parameters around them whose keys are none of Engine.IO's (EIO,
// transport, sid, j), written without escapes or "+" so that they decode to
// themselves, and whose values hold no malformed escape (the full way
// refuses those). No ";" (Traefik forwards it as "&") and no empty pair.
// Every query it accepts carries each Engine.IO key at most once, exactly
// as the full way would read it (TestShortWayQueries, FuzzShortWayQuery);
// anything else takes the full way.
//
// One expression per transport, its sid pair a group, so that a polling
// handshake is recognised by one match as a poll is: with an expression
// for each, the one tried first failing cost the other kind a compiled
// call under Yaegi (measured: bench/lean-short-way.md).
//
// New runs on every configuration reload, once per router: the expressions
// are compiled once per interpreter and kept (one per list of EIO versions
// as configured, and transport).
func shortWayQuery(eioVersions []string, transport string) *regexp.Regexp {
	versions := make([]string, len(eioVersions))
	for i, v := range eioVersions {
		versions[i] = regexp.QuoteMeta(v)
	}
	key := fmt.Sprint(versions, transport)
	shortWayQueries.Lock()
	defer shortWayQueries.Unlock()
	if compiled := shortWayQueries.compiled[key]; compiled != nil {
		return compiled
	}
	other := `(?:` + keyOtherThan([]string{keyEIO, keyTransport, keySID, keyJSONP}, false) + `)(?:=(?:[^&;#%]|%[0-9A-Fa-f]{2})*)?`
	protocol := `EIO=(?:` + strings.Join(versions, "|") + `)&transport=` + regexp.QuoteMeta(transport)
	rest := `(?:&` + other + `)*`
	compiled := regexp.MustCompile(`^(?:` + other + `&)*` + protocol + rest + `(&sid=[A-Za-z0-9_-]+` + rest + `)?$`)
	shortWayQueries.compiled[key] = compiled
	return compiled
}

// noQuery matches no query (no byte is outside every byte): the short way's
// websocketQuery when websocket is not an accepted transport, so that the
// short way needs no nil check.
var noQuery = regexp.MustCompile(`[^\x00-\x{10FFFF}]`)

// shortWayQueries are the compiled expressions, by EIO versions and
// transport.
var shortWayQueries = struct {
	sync.Mutex
	compiled map[string]*regexp.Regexp
}{compiled: map[string]*regexp.Regexp{}}

// shortWayKeyChars are the characters of a query key the short way reads
// as it stands.
const shortWayKeyChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.~-"

// keyOtherThan is the expression of a key of shortWayKeyChars that is none
// of words (nor empty, at the top): a trie of the words' letters, since RE2
// has no look-ahead. Below the top, a key may end where no word does.
func keyOtherThan(words []string, below bool) string {
	rests := map[byte][]string{}
	endsHere := false
	for _, w := range words {
		if w == "" {
			endsHere = true
			continue
		}
		rests[w[0]] = append(rests[w[0]], w[1:])
	}
	var firsts []byte
	for c := range rests {
		firsts = append(firsts, c)
	}
	sort.Slice(firsts, func(i, j int) bool { return firsts[i] < firsts[j] })
	var alternatives []string
	if below && !endsHere {
		alternatives = append(alternatives, "") // the key may end here
	}
	other := ""
	for i := 0; i < len(shortWayKeyChars); i++ {
		if _, starts := rests[shortWayKeyChars[i]]; !starts {
			other += regexp.QuoteMeta(shortWayKeyChars[i : i+1])
		}
	}
	alternatives = append(alternatives, "["+other+"]["+regexp.QuoteMeta(shortWayKeyChars)+"]*")
	for _, c := range firsts {
		alternatives = append(alternatives, regexp.QuoteMeta(string(c))+"(?:"+keyOtherThan(rests[c], true)+")")
	}
	return strings.Join(alternatives, "|")
}
