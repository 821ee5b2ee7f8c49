package stack

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// PluginModule is the module name Traefik loads the plugin under.
const PluginModule = "github.com/sysmayal/socketioguard"

// Traefik is a running Traefik with socketioguard as a local plugin.
type Traefik struct {
	*Process
	// Ports of the entrypoints, by name; "traefik" serves /ping and the API.
	Ports map[string]int
}

// TraefikOptions configure one Traefik instance.
type TraefikOptions struct {
	Name        string
	EntryPoints []string // names; each gets a free loopback port
	// EntryPointYAML is more of an entrypoint's static configuration, by
	// name, indented as under the entrypoint (e.g. "forwardedHeaders: …").
	EntryPointYAML map[string]string
	// TransportYAML is more of an entrypoint's transport, by name, indented
	// as under transport: (e.g. "respondingTimeouts: {writeTimeout: 3s}").
	TransportYAML map[string]string
	// Ports asks for given ports by entrypoint name (used when free).
	Ports map[string]int
	// Dynamic is the file provider's YAML; {{port:<entrypoint>}} is replaced
	// by that entrypoint's port.
	Dynamic string
	// DynamicFiles are copied as they are next to Dynamic (Traefik's file
	// provider then fills their {{ env "…" }} templates from Env).
	DynamicFiles []string
	Env          []string
	// LocalPlugins are more local plugins: alias → source directory, whose
	// .traefik.yml "import" is the module name.
	LocalPlugins map[string]string
	// Metrics enables Prometheus metrics on the "traefik" entrypoint (/metrics)
	// and Go's /debug/pprof (whose heap?gc=1 collects garbage before a sample).
	Metrics bool
	// Routers that must be enabled before Start returns (e.g. "sio@file").
	Routers  []string
	LogLevel string // default DEBUG: plugin stdout (warn/info lines) shows at DEBUG only
	// ExtraStatic is appended to the static configuration (YAML).
	ExtraStatic string
	// Providers is more providers' static configuration (YAML, indented as
	// under providers:, beside the file provider), e.g. kubernetesCRD.
	Providers string
	// Line runs another Traefik line than the main one (v3.7.13): "v3.6"
	// (Tools.TraefikV36) or "v2" (Tools.TraefikV2, the v2.11 line).
	Line string
	Tee  io.Writer
	// Wrapper runs Traefik under another program (its command line, to
	// which Traefik's own is appended): valgrind for the bench's counts.
	Wrapper []string
	// ReadyWithin bounds the wait for Routers (default 30 s).
	ReadyWithin time.Duration
}

// StartTraefik mounts the working tree's plugin source as a local plugin
// (plugins-local/src/github.com/sysmayal/socketioguard, as Traefik requires),
// writes the static and dynamic configuration and waits until the listed
// routers are enabled.
func (s *Stack) StartTraefik(o TraefikOptions) (*Traefik, error) {
	if o.Name == "" {
		o.Name = "traefik"
	}
	if o.LogLevel == "" {
		o.LogLevel = "DEBUG"
	}
	dir := filepath.Join(s.Dir, o.Name)
	if err := MountPlugin(s.Tools.Repo, dir); err != nil {
		return nil, err
	}
	extraPlugins := ""
	for alias, src := range o.LocalPlugins {
		module, err := manifestImport(src)
		if err != nil {
			return nil, err
		}
		if err := MountPluginFrom(src, module, dir); err != nil {
			return nil, err
		}
		extraPlugins += fmt.Sprintf("    %s:\n      moduleName: %s\n", alias, module)
	}
	metrics, debug := "", "false"
	if o.Metrics {
		metrics, debug = "metrics:\n  prometheus:\n    entryPoint: traefik\n    addRoutersLabels: true\n", "true"
	}

	names := append([]string{"traefik"}, o.EntryPoints...)
	ports, err := FreePorts(len(names))
	if err != nil {
		return nil, err
	}
	t := &Traefik{Ports: map[string]int{}}
	var static strings.Builder
	static.WriteString("entryPoints:\n")
	for i, name := range names {
		port := ports[i]
		if want := o.Ports[name]; want != 0 && PortFree(want) {
			port = want
		}
		t.Ports[name] = port
		// A short grace time: stopping the stack should not wait 10 s for open websockets.
		fmt.Fprintf(&static, "  %s:\n    address: 127.0.0.1:%d\n    transport:\n      lifeCycle:\n        graceTimeOut: 1s\n", name, port)
		if extra := o.TransportYAML[name]; extra != "" {
			fmt.Fprintf(&static, "      %s\n", extra)
		}
		if extra := o.EntryPointYAML[name]; extra != "" {
			for _, line := range strings.Split(strings.TrimRight(extra, "\n"), "\n") {
				fmt.Fprintf(&static, "    %s\n", line)
			}
		}
	}
	dynamicDir := filepath.Join(dir, "dynamic")
	if err := os.MkdirAll(dynamicDir, 0o755); err != nil {
		return nil, err
	}
	if o.Dynamic != "" {
		dynamic := o.Dynamic
		for name, port := range t.Ports {
			dynamic = strings.ReplaceAll(dynamic, "{{port:"+name+"}}", fmt.Sprint(port))
		}
		if err := os.WriteFile(filepath.Join(dynamicDir, "00-inline.yml"), []byte(dynamic), 0o644); err != nil {
			return nil, err
		}
	}
	for _, f := range o.DynamicFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dynamicDir, filepath.Base(f)), data, 0o644); err != nil {
			return nil, err
		}
	}
	binary, noColor := s.Tools.Traefik, "  noColor: true\n"
	switch o.Line {
	case "":
	case "v3.6":
		binary = s.Tools.TraefikV36
	case "v2":
		// Traefik v2 refuses static keys it does not know (log.noColor is v3's).
		binary, noColor = s.Tools.TraefikV2, ""
	default:
		return nil, fmt.Errorf("no Traefik line %q (main, v3.6, v2)", o.Line)
	}
	if _, err := os.Stat(binary); err != nil {
		return nil, fmt.Errorf("no Traefik %s at %s: run scripts/setup-e2e.sh --suite (make e2e does)", o.Line, binary)
	}
	fmt.Fprintf(&static, `ping:
  entryPoint: traefik
api:
  insecure: true
  dashboard: false
  debug: %s
providers:
  file:
    directory: %s
%sexperimental:
  localPlugins:
    socketioguard:
      moduleName: %s
%slog:
  level: %s
%sglobal:
  checkNewVersion: false
  sendAnonymousUsage: false
%s%s`, debug, dynamicDir, o.Providers, PluginModule, extraPlugins, o.LogLevel, noColor, metrics, o.ExtraStatic)
	staticPath := filepath.Join(dir, "traefik.yml")
	if err := os.WriteFile(staticPath, []byte(static.String()), 0o644); err != nil {
		return nil, err
	}

	program, args := binary, []string{"--configFile=" + staticPath}
	if len(o.Wrapper) > 0 {
		program, args = o.Wrapper[0], append(append(append([]string{}, o.Wrapper[1:]...), binary), args...)
	}
	p, err := s.Run(Command{Dir: dir, Name: o.Name, Tee: o.Tee, Env: o.Env, Program: program, Args: args})
	if err != nil {
		return nil, err
	}
	t.Process = p
	ready := o.ReadyWithin
	if ready == 0 {
		ready = 30 * time.Second
	}
	if err := t.waitRouters(o.Routers, ready); err != nil {
		return nil, err
	}
	return t, nil
}

// URL is http://127.0.0.1:<port of entrypoint>.
func (t *Traefik) URL(entryPoint string) string {
	return fmt.Sprintf("http://127.0.0.1:%d", t.Ports[entryPoint])
}

// waitRouters polls Traefik's API until every router is enabled, and fails
// with Traefik's own error when one is disabled (e.g. a plugin config error).
func (t *Traefik) waitRouters(routers []string, timeout time.Duration) error {
	api := t.URL("traefik") + "/api/http/routers"
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if t.Exited() {
			return fmt.Errorf("traefik exited: %v\n%s", t.err, t.Logs())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		resp, body, err := Get(ctx, api, nil)
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			var list []struct {
				Name   string   `json:"name"`
				Status string   `json:"status"`
				Err    []string `json:"error"`
			}
			_ = json.Unmarshal([]byte(body), &list)
			status := map[string]string{}
			for _, r := range list {
				status[r.Name] = r.Status
				if r.Status == "disabled" && contains(routers, r.Name) {
					return fmt.Errorf("router %s is disabled: %s\n%s", r.Name, strings.Join(r.Err, "; "), t.Logs())
				}
			}
			ready := true
			for _, name := range routers {
				if status[name] != "enabled" {
					ready = false
				}
			}
			if ready {
				return nil
			}
			keys := make([]string, 0, len(status))
			for k, v := range status {
				keys = append(keys, k+"="+v)
			}
			sort.Strings(keys)
			last = strings.Join(keys, ",")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("routers %v not enabled within %s (seen: %s)\n%s", routers, timeout, last, t.Logs())
}

// MountPlugin copies the plugin's source (root package, manifest, go.mod;
// no tests) from the working tree to <dir>/plugins-local/src/<module>.
func MountPlugin(repo, dir string) error {
	return MountPluginFrom(repo, PluginModule, dir)
}

// MountPluginFrom mounts another plugin's source directory under its module name.
func MountPluginFrom(repo, module, dir string) error {
	dst := filepath.Join(dir, "plugins-local", "src", module)
	if err := os.RemoveAll(dst); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	entries, err := os.ReadDir(repo)
	if err != nil {
		return err
	}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go") || name == ".traefik.yml" || name == "go.mod") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(repo, name))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// manifestImport reads the "import:" line of a plugin's .traefik.yml.
func manifestImport(src string) (string, error) {
	raw, err := os.ReadFile(filepath.Join(src, ".traefik.yml"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "import:"); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s/.traefik.yml has no import", src)
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
