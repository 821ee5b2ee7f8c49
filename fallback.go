package socketioguard

import (
	"fmt"
	"net/http"
	"strings"
)

// ---- Fallback mode ----
//
// On the routers that must not receive Socket.IO traffic: the full way's
// prepare answers every Engine.IO request here.

// rejectMisrouted answers an Engine.IO request that reached a router in
// fallback mode: the Socket.IO route is missing or has a lower priority.
func (g *Guard) rejectMisrouted(rw http.ResponseWriter, req *http.Request) {
	host := req.Host
	if h, _, ok := strings.Cut(host, ":"); ok && !strings.HasPrefix(host, "[") {
		host = h
	}
	detail := fmt.Sprintf("%s %s for host %q reached a router that does not serve Socket.IO", req.Method, req.URL.Path, host)
	hint := fmt.Sprintf("add a router with rule Host(`%s`) && PathPrefix(`%s`) to the Socket.IO service, with a higher priority than the router that uses the middleware %s",
		host, strings.TrimSuffix(g.settings.paths[0], "/"), g.name)
	g.reject(rw, req, problemNoSocketIORoute, g.settings.fallbackStatus, detail, hint)
}
