package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// bench instructions counts the instructions Traefik's own process executes
// per request, with valgrind's callgrind, for the plugin variants side by
// side in one Traefik. A count does not depend on what else the machine
// does (the throughput rounds of bench run do: their medians move by 0.1
// between runs of the same code on this 2-core machine), so it settles what
// those rounds leave within their spread — the polling handshake against
// its floor above all.
//
// What is counted, and what is not:
//   - Traefik runs with GOMAXPROCS=1 (no idle processor spinning for work
//     while a request is served one at a time) and GOGC=off: the count is
//     the request's own path (Traefik, Yaegi, the plugin, allocation
//     included), not the garbage collector's work, which a window of a few
//     hundred requests would catch whole or not at all. What the collector
//     will have to do is shown apart: allocations and bytes per request
//     (Traefik's runtime metrics, read around each window).
//   - Requests go one at a time over one keep-alive connection from this
//     process (not counted); the backend is bench's own (not counted).
//   - GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1: valgrind 3.19 decodes
//     neither Go's RDTSCP nor survives its preemption signals.
//
// Each round runs every variant once, in rotating order, after a warm-up
// round; a window is zeroed before its requests and dumped after them
// (callgrind_control), so Traefik's start and Yaegi's loading are not in it.
type instructionCase struct {
	key, name, path string
	variants        []variant
}

var instructionCases = []instructionCase{
	{"handshake", "Engine.IO polling handshake (GET without sid)", "/socket.io/?EIO=4&transport=polling&t=PaB3x1c", []variant{none, trivial, handshakeFloor, guard}},
	{"poll", "Engine.IO polling (GET with sid)", "/socket.io/?EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC", []variant{none, trivial, guard}},
}

type instructionSample struct {
	instructions, mallocs, bytes float64 // per request
}

func runInstructions(args []string) int {
	fs := flag.NewFlagSet("instructions", flag.ExitOnError)
	requests := fs.Int("requests", 300, "requests per window")
	rounds := fs.Int("rounds", 5, "rounds after the warm-up; every variant runs once per round, in rotating order")
	baselineRev := fs.String("baseline", "", "also count the plugin as committed at this git revision")
	profiles := fs.String("profiles", "", "keep each variant's last window here as a callgrind profile (<case>-<variant>.callgrind, for callgrind_annotate)")
	_ = fs.Parse(args)
	for _, tool := range []string{"valgrind", "callgrind_control"} {
		if _, err := exec.LookPath(tool); err != nil {
			fmt.Fprintf(os.Stderr, "bench instructions: %s not found: install Debian's valgrind (apt-get install valgrind)\n", tool)
			return 2
		}
	}
	st, cleanup, err := stack.NewTemp("socketioguard-instructions-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench instructions:", err)
		return 2
	}
	defer cleanup()
	if *baselineRev != "" {
		if err := useBaseline(st, *baselineRev); err != nil {
			fmt.Fprintln(os.Stderr, "bench instructions:", err)
			return 2
		}
		for i := range instructionCases {
			instructionCases[i].variants = append(instructionCases[i].variants, baseline)
		}
	}
	if err := countInstructions(st, *requests, *rounds, *profiles); err != nil {
		fmt.Fprintln(os.Stderr, "bench instructions:", err)
		fmt.Fprintln(os.Stderr, st.Logs())
		return 1
	}
	return 0
}

func countInstructions(st *stack.Stack, requests, rounds int, profiles string) error {
	out := filepath.Join(st.Dir, "callgrind.out")
	began := time.Now()
	tr, err := startBenchTraefik(st, stack.TraefikOptions{
		Env:         []string{"GODEBUG=cpu.rdtscp=off,asyncpreemptoff=1", "GOGC=off", "GOMAXPROCS=1"},
		Wrapper:     []string{"valgrind", "--tool=callgrind", "--instr-atstart=no", "--callgrind-out-file=" + out},
		ReadyWithin: 10 * time.Minute,
	})
	if err != nil {
		return err
	}
	fmt.Printf("Traefik %s under callgrind, ready after %s\n", filepath.Base(st.Tools.Traefik), time.Since(began).Round(time.Second))
	pid := strconv.Itoa(tr.Cmd.Process.Pid)
	control := func(what string) error {
		if b, err := exec.Command("callgrind_control", what, pid).CombinedOutput(); err != nil {
			return fmt.Errorf("callgrind_control %s %s: %v\n%s", what, pid, err, b)
		}
		return nil
	}
	if err := control("--instr=on"); err != nil {
		return err
	}
	dumps := 0
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 2 * time.Minute}
	// window counts n requests to url: the totals, not yet per request;
	// keep names the file its profile is kept as ("": not kept).
	window := func(url string, n int, keep string) (instructionSample, error) {
		before, err := runtimeCounters(client, tr)
		if err != nil {
			return instructionSample{}, err
		}
		if err := control("--zero"); err != nil {
			return instructionSample{}, err
		}
		for i := 0; i < n; i++ {
			resp, err := client.Get(url)
			if err != nil {
				return instructionSample{}, err
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Socketio-Guard-Error") != "" {
				return instructionSample{}, fmt.Errorf("%s: %d %s", url, resp.StatusCode, resp.Header.Get("X-Socketio-Guard-Error"))
			}
		}
		if err := control("--dump"); err != nil {
			return instructionSample{}, err
		}
		dumps++
		dump := fmt.Sprintf("%s.%d", out, dumps)
		total, err := callgrindTotal(dump)
		if err != nil {
			return instructionSample{}, err
		}
		if keep != "" {
			if err := os.MkdirAll(profiles, 0o755); err != nil {
				return instructionSample{}, err
			}
			if err := os.Rename(dump, filepath.Join(profiles, keep)); err != nil {
				return instructionSample{}, err
			}
		} else {
			_ = os.Remove(dump)
		}
		after, err := runtimeCounters(client, tr)
		if err != nil {
			return instructionSample{}, err
		}
		return instructionSample{total, after[0] - before[0], after[1] - before[1]}, nil
	}

	// What a window holds besides its requests: the same steps, no request.
	idle, err := window("", 0, "")
	if err != nil {
		return err
	}
	fmt.Printf("an empty window (no request): %.0f instructions, %.0f allocations, %.0f bytes (a metrics scrape's)\n", idle.instructions, idle.mallocs, idle.bytes)

	samples := map[string]map[string][]instructionSample{}
	for round := 0; round <= rounds; round++ {
		for _, c := range instructionCases {
			if samples[c.name] == nil {
				samples[c.name] = map[string][]instructionSample{}
			}
			for i := range c.variants {
				v := c.variants[(i+round)%len(c.variants)]
				keep := ""
				if profiles != "" && round == rounds {
					keep = c.key + "-" + v.name + ".callgrind"
				}
				s, err := window(tr.URL(v.name)+c.path, requests, keep)
				if err != nil {
					return err
				}
				if round == 0 {
					continue // warm-up
				}
				n := float64(requests)
				s = instructionSample{(s.instructions - idle.instructions) / n, (s.mallocs - idle.mallocs) / n, (s.bytes - idle.bytes) / n}
				samples[c.name][v.name] = append(samples[c.name][v.name], s)
				fmt.Printf("round %d %-48s %-9s %9.0f instructions %6.1f allocations %7.0f bytes per request\n", round, c.name, v.name, s.instructions, s.mallocs, s.bytes)
			}
		}
	}
	fmt.Printf("\n%d requests a window, %d rounds after a warm-up, %s in all; per request, median (min–max) of the rounds:\n", requests, rounds, time.Since(began).Round(time.Second))
	for _, c := range instructionCases {
		fmt.Printf("\n%s\n", c.name)
		var trivialMedian float64
		for _, v := range c.variants {
			var ins, mallocs, bytes []float64
			for _, s := range samples[c.name][v.name] {
				ins, mallocs, bytes = append(ins, s.instructions), append(mallocs, s.mallocs), append(bytes, s.bytes)
			}
			m, lo, hi := stats(ins)
			if v == trivial {
				trivialMedian = m
			}
			am, _, _ := stats(mallocs)
			bm, _, _ := stats(bytes)
			rel := ""
			if trivialMedian > 0 {
				rel = fmt.Sprintf("  trivial/this %.3f", trivialMedian/m)
			}
			fmt.Printf("  %-9s %9.0f (%.0f–%.0f) instructions  %6.1f allocations  %7.0f bytes%s\n", v.name, m, lo, hi, am, bm, rel)
		}
	}
	return nil
}

// runtimeCounters reads Traefik's allocations and allocated bytes so far
// from its Prometheus metrics.
func runtimeCounters(client *http.Client, tr *stack.Traefik) ([2]float64, error) {
	var got [2]float64
	resp, err := client.Get(tr.URL("traefik") + "/metrics")
	if err != nil {
		return got, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for i, name := range []string{"go_memstats_mallocs_total ", "go_memstats_alloc_bytes_total "} {
			if rest, ok := strings.CutPrefix(sc.Text(), name); ok {
				got[i], _ = strconv.ParseFloat(strings.TrimSpace(rest), 64)
			}
		}
	}
	return got, sc.Err()
}

// callgrindTotal reads a callgrind dump's instruction total.
func callgrindTotal(path string) (float64, error) {
	deadline := time.Now().Add(time.Minute)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if rest, ok := strings.CutPrefix(line, "totals: "); ok {
					return strconv.ParseFloat(strings.Fields(rest)[0], 64)
				}
			}
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no totals in %s: %v", path, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
