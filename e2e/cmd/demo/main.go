// Command demo runs the report's deployment locally, without Docker: the web
// app and the Frappe-like realtime server behind a real Traefik with
// socketioguard, then the report's three deployment checks. It stays up until
// Ctrl-C and stops every process it started.
//
//	make demo          # (from the repository root) installs what it needs, then runs this
//	make demo-broken   # plus the report's broken variants on the next ports
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

func main() {
	port := flag.Int("port", 8005, "public port (the report's nginx multiplexer port); a free one if busy")
	broken := flag.Bool("broken", false, "also start the report's broken variants on port+1 … port+3")
	checksOnly := flag.Bool("checks-only", false, "run the deployment checks, print them and exit (non-zero on FAIL)")
	flag.Parse()
	os.Exit(run(*port, *broken, *checksOnly))
}

func run(port int, broken, checksOnly bool) int {
	st, cleanup, err := stack.NewTemp("socketioguard-demo-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		return 2
	}
	defer cleanup()

	// The guard's own log lines, as Traefik writes them, shown live.
	guardLines := &lineFilter{out: os.Stdout, keep: "socketioguard:", prefix: "  traefik │ "}
	fmt.Println("socketioguard demo — the report's deployment, locally")
	demo, err := stack.StartDemo(st, stack.DemoOptions{Port: port, Broken: broken, Tee: guardLines})
	if err != nil {
		fmt.Fprintln(os.Stderr, "demo: start:", err)
		return 1
	}
	fmt.Printf(`
  web app        (Frappe's :8000 role)   %s
  realtime       (Frappe's :9000 role)   http://127.0.0.1:%d   events from %s (channel "events")
  public entry   (Traefik + socketioguard) %s
`, demo.Webapp.URL(), demo.Realtime.Port, demo.Redis.URL(), demo.URL)

	fmt.Println("\nThe report's deployment checks")
	failed := 0
	for i, c := range demo.RunChecks() {
		verdict := "PASS"
		if !c.OK {
			verdict = "FAIL"
			failed++
		}
		fmt.Printf("  %s  %d. %-38s %s\n", verdict, i+1, c.Name, c.Detail)
	}
	if checksOnly {
		if failed > 0 {
			fmt.Printf("\n%d of 3 checks failed; processes' output:\n%s", failed, st.Logs())
			return 1
		}
		return 0
	}

	fmt.Printf(`
Open %[1]s/ — the #general channel of a Raven-like page. Send a message:
it arrives without reload, and the header shows the transport (websocket).

Try:
  curl -i '%[1]s/socket.io/?EIO=4&transport=polling'        the handshake, Origin set by the guard
  curl -i '%[1]s/socket.io/'                                a hop dropped the query: 400 query-missing
  curl -s '%[1]s/socket.io/.guard?EIO=4&transport=websocket' -H 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==' -H 'Sec-WebSocket-Version: 13'
                                                            what the guard sees and would do (inspectPath)
  curl -X POST %[1]s/api/method/raven.api.send_message -d '{"channel_id":"general","text":"hi from curl"}'
`, demo.URL)
	if broken {
		fmt.Printf(`
The report's broken variants:
  %-24s front nginx without upgrade lines → Traefik: the guard repairs the
                           handshake (X-Socketio-Guard-Repaired: upgrade), the page ends on websocket
  %-24s the tunnel's mistake (everything to the web app): the page shows
                           no-socketio-route and the router rule to add
  %-24s no Origin repair: Frappe answers "Invalid origin", the page says why
`, demo.Variants["stripped"]+"/", demo.Variants["misrouted"]+"/", demo.Variants["noorigin"]+"/")
	}
	fmt.Println("\nThe guard's log lines appear below. Ctrl-C stops every process.")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	exited := make(chan string, 1)
	for _, p := range []*stack.Process{demo.Traefik.Process, demo.Realtime.Process, demo.Webapp.Process} {
		p := p
		go func() {
			p.Wait()
			exited <- p.Name
		}()
	}
	select {
	case <-sig:
		fmt.Println("\nstopping…")
	case name := <-exited:
		fmt.Printf("\n%s exited; stopping. Output:\n%s", name, st.Logs())
		return 1
	}
	return 0
}

// lineFilter passes on the lines that contain keep.
type lineFilter struct {
	mu      sync.Mutex
	out     io.Writer
	keep    string
	prefix  string
	pending string
}

func (f *lineFilter) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending += string(p)
	for {
		i := strings.IndexByte(f.pending, '\n')
		if i < 0 {
			break
		}
		line := f.pending[:i]
		f.pending = f.pending[i+1:]
		// Traefik's line: "<time> DBG fmt/print.go:263 > socketioguard: … module=… plugin=…":
		// keep the guard's own part.
		if i := strings.Index(line, f.keep); i >= 0 {
			line = line[i:]
			if j := strings.Index(line, " module="); j >= 0 {
				line = line[:j]
			}
			fmt.Fprintln(f.out, f.prefix+line)
		}
	}
	return len(p), nil
}
