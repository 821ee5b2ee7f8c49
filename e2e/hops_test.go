package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// TestHopAnswersOnTheRealStack: answers a hop gives in the Socket.IO
// server's place (field failures 13, 14 and 16), named by the guard inside
// a real Traefik in front of the Frappe-like Socket.IO 4.8 server and real
// nginx hops — and the answers themselves unchanged:
//   - a real nginx behind Traefik that sends http to https, and one that
//     removes the trailing slash;
//   - Traefik's own basicAuth and forwardAuth after the guard, forwardAuth
//     asking a real nginx that answers as Authelia does (a redirect to its
//     login page with the return address in rd=);
//   - two replicas behind Traefik's sticky load balancer, with its default
//     cookie name and with a name the guard is told.
func TestHopAnswersOnTheRealStack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a, b := e.realtime("replica-a"), e.realtime("replica-b")
	toHTTPS := e.nginx("nginx-to-https", `
  server {
    listen 127.0.0.1:{{port}};
    location / { return 301 https://$host$request_uri; }
  }`)
	noSlash := e.nginx("nginx-no-slash", `
  server {
    listen 127.0.0.1:{{port}};
    location /socket.io/ { return 301 /socket.io$is_args$args; }
  }`)
	loginPage := e.nginx("nginx-login", `
  server {
    listen 127.0.0.1:{{port}};
    location / { return 302 https://auth.example.test/?rd=$http_x_forwarded_proto://$http_x_forwarded_host$http_x_forwarded_uri; }
  }`)
	tr, err := e.st.StartTraefik(stack.TraefikOptions{
		EntryPoints: []string{"tohttps", "noslash", "basic", "forward", "sticky", "named"},
		Routers:     []string{"tohttps@file", "noslash@file", "basic@file", "forward@file", "sticky@file", "named@file"},
		Dynamic: fmt.Sprintf(`
http:
  middlewares:
    sio-guard:
      plugin:
        socketioguard: {logLevel: warn}
    sio-guard-named:
      plugin:
        socketioguard: {logLevel: warn, stickyCookie: sio_replica}
    basic:
      basicAuth: {users: ["test:$apr1$H6uskkkW$IgXLP6ewTrSuBkTrqE8wj/"]}
    forward:
      forwardAuth: {address: %[1]q}
  services:
    tohttps: {loadBalancer: {servers: [{url: %[2]q}]}}
    noslash: {loadBalancer: {servers: [{url: %[3]q}]}}
    realtime: {loadBalancer: {servers: [{url: %[4]q}]}}
    replicas: {loadBalancer: {sticky: {cookie: {}}, servers: [{url: %[4]q}, {url: %[5]q}]}}
    replicas-named: {loadBalancer: {sticky: {cookie: {name: sio_replica}}, servers: [{url: %[4]q}, {url: %[5]q}]}}
  routers:
    tohttps: {rule: "PathPrefix(%[6]s)", entryPoints: [tohttps], middlewares: [sio-guard], service: tohttps}
    noslash: {rule: "PathPrefix(%[6]s)", entryPoints: [noslash], middlewares: [sio-guard], service: noslash}
    basic: {rule: "PathPrefix(%[6]s)", entryPoints: [basic], middlewares: [sio-guard, basic], service: realtime}
    forward: {rule: "PathPrefix(%[6]s)", entryPoints: [forward], middlewares: [sio-guard, forward], service: realtime}
    sticky: {rule: "PathPrefix(%[6]s)", entryPoints: [sticky], middlewares: [sio-guard], service: replicas}
    named: {rule: "PathPrefix(%[6]s)", entryPoints: [named], middlewares: [sio-guard-named], service: replicas-named}
`, loginPage.URL(), toHTTPS.URL(), noSlash.URL(), realtimeURL(a), realtimeURL(b), "`/socket.io`"),
	})
	e.must(err)
	const poll = "/socket.io/?EIO=4&transport=polling&t=hop"

	t.Run("a hop behind Traefik sends polling to https", func(t *testing.T) {
		got := getNoRedirect(t, tr.URL("tohttps")+poll, nil)
		expectMarked(t, got, 301, "redirected")
		if loc := got.Header.Get("Location"); !strings.HasPrefix(loc, "https://127.0.0.1/socket.io/") {
			t.Errorf("Location %q, want nginx's own", loc)
		}
		expectLog(t, tr, "level=warn", "event=redirected", "a poll was redirected", "from http to https on the same host")
	})
	t.Run("and the websocket handshake too", func(t *testing.T) {
		got := rawUpgrade(t, tr.Ports["tohttps"], "EIO=4&transport=websocket", "dGhlIHNhbXBsZSBub25jZQ==")
		expectMarked(t, got, 301, "redirected")
		expectLog(t, tr, "event=redirected", "the websocket handshake was redirected (no client follows that")
	})
	t.Run("a hop removes the trailing slash", func(t *testing.T) {
		got := getNoRedirect(t, tr.URL("noslash")+poll, nil)
		expectMarked(t, got, 301, "redirected")
		expectLog(t, tr, "event=redirected", "to the path /socket.io on the same host") // nginx's Location names its own port
	})
	t.Run("basicAuth after the guard", func(t *testing.T) {
		got := getNoRedirect(t, tr.URL("basic")+poll, nil)
		expectMarked(t, got, 401, "auth-required")
		if !strings.HasPrefix(got.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("WWW-Authenticate %q, want Traefik's", got.Header.Get("WWW-Authenticate"))
		}
		expectLog(t, tr, "event=auth-required", "401 with WWW-Authenticate Basic")
	})
	t.Run("forwardAuth sends the client to a login page", func(t *testing.T) {
		got := getNoRedirect(t, tr.URL("forward")+poll, nil)
		expectMarked(t, got, 302, "auth-required")
		if loc := got.Header.Get("Location"); !strings.Contains(loc, "?rd=http://127.0.0.1:") {
			t.Errorf("Location %q, want the login page with the return address", loc)
		}
		expectLog(t, tr, "event=auth-required", "to a login page, https://auth.example.test/")
		if strings.Contains(tr.Logs(), "rd=http") {
			t.Errorf("a log line shows the login redirect's query")
		}
	})

	t.Run("Session ID unknown, told apart by Traefik's sticky cookie", func(t *testing.T) {
		base := tr.URL("sticky")
		sid, name, own, other := sessionOnOneReplica(t, base, "")
		if name == "" || len(name) != 6 || name[0] != '_' {
			t.Fatalf("Traefik's default sticky cookie name %q", name)
		}
		// Without the cookie, the load balancer sends the poll to the replicas in
		// turn: one of two polls reaches the replica without the session.
		got := pollUntilRefused(t, base, sid, nil)
		expectMarked(t, got, 400, "session-unknown-no-sticky-cookie")
		if !strings.HasPrefix(got.Header.Get("Set-Cookie"), name+"=") {
			t.Errorf("Set-Cookie %q: the load balancer's cookie must pass", got.Header.Get("Set-Cookie"))
		}
		expectLog(t, tr, "event=session-unknown-no-sticky-cookie", "the request carried no cookie "+name)
		// A cookie naming a server the load balancer does not have: replaced.
		got = pollUntilRefused(t, base, sid, map[string]string{"Cookie": name + "=0123456789abcdef"})
		expectMarked(t, got, 400, "session-unknown-sticky-cookie")
		expectLog(t, tr, "event=session-unknown-sticky-cookie", "replaced it on this answer")
		// The other replica's valid cookie: kept, and without the option the
		// guard cannot know it was the sticky cookie.
		got = postNoop(t, noRedirects, base, sid, map[string]string{"Cookie": name + "=" + other})
		expectMarked(t, got, 400, "session-unknown")
		// Its own cookie: the poll is served.
		got = postNoop(t, noRedirects, base, sid, map[string]string{"Cookie": name + "=" + own})
		if got.Status != 200 || got.Body != "ok" || got.Header.Get("X-Socketio-Guard-Diagnosis") != "" {
			t.Errorf("the session's own cookie: %d %q", got.Status, got.Body)
		}
	})
	t.Run("with the cookie's name given, a kept cookie is named too", func(t *testing.T) {
		base := tr.URL("named")
		sid, name, _, other := sessionOnOneReplica(t, base, "sio_replica")
		if name != "sio_replica" {
			t.Fatalf("cookie %q", name)
		}
		got := postNoop(t, noRedirects, base, sid, map[string]string{"Cookie": "sid=Guest; sio_replica=" + other})
		expectMarked(t, got, 400, "session-unknown-sticky-cookie")
		expectLog(t, tr, "event=session-unknown-sticky-cookie", "the request carried sio_replica and the load balancer kept it")
		got = pollUntilRefused(t, base, sid, nil)
		expectMarked(t, got, 400, "session-unknown-no-sticky-cookie")
	})
	for _, line := range strings.Split(tr.Logs(), "\n") { // what an operator reads (go test -v)
		if i := strings.Index(line, "socketioguard: level="); i >= 0 {
			t.Log(line[i:])
		}
	}
}

// expectMarked: the hop's answer with its status, marked with the diagnosis.
func expectMarked(t *testing.T, got answer, status int, diagnosis string) {
	t.Helper()
	if got.Status != status || got.Header.Get("X-Socketio-Guard-Diagnosis") != diagnosis || got.Header.Get("X-Socketio-Guard-Error") != "" {
		t.Fatalf("answer %d %q, diagnosis %q, want %d marked %q", got.Status, got.Body, got.Header.Get("X-Socketio-Guard-Diagnosis"), status, diagnosis)
	}
}

// noRedirects is a client that shows a redirect instead of following it.
var noRedirects = &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// getNoRedirect is a GET that shows a redirect instead of following it.
func getNoRedirect(t *testing.T, url string, headers map[string]string) answer {
	t.Helper()
	return send(t, noRedirects, http.MethodGet, url, "", headers)
}

// postNoop sends a session's poll as a POST of a noop packet ("6"), which
// the session's replica answers at once ("ok"), where a GET would wait for
// the next packet.
func postNoop(t *testing.T, client *http.Client, base, sid string, headers map[string]string) answer {
	t.Helper()
	return send(t, client, http.MethodPost, base+"/socket.io/?EIO=4&transport=polling&sid="+sid, "6", headers)
}

func send(t *testing.T, client *http.Client, method, url, body string, headers map[string]string) answer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, got, err := stack.Request(ctx, client, method, url, body, headers)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return answer{resp.StatusCode, resp.Header, got}
}

// sessionOnOneReplica opens a session through a sticky load balancer and
// returns its sid, the sticky cookie's name, the value that sticks to the
// session's replica and the value of the other replica (from handshakes
// until the load balancer picked the other one; it picks in turn).
func sessionOnOneReplica(t *testing.T, base, name string) (sid, cookieName, own, other string) {
	t.Helper()
	sid, first := handshake(t, base, nil)
	cookieName, own = stickyCookie(t, first, name)
	for i := 0; i < 6 && other == ""; i++ {
		_, next := handshake(t, base, nil)
		if _, v := stickyCookie(t, next, name); v != own {
			other = v
		}
	}
	if other == "" {
		t.Fatalf("the load balancer set the same cookie %s=%s six times", cookieName, own)
	}
	return sid, cookieName, own, other
}

func stickyCookie(t *testing.T, a answer, name string) (string, string) {
	t.Helper()
	for _, line := range a.Header.Values("Set-Cookie") {
		n, rest, _ := strings.Cut(line, "=")
		if name == "" && len(n) == 6 && n[0] == '_' || n == name {
			v, _, _ := strings.Cut(rest, ";")
			return n, v
		}
	}
	t.Fatalf("no sticky cookie in %q", a.Header.Values("Set-Cookie"))
	return "", ""
}

// pollUntilRefused polls a session without a valid sticky cookie until the
// load balancer sends it to a replica without the session (bounded: it
// picks in turn among two).
func pollUntilRefused(t *testing.T, base, sid string, headers map[string]string) answer {
	t.Helper()
	var got answer
	for i := 0; i < 6; i++ {
		got = postNoop(t, noRedirects, base, sid, headers)
		if got.Status == 400 {
			return got
		}
	}
	t.Fatalf("six posts without the sticky cookie all reached the session's replica: %d %q", got.Status, got.Body)
	return got
}
