package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

type benchOptions struct {
	rounds       int
	duration     time.Duration
	connections  int
	wsConns      int
	idle         int
	storms       int
	stormClients int
	out          string
	only         string
	baseline     string // a git revision whose plugin runs as another variant, for before/after
}

// benchMiddlewares are the trivial plugin and the guard (with the Frappe
// recipe's configuration), as every bench Traefik defines them.
const benchMiddlewares = `    trivial:
      plugin:
        passthrough:
          headers:
            X-Demo: bench
    guard:
      plugin:
        socketioguard: {setMissingOrigin: true, eioVersions: ["4"]}
`

// variant is one entrypoint of the bench Traefik.
type variant struct{ name, label string }

var (
	none     = variant{"none", "no middleware"}
	trivial  = variant{"trivial", "trivial Yaegi plugin"}
	guard    = variant{"guard", "socketioguard (guard)"}
	nodiag   = variant{"nodiag", "socketioguard (guard, diagnoseResponses off)"}
	fallback = variant{"fallback", "socketioguard (fallback)"}
	// capture is the reference plugin that only captures the answer
	// (e2e/bench/capture): what any plugin that reads the answer pays.
	capture = variant{"capture", "reference: capture only, reads nothing"}
	// baseline is the guard as committed at --baseline, with the guard's
	// configuration: the same Traefik and rounds give a paired before/after.
	baseline = variant{"baseline", "socketioguard at the baseline revision"}
	// handshakeFloor is the working tree's guard cut down to what a polling
	// handshake cannot do without: the guard's recognition of it, the Origin
	// repair and the capture of the answer (useHandshakeFloor): the floor
	// the guard's polling handshake is measured against, in the same run.
	handshakeFloor = variant{"hsfloor", "experiment: the guard cut down to its recognition of the handshake, the Origin repair and the capture"}
)

// httpCase is a kind of request and the variants it is measured on.
type httpCase struct {
	route    string
	method   string // "" is GET
	path     string
	variants []variant
}

// The guard variants run the Frappe recipe's configuration (setMissingOrigin,
// eioVersions 4); the polls carry socket.io-client's own query, and once
// more with application parameters before EIO.
var httpCases = []httpCase{
	{"Engine.IO polling (GET with sid)", "", "/socket.io/?EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC", []variant{none, trivial, guard, nodiag, capture}},
	{"Engine.IO polling (GET with sid, application parameters first)", "", "/socket.io/?token=abc&room=doc%3ARaven&EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC", []variant{none, trivial, guard}},
	{"Engine.IO polling (POST with sid)", "POST", "/socket.io/?EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC", []variant{none, trivial, guard, capture}},
	{"Engine.IO polling handshake (GET without sid)", "", "/socket.io/?EIO=4&transport=polling&t=PaB3x1c", []variant{none, trivial, guard, capture, handshakeFloor}},
	{"web app page (not Engine.IO)", "", "/app/raven/channel/general", []variant{none, trivial, guard, fallback}},
}

func runBench(args []string) int {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	o := benchOptions{}
	fs.IntVar(&o.rounds, "rounds", 9, "rounds; every variant runs once per round, in rotating order")
	fs.DurationVar(&o.duration, "duration", 3*time.Second, "length of one measurement")
	fs.IntVar(&o.connections, "connections", 32, "wrk connections")
	fs.IntVar(&o.wsConns, "ws-connections", 16, "websocket echo connections")
	fs.IntVar(&o.idle, "idle", 1000, "idle websockets for the memory measurement")
	fs.IntVar(&o.storms, "storms", 5, "reconnect storms per variant")
	fs.IntVar(&o.stormClients, "storm-clients", 1000, "socket.io clients in a reconnect storm")
	fs.StringVar(&o.out, "out", "", "directory for report.md and throughput.png (default: <repo>/bench)")
	fs.StringVar(&o.only, "only", "", "run one part only (http, ws, handshakes, idle, storm, attacks) and print it; no report")
	fs.StringVar(&o.baseline, "baseline", "", "also measure the plugin as committed at this git revision (e.g. HEAD~3), paired with the working tree's")
	_ = fs.Parse(args)

	st, cleanup, err := stack.NewTemp("socketioguard-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	defer cleanup()
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: wrk not found: run scripts/setup-e2e.sh --bench (make bench does)")
		return 2
	}
	if o.out == "" {
		o.out = filepath.Join(st.Tools.Repo, "bench")
	}

	if o.baseline != "" {
		if err := useBaseline(st, o.baseline); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 2
		}
	}
	r, err := measure(st, wrk, o)
	if o.only != "" && err == nil {
		return 0
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		fmt.Fprintln(os.Stderr, st.Logs())
		return 1
	}
	if err := writeReport(r, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench: report:", err)
		return 1
	}
	fmt.Printf("wrote %s and %s\n", filepath.Join(o.out, "report.md"), filepath.Join(o.out, "throughput.png"))
	return 0
}

// results holds every measurement of one run.
type results struct {
	started      time.Time
	elapsed      time.Duration
	opts         benchOptions
	http         map[string]map[string][]wrkResult // route → variant → rounds
	ws           map[string][]float64              // variant → messages/s per round
	wsHandshakes map[string][]float64              // variant → websocket handshakes/s per round
	storm        map[string][]float64              // variant → ms until all clients were back, per storm
	idle         []idleSample
	attacks      map[string]map[string][]float64 // "input/size" → variant → Traefik's CPU ns per request, per round
	goBench      string
	yaegi        string
	machine      string
	versions     string
}

func measure(st *stack.Stack, wrk string, o benchOptions) (*results, error) {
	r := &results{started: time.Now(), opts: o, http: map[string]map[string][]wrkResult{}, ws: map[string][]float64{},
		wsHandshakes: map[string][]float64{}, storm: map[string][]float64{}, attacks: map[string]map[string][]float64{}}
	tr, err := startBenchTraefik(st, stack.TraefikOptions{})
	if err != nil {
		return nil, err
	}

	// HTTP: warm up every combination, then interleave them round by round.
	part := func(name string) bool { return o.only == "" || o.only == name }
	if part("http") {
		if err := measureHTTP(r, wrk, tr, combosOf(), o); err != nil {
			return nil, err
		}
	}
	if part("ws") {
		if err := measureWS(r, tr, o); err != nil {
			return nil, err
		}
	}
	if part("handshakes") {
		if err := measureWSHandshakes(r, tr, o); err != nil {
			return nil, err
		}
	}
	if part("idle") {
		if err := measureIdle(r, tr, o); err != nil {
			return nil, err
		}
	}
	if part("storm") {
		if err := measureStorm(r, st, o); err != nil {
			return nil, err
		}
	}
	if part("attacks") {
		if err := measureAttacks(r, tr, o); err != nil {
			return nil, err
		}
	}
	if o.only != "" {
		return r, nil
	}
	r.elapsed = time.Since(r.started)
	fmt.Println("Go benchmarks: compiled (root package) and interpreted by Yaegi (e2e/interpreted)")
	r.goBench = goBenchmarks(st.Tools.Repo, ".", nil, "-bench", ".")
	r.yaegi = goBenchmarks(filepath.Join(st.Tools.Repo, "e2e"), "./interpreted", nil, "-bench", ".") + "\n" +
		goBenchmarks(filepath.Join(st.Tools.Repo, "e2e"), "./interpreted", []string{"SOCKETIOGUARD_PACED_BENCH=1"},
			"-bench", "^BenchmarkInspectionAnswered$", "-benchtime", "40x") // paced: a second's wait after every 20 answers
	r.machine = machine()
	r.versions = versions(st.Tools)
	return r, nil
}

// startBenchTraefik starts the fast backend and one Traefik with an
// entrypoint per variant (and the baseline's, after useBaseline), each
// routed to the backend through its middleware. more holds what a caller
// adds to Traefik's options (bench instructions: valgrind around it).
func startBenchTraefik(st *stack.Stack, more stack.TraefikOptions) (*stack.Traefik, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	port, err := stack.FreePort()
	if err != nil {
		return nil, err
	}
	backend, err := st.Start("backend", nil, self, "backend", "--port", strconv.Itoa(port))
	if err != nil {
		return nil, err
	}
	if err := stack.WaitTCP(backend, stack.Addr(port), 10*time.Second); err != nil {
		return nil, err
	}
	floorDir, err := useHandshakeFloor(st)
	if err != nil {
		return nil, err
	}
	entryPoints := []string{none.name, trivial.name, guard.name, nodiag.name, fallback.name, capture.name, handshakeFloor.name}
	routers := []string{"r-none@file", "r-trivial@file", "r-guard@file", "r-nodiag@file", "r-fallback@file", "r-capture@file", "r-hsfloor@file"}
	localPlugins := map[string]string{
		"passthrough": filepath.Join(st.Tools.Repo, "e2e", "bench", "passthrough"),
		"capture":     filepath.Join(st.Tools.Repo, "e2e", "bench", "capture"),
		"hsfloor":     floorDir,
	}
	baselineMiddleware, baselineRouter := "", ""
	if baselineDir != "" {
		entryPoints = append(entryPoints, baseline.name)
		routers = append(routers, "r-baseline@file")
		localPlugins["guardbaseline"] = baselineDir
		baselineMiddleware = `    baseline:
      plugin:
        guardbaseline: {setMissingOrigin: true, eioVersions: ["4"], inspectPath: /socket.io/.guard}
`
		baselineRouter = `    r-baseline: {rule: "PathPrefix(` + "`/`" + `)", entryPoints: [baseline], middlewares: [baseline], service: backend}
`
	}
	more.EntryPoints, more.LocalPlugins, more.Metrics, more.LogLevel, more.Routers = entryPoints, localPlugins, true, "ERROR", routers
	more.Dynamic = fmt.Sprintf(`
http:
  middlewares:
%s%s    nodiag:
      plugin:
        socketioguard: {setMissingOrigin: true, eioVersions: ["4"], diagnoseResponses: false}
    fallback:
      plugin:
        socketioguard:
          mode: fallback
    capture:
      plugin:
        capture: {}
    hsfloor:
      plugin:
        hsfloor: {setMissingOrigin: true, eioVersions: ["4"]}
  services:
    backend:
      loadBalancer:
        servers: [{url: "http://127.0.0.1:%d"}]
  routers:
    r-none:     {rule: "PathPrefix(`+"`/`"+`)", entryPoints: [none], service: backend}
    r-trivial:  {rule: "PathPrefix(`+"`/`"+`)", entryPoints: [trivial], middlewares: [trivial], service: backend}
    r-guard:    {rule: "PathPrefix(`+"`/`"+`)", entryPoints: [guard], middlewares: [guard], service: backend}
    r-nodiag:   {rule: "PathPrefix(`+"`/`"+`)", entryPoints: [nodiag], middlewares: [nodiag], service: backend}
    r-fallback: {rule: "PathPrefix(`+"`/`"+`)", entryPoints: [fallback], middlewares: [fallback], service: backend}
    r-capture:  {rule: "PathPrefix(`+"`/`"+`)", entryPoints: [capture], middlewares: [capture], service: backend}
    r-hsfloor:  {rule: "PathPrefix(`+"`/`"+`)", entryPoints: [hsfloor], middlewares: [hsfloor], service: backend}
`, benchMiddlewares, baselineMiddleware, port) + baselineRouter
	return st.StartTraefik(more)
}

type combo struct {
	c httpCase
	v variant
}

func combosOf() []combo {
	var combos []combo
	for _, c := range httpCases {
		for _, v := range c.variants {
			combos = append(combos, combo{c, v})
		}
	}
	return combos
}

// baselineDir holds the plugin at --baseline, mounted as a second local
// plugin; "" without --baseline.
var baselineDir string

// useBaseline writes the plugin as committed at rev into a folder of the
// stack's, under its own module path (Traefik and Yaegi load each plugin by
// its module), and adds it to the Engine.IO rows and the websocket handshakes.
func useBaseline(st *stack.Stack, rev string) error {
	dir := filepath.Join(st.Dir, "baseline-plugin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names, err := exec.Command("git", "-C", st.Tools.Repo, "ls-tree", "--name-only", rev).Output()
	if err != nil {
		return fmt.Errorf("git ls-tree %s: %w", rev, err)
	}
	const module = "example.com/baseline/socketioguard"
	for _, name := range strings.Fields(string(names)) {
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := exec.Command("git", "-C", st.Tools.Repo, "show", rev+":"+name).Output()
		if err != nil {
			return fmt.Errorf("git show %s:%s: %w", rev, name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), src, 0o644); err != nil {
			return err
		}
	}
	if err := stack.WritePluginModule(dir, module, "socketioguard at "+rev, "baseline"); err != nil {
		return err
	}
	baselineDir = dir
	baseline.label = "socketioguard at " + rev
	for i := range httpCases[:4] {
		httpCases[i].variants = append(httpCases[i].variants, baseline)
	}
	return nil
}

// useHandshakeFloor writes the floor variant (stack.WriteHandshakeFloor)
// into a folder of the stack's and returns that folder.
func useHandshakeFloor(st *stack.Stack) (string, error) {
	dir := filepath.Join(st.Dir, "handshake-floor-plugin")
	return dir, stack.WriteHandshakeFloor(st.Tools.Repo, dir)
}

func measureHTTP(r *results, wrk string, tr *stack.Traefik, combos []combo, o benchOptions) error {
	for _, c := range httpCases {
		r.http[c.route] = map[string][]wrkResult{}
	}
	fmt.Printf("HTTP: %d combinations × %d rounds × %s (wrk -t1 -c%d)\n", len(combos), o.rounds, o.duration, o.connections)
	for _, cb := range combos { // warm-up
		if _, err := runWrk(wrk, cb.c.method, tr.URL(cb.v.name)+cb.c.path, o.connections, time.Second); err != nil {
			return err
		}
	}
	for round := 0; round < o.rounds; round++ {
		for i := range combos {
			cb := combos[(i+round)%len(combos)]
			res, err := runWrk(wrk, cb.c.method, tr.URL(cb.v.name)+cb.c.path, o.connections, o.duration)
			if err != nil {
				return err
			}
			r.http[cb.c.route][cb.v.name] = append(r.http[cb.c.route][cb.v.name], res)
			fmt.Printf("  round %d  %-34s %-44s %9.0f req/s  p50 %-8s p99 %s\n", round+1, cb.c.route, cb.v.label, res.rps, res.p50, res.p99)
		}
	}
	return nil
}

// measureWS: websocket echo, interleaved the same way.
func measureWS(r *results, tr *stack.Traefik, o benchOptions) error {
	fmt.Printf("websocket echo: %d connections × %s per variant and round\n", o.wsConns, o.duration)
	return inRotation(o.rounds, []variant{none, trivial, guard}, "websocket echo", "messages/s", r.ws, func(v variant) (float64, error) {
		return echoRate(tr.URL(v.name), o.wsConns, o.duration)
	})
}

// inRotation measures every variant once per round, in an order that
// rotates from round to round, and keeps each figure under the variant.
func inRotation(rounds int, variants []variant, what, unit string, into map[string][]float64, measure func(variant) (float64, error)) error {
	for round := 0; round < rounds; round++ {
		for i := range variants {
			v := variants[(i+round)%len(variants)]
			x, err := measure(v)
			if err != nil {
				return fmt.Errorf("%s via %s: %w", what, v.name, err)
			}
			into[v.name] = append(into[v.name], x)
			fmt.Printf("  round %d  %-26s %9.0f %s\n", round+1, v.label, x, unit)
		}
	}
	return nil
}

// measureIdle: memory with idle websockets, three times each, alternating
// (the goal is judged on the guard's largest sample).
func measureIdle(r *results, tr *stack.Traefik, o benchOptions) error {
	fmt.Printf("idle websockets: %d per sample\n", o.idle)
	for _, v := range []variant{none, trivial, guard, none, trivial, guard, none, trivial, guard} {
		s, err := idleMemory(tr, v, o.idle)
		if err != nil {
			return fmt.Errorf("idle websockets via %s: %w", v.name, err)
		}
		r.idle = append(r.idle, s)
		fmt.Printf("  %-26s %s\n", v.label, s)
	}
	return nil
}

// wrkResult is one wrk run.
type wrkResult struct {
	rps      float64
	p50, p99 time.Duration
	requests int
}

var (
	wrkRPS      = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkPct      = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
	wrkRequests = regexp.MustCompile(`(\d+) requests in`)
	wrkNon2xx   = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
)

// postScript makes wrk send Engine.IO's POST (a ping packet, as text).
const postScript = `wrk.method = "POST"
wrk.body = "2"
wrk.headers["Content-Type"] = "text/plain;charset=UTF-8"
`

func runWrk(wrk, method, url string, connections int, d time.Duration) (wrkResult, error) {
	args := []string{"-t1", "-c" + strconv.Itoa(connections), "-d" + d.String(), "--latency"}
	if method == http.MethodPost {
		script, err := os.CreateTemp("", "socketioguard-wrk-post-*.lua")
		if err != nil {
			return wrkResult{}, err
		}
		defer os.Remove(script.Name()) // the run's own, gone with it
		_, err = script.WriteString(postScript)
		if cerr := script.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return wrkResult{}, err
		}
		args = append(args, "-s", script.Name())
	}
	out, err := exec.Command(wrk, append(args, url)...).CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
	}
	s := string(out)
	if m := wrkNon2xx.FindStringSubmatch(s); m != nil {
		return wrkResult{}, fmt.Errorf("wrk %s: %s non-2xx answers: the measurement would not be of the guard's forwarding path\n%s", url, m[1], s)
	}
	var res wrkResult
	if m := wrkRPS.FindStringSubmatch(s); m != nil {
		res.rps, _ = strconv.ParseFloat(m[1], 64)
	}
	if m := wrkRequests.FindStringSubmatch(s); m != nil {
		res.requests, _ = strconv.Atoi(m[1])
	}
	for _, m := range wrkPct.FindAllStringSubmatch(s, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		unit := map[string]time.Duration{"us": time.Microsecond, "ms": time.Millisecond, "s": time.Second}[m[3]]
		d := time.Duration(v * float64(unit))
		if m[1] == "50" {
			res.p50 = d
		} else {
			res.p99 = d
		}
	}
	if res.rps == 0 {
		return res, fmt.Errorf("wrk %s: cannot read its output:\n%s", url, s)
	}
	return res, nil
}

// echoRate opens n websockets through base and sends/receives messages
// back to back for d; it returns round trips per second.
func echoRate(base string, n int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return 0, err
		}
		defer c.CloseNow()
		conns[i] = c
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	msg := []byte(`42/raven.localhost,["message_created",{"channel_id":"general"}]`)
	errs := make(chan error, n)
	for _, c := range conns {
		wg.Add(1)
		go func(c *websocket.Conn) {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if err := c.Write(ctx, websocket.MessageText, msg); err != nil {
					errs <- err
					return
				}
				if _, _, err := c.Read(ctx); err != nil {
					errs <- err
					return
				}
				total.Add(1)
			}
		}(c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, err
	}
	return float64(total.Load()) / d.Seconds(), nil
}

// idleSample is Traefik's memory before, with and after n idle websockets.
type idleSample struct {
	variant               string
	n                     int
	before, during, after traefikMem
}

func (s idleSample) String() string {
	return fmt.Sprintf("RSS %.1f → %.1f → %.1f MiB, heap in use %.1f → %.1f → %.1f MiB, live heap %.1f → %.1f → %.1f MiB, goroutines %.0f → %.0f → %.0f",
		s.before.rss, s.during.rss, s.after.rss, s.before.heap, s.during.heap, s.after.heap, s.before.live, s.during.live, s.after.live, s.before.goroutines, s.during.goroutines, s.after.goroutines)
}

// perConnKiB: what each open websocket added, in KiB.
func (s idleSample) perConnKiB() (rss, heap, live float64) {
	per := func(before, during float64) float64 { return (during - before) * 1024 / float64(s.n) }
	return per(s.before.rss, s.during.rss), per(s.before.heap, s.during.heap), per(s.before.live, s.during.live)
}

func idleMemory(tr *stack.Traefik, v variant, n int) (idleSample, error) {
	s := idleSample{variant: v.name, n: n}
	time.Sleep(2 * time.Second) // let the previous connections' memory settle
	var err error
	if s.before, err = traefikMemory(tr); err != nil {
		return s, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(tr.URL(v.name), "http") + "/socket.io/?EIO=4&transport=websocket"
	conns := make([]*websocket.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.CloseNow()
		}
	}()
	for i := 0; i < n; i++ {
		c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled})
		if err != nil {
			return s, fmt.Errorf("connection %d: %w", i+1, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(2 * time.Second)
	if s.during, err = traefikMemory(tr); err != nil {
		return s, err
	}
	for _, c := range conns {
		c.Close(websocket.StatusNormalClosure, "")
	}
	conns = nil
	time.Sleep(3 * time.Second)
	s.after, err = traefikMemory(tr)
	return s, err
}

// traefikMem is Traefik's memory at one moment, in MiB: RSS (from /proc),
// the Go heap in use (whole spans: it also counts the free slots beside a
// survivor) and the live heap (the bytes of the objects reachable, after the
// forced collection), and its goroutines.
type traefikMem struct{ rss, heap, live, goroutines float64 }

// traefikMemory reads Traefik's RSS from /proc and its Go heap and
// goroutines from its Prometheus metrics, after asking it to collect
// garbage (pprof's heap?gc=1), so that samples compare live memory.
func traefikMemory(tr *stack.Traefik) (traefikMem, error) {
	var m traefikMem
	if resp, err := http.Get(tr.URL("traefik") + "/debug/pprof/heap?gc=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tr.Cmd.Process.Pid))
	if err != nil {
		return m, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			m.rss = kb / 1024
		}
	}
	resp, err := http.Get(tr.URL("traefik") + "/metrics")
	if err != nil {
		return m, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), " ")
		x, _ := strconv.ParseFloat(value, 64)
		switch name {
		case "go_memstats_heap_inuse_bytes":
			m.heap = x / (1 << 20)
		case "go_memstats_heap_alloc_bytes":
			m.live = x / (1 << 20)
		case "go_goroutines":
			m.goroutines = x
		}
	}
	if m.live == 0 {
		return m, fmt.Errorf("no go_memstats_heap_alloc_bytes in Traefik's metrics")
	}
	return m, nil
}

// goBenchmarks runs `go test -run XXX -benchmem -count 3` with args in dir,
// with env added to the environment, and returns its benchmark lines.
func goBenchmarks(dir, pkg string, env []string, args ...string) string {
	cmd := exec.Command("go", append(append([]string{"test", "-run", "XXX", "-benchmem", "-count", "3"}, args...), pkg)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "Benchmark") || strings.HasPrefix(l, "cpu:") {
			lines = append(lines, l)
		}
	}
	if err != nil {
		lines = append(lines, "go test -bench failed: "+err.Error())
	}
	return strings.Join(lines, "\n")
}

func machine() string {
	model := ""
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				model = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.Split(string(raw), "\n")[0])[1] + " kB"
	}
	return fmt.Sprintf("%s, %d cores (runtime.NumCPU), memory %s, Linux %s", model, runtime.NumCPU(), mem, kernel())
}

func kernel() string {
	raw, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(raw))
}

func versions(t stack.Tools) string {
	run := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).CombinedOutput() // wrk -v exits 1 after printing its version
		if len(out) == 0 {
			return name + ": ?"
		}
		return strings.TrimSpace(strings.Split(string(out), "\n")[0])
	}
	traefik := run(t.Traefik, "version")
	wrkVersion := run("wrk", "-v")
	return strings.Join([]string{
		"Traefik " + strings.TrimSpace(strings.TrimPrefix(traefik, "Version:")),
		run("go", "version"),
		"node " + run(t.Node, "--version"),
		strings.Fields(wrkVersion + " ?")[0] + " " + strings.Fields(wrkVersion + " ? ?")[1],
	}, "; ")
}

// stats of a series: median, min, max.
func stats(xs []float64) (median, lo, hi float64) {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0, 0, 0
	}
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return m, s[0], s[len(s)-1]
}

// ratios pairs the rounds of a and b (same round, same conditions).
func ratios(a, b []float64) []float64 {
	var out []float64
	for i := range a {
		if i < len(b) && b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

func rpsOf(rs []wrkResult) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.rps
	}
	return out
}
