package main

import (
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// soakClients is the run's clients spread over several soak.js processes,
// each with its own loopback source address (127.0.0.2, 127.0.0.3, …) when
// asked: every command goes to each process (same protocol, one JSON line
// an answer) and their answers are merged into one.
type soakClients struct {
	drivers []*nodeDriver[soakStatus]
	addrs   []string // source address per process ("" : the default)
	counts  []int
}

// startSoakClients starts procs soak.js processes for clients clients in all,
// rate clients a second in all (0: at once).
func startSoakClients(st *stack.Stack, url string, clients, channels, procs int, sourceAddrs bool, rate int, reconnect [2]time.Duration) (*soakClients, error) {
	procs = max(1, min(procs, clients))
	c := &soakClients{}
	offset := 0
	for i := 0; i < procs; i++ {
		n := clients / procs
		if i < clients%procs {
			n++
		}
		args := []string{"--url", url, "--namespace", "/" + stack.Site, "--clients", fmt.Sprint(n), "--channels", fmt.Sprint(channels), "--offset", fmt.Sprint(offset),
			"--reconnect-delay", fmt.Sprint(reconnect[0].Milliseconds()), "--reconnect-delay-max", fmt.Sprint(reconnect[1].Milliseconds())}
		addr := ""
		if sourceAddrs {
			addr = fmt.Sprintf("127.0.0.%d", 2+i)
			args = append(args, "--local-address", addr)
		}
		if rate > 0 {
			args = append(args, "--rate", fmt.Sprint(max(1, rate/procs)))
		}
		d, err := startNodeDriver[soakStatus](st, "soak.js", args...)
		if err != nil {
			c.stop()
			return nil, err
		}
		c.drivers = append(c.drivers, d)
		c.addrs = append(c.addrs, addr)
		c.counts = append(c.counts, n)
		offset += n
	}
	return c, nil
}

func (c *soakClients) stop() {
	for _, d := range c.drivers {
		d.stop()
	}
}

// pids are the soak.js processes (for the CPU samples).
func (c *soakClients) pids() []int {
	var out []int
	for _, d := range c.drivers {
		if d.cmd.Process != nil {
			out = append(out, d.cmd.Process.Pid)
		}
	}
	return out
}

// ask sends command to every process at once and merges the answers.
func (c *soakClients) ask(command string) (soakStatus, error) {
	answers := make([]soakStatus, len(c.drivers))
	errs := make([]error, len(c.drivers))
	var wg sync.WaitGroup
	for i, d := range c.drivers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i], errs[i] = d.ask(command)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return soakStatus{}, fmt.Errorf("soak.js #%d: %w", i+1, err)
		}
	}
	return mergeSoakStatus(answers), nil
}

// waitFor asks until ok(answer) or the time runs out, every interval.
func (c *soakClients) waitFor(command string, timeout, interval time.Duration, ok func(soakStatus) bool) (soakStatus, error) {
	return waitUntil(c.ask, command, timeout, interval, ok, soakStatus.brief)
}

// brief is a status in one line, without the per-time tables.
func (s soakStatus) brief() string {
	return fmt.Sprintf("%d clients, %d connected, %d on websocket, %d subscribed, %d reconnects, %d pending recovery, unexpected disconnects %d %v, connect errors %v, failed websocket probes %v",
		s.Clients, s.Connected, s.Websocket, s.Subscribed, s.Reconnects, s.PendingRecovery, s.UnexpectedDisconnects, s.UnexpectedReasons, s.ConnectErrorMessages, s.UpgradeErrors)
}

func addCounts(into *map[string]int, from map[string]int) {
	if *into == nil {
		*into = map[string]int{}
	}
	for k, v := range from {
		(*into)[k] += v
	}
}

// mergeSoakStatus adds the processes' answers up; a fault's percentiles are
// taken again over every process's recovery times.
func mergeSoakStatus(list []soakStatus) soakStatus {
	if len(list) == 1 {
		return list[0]
	}
	var m soakStatus
	m.Faults = map[string]soakFault{}
	for _, s := range list {
		m.Type = s.Type
		m.Clients += s.Clients
		m.Connected += s.Connected
		m.Websocket += s.Websocket
		m.Subscribed += s.Subscribed
		m.Reconnects += s.Reconnects
		m.PendingRecovery += s.PendingRecovery
		m.UnexpectedDisconnects += s.UnexpectedDisconnects
		addCounts(&m.UnexpectedReasons, s.UnexpectedReasons)
		addCounts(&m.ConnectErrorMessages, s.ConnectErrorMessages)
		addCounts(&m.UnexpectedByTime, s.UnexpectedByTime)
		addCounts(&m.UpgradeErrors, s.UpgradeErrors)
		if m.LagByTime == nil {
			m.LagByTime = map[string]int{}
		}
		for k, v := range s.LagByTime {
			m.LagByTime[k] = max(m.LagByTime[k], v)
		}
		for name, f := range s.Faults {
			g := m.Faults[name]
			g.Affected += f.Affected
			g.GapMissed += f.GapMissed
			g.GapReceived += f.GapReceived
			addCounts(&g.DisconnectReasons, f.DisconnectReasons)
			g.RecoveredMs = append(g.RecoveredMs, f.RecoveredMs...)
			m.Faults[name] = g
		}
		m.Counted += s.Counted
		m.ReceivedOnce += s.ReceivedOnce
		m.Lost += s.Lost
		m.Duplicated += s.Duplicated
		m.OutOfOrder += s.OutOfOrder
		m.GapEvents += s.GapEvents
		m.GapReceived += s.GapReceived
		m.GapMissed += s.GapMissed
		m.GapDuplicated += s.GapDuplicated
		m.ClientsWithLoss += s.ClientsWithLoss
		m.GapsOutside.GapMissed += s.GapsOutside.GapMissed
		m.GapsOutside.GapReceived += s.GapsOutside.GapReceived
	}
	for name, f := range m.Faults {
		r := f.RecoveredMs
		sort.Slice(r, func(i, j int) bool { return r[i] < r[j] })
		f.Recovered = len(r)
		if len(r) > 0 {
			q := func(p float64) int64 { return r[min(len(r)-1, int(p*float64(len(r))))] }
			f.P50, f.P90, f.Max = q(0.5), q(0.9), r[len(r)-1]
		}
		m.Faults[name] = f
	}
	return m
}

// sourceAddresses counts the established connections to port by source
// address (ss -tn), to check that the clients leave from their addresses.
func sourceAddresses(port int) string {
	out, err := exec.Command("ss", "-Htn", "state", "established", fmt.Sprintf("( dport = :%d )", port)).Output()
	if err != nil {
		return "ss: " + err.Error()
	}
	count := map[string]int{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		local := f[len(f)-2]
		if i := strings.LastIndex(local, ":"); i > 0 {
			count[local[:i]]++
		}
	}
	keys := make([]string, 0, len(count))
	for k := range count {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %d", k, count[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// portRange widens the local port range for the run (Linux), and gives back
// a function that restores it. "" leaves it.
func widenPortRange(want string) (restore func(), was string, err error) {
	const path = "/proc/sys/net/ipv4/ip_local_port_range"
	restore = func() {}
	if want == "" {
		return restore, "", nil
	}
	old, err := os.ReadFile(path)
	if err != nil {
		return restore, "", err
	}
	was = strings.Join(strings.Fields(string(old)), " ")
	if was == strings.Join(strings.Fields(want), " ") {
		return restore, was, nil
	}
	if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
		return restore, was, fmt.Errorf("widening the local port range to %s: %w", want, err)
	}
	var once sync.Once
	return func() { once.Do(func() { _ = os.WriteFile(path, []byte(was), 0o644) }) }, was, nil
}
