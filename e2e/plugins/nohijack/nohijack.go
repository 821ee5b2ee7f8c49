// Package nohijack is a Traefik plugin with exactly the bug reported against
// several public plugins (a cache, a WAF, a fail2ban): it wraps the
// ResponseWriter in a type without Hijack, so that Traefik's proxy cannot
// hand a websocket's connection over and answers a bare 500. The end-to-end
// suite puts it before and after socketioguard to test hijack-failed.
package nohijack

import (
	"context"
	"net/http"
)

// Config is empty: the plugin has nothing to configure.
type Config struct{}

// CreateConfig returns the (empty) configuration.
func CreateConfig() *Config { return &Config{} }

// NoHijack passes every request on through a writer that cannot hijack.
type NoHijack struct{ next http.Handler }

// New builds the handler.
func New(_ context.Context, next http.Handler, _ *Config, _ string) (http.Handler, error) {
	return &NoHijack{next: next}, nil
}

func (n *NoHijack) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	n.next.ServeHTTP(&recordingWriter{rw: rw}, req)
}

// recordingWriter is the kind of wrapper plugins write to see the status:
// Header, Write and WriteHeader, and nothing else.
type recordingWriter struct {
	rw     http.ResponseWriter
	status int
}

func (w *recordingWriter) Header() http.Header         { return w.rw.Header() }
func (w *recordingWriter) Write(b []byte) (int, error) { return w.rw.Write(b) }
func (w *recordingWriter) WriteHeader(status int) {
	w.status = status
	w.rw.WriteHeader(status)
}
