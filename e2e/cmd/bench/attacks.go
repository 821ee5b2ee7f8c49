package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// ---- Attack rows: Traefik's CPU per request ----
//
// Each input of stack.AttackInputs at each size, sent to the trivial
// plugin's entrypoint and to the guard's, in alternating order over the
// rounds; Traefik's CPU time (all its threads, /proc/<pid>/task/*/schedstat)
// across a batch, per request, between two garbage collections Traefik is
// asked for (its /debug/pprof/heap?gc=1): the garbage a batch makes is
// collected on that batch's account. The guard's cost is its CPU per request
// minus the trivial plugin's on the same request.

// attackBatch is how many requests of a size one batch sends.
func attackBatch(size int) int {
	switch {
	case size <= 1<<10:
		return 1000
	case size <= 64<<10:
		return 300
	}
	return 40
}

const attackRounds = 5

func measureAttacks(r *results, tr *stack.Traefik, o benchOptions) error {
	fmt.Printf("attacks: Traefik's CPU per request, %d inputs × %d sizes × %d rounds\n", len(stack.AttackInputs), len(stack.AttackSizes), attackRounds)
	for _, in := range stack.AttackInputs {
		for _, size := range stack.AttackSizes {
			key := in.Name + "/" + size.Name
			r.attacks[key] = map[string][]float64{}
			req := in.Request(strings.Repeat("a", size.Size))
			n := attackBatch(size.Size)
			for round := 0; round < attackRounds; round++ {
				order := []variant{trivial, guard}
				if round%2 == 1 {
					order = []variant{guard, trivial}
				}
				for _, v := range order {
					ns, err := cpuPerRequest(tr, strings.TrimPrefix(tr.URL(v.name), "http://"), req, n)
					if err != nil {
						return fmt.Errorf("%s via %s: %w", key, v.name, err)
					}
					r.attacks[key][v.name] = append(r.attacks[key][v.name], ns)
				}
			}
			t, _, _ := stats(r.attacks[key]["trivial"])
			g, _, _ := stats(r.attacks[key]["guard"])
			fmt.Printf("  %-36s trivial %7.1f µs  guard %7.1f µs  difference %+7.1f µs per request\n", key, t/1e3, g/1e3, (g-t)/1e3)
		}
	}
	return nil
}

// cpuPerRequest sends n copies of req to addr (4 at a time) and returns
// Traefik's CPU nanoseconds per request over the batch.
func cpuPerRequest(tr *stack.Traefik, addr string, req stack.AttackRequest, n int) (float64, error) {
	collectGarbage(tr)
	before, err := cpuNanoseconds(tr.Cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	next := make(chan struct{}, n)
	for i := 0; i < n; i++ {
		next <- struct{}{}
	}
	close(next)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range next {
				if _, err := req.Send(addr); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, err
	}
	time.Sleep(20 * time.Millisecond) // let Traefik finish the last requests' work
	collectGarbage(tr)
	after, err := cpuNanoseconds(tr.Cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	return float64(after-before) / float64(n), nil
}

// cpuNanoseconds is the CPU time all of a process's threads have had so far
// (the first field of each task's schedstat: nanoseconds on a CPU).
func cpuNanoseconds(pid int) (int64, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("no schedstat for pid %d: %v", pid, err)
	}
	var total int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that ended
		}
		fields := strings.Fields(string(b))
		if len(fields) > 0 {
			ns, _ := strconv.ParseInt(fields[0], 10, 64)
			total += ns
		}
	}
	return total, nil
}

// collectGarbage has Traefik collect its garbage now (the bench Traefik
// serves Go's /debug/pprof on its "traefik" entrypoint).
func collectGarbage(tr *stack.Traefik) {
	if resp, err := http.Get(tr.URL("traefik") + "/debug/pprof/heap?gc=1"); err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}
