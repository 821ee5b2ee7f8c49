package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// soakStatus is soak.js's answer.
type soakStatus struct {
	Type                  string         `json:"type"`
	Clients               int            `json:"clients"`
	Connected             int            `json:"connected"`
	Websocket             int            `json:"websocket"`
	Subscribed            int            `json:"subscribed"`
	Received              int            `json:"received"`
	Expected              int            `json:"expected"`
	Lost                  int            `json:"lost"`
	Duplicated            int            `json:"duplicated"`
	OutOfOrder            int            `json:"outOfOrder"`
	Reconnects            int            `json:"reconnects"`
	UnexpectedDisconnects int            `json:"unexpectedDisconnects"`
	ExpectedDisconnects   int            `json:"expectedDisconnects"`
	ConnectErrors         int            `json:"connectErrors"`
	DisconnectReasons     map[string]int `json:"disconnectReasons"`
	ConnectErrorMessages  map[string]int `json:"connectErrorMessages"`
}

// soakDriver talks to soak.js over stdin/stdout.
type soakDriver struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines *bufio.Scanner
}

func (d *soakDriver) ask(command string) (soakStatus, error) {
	if _, err := fmt.Fprintln(d.in, command); err != nil {
		return soakStatus{}, err
	}
	for d.lines.Scan() {
		var s soakStatus
		if json.Unmarshal(d.lines.Bytes(), &s) == nil && s.Type != "" && s.Type != "marked" {
			return s, nil
		}
		if strings.Contains(d.lines.Text(), `"marked"`) {
			return soakStatus{Type: "marked"}, nil
		}
	}
	return soakStatus{}, fmt.Errorf("soak.js ended: %v", d.lines.Err())
}

// waitFor asks until ok(status) or the time runs out.
func (d *soakDriver) waitFor(command string, timeout time.Duration, ok func(soakStatus) bool) (soakStatus, error) {
	deadline := time.Now().Add(timeout)
	for {
		s, err := d.ask(command)
		if err != nil || ok(s) {
			return s, err
		}
		if time.Now().After(deadline) {
			return s, fmt.Errorf("not reached within %s: %+v", timeout, s)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (d *soakDriver) stop() {
	if d.cmd.Process != nil {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		_ = d.cmd.Wait()
	}
}

type soakReport struct {
	clients, channels, perPhase int
	phase1, phase2, final       soakStatus
	heapStart, heapConnected    float64
	heapAfter1, heapEnd         float64
	rssStart, rssEnd            float64
	goroutinesStart             float64
	goroutinesEnd               float64
	sessionUnknown, upgrades    int64
	requests                    int64
	started                     time.Time
	elapsed                     time.Duration
	restartTook                 time.Duration
}

func runSoak(args []string) int {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	clients := fs.Int("clients", 500, "socket.io clients")
	channels := fs.Int("channels", 50, "channels (rooms); clients are spread over them")
	events := fs.Int("events", 20, "message_created events per channel, before and again after the restart")
	out := fs.String("out", "", "directory for soak.md (default: <repo>/bench)")
	_ = fs.Parse(args)

	st, cleanup, err := stack.NewTemp("socketioguard-soak-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		return 2
	}
	defer cleanup()
	if *out == "" {
		*out = filepath.Join(st.Tools.Repo, "bench")
	}

	r, err := soak(st, *clients, *channels, *events)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		fmt.Fprintln(os.Stderr, st.Logs())
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

func soakPassed(r *soakReport) bool {
	return r.phase1.Lost == 0 && r.phase1.Duplicated == 0 && r.phase1.OutOfOrder == 0 && r.phase1.UnexpectedDisconnects == 0 &&
		r.phase2.Lost == 0 && r.phase2.Duplicated == 0 && r.phase2.OutOfOrder == 0 && r.final.UnexpectedDisconnects == 0 &&
		r.phase1.Websocket == r.clients && r.phase2.Websocket == r.clients
}

func soak(st *stack.Stack, clients, channels, events int) (*soakReport, error) {
	r := &soakReport{clients: clients, channels: channels, perPhase: events, started: time.Now()}
	redis, err := st.StartRedis("redis", 0)
	if err != nil {
		return nil, err
	}
	// The web app answers the realtime server's session callbacks and
	// publishes the events through Redis, as Frappe does.
	web, err := st.StartWebapp("webapp", stack.WebappOptions{Redis: redis.URL()})
	if err != nil {
		return nil, err
	}
	realtimeOptions := stack.RealtimeOptions{Redis: redis.URL(), ServerIP: stack.Addr(web.Port)}
	rt, err := st.StartRealtime("realtime", realtimeOptions)
	if err != nil {
		return nil, err
	}
	tr, err := st.StartTraefik(stack.TraefikOptions{
		EntryPoints: []string{"web"}, LogLevel: "ERROR", Metrics: true, Routers: []string{"frappe-socketio@file"},
		Dynamic: fmt.Sprintf(`
http:
  middlewares:
    frappe-site:
      headers:
        customRequestHeaders:
          X-Frappe-Site-Name: %s
    sio-guard:
      plugin:
        socketioguard:
          setMissingOrigin: true
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
        servers: [{url: "http://127.0.0.1:%d"}]
`, stack.Site, rt.Port),
	})
	if err != nil {
		return nil, err
	}
	// The report's broken front proxy: proxy_pass alone, hop-by-hop headers dropped.
	conf, err := os.ReadFile(filepath.Join(st.Tools.Repo, "demo", "nginx", "front-strips-upgrade.conf"))
	if err != nil {
		return nil, err
	}
	front, err := st.StartNginx("front-nginx", strings.NewReplacer("${FRONT_LISTEN}", "127.0.0.1:{{port}}", "${FRONT_UPSTREAM}", tr.URL("web")).Replace(string(conf)))
	if err != nil {
		return nil, err
	}
	r.rssStart, r.heapStart, r.goroutinesStart, _ = traefikMemory(tr)

	cmd := exec.Command(st.Tools.Node, filepath.Join(st.Tools.NodeDir, "soak.js"), "--url", front.URL(),
		"--namespace", "/"+stack.Site, "--clients", fmt.Sprint(clients), "--channels", fmt.Sprint(channels))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	in, _ := cmd.StdinPipe()
	outPipe, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &soakDriver{cmd: cmd, in: in, lines: bufio.NewScanner(outPipe)}
	d.lines.Buffer(make([]byte, 1<<20), 1<<20)
	defer d.stop()

	allReady := func(s soakStatus) bool {
		return s.Connected == clients && s.Websocket == clients && s.Subscribed == clients
	}
	fmt.Printf("soak: %d clients through a header-stripping nginx → Traefik + guard → realtime\n", clients)
	s, err := d.waitFor("status", 180*time.Second, allReady)
	if err != nil {
		return nil, fmt.Errorf("clients never all connected on websocket: %w", err)
	}
	fmt.Printf("  all %d connected, on websocket, subscribed\n", s.Connected)
	_, r.heapConnected, _, _ = traefikMemory(tr)

	publish := func(from, to int) error {
		for seq := from; seq <= to; seq++ {
			for ch := 0; ch < channels; ch++ {
				msg := map[string]any{"channel_id": fmt.Sprintf("soak-%d", ch), "sender": "Administrator", "seq": seq,
					"message_id": fmt.Sprintf("SOAK-%d-%d", ch, seq), "message_details": map[string]any{"text": fmt.Sprint("message ", seq), "message_type": "Text"}}
				if _, err := web.Publish(stack.Site, fmt.Sprintf("doc:Raven Channel/soak-%d", ch), "message_created", msg); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := publish(1, events); err != nil {
		return nil, err
	}
	r.phase1, err = d.waitFor(fmt.Sprintf("expect %d", events), 60*time.Second, func(s soakStatus) bool { return s.Lost == 0 })
	if err != nil {
		return nil, fmt.Errorf("phase 1: %w", err)
	}
	fmt.Printf("  phase 1: %d of %d events received, %d duplicated, %d out of order, %d unexpected disconnects\n",
		r.phase1.Received, r.phase1.Expected, r.phase1.Duplicated, r.phase1.OutOfOrder, r.phase1.UnexpectedDisconnects)
	_, r.heapAfter1, _, _ = traefikMemory(tr)

	// Restart the Socket.IO server mid-run, on the same ports.
	if _, err := d.ask("mark-restart"); err != nil {
		return nil, err
	}
	restart := time.Now()
	if rt, err = rt.Restart(st, "realtime-restarted"); err != nil {
		return nil, err
	}
	if _, err := d.waitFor("status", 180*time.Second, allReady); err != nil {
		return nil, fmt.Errorf("clients did not all come back after the restart: %w", err)
	}
	r.restartTook = time.Since(restart)
	fmt.Printf("  restarted the Socket.IO server: all clients back on websocket after %s\n", r.restartTook.Round(100*time.Millisecond))
	if err := publish(events+1, 2*events); err != nil {
		return nil, err
	}
	// After the restart every client must hold 1..2N: 1..N from before, N+1..2N after.
	r.phase2, err = d.waitFor(fmt.Sprintf("expect %d", 2*events), 60*time.Second, func(s soakStatus) bool { return s.Lost == 0 })
	if err != nil {
		return nil, fmt.Errorf("phase 2: %w", err)
	}
	fmt.Printf("  phase 2: %d of %d events received, %d duplicated, %d out of order, %d reconnects\n",
		r.phase2.Received, r.phase2.Expected, r.phase2.Duplicated, r.phase2.OutOfOrder, r.phase2.Reconnects)

	if r.final, err = d.ask(fmt.Sprintf("close %d", 2*events)); err != nil {
		return nil, err
	}
	// Let the closed connections finish (goroutines back near the start), at most 20 s.
	for i := 0; i < 40; i++ {
		time.Sleep(500 * time.Millisecond)
		if r.rssEnd, r.heapEnd, r.goroutinesEnd, _ = traefikMemory(tr); r.goroutinesEnd <= r.goroutinesStart+5 {
			break
		}
	}
	r.requests, r.sessionUnknown, r.upgrades = guardCounters(tr)
	r.elapsed = time.Since(r.started)
	return r, nil
}

// guardCounters reads the guard's inspect endpoint.
func guardCounters(tr *stack.Traefik) (requests, sessionUnknown, upgrades int64) {
	resp, err := http.Get(tr.URL("web") + "/socket.io/.guard")
	if err != nil {
		return 0, 0, 0
	}
	defer resp.Body.Close()
	var info struct {
		Counters struct {
			EngineIORequests int64            `json:"engineIORequests"`
			Repairs          map[string]int64 `json:"repairs"`
			Diagnoses        map[string]int64 `json:"diagnoses"`
		} `json:"counters"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&info)
	return info.Counters.EngineIORequests, info.Counters.Diagnoses["session-unknown"], info.Counters.Repairs["upgrade"]
}

func writeSoakReport(r *soakReport, out string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	verdict := "PASSED"
	if !soakPassed(r) {
		verdict = "FAILED"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: %d clients through a header-stripping proxy, with a server restart\n\n", r.clients)
	fmt.Fprintf(&b, "`make soak` (`e2e/cmd/bench soak`), %s, %s: **%s**.\n\n", r.started.UTC().Format("2006-01-02 15:04 MST"), r.elapsed.Round(time.Second), verdict)
	fmt.Fprintf(&b, "%d socket.io-client 4.8 sessions (one Node process) → nginx with `proxy_pass` only (drops Upgrade/Connection) → Traefik v3.6.12 + socketioguard (`setMissingOrigin`) → the Frappe-like Socket.IO 4.8 server. Each client joins one of %d channels (`doc:Raven Channel/soak-N`); %d `message_created` events are published per channel, the server is restarted, and %d more are published.\n\n", r.clients, r.channels, r.perPhase, r.perPhase)
	fmt.Fprintf(&b, "| | before the restart | after the restart (cumulative) |\n|---|---|---|\n")
	row := func(name string, a, c int) { fmt.Fprintf(&b, "| %s | %d | %d |\n", name, a, c) }
	row("events expected (clients × events of their channel)", r.phase1.Expected, r.phase2.Expected)
	row("received", r.phase1.Received, r.phase2.Received)
	row("lost", r.phase1.Lost, r.phase2.Lost)
	row("duplicated", r.phase1.Duplicated, r.phase2.Duplicated)
	row("out of order", r.phase1.OutOfOrder, r.phase2.OutOfOrder)
	row("clients on websocket", r.phase1.Websocket, r.phase2.Websocket)
	row("unexpected disconnects", r.phase1.UnexpectedDisconnects, r.final.UnexpectedDisconnects)
	row("disconnects caused by the restart", 0, r.final.ExpectedDisconnects)
	row("reconnects", r.phase1.Reconnects, r.phase2.Reconnects)
	row("connect errors while the server was down", r.phase1.ConnectErrors, r.final.ConnectErrors)
	fmt.Fprintf(&b, "\nDisconnect reasons (socket.io-client's): %v. Connect errors: %v.\n", r.final.DisconnectReasons, r.final.ConnectErrorMessages)
	fmt.Fprintf(&b, "\nAll clients were back on websocket %s after the restart began.\n\n", r.restartTook.Round(100*time.Millisecond))
	fmt.Fprintf(&b, "The guard: %d Engine.IO requests, %d websocket handshakes repaired (`upgrade`), %d answers marked `session-unknown` (requests of the old sessions that reached the restarted server).\n\n", r.requests, r.upgrades, r.sessionUnknown)
	fmt.Fprintf(&b, "Traefik's memory (Go heap in use, from its metrics; RSS from /proc):\n\n| moment | heap in use (MiB) |\n|---|---|\n| before the clients | %.1f |\n| %d clients connected | %.1f |\n| after the first events | %.1f |\n| after the clients closed | %.1f |\n\nRSS %.1f MiB before, %.1f MiB at the end; goroutines %.0f before, %.0f at the end.\n",
		r.heapStart, r.clients, r.heapConnected, r.heapAfter1, r.heapEnd, r.rssStart, r.rssEnd, r.goroutinesStart, r.goroutinesEnd)
	return os.WriteFile(filepath.Join(out, "soak.md"), []byte(b.String()), 0o644)
}
