package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// Step results.
const (
	pass = "pass"
	fail = "fail"
	skip = "skip"
)

// step is one line of the report.
type step struct {
	N        int     `json:"n"`
	Name     string  `json:"name"`
	Status   string  `json:"status"`
	ID       string  `json:"id,omitempty"` // the plugin's error ids where the cause is the same
	Summary  string  `json:"summary"`
	Evidence *answer `json:"evidence,omitempty"`
	Fix      string  `json:"fix,omitempty"`
}

// report is the doctor's whole answer (--json prints it as is).
type report struct {
	URL       string `json:"url"`
	Namespace string `json:"namespace"`
	OK        bool   `json:"ok"`
	Steps     []step `json:"steps"`
	// Traefik is what Traefik's own configuration shows (--traefik-api).
	Traefik *configReport `json:"traefik,omitempty"`
}

// configReport is the configuration part: Traefik's API, its version, and
// each rule's findings.
type configReport struct {
	API      string    `json:"api"`
	Version  string    `json:"version,omitempty"`
	Error    string    `json:"error,omitempty"`
	Findings []finding `json:"findings,omitempty"`
}

type doctorOptions struct {
	rawURL        string
	path          string
	namespace     string
	origin        string
	cookie        string
	authorization string
	connectTo     map[string]string
	eio           string
	replicasCheck int
	waitEvent     string
	subscribe     string
	hold          time.Duration
	timeout       time.Duration
	insecure      bool
	// traefikAPI is Traefik's API URL (credentials in it, in the environment
	// or in traefikAPIHeaders); inspectPath the guard's inspection path.
	traefikAPI        string
	traefikAPIHeaders []string
	inspectPath       string
}

// doctor runs the checks in order. A failure of the network, the handshake
// or the polling round trip is hard (nothing after it can work, so the rest
// is skipped and says so); later failures are reported and the run goes on.
func doctor(ctx context.Context, o doctorOptions) report {
	d := &session{o: o}
	r := report{URL: o.rawURL, Namespace: o.namespace}
	t, err := newTarget(o)
	if err != nil {
		r.Steps = append(r.Steps, step{N: 1, Name: "network", Status: fail, ID: "bad-url", Summary: err.Error(),
			Fix: "give the site's URL, e.g. https://v2.sysmayal.cloud (the path defaults to /socket.io/)"})
		return finish(r)
	}
	d.t = t
	checks := []struct {
		name string
		hard bool
		run  func(context.Context) step
	}{
		{"network", true, d.network},
		{"handshake", true, d.handshake},
		{"polling", true, d.polling},
		{"upgrade", false, d.upgrade},
		{"websocket", false, d.directWebsocket},
		{"namespace", false, d.namespaceConnect},
		{"stickiness", false, d.stickiness},
		{"event", false, d.event},
		{"hold", false, d.hold},
		{"desk page", false, d.deskPage},
	}
	stopped := ""
	for i, c := range checks {
		var s step
		if stopped != "" {
			s = step{Status: skip, Summary: "skipped: " + stopped}
		} else {
			s = c.run(ctx)
		}
		s.N, s.Name = i+1, c.name
		r.Steps = append(r.Steps, s)
		d.hijackFailed = d.hijackFailed || s.ID == "hijack-failed"
		if s.Status == fail && c.hard {
			stopped = fmt.Sprintf("step %d (%s) failed", i+1, c.name)
		}
	}
	if o.traefikAPI != "" {
		r.Traefik = d.traefikConfiguration(ctx)
	}
	return finish(r)
}

// traefikConfiguration reads Traefik's API and runs the configuration rules
// with what the steps learned (the handshake's pingInterval) and the guard's
// inspection answer on this route.
func (d *session) traefikConfiguration(parent context.Context) *configReport {
	ctx, cancel := d.ctx(parent)
	defer cancel()
	api, err := newTraefikAPI(d.o.traefikAPI, d.o.traefikAPIHeaders, d.o.insecure)
	if err != nil {
		return &configReport{API: "(invalid)", Error: err.Error()}
	}
	rep := &configReport{API: api.base.String()}
	cfg, err := api.fetch(ctx)
	if err != nil {
		rep.Error = err.Error()
		return rep
	}
	rep.Version = cfg.Version
	v := &configView{cfg: cfg, scheme: d.t.base.Scheme, inspected: d.inspect(ctx), hijackFailedSteps: d.hijackFailed}
	if d.open.PingInterval > 0 {
		v.pingInterval = time.Duration(d.open.PingInterval) * time.Millisecond
	}
	rep.Findings = checkConfig(v)
	return rep
}

// inspect GETs the guard's inspection path on the site; nil unless the
// guard answered. The guard answers 20 inspections a second per router:
// past that (429 inspection-rate-limited) it asks once more a second later.
func (d *session) inspect(ctx context.Context) *inspectAnswer {
	if d.o.inspectPath == "" {
		return nil
	}
	u := *d.t.base
	u.Path = d.o.inspectPath
	var resp *http.Response
	for attempt := 0; attempt < 2; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return nil
		}
		if resp, err = d.t.client.Do(req); err != nil {
			return nil
		}
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("X-Socketio-Guard-Error") != "inspection-rate-limited" || attempt > 0 {
			break
		}
		resp.Body.Close()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	var a inspectAnswer
	if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &a) != nil || a.Middleware == "" {
		return nil
	}
	return &a
}

func finish(r report) report {
	r.OK = true
	for _, s := range r.Steps {
		if s.Status == fail {
			r.OK = false
		}
	}
	if r.Traefik != nil {
		if r.Traefik.Error != "" {
			r.OK = false
		}
		for _, f := range r.Traefik.Findings {
			if f.Status == fail {
				r.OK = false
			}
		}
	}
	return r
}

// session carries what one step learns for the next (the sid, the namespace answer).
type session struct {
	o               doctorOptions
	t               *target
	open            openPacket
	namespaceResult string // what the polling GET said to the CONNECT packet
	namespaceOK     bool
	namespaceSeen   bool
	// originByGuard: the handshake's answer says socketioguard set the Origin
	// (X-Socketio-Guard-Repaired: origin), from the Host it saw.
	originByGuard bool
	// frappeUser is who Frappe says the --cookie session is ("" = unknown).
	frappeUser string
	// hijackFailed: a websocket step was answered hijack-failed.
	hijackFailed bool
}

func (d *session) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, d.o.timeout)
}

// hostnameOf is a URL's host name, without scheme and port.
func hostnameOf(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

func shortErr(err error) string {
	var ce websocket.CloseError
	if errors.As(err, &ce) {
		return fmt.Sprintf("closed with %d %s", ce.Code, ce.Reason)
	}
	s := err.Error()
	if i := strings.Index(s, ": "); i > 0 && strings.Contains(s, "expected handshake response status code 101") {
		return "no 101"
	}
	return s
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func trim(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
