// Package stack starts the real pieces of a Socket.IO deployment on
// loopback — Traefik with socketioguard as a local plugin, nginx, the
// Frappe-like realtime server and web app (Node), socket.io-client runs — and
// stops every process it started, by PID (process group), also on failure.
// The end-to-end suite, the demo and the benchmarks share it.
package stack

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Tools are the binaries and directories the stack runs. scripts/setup-e2e.sh
// installs or builds them and prints the SOCKETIOGUARD_* variables.
type Tools struct {
	// Traefik is the main Traefik, v3.7.13, built from the Go module proxy
	// (scripts/build-traefik.sh; what differs from the release: the readme's
	// "Which Traefik"); TraefikV36 is v3.6.12 and TraefikV2 the newest v2.11
	// the proxy serves, built likewise, for the suite's subsets on those lines
	// (scripts/setup-e2e.sh --suite).
	Traefik    string
	TraefikV36 string
	TraefikV2  string
	Nginx      string // Debian's nginx
	Redis      string // Debian's redis-server
	Node       string
	NodeDir    string // e2e/node: realtime.js, webapp.js, client.js, node_modules
	Repo       string // the working tree whose plugin source is mounted
}

// MainTraefik is the Traefik release the suite, the demo and the bench run.
const MainTraefik = "v3.7.13"

// FindTools locates the tools from the environment (set by setup-e2e.sh) and
// the repository layout, and says what to run when something is missing.
func FindTools() (Tools, error) {
	repo, err := repoRoot()
	if err != nil {
		return Tools{}, err
	}
	t := Tools{
		Traefik:    os.Getenv("SOCKETIOGUARD_TRAEFIK"),
		TraefikV36: os.Getenv("SOCKETIOGUARD_TRAEFIK_V36"),
		TraefikV2:  os.Getenv("SOCKETIOGUARD_TRAEFIK_V2"),
		Nginx:      os.Getenv("SOCKETIOGUARD_NGINX"),
		Redis:      os.Getenv("SOCKETIOGUARD_REDIS"),
		Node:       os.Getenv("SOCKETIOGUARD_NODE"),
		NodeDir:    filepath.Join(repo, "e2e", "node"),
		Repo:       repo,
	}
	home, _ := os.UserHomeDir()
	for _, line := range []struct {
		path    *string
		version string
	}{{&t.Traefik, MainTraefik}, {&t.TraefikV36, "v3.6.12"}, {&t.TraefikV2, "v2.11.54"}} {
		if *line.path == "" {
			*line.path = filepath.Join(home, ".cache", "socketioguard", "traefik-"+line.version, "traefik")
		}
	}
	if t.Nginx == "" {
		t.Nginx, _ = exec.LookPath("nginx")
		if t.Nginx == "" {
			t.Nginx = "/usr/sbin/nginx"
		}
	}
	if t.Node == "" {
		t.Node, _ = exec.LookPath("node")
	}
	if t.Redis == "" {
		t.Redis, _ = exec.LookPath("redis-server")
	}
	var missing []string
	// The other Traefik lines are looked for when a test starts one (StartTraefik).
	for name, path := range map[string]string{"traefik": t.Traefik, "nginx": t.Nginx, "node": t.Node, "redis-server": t.Redis,
		"node_modules": filepath.Join(t.NodeDir, "node_modules", "socket.io")} {
		if _, err := os.Stat(path); path == "" || err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return t, fmt.Errorf("missing %s: run scripts/setup-e2e.sh (or make e2e), which installs and builds them", strings.Join(missing, ", "))
	}
	return t, nil
}

func repoRoot() (string, error) {
	if root := os.Getenv("SOCKETIOGUARD_REPO"); root != "" {
		return root, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the repository")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..")), nil
}

// Stack owns a set of processes and a scratch directory.
type Stack struct {
	Dir   string
	Tools Tools
	// NginxWorkers, NginxConnections and NginxFiles are nginx's worker
	// processes (0: 1), connections per worker (0: 8192) and open files per
	// worker (0: 20000): a run at scale raises them.
	NginxWorkers, NginxConnections, NginxFiles int

	mu    sync.Mutex
	procs []*Process
}

// NewTemp finds the tools and makes a stack in a new temporary directory;
// cleanup stops every process it started and removes the directory.
func NewTemp(prefix string) (st *Stack, cleanup func(), err error) {
	tools, err := FindTools()
	if err != nil {
		return nil, nil, err
	}
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, nil, err
	}
	st = New(tools, dir)
	return st, func() {
		st.StopAll()
		os.RemoveAll(dir)
	}, nil
}

// New makes a stack whose files live in dir.
func New(tools Tools, dir string) *Stack {
	return &Stack{Tools: tools, Dir: dir}
}

// Process is one started program with its combined output.
type Process struct {
	Name string
	Cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
	err  error
}

// Logs returns everything the process wrote so far.
func (p *Process) Logs() string { return p.out.String() }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Start runs a command in its own process group, recording its output (and
// echoing it to tee when not nil).
func (s *Stack) Start(name string, tee io.Writer, program string, args ...string) (*Process, error) {
	return s.Run(Command{Name: name, Tee: tee, Program: program, Args: args})
}

// StartIn is Start with another working directory.
func (s *Stack) StartIn(dir, name string, tee io.Writer, program string, args ...string) (*Process, error) {
	return s.Run(Command{Dir: dir, Name: name, Tee: tee, Program: program, Args: args})
}

// Command is a program to run as part of the stack.
type Command struct {
	Name    string
	Dir     string    // default: the stack's directory
	Env     []string  // added to this process's environment
	Tee     io.Writer // also receives the output, line by line, prefixed with the name
	Program string
	Args    []string
}

// Run starts a command in its own process group and records its output.
func (s *Stack) Run(c Command) (*Process, error) {
	name, tee := c.Name, c.Tee
	cmd := exec.Command(c.Program, c.Args...)
	cmd.Dir = c.Dir
	if cmd.Dir == "" {
		cmd.Dir = s.Dir
	}
	if len(c.Env) > 0 {
		cmd.Env = append(os.Environ(), c.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out := &syncBuffer{tee: tee, prefix: "[" + name + "] "}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, Cmd: cmd, out: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return p, nil
}

// Stop ends one process (its group): SIGTERM, then SIGKILL after 5 s.
func (p *Process) Stop() { p.StopWithin(5 * time.Second) }

// StopWithin is Stop with another grace time before the SIGKILL (a daemon
// that tears down what it set up on SIGTERM needs more than 5 s).
func (p *Process) StopWithin(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Kill ends the process at once (SIGKILL to its group), as a crash would,
// and waits for it.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// StopAll stops every process of the stack, newest first.
func (s *Stack) StopAll() {
	s.mu.Lock()
	procs := s.procs
	s.procs = nil
	s.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop()
	}
}

// Logs returns the last 150 lines of every process's output, for a failure report.
func (s *Stack) Logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for _, p := range s.procs {
		fmt.Fprintf(&b, "----- %s (pid %d) -----\n%s\n", p.Name, p.Cmd.Process.Pid, lastLines(p.Logs(), 150))
	}
	return b.String()
}

func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) <= n {
		return s
	}
	return fmt.Sprintf("[… %d lines before]\n", len(lines)-n) + strings.Join(lines[len(lines)-n:], "")
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// PortFree reports whether a loopback port can be listened on now.
func PortFree(port int) bool {
	l, err := net.Listen("tcp", Addr(port))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// FreePorts returns n distinct free ports.
func FreePorts(n int) ([]int, error) {
	seen := map[int]bool{}
	var ports []int
	for attempts := 0; len(ports) < n && attempts < 100*n; attempts++ {
		p, err := FreePort()
		if err != nil {
			return nil, err
		}
		if !seen[p] {
			seen[p] = true
			ports = append(ports, p)
		}
	}
	if len(ports) < n {
		return nil, errors.New("not enough free ports")
	}
	return ports, nil
}

// WaitTCP waits until addr accepts connections or the process exits.
func WaitTCP(p *Process, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before listening on %s: %v\n%s", p.Name, addr, p.err, p.Logs())
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s did not listen on %s within %s", nameOf(p), addr, timeout)
}

func nameOf(p *Process) string {
	if p == nil {
		return "server"
	}
	return p.Name
}

// WriteFile writes a file into the stack's directory and returns its path.
func (s *Stack) WriteFile(name, content string) (string, error) {
	path := filepath.Join(s.Dir, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	return path, os.WriteFile(path, []byte(content), 0o644)
}

// Addr is 127.0.0.1:port.
func Addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// ---- Node peers ----

// Realtime is a running Frappe-like Socket.IO server.
type Realtime struct {
	*Process
	Port    int
	Options RealtimeOptions // as started (a restart passes them again)
}

// RealtimeOptions configure the Frappe-like realtime server.
type RealtimeOptions struct {
	Port int // 0: a free port (a restart passes the old one)
	// Host is the loopback address it listens on (default 127.0.0.1; a
	// second replica on the same port: 127.0.0.2).
	Host string
	// Redis is the URL events come through (redis://127.0.0.1:port).
	Redis string
	// Adapter: @socket.io/redis-adapter (the generic Socket.IO app's way)
	// instead of subscribing to Frappe's "events" channel.
	Adapter bool
	// ServerIP is Frappe's conf.server_ip (host:port of the web app): the
	// server then calls http://<ServerIP>/api/method/… instead of the Origin.
	ServerIP     string
	DefaultSite  string        // Frappe's default_site, for Host localhost/127.0.0.1
	PingInterval time.Duration // Engine.IO's pingInterval (default 25 s)
	// RefuseRequests makes allowRequest refuse every request (code 4 Forbidden).
	RefuseRequests bool
	// AckSubscriptions makes the server emit doc_subscribed once a
	// doc_subscribe joined its room — the test clients' readiness signal.
	// Frappe sends no acknowledgement (the default).
	AckSubscriptions bool
}

// StartRealtime starts e2e/node/realtime.js.
func (s *Stack) StartRealtime(name string, o RealtimeOptions) (*Realtime, error) {
	if o.Port == 0 {
		port, err := FreePort()
		if err != nil {
			return nil, err
		}
		o.Port = port
	}
	args := []string{filepath.Join(s.Tools.NodeDir, "realtime.js"), "--port", fmt.Sprint(o.Port), "--name", name}
	add := func(flag, value string) {
		if value != "" {
			args = append(args, flag, value)
		}
	}
	add("--host", o.Host)
	add("--redis", o.Redis)
	add("--server-ip", o.ServerIP)
	add("--default-site", o.DefaultSite)
	if o.PingInterval > 0 {
		add("--ping-interval", fmt.Sprint(o.PingInterval.Milliseconds()))
	}
	if o.Adapter {
		args = append(args, "--adapter")
	}
	if o.RefuseRequests {
		args = append(args, "--refuse-requests")
	}
	if o.AckSubscriptions {
		args = append(args, "--ack-subscriptions")
	}
	p, err := s.Start(name, nil, s.Tools.Node, args...)
	if err != nil {
		return nil, err
	}
	addr := Addr(o.Port)
	if o.Host != "" {
		addr = net.JoinHostPort(o.Host, fmt.Sprint(o.Port))
	}
	if err := WaitTCP(p, addr, 10*time.Second); err != nil {
		return nil, err
	}
	return &Realtime{Process: p, Port: o.Port, Options: o}, nil
}

// Restart stops the server and starts it again on the same port, as name.
func (r *Realtime) Restart(s *Stack, name string) (*Realtime, error) {
	r.Stop()
	return s.StartRealtime(name, r.Options)
}

// ---- Redis ----

// Redis is a running Debian redis-server on a loopback port, with its own
// directory and no persistence.
type Redis struct {
	*Process
	Port int
}

// StartRedis starts redis-server on port (0: a free one).
func (s *Stack) StartRedis(name string, port int) (*Redis, error) {
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(s.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p, err := s.StartIn(dir, name, nil, s.Tools.Redis, "--bind", "127.0.0.1", "--port", fmt.Sprint(port),
		"--dir", dir, "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes")
	if err != nil {
		return nil, err
	}
	if err := WaitTCP(p, Addr(port), 10*time.Second); err != nil {
		return nil, err
	}
	return &Redis{Process: p, Port: port}, nil
}

// URL is redis://127.0.0.1:<port>.
func (r *Redis) URL() string { return fmt.Sprintf("redis://127.0.0.1:%d", r.Port) }

// Webapp is a running web app stand-in.
type Webapp struct {
	*Process
	Port int
}

// WebappOptions: the page directory to serve at /, the site name, and the
// Redis it publishes realtime events to (all optional).
type WebappOptions struct {
	Port      int // 0: a free port
	StaticDir string
	Site      string
	Redis     string // redis://…: publish like frappe.publish_realtime
	// EmitWithAdapter publishes through @socket.io/redis-emitter (for replicas
	// on @socket.io/redis-adapter) instead of Frappe's "events" channel.
	EmitWithAdapter bool
	// DevServerPort > 0: the desk page (/app) says what Frappe's does when
	// its web process runs with DEV_SERVER: window.dev_server = 1 and this
	// socketio_port in the boot data.
	DevServerPort int
}

// StartWebapp starts e2e/node/webapp.js.
func (s *Stack) StartWebapp(name string, o WebappOptions) (*Webapp, error) {
	port := o.Port
	if port == 0 {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	args := []string{filepath.Join(s.Tools.NodeDir, "webapp.js"), "--port", fmt.Sprint(port)}
	emit := ""
	if o.EmitWithAdapter {
		emit = "adapter"
	}
	devServer := ""
	if o.DevServerPort > 0 {
		devServer = fmt.Sprint(o.DevServerPort)
	}
	for flag, value := range map[string]string{"static": o.StaticDir, "site": o.Site, "redis": o.Redis, "emit": emit, "dev-server": devServer} {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	p, err := s.Start(name, nil, s.Tools.Node, args...)
	if err != nil {
		return nil, err
	}
	if err := WaitTCP(p, Addr(port), 10*time.Second); err != nil {
		return nil, err
	}
	return &Webapp{Process: p, Port: port}, nil
}

// URL is the web app's base URL.
func (w *Webapp) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", w.Port) }

// Publish is frappe.publish_realtime: the event goes through Redis to a room
// of a site's namespace ("/site" or "site"; room "" = every site). It
// returns how many Redis subscribers received it (-1: the emitter's way,
// which does not say).
func (w *Webapp) Publish(namespace, room, event string, message any) (int, error) {
	body, _ := json.Marshal(map[string]any{"namespace": strings.TrimPrefix(namespace, "/"), "room": room, "event": event, "message": message})
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Post(w.URL()+"/publish_realtime", "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("publish_realtime answered %d: %s", resp.StatusCode, b)
	}
	var answer struct {
		Subscribers int `json:"subscribers"`
	}
	if err := json.Unmarshal(b, &answer); err != nil {
		return 0, fmt.Errorf("publish_realtime: %s", b)
	}
	return answer.Subscribers, nil
}

// ClientEvent is one JSON line of client.js.
type ClientEvent struct {
	Type        string            `json:"type"`
	Transport   string            `json:"transport"`
	Name        string            `json:"name"`
	Data        json.RawMessage   `json:"data"`
	Message     string            `json:"message"`
	Description json.RawMessage   `json:"description"`
	Reason      string            `json:"reason"`
	Connected   bool              `json:"connected"`
	Ever        bool              `json:"everConnected"`
	Upgraded    bool              `json:"upgraded"`
	Events      []json.RawMessage `json:"events"`
	Errors      []ClientError     `json:"errors"`
	Disconnects []string          `json:"disconnects"`
	Reconnects  int               `json:"reconnects"`
}

// ClientError is a connect_error as socket.io-client reports it.
type ClientError struct {
	Message     string          `json:"message"`
	Description json.RawMessage `json:"description"`
}

// ClientOptions are client.js's flags.
type ClientOptions struct {
	URL          string
	Path         string
	Namespace    string
	Transports   string
	Headers      []string
	Subscribe    string // "Raven Channel/general"
	WaitEvent    string
	Events       int
	Timeout      time.Duration
	Settle       time.Duration
	Reconnection int
	Resolve      string   // "name=address": the site's name answers there (HTTPS names)
	Env          []string // e.g. NODE_EXTRA_CA_CERTS
}

// ClientRun is a running client.js.
type ClientRun struct {
	*Process
	lines chan ClientEvent
	Seen  []ClientEvent
}

// StartClient runs a socket.io-client session; read its lines with Next/Result.
func (s *Stack) StartClient(name string, o ClientOptions) (*ClientRun, error) {
	args := []string{filepath.Join(s.Tools.NodeDir, "client.js"), "--url", o.URL}
	add := func(k, v string) {
		if v != "" {
			args = append(args, "--"+k, v)
		}
	}
	add("path", o.Path)
	add("namespace", o.Namespace)
	add("transports", o.Transports)
	for _, h := range o.Headers {
		add("header", h)
	}
	add("subscribe", o.Subscribe)
	add("wait-event", o.WaitEvent)
	if o.Events > 0 {
		add("events", fmt.Sprint(o.Events))
	}
	if o.Timeout > 0 {
		add("timeout", fmt.Sprint(o.Timeout.Milliseconds()))
	}
	if o.Settle > 0 {
		add("settle", fmt.Sprint(o.Settle.Milliseconds()))
	}
	if o.Reconnection > 0 {
		add("reconnection-attempts", fmt.Sprint(o.Reconnection))
	}
	add("resolve", o.Resolve)

	cmd := exec.Command(s.Tools.Node, args...)
	cmd.Dir = s.Dir
	if len(o.Env) > 0 {
		cmd.Env = append(os.Environ(), o.Env...)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	out := &syncBuffer{prefix: "[" + name + "] "}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{Name: name, Cmd: cmd, out: out, done: make(chan struct{})}
	run := &ClientRun{Process: p, lines: make(chan ClientEvent, 64)}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			out.Write(append(sc.Bytes(), '\n'))
			var ev ClientEvent
			if json.Unmarshal(sc.Bytes(), &ev) == nil {
				run.lines <- ev
			}
		}
		close(run.lines)
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.mu.Lock()
	s.procs = append(s.procs, p)
	s.mu.Unlock()
	return run, nil
}

// Next returns the next line of the given types (or the result), waiting up to timeout.
func (c *ClientRun) Next(timeout time.Duration, types ...string) (ClientEvent, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-c.lines:
			if !ok {
				return ClientEvent{}, fmt.Errorf("%s ended without a %v line:\n%s", c.Name, types, c.Logs())
			}
			c.Seen = append(c.Seen, ev)
			if ev.Type == "result" {
				return ev, nil
			}
			for _, t := range types {
				if ev.Type == t {
					return ev, nil
				}
			}
		case <-deadline.C:
			return ClientEvent{}, fmt.Errorf("%s: no %v line within %s:\n%s", c.Name, types, timeout, c.Logs())
		}
	}
}

// Result waits for the summary line.
func (c *ClientRun) Result(timeout time.Duration) (ClientEvent, error) {
	return c.Next(timeout, "result")
}

// RunClient runs a client to its end and returns its summary.
func (s *Stack) RunClient(name string, o ClientOptions) (ClientEvent, error) {
	run, err := s.StartClient(name, o)
	if err != nil {
		return ClientEvent{}, err
	}
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 15 * time.Second
	}
	return run.Result(timeout + 5*time.Second)
}

// ---- HTTP helpers ----

// Get sends a request with the given headers and returns status, headers and body.
func Get(ctx context.Context, url string, headers map[string]string) (*http.Response, string, error) {
	return Request(ctx, &http.Client{Timeout: 40 * time.Second}, http.MethodGet, url, "", headers)
}

// Request is Get with a client, a method and a body of the caller's (a POST
// goes as Engine.IO polling sends it: text/plain).
func Request(ctx context.Context, client *http.Client, method, url, body string, headers map[string]string) (*http.Response, string, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader(body))
	if err != nil {
		return nil, "", err
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "text/plain;charset=UTF-8")
	}
	for k, v := range headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp, string(got), nil
}

func postJSON(ctx context.Context, url, body string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s answered %d: %s", url, resp.StatusCode, b)
	}
	return nil
}

type syncBuffer struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	tee    io.Writer
	prefix string
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tee != nil {
		for _, line := range strings.SplitAfter(string(p), "\n") {
			if line != "" {
				io.WriteString(b.tee, b.prefix+line)
			}
		}
	}
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Wait blocks until the process has ended.
func (p *Process) Wait() { <-p.done }
