package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
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

// edgeSample is one Traefik's memory at one moment.
type edgeSample struct{ rss, heap, goroutines float64 }

type soakReport struct {
	clients, channels, replicas int
	interval, healthTimeout     time.Duration
	final, evaluation           soakStatus
	faults                      []faultRecord
	published, notReached       int
	edges                       []string
	memory                      map[string][]edgeSample // per edge: before, during (all connected), after faults, after close
	counters                    map[string]guardCounterSnapshot
	started                     time.Time
	elapsed                     time.Duration
	limits                      string
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
	clients := fs.Int("clients", 1000, "socket.io clients")
	channels := fs.Int("channels", 50, "channels (rooms); clients are spread over them")
	interval := fs.Duration("interval", 250*time.Millisecond, "time between two rounds of events (one per channel)")
	healthTimeout := fs.Duration("health-timeout", time.Second, "the replicas' health check's interval and timeout (a busy replica answers slower)")
	out := fs.String("out", "", "directory for soak.md (default: <repo>/bench)")
	_ = fs.Parse(args)

	st, cleanup, err := stack.NewTemp("socketioguard-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	defer cleanup()
	if err := scaleFor(st, *clients); err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	if *out == "" {
		*out = filepath.Join(st.Tools.Repo, "bench")
	}

	r, err := soak(st, *clients, *channels, *interval, *healthTimeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		fmt.Fprintln(os.Stderr, st.Logs())
		// nginx writes its own errors (a refused or failed upstream
		// connection) to its error log, not to its output.
		if b, err := os.ReadFile(filepath.Join(st.Dir, "front-nginx", "logs", "error.log")); err == nil {
			fmt.Fprintf(os.Stderr, "----- front-nginx error.log (last 6000 bytes) -----\n%s\n", stack.Tail(string(b), 6000))
		}
		return 1
	}
	if err := writeSoakReport(r, *out); err != nil {
		fmt.Fprintln(os.Stderr, "soak: report:", err)
		return 1
	}
	fmt.Printf("wrote %s\n", filepath.Join(*out, "soak.md"))
	if !soakPassed(r) {
		fmt.Println("soak: FAILED (see the report)")
		return 1
	}
	return 0
}

// scaleFor raises what a run of this many clients needs on one machine:
// the file limit of this process and of everything it starts, as far as
// the hard limit lets it (no process here holds more than one connection a
// client each way: soak.js one per client, a Traefik one in and one out per
// client it serves, nginx two per client, split over its workers); and
// nginx's workers and connections per worker. Only upwards.
func scaleFor(st *stack.Stack, clients int) error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return err
	}
	perProcess := uint64(clients + 4096)
	if lim.Cur < perProcess {
		lim.Cur = min(perProcess, lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return fmt.Errorf("%d clients: raising the open-file limit to %d: %w", clients, lim.Cur, err)
		}
	}
	if lim.Cur < perProcess {
		return fmt.Errorf("%d clients need %d open files in soak.js and in each Traefik; the hard limit here is %d (ulimit -Hn; raising it is not permitted)", clients, perProcess, lim.Max)
	}
	if 2*clients+1024 > 8192 {
		st.NginxWorkers = int((uint64(2*clients) + lim.Cur/2) / (lim.Cur / 2)) // each worker well within the file limit
		st.NginxConnections = (2*clients)/st.NginxWorkers + 4096
		st.NginxFiles = int(lim.Cur)
	}
	return nil
}

// soakPassed: no counted event lost, duplicated or reordered, and every
// client back (on websocket, subscribed) at the end.
func soakPassed(r *soakReport) bool {
	e := r.evaluation
	return e.Counted > 0 && e.Lost == 0 && e.Duplicated == 0 && e.OutOfOrder == 0 &&
		e.Websocket == r.clients && e.Subscribed == r.clients && e.PendingRecovery == 0 && e.UnexpectedDisconnects == 0
}

const soakReplicas = 3

func soak(st *stack.Stack, clients, channels int, interval, healthTimeout time.Duration) (*soakReport, error) {
	r := &soakReport{clients: clients, channels: channels, replicas: soakReplicas, interval: interval, healthTimeout: healthTimeout, started: time.Now(),
		memory: map[string][]edgeSample{}, counters: map[string]guardCounterSnapshot{}}
	redis, err := st.StartRedis("redis", 0)
	if err != nil {
		return nil, err
	}
	// The web app answers the realtime servers' session callbacks and
	// publishes the events through Redis, as Frappe does.
	web, err := st.StartWebapp("webapp", stack.WebappOptions{Site: stack.Site, Redis: redis.URL()})
	if err != nil {
		return nil, err
	}
	var replicas []*stack.Realtime
	var servers []string
	for i := 1; i <= soakReplicas; i++ {
		rt, err := st.StartRealtime(fmt.Sprintf("replica-%d", i), stack.RealtimeOptions{Redis: redis.URL(), ServerIP: stack.Addr(web.Port), AckSubscriptions: true})
		if err != nil {
			return nil, err
		}
		replicas = append(replicas, rt)
		servers = append(servers, fmt.Sprintf("{url: \"http://127.0.0.1:%d\"}", rt.Port))
	}
	dynamic := fmt.Sprintf(`
http:
  middlewares:
    frappe-site:
      headers:
        customRequestHeaders:
          X-Frappe-Site-Name: %[1]s
    sio-guard:
      plugin:
        socketioguard:
          setMissingOrigin: true
          eioVersions: ["4"]
          inspectPath: /socket.io/.guard
  routers:
    frappe-socketio:
      rule: Host(`+"`127.0.0.1`"+`) && PathPrefix(`+"`/socket.io`"+`)
      entryPoints: [web]
      middlewares: [frappe-site, sio-guard]
      service: realtime
  services:
    realtime:
      loadBalancer:
        sticky: {cookie: {name: sio_sticky, httpOnly: true}}
        healthCheck: {path: "/socket.io/?EIO=4&transport=polling", interval: %[3]s, timeout: %[3]s}
        servers: [%[2]s]
`, stack.Site, strings.Join(servers, ", "), healthTimeout)
	var edges []*stack.Traefik
	var upstreams []string
	for _, name := range []string{"traefik-a", "traefik-b"} {
		tr, err := st.StartTraefik(stack.TraefikOptions{Name: name, EntryPoints: []string{"web"}, LogLevel: "ERROR", Metrics: true,
			Routers: []string{"frappe-socketio@file"}, Dynamic: dynamic})
		if err != nil {
			return nil, err
		}
		edges = append(edges, tr)
		r.edges = append(r.edges, name)
		upstreams = append(upstreams, fmt.Sprintf("server 127.0.0.1:%d;", tr.Ports["web"]))
	}
	// The report's broken front proxy (proxy_pass alone: Upgrade/Connection
	// dropped), spreading requests over the two Traefiks.
	front, err := st.StartNginx("front-nginx", fmt.Sprintf(`
  upstream traefiks { %s }
  server {
    listen 127.0.0.1:{{port}};
    location / {
      proxy_pass http://traefiks;
      proxy_set_header Host $http_host;
    }
  }`, strings.Join(upstreams, " ")))
	if err != nil {
		return nil, err
	}
	sample := func() {
		for i, tr := range edges {
			rss, heap, g, _ := traefikMemory(tr)
			r.memory[r.edges[i]] = append(r.memory[r.edges[i]], edgeSample{rss, heap, g})
		}
	}
	sample()

	d, err := startNodeDriver[soakStatus](st, "soak.js", "--url", front.URL(),
		"--namespace", "/"+stack.Site, "--clients", fmt.Sprint(clients), "--channels", fmt.Sprint(channels))
	if err != nil {
		return nil, err
	}
	defer d.stop()

	allBack := func(s soakStatus) bool {
		return s.Connected == clients && s.Websocket == clients && s.Subscribed == clients && s.PendingRecovery == 0
	}
	fmt.Printf("soak: %d clients → header-stripping nginx → 2 Traefiks + guard → %d replicas (Frappe's way) → Redis\n", clients, soakReplicas)
	s, err := d.waitFor("status", time.Duration(180+clients/50)*time.Second, 250*time.Millisecond, allBack)
	if err != nil {
		return nil, fmt.Errorf("clients never all connected on websocket: %w", err)
	}
	fmt.Printf("  all %d connected, on websocket, subscribed\n", s.Connected)
	sample()

	// Events: one round per interval, one event per channel, for the whole run.
	var (
		mu     sync.Mutex
		events []soakEvent
		live   atomic.Int32
	)
	live.Store(soakReplicas)
	stopPublishing := make(chan struct{})
	publisherDone := make(chan struct{})
	firstEvent := time.Now()
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
				n, err := web.Publish(stack.Site, "doc:Raven Channel/"+channel, "message_created", msg)
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
	victim := replicas[1]
	if err := markFault("replica-killed"); err != nil {
		return nil, err
	}
	killAt := time.Now()
	live.Store(soakReplicas - 1)
	_ = syscall.Kill(-victim.Cmd.Process.Pid, syscall.SIGKILL)
	victim.Wait()
	r.faults = append(r.faults, faultRecord{name: "replica-killed", what: fmt.Sprintf("kill -9 of %s (one of %d replicas)", victim.Name, soakReplicas), at: killAt.Sub(firstEvent)})
	if _, err := d.waitFor("status", 120*time.Second, 250*time.Millisecond, allBack); err != nil {
		return nil, fmt.Errorf("the killed replica's clients did not all come back: %w; the guard's counters: %+v, %+v", err, guardCounters(edges[0]), guardCounters(edges[1]))
	}
	fmt.Printf("  killed %s: every affected client back on websocket after %s\n", victim.Name, time.Since(killAt).Round(100*time.Millisecond))
	sample()
	time.Sleep(3 * time.Second)

	// The killed replica starts again on its port (no client should move).
	if err := markFault("replica-back"); err != nil {
		return nil, err
	}
	backAt := time.Now()
	if replicas[1], err = victim.Restart(st, victim.Name+"-again"); err != nil {
		return nil, err
	}
	live.Store(soakReplicas)
	r.faults = append(r.faults, faultRecord{name: "replica-back", what: victim.Name + " started again on its port", at: backAt.Sub(firstEvent),
		eventsUntil: reachedAllSince(backAt)})
	time.Sleep(4 * time.Second)

	// Redis restarts once: every replica's subscription goes and comes back.
	if err := markFault("redis-restarted"); err != nil {
		return nil, err
	}
	redisAt := time.Now()
	redis.Stop()
	time.Sleep(time.Second) // a restart that takes a second
	if redis, err = st.StartRedis("redis-again", redis.Port); err != nil {
		return nil, err
	}
	r.faults = append(r.faults, faultRecord{name: "redis-restarted", what: "Redis stopped, and started again on its port 1 s later", at: redisAt.Sub(firstEvent),
		eventsUntil: reachedAllSince(redisAt)})
	fmt.Printf("  restarted Redis: PUBLISH reached every replica again after %s\n", r.faults[len(r.faults)-1].eventsUntil.Round(100*time.Millisecond))
	time.Sleep(4 * time.Second)
	if err := markFault("-"); err != nil {
		return nil, err
	}
	time.Sleep(3 * time.Second)
	close(stopPublishing)
	<-publisherDone
	time.Sleep(2 * time.Second) // the last events arrive

	mu.Lock()
	r.published = len(events)
	for _, ev := range events {
		if !ev.Reached {
			r.notReached++
		}
	}
	list, _ := json.Marshal(events)
	mu.Unlock()
	eventsFile := filepath.Join(st.Dir, "events.json")
	if err := os.WriteFile(eventsFile, list, 0o644); err != nil {
		return nil, err
	}
	if r.evaluation, err = d.ask("evaluate " + eventsFile); err != nil {
		return nil, err
	}
	e := r.evaluation
	fmt.Printf("  %d events published (%d not reaching every live replica); counted deliveries: %d, received once %d, lost %d, duplicated %d, out of order %d; in gaps: %d (%d received, %d missed)\n",
		r.published, r.notReached, e.Counted, e.ReceivedOnce, e.Lost, e.Duplicated, e.OutOfOrder, e.GapEvents, e.GapReceived, e.GapMissed)
	sample()
	for i, tr := range edges {
		r.counters[r.edges[i]] = guardCounters(tr)
	}
	if r.final, err = d.ask("close"); err != nil {
		return nil, err
	}
	// Let the closed connections finish (goroutines back near the start), at most 20 s.
	for i := 0; i < 40; i++ {
		time.Sleep(500 * time.Millisecond)
		settled := true
		for j, tr := range edges {
			_, _, g, _ := traefikMemory(tr)
			settled = settled && g <= r.memory[r.edges[j]][0].goroutines+10
		}
		if settled {
			break
		}
	}
	sample()
	r.limits = fmt.Sprintf("%d clients in one Node process, on a %d-core machine shared with %d replicas, 2 Traefiks, nginx and Redis", clients, runtime.NumCPU(), soakReplicas)
	r.elapsed = time.Since(r.started)
	return r, nil
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

func writeSoakReport(r *soakReport, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	verdict := "PASSED"
	if !soakPassed(r) {
		verdict = "FAILED"
	}
	e := r.evaluation
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: %d clients, two Traefiks, %d replicas on Redis, with faults\n\n", r.clients, r.replicas)
	fmt.Fprintf(&b, "`make soak` (`e2e/cmd/bench soak`), %s, %s: **%s**.\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.elapsed.Round(time.Second), verdict)
	fmt.Fprintf(&b, "%d socket.io-client 4.8 sessions (one Node process, cookies kept like a browser) → nginx with `proxy_pass` only (drops Upgrade/Connection), spreading requests over two Traefik %s with socketioguard (`setMissingOrigin`, `eioVersions: 4`) and the same dynamic configuration → %d Frappe-like Socket.IO 4.8 replicas, Frappe's way (each subscribes to Redis `events`), behind `loadBalancer.sticky.cookie` and `healthCheck` (a polling handshake every %s) → Debian's Redis. Each client joins one of %d channels (`doc:Raven Channel/soak-N`); the web app publishes one `message_created` per channel every %s (`PUBLISH events`, as `frappe.publish_realtime`) for the whole run.\n\n", r.clients, stack.MainTraefik, r.replicas, r.healthTimeout, r.channels, r.interval)
	fmt.Fprintf(&b, "An event is **counted** for a client when its PUBLISH reached every live replica (Redis's answer) and the client was subscribed from 1 s before to 1 s after it; every other event is counted apart (**in gaps**).\n\n")
	fmt.Fprintf(&b, "| | count |\n|---|---|\n")
	row := func(name string, v int) { fmt.Fprintf(&b, "| %s | %d |\n", name, v) }
	row("events published", r.published)
	row("events whose PUBLISH did not reach every live replica", r.notReached)
	row("counted deliveries (client × event)", e.Counted)
	row("… received exactly once", e.ReceivedOnce)
	row("… lost", e.Lost)
	row("… duplicated", e.Duplicated)
	row("… out of order", e.OutOfOrder)
	row("deliveries in gaps (not counted)", e.GapEvents)
	row("… received anyway", e.GapReceived)
	row("… missed", e.GapMissed)
	row("… duplicated", e.GapDuplicated)
	row("clients on websocket and subscribed at the end", min(e.Websocket, e.Subscribed))
	row("unexpected disconnects (outside the faults)", e.UnexpectedDisconnects)
	fmt.Fprintf(&b, "\n## Faults\n\n| fault | at | clients disconnected | back on websocket: p50 / p90 / max | events in gaps |\n|---|---|---|---|---|\n")
	for _, f := range r.faults {
		sf := e.Faults[f.name]
		back := "—"
		if sf.Affected > 0 {
			back = fmt.Sprintf("%d of %d: %.1f s / %.1f s / %.1f s", sf.Recovered, sf.Affected, float64(sf.P50)/1000, float64(sf.P90)/1000, float64(sf.Max)/1000)
		}
		gaps := fmt.Sprintf("%d missed, %d received anyway", sf.GapMissed, sf.GapReceived)
		if f.eventsUntil > 0 {
			gaps += fmt.Sprintf("; PUBLISH reached every replica again %.1f s after the fault began", f.eventsUntil.Seconds())
		}
		fmt.Fprintf(&b, "| %s | %.1f s | %d | %s | %s |\n", f.what, f.at.Seconds(), sf.Affected, back, gaps)
	}
	fmt.Fprintf(&b, "\nDisconnect reasons per fault (socket.io-client's): ")
	for _, f := range r.faults {
		fmt.Fprintf(&b, "%s %v; ", f.name, e.Faults[f.name].DisconnectReasons)
	}
	fmt.Fprintf(&b, "outside faults %v. Connect errors: %v. Deliveries in gaps outside every fault's window: %d missed, %d received.\n",
		e.UnexpectedReasons, e.ConnectErrorMessages, e.GapsOutside.GapMissed, e.GapsOutside.GapReceived)
	fmt.Fprintf(&b, "\nA fault's window runs from 1 s before it to 1 s after its last affected client was back (at least 2 s). Deliveries in gaps are the events a client could not be expected to get: published while it was reconnecting (and the second around it), or while a replica's subscription to Redis was down. They are counted here, not hidden, and not held against the run.\n")
	fmt.Fprintf(&b, "\n## The guard, on each Traefik (inspect endpoint)\n\n| Traefik | Engine.IO requests | repairs | diagnoses | rejections |\n|---|---|---|---|---|\n")
	for _, name := range r.edges {
		c := r.counters[name]
		fmt.Fprintf(&b, "| %s | %d | %v | %v | %v |\n", name, c.requests, c.repairs, c.diagnoses, c.rejections)
	}
	fmt.Fprintf(&b, "\n## Traefik's memory and goroutines\n\nGo heap in use (from its metrics, after a forced GC), RSS from /proc, goroutines.\n\n| Traefik | before the clients | all connected | after the faults | after the clients closed |\n|---|---|---|---|---|\n")
	for _, name := range r.edges {
		m := r.memory[name]
		fmt.Fprintf(&b, "| %s |", name)
		for _, idx := range []int{0, 1, len(m) - 2, len(m) - 1} {
			if idx >= 0 && idx < len(m) {
				fmt.Fprintf(&b, " heap %.1f MiB, RSS %.1f MiB, %.0f goroutines |", m[idx].heap, m[idx].rss, m[idx].goroutines)
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nLimits: %s.\n", r.limits)
	return os.WriteFile(filepath.Join(out, "soak.md"), []byte(b.String()), 0o644)
}
