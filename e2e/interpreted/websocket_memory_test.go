package interpreted

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// BenchmarkHeapPerOpenWebsocket: the heap an open websocket keeps allocated
// in the plugin's frames, in process. Traefik's proxy tunnels a websocket
// inside next.ServeHTTP: here next hijacks the connection and then blocks
// until released, as the tunnel would, while 1,000 handshakes are held
// open; the heap in use after a forced collection, per connection, is
// reported as KiB/ws (the figure to compare between plugins: the trivial
// plugin's is the floor of any Yaegi plugin; the rest is the Go runtime's
// and this harness's, the same for each), and the live heap (the bytes of
// the objects still reachable, HeapAlloc after the collection) as
// live-KiB/ws: heap in use counts whole spans, so it also counts the free
// slots beside a survivor that the handshakes' garbage left.
func BenchmarkHeapPerOpenWebsocket(b *testing.B) {
	if os.Getenv("HEAP_PROFILE") != "" {
		runtime.MemProfileRate = 1 // every allocation, for the profile of what an open websocket keeps
	}
	stripped := map[string]string{"Sec-WebSocket-Key": wsHeaders["Sec-WebSocket-Key"], "Sec-WebSocket-Version": "13"}
	for _, c := range []struct {
		name    string
		handler func(*testing.B, http.Handler) http.Handler
		target  string
		headers map[string]string
	}{
		{"trivial plugin", passthroughHandlerWith, wsUpgradeOfSID, wsHeaders},
		{"guard, handshake as Traefik forwards it", guardHandlerWith, wsUpgradeOfSID, wsHeaders},
		{"guard, direct websocket (Origin repair)", guardHandlerWith, "/socket.io/?EIO=4&transport=websocket", wsHeaders},
		{"guard, stripped upgrade repaired", guardHandlerWith, wsUpgradeOfSID, stripped},
		{"guard, diagnoseResponses off", noDiagnosisGuardWith, wsUpgradeOfSID, wsHeaders},
		{"memory floor: the guard forwarding from ServeHTTP, unwatched", websocketMemoryFloorWith, wsUpgradeOfSID, wsHeaders},
	} {
		b.Run(c.name, func(b *testing.B) {
			const open = 1000
			var hijacked sync.WaitGroup
			var hijackErrors atomic.Int64
			release := make(chan struct{})
			tunnel := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
				conn, _, err := http.NewResponseController(rw).Hijack()
				hijacked.Done()
				if err != nil {
					hijackErrors.Add(1)
					return
				}
				<-release // the websocket is open
				conn.Close()
			})
			h := c.handler(b, tunnel)
			requests := make([]*http.Request, open)
			for i := range requests {
				req := httptest.NewRequest(http.MethodGet, c.target, nil)
				req.Host = "v2.sysmayal.cloud"
				for k, v := range c.headers {
					req.Header.Set(k, v)
				}
				requests[i] = req
			}
			perConn, livePerConn := 0.0, 0.0
			for n := 0; n < b.N; n++ {
				var done sync.WaitGroup
				before, liveBefore := heapInUse()
				if n == 0 {
					writeHeapProfile("before-" + c.name)
				}
				hijacked.Add(open)
				done.Add(open)
				for _, req := range requests {
					go func(req *http.Request) {
						defer done.Done()
						h.ServeHTTP(&proxyWriter{header: http.Header{}}, req)
					}(req)
				}
				hijacked.Wait()
				during, liveDuring := heapInUse()
				if n == 0 {
					writeHeapProfile(c.name)
				}
				close(release) // every websocket closes
				done.Wait()
				release = make(chan struct{})
				perConn += float64(during-before) / open / 1024
				livePerConn += (float64(liveDuring) - float64(liveBefore)) / open / 1024
			}
			if hijackErrors.Load() > 0 {
				b.Fatalf("%d handshakes could not be hijacked through the plugin", hijackErrors.Load())
			}
			b.ReportMetric(perConn/float64(b.N), "KiB/ws")
			b.ReportMetric(livePerConn/float64(b.N), "live-KiB/ws")
		})
	}
}

// writeHeapProfile writes a heap profile to $HEAP_PROFILE-<name> when
// HEAP_PROFILE is set (to compare with go tool pprof -base).
func writeHeapProfile(name string) {
	path := os.Getenv("HEAP_PROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path + "-" + strings.ReplaceAll(name, " ", "_"))
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.WriteHeapProfile(f)
}

// heapInUse: the heap in use and the live heap, after forced collections.
func heapInUse() (inUse, live uint64) {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse, m.HeapAlloc
}

// noDiagnosisGuardWith is the guard with the Frappe recipe and
// diagnoseResponses off: its watcher reads no answer, but still counts the
// 101 (or the refusal).
func noDiagnosisGuardWith(b *testing.B, next http.Handler) http.Handler {
	config := map[string]any{"diagnoseResponses": "false"}
	for k, v := range frappeRecipe {
		config[k] = v
	}
	return interpretedHandlerWith(b, stack.PluginModule, repo(b), config, next)
}

// websocketMemoryFloorWith is the guard with the Frappe recipe whose
// ServeHTTP forwards a websocket handshake with the client's own writer
// instead of its watcher (stack.WriteWebsocketMemoryFloor): issue 24's
// memory floor, the guard calling next.ServeHTTP from its shallowest frame.
func websocketMemoryFloorWith(b *testing.B, next http.Handler) http.Handler {
	dir := filepath.Join(b.TempDir(), "wsfloor")
	if err := stack.WriteWebsocketMemoryFloor(repo(b), dir); err != nil {
		b.Fatal(err)
	}
	return interpretedHandlerWith(b, stack.WebsocketMemoryFloorModule, dir, frappeRecipe, next)
}
