package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// ---- Websocket handshakes per second ----

// handshakeRate opens fresh websockets through base, workers at a time, for
// d: each connection is upgraded (101) and closed at once. It returns
// handshakes per second. The handshake carries an Origin, as a browser's
// always does.
func handshakeRate(base string, workers int, d time.Duration) (float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(base, "http") + "/socket.io/?EIO=4&transport=websocket"
	header := map[string][]string{"Origin": {base}}
	var total atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	errs := make(chan error, workers)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{CompressionMode: websocket.CompressionDisabled, HTTPHeader: header})
				if err != nil {
					errs <- err
					return
				}
				c.CloseNow()
				total.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return 0, err
	}
	return float64(total.Load()) / d.Seconds(), nil
}

// measureWSHandshakes: fresh websockets, interleaved like the echo.
func measureWSHandshakes(r *results, tr *stack.Traefik, o benchOptions) error {
	fmt.Printf("websocket handshakes: %d workers × %s per variant and round\n", o.wsConns, o.duration)
	variants := []variant{none, trivial, guard}
	if baselineDir != "" {
		variants = append(variants, baseline)
	}
	return inRotation(o.rounds, variants, "websocket handshakes", "handshakes/s", r.wsHandshakes, func(v variant) (float64, error) {
		return handshakeRate(tr.URL(v.name), o.wsConns, o.duration)
	})
}

// ---- Reconnect storm ----

// stormStatus is storm.js's answer.
type stormStatus struct {
	Type      string `json:"type"`
	Clients   int    `json:"clients"`
	Connected int    `json:"connected"`
	Websocket int    `json:"websocket"`
	StormMs   *int64 `json:"stormMs"`
	Dropped   int    `json:"dropped"`
}

const (
	stormDelay = time.Second
	// stormPoll: how often the driver asks; the storm's time is measured
	// inside storm.js, not by this loop.
	stormPoll = 100 * time.Millisecond
)

// measureStorm: per storm and variant (rotating order), o.stormClients
// socket.io clients connect through that variant's entrypoint to the Frappe
// stand-in (realtime.js, its session callback answered by webapp.js), the
// server is killed and started again on its port, and storm.js measures the
// time from the kill until every client is connected again and on websocket.
func measureStorm(r *results, st *stack.Stack, o benchOptions) error {
	web, err := st.StartWebapp("storm-webapp", stack.WebappOptions{Site: stack.Site})
	if err != nil {
		return err
	}
	rt, err := st.StartRealtime("storm-realtime", stack.RealtimeOptions{ServerIP: stack.Addr(web.Port), DefaultSite: stack.Site})
	if err != nil {
		return err
	}
	tr, err := st.StartTraefik(stack.TraefikOptions{
		Name:         "storm-traefik",
		EntryPoints:  []string{none.name, trivial.name, guard.name},
		LocalPlugins: map[string]string{"passthrough": filepath.Join(st.Tools.Repo, "e2e", "bench", "passthrough")},
		LogLevel:     "ERROR",
		Routers:      []string{"s-none@file", "s-trivial@file", "s-guard@file"},
		Dynamic: fmt.Sprintf(`
http:
  middlewares:
%s  services:
    realtime:
      loadBalancer:
        servers: [{url: "http://127.0.0.1:%d"}]
  routers:
    s-none:    {rule: "PathPrefix(`+"`/socket.io`"+`)", entryPoints: [none], service: realtime}
    s-trivial: {rule: "PathPrefix(`+"`/socket.io`"+`)", entryPoints: [trivial], middlewares: [trivial], service: realtime}
    s-guard:   {rule: "PathPrefix(`+"`/socket.io`"+`)", entryPoints: [guard], middlewares: [guard], service: realtime}
`, benchMiddlewares, rt.Port),
	})
	if err != nil {
		return err
	}
	defer tr.Stop()
	fmt.Printf("reconnect storms: %d clients, reconnection delay %s (randomizationFactor 0), %d storms per variant\n", o.stormClients, stormDelay, o.storms)
	return inRotation(o.storms, []variant{none, trivial, guard}, "reconnect storm", "ms until all were back on websocket", r.storm, func(v variant) (float64, error) {
		ms, restarted, err := oneStorm(st, rt, tr.URL(v.name), o.stormClients)
		if restarted != nil {
			rt = restarted
		}
		return ms, err
	})
}

// oneStorm connects the clients, kills and restarts the server, and returns
// the storm's time in ms and the restarted server.
func oneStorm(st *stack.Stack, rt *stack.Realtime, url string, clients int) (float64, *stack.Realtime, error) {
	c, err := startNodeDriver[stormStatus](st, "storm.js", "--url", url,
		"--namespace", "/"+stack.Site, "--clients", fmt.Sprint(clients), "--delay", fmt.Sprint(stormDelay.Milliseconds()))
	if err != nil {
		return 0, nil, err
	}
	defer c.stop()
	if _, err := c.waitFor("status", 120*time.Second, stormPoll, func(s stormStatus) bool { return s.Websocket == clients }); err != nil {
		return 0, nil, fmt.Errorf("clients never all on websocket: %w", err)
	}
	if _, err := c.ask("storm"); err != nil {
		return 0, nil, err
	}
	rt.Kill()
	restarted, err := st.StartRealtime("storm-realtime", rt.Options)
	if err != nil {
		return 0, nil, err
	}
	s, err := c.waitFor("status", 60*time.Second, stormPoll, func(s stormStatus) bool { return s.StormMs != nil })
	if err != nil {
		return 0, restarted, fmt.Errorf("clients never all back: %w", err)
	}
	_, _ = c.ask("close")
	return float64(*s.StormMs), restarted, nil
}
