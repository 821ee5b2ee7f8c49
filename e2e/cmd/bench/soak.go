package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// soakFault is soak.js's account of one fault.
type soakFault struct {
	Affected          int            `json:"affected"`
	Recovered         int            `json:"recovered"`
	P50               int64          `json:"p50"`
	P90               int64          `json:"p90"`
	Max               int64          `json:"max"`
	DisconnectReasons map[string]int `json:"disconnectReasons"`
	GapMissed         int            `json:"gapMissed"`   // deliveries in gaps in its window
	GapReceived       int            `json:"gapReceived"` // (evaluation only)
	RecoveredMs       []int64        `json:"recoveredMs"` // each affected client's time back, sorted (several processes are merged with it)
}

// soakStatus is soak.js's answer (status, evaluation, final).
type soakStatus struct {
	Type                  string               `json:"type"`
	Clients               int                  `json:"clients"`
	Connected             int                  `json:"connected"`
	Websocket             int                  `json:"websocket"`
	Subscribed            int                  `json:"subscribed"`
	Reconnects            int                  `json:"reconnects"`
	PendingRecovery       int                  `json:"pendingRecovery"`
	UnexpectedDisconnects int                  `json:"unexpectedDisconnects"`
	UnexpectedReasons     map[string]int       `json:"unexpectedReasons"`
	ConnectErrorMessages  map[string]int       `json:"connectErrorMessages"`
	Faults                map[string]soakFault `json:"faults"`
	// per 5-second bucket (epoch seconds): unexpected disconnects, and the
	// largest delay of the clients' event loop (ms)
	UnexpectedByTime map[string]int `json:"unexpectedByTime"`
	UpgradeErrors    map[string]int `json:"upgradeErrors"` // failed websocket probes (the client stays on polling)
	LagByTime        map[string]int `json:"lagByTime"`
	// evaluation
	Counted         int       `json:"counted"`
	ReceivedOnce    int       `json:"receivedOnce"`
	Lost            int       `json:"lost"`
	Duplicated      int       `json:"duplicated"`
	OutOfOrder      int       `json:"outOfOrder"`
	GapEvents       int       `json:"gapEvents"`
	GapReceived     int       `json:"gapReceived"`
	GapMissed       int       `json:"gapMissed"`
	GapDuplicated   int       `json:"gapDuplicated"`
	ClientsWithLoss int       `json:"clientsWithLoss"`
	GapsOutside     soakFault `json:"gapsOutsideFaults"`
}

// soakEvent is one PUBLISH: reached means it reached every live replica.
type soakEvent struct {
	Channel string `json:"channel"`
	Seq     int    `json:"seq"`
	T       int64  `json:"t"` // ms since the epoch, when the PUBLISH was answered
	Reached bool   `json:"reached"`
	count   int
}

// soakOptions are the run's settings.
type soakOptions struct {
	clients, channels                       int
	interval, healthInterval, healthTimeout time.Duration
	procs                                   int           // soak.js processes
	sourceAddrs                             bool          // each with its own loopback source address
	rate                                    int           // clients started per second, in all (0: at once)
	compareTrivial                          bool          // the same phase again with the trivial plugin
	trivialFirst                            bool          // the trivial plugin's phase before the guard's
	guardFront                              string        // the guard's front nginx: "stripping" (the report's) or "recipe" (Frappe's, as the trivial plugin's)
	idleConnTimeout                         time.Duration // the replicas' serversTransport idleConnTimeout (0: Traefik's default, 90 s)
	logsDir                                 string        // where the Traefiks' access logs (every answer) and output, and nginx's access log, are kept ("": not kept)
	portRange                               string
	maxFails                                int              // nginx's max_fails per Traefik (-1: nginx's default, 1 in 10 s)
	traefikLogLevel                         string           // the Traefiks' log level (WARN; DEBUG says why their proxy answered a 502)
	reconnectDelay                          [2]time.Duration // socket.io-client's reconnectionDelay, reconnectionDelayMax
}

type soakReport struct {
	soakOptions
	replicas     int
	phases       []*soakPhase
	cpu          []cpuSample
	started      time.Time
	elapsed      time.Duration
	limits       string
	portRangeWas string
	fileLimit    uint64
}

// soakPhase is one pass of the clients through one pair of Traefiks: the
// guard behind the header-stripping nginx, or the trivial plugin behind an
// nginx that passes Upgrade/Connection on.
type soakPhase struct {
	name, label         string
	final, evaluation   soakStatus
	atConnect           soakStatus    // when all were connected, or at the deadline
	connectedAfter      time.Duration // until all were on websocket and subscribed (-1: not within the deadline)
	faults              []faultRecord
	published           int
	notReached          int
	edges               []string
	memory              map[string][]traefikMem // per edge: before, during (all connected), after faults, after close
	counters            map[string]guardCounterSnapshot
	sources             string         // established connections to the front nginx by source address
	nginxErrors         map[string]int // front nginx's error.log, by message
	traefikLog          map[string]int // the Traefiks' log lines (WARN and above), by message
	traefikAccess       map[string]int // the Traefiks' answers of 400 and above, by status, method, transport, replica
	nginxAccess         map[string]int // the front nginx's answers, by status, method, transport
	notes               []string
	started, firstEvent time.Time
	elapsed             time.Duration
}

// faultRecord is what happened at one fault, from the driver's side.
type faultRecord struct {
	name, what  string
	at          time.Duration // since the first event
	eventsUntil time.Duration // until PUBLISH reached every live replica again (Redis)
}

type guardCounterSnapshot struct {
	requests   int64
	repairs    map[string]int64
	diagnoses  map[string]int64
	rejections map[string]int64
}

func runSoak(args []string) int {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	var o soakOptions
	fs.IntVar(&o.clients, "clients", 1000, "socket.io clients")
	fs.IntVar(&o.channels, "channels", 50, "channels (rooms); clients are spread over them")
	fs.DurationVar(&o.interval, "interval", 250*time.Millisecond, "time between two rounds of events (one per channel)")
	fs.DurationVar(&o.healthInterval, "health-interval", time.Second, "the replicas' health check's interval (a killed replica refuses the next check at once)")
	// Traefik's default timeout: with 1 s, one slow answer of a live replica
	// during the clients' connecting burst took it out of the load balancer
	// (1 of 4 runs here, "context deadline exceeded"), whose sticky sessions
	// then broke (Session ID unknown) — the soak's own doing, not a fault.
	fs.DurationVar(&o.healthTimeout, "health-timeout", 5*time.Second, "the replicas' health check's timeout (a busy replica answers slower)")
	procs := fs.Int("procs", 0, "soak.js processes the clients are spread over (0: one per 2,500 clients)")
	sourceAddrs := fs.String("source-addrs", "auto", "each soak.js process on its own loopback source address 127.0.0.2, 127.0.0.3, … (auto: when more than one process)")
	fs.IntVar(&o.rate, "rate", -1, "clients started per second, in all (0: all at once; -1: 250 from 5,000 clients, else 0)")
	compare := fs.String("compare-trivial", "auto", "run the same phase again with two Traefiks running the trivial plugin (auto: from 5,000 clients)")
	fs.StringVar(&o.portRange, "port-range", "auto", `local port range for the run, e.g. "1024 65000", restored after ("": leave it; auto: that one from 5,000 clients)`)
	fs.IntVar(&o.maxFails, "nginx-max-fails", -1, "the front nginx's max_fails for each Traefik (0: never take one out; -1: nginx's default, 1 failure takes it out for 10 s)")
	reconnect := fs.String("reconnect-delay", "auto", "the clients' reconnectionDelay,reconnectionDelayMax (auto: 500ms,2s below 5,000 clients; from 5,000 socket.io's defaults 1s,5s, which Frappe's desk keeps)")
	fs.StringVar(&o.traefikLogLevel, "traefik-log-level", "WARN", "the Traefiks' log level (DEBUG: their proxy logs why it answered a 502, e.g. an EOF from a replica; the report counts the lines)")
	fs.BoolVar(&o.trivialFirst, "trivial-first", false, "run the trivial plugin's phase before the guard's (to tell the plugin from the order)")
	fs.StringVar(&o.guardFront, "guard-front", "stripping", `the guard's front nginx: "stripping" (proxy_pass alone, the report's: every upgrade repaired) or "recipe" (Frappe's own, as in the trivial plugin's phase: nothing to repair, so the phases differ by the plugin alone)`)
	fs.DurationVar(&o.idleConnTimeout, "idle-conn-timeout", 0, "Traefik's idleConnTimeout towards the replicas (forwardingTimeouts of a serversTransport; 0: Traefik's default, 90 s). Node's servers close an idle connection after 5 s (keepAliveTimeout): below that, Traefik never sends a request on a connection a replica is closing")
	fs.StringVar(&o.logsDir, "keep-logs", "", "keep every answer the Traefiks logged (their access logs, then of every status), their output and the front nginx's access log in this directory, a file per phase, to follow one request")
	out := fs.String("out", "", "directory for soak.md (default: <repo>/bench)")
	_ = fs.Parse(args)
	if o.guardFront != "stripping" && o.guardFront != "recipe" {
		fmt.Fprintf(os.Stderr, "soak: -guard-front %q: want stripping or recipe\n", o.guardFront)
		return 2
	}
	large := o.clients >= 5000
	o.procs = *procs
	if o.procs <= 0 {
		o.procs = max(1, (o.clients+2499)/2500)
	}
	o.sourceAddrs = *sourceAddrs == "true" || *sourceAddrs == "auto" && o.procs > 1
	if o.rate < 0 {
		o.rate = 0
		if large {
			o.rate = 250
		}
	}
	o.compareTrivial = *compare == "true" || *compare == "auto" && large
	o.reconnectDelay = [2]time.Duration{500 * time.Millisecond, 2 * time.Second}
	if *reconnect == "auto" && large {
		o.reconnectDelay = [2]time.Duration{time.Second, 5 * time.Second}
	} else if *reconnect != "auto" {
		a, b, _ := strings.Cut(*reconnect, ",")
		d1, err1 := time.ParseDuration(a)
		d2, err2 := time.ParseDuration(b)
		if err1 != nil || err2 != nil {
			fmt.Fprintln(os.Stderr, "soak: --reconnect-delay wants two durations, e.g. 1s,5s")
			return 2
		}
		o.reconnectDelay = [2]time.Duration{d1, d2}
	}
	if o.portRange == "auto" {
		o.portRange = ""
		if large {
			o.portRange = "1024 65000"
		}
	}

	restorePorts, portsWas, err := widenPortRange(o.portRange)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	defer restorePorts()
	st, cleanup, err := stack.NewTemp("socketioguard-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	defer cleanup()
	// Interrupted: stop everything and give the port range back.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Fprintln(os.Stderr, "soak: interrupted; stopping everything")
		cleanup()
		restorePorts()
		os.Exit(130)
	}()
	fileLimit, err := scaleFor(st, o.clients)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	if *out == "" {
		*out = filepath.Join(st.Tools.Repo, "bench")
	}

	r, err := soak(st, o)
	if r != nil {
		r.portRangeWas, r.fileLimit = portsWas, fileLimit
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		fmt.Fprintln(os.Stderr, st.Logs())
		// nginx writes its own errors (a refused or failed upstream
		// connection) to its error log, not to its output.
		for _, name := range []string{"front-nginx", "front-nginx-upgrade"} {
			if b, err := os.ReadFile(filepath.Join(st.Dir, name, "logs", "error.log")); err == nil {
				fmt.Fprintf(os.Stderr, "----- %s error.log (last 6000 bytes) -----\n%s\n", name, stack.Tail(string(b), 6000))
			}
		}
		if r == nil || len(r.phases) == 0 {
			return 1
		}
	}
	if err := writeSoakReport(r, *out); err != nil {
		fmt.Fprintln(os.Stderr, "soak: report:", err)
		return 1
	}
	fmt.Printf("wrote %s\n", filepath.Join(*out, "soak.md"))
	if err != nil || !soakPassed(r) {
		fmt.Println("soak: FAILED (see the report)")
		return 1
	}
	return 0
}

// scaleFor raises what a run of this many clients needs on one machine:
// the file limit of this process and of everything it starts, as far as
// the hard limit lets it (no process here holds more than one connection a
// client each way: a soak.js process one per client of its own, a Traefik
// one in and one out per client it serves, nginx two per client, split
// over its workers); and nginx's workers and connections per worker. Only
// upwards.
func scaleFor(st *stack.Stack, clients int) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	perProcess := uint64(clients + 4096) // a Traefik: about half the clients, each way
	if lim.Cur < perProcess {
		lim.Cur = min(perProcess, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return lim.Max, fmt.Errorf("%d clients: raising the open-file limit to %d: %w", clients, lim.Cur, err)
		}
	}
	if lim.Cur < perProcess {
		return lim.Max, fmt.Errorf("%d clients need %d open files in each Traefik; the hard limit here is %d (ulimit -Hn; raising it is not permitted)", clients, perProcess, lim.Max)
	}
	if 2*clients+1024 > 8192 {
		st.NginxWorkers = int((uint64(2*clients) + lim.Cur/2) / (lim.Cur / 2)) // each worker well within the file limit
		st.NginxConnections = (2*clients)/st.NginxWorkers + 4096
		st.NginxFiles = int(lim.Cur)
	}
	return lim.Cur, nil
}

// soakPassed: in the guard's phase, no counted event lost, duplicated or
// reordered, and every client back (on websocket, subscribed) at the end.
// (The trivial plugin's phase is the reference, not the verdict.)
func soakPassed(r *soakReport) bool {
	for _, p := range r.phases {
		if p.name == "guard" {
			return phasePassed(p, r.clients)
		}
	}
	return false
}

func phasePassed(p *soakPhase, clients int) bool {
	e := p.evaluation
	return e.Counted > 0 && e.Lost == 0 && e.Duplicated == 0 && e.OutOfOrder == 0 &&
		e.Websocket == clients && e.Subscribed == clients && e.PendingRecovery == 0 && e.UnexpectedDisconnects == 0
}

const soakReplicas = 3

// cpuEdgeNames: the two Traefiks of either phase, in the CPU samples.
var cpuEdgeNames = []string{"traefik-a", "traefik-b"}

// soakEnv is what the phases share: Redis, the web app, the replicas.
type soakEnv struct {
	st       *stack.Stack
	o        soakOptions
	redis    *stack.Redis
	web      *stack.Webapp
	replicas []*stack.Realtime
	cpu      *cpuSampler
}

func soak(st *stack.Stack, o soakOptions) (*soakReport, error) {
	r := &soakReport{soakOptions: o, replicas: soakReplicas, started: time.Now()}
	env := &soakEnv{st: st, o: o, cpu: newCPUSampler(5 * time.Second)}
	defer func() {
		env.cpu.close()
		r.cpu = env.cpu.list()
		r.elapsed = time.Since(r.started)
	}()
	env.cpu.setStage("setup")
	var err error
	if env.redis, err = st.StartRedis("redis", 0); err != nil {
		return r, err
	}
	env.cpu.track("redis", env.redis.Cmd.Process.Pid)
	// The web app answers the realtime servers' session callbacks and
	// publishes the events through Redis, as Frappe does.
	if env.web, err = st.StartWebapp("webapp", stack.WebappOptions{Site: stack.Site, Redis: env.redis.URL()}); err != nil {
		return r, err
	}
	env.cpu.track("webapp", env.web.Cmd.Process.Pid)
	env.cpu.listener("webapp", env.web.Port)
	for i := 1; i <= soakReplicas; i++ {
		rt, err := st.StartRealtime(fmt.Sprintf("replica-%d", i), stack.RealtimeOptions{Redis: env.redis.URL(), ServerIP: stack.Addr(env.web.Port), AckSubscriptions: true})
		if err != nil {
			return r, err
		}
		env.replicas = append(env.replicas, rt)
		env.cpu.track(fmt.Sprintf("replica-%d", i), rt.Cmd.Process.Pid)
		env.cpu.listener(fmt.Sprintf("replica-%d", i), rt.Port)
	}
	r.limits = fmt.Sprintf("%d clients in %d Node process(es), on a %d-core machine shared with %d replicas, 2 Traefiks, nginx and Redis", o.clients, o.procs, runtime.NumCPU(), soakReplicas)
	kinds := []string{"guard"}
	if o.compareTrivial {
		kinds = append(kinds, "trivial")
		if o.trivialFirst {
			kinds = []string{"trivial", "guard"}
		}
	}
	for _, kind := range kinds {
		p, err := env.phase(kind)
		if p != nil {
			r.phases = append(r.phases, p)
		}
		if err != nil {
			return r, fmt.Errorf("%s phase: %w", kind, err)
		}
	}
	return r, nil
}

// soakDynamic is both Traefiks' dynamic configuration for a phase.
func (env *soakEnv) soakDynamic(kind string) string {
	var servers []string
	for _, rt := range env.replicas {
		servers = append(servers, fmt.Sprintf("{url: \"http://127.0.0.1:%d\"}", rt.Port))
	}
	middleware := `    sio-guard:
      plugin:
        socketioguard:
          setMissingOrigin: true
          eioVersions: ["4"]
          inspectPath: /socket.io/.guard
          stickyCookie: sio_sticky
`
	if kind == "trivial" {
		middleware = `    sio-guard:
      plugin:
        passthrough:
          headers:
            X-Demo: bench
`
	}
	transport := ""
	if env.o.idleConnTimeout > 0 {
		transport = fmt.Sprintf("        serversTransport: replicas\n  serversTransports:\n    replicas:\n      forwardingTimeouts: {idleConnTimeout: %s}\n", env.o.idleConnTimeout)
	}
	return fmt.Sprintf(`
http:
  middlewares:
    frappe-site:
      headers:
        customRequestHeaders:
          X-Frappe-Site-Name: %[1]s
%[4]s  routers:
    frappe-socketio:
      rule: Host(`+"`127.0.0.1`"+`) && PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [web]
      middlewares: [frappe-site, sio-guard]
      service: realtime
  services:
    realtime:
      loadBalancer:
        sticky: {cookie: {name: sio_sticky, httpOnly: true}}
        healthCheck: {path: "/socket.io/?EIO=4&transport=polling", interval: %[3]s, timeout: %[5]s}
        servers: [%[2]s]
%[6]s`, stack.Site, strings.Join(servers, ", "), env.o.healthInterval, middleware, env.o.healthTimeout, transport)
}

// phase runs the clients once through two Traefiks of this kind ("guard":
// socketioguard behind the header-stripping nginx; "trivial": the trivial
// plugin behind an nginx that passes Upgrade/Connection on, since a plugin
// that repairs nothing cannot upgrade through the other), with the faults,
// and stops the Traefiks and nginx again.
func (env *soakEnv) phase(kind string) (*soakPhase, error) {
	st, o, cpu := env.st, env.o, env.cpu
	clients, channels, interval := o.clients, o.channels, o.interval
	p := &soakPhase{name: kind, started: time.Now(), memory: map[string][]traefikMem{}, counters: map[string]guardCounterSnapshot{}}
	stage := func(s string) { cpu.setStage(kind + ": " + s) }
	stage("starting")
	var edges []*stack.Traefik
	var upstreams []string
	names := []string{"traefik-a", "traefik-b"}
	localPlugins := map[string]string(nil)
	if kind == "trivial" {
		names = []string{"traefik-a-trivial", "traefik-b-trivial"}
		localPlugins = map[string]string{"passthrough": filepath.Join(st.Tools.Repo, "e2e", "bench", "passthrough")}
		p.label = "two Traefiks with the trivial plugin (passthrough), behind an nginx that passes Upgrade/Connection on"
	} else {
		p.label = "two Traefiks with socketioguard, behind the header-stripping nginx"
		if o.guardFront == "recipe" {
			p.label = "two Traefiks with socketioguard, behind an nginx that passes Upgrade/Connection on (Frappe's recipe)"
		}
	}
	defer func() {
		for i, tr := range edges {
			cpu.track(cpuEdgeNames[i])
			tr.Stop()
		}
		cpu.track("nginx")
		p.elapsed = time.Since(p.started)
	}()
	for _, name := range names {
		// Its answers of 400 and above go to an access log (JSON), counted at
		// the end (with -keep-logs every answer, kept).
		accessLog := fmt.Sprintf("accessLog:\n  filePath: %s\n  format: json\n", filepath.Join(st.Dir, name+"-errors.json"))
		if o.logsDir == "" {
			accessLog += "  filters:\n    statusCodes: [\"400-599\"]\n"
		}
		tr, err := st.StartTraefik(stack.TraefikOptions{Name: name, EntryPoints: []string{"web"}, LogLevel: o.traefikLogLevel, Metrics: true,
			Routers: []string{"frappe-socketio@file"}, Dynamic: env.soakDynamic(kind), LocalPlugins: localPlugins, ExtraStatic: accessLog})
		if err != nil {
			return p, err
		}
		edges = append(edges, tr)
		p.edges = append(p.edges, name)
		cpu.track(cpuEdgeNames[len(edges)-1], tr.Cmd.Process.Pid)
		cpu.listener(cpuEdgeNames[len(edges)-1], tr.Ports["web"])
		server := fmt.Sprintf("server 127.0.0.1:%d", tr.Ports["web"])
		if o.maxFails >= 0 {
			server += fmt.Sprintf(" max_fails=%d", o.maxFails)
		}
		upstreams = append(upstreams, server+";")
	}
	backlog := ""
	if clients >= 5000 {
		backlog = " backlog=4096" // nginx's default is 511: a burst of handshakes overflows it
	}
	frontName := "front-nginx"
	// The report's broken front proxy (proxy_pass alone: Upgrade/Connection
	// dropped), spreading requests over the two Traefiks.
	frontConf := fmt.Sprintf(`
  upstream traefiks { %s }
  server {
    listen 127.0.0.1:{{port}}%s;
    location / {
      proxy_pass http://traefiks;
      proxy_set_header Host $http_host;
    }
  }`, strings.Join(upstreams, " "), backlog)
	if kind == "trivial" || o.guardFront == "recipe" {
		// Frappe's own nginx recipe for /socket.io (bench's nginx.conf:
		// Upgrade, Connection, Origin $scheme://$http_host): the trivial
		// plugin repairs nothing, and Node's clients send no Origin.
		frontName = "front-nginx-upgrade"
		if kind == "guard" {
			frontName = "front-nginx-recipe" // its own logs: the trivial phase's nginx writes the other
		}
		frontConf = fmt.Sprintf(`
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  upstream traefiks { %s }
  server {
    listen 127.0.0.1:{{port}}%s;
    location / {
      proxy_pass http://traefiks;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Origin $scheme://$http_host;
      proxy_set_header Host $http_host;
    }
  }`, strings.Join(upstreams, " "), backlog)
	}
	front, err := st.StartNginx(frontName, frontConf)
	if err != nil {
		return p, err
	}
	defer front.Stop()
	cpu.track("nginx", front.Cmd.Process.Pid)
	cpu.listener("nginx", front.Port)
	defer func() {
		p.nginxErrors = nginxErrorCounts(filepath.Join(st.Dir, frontName, "logs", "error.log"))
		p.traefikLog = map[string]int{}
		for _, tr := range edges {
			for k, v := range logCounts(tr.Logs()) {
				p.traefikLog[k] += v
			}
		}
		p.traefikAccess = map[string]int{}
		for _, name := range p.edges {
			for k, v := range traefikAccessCounts(filepath.Join(st.Dir, name+"-errors.json"), p.firstEvent) {
				p.traefikAccess[k] += v
			}
		}
		p.nginxAccess = nginxAccessCounts(filepath.Join(st.Dir, frontName, "logs", "access.log"), p.firstEvent)
		if o.logsDir != "" {
			keepLogs(o.logsDir, kind, st.Dir, frontName, p.edges, edges)
		}
	}()
	sample := func() {
		for i, tr := range edges {
			m, _ := traefikMemory(tr)
			p.memory[p.edges[i]] = append(p.memory[p.edges[i]], m)
		}
	}
	sample()

	stage("connecting")
	d, err := startSoakClients(st, front.URL(), clients, channels, o.procs, o.sourceAddrs, o.rate, o.reconnectDelay)
	if err != nil {
		return p, err
	}
	defer d.stop()
	cpu.track("soak.js", d.pids()...)
	defer cpu.track("soak.js")

	allBack := func(s soakStatus) bool {
		return s.Connected == clients && s.Websocket == clients && s.Subscribed == clients && s.PendingRecovery == 0
	}
	fmt.Printf("soak (%s): %d clients (%d process(es)%s, %s) → %s → %d replicas (Frappe's way) → Redis\n", kind, clients, o.procs,
		map[bool]string{true: ", own source addresses", false: ""}[o.sourceAddrs], map[bool]string{true: fmt.Sprintf("%d a second", o.rate), false: "all at once"}[o.rate > 0], p.label, soakReplicas)
	connectTimeout := time.Duration(180+clients/50) * time.Second
	if o.rate > 0 {
		connectTimeout = time.Duration(clients/o.rate+120) * time.Second
	}
	connectStart := time.Now()
	p.connectedAfter = -1
	s, err := d.waitFor("status", connectTimeout, 250*time.Millisecond, allBack)
	p.atConnect = s
	if err != nil {
		if s.Type == "" {
			return p, err
		}
		p.notes = append(p.notes, fmt.Sprintf("not all on websocket and subscribed %s after the first client started: %s", connectTimeout, s.brief()))
		fmt.Printf("  NOT all connected within %s: %s\n", connectTimeout, s.brief())
	} else {
		p.connectedAfter = time.Since(connectStart)
		fmt.Printf("  all %d connected, on websocket, subscribed after %s\n", s.Connected, p.connectedAfter.Round(100*time.Millisecond))
	}
	p.sources = sourceAddresses(front.Port)
	fmt.Printf("  connections to nginx by source address: %s\n", p.sources)
	sample()

	// Events: one round per interval, one event per channel, for the whole run.
	stage("events")
	var (
		mu     sync.Mutex
		events []soakEvent
		live   atomic.Int32
	)
	live.Store(soakReplicas)
	stopPublishing := make(chan struct{})
	publisherDone := make(chan struct{})
	firstEvent := time.Now()
	p.firstEvent = firstEvent
	go func() {
		defer close(publisherDone)
		ticker := time.NewTicker(interval)
		defer ticker.Stop()
		for seq := 1; ; seq++ {
			for ch := 0; ch < channels; ch++ {
				channel := fmt.Sprintf("soak-%d", ch)
				msg := map[string]any{"channel_id": channel, "sender": "Administrator", "seq": seq,
					"message_id": fmt.Sprintf("SOAK-%d-%d", ch, seq), "message_details": map[string]any{"text": fmt.Sprint("message ", seq), "message_type": "Text"}}
				liveNow := int(live.Load())
				n, err := env.web.Publish(stack.Site, "doc:Raven Channel/"+channel, "message_created", msg)
				mu.Lock()
				events = append(events, soakEvent{Channel: channel, Seq: seq, T: time.Now().UnixMilli(), Reached: err == nil && n >= liveNow, count: n})
				mu.Unlock()
			}
			select {
			case <-stopPublishing:
				return
			case <-ticker.C:
			}
		}
	}()
	stopEvents := func() {
		select {
		case <-stopPublishing:
		default:
			close(stopPublishing)
		}
		<-publisherDone
	}
	defer stopEvents()
	reachedAllSince := func(since time.Time) time.Duration {
		deadline := time.Now().Add(60 * time.Second)
		for time.Now().Before(deadline) {
			mu.Lock()
			for _, ev := range events {
				if ev.T >= since.UnixMilli() && ev.Reached && ev.count >= soakReplicas {
					mu.Unlock()
					return time.UnixMilli(ev.T).Sub(since)
				}
			}
			mu.Unlock()
			time.Sleep(100 * time.Millisecond)
		}
		return -1
	}
	markFault := func(name string) error {
		_, err := d.ask("fault " + name)
		return err
	}
	time.Sleep(5 * time.Second)

	// Fault 1: kill -9 one replica. Its clients fail over (the health check
	// removes it; the sticky cookie then points elsewhere).
	stage("replica killed")
	victim := env.replicas[1]
	if err := markFault("replica-killed"); err != nil {
		return p, err
	}
	killAt := time.Now()
	live.Store(soakReplicas - 1)
	_ = syscall.Kill(-victim.Cmd.Process.Pid, syscall.SIGKILL)
	victim.Wait()
	p.faults = append(p.faults, faultRecord{name: "replica-killed", what: fmt.Sprintf("kill -9 of %s (one of %d replicas)", victim.Name, soakReplicas), at: killAt.Sub(firstEvent)})
	if s, err := d.waitFor("status", 120*time.Second, 250*time.Millisecond, allBack); err != nil {
		if s.Type == "" {
			return p, err
		}
		p.notes = append(p.notes, fmt.Sprintf("after the kill, not all back on websocket within 120 s: %s", s.brief()))
		fmt.Printf("  killed %s: NOT all back within 120 s: %s\n", victim.Name, s.brief())
	} else {
		fmt.Printf("  killed %s: every affected client back on websocket after %s\n", victim.Name, time.Since(killAt).Round(100*time.Millisecond))
	}
	sample()
	time.Sleep(3 * time.Second)

	// The killed replica starts again on its port (no client should move).
	stage("replica back")
	if err := markFault("replica-back"); err != nil {
		return p, err
	}
	backAt := time.Now()
	if env.replicas[1], err = victim.Restart(st, victim.Name+"-"+kind+"-again"); err != nil {
		return p, err
	}
	cpu.track("replica-2", env.replicas[1].Cmd.Process.Pid)
	live.Store(soakReplicas)
	p.faults = append(p.faults, faultRecord{name: "replica-back", what: victim.Name + " started again on its port", at: backAt.Sub(firstEvent),
		eventsUntil: reachedAllSince(backAt)})
	time.Sleep(4 * time.Second)

	// Redis restarts once: every replica's subscription goes and comes back.
	stage("redis restarted")
	if err := markFault("redis-restarted"); err != nil {
		return p, err
	}
	redisAt := time.Now()
	env.redis.Stop()
	time.Sleep(time.Second) // a restart that takes a second
	if env.redis, err = st.StartRedis("redis-"+kind+"-again", env.redis.Port); err != nil {
		return p, err
	}
	cpu.track("redis", env.redis.Cmd.Process.Pid)
	p.faults = append(p.faults, faultRecord{name: "redis-restarted", what: "Redis stopped, and started again on its port 1 s later", at: redisAt.Sub(firstEvent),
		eventsUntil: reachedAllSince(redisAt)})
	fmt.Printf("  restarted Redis: PUBLISH reached every replica again after %s\n", p.faults[len(p.faults)-1].eventsUntil.Round(100*time.Millisecond))
	time.Sleep(4 * time.Second)
	stage("events")
	if err := markFault("-"); err != nil {
		return p, err
	}
	time.Sleep(3 * time.Second)
	stopEvents()
	time.Sleep(2 * time.Second) // the last events arrive

	stage("evaluating")
	mu.Lock()
	p.published = len(events)
	for _, ev := range events {
		if !ev.Reached {
			p.notReached++
		}
	}
	list, _ := json.Marshal(events)
	mu.Unlock()
	eventsFile := filepath.Join(st.Dir, "events-"+kind+".json")
	if err := os.WriteFile(eventsFile, list, 0o644); err != nil {
		return p, err
	}
	if p.evaluation, err = d.ask("evaluate " + eventsFile); err != nil {
		return p, err
	}
	e := p.evaluation
	fmt.Printf("  %d events published (%d not reaching every live replica); counted deliveries: %d, received once %d, lost %d, duplicated %d, out of order %d; in gaps: %d (%d received, %d missed)\n",
		p.published, p.notReached, e.Counted, e.ReceivedOnce, e.Lost, e.Duplicated, e.OutOfOrder, e.GapEvents, e.GapReceived, e.GapMissed)
	fmt.Printf("  at the end: %s\n", e.brief())
	sample()
	for i, tr := range edges {
		if kind == "guard" {
			p.counters[p.edges[i]] = guardCounters(tr)
		}
	}
	stage("closing")
	if p.final, err = d.ask("close"); err != nil {
		return p, err
	}
	// Let the closed connections finish (goroutines back near the start), at most 20 s.
	for i := 0; i < 40; i++ {
		time.Sleep(500 * time.Millisecond)
		settled := true
		for j, tr := range edges {
			m, _ := traefikMemory(tr)
			settled = settled && m.goroutines <= p.memory[p.edges[j]][0].goroutines+10
		}
		if settled {
			break
		}
	}
	sample()
	return p, nil
}

// nginxErrorCounts counts the lines of nginx's error log by message (the
// part between "*N " and the first ", client:"), at info and above.
func nginxErrorCounts(path string) map[string]int {
	return countLines(path, func(line string) string {
		level := ""
		for _, l := range []string{"[info]", "[error]", "[warn]", "[crit]", "[alert]", "[emerg]"} {
			if strings.Contains(line, l) {
				level = l
			}
		}
		if level == "" {
			return ""
		}
		msg := line
		if i := strings.Index(msg, "*"); i >= 0 {
			if j := strings.IndexByte(msg[i:], ' '); j > 0 {
				msg = msg[i+j+1:]
			}
		} else if i := strings.Index(msg, level); i >= 0 {
			msg = msg[i+len(level):]
			if j := strings.IndexByte(msg, ':'); j >= 0 {
				msg = msg[j+1:]
			}
		}
		if i := strings.Index(msg, ", client:"); i >= 0 {
			msg = msg[:i]
		}
		return level + " " + strings.TrimSpace(msg)
	})
}

// countLines counts the lines of a log file by the key each reads as (""
// for a line not counted); nil when the file cannot be read.
func countLines(path string, key func(line string) string) map[string]int {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]int{}
	for _, line := range strings.Split(string(raw), "\n") {
		if k := key(line); k != "" {
			out[k]++
		}
	}
	return out
}

// logCounts counts a Traefik's log lines by message (its "msg" or the text
// after the level), addresses and numbers blurred.
func logCounts(logs string) map[string]int {
	out := map[string]int{}
	for _, line := range strings.Split(logs, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		msg := line
		for _, lvl := range []string{" ERR ", " WRN ", " FTL ", " INF ", " DBG "} {
			if i := strings.Index(msg, lvl); i >= 0 {
				msg = strings.TrimSpace(msg[i:])
				break
			}
		}
		msg = blurNumbers(msg)
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		out[msg]++
	}
	return out
}

// blurNumbers writes every run of digits as N (ports, ids, times).
func blurNumbers(s string) string {
	var b strings.Builder
	inDigits := false
	for _, r := range s {
		if r >= '0' && r <= '9' {
			if !inDigits {
				b.WriteByte('N')
			}
			inDigits = true
			continue
		}
		inDigits = false
		b.WriteRune(r)
	}
	return b.String()
}

// guardCounters reads the guard's inspect endpoint on one Traefik.
func guardCounters(tr *stack.Traefik) guardCounterSnapshot {
	resp, err := http.Get(tr.URL("web") + "/socket.io/.guard")
	if err != nil {
		return guardCounterSnapshot{}
	}
	defer resp.Body.Close()
	var info struct {
		Counters struct {
			EngineIORequests int64            `json:"engineIORequests"`
			Repairs          map[string]int64 `json:"repairs"`
			Diagnoses        map[string]int64 `json:"diagnoses"`
			Rejections       map[string]int64 `json:"rejections"`
		} `json:"counters"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	c := info.Counters
	return guardCounterSnapshot{requests: c.EngineIORequests, repairs: c.Repairs, diagnoses: c.Diagnoses, rejections: c.Rejections}
}

// transportOf is "polling", "websocket" or "other" for a request URI.
func transportOf(uri string) string {
	switch {
	case strings.Contains(uri, "transport=polling"):
		if strings.Contains(uri, "sid=") {
			return "polling"
		}
		return "polling handshake"
	case strings.Contains(uri, "transport=websocket"):
		return "websocket"
	}
	return "other"
}

// traefikAccessCounts counts a Traefik's JSON access log (400 and above) by
// status, method, transport and the replica it went to.
func traefikAccessCounts(path string, firstEvent time.Time) map[string]int {
	return countLines(path, func(line string) string {
		var e struct {
			Status int             `json:"DownstreamStatus"`
			Method string          `json:"RequestMethod"`
			Path   string          `json:"RequestPath"`
			Server json.RawMessage `json:"ServiceURL"`
			Start  time.Time       `json:"StartUTC"`
		}
		if json.Unmarshal([]byte(line), &e) != nil || e.Status < 400 {
			return ""
		}
		return fmt.Sprintf("%s: %d %s %s → %s", soakWhen(e.Start, firstEvent), e.Status, e.Method, transportOf(e.Path), strings.Trim(string(e.Server), `"`))
	})
}

// nginxAccessCounts counts nginx's access log (combined format) by status,
// method and transport.
func nginxAccessCounts(path string, firstEvent time.Time) map[string]int {
	return countLines(path, func(line string) string {
		// … [06/Dec/2026:23:39:42 +0000] "GET /socket.io/?EIO=4&transport=polling… HTTP/1.1" 200 …
		var at time.Time
		if i := strings.IndexByte(line, '['); i >= 0 {
			if j := strings.IndexByte(line[i:], ']'); j > 0 {
				at, _ = time.Parse("02/Jan/2006:15:04:05 -0700", line[i+1:i+j])
			}
		}
		_, rest, ok := strings.Cut(line, "\"")
		if !ok {
			return ""
		}
		request, rest, ok := strings.Cut(rest, "\"")
		if !ok {
			return ""
		}
		f := strings.Fields(request)
		status := strings.Fields(rest)
		if len(f) < 2 || len(status) < 1 {
			return ""
		}
		return fmt.Sprintf("%s: %s %s %s", soakWhen(at, firstEvent), status[0], f[0], transportOf(f[1]))
	})
}

// soakWhen: "connecting" before the first event (nginx logs the end of a
// request: a long poll ends up to 25 s after it began), else "events, faults".
func soakWhen(t, firstEvent time.Time) string {
	if firstEvent.IsZero() || t.Before(firstEvent) {
		return "connecting"
	}
	return "events, faults"
}

// keepLogs copies a phase's logs into dir (-keep-logs): each Traefik's
// access log and output, and the front nginx's access log, named by phase.
func keepLogs(dir, kind, stackDir, frontName string, names []string, edges []*stack.Traefik) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "soak: keep logs: %v\n", err)
		return
	}
	copyFile := func(from, to string) {
		if raw, err := os.ReadFile(from); err == nil {
			_ = os.WriteFile(filepath.Join(dir, to), raw, 0o644)
		}
	}
	for i, name := range names {
		copyFile(filepath.Join(stackDir, name+"-errors.json"), kind+"-"+name+"-access.json")
		if i < len(edges) {
			_ = os.WriteFile(filepath.Join(dir, kind+"-"+name+".log"), []byte(edges[i].Logs()), 0o644)
		}
	}
	copyFile(filepath.Join(stackDir, frontName, "logs", "access.log"), kind+"-"+frontName+"-access.log")
}
