package socketioguard

import (
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// discardWriter is a ResponseWriter that costs nothing, so benchmarks and
// allocation counts measure the guard alone.
type discardWriter struct{ header http.Header }

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

var okBackend = http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
	rw.WriteHeader(http.StatusOK)
})

func benchmarkGuard(b *testing.B, target string) {
	guard := newTestGuard(&testing.T{}, CreateConfig(), okBackend, nil)
	req := httptest.NewRequest(http.MethodGet, target, nil)
	rw := &discardWriter{header: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		guard.ServeHTTP(rw, req)
	}
}

// BenchmarkServeHTTPNonEngineIO is the cost on every web-app request of a
// router the guard is attached to (fallback mode sees mostly these).
func BenchmarkServeHTTPNonEngineIO(b *testing.B) {
	benchmarkGuard(b, "/api/method/frappe.realtime.get_user_info")
}

// BenchmarkServeHTTPPolling is a valid polling request (validate + watch the answer).
func BenchmarkServeHTTPPolling(b *testing.B) {
	benchmarkGuard(b, "/socket.io/?EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC")
}

// interpretedByYaegi: Yaegi's reflect types carry no package path.
func interpretedByYaegi() bool { return reflect.TypeOf(Guard{}).PkgPath() == "" }

func TestNonEngineIORequestAllocatesNothing(t *testing.T) {
	if interpretedByYaegi() {
		t.Skip("allocation counts are a property of the compiled code; Yaegi allocates per call")
	}
	guard := newTestGuard(t, CreateConfig(), okBackend, nil)
	req := httptest.NewRequest(http.MethodGet, "/assets/raven/app.js", nil)
	rw := &discardWriter{header: http.Header{}}
	if allocs := testing.AllocsPerRun(100, func() { guard.ServeHTTP(rw, req) }); allocs != 0 {
		t.Errorf("a non-Engine.IO request costs %v allocations, want 0", allocs)
	}
}

// hugeQuery is a 1 MiB query with the Engine.IO keys at its end: the most an
// entrypoint lets through by default (Traefik's maxHeaderBytes is 1 MiB).
var hugeQuery = "/socket.io/?" + strings.Repeat("p=1&", (1<<20)/4) + "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"

// BenchmarkServeHTTPHugeQuery is what a client can make the guard do per
// request with the longest query Traefik accepts (report time and memory).
func BenchmarkServeHTTPHugeQuery(b *testing.B) {
	benchmarkGuard(b, hugeQuery)
}

// BenchmarkShortWayQuery is the short way's recognition of a poll's query
// (one compiled regular-expression match, its sid group read, under Yaegi
// too), with
// socket.io-client's own query and with application parameters first.
func BenchmarkShortWayQuery(b *testing.B) {
	polling := shortWayQuery([]string{"4"}, transportPolling)
	for name, query := range map[string]string{
		"client":     "EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC",
		"app-params": "token=abc&room=doc%3ARaven&EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC",
	} {
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if recognised, withSID := shortWayRecognises(polling, query); !recognised || !withSID {
					b.Fatal("not recognised as a poll")
				}
			}
		})
	}
}

// BenchmarkLargePollAnswer is what the guard holds of a poll's answer of 4
// MiB (32 KiB writes, as Traefik's proxy writes): B/op is the guard's own
// memory per such poll, at most 64 KiB of it held (maxHeldAnswer), the
// rest streamed on.
func BenchmarkLargePollAnswer(b *testing.B) {
	chunk := []byte(strings.Repeat("4hello", 32<<10/6))
	backend := http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		rw.WriteHeader(http.StatusOK)
		for written := 0; written < 4<<20; written += len(chunk) {
			_, _ = rw.Write(chunk)
		}
	})
	guard := newTestGuard(&testing.T{}, CreateConfig(), backend, nil)
	req := httptest.NewRequest(http.MethodGet, "/socket.io/?EIO=4&transport=polling&t=PaB3x1c&sid=lv_VI97HAXpY6yYWAAAC", nil)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		guard.ServeHTTP(&discardWriter{header: http.Header{}}, req)
	}
}
