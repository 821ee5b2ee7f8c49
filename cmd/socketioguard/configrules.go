package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Statuses a configuration finding has besides pass and fail.
const (
	warn         = "warn"          // a risk the evidence does not prove (outside a known range)
	notEvaluated = "not-evaluated" // the evidence needed is not there; what would be needed says why
)

// finding is one line of the configuration part of the report: what
// Traefik's own configuration shows, with the evidence (router, rule,
// values), the public thread where there is one, and the fix.
type finding struct {
	ID       string   `json:"id"`
	Status   string   `json:"status"`
	Summary  string   `json:"summary"`
	Evidence []string `json:"evidence,omitempty"`
	Thread   string   `json:"thread,omitempty"`
	Fix      string   `json:"fix,omitempty"`
}

// configView is what the rules read: Traefik's configuration, and what the
// request steps learned about the site (its inspection answer, the server's
// pingInterval).
type configView struct {
	cfg     *traefikConfig
	version version
	// inspected is the guard's answer on the inspection path (nil: none).
	inspected *inspectAnswer
	// pingInterval is the Socket.IO server's, from the handshake (0: unknown).
	pingInterval time.Duration
	// scheme is how the doctor reached the site (http or https).
	scheme string
	// hijackFailedSteps: the doctor's own websocket handshakes (steps 4, 5)
	// were answered with Traefik's bare 500.
	hijackFailedSteps bool
	// guarded are the enabled routers with a socketioguard middleware in
	// guard mode, by name; router is the one the evidence says receives the
	// site's Engine.IO requests ("" when not proven).
	guarded []string
	router  string
}

// inspectAnswer is what the doctor reads of the guard's inspection answer.
type inspectAnswer struct {
	Middleware string `json:"middleware"`
	Mode       string `json:"mode"`
	Request    struct {
		Host string `json:"host"`
		TLS  bool   `json:"tls"`
	} `json:"request"`
	Headers struct {
		XForwardedProto string `json:"xForwardedProto"`
		XForwardedFor   string `json:"xForwardedFor"`
	} `json:"headers"`
	Counters struct {
		Diagnoses map[string]int `json:"diagnoses"`
	} `json:"counters"`
}

// configRule is one check of Traefik's configuration. Each returns at least
// one finding (pass when there is nothing to say), so a clean configuration
// shows every check green.
type configRule struct {
	id    string
	check func(v *configView) []finding
}

// configRules run in this order: which router first, since the others read it.
var configRules = []configRule{
	{"socketio-router", ruleSocketIORouter},
	{"middleware-not-found", ruleMiddlewareErrors},
	{"hijack-failed", ruleHijackFailed},
	{"no-stickiness", ruleStickiness},
	{"sticky-cookie-name", ruleStickyCookieName},
	{"retry-on-websocket", ruleRetry},
	{"h2c-websocket", ruleH2C},
	{"origin-without-host", ruleOriginWithoutHost},
	{"fallback-missing", ruleFallback},
	{"write-timeout", ruleWriteTimeout},
	{"forwarded-headers-untrusted", ruleForwardedHeaders},
}

func checkConfig(v *configView) []finding {
	v.version = parseVersion(v.cfg.Version)
	v.guarded = guardedRouters(v.cfg)
	if v.inspected != nil {
		// The guard named itself: its routers are guarded whatever its alias.
		for _, r := range enabledUsers(v.cfg, v.inspected.Middleware) {
			if !contains(v.guarded, r) {
				v.guarded = append(v.guarded, r)
			}
		}
		sort.Strings(v.guarded)
	}
	var out []finding
	for _, r := range configRules {
		for _, f := range r.check(v) {
			if f.ID == "" {
				f.ID = r.id
			}
			out = append(out, f)
		}
	}
	return out
}

// ---- which router ----

// ruleSocketIORouter decides the router by evidence only: the guard's
// inspection path answered naming its middleware, and Traefik's API says
// which routers use that middleware. Rules are never matched here.
func ruleSocketIORouter(v *configView) []finding {
	if len(v.guarded) == 0 {
		if others := otherPlugins(v.cfg); len(others) > 0 {
			return []finding{{Status: notEvaluated, ID: "guard-missing", Summary: "no enabled router uses a middleware recognisable as socketioguard in guard mode; plugin middlewares under other aliases are in use: " + strings.Join(others, ", "),
				Evidence: routersNaming(v.cfg, "/socket.io"),
				Fix:      "if one of these is the guard, set inspectPath on it and pass --inspect-path: its answer names it; otherwise add the guard to the router that sends /socket.io to the Socket.IO server (readme: Install)"}}
		}
		return []finding{{Status: fail, ID: "guard-missing", Summary: "no enabled router uses a socketioguard middleware in guard mode",
			Evidence: routersNaming(v.cfg, "/socket.io"),
			Fix:      "add the guard to the router that sends /socket.io to the Socket.IO server (readme: Install), e.g. middlewares: [sio-guard]"}}
	}
	if v.inspected == nil || v.inspected.Middleware == "" {
		return []finding{{Status: notEvaluated, Summary: "which router receives the site's /socket.io: no socketioguard inspection answered on this route",
			Evidence: describeRouters(v.cfg, v.guarded),
			Fix:      "set inspectPath (e.g. /socket.io/.guard) on the guard and pass the same --inspect-path: its answer names the middleware, and Traefik's API the routers using it"}}
	}
	users := enabledUsers(v.cfg, v.inspected.Middleware)
	switch len(users) {
	case 0:
		return []finding{{Status: notEvaluated, Summary: fmt.Sprintf("the guard answered as %s, which no enabled router of this Traefik uses: the site goes through another Traefik", v.inspected.Middleware)}}
	case 1:
		v.router = users[0]
		return []finding{{Status: pass, Summary: fmt.Sprintf("router %s receives the site's /socket.io (the guard %s answered on its inspection path; only this router uses it)", users[0], v.inspected.Middleware),
			Evidence: describeRouters(v.cfg, users)}}
	}
	return []finding{{Status: notEvaluated, Summary: fmt.Sprintf("the guard %s answered; routers %s use it: which one matched is not evaluated (rules are not matched here)", v.inspected.Middleware, strings.Join(users, ", ")),
		Evidence: describeRouters(v.cfg, users)}}
}

// ---- what Traefik itself reports ----

// ruleMiddlewareErrors: Traefik disables a router whose middleware does not
// exist, and says so on the router (the plugin alias mismatch is the most
// common install mistake); a middleware that failed to build carries its error.
func ruleMiddlewareErrors(v *configView) []finding {
	var out []finding
	for _, name := range sortedKeys(v.cfg.Routers) {
		r := v.cfg.Routers[name]
		for _, e := range r.Error {
			if strings.Contains(e, "does not exist") && strings.Contains(e, "middleware") {
				out = append(out, finding{Status: fail, Summary: fmt.Sprintf("router %s is %s: %s", name, r.Status, e),
					Evidence: describeRouters(v.cfg, []string{name}),
					Fix:      "the name under middlewares must be a middleware defined in the same provider (or name@provider); for the guard, the key under plugin: must be the alias of experimental.plugins / localPlugins in the static configuration (readme: Install)"})
			}
		}
	}
	for _, name := range sortedKeys(v.cfg.Middlewares) {
		m := v.cfg.Middlewares[name]
		if len(m.Error) > 0 {
			out = append(out, finding{Status: fail, ID: "middleware-error", Summary: fmt.Sprintf("middleware %s is %s: %s", name, m.Status, strings.Join(m.Error, "; ")),
				Fix: "Traefik's own error above names the key; for the guard, the readme's Options list what each key allows"})
		}
	}
	if len(out) == 0 {
		out = append(out, finding{Status: pass, Summary: "every router's middlewares exist and every middleware was built"})
	}
	return out
}

// ruleHijackFailed reads the guard's own count: a middleware on the router
// wraps the writer without http.Hijacker, and the websocket handshake fails.
func ruleHijackFailed(v *configView) []finding {
	if v.inspected == nil && !v.hijackFailedSteps {
		return []finding{{Status: notEvaluated, Summary: "a middleware that cannot pass a websocket: the guard's counters are read from its inspection answer, and none answered"}}
	}
	n := 0
	if v.inspected != nil {
		n = v.inspected.Counters.Diagnoses["hijack-failed"]
	}
	if n == 0 && !v.hijackFailedSteps {
		return []finding{{Status: pass, Summary: fmt.Sprintf("the guard %s counted no hijack-failed websocket handshake, and the doctor's own went through", v.inspected.Middleware)}}
	}
	var others []string
	if v.router != "" {
		for _, m := range v.cfg.Routers[v.router].Middlewares {
			if v.inspected == nil || m != v.inspected.Middleware {
				others = append(others, m)
			}
		}
	}
	summary := "the doctor's websocket handshakes got Traefik's bare 500 (steps 4 and 5, hijack-failed); the guard counted none on this Traefik"
	if n > 0 {
		summary = fmt.Sprintf("the guard %s counted %d websocket handshake(s) Traefik could not hand over (hijack-failed)", v.inspected.Middleware, n)
	}
	return []finding{{Status: fail, Summary: summary,
		Evidence: []string{"other middlewares on the router: " + listOrNone(others)},
		Thread:   "traefik/plugin-simplecache#23",
		Fix:      "one of the router's other middlewares wraps the response writer without http.Hijacker: take it off the Socket.IO router (or use a version that implements Hijack)"}}
}

// ---- load balancing ----

// ruleStickiness: a Socket.IO session lives in one server process; several
// servers need the sticky cookie (or hrw, which pins by client IP, v3.6+).
func ruleStickiness(v *configView) []finding {
	var out []finding
	for _, router := range v.guarded {
		svcName, svc, ok := serviceOf(v.cfg, router)
		if !ok {
			continue
		}
		switch {
		case svc.LoadBalancer != nil && len(svc.LoadBalancer.Servers) > 1 && !present(svc.LoadBalancer.Sticky) && svc.LoadBalancer.Strategy != "hrw":
			out = append(out, finding{Status: fail, Summary: fmt.Sprintf("router %s sends Socket.IO to service %s: %d servers, no sticky cookie (strategy %s)", router, svcName, len(svc.LoadBalancer.Servers), orDefault(svc.LoadBalancer.Strategy, "wrr")),
				Evidence: serverURLs(svc), Thread: "socketio/socket.io#4881",
				Fix: "add loadBalancer.sticky.cookie (e.g. name: sio_sticky, httpOnly: true) to the service, or strategy: hrw (Traefik v3.6+, pins by client IP); a poll that lands on another server is answered 400 Session ID unknown (the guard names it session-unknown)"})
		case svc.Weighted != nil && len(svc.Weighted.Services) > 1 && !present(svc.Weighted.Sticky):
			out = append(out, finding{Status: fail, Summary: fmt.Sprintf("router %s sends Socket.IO to weighted service %s over %d services without stickiness", router, svcName, len(svc.Weighted.Services)),
				Thread: "socketio/socket.io#4881",
				Fix:    "one Socket.IO backend per route (Traefik's Gateway API provider has no sticky sessions: use an IngressRoute or the file/Docker providers with a sticky cookie for several)"})
		}
	}
	if len(out) == 0 {
		out = append(out, finding{Status: pass, Summary: "every Socket.IO service has one server, a sticky cookie, or hrw"})
	}
	return out
}

// ruleStickyCookieName: the guard tells the causes of "Session ID unknown"
// apart by the service's sticky cookie; it learns Traefik's default name
// from the load balancer's own Set-Cookie, but a name set in the
// configuration only from its stickyCookie option — which must then be that
// name, or every refusal is named after a cookie the clients never carry.
func ruleStickyCookieName(v *configView) []finding {
	var out []finding
	for _, router := range v.guarded {
		svcName, svc, ok := serviceOf(v.cfg, router)
		if !ok || svc.LoadBalancer == nil || !present(svc.LoadBalancer.Sticky) {
			continue
		}
		var sticky struct {
			Cookie *struct {
				Name string `json:"name"`
			} `json:"cookie"`
		}
		if json.Unmarshal(svc.LoadBalancer.Sticky, &sticky) != nil || sticky.Cookie == nil {
			continue
		}
		for _, guard := range guardsOn(v.cfg, router) {
			m := guard.name
			given, _ := guard.conf["stickyCookie"].(string)
			switch {
			case given != "" && given != sticky.Cookie.Name:
				want := sticky.Cookie.Name
				if want == "" {
					want = "(none: Traefik's default, read by the guard itself)"
				}
				out = append(out, finding{Status: fail, Summary: fmt.Sprintf("router %s: %s has stickyCookie %q, service %s's sticky cookie is named %s", router, m, given, svcName, want),
					Fix: "give the guard's stickyCookie the service's loadBalancer.sticky.cookie.name, or leave it empty when the cookie has no name: otherwise every Session ID unknown is named session-unknown-no-sticky-cookie"})
			case given == "" && sticky.Cookie.Name != "":
				out = append(out, finding{Status: warn, Summary: fmt.Sprintf("router %s: service %s's sticky cookie is named %q and %s has no stickyCookie", router, svcName, sticky.Cookie.Name, m),
					Fix: fmt.Sprintf("set stickyCookie: %s on the guard: it then tells a client without the cookie from one whose replica lost its session (session-unknown-no-sticky-cookie, session-unknown-sticky-cookie)", sticky.Cookie.Name)})
			}
		}
	}
	if len(out) == 0 {
		out = append(out, finding{Status: pass, Summary: "the guard knows every Socket.IO service's sticky cookie (Traefik's default name, or its stickyCookie)"})
	}
	return out
}

// ---- Traefik versions with known websocket defects ----

// ruleRetry: since v3.3.4 retry runs inside the proxy; with a websocket it
// replays the upgrade and crashes Traefik (fixed in v3.7.8).
func ruleRetry(v *configView) []finding {
	var routers []string
	for _, r := range v.guarded {
		for _, m := range v.cfg.Routers[r].Middlewares {
			if mw, ok := v.cfg.Middlewares[qualify(m, r)]; ok && mw.Retry != nil {
				routers = append(routers, fmt.Sprintf("%s (middleware %s)", r, m))
			}
		}
	}
	if len(routers) == 0 {
		return []finding{{Status: pass, Summary: "no retry middleware on a Socket.IO router"}}
	}
	f := finding{Evidence: routers, Thread: "traefik/traefik#13513",
		Fix: "take the retry middleware off the Socket.IO router (a websocket cannot be retried), or upgrade Traefik to v3.7.8 or later"}
	switch {
	case v.version.known() && v.version.atLeast(3, 3, 4) && !v.version.atLeast(3, 7, 8):
		f.Status, f.Summary = fail, fmt.Sprintf("retry on a Socket.IO router, Traefik %s: a websocket closing can crash Traefik (affected: v3.3.4 to v3.7.7)", v.cfg.Version)
	case v.version.known() && v.version.atLeast(3, 7, 8):
		f.Status, f.Summary = pass, fmt.Sprintf("retry on a Socket.IO router, but Traefik %s has the fix of #13513 (v3.7.8)", v.cfg.Version)
		f.Fix = ""
	default:
		f.Status, f.Summary = warn, fmt.Sprintf("retry on a Socket.IO router, Traefik %s: outside the known affected range (v3.3.4 to v3.7.7); a websocket cannot be retried", orDefault(v.cfg.Version, "of unknown version"))
	}
	return []finding{f}
}

// ruleH2C: a service URL h2c:// answered every websocket upgrade with a 500
// (fixed in v3.6.22 and v3.7.6).
func ruleH2C(v *configView) []finding {
	var servers []string
	for _, r := range v.guarded {
		svcName, svc, _ := serviceOf(v.cfg, r)
		for _, u := range serverURLs(svc) {
			if strings.HasPrefix(u, "h2c://") {
				servers = append(servers, fmt.Sprintf("router %s → service %s: %s", r, svcName, u))
			}
		}
	}
	if len(servers) == 0 {
		return []finding{{Status: pass, Summary: "no h2c:// server behind a Socket.IO router"}}
	}
	f := finding{Evidence: servers, Thread: "traefik/traefik#7465",
		Fix: "use http:// for the Socket.IO server (Engine.IO speaks HTTP/1.1 and websockets), or upgrade Traefik to v3.6.22 / v3.7.6 or later"}
	switch {
	case v.version.known() && v.version.major == 3 && v.version.minor == 6 && v.version.patch < 22,
		v.version.known() && v.version.major == 3 && v.version.minor == 7 && v.version.patch < 6:
		f.Status, f.Summary = fail, fmt.Sprintf("h2c:// server behind a Socket.IO router, Traefik %s: every websocket upgrade is answered 500 (fixed in v3.6.22, v3.7.6)", v.cfg.Version)
	case v.version.known() && (v.version.atLeast(3, 8, 0) || (v.version.major == 3 && v.version.minor == 7) || (v.version.major == 3 && v.version.minor == 6)):
		f.Status, f.Summary, f.Fix = pass, fmt.Sprintf("h2c:// server behind a Socket.IO router, and Traefik %s has the fix of #7465", v.cfg.Version), ""
	default:
		f.Status, f.Summary = warn, fmt.Sprintf("h2c:// server behind a Socket.IO router, Traefik %s: outside the known range (v3.6 before v3.6.22, v3.7 before v3.7.6), websocket upgrades may be answered 500", orDefault(v.cfg.Version, "of unknown version"))
	}
	return []finding{f}
}

// ---- the guard's own configuration against its router ----

// ruleOriginWithoutHost: setMissingOrigin builds the Origin from Host, and
// Frappe calls that Origin back: a router matching any Host lets a client
// choose where the server calls.
func ruleOriginWithoutHost(v *configView) []finding {
	var out []finding
	for _, r := range v.guarded {
		router := v.cfg.Routers[r]
		if strings.Contains(router.Rule, "Host(") {
			continue
		}
		for _, guard := range guardsOn(v.cfg, r) {
			if truthy(guard.conf["setMissingOrigin"]) {
				out = append(out, finding{Status: fail, Summary: fmt.Sprintf("router %s runs %s with setMissingOrigin and its rule pins no Host()", r, guard.name),
					Evidence: describeRouters(v.cfg, []string{r}),
					Fix:      "add Host(`<your site>`) to the rule: the guard builds the Origin from Host, and Frappe calls that Origin back (readme: Security)"})
			}
		}
	}
	if len(out) == 0 {
		out = append(out, finding{Status: pass, Summary: "every router whose guard sets a missing Origin pins Host()"})
	}
	return out
}

// ruleFallback: routers on the Socket.IO router's entrypoints without the
// fallback answer a misrouted /socket.io with the web app's 404.
func ruleFallback(v *configView) []finding {
	entryPoints := map[string]bool{}
	for _, r := range v.guarded {
		for _, ep := range v.cfg.Routers[r].EntryPoints {
			entryPoints[ep] = true
		}
	}
	var without []string
	for _, name := range sortedKeys(v.cfg.Routers) {
		r := v.cfg.Routers[name]
		if r.Status != "enabled" || r.Provider == "internal" || contains(v.guarded, name) || !sharesAny(r.EntryPoints, entryPoints) {
			continue
		}
		hasFallback := false
		for _, guard := range guardsOn(v.cfg, name) {
			hasFallback = hasFallback || fmt.Sprint(guard.conf["mode"]) == "fallback"
		}
		if !hasFallback {
			without = append(without, fmt.Sprintf("%s: %s", name, r.Rule))
		}
	}
	if len(without) == 0 {
		return []finding{{Status: pass, Summary: "every other router on the Socket.IO entrypoints has the fallback"}}
	}
	return []finding{{Status: warn, Summary: fmt.Sprintf("%d other router(s) on the Socket.IO entrypoints without the fallback: if the Socket.IO router does not match a request (which of them would receive it is not evaluated: rules are not matched here), the client gets that router's answer, e.g. the web app's 404", len(without)),
		Evidence: without, Thread: "traefik/traefik#1936",
		Fix: "add a socketioguard middleware with mode: fallback to the web and catch-all routers: a misrouted Engine.IO request then gets 421 no-socketio-route with the rule to add"}}
}

// ---- timeouts ----

// ruleWriteTimeout: a long-poll is held up to pingInterval; an entrypoint
// writeTimeout below it cuts every held poll (readTimeout and idleTimeout
// cut neither). A serversTransport's responseHeaderTimeout would too, but
// Traefik's API does not show serversTransports.
func ruleWriteTimeout(v *configView) []finding {
	if v.pingInterval <= 0 {
		return []finding{{Status: notEvaluated, Summary: "entrypoint writeTimeout against pingInterval: the handshake gave no pingInterval"}}
	}
	var out []finding
	seen := map[string]bool{}
	for _, r := range v.guarded {
		for _, name := range v.cfg.Routers[r].EntryPoints {
			if seen[name] {
				continue
			}
			seen[name] = true
			ep := v.cfg.EntryPoints[name]
			d, err := time.ParseDuration(ep.Transport.RespondingTimeouts.WriteTimeout)
			if err == nil && d > 0 && d <= v.pingInterval {
				out = append(out, finding{Status: fail, Summary: fmt.Sprintf("entrypoint %s: writeTimeout %s is not above the Socket.IO server's pingInterval %s: a long-poll held that long never gets its answer (Traefik gives up writing it)", name, d, v.pingInterval),
					Evidence: []string{fmt.Sprintf("entryPoints.%s.transport.respondingTimeouts.writeTimeout: %s", name, d), "pingInterval (handshake): " + v.pingInterval.String()},
					Fix:      fmt.Sprintf("raise writeTimeout above pingInterval + pingTimeout, or set it to 0 (the default since Traefik v2.11.2/v3.0) on entrypoint %s", name)})
			}
		}
	}
	var transports []string
	for _, r := range v.guarded {
		svcName, svc, _ := serviceOf(v.cfg, r)
		if t := serversTransportOf(svc); t != "" {
			transports = append(transports, fmt.Sprintf("service %s: serversTransport %s", svcName, t))
		}
	}
	if len(transports) > 0 {
		out = append(out, finding{Status: notEvaluated, ID: "response-header-timeout", Summary: "a serversTransport's responseHeaderTimeout below pingInterval would cut long-polls (504), but Traefik's API does not show serversTransports",
			Evidence: transports, Fix: "check forwardingTimeouts.responseHeaderTimeout of these transports: 0 (the default) or above pingInterval + pingTimeout"})
	}
	if len(out) == 0 {
		out = append(out, finding{Status: pass, Summary: fmt.Sprintf("no entrypoint writeTimeout at or below pingInterval (%s)", v.pingInterval)})
	}
	return out
}

// ---- forwarded headers ----

// ruleForwardedHeaders: the doctor reached the site over https, yet the
// guard saw X-Forwarded-Proto http: a TLS-terminating hop in front whose
// forwarded headers Traefik does not trust (Origins built from them say http).
func ruleForwardedHeaders(v *configView) []finding {
	if v.inspected == nil {
		return []finding{{Status: notEvaluated, Summary: "forwarded headers of a hop in front: the guard's inspection answer shows what reached it, and none answered"}}
	}
	seen := v.inspected.Headers.XForwardedProto
	if v.scheme == "https" && seen == "http" && !v.inspected.Request.TLS {
		var eps []string
		if v.router != "" {
			for _, name := range v.cfg.Routers[v.router].EntryPoints {
				fh := v.cfg.EntryPoints[name].ForwardedHeaders
				eps = append(eps, fmt.Sprintf("entryPoints.%s.forwardedHeaders: trustedIPs %s, insecure %v", name, listOrNone(fh.TrustedIPs), fh.Insecure))
			}
		}
		return []finding{{Status: fail, Summary: "the site was reached over https, but the guard saw X-Forwarded-Proto: http: a hop in front terminates TLS and Traefik does not trust its forwarded headers",
			Evidence: append(eps, "X-Forwarded-For at the guard: "+orDefault(v.inspected.Headers.XForwardedFor, "none")),
			Thread:   "traefik/traefik#5533",
			Fix:      "set entryPoints.<name>.forwardedHeaders.trustedIPs to the front proxy's address (examples/nginx-front): Traefik then keeps its X-Forwarded-Proto, and the Origin the guard sets says https"}}
	}
	return []finding{{Status: pass, Summary: fmt.Sprintf("X-Forwarded-Proto at the guard (%s) matches how the site was reached (%s)", orDefault(seen, "none"), v.scheme)}}
}

// ---- helpers ----

// guardConfig is a middleware's socketioguard configuration: a plugin whose
// alias names the plugin, or whose keys are all the guard's options with at
// least one that only the guard has (another plugin's {logLevel: debug} is
// not the guard).
func guardConfig(m apiMiddleware) (map[string]any, bool) {
	for alias, conf := range m.Plugin {
		if strings.Contains(strings.ToLower(alias), "socketio") {
			return conf, true
		}
		all, own := true, false
		for k := range conf {
			all = all && guardOptions[k]
			own = own || guardOptions[k] && k != "mode" && k != "logLevel"
		}
		if all && own {
			return conf, true
		}
	}
	return nil, false
}

// guardOptions are the plugin's option names (readme: Options); mode and
// logLevel are names other plugins use too.
var guardOptions = map[string]bool{
	"paths": true, "mode": true, "eioVersions": true, "transports": true, "repairUpgrade": true, "normalizePath": true,
	"setMissingOrigin": true, "allowJSONP": true, "diagnoseResponses": true, "fallbackStatus": true, "logLevel": true, "inspectPath": true, "stickyCookie": true,
}

// otherPlugins are the plugin middlewares enabled routers use that are not
// recognisable as the guard (the guard under another alias, with an empty
// configuration, would be one of them).
func otherPlugins(c *traefikConfig) []string {
	var out []string
	for _, name := range sortedKeys(c.Middlewares) {
		m := c.Middlewares[name]
		if _, guard := guardConfig(m); len(m.Plugin) > 0 && !guard && len(enabledUsers(c, name)) > 0 {
			out = append(out, name)
		}
	}
	return out
}

// guardedRouters are the enabled routers with a guard-mode socketioguard middleware.
// routerGuard is a socketioguard middleware on a router: its name as the
// router lists it, and its configuration.
type routerGuard struct {
	name string
	conf map[string]any
}

// guardsOn are the socketioguard middlewares on a router (either mode), in
// the router's order.
func guardsOn(c *traefikConfig, router string) []routerGuard {
	var out []routerGuard
	for _, m := range c.Routers[router].Middlewares {
		if conf, ok := guardConfig(c.Middlewares[qualify(m, router)]); ok {
			out = append(out, routerGuard{m, conf})
		}
	}
	return out
}

// serviceOf is the service a router sends to: its qualified name, and
// whether Traefik's configuration has it.
func serviceOf(c *traefikConfig, router string) (string, apiService, bool) {
	name := qualify(c.Routers[router].Service, router)
	svc, ok := c.Services[name]
	return name, svc, ok
}

func guardedRouters(c *traefikConfig) []string {
	var out []string
	for _, name := range sortedKeys(c.Routers) {
		r := c.Routers[name]
		if r.Status != "enabled" {
			continue
		}
		for _, guard := range guardsOn(c, name) {
			if fmt.Sprint(guard.conf["mode"]) != "fallback" {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

func enabledUsers(c *traefikConfig, middleware string) []string {
	var out []string
	for _, r := range c.Middlewares[middleware].UsedBy {
		if c.Routers[r].Status == "enabled" {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out
}

func routersNaming(c *traefikConfig, path string) []string {
	var out []string
	for _, name := range sortedKeys(c.Routers) {
		if strings.Contains(c.Routers[name].Rule, path) {
			out = append(out, fmt.Sprintf("router %s (%s) has rule %s", name, c.Routers[name].Status, c.Routers[name].Rule))
		}
	}
	if len(out) == 0 {
		out = append(out, "no router's rule names "+path)
	}
	return out
}

func describeRouters(c *traefikConfig, names []string) []string {
	var out []string
	for _, n := range names {
		r := c.Routers[n]
		out = append(out, fmt.Sprintf("router %s: rule %s, entrypoints %s, middlewares %s, service %s", n, r.Rule, listOrNone(r.EntryPoints), listOrNone(r.Middlewares), r.Service))
	}
	return out
}

// qualify adds the provider of the router to a name that has none, as
// Traefik resolves it.
func qualify(name, router string) string {
	if strings.Contains(name, "@") {
		return name
	}
	_, provider, _ := strings.Cut(router, "@")
	return name + "@" + provider
}

func serverURLs(s apiService) []string {
	var out []string
	if s.LoadBalancer != nil {
		for _, srv := range s.LoadBalancer.Servers {
			if u, err := url.Parse(srv.URL); err == nil {
				u.User = nil
				out = append(out, u.String())
			}
		}
	}
	return out
}

func serversTransportOf(s apiService) string {
	if s.LoadBalancer == nil {
		return ""
	}
	return s.LoadBalancer.ServersTransport
}

func present(raw json.RawMessage) bool {
	s := strings.TrimSpace(string(raw))
	return s != "" && s != "null" && s != "{}"
}

func truthy(v any) bool {
	switch t := v.(type) {
	case bool:
		return t
	case string:
		b, _ := strconv.ParseBool(t)
		return b
	}
	return false
}

func sharesAny(list []string, set map[string]bool) bool {
	for _, v := range list {
		if set[v] {
			return true
		}
	}
	return false
}

func listOrNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	return strings.Join(list, ", ")
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// version is Traefik's release, "v3.7.13" (unknown for dev builds).
type version struct{ major, minor, patch int }

func parseVersion(s string) version {
	var v version
	s = strings.TrimPrefix(s, "v")
	parts := strings.SplitN(strings.SplitN(s, "-", 2)[0], ".", 3)
	if len(parts) != 3 {
		return version{}
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil {
			return version{}
		}
		*[]*int{&v.major, &v.minor, &v.patch}[i] = n
	}
	return v
}

func (v version) known() bool { return v.major > 0 }

func (v version) atLeast(major, minor, patch int) bool {
	if v.major != major {
		return v.major > major
	}
	if v.minor != minor {
		return v.minor > minor
	}
	return v.patch >= patch
}
