package interpreted

import (
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// BenchmarkAttack is the attack rows of make bench: what a request carrying
// one client-controlled input at 1 KiB, 64 KiB and about 1 MiB costs the
// guard under Yaegi (the Frappe recipe; inspectPath where the input needs
// it), against the trivial plugin on the same request.
func BenchmarkAttack(b *testing.B) {
	for _, in := range stack.AttackInputs {
		config := map[string]any{"setMissingOrigin": "true", "eioVersions": "4"}
		if in.Inspect {
			config["inspectPath"] = "/socket.io/.guard"
		}
		guard := interpretedHandlerWith(b, stack.PluginModule, repo(b), config, proxyBackend)
		trivial := passthroughHandler(b)
		for _, size := range stack.AttackSizes {
			r := in.Request(strings.Repeat("a", size.Size))
			for _, p := range []struct {
				name string
				h    http.Handler
			}{{"trivial", trivial}, {"guard", guard}} {
				b.Run(in.Name+"/"+size.Name+"/"+p.name, func(b *testing.B) {
					attackLoop(b, p.h, r.Method, r.Target, r.Header, r.Host)
				})
			}
		}
	}
}

// BenchmarkInspectionAnswered is what one inspection the guard answers
// costs (the query key of the attack rows at 1 KiB). The guard answers at
// most 20 a second per router — past that, the attack rows' inspection
// measures the refusal, 429 inspection-rate-limited — so this waits for
// the next second after every 20, its timer stopped: it runs only with a
// fixed count, as make bench runs it (SOCKETIOGUARD_PACED_BENCH=1,
// -benchtime 40x).
func BenchmarkInspectionAnswered(b *testing.B) {
	if os.Getenv("SOCKETIOGUARD_PACED_BENCH") == "" {
		b.Skip("paced (a second's wait after every 20 answers): run with SOCKETIOGUARD_PACED_BENCH=1 and -benchtime 40x")
	}
	const perSecond = 20 // the guard's inspectionsPerSecond
	guard := interpretedHandlerWith(b, stack.PluginModule, repo(b),
		map[string]any{"setMissingOrigin": "true", "eioVersions": "4", "inspectPath": "/socket.io/.guard"}, proxyBackend)
	req := httptest.NewRequest("GET", "/socket.io/.guard?"+strings.Repeat("a", 1<<10)+"=1&EIO=4&transport=polling", nil)
	req.Host = "v2.sysmayal.cloud"
	time.Sleep(1100 * time.Millisecond) // a budget of its own, whatever ran before
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i > 0 && i%perSecond == 0 {
			b.StopTimer()
			time.Sleep(1100 * time.Millisecond)
			b.StartTimer()
		}
		rw := &statusWriter{proxyWriter: proxyWriter{header: http.Header{}}}
		guard.ServeHTTP(rw, req)
		if rw.status != http.StatusOK {
			b.Fatalf("inspection %d answered %d, want 200", i+1, rw.status)
		}
	}
}

// statusWriter is proxyWriter keeping the status.
type statusWriter struct {
	proxyWriter
	status int
}

func (w *statusWriter) WriteHeader(status int) { w.status = status }
