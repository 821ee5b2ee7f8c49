// Command socketioguard checks a Socket.IO deployment from the outside:
//
//	socketioguard doctor URL [--path /socket.io/] [--namespace /<site>] [--origin …] [--cookie …]
//	                         [--eio 4] [--replicas-check N] [--wait-event NAME [--subscribe doctype/name]]
//	                         [--timeout 30s] [--insecure] [--json]
//	                         [--traefik-api URL [--traefik-api-header 'Name: value']… [--inspect-path /socket.io/.guard]]
//
// It runs the report's deployment checks (handshake, polling, websocket
// upgrade, namespace, stickiness, an event) and names the broken hop with
// the same error ids as the socketioguard plugin. With --traefik-api it also
// reads Traefik's live configuration and names what will break Socket.IO
// before a request fails. Exit code: 0 when every check passed, 1 when one
// failed, 2 for a usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"time"
)

const usage = `usage: socketioguard doctor URL [flags]

Checks the Socket.IO endpoint behind URL (e.g. https://v2.sysmayal.cloud) step
by step and names the broken hop. Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "doctor" {
		fmt.Fprint(stderr, usage)
		fmt.Fprintln(stderr, "  (the only command is doctor; see socketioguard doctor --help)")
		return 2
	}
	o, asJSON, err := parseDoctorFlags(args[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "socketioguard doctor:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	r := doctor(ctx, o)
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(r)
	} else {
		printReport(stdout, r, isTerminal(stdout))
	}
	if !r.OK {
		return 1
	}
	return 0
}

func parseDoctorFlags(args []string, stderr io.Writer) (doctorOptions, bool, error) {
	fs := flag.NewFlagSet("doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	o := doctorOptions{}
	fs.StringVar(&o.path, "path", "", "Engine.IO path (default: the URL's path, else /socket.io/)")
	fs.StringVar(&o.namespace, "namespace", "/", "Socket.IO namespace to connect (Frappe: /<site name>)")
	fs.StringVar(&o.origin, "origin", "", "Origin header to send (a browser page's origin); none by default, like a same-origin polling request")
	fs.StringVar(&o.cookie, "cookie", "", "Cookie header to send (Frappe: 'sid=<session>')")
	fs.StringVar(&o.authorization, "authorization", "", "Authorization header to send, as a token client does (Frappe: 'token <api_key>:<api_secret>'); never printed")
	fs.StringVar(&o.eio, "eio", "4", "Engine.IO protocol version (4: Socket.IO v3/v4 clients, 3: v2)")
	fs.IntVar(&o.replicasCheck, "replicas-check", 0, "open N sessions and count those another replica answers (stickiness)")
	fs.StringVar(&o.waitEvent, "wait-event", "", "wait for this event in the namespace (e.g. message_created)")
	fs.StringVar(&o.subscribe, "subscribe", "", "Frappe: join doc:<doctype>/<name> first, e.g. 'Raven Channel/general'")
	fs.DurationVar(&o.hold, "hold", 0, "keep an upgraded session open this long, answering pings, and report whether a hop cuts it (e.g. 2m)")
	fs.DurationVar(&o.timeout, "timeout", 30*time.Second, "time limit of each step")
	fs.BoolVar(&o.insecure, "insecure", false, "go on when the TLS certificate is not trusted")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.StringVar(&o.traefikAPI, "traefik-api", "", "Traefik's API (e.g. https://user:pass@traefik.example.com, or http://127.0.0.1:8080): also check Traefik's configuration; credentials also from $"+traefikAPIAuthEnv+" (user:password) or --traefik-api-header, never printed")
	fs.Var((*headerList)(&o.traefikAPIHeaders), "traefik-api-header", "a header for Traefik's API, 'Name: value' (repeatable; e.g. a bearer token)")
	var connectTo headerList
	fs.Var(&connectTo, "connect-to", "HOST:PORT:ADDRESS:PORT: connect there for HOST:PORT, keeping the URL's host for Host and TLS, like curl's (repeatable; e.g. a site through one Traefik before DNS points at it)")
	fs.StringVar(&o.inspectPath, "inspect-path", "/socket.io/.guard", "the guard's inspectPath on the site (its answer names the guard's middleware, hence the router); empty: do not ask")

	// The URL may stand before, between or after the flags.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return o, false, err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(positional) != 1 {
		fs.Usage()
		return o, false, fmt.Errorf("want exactly one URL, got %d", len(positional))
	}
	o.rawURL = positional[0]
	if o.eio != "3" && o.eio != "4" {
		return o, false, fmt.Errorf("--eio %q is not 3 or 4", o.eio)
	}
	if !strings.HasPrefix(o.namespace, "/") {
		o.namespace = "/" + o.namespace
	}
	if o.hold < 0 {
		return o, false, fmt.Errorf("--hold %s must not be negative", o.hold)
	}
	if o.timeout <= 0 {
		return o, false, fmt.Errorf("--timeout %s must be positive", o.timeout)
	}
	var err error
	if o.connectTo, err = parseConnectTo(connectTo); err != nil {
		return o, false, err
	}
	return o, *asJSON, nil
}

// headerList collects a repeated flag.
type headerList []string

func (h *headerList) String() string { return fmt.Sprintf("%d header(s)", len(*h)) }

func (h *headerList) Set(v string) error {
	*h = append(*h, v)
	return nil
}

func newTarget(o doctorOptions) (*target, error) {
	raw := o.rawURL
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("URL %q: %v", o.rawURL, err)
	}
	switch u.Scheme {
	case "http", "https":
	case "ws", "wss":
		u.Scheme = map[string]string{"ws": "http", "wss": "https"}[u.Scheme]
	default:
		return nil, fmt.Errorf("URL %q: scheme %q is not http or https", o.rawURL, u.Scheme)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("URL %q has no host", o.rawURL)
	}
	path := o.path
	if path == "" {
		path = u.Path
	}
	if path == "" || path == "/" {
		path = "/socket.io/"
	}
	if !strings.HasSuffix(path, "/") {
		path += "/" // Engine.IO servers only answer the path with its slash
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host}
	return &target{base: base, path: path, namespace: o.namespace, eio: o.eio, origin: o.origin, cookie: o.cookie,
		authorization: o.authorization, connectTo: o.connectTo, client: newHTTPClient(o.insecure, o.connectTo), insecure: o.insecure}, nil
}

// printReport prints the aligned PASS/FAIL table, with evidence and the fix
// under each failure; colour only on a terminal.
func printReport(w io.Writer, r report, colour bool) {
	paint := func(code, s string) string {
		if !colour {
			return s
		}
		return "\x1b[" + code + "m" + s + "\x1b[0m"
	}
	labels := map[string]string{pass: paint("32", "PASS"), fail: paint("31;1", "FAIL"), skip: paint("33", "SKIP")}
	fmt.Fprintf(w, "socketioguard doctor %s (namespace %s)\n", r.URL, r.Namespace)
	for _, s := range r.Steps {
		id := ""
		if s.ID != "" && s.Status == fail {
			id = " [" + s.ID + "]"
		}
		fmt.Fprintf(w, "  %s  %-13s %s%s\n", labels[s.Status], fmt.Sprintf("%d %s", s.N, s.Name), s.Summary, id)
		if s.Status != fail {
			continue
		}
		if e := s.Evidence; e != nil {
			fmt.Fprintf(w, "        evidence: status %d, content-type %q", e.Status, e.ContentType)
			for name, v := range map[string]string{"X-Socketio-Guard-Error": e.GuardError, "X-Socketio-Guard-Diagnosis": e.Diagnosis, "X-Socketio-Guard-Repaired": e.Repaired,
				"Location": e.Location, "WWW-Authenticate": e.WWWAuthenticate, "cf-mitigated": e.Mitigated} {
				if v != "" {
					fmt.Fprintf(w, ", %s: %s", name, v)
				}
			}
			if e.Body != "" {
				fmt.Fprintf(w, ", body %q", trim(e.Body, 200))
			}
			fmt.Fprintln(w)
		}
		if s.Fix != "" {
			fmt.Fprintf(w, "        fix: %s\n", s.Fix)
		}
	}
	if t := r.Traefik; t != nil {
		printConfig(w, t, labels, paint)
	}
	if r.OK {
		fmt.Fprintln(w, paint("32", "all checks passed"))
	} else {
		fmt.Fprintln(w, paint("31;1", "failed: see the fix under each FAIL (ids: readme.md, Error reference)"))
	}
}

// printConfig prints the configuration findings: evidence, thread and fix
// under each that is not a pass.
func printConfig(w io.Writer, t *configReport, labels map[string]string, paint func(code, s string) string) {
	fmt.Fprintf(w, "Traefik's configuration (%s%s)\n", t.API, map[bool]string{true: ", Traefik " + t.Version, false: ""}[t.Version != ""])
	if t.Error != "" {
		fmt.Fprintf(w, "  %s  %s\n", labels[fail], t.Error)
		return
	}
	labels[warn], labels[notEvaluated] = paint("33", "WARN"), paint("33", "N/E ")
	for _, f := range t.Findings {
		fmt.Fprintf(w, "  %s  %-28s %s\n", labels[f.Status], f.ID, f.Summary)
		if f.Status == pass {
			continue
		}
		for _, e := range f.Evidence {
			fmt.Fprintf(w, "        evidence: %s\n", e)
		}
		if f.Thread != "" {
			fmt.Fprintf(w, "        thread: https://github.com/%s\n", strings.Replace(f.Thread, "#", "/issues/", 1))
		}
		if f.Fix != "" {
			fmt.Fprintf(w, "        fix: %s\n", f.Fix)
		}
	}
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0 && os.Getenv("NO_COLOR") == ""
}
