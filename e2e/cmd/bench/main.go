// Command bench measures what socketioguard costs inside a real Traefik
// (the main one, v3.7.13), side by side in one run, on loopback (make bench):
//
//   - HTTP: wrk (Debian's) against four entrypoints to the same fast backend —
//     no middleware, a trivial pass-through Yaegi plugin (the catalog's demo
//     kind), socketioguard in guard mode, socketioguard in fallback mode —
//     with Engine.IO polling requests and web-app requests, the variants
//     interleaved over several rounds;
//   - websocket echo throughput through Traefik with and without the guard;
//   - Traefik's memory with 1,000 idle websockets through the guard and without;
//   - Go benchmarks of the plugin, compiled and interpreted by Yaegi in-process;
//
// and writes bench/report.md and bench/throughput.png.
//
//	bench run [--rounds 5] [--duration 3s] [--connections 32] [--out DIR]
//	bench soak [--clients 1000] [--channels 50] [--interval 250ms] [--out DIR]
//	bench instructions [--requests 300] [--rounds 5] [--baseline REV]
//	bench backend --port N        (the fast backend; run by bench run)
//
// bench soak: 1,000 socket.io clients through a header-stripping nginx → two
// Traefiks + guard → three Frappe-like replicas → Redis, events all along, a
// replica killed (kill -9) and started again, Redis restarted; writes
// bench/soak.md.
package main

import (
	"fmt"
	"os"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: bench run [flags] | bench soak [flags] | bench instructions [flags] | bench backend --port N")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "backend":
		os.Exit(serveBackend(os.Args[2:]))
	case "run":
		os.Exit(runBench(os.Args[2:]))
	case "soak":
		os.Exit(runSoak(os.Args[2:]))
	case "instructions":
		os.Exit(runInstructions(os.Args[2:]))
	default:
		fmt.Fprintf(os.Stderr, "bench: unknown command %q\n", os.Args[1])
		os.Exit(2)
	}
}
