package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// The examples' site: their Host() rules and X-Frappe-Site-Name name it.
const (
	kubeSite      = "v2.sysmayal.cloud"
	kubeNamespace = "/" + kubeSite
)

// TestKubernetesOnARealAPIServer runs examples/kubernetes on a real
// kube-apiserver (with etcd; both started here, stopped by PID, also on
// failure; it never skips): Traefik's CRDs and the Gateway API CRDs from
// Traefik v3.7.13's module, the examples applied with kubectl as users apply
// them, and the main Traefik's kubernetesCRD and kubernetesGateway providers
// watching it. Backends are this machine's processes behind selector-less
// Services with FQDN EndpointSlices (the API server refuses loopback
// addresses elsewhere); two realtime replicas listen on 127.0.0.1 and
// 127.0.0.2 (Traefik merges endpoints by address).
func TestKubernetesOnARealAPIServer(t *testing.T) {
	t.Parallel()
	tools, err := stack.FindKubeTools()
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	began := time.Now()
	kube, err := e.st.StartKube(tools)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("etcd and kube-apiserver ready after %s", time.Since(began).Round(time.Millisecond))
	kubectl := func(stdin string, args ...string) string {
		t.Helper()
		out, err := kube.Kubectl(ctx, stdin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	// The CRDs, as Traefik's own module ships them (server-side: they are
	// larger than client-side apply's annotation allows).
	kubectl("", "apply", "--server-side", "-f", tools.TraefikCRDs)
	kubectl("", "apply", "--server-side", "-f", tools.GatewayCRDs)
	kubectl("", "wait", "--for=condition=established", "crd", "--all", "--timeout=60s")

	// The backends: Redis, the web app answering Frappe's callbacks and
	// publishing, two realtime replicas on one port at two addresses.
	sessions := e.sessions()
	realtimePort := freePortOnBoth(t, "127.0.0.1", "127.0.0.2")
	var replicas []*stack.Realtime
	for i, host := range []string{"127.0.0.1", "127.0.0.2"} {
		replicas = append(replicas, e.realtimeWith(fmt.Sprintf("replica-%d", i+1), stack.RealtimeOptions{
			Host: host, Port: realtimePort, ServerIP: stack.Addr(sessions.Port),
		}))
	}
	single := e.realtimeWith("gateway-replica", stack.RealtimeOptions{ServerIP: stack.Addr(sessions.Port)})

	// Namespaces: frappe (the examples as written), frappe-gw (the HTTPRoute
	// with a single replica), guards (a Middleware another namespace uses).
	for _, ns := range []string{"frappe", "frappe-gw", "guards"} {
		kubectl("", "create", "namespace", ns)
	}
	kubectl(backends("frappe", []string{"127.0.0.1", "127.0.0.2"}, realtimePort, sessions.Port), "apply", "-f", "-")
	kubectl(backends("frappe-gw", []string{"127.0.0.1"}, single.Port, sessions.Port), "apply", "-f", "-")
	certs := t.TempDir()
	cert, key := writeCertificate(t, certs, kubeSite)
	kubectl("", "create", "secret", "tls", "v2-sysmayal-cloud-tls", "-n", "frappe", "--cert", cert, "--key", key)

	// The examples, unchanged but for the namespace where noted.
	dir := filepath.Join(e.st.Tools.Repo, "examples", "kubernetes")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		e.must(err)
		return string(b)
	}
	kubectl("", "apply", "-f", filepath.Join(dir, "middlewares.yaml"))
	kubectl("", "apply", "-f", filepath.Join(dir, "ingressroute.yaml"))
	kubectl(strings.ReplaceAll(read("middlewares.yaml"), "namespace: frappe", "namespace: frappe-gw"), "apply", "-f", "-")
	kubectl(strings.ReplaceAll(read("middlewares.yaml"), "namespace: frappe", "namespace: guards"), "apply", "-f", "-")
	kubectl(strings.ReplaceAll(read("gateway-httproute.yaml"), "namespace: frappe", "namespace: frappe-gw"), "apply", "-f", "-")
	// A route in frappe using the guard Middleware of namespace guards.
	kubectl(crossNamespaceRoute, "apply", "-f", "-")

	// Traefik A: both providers, cross-namespace references refused (the
	// default); Traefik B: the CRD provider with allowCrossNamespace.
	gwPort, err := stack.FreePort()
	e.must(err)
	kubectl(gateway(gwPort), "apply", "-f", "-")
	a, err := e.st.StartTraefik(stack.TraefikOptions{Name: "traefik-a", EntryPoints: []string{"websecure", "web", "gateway"},
		Ports: map[string]int{"gateway": gwPort}, Providers: kube.ProviderYAML(true)})
	e.must(err)
	b, err := e.st.StartTraefik(stack.TraefikOptions{Name: "traefik-b", EntryPoints: []string{"websecure", "web"},
		Providers: kube.ProviderYAML(false, "allowCrossNamespace: true")})
	e.must(err)
	waitKubeRoutes(t, a, []string{"websecure", "gateway"})
	waitKubeRoutes(t, b, []string{"websecure", "web"})
	t.Logf("Traefik serves the examples %s after the API server was ready", time.Since(began).Round(time.Millisecond))

	// The report's front nginx (proxy_pass alone: Upgrade/Connection
	// stripped) in front of Traefik A's websecure, with the site's name.
	front := e.nginx("front", fmt.Sprintf(`server {
  listen 127.0.0.1:{{port}};
  location / {
    proxy_pass https://127.0.0.1:%d;
    proxy_set_header Host %s;
    proxy_ssl_server_name on;
    proxy_ssl_name %s;
  }
}`, a.Ports["websecure"], kubeSite, kubeSite))

	t.Run("IngressRoute: two replicas, sticky, behind a stripping nginx", func(t *testing.T) {
		before := inspectRoute(t, front.URL())
		bases := []string{front.URL(), front.URL(), front.URL(), front.URL(), front.URL(), front.URL()}
		results := e.clientsThenPublishAs("ingressroute", bases, func(base string) stack.ClientOptions {
			return stack.ClientOptions{URL: base, Namespace: kubeNamespace, Headers: []string{session}}
		}, func() {
			n, err := sessions.Publish(kubeSite, room, "message_created", ravenMessage("kube"))
			e.must(err)
			if n != 3 { // two replicas and the gateway's: every process subscribes to "events"
				t.Errorf("the PUBLISH reached %d Redis subscribers, want 3", n)
			}
		})
		for _, r := range results {
			expectDelivered(t, r, "websocket", "kube")
		}
		for _, rt := range replicas {
			if c := strings.Count(rt.Logs(), "client connected to "+kubeNamespace); c == 0 {
				t.Errorf("%s served no client: the sticky service did not spread sessions over both replicas", rt.Name)
			} else {
				t.Logf("%s: %d clients", rt.Name, c)
			}
		}
		after := inspectRoute(t, front.URL())
		if after.Middleware != "frappe-sio-guard@kubernetescrd" {
			t.Errorf("the inspection answered for %q, want frappe-sio-guard@kubernetescrd", after.Middleware)
		}
		if after.Counters.Repairs["upgrade"] < before.Counters.Repairs["upgrade"]+6 {
			t.Errorf("upgrade repairs %v → %v: want one per client behind the stripping nginx", before.Counters.Repairs, after.Counters.Repairs)
		}
		t.Logf("guard %s: repairs %v → %v", after.Middleware, before.Counters.Repairs, after.Counters.Repairs)

		// Stickiness: a session polled again with its cookie stays on its
		// replica; the same request without the cookie is named by the guard
		// when it lands on the other one, by the cookie it lacked.
		jar, _ := cookiejar.New(nil)
		browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
		for i := 0; i < 6; i++ {
			sid := pollingSession(t, browser, front.URL())
			if status, diagnosis := pollOnce(t, browser, front.URL(), sid); status != http.StatusOK {
				t.Fatalf("a session polled with its sticky cookie: %d (%s)", status, diagnosis)
			}
		}
		noJar := &http.Client{Timeout: 10 * time.Second}
		named := ""
		for attempt := 0; attempt < 20 && named == ""; attempt++ {
			sid := pollingSession(t, noJar, front.URL())
			if status, diagnosis := pollOnce(t, noJar, front.URL(), sid); status == http.StatusBadRequest {
				named = diagnosis
			}
		}
		if named != "session-unknown-no-sticky-cookie" { // the example tells the guard the cookie's name (stickyCookie)
			t.Errorf("without the sticky cookie, a poll on the other replica was named %q, want session-unknown-no-sticky-cookie", named)
		}
	})

	t.Run("HTTPRoute with ExtensionRef filters, one replica", func(t *testing.T) {
		gw := fmt.Sprintf("http://%s:%d", kubeSite, gwPort)
		run, err := e.st.StartClient("httproute-client", stack.ClientOptions{
			URL: gw, Namespace: kubeNamespace, Headers: []string{session}, Subscribe: doctype + "/" + channel,
			WaitEvent: "message_created", Events: 1, Timeout: 20 * time.Second, Settle: 2 * time.Second,
			Resolve: kubeSite + "=127.0.0.1",
		})
		e.must(err)
		ready, err := run.Next(20*time.Second, "ready")
		e.must(err)
		if ready.Type != "ready" {
			t.Fatalf("the client did not connect through the HTTPRoute: %+v", ready.Errors)
		}
		_, err = sessions.Publish(kubeSite, room, "message_created", ravenMessage("gateway"))
		e.must(err)
		r, err := run.Result(25 * time.Second)
		e.must(err)
		expectDelivered(t, r, "websocket", "gateway")
		if !strings.Contains(single.Logs(), "client connected to "+kubeNamespace) {
			t.Errorf("the gateway's replica served no client")
		}
		// The guard's filter: an EIO=3 handshake is refused by the guard.
		client := hostClient(gwPort)
		resp, err := client.Get("http://" + kubeSite + "/socket.io/?EIO=3&transport=polling")
		e.must(err)
		resp.Body.Close()
		if id := resp.Header.Get("X-Socketio-Guard-Error"); id == "" {
			t.Errorf("EIO=3 through the HTTPRoute: %d without the guard's error", resp.StatusCode)
		}
		t.Logf("through the HTTPRoute: message_created over websocket; EIO=3 refused by the guard (%s)", resp.Header.Get("X-Socketio-Guard-Error"))
	})

	t.Run("the doctor reads a Gateway route over two backends", func(t *testing.T) {
		// A second Service for the same replica, and an HTTPRoute for any
		// host whose /socket.io rule has the guard and two backendRefs.
		kubectl(strings.Replace(backends("frappe-gw", []string{"127.0.0.1"}, single.Port, sessions.Port), "frappe-socketio", "frappe-socketio-b", -1), "apply", "-f", "-")
		kubectl(`apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: two-backends, namespace: frappe-gw}
spec:
  parentRefs: [{name: traefik-gateway}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /socket.io}}]
      filters:
        - {type: ExtensionRef, extensionRef: {group: traefik.io, kind: Middleware, name: sio-guard}}
      backendRefs:
        - {name: frappe-socketio, port: 9000}
        - {name: frappe-socketio-b, port: 9000}
`, "apply", "-f", "-")
		doctorBin := buildDoctor(t, e)
		var out []byte
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			out, _ = exec.Command(doctorBin, "doctor", fmt.Sprintf("http://127.0.0.1:%d", gwPort), "--namespace", kubeNamespace, "--cookie", "sid=doctor",
				"--timeout", "10s", "--traefik-api", a.URL("traefik"), "--json").Output()
			if strings.Contains(string(out), "weighted service") {
				break
			}
			time.Sleep(time.Second)
		}
		var r configOutput
		if err := json.Unmarshal(out, &r); err != nil || r.Traefik == nil {
			t.Fatalf("doctor --json: %v\n%s", err, out)
		}
		found := false
		for _, f := range r.Traefik.Findings {
			if f.ID == "no-stickiness" && f.Status == "fail" && strings.Contains(f.Summary, "weighted service") {
				found = true
				t.Logf("%s %s: %s", f.Status, f.ID, f.Summary)
			}
		}
		if !found {
			t.Errorf("no no-stickiness failure for the Gateway route over two backends: %+v", r.Traefik.Findings)
		}
	})

	t.Run("a Middleware in another namespace", func(t *testing.T) {
		probe := func(tr *stack.Traefik) (int, string) {
			client := hostClient(tr.Ports["web"])
			resp, err := client.Get("http://cross.example.test/socket.io/?EIO=3&transport=polling")
			e.must(err)
			resp.Body.Close()
			return resp.StatusCode, resp.Header.Get("X-Socketio-Guard-Error")
		}
		status, id := probe(a)
		refused := regexp.MustCompile(`.*invalid reference to middleware sio-guard.*`).FindString(a.Logs())
		t.Logf("allowCrossNamespace off: %d; Traefik logs: %s", status, refused)
		if status != http.StatusNotFound || refused == "" {
			t.Errorf("without allowCrossNamespace: %d %q and log %q, want 404 and Traefik's error", status, id, refused)
		}
		status, id = probe(b)
		t.Logf("allowCrossNamespace on: %d %s", status, id)
		if id == "" {
			t.Errorf("with allowCrossNamespace the guard of namespace guards did not answer (%d)", status)
		}
	})

	t.Run("a Middleware's spec changes without a restart", func(t *testing.T) {
		handshake := func() {
			resp, err := hostClient(gwPort).Get("http://" + kubeSite + "/socket.io/?EIO=4&transport=polling")
			e.must(err)
			resp.Body.Close()
		}
		handshake()
		if strings.Contains(a.Logs(), "event=repaired-origin") {
			t.Fatalf("the guard logged repaired-origin at its default logLevel (error)")
		}
		kubectl("", "patch", "middleware", "sio-guard", "-n", "frappe-gw", "--type=merge",
			"-p", `{"spec":{"plugin":{"socketioguard":{"logLevel":"info"}}}}`)
		patched := time.Now()
		deadline := time.Now().Add(30 * time.Second)
		for !strings.Contains(a.Logs(), "event=repaired-origin") && time.Now().Before(deadline) {
			handshake()
			time.Sleep(250 * time.Millisecond)
		}
		if !strings.Contains(a.Logs(), "event=repaired-origin") {
			t.Fatalf("logLevel: info took no effect within 30 s")
		}
		t.Logf("logLevel: info in effect %s after kubectl patch (Traefik not restarted)", time.Since(patched).Round(100*time.Millisecond))
	})
}

// crossNamespaceRoute: an IngressRoute in frappe on the web entrypoint whose
// guard is the Middleware of namespace guards.
const crossNamespaceRoute = `apiVersion: traefik.io/v1alpha1
kind: IngressRoute
metadata:
  name: cross
  namespace: frappe
spec:
  entryPoints: [web]
  routes:
    - match: Host(` + "`cross.example.test`" + `) && PathPrefix(` + "`/socket.io`" + `)
      kind: Rule
      middlewares:
        - name: sio-guard
          namespace: guards
      services:
        - name: frappe-socketio
          port: 9000
`

// gateway: Traefik's GatewayClass and the Gateway the example HTTPRoute's
// parentRefs name, in its namespace, listening on Traefik's gateway entrypoint
// (a listener's port must be the entrypoint's).
func gateway(port int) string {
	return fmt.Sprintf(`apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata:
  name: traefik
spec:
  controllerName: traefik.io/gateway-controller
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: traefik-gateway
  namespace: frappe-gw
spec:
  gatewayClassName: traefik
  listeners:
    - name: web
      protocol: HTTP
      port: %d
      allowedRoutes:
        namespaces: {from: Same}
`, port)
}

// backends: the Services the examples name (frappe-socketio :9000,
// frappe-web :8000), selector-less, each with an FQDN EndpointSlice of
// loopback addresses.
func backends(ns string, socketioAddresses []string, socketioPort, webPort int) string {
	var b strings.Builder
	service := func(name string, port, target int, addresses []string) {
		fmt.Fprintf(&b, `---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  ports: [{name: http, port: %[3]d, targetPort: %[4]d}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: %[1]s-loopback
  namespace: %[2]s
  labels: {kubernetes.io/service-name: %[1]s}
addressType: FQDN
ports: [{name: http, port: %[4]d, protocol: TCP}]
endpoints:
`, name, ns, port, target)
		for _, addr := range addresses {
			fmt.Fprintf(&b, "  - addresses: [%q]\n    conditions: {ready: true}\n", addr)
		}
	}
	service("frappe-socketio", 9000, socketioPort, socketioAddresses)
	service("frappe-web", 8000, webPort, []string{"127.0.0.1"})
	return b.String()
}

// waitKubeRoutes waits until Traefik has routers from the Kubernetes
// providers on each entrypoint.
func waitKubeRoutes(t *testing.T, tr *stack.Traefik, entryPoints []string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, body, err := stack.Get(ctx, tr.URL("traefik")+"/api/http/routers", nil)
		cancel()
		var routers []struct {
			EntryPoints []string `json:"entryPoints"`
			Status      string   `json:"status"`
			Provider    string   `json:"provider"`
		}
		enabled := map[string]bool{}
		if err == nil && json.Unmarshal([]byte(body), &routers) == nil {
			for _, r := range routers {
				if r.Status == "enabled" && strings.HasPrefix(r.Provider, "kubernetes") {
					for _, ep := range r.EntryPoints {
						enabled[ep] = true
					}
				}
			}
		}
		ready := true
		for _, ep := range entryPoints {
			ready = ready && enabled[ep]
		}
		if ready {
			return
		}
		last = stack.Trim(body, 600)
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("%s has no enabled Kubernetes routers on %v within 60 s (routers: %s)\n%s", tr.Name, entryPoints, last, tr.Logs())
}

// hostClient sends every request to 127.0.0.1:port, whatever the URL's host
// (the Host header stays the URL's).
func hostClient(port int) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, stack.Addr(port))
		},
	}}
}

// freePortOnBoth finds a port free on both loopback addresses.
func freePortOnBoth(t *testing.T, a, b string) int {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		port, err := stack.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(b, fmt.Sprint(port)))
		if err == nil {
			l.Close()
			return port
		}
	}
	t.Fatalf("no port free on both %s and %s", a, b)
	return 0
}
