package stack

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strings"
	"time"
)

// The second hardening pass's attack inputs: each client-controlled input
// the guard reads, placed where the guard reads it, at the sizes make bench
// measures (in process under Yaegi, and Traefik's CPU per request). Each
// request goes as far into the guard as its input lets it.

// AttackSizes: 1 KiB, 64 KiB, and about the most Traefik accepts in request
// line and headers together (entryPoints.<name>.http.maxHeaderBytes, 1 MiB
// by default).
var AttackSizes = []struct {
	Name string
	Size int
}{{"1 KiB", 1 << 10}, {"64 KiB", 64 << 10}, {"1 MiB", 1<<20 - 16<<10}}

// AttackRequest is one request, as the bench sends it.
type AttackRequest struct {
	Method, Target string
	Header         map[string]string
	Host           string // "" for the usual one
}

// AttackInput is one input and the request that carries it.
type AttackInput struct {
	Name string
	// Inspect: the guard needs inspectPath /socket.io/.guard for it.
	Inspect bool
	Request func(value string) AttackRequest
}

const websocketKey = "dGhlIHNhbXBsZSBub25jZQ=="

// AttackInputs are the inputs, each with a value of the given size made of
// what makes the guard's reading work hardest (separators, lists).
var AttackInputs = []AttackInput{
	{Name: "query", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?" + strings.Repeat("p=1&", len(v)/4) + "EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"}
	}},
	{Name: "path", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/" + v + "?EIO=4&transport=polling&sid=lv_VI97HAXpY6yYWAAAC"}
	}},
	{Name: "Upgrade (a list, no Connection)", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?EIO=4&transport=websocket", Header: map[string]string{
			"Upgrade": strings.Repeat("a,", len(v)/2) + "websocket", "Sec-WebSocket-Key": websocketKey, "Sec-WebSocket-Version": "13"}}
	}},
	{Name: "Connection", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?EIO=4&transport=websocket", Header: map[string]string{
			"Upgrade": "websocket", "Connection": strings.Repeat("a,", len(v)/2) + "Upgrade", "Sec-WebSocket-Key": websocketKey, "Sec-WebSocket-Version": "13"}}
	}},
	{Name: "Sec-WebSocket-Key", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?EIO=4&transport=websocket", Header: map[string]string{"Sec-WebSocket-Key": v, "Sec-WebSocket-Version": "13"}}
	}},
	{Name: "Sec-WebSocket-Version", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?EIO=4&transport=websocket", Header: map[string]string{"Sec-WebSocket-Key": websocketKey, "Sec-WebSocket-Version": v}}
	}},
	{Name: "Origin", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?EIO=4&transport=polling&t=x", Header: map[string]string{"Origin": v}}
	}},
	{Name: "X-Forwarded-Proto", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?EIO=4&transport=polling&t=x", Header: map[string]string{"X-Forwarded-Proto": v}}
	}},
	{Name: "Sec-Fetch-Site", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?EIO=4&transport=polling&t=x", Header: map[string]string{"Sec-Fetch-Site": v}}
	}},
	{Name: "Host", Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/?EIO=4&transport=polling&t=x", Host: v}
	}},
	{Name: "method", Request: func(v string) AttackRequest {
		return AttackRequest{Method: strings.Repeat("G", len(v)), Target: "/socket.io/?EIO=4&transport=polling"}
	}},
	{Name: "inspection: a query key", Inspect: true, Request: func(v string) AttackRequest {
		return AttackRequest{Method: "GET", Target: "/socket.io/.guard?" + v + "=1&EIO=4&transport=polling"}
	}},
}

// Send writes the request raw to addr (host:port) and reads the answer's
// status (0 when the connection closed without one).
func (r AttackRequest) Send(addr string) (int, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
	host := r.Host
	if host == "" {
		host = "v2.sysmayal.cloud"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", r.Method, r.Target, host)
	names := make([]string, 0, len(r.Header))
	for k := range r.Header {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %s\r\n", k, r.Header[k])
	}
	b.WriteString("\r\n")
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return 0, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, nil
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, nil // a websocket: closed at once
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
