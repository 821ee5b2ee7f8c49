// Package capture is a reference plugin for the benchmarks: the trivial
// pass-through plus the least a guard that reads the backend's answer must
// do under Yaegi — capture the answer of a request on /socket.io/ in a
// compiled recorder and send it on — without reading the request at all.
// It shows the floor under socketioguard's short way (see bench/report.md).
package capture

import (
	"context"
	"net/http"
	"net/http/httptest"
)

// Config is empty.
type Config struct{}

// CreateConfig returns the defaults.
func CreateConfig() *Config { return &Config{} }

// Capture captures the answers on /socket.io/.
type Capture struct{ next http.Handler }

// New builds the handler.
func New(_ context.Context, next http.Handler, _ *Config, _ string) (http.Handler, error) {
	return &Capture{next: next}, nil
}

func (c *Capture) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if req.URL.Path != "/socket.io/" {
		c.next.ServeHTTP(rw, req)
		return
	}
	answer := httptest.NewRecorder()
	answer.HeaderMap = rw.Header()
	c.next.ServeHTTP(answer, req)
	if answer.Code != http.StatusOK {
		rw.WriteHeader(answer.Code)
	}
	_, _ = answer.Body.WriteTo(rw)
}
