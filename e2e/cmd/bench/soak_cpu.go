package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// cpuSampler reads the CPU time of the run's processes from /proc every
// interval: each tracked name is a set of process groups (a Traefik, nginx
// with its workers, a replica, the soak.js processes), summed; and the
// machine's busy share from /proc/stat.
type cpuSampler struct {
	mu            sync.Mutex
	groups        map[string][]int // name → process group ids
	ports         map[int]string   // listening port → name, for the accept queues
	lastOverflows uint64
	last          map[string]cpuTicks
	lastAll       [3]uint64 // busy, total, irq+softirq jiffies
	lastAt        time.Time
	samples       []cpuSample
	stage         string
	stop          chan struct{}
	done          chan struct{}
}

type cpuTicks struct {
	key   string // the groups the ticks were read from (a restart starts again)
	ticks uint64
}

// cpuSample is one interval: per name, the share of one core it used (100 = a
// whole core); machine is the share of all cores busy (100 = every core).
type cpuSample struct {
	at      time.Time
	stage   string
	cores   map[string]float64
	machine float64
	irq     float64 // the kernel's interrupt and softirq time (loopback TCP's receive path), % of one core
	// the kernel's ListenOverflows in the interval (a full accept queue
	// drops the SYN: the client retries after 1 s, 3 s, …), and the fullest
	// accept queue of the run's listeners at the sample (name → queued)
	overflows uint64
	queues    map[string]int
}

const clockTicks = 100 // USER_HZ on Linux

func newCPUSampler(interval time.Duration) *cpuSampler {
	s := &cpuSampler{groups: map[string][]int{}, ports: map[int]string{}, last: map[string]cpuTicks{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.sample()
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *cpuSampler) close() {
	close(s.stop)
	<-s.done
}

// track sets the process groups counted under name (none: untrack).
func (s *cpuSampler) track(name string, pgids ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(pgids) == 0 {
		delete(s.groups, name)
		return
	}
	s.groups[name] = pgids
}

// listener names a listening port (none: forget it).
func (s *cpuSampler) listener(name string, port int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		delete(s.ports, port)
		return
	}
	s.ports[port] = name
}

// setStage names what the run is doing from now on (for the samples).
func (s *cpuSampler) setStage(stage string) {
	s.mu.Lock()
	s.stage = stage
	s.mu.Unlock()
}

func (s *cpuSampler) sample() {
	now := time.Now()
	perGroup := groupTicks()
	busy, total, irq := machineTicks()
	overflows := listenOverflows()
	queued := acceptQueues()
	s.mu.Lock()
	defer s.mu.Unlock()
	secs := now.Sub(s.lastAt).Seconds()
	smp := cpuSample{at: now, stage: s.stage, cores: map[string]float64{}, queues: map[string]int{}}
	if overflows >= s.lastOverflows {
		smp.overflows = overflows - s.lastOverflows
	}
	s.lastOverflows = overflows
	for port, n := range queued {
		if name, ok := s.ports[port]; ok {
			smp.queues[name] = max(smp.queues[name], n)
		}
	}
	if !s.lastAt.IsZero() && total > s.lastAll[1] {
		smp.machine = 100 * float64(busy-s.lastAll[0]) / float64(total-s.lastAll[1])
		smp.irq = 100 * float64(irq-s.lastAll[2]) / clockTicks / secs
	}
	for name, pgids := range s.groups {
		var ticks uint64
		keys := make([]string, len(pgids))
		for i, g := range pgids {
			ticks += perGroup[g]
			keys[i] = strconv.Itoa(g)
		}
		key := strings.Join(keys, ",")
		if prev, ok := s.last[name]; ok && prev.key == key && ticks >= prev.ticks && secs > 0 {
			smp.cores[name] = 100 * float64(ticks-prev.ticks) / clockTicks / secs
		}
		s.last[name] = cpuTicks{key: key, ticks: ticks}
	}
	if !s.lastAt.IsZero() {
		s.samples = append(s.samples, smp)
	}
	s.lastAll = [3]uint64{busy, total, irq}
	s.lastAt = now
}

func (s *cpuSampler) list() []cpuSample {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]cpuSample(nil), s.samples...)
}

// groupTicks is utime+stime by process group, over every process (a
// process's own time; the children that ended are not counted).
func groupTicks() map[int]uint64 {
	out := map[int]uint64{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, path := range stats {
		raw, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		text := string(raw)
		i := strings.LastIndexByte(text, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(text[i+1:])
		// after the name: state(0) ppid(1) pgrp(2) … utime(11) stime(12)
		if len(f) < 13 {
			continue
		}
		pgrp, _ := strconv.Atoi(f[2])
		u, _ := strconv.ParseUint(f[11], 10, 64)
		st, _ := strconv.ParseUint(f[12], 10, 64)
		out[pgrp] += u + st
	}
	return out
}

func machineTicks() (busy, total, irq uint64) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	f := strings.Fields(line)
	for i, v := range f[1:] {
		n, _ := strconv.ParseUint(v, 10, 64)
		if i == 8 || i == 9 { // guest, guest_nice are in user already
			continue
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
		if i == 5 || i == 6 { // irq, softirq
			irq += n
		}
	}
	return busy, total, irq
}

// cpuStats: per name, the mean and the highest share over the samples
// whose stage starts with prefix.
func cpuStats(samples []cpuSample, prefix string) (names []string, mean, peak map[string]float64, machineMean, machinePeak, othersMean float64) {
	mean, peak = map[string]float64{}, map[string]float64{}
	count := map[string]int{}
	n := 0
	for _, smp := range samples {
		if !strings.HasPrefix(smp.stage, prefix) {
			continue
		}
		n++
		machineMean += smp.machine
		machinePeak = max(machinePeak, smp.machine)
		ours := 0.0
		for _, v := range smp.cores {
			ours += v
		}
		othersMean += max(0, smp.machine*float64(runtime.NumCPU())-ours-smp.irq)
		for name, v := range smp.cores {
			mean[name] += v
			count[name]++
			peak[name] = max(peak[name], v)
		}
	}
	for name := range mean {
		mean[name] /= float64(count[name])
		names = append(names, name)
	}
	if n > 0 {
		machineMean /= float64(n)
		othersMean /= float64(n)
	}
	sort.Strings(names)
	return names, mean, peak, machineMean, machinePeak, othersMean
}

// listenOverflows is the kernel's TcpExt ListenOverflows counter.
func listenOverflows() uint64 {
	raw, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0
	}
	lines := strings.Split(string(raw), "\n")
	for i := 0; i+1 < len(lines); i += 2 {
		h, v := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := range h {
			if h[j] == "ListenOverflows" && j < len(v) {
				n, _ := strconv.ParseUint(v[j], 10, 64)
				return n
			}
		}
	}
	return 0
}

// acceptQueues: the connections waiting in each listening port's accept
// queue (ss -ltn: Recv-Q of a listening socket).
func acceptQueues() map[int]int {
	out := map[int]int{}
	raw, err := exec.Command("ss", "-Hltn").Output()
	if err != nil {
		return out
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		q, _ := strconv.Atoi(f[1])
		local := f[3]
		if i := strings.LastIndexByte(local, ':'); i >= 0 {
			if port, err := strconv.Atoi(local[i+1:]); err == nil {
				out[port] = max(out[port], q)
			}
		}
	}
	return out
}
