package main

import (
	"context"
	"errors"
	"fmt"
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
}

type doctorOptions struct {
	rawURL        string
	path          string
	namespace     string
	origin        string
	cookie        string
	eio           string
	replicasCheck int
	waitEvent     string
	subscribe     string
	hold          time.Duration
	timeout       time.Duration
	insecure      bool
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
		if s.Status == fail && c.hard {
			stopped = fmt.Sprintf("step %d (%s) failed", i+1, c.name)
		}
	}
	return finish(r)
}

func finish(r report) report {
	r.OK = true
	for _, s := range r.Steps {
		if s.Status == fail {
			r.OK = false
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
