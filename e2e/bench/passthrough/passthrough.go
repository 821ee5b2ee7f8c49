// Package passthrough is the benchmarks' reference plugin: the plugin
// catalog's demo kind (like traefik/plugindemo), setting configured request
// headers and passing the request on. It shows what any Yaegi plugin costs,
// so that socketioguard's own cost can be told apart.
package passthrough

import (
	"context"
	"net/http"
)

// Config holds the headers to set.
type Config struct {
	Headers map[string]string `json:"headers,omitempty"`
}

// CreateConfig returns the defaults.
func CreateConfig() *Config {
	return &Config{Headers: map[string]string{}}
}

// Passthrough sets headers and calls the next handler.
type Passthrough struct {
	next    http.Handler
	headers map[string]string
}

// New builds the handler.
func New(_ context.Context, next http.Handler, config *Config, _ string) (http.Handler, error) {
	return &Passthrough{next: next, headers: config.Headers}, nil
}

func (p *Passthrough) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	for k, v := range p.headers {
		req.Header.Set(k, v)
	}
	p.next.ServeHTTP(rw, req)
}
