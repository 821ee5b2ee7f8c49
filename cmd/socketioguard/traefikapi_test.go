package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// fakeAPI answers Traefik's three API paths when the request carries the
// credentials check accepts.
func fakeAPI(t *testing.T, check func(r *http.Request) bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !check(r) {
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/api/version":
			_, _ = w.Write([]byte(`{"Version":"v3.7.13","Codename":"cheddar"}`))
		case "/api/rawdata":
			_, _ = w.Write([]byte(`{"routers":{"sio@file":{"entryPoints":["web"],"service":"sio","rule":"PathPrefix(` + "`/socket.io`" + `)","status":"enabled"}},"middlewares":{},"services":{}}`))
		case "/api/entrypoints":
			_, _ = w.Write([]byte(`[{"name":"web","address":":80","transport":{"respondingTimeouts":{"readTimeout":"1m0s"}}}]`))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTraefikAPICredentials(t *testing.T) {
	basic := func(r *http.Request) bool { u, p, ok := r.BasicAuth(); return ok && u == "admin" && p == "s3cret" }
	srv := fakeAPI(t, basic)
	host := strings.TrimPrefix(srv.URL, "http://")
	cases := []struct {
		name    string
		url     string
		env     string
		headers []string
		check   func(r *http.Request) bool
		wantErr string
	}{
		{"user:password in the URL", "http://admin:s3cret@" + host, "", nil, basic, ""},
		{"user:password from the environment", srv.URL, "admin:s3cret", nil, basic, ""},
		{"no credentials", srv.URL, "", nil, basic, "401: give credentials"},
		{"the API path given too", "http://admin:s3cret@" + host + "/api/", "", nil, basic, ""},
		{"a bearer token header", "", "", []string{"Authorization: Bearer t0ken"}, func(r *http.Request) bool { return r.Header.Get("Authorization") == "Bearer t0ken" }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := srv
			if c.url == "" {
				s = fakeAPI(t, c.check)
				c.url = s.URL
			}
			t.Setenv(traefikAPIAuthEnv, c.env)
			api, err := newTraefikAPI(c.url, c.headers, false)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(api.base.String(), "s3cret") || strings.Contains(api.base.String(), "admin") {
				t.Errorf("the API's printed URL carries the credentials: %s", api.base)
			}
			cfg, err := api.fetch(context.Background())
			switch {
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Errorf("error %v, want %q", err, c.wantErr)
			case c.wantErr == "" && err != nil:
				t.Errorf("fetch: %v", err)
			case c.wantErr == "" && (cfg.Version != "v3.7.13" || cfg.Routers["sio@file"].Provider != "file" || cfg.EntryPoints["web"].Address != ":80"):
				t.Errorf("config %+v", cfg)
			}
			if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "t0ken")) {
				t.Errorf("an error prints the credentials: %v", err)
			}
		})
	}
}

// TestTraefikAPIRedirectToAnotherHost: the credentials never leave for
// another host, even when the API redirects there.
func TestTraefikAPIRedirectToAnotherHost(t *testing.T) {
	var reached atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer other.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+r.URL.Path, http.StatusFound)
	}))
	defer redirecting.Close()
	api, err := newTraefikAPI(strings.Replace(redirecting.URL, "http://", "http://admin:s3cret@", 1), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.fetch(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirected to another host") {
		t.Errorf("error %v, want the refused redirect", err)
	}
	if reached.Load() != 0 {
		t.Errorf("the other host received %d request(s)", reached.Load())
	}
}

func TestTraefikAPIBadInput(t *testing.T) {
	for _, c := range []struct{ url, env, header, want string }{
		{"ftp://traefik", "", "", "want Traefik's API URL"},
		{"http://", "", "", "want Traefik's API URL"},
		{"http://127.0.0.1:8080", "nocolon", "", traefikAPIAuthEnv + ": want user:password"},
		{"http://127.0.0.1:8080", "", "Authorization Bearer secret", "want \"Name: value\""},
	} {
		t.Setenv(traefikAPIAuthEnv, c.env)
		var headers []string
		if c.header != "" {
			headers = []string{c.header}
		}
		_, err := newTraefikAPI(c.url, headers, false)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.url, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("the error prints the header's value: %v", err)
		}
	}
}
