package main

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The network step against a TLS endpoint whose certificate no one trusts
// (httptest's): a hard failure with the reason, or a pass with --insecure
// that still says the certificate is not trusted.
func TestNetworkStepChecksTheCertificate(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, _ *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=UTF-8")
		_, _ = io.WriteString(rw, `0{"sid":"abc","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}`)
	}))
	defer srv.Close()
	ctx := context.Background()

	strict := doctor(ctx, doctorOptions{rawURL: srv.URL, namespace: "/", eio: "4", timeout: 5 * time.Second})
	first := strict.Steps[0]
	if strict.OK || first.Status != fail || first.ID != "tls-certificate" || !strings.Contains(first.Summary, "certificate") || first.Fix == "" {
		t.Fatalf("untrusted certificate: %+v", first)
	}
	if strict.Steps[1].Status != skip {
		t.Errorf("steps after a hard failure must be skipped: %+v", strict.Steps[1])
	}

	insecure := doctor(ctx, doctorOptions{rawURL: srv.URL, namespace: "/", eio: "4", timeout: 5 * time.Second, insecure: true})
	if s := insecure.Steps[0]; s.Status != pass || !strings.Contains(s.Summary, "NOT trusted") || !strings.Contains(s.Summary, "TLS 1.3") {
		t.Fatalf("--insecure: %+v", s)
	}
	if s := insecure.Steps[1]; s.Status != pass {
		t.Errorf("handshake over TLS with --insecure: %+v", s)
	}
}
