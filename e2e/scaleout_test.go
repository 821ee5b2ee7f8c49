package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestScaleOut: three Socket.IO replicas sharing events through a real
// Redis, behind two Traefik instances with the same dynamic configuration
// (sticky cookie and health check), in each of the two ways replicas share
// events — Frappe's (every process subscribes to Redis "events") and the
// generic Socket.IO app's (@socket.io/redis-adapter, events emitted once).
// The guard keeps no state another Traefik would need: clients split between
// the edges get every event exactly once, a browser-like client whose
// requests alternate between the edges keeps its session thanks to the
// sticky cookie, and where nothing keeps a session on one replica the guard
// names it (session-unknown) on either edge.
func TestScaleOut(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	adapterWeb, err := e.st.StartWebapp("adapter-publisher", stack.WebappOptions{Site: site, Redis: e.redis().URL(), EmitWithAdapter: true})
	e.must(err)
	callbacks := stack.Addr(e.sessions().Port)
	var frappeWay, adapterWay []*stack.Realtime
	for i := 1; i <= 3; i++ {
		frappeWay = append(frappeWay, e.realtimeWith(fmt.Sprintf("frappe-%d", i), stack.RealtimeOptions{ServerIP: callbacks}))
		adapterWay = append(adapterWay, e.realtimeWith(fmt.Sprintf("adapter-%d", i), stack.RealtimeOptions{ServerIP: callbacks, Adapter: true}))
	}
	servers := func(replicas []*stack.Realtime) string {
		var urls []string
		for _, rt := range replicas {
			urls = append(urls, "{url: "+realtimeURL(rt)+"}")
		}
		return "[" + strings.Join(urls, ", ") + "]"
	}
	// A Socket.IO server has no health endpoint: the check is a polling
	// handshake, which any live Engine.IO server answers 200.
	dynamic := fmt.Sprintf(`
http:
  middlewares:%s
    sio-guard:
      plugin:
        socketioguard: {setMissingOrigin: true, eioVersions: "4", logLevel: warn}
  services:
    frappe-way:
      loadBalancer:
        sticky: {cookie: {name: sio_sticky, httpOnly: true}}
        healthCheck: {path: "/socket.io/?EIO=4&transport=polling", interval: 1s, timeout: 5s}
        servers: %[2]s
    adapter-way:
      loadBalancer:
        sticky: {cookie: {name: sio_sticky, httpOnly: true}}
        healthCheck: {path: "/socket.io/?EIO=4&transport=polling", interval: 1s, timeout: 5s}
        servers: %[3]s
    no-stickiness:
      loadBalancer:
        servers: %[2]s
  routers:
    frappe-way: {rule: "Host(%[4]s) && PathPrefix(%[5]s)", entryPoints: [frappe], middlewares: [frappe-site, sio-guard], service: frappe-way}
    adapter-way: {rule: "Host(%[4]s) && PathPrefix(%[5]s)", entryPoints: [adapter], middlewares: [frappe-site, sio-guard], service: adapter-way}
    no-stickiness: {rule: "Host(%[4]s) && PathPrefix(%[5]s)", entryPoints: [nostick], middlewares: [frappe-site, sio-guard], service: no-stickiness}
`, frappeSiteMiddleware, servers(frappeWay), servers(adapterWay), "`127.0.0.1`", "`/socket.io`")
	edges := map[string]*stack.Traefik{}
	for _, name := range []string{"traefik-a", "traefik-b"} {
		tr, err := e.st.StartTraefik(stack.TraefikOptions{Name: name, EntryPoints: []string{"frappe", "adapter", "nostick"}, Dynamic: dynamic,
			Routers: []string{"frappe-way@file", "adapter-way@file", "no-stickiness@file"}})
		e.must(err)
		edges[name] = tr
	}
	a, b := edges["traefik-a"], edges["traefik-b"]
	// The report's front proxy, which strips Upgrade/Connection, in front of each edge.
	front := map[string]string{}
	for _, ep := range []string{"frappe", "adapter"} {
		for name, tr := range edges {
			front[name+"/"+ep] = e.nginx("front-"+name+"-"+ep, nginxProxy(tr.URL(ep), "proxy_set_header Host $http_host;")).URL()
		}
	}

	ways := []struct {
		name      string
		entry     string
		replicas  []*stack.Realtime
		publish   func() (int, error)
		wantSubsc int
	}{
		{"Frappe's way (every replica subscribes to events)", "frappe", frappeWay, func() (int, error) {
			return e.sessions().Publish(site, room, "message_created", ravenMessage("scale-out"))
		}, 3},
		{"the Redis adapter's way (emitted once)", "adapter", adapterWay, func() (int, error) {
			return adapterWeb.Publish(site, room, "message_created", ravenMessage("scale-out"))
		}, -1},
	}
	for _, way := range ways {
		t.Run(way.name, func(t *testing.T) {
			// Nine clients, split between the two edges, each behind the stripping front proxy.
			var bases []string
			for i := 0; i < 9; i++ {
				edge := []string{"traefik-a", "traefik-b"}[i%2]
				bases = append(bases, front[edge+"/"+way.entry])
			}
			results := e.clientsThenPublish(way.entry, bases, func() {
				n, err := way.publish()
				e.must(err)
				if n != way.wantSubsc {
					t.Errorf("the PUBLISH reached %d Redis subscribers, want %d (every live replica)", n, way.wantSubsc)
				}
			})
			for i, r := range results {
				expectDelivered(t, r, "websocket", "scale-out")
				if t.Failed() {
					t.Fatalf("client %d (via %s)", i, bases[i])
				}
			}
			for _, rt := range way.replicas {
				if n := strings.Count(rt.Logs(), "client connected to "+namespace); n == 0 {
					t.Errorf("%s served no client: stickiness put every client on the other replicas", rt.Name)
				}
			}
		})
	}

	t.Run("a browser whose requests alternate between the edges keeps its session", func(t *testing.T) {
		jar, _ := cookiejar.New(nil)
		browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		for i := 0; i < 6; i++ {
			open, openEdge := a, b
			if i%2 == 1 {
				open, openEdge = b, a
			}
			sid := pollingSession(t, browser, open.URL("frappe"))
			status, diagnosis := pollOnce(t, browser, openEdge.URL("frappe"), sid)
			if status != http.StatusOK {
				t.Fatalf("session %d opened on one edge, polled on the other with the sticky cookie: %d (%s)", i, status, diagnosis)
			}
		}
	})
	t.Run("without stickiness the guard names it on either edge", func(t *testing.T) {
		noJar := &http.Client{Timeout: 10 * time.Second}
		diagnosed := map[string]int{}
		rng := rand.New(rand.NewSource(time.Now().UnixNano()))
		for _, edges := range [][2]*stack.Traefik{{a, b}, {b, a}} {
			open, poll := edges[0], edges[1]
			// Open sessions on one edge and poll the last on the other, a
			// random number of handshakes at a time, so that the two round
			// robins cannot stay aligned; stop at the first diagnosis.
			for attempt := 0; attempt < 40 && diagnosed[poll.Name] == 0; attempt++ {
				var sid string
				for k := rng.Intn(3); k >= 0; k-- {
					sid = pollingSession(t, noJar, open.URL("nostick"))
				}
				status, diagnosis := pollOnce(t, noJar, poll.URL("nostick"), sid)
				if status == http.StatusBadRequest {
					if diagnosis != "session-unknown" {
						t.Fatalf("a poll on another replica: 400 with diagnosis %q", diagnosis)
					}
					diagnosed[poll.Name]++
				}
			}
		}
		if diagnosed["traefik-a"] == 0 || diagnosed["traefik-b"] == 0 {
			t.Errorf("session-unknown diagnosed per edge: %v, want both", diagnosed)
		}
		expectLog(t, a, "event=session-unknown")
		expectLog(t, b, "event=session-unknown")
	})
}

// clientsThenPublish starts one socket.io client per base (the Raven page's
// namespace and channel), waits until every one is ready, publishes once,
// and returns each client's summary.
func (e *env) clientsThenPublish(prefix string, bases []string, publish func()) []stack.ClientEvent {
	return e.clientsThenPublishAs(prefix, bases, func(base string) stack.ClientOptions {
		return stack.ClientOptions{URL: base, Namespace: namespace, Headers: []string{origin(base), session}}
	}, publish)
}

// clientsThenPublishAs is clientsThenPublish with each client's options
// (URL, namespace, headers) from client; the channel, the event and the
// timing are the same for all.
func (e *env) clientsThenPublishAs(prefix string, bases []string, client func(base string) stack.ClientOptions, publish func()) []stack.ClientEvent {
	e.t.Helper()
	var runs []*stack.ClientRun
	for i, base := range bases {
		o := client(base)
		o.Subscribe, o.WaitEvent, o.Events = doctype+"/"+channel, "message_created", 1
		o.Timeout, o.Settle = 20*time.Second, 2*time.Second
		run, err := e.st.StartClient(fmt.Sprintf("%s-client-%d", prefix, i), o)
		e.must(err)
		runs = append(runs, run)
	}
	for _, run := range runs {
		ready, err := run.Next(20*time.Second, "ready")
		e.must(err)
		if ready.Type != "ready" {
			e.t.Fatalf("%s ended before it was ready: %+v", run.Name, ready.Errors)
		}
	}
	publish()
	var results []stack.ClientEvent
	for _, run := range runs {
		r, err := run.Result(25 * time.Second)
		e.must(err)
		results = append(results, r)
	}
	return results
}

// pollingSession opens an Engine.IO session by polling through base.
func pollingSession(t *testing.T, client *http.Client, base string) string {
	t.Helper()
	resp, err := client.Get(base + "/socket.io/?EIO=4&transport=polling")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body [512]byte
	n, _ := resp.Body.Read(body[:])
	var open struct {
		SID string `json:"sid"`
	}
	if resp.StatusCode != http.StatusOK || n < 2 || json.Unmarshal(body[1:n], &open) != nil || open.SID == "" {
		t.Fatalf("handshake through %s: %d %q", base, resp.StatusCode, body[:n])
	}
	return open.SID
}

// pollOnce POSTs a noop packet to the session (answered at once) and
// returns the status and the guard's diagnosis.
func pollOnce(t *testing.T, client *http.Client, base, sid string) (int, string) {
	t.Helper()
	a := postNoop(t, client, base, sid, nil)
	return a.Status, a.Header.Get("X-Socketio-Guard-Diagnosis")
}
