package interpreted

import (
	"net/http"
	"strings"
	"testing"

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
