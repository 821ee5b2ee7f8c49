package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestDeskPage: step 10 names the dev server setting only from the desk
// page's own boot data, and says "not evaluated" where it cannot read it.
func TestDeskPage(t *testing.T) {
	const bootStart = `<script>window._version_number = "x"; window.app = true; `
	cases := []struct {
		name, cookie string
		status       int
		page         string
		want, id     string
		text         string
	}{
		{"production: dev_server 0", "sid=abc", 200, bootStart + `window.dev_server = 0; frappe.boot = {"socketio_port": 9000};</script>`, pass, "", "through http://127.0.0.1"},
		{"bench start: dev_server 1, the boot's port", "sid=abc", 200, bootStart + `window.dev_server = 1; frappe.boot = {"sitename": "s", "socketio_port": 9001};</script>`, fail, "dev-server-port", ":9001/socket.io/ directly"},
		{"dev_server 1 without a port in the boot: 9000", "sid=abc", 200, bootStart + `window.dev_server = 1; frappe.boot = {};</script>`, fail, "dev-server-port", ":9000/socket.io/ directly"},
		{"the port given as a string", "sid=abc", 200, bootStart + `window.dev_server = 1; frappe.boot = {"socketio_port": "9002"};</script>`, fail, "dev-server-port", ":9002/"},
		{"the boot data past the first MiB is still read", "sid=abc", 200, bootStart + `window.dev_server = 1; frappe.boot = {"x": "` + strings.Repeat("a", 2<<20) + `", "socketio_port": 9003};</script>`, fail, "dev-server-port", ":9003/"},
		{"a login redirect (Guest)", "sid=abc", 302, "", skip, "", "answered 302"},
		{"not Frappe's desk page", "sid=abc", 200, "<html>hello</html>", skip, "", "has no window.dev_server"},
		{"no cookie: not evaluated", "", 200, bootStart + `window.dev_server = 1;</script>`, skip, "", "logged-in session only"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var sawCookie string
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sawCookie = r.Header.Get("Cookie")
				if r.URL.Path != "/app" {
					http.NotFound(w, r)
					return
				}
				if c.status == 302 {
					http.Redirect(w, r, "/login?redirect-to=/app", http.StatusFound)
					return
				}
				_, _ = w.Write([]byte(c.page))
			}))
			defer srv.Close()
			tg, err := newTarget(doctorOptions{rawURL: srv.URL, eio: "4", namespace: "/", cookie: c.cookie})
			if err != nil {
				t.Fatal(err)
			}
			d := &session{o: doctorOptions{cookie: c.cookie, path: "/socket.io/", timeout: 5 * time.Second}, t: tg}
			s := d.deskPage(context.Background())
			if s.Status != c.want || s.ID != c.id || !strings.Contains(s.Summary, c.text) {
				t.Errorf("step %s %q: %s; want %s %q with %q", s.Status, s.ID, s.Summary, c.want, c.id, c.text)
			}
			if s.Status == fail && s.Fix == "" {
				t.Errorf("a failure without a fix")
			}
			if c.cookie != "" && sawCookie != c.cookie {
				t.Errorf("the desk page was asked with Cookie %q, want the session's", sawCookie)
			}
		})
	}
}
