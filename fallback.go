package socketioguard

import (
	"fmt"
	"net/http"
	"strings"
)

// ---- Fallback mode ----
//
// On the routers that must not receive Socket.IO traffic: the full way
// answers every Engine.IO request with rejectMisrouted.

// fallbackGuard is the handler New builds in fallback mode. Most requests a
// fallback router sees share no prefix with the Engine.IO paths: one
// comparison sends them on (nothing of the guard mode's short way). next
// and commonPrefix are the guard's, copied one selector nearer: reached
// through guard, every request would cost 3 allocations more under Yaegi.
type fallbackGuard struct {
	next         http.Handler
	commonPrefix string
	guard        *Guard
}

func (f *fallbackGuard) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if !strings.HasPrefix(req.URL.Path, f.commonPrefix) {
		f.next.ServeHTTP(rw, req)
		return
	}
	serveFullWay(f.guard, rw, req)
}

// rejectMisrouted answers an Engine.IO request that reached a router in
// fallback mode: the Socket.IO route is missing or has a lower priority.
func rejectMisrouted(g *Guard, rw http.ResponseWriter, req *http.Request) {
	host := shortened(req.Host)
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	}
	detail := fmt.Sprintf("%s %s for host %q reached a router that does not serve Socket.IO", shortened(req.Method), shortened(req.URL.Path), host)
	hint := fmt.Sprintf("add a router with rule Host(`%s`) && PathPrefix(`%s`) to the Socket.IO service, with a higher priority than the router that uses the middleware %s",
		host, strings.TrimSuffix(g.settings.paths[0], "/"), g.name)
	reject(g, rw, req, &problemNoSocketIORoute, g.settings.fallbackStatus, detail, hint)
}
