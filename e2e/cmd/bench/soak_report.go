package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

func writeSoakReport(r *soakReport, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	verdict := "PASSED"
	if !soakPassed(r) {
		verdict = "FAILED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: %d clients, two Traefiks, %d replicas on Redis, with faults\n\n", r.clients, r.replicas)
	fmt.Fprintf(&b, "`make soak` (`e2e/cmd/bench soak`), %s, %s: **%s**.\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.elapsed.Round(time.Second), verdict)
	clientsAre := "one Node process"
	if r.procs > 1 {
		clientsAre = fmt.Sprintf("%d Node processes of about %d each", r.procs, r.clients/r.procs)
		if r.sourceAddrs {
			clientsAre += fmt.Sprintf(", each from its own loopback source address (127.0.0.2 … 127.0.0.%d)", 1+r.procs)
		}
	}
	if r.rate > 0 {
		clientsAre += fmt.Sprintf(", started at %d a second", r.rate)
	}
	clientsAre += fmt.Sprintf(", reconnectionDelay %s, reconnectionDelayMax %s", r.reconnectDelay[0], r.reconnectDelay[1])
	guardFront := "nginx with `proxy_pass` only (drops Upgrade/Connection)"
	if r.guardFront == "recipe" {
		guardFront = "nginx with Frappe's own recipe for `/socket.io` (passes Upgrade/Connection on, sets the Origin: `--guard-front recipe`, so that the guard has nothing to repair and the phases differ by the plugin alone)"
	}
	fmt.Fprintf(&b, "%d socket.io-client 4.8 sessions (%s, cookies kept like a browser) → %s, spreading requests over two Traefik %s with socketioguard (`setMissingOrigin`, `eioVersions: 4`, `stickyCookie` the service's) and the same dynamic configuration → %d Frappe-like Socket.IO 4.8 replicas, Frappe's way (each subscribes to Redis `events`), behind `loadBalancer.sticky.cookie` and `healthCheck` (a polling handshake every %s, timeout %s) → Debian's Redis. Each client joins one of %d channels (`doc:Raven Channel/soak-N`); the web app publishes one `message_created` per channel every %s (`PUBLISH events`, as `frappe.publish_realtime`) for the whole run.\n\n", r.clients, clientsAre, guardFront, stack.MainTraefik, r.replicas, r.healthInterval, r.healthTimeout, r.channels, r.interval)
	if len(r.phases) > 1 {
		fmt.Fprintf(&b, "Then the same clients, events and faults a second time in the same run, through two Traefiks running the trivial plugin (the bench's `passthrough`: sets one header) instead of the guard, same replicas and Redis. A plugin that repairs nothing cannot upgrade through the header-stripping nginx, so that phase's front nginx is Frappe's own recipe for `/socket.io` (`proxy_http_version 1.1`, `proxy_set_header Upgrade $http_upgrade`, `Connection upgrade`, `Origin $scheme://$http_host`): it passes the upgrade on and sets the Origin the guard would otherwise add. The verdict is the guard's phase; the trivial phase is the reference.\n\n")
	}
	if len(r.phases) > 1 && r.trivialFirst {
		b.WriteString("The trivial plugin's phase ran first this time (`--trivial-first`), the guard's second.\n\n")
	}
	var raised []string
	if r.portRange != "" {
		raised = append(raised, fmt.Sprintf("local port range %s (was %s, restored after)", r.portRange, r.portRangeWas))
	}
	if r.fileLimit > 0 {
		raised = append(raised, fmt.Sprintf("open files %d per process (the hard limit)", r.fileLimit))
	}
	if r.clients >= 5000 {
		raised = append(raised, "nginx `listen … backlog=4096` (default 511)")
	}
	if r.maxFails >= 0 {
		raised = append(raised, fmt.Sprintf("nginx `max_fails=%d` for each Traefik (default 1: one timeout takes a Traefik out for 10 s)", r.maxFails))
	}
	if len(raised) > 0 {
		fmt.Fprintf(&b, "Raised for the run: %s.\n\n", strings.Join(raised, "; "))
	}
	fmt.Fprintf(&b, "An event is **counted** for a client when its PUBLISH reached every live replica (Redis's answer) and the client was subscribed from 1 s before to 1 s after it; every other event is counted apart (**in gaps**).\n\n")

	if len(r.phases) > 1 {
		writePhaseComparison(&b, r)
	}
	for _, p := range r.phases {
		writePhase(&b, r, p, len(r.phases) > 1, p.name == "guard")
	}
	writeCPUTimeline(&b, r)
	fmt.Fprintf(&b, "\nLimits: %s.\n", r.limits)
	return os.WriteFile(filepath.Join(out, "soak.md"), []byte(b.String()), 0o644)
}

// writePhaseComparison: the guard and the trivial plugin, side by side.
func writePhaseComparison(b *strings.Builder, r *soakReport) {
	fmt.Fprintf(b, "## Guard and trivial plugin, side by side\n\n")
	fmt.Fprintf(b, "| phase | all on websocket and subscribed after | on websocket at the end | unexpected disconnects | counted deliveries: lost / duplicated / out of order | Traefik (each) all connected: heap, RSS, goroutines | Traefik (each) after the faults | CPU, %% of one core, mean / max: Traefik a, b | nginx | replicas 1, 2, 3 | soak.js (all) | machine busy (all cores = 100 %%), mean / max | others (neither the soak's processes nor irq, %% of one core), mean |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.phases {
		e := p.evaluation
		after := "not within the deadline"
		if p.connectedAfter >= 0 {
			after = fmt.Sprintf("%.1f s", p.connectedAfter.Seconds())
		}
		mem := func(idx int) string {
			var parts []string
			for _, name := range p.edges {
				m := p.memory[name]
				i := idx
				if i < 0 {
					i = len(m) + idx
				}
				if i >= 0 && i < len(m) {
					parts = append(parts, fmt.Sprintf("%.0f MiB, %.0f MiB, %.0f", m[i].heap, m[i].rss, m[i].goroutines))
				}
			}
			return strings.Join(parts, "; ")
		}
		_, mean, peak, mm, mp, others := cpuStats(r.cpu, p.name+": ")
		c := func(names ...string) string {
			var parts []string
			for _, n := range names {
				parts = append(parts, fmt.Sprintf("%.0f / %.0f", mean[n], peak[n]))
			}
			return strings.Join(parts, "; ")
		}
		fmt.Fprintf(b, "| %s | %s | %d of %d | %d %v | %d counted: %d / %d / %d | %s | %s | %s | %s | %s | %s | %.0f / %.0f | %.0f |\n",
			p.name, after, min(e.Websocket, e.Subscribed), r.clients, e.UnexpectedDisconnects, e.UnexpectedReasons,
			e.Counted, e.Lost, e.Duplicated, e.OutOfOrder,
			mem(1), mem(-2), c("traefik-a", "traefik-b"), c("nginx"), c("replica-1", "replica-2", "replica-3"), c("soak.js"), mm, mp, others)
	}
	fmt.Fprintf(b, "\nHeap: Go heap in use after a forced GC (Traefik's metrics); RSS from /proc; CPU from /proc/<pid>/stat (utime+stime of the process group) every 5 s over the whole phase, from the Traefiks' start to their stop.\n\n")
}

func writePhase(b *strings.Builder, r *soakReport, p *soakPhase, titled, isGuard bool) {
	e := p.evaluation
	if titled {
		verdict := "passed"
		if !phasePassed(p, r.clients) {
			verdict = "failed"
		}
		fmt.Fprintf(b, "## Phase %q: %s (%s, %s)\n\n", p.name, p.label, p.elapsed.Round(time.Second), verdict)
	}
	for _, n := range p.notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	if len(p.notes) > 0 {
		b.WriteString("\n")
	}
	if p.connectedAfter >= 0 {
		fmt.Fprintf(b, "All %d on websocket and subscribed %.1f s after the first client started. ", r.clients, p.connectedAfter.Seconds())
	}
	fmt.Fprintf(b, "Connections to the front nginx then, by source address (`ss`): %s.\n\n", p.sources)
	fmt.Fprintf(b, "| | count |\n|---|---|\n")
	row := func(name string, v int) { fmt.Fprintf(b, "| %s | %d |\n", name, v) }
	row("events published", p.published)
	row("events whose PUBLISH did not reach every live replica", p.notReached)
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
	row("reconnects", e.Reconnects)
	row("unexpected disconnects (outside the faults)", e.UnexpectedDisconnects)
	fmt.Fprintf(b, "\n### Faults\n\n| fault | at | clients disconnected | back on websocket: p50 / p90 / max | events in gaps |\n|---|---|---|---|---|\n")
	for _, f := range p.faults {
		sf := e.Faults[f.name]
		back := "—"
		if sf.Affected > 0 {
			back = fmt.Sprintf("%d of %d: %.1f s / %.1f s / %.1f s", sf.Recovered, sf.Affected, float64(sf.P50)/1000, float64(sf.P90)/1000, float64(sf.Max)/1000)
		}
		gaps := fmt.Sprintf("%d missed, %d received anyway", sf.GapMissed, sf.GapReceived)
		if f.eventsUntil > 0 {
			gaps += fmt.Sprintf("; PUBLISH reached every replica again %.1f s after the fault began", f.eventsUntil.Seconds())
		}
		fmt.Fprintf(b, "| %s | %.1f s | %d | %s | %s |\n", f.what, f.at.Seconds(), sf.Affected, back, gaps)
	}
	fmt.Fprintf(b, "\nDisconnect reasons per fault (socket.io-client's): ")
	for _, f := range p.faults {
		fmt.Fprintf(b, "%s %v; ", f.name, e.Faults[f.name].DisconnectReasons)
	}
	fmt.Fprintf(b, "outside faults %v. Connect errors: %v. Failed websocket probes (the client stays on polling): %v. Deliveries in gaps outside every fault's window: %d missed, %d received.\n",
		e.UnexpectedReasons, e.ConnectErrorMessages, e.UpgradeErrors, e.GapsOutside.GapMissed, e.GapsOutside.GapReceived)
	if isGuard && !titled {
		fmt.Fprintf(b, "\nA fault's window runs from 1 s before it to 1 s after its last affected client was back (at least 2 s). Deliveries in gaps are the events a client could not be expected to get: published while it was reconnecting (and the second around it), or while a replica's subscription to Redis was down. They are counted here, not hidden, and not held against the run.\n")
	}
	if isGuard {
		fmt.Fprintf(b, "\n### The guard, on each Traefik (inspect endpoint)\n\n| Traefik | Engine.IO requests | repairs | diagnoses | rejections |\n|---|---|---|---|---|\n")
		for _, name := range p.edges {
			c := p.counters[name]
			fmt.Fprintf(b, "| %s | %d | %v | %v | %v |\n", name, c.requests, c.repairs, c.diagnoses, c.rejections)
		}
	}
	fmt.Fprintf(b, "\n### Traefik's memory and goroutines\n\nGo heap in use (from its metrics, after a forced GC), RSS from /proc, goroutines.\n\n| Traefik | before the clients | all connected | after the faults | after the clients closed |\n|---|---|---|---|---|\n")
	for _, name := range p.edges {
		m := p.memory[name]
		fmt.Fprintf(b, "| %s |", name)
		for _, idx := range []int{0, 1, len(m) - 2, len(m) - 1} {
			if idx >= 0 && idx < len(m) {
				fmt.Fprintf(b, " heap %.1f MiB, RSS %.1f MiB, %.0f goroutines |", m[idx].heap, m[idx].rss, m[idx].goroutines)
			}
		}
		b.WriteString("\n")
	}
	writeCounts(b, "front nginx's answers (access log), by stage (when logged), status, method, transport", p.nginxAccess, 16)
	writeCounts(b, "the Traefiks' answers of 400 and above (access log), by stage (when the request began), status, method, transport, replica", p.traefikAccess, 16)
	writeCounts(b, "front nginx's error log (info and above), by message", p.nginxErrors, 12)
	writeCounts(b, "the Traefiks' output (log level "+r.traefikLogLevel+": a failed health check is one), by line, numbers blurred", p.traefikLog, 10)
	b.WriteString("\n")
}

func writeCounts(b *strings.Builder, what string, counts map[string]int, n int) {
	type kv struct {
		k string
		v int
	}
	var list []kv
	total := 0
	for k, v := range counts {
		list = append(list, kv{k, v})
		total += v
	}
	sort.Slice(list, func(i, j int) bool { return list[i].v > list[j].v || list[i].v == list[j].v && list[i].k < list[j].k })
	fmt.Fprintf(b, "\n%s: %d lines", strings.ToUpper(what[:1])+what[1:], total)
	if total == 0 {
		b.WriteString(".\n")
		return
	}
	b.WriteString(":\n\n")
	for i, e := range list {
		if i == n {
			fmt.Fprintf(b, "- … %d more kinds\n", len(list)-n)
			break
		}
		fmt.Fprintf(b, "- %d × `%s`\n", e.v, strings.ReplaceAll(e.k, "`", "'"))
	}
}

// writeCPUTimeline: the CPU samples, three to a row (15 s), with the
// clients' unexpected disconnects and their event loops' largest delay in
// the same 15 s.
func writeCPUTimeline(b *strings.Builder, r *soakReport) {
	if len(r.cpu) == 0 {
		return
	}
	unexpected, lag := map[int64]int{}, map[int64]int{}
	for _, p := range r.phases {
		for _, s := range []soakStatus{p.final, p.evaluation} {
			for k, v := range s.UnexpectedByTime {
				if t, err := strconv.ParseInt(k, 10, 64); err == nil {
					unexpected[t] = max(unexpected[t], v)
				}
			}
			for k, v := range s.LagByTime {
				if t, err := strconv.ParseInt(k, 10, 64); err == nil {
					lag[t] = max(lag[t], v)
				}
			}
		}
	}
	cols := []string{"traefik-a", "traefik-b", "nginx", "replica-1", "replica-2", "replica-3", "soak.js", "webapp", "redis"}
	fmt.Fprintf(b, "## CPU over time\n\n%% of one core per process (group), mean over 15 s (three samples of 5 s); machine: %% of all %d cores busy (/proc/stat); irq: the kernel's interrupt and softirq time (%% of one core; loopback TCP's receive path runs there); others: what the cores spent on neither the soak's processes nor irq (%% of one core: other work on the machine). Listen overflows: the kernel's ListenOverflows in the 15 s (a SYN dropped because an accept queue was full; the client retries 1 s, 3 s, … later). Fullest accept queue: the most connections waiting to be accepted by one of the run's listeners at a sample (nginx's backlog is 4096 from 5,000 clients, else 511; Traefik's 4096; the replicas' and the web app's, Node's default, 511). Unexpected disconnects and the clients' largest event-loop delay in the same 15 s (soak.js).\n\n", runtime.NumCPU())
	fmt.Fprintf(b, "| t | stage | machine | irq | others | %s | listen overflows | fullest accept queue | unexpected disconnects | client loop delay max |\n|---|---|---|---|---|%s---|---|---|---|\n", strings.Join(cols, " | "), strings.Repeat("---|", len(cols)))
	for i := 0; i < len(r.cpu); i += 3 {
		chunk := r.cpu[i:min(i+3, len(r.cpu))]
		from, to := chunk[0].at.Add(-5*time.Second), chunk[len(chunk)-1].at
		var machine, ours, irq float64
		var overflows uint64
		fullest, fullestName := 0, "—"
		sums, counts := map[string]float64{}, map[string]int{}
		for _, s := range chunk {
			machine += s.machine
			irq += s.irq
			overflows += s.overflows
			for name, q := range s.queues {
				if q > fullest {
					fullest, fullestName = q, name
				}
			}
			for k, v := range s.cores {
				sums[k] += v
				counts[k]++
				ours += v
			}
		}
		others := max(0, machine*float64(runtime.NumCPU())-ours-irq) / float64(len(chunk))
		var cells []string
		for _, c := range cols {
			if counts[c] == 0 {
				cells = append(cells, "—")
			} else {
				cells = append(cells, fmt.Sprintf("%.0f", sums[c]/float64(counts[c])))
			}
		}
		disc, maxLag := 0, 0
		for t := from.Unix() / 5 * 5; t < to.Unix(); t += 5 {
			disc += unexpected[t]
			maxLag = max(maxLag, lag[t])
		}
		queue := fullestName
		if fullest > 0 {
			queue = fmt.Sprintf("%s %d", fullestName, fullest)
		}
		fmt.Fprintf(b, "| %.0f s | %s | %.0f | %.0f | %.0f | %s | %d | %s | %d | %d ms |\n", chunk[len(chunk)-1].at.Sub(r.started).Seconds(), chunk[len(chunk)-1].stage, machine/float64(len(chunk)), irq/float64(len(chunk)), others, strings.Join(cells, " | "), overflows, queue, disc, maxLag)
	}
}
