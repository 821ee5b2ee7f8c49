package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// healthyConfig is a Traefik configuration as /api/rawdata and
// /api/entrypoints serve it: the report's deployment done right (the guard
// with Host() pinned, a sticky service of two servers, the web router with
// the fallback), which every rule passes.
func healthyConfig(t *testing.T) *traefikConfig {
	t.Helper()
	raw := `{
  "routers": {
    "sio@file": {"entryPoints": ["websecure"], "middlewares": ["frappe-site", "sio-guard"], "service": "sio", "rule": "Host(` + "`v2.sysmayal.cloud`" + `) && PathPrefix(` + "`/socket.io`" + `)", "status": "enabled"},
    "web@file": {"entryPoints": ["websecure"], "middlewares": ["sio-fallback"], "service": "web", "rule": "Host(` + "`v2.sysmayal.cloud`" + `)", "status": "enabled"},
    "api@internal": {"entryPoints": ["traefik"], "service": "api@internal", "rule": "PathPrefix(` + "`/api`" + `)", "status": "enabled"}
  },
  "middlewares": {
    "frappe-site@file": {"headers": {}, "status": "enabled", "usedBy": ["sio@file"]},
    "sio-guard@file": {"plugin": {"socketioguard": {"setMissingOrigin": "true", "inspectPath": "/socket.io/.guard", "stickyCookie": "sio_sticky"}}, "status": "enabled", "usedBy": ["sio@file"]},
    "sio-fallback@file": {"plugin": {"socketioguard": {"mode": "fallback"}}, "status": "enabled", "usedBy": ["web@file"]}
  },
  "services": {
    "sio@file": {"loadBalancer": {"servers": [{"url": "http://10.0.0.1:9000"}, {"url": "http://10.0.0.2:9000"}], "sticky": {"cookie": {"name": "sio_sticky"}}, "strategy": "wrr"}, "status": "enabled", "usedBy": ["sio@file"]},
    "web@file": {"loadBalancer": {"servers": [{"url": "http://10.0.0.3:8000"}]}, "status": "enabled", "usedBy": ["web@file"]}
  }
}`
	var c traefikConfig
	var data struct {
		Routers     map[string]apiRouter     `json:"routers"`
		Middlewares map[string]apiMiddleware `json:"middlewares"`
		Services    map[string]apiService    `json:"services"`
	}
	if err := json.Unmarshal([]byte(raw), &data); err != nil {
		t.Fatal(err)
	}
	c.Routers, c.Middlewares, c.Services = data.Routers, data.Middlewares, data.Services
	for name, r := range c.Routers {
		_, r.Provider, _ = strings.Cut(name, "@")
		c.Routers[name] = r
	}
	c.Version = "v3.7.13"
	c.EntryPoints = map[string]apiEntryPoint{"websecure": {Name: "websecure"}, "traefik": {Name: "traefik"}}
	return &c
}

func healthyInspection() *inspectAnswer {
	a := &inspectAnswer{Middleware: "sio-guard@file", Mode: "guard"}
	a.Headers.XForwardedProto = "https"
	a.Request.TLS = true
	return a
}

func TestConfigRules(t *testing.T) {
	cases := []struct {
		name   string
		change func(c *traefikConfig, v *configView)
		id     string // the finding expected ...
		status string // ... with this status
		says   string // ... saying this
	}{
		{"the guard's inspection names the router", nil, "socketio-router", pass, "router sio@file receives"},
		{"no guard on any router", func(c *traefikConfig, v *configView) {
			delete(c.Middlewares, "sio-guard@file")
			r := c.Routers["sio@file"]
			r.Middlewares = []string{"frappe-site"}
			c.Routers["sio@file"] = r
			v.inspected = nil
		}, "guard-missing", fail, "no enabled router uses a socketioguard middleware"},
		{"another plugin with a generic option is not taken for the guard", func(c *traefikConfig, v *configView) {
			delete(c.Middlewares, "sio-guard@file")
			c.Middlewares["ratelimit@file"] = apiMiddleware{Plugin: map[string]map[string]any{"ratelimit": {"logLevel": "debug"}}, Status: "enabled", UsedBy: []string{"sio@file"}}
			r := c.Routers["sio@file"]
			r.Middlewares = []string{"frappe-site", "ratelimit"}
			c.Routers["sio@file"] = r
			v.inspected = nil
		}, "guard-missing", notEvaluated, "plugin middlewares under other aliases are in use: ratelimit@file"},
		{"the guard under another alias, named by its inspection", func(c *traefikConfig, v *configView) {
			m := c.Middlewares["sio-guard@file"]
			m.Plugin = map[string]map[string]any{"edgeguard": {}}
			c.Middlewares["sio-guard@file"] = m
		}, "socketio-router", pass, "router sio@file receives"},
		{"no inspection answer: the router is not guessed", func(c *traefikConfig, v *configView) { v.inspected = nil }, "socketio-router", notEvaluated, "no socketioguard inspection answered"},
		{"the guard's middleware on two routers", func(c *traefikConfig, v *configView) {
			c.Routers["sio2@file"] = apiRouter{EntryPoints: []string{"websecure"}, Middlewares: []string{"sio-guard"}, Service: "sio", Rule: "Host(`other`)", Status: "enabled", Provider: "file"}
			m := c.Middlewares["sio-guard@file"]
			m.UsedBy = append(m.UsedBy, "sio2@file")
			c.Middlewares["sio-guard@file"] = m
		}, "socketio-router", notEvaluated, "which one matched is not evaluated"},
		{"the plugin alias mismatch", func(c *traefikConfig, v *configView) {
			c.Routers["sio@file"] = apiRouter{EntryPoints: []string{"websecure"}, Middlewares: []string{"sio-gaurd"}, Service: "sio", Rule: "PathPrefix(`/socket.io`)", Status: "disabled",
				Error: []string{`middleware "sio-gaurd@file" does not exist`}, Provider: "file"}
		}, "middleware-not-found", fail, `middleware "sio-gaurd@file" does not exist`},
		{"a middleware Traefik could not build", func(c *traefikConfig, v *configView) {
			m := c.Middlewares["sio-guard@file"]
			m.Status, m.Error = "disabled", []string{"plugin: unknown plugin type: socketioguard"}
			c.Middlewares["sio-guard@file"] = m
		}, "middleware-error", fail, "unknown plugin type"},
		{"hijack-failed counted by the guard", func(c *traefikConfig, v *configView) {
			v.inspected.Counters.Diagnoses = map[string]int{"hijack-failed": 2}
		}, "hijack-failed", fail, "counted 2 websocket handshake(s)"},
		{"hijack-failed seen by the doctor's steps only, no inspection", func(c *traefikConfig, v *configView) {
			v.inspected, v.hijackFailedSteps = nil, true
		}, "hijack-failed", fail, "the guard counted none"},
		{"the guard's stickyCookie is not the service's cookie", func(c *traefikConfig, v *configView) {
			c.Middlewares["sio-guard@file"].Plugin["socketioguard"]["stickyCookie"] = "sio_replica"
		}, "sticky-cookie-name", fail, `has stickyCookie "sio_replica", service sio@file's sticky cookie is named sio_sticky`},
		{"a named sticky cookie the guard is not told", func(c *traefikConfig, v *configView) {
			delete(c.Middlewares["sio-guard@file"].Plugin["socketioguard"], "stickyCookie")
		}, "sticky-cookie-name", warn, `sticky cookie is named "sio_sticky" and sio-guard has no stickyCookie`},
		{"Traefik's default cookie name needs no option", func(c *traefikConfig, v *configView) {
			delete(c.Middlewares["sio-guard@file"].Plugin["socketioguard"], "stickyCookie")
			s := c.Services["sio@file"]
			s.LoadBalancer.Sticky = json.RawMessage(`{"cookie": {}}`)
			c.Services["sio@file"] = s
		}, "sticky-cookie-name", pass, "the guard knows every Socket.IO service's sticky cookie"},
		{"two servers without stickiness", func(c *traefikConfig, v *configView) {
			s := c.Services["sio@file"]
			s.LoadBalancer.Sticky = nil
			c.Services["sio@file"] = s
		}, "no-stickiness", fail, "2 servers, no sticky cookie"},
		{"two servers with hrw", func(c *traefikConfig, v *configView) {
			s := c.Services["sio@file"]
			s.LoadBalancer.Sticky, s.LoadBalancer.Strategy = nil, "hrw"
			c.Services["sio@file"] = s
		}, "no-stickiness", pass, "hrw"},
		{"a Gateway API route over two backends", func(c *traefikConfig, v *configView) {
			raw := `{"weighted": {"services": [{"name": "frappe-socketio-a", "weight": 1}, {"name": "frappe-socketio-b", "weight": 1}]}, "status": "enabled"}`
			var svc apiService
			_ = json.Unmarshal([]byte(raw), &svc)
			c.Services["sio@file"] = svc
		}, "no-stickiness", fail, "weighted service sio@file over 2 services"},
		{"retry on the router, v3.6.12", func(c *traefikConfig, v *configView) { addRetry(c); c.Version = "v3.6.12" }, "retry-on-websocket", fail, "can crash Traefik"},
		{"retry on the router, v3.7.13 (fixed)", func(c *traefikConfig, v *configView) { addRetry(c) }, "retry-on-websocket", pass, "has the fix"},
		{"retry on the router, v2.11.54 (outside the range)", func(c *traefikConfig, v *configView) { addRetry(c); c.Version = "v2.11.54" }, "retry-on-websocket", warn, "outside the known affected range"},
		{"h2c:// server, v3.7.5", func(c *traefikConfig, v *configView) { h2c(c); c.Version = "v3.7.5" }, "h2c-websocket", fail, "answered 500"},
		{"h2c:// server, v3.6.22 (fixed)", func(c *traefikConfig, v *configView) { h2c(c); c.Version = "v3.6.22" }, "h2c-websocket", pass, "has the fix"},
		{"h2c:// server, v2.11.54", func(c *traefikConfig, v *configView) { h2c(c); c.Version = "v2.11.54" }, "h2c-websocket", warn, "outside the known range"},
		{"setMissingOrigin without Host()", func(c *traefikConfig, v *configView) {
			r := c.Routers["sio@file"]
			r.Rule = "PathPrefix(`/socket.io`)"
			c.Routers["sio@file"] = r
		}, "origin-without-host", fail, "pins no Host()"},
		{"a web router without the fallback", func(c *traefikConfig, v *configView) {
			r := c.Routers["web@file"]
			r.Middlewares = nil
			c.Routers["web@file"] = r
		}, "fallback-missing", warn, "web@file: Host("},
		{"writeTimeout below pingInterval", func(c *traefikConfig, v *configView) {
			ep := c.EntryPoints["websecure"]
			ep.Transport.RespondingTimeouts.WriteTimeout = "10s"
			c.EntryPoints["websecure"] = ep
		}, "write-timeout", fail, "writeTimeout 10s is not above"},
		{"a serversTransport Traefik's API does not show", func(c *traefikConfig, v *configView) {
			s := c.Services["sio@file"]
			raw, _ := json.Marshal(s.LoadBalancer)
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			m["serversTransport"] = "short@file"
			raw, _ = json.Marshal(map[string]any{"loadBalancer": m})
			var svc apiService
			_ = json.Unmarshal(raw, &svc)
			c.Services["sio@file"] = svc
		}, "response-header-timeout", notEvaluated, "serversTransport short@file"},
		{"https outside, http at the guard", func(c *traefikConfig, v *configView) {
			v.inspected.Headers.XForwardedProto, v.inspected.Request.TLS = "http", false
		}, "forwarded-headers-untrusted", fail, "Traefik does not trust its forwarded headers"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := healthyConfig(t)
			v := &configView{cfg: cfg, inspected: healthyInspection(), pingInterval: 25 * time.Second, scheme: "https"}
			if c.change != nil {
				c.change(cfg, v)
			}
			findings := checkConfig(v)
			for _, f := range findings {
				if f.ID == c.id && f.Status == c.status && strings.Contains(strings.Join(append([]string{f.Summary}, f.Evidence...), "\n"), c.says) {
					return
				}
			}
			t.Errorf("no %s finding %s saying %q in:\n%s", c.status, c.id, c.says, dumpFindings(findings))
		})
	}
}

// TestHealthyConfigIsAllGreen: the healthy deployment passes every rule.
func TestHealthyConfigIsAllGreen(t *testing.T) {
	v := &configView{cfg: healthyConfig(t), inspected: healthyInspection(), pingInterval: 25 * time.Second, scheme: "https"}
	findings := checkConfig(v)
	if len(findings) < len(configRules) {
		t.Errorf("%d findings for %d rules", len(findings), len(configRules))
	}
	for _, f := range findings {
		if f.Status != pass {
			t.Errorf("healthy configuration: %s", dumpFindings([]finding{f}))
		}
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]version{"v3.7.13": {3, 7, 13}, "v2.11.54": {2, 11, 54}, "3.6.0-rc1": {3, 6, 0}, "dev": {}, "": {}} {
		if got := parseVersion(in); got != want {
			t.Errorf("parseVersion(%q) = %v, want %v", in, got, want)
		}
	}
}

func addRetry(c *traefikConfig) {
	c.Middlewares["retry3@file"] = apiMiddleware{Retry: &struct {
		Attempts int `json:"attempts"`
	}{3}, Status: "enabled", UsedBy: []string{"sio@file"}}
	r := c.Routers["sio@file"]
	r.Middlewares = append(r.Middlewares, "retry3")
	c.Routers["sio@file"] = r
}

func h2c(c *traefikConfig) {
	s := c.Services["sio@file"]
	s.LoadBalancer.Servers[1].URL = "h2c://10.0.0.2:9000"
	c.Services["sio@file"] = s
}

func dumpFindings(fs []finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + f.Status + " " + f.ID + ": " + f.Summary + "\n")
		for _, e := range f.Evidence {
			b.WriteString("      " + e + "\n")
		}
	}
	return b.String()
}
