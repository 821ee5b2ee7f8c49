package stack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Docker is a Docker engine the test started itself (Debian's dockerd with
// its own data root, exec root and socket), and the docker CLI with the
// Compose v2 plugin pointed at it. scripts/setup-e2e.sh --docker installs
// and builds what it needs.
type Docker struct {
	st     *Stack
	Daemon *Process
	// Host is the engine's socket as DOCKER_HOST (unix://…), Socket its path.
	Host, Socket string
	cli          string
	config       string // DOCKER_CONFIG: holds cli-plugins/docker-compose
	cache        string // data root, root filesystem, npm cache
	execRoot     string
}

// DockerTools are what setup-e2e.sh --docker printed.
type DockerTools struct {
	Dockerd, CLI, Config, Cache string
}

// FindDockerTools reads them from the environment and says what to run when
// one is missing.
func FindDockerTools() (DockerTools, error) {
	t := DockerTools{
		Dockerd: os.Getenv("SOCKETIOGUARD_DOCKERD"),
		CLI:     os.Getenv("SOCKETIOGUARD_DOCKER"),
		Config:  os.Getenv("SOCKETIOGUARD_DOCKER_CONFIG"),
		Cache:   os.Getenv("SOCKETIOGUARD_DOCKER_CACHE"),
	}
	if t.Dockerd == "" || t.CLI == "" || t.Config == "" || t.Cache == "" {
		return t, fmt.Errorf("no Docker engine configured: run eval \"$(scripts/setup-e2e.sh --docker)\" (make e2e does)")
	}
	for name, path := range map[string]string{"dockerd": t.Dockerd, "docker": t.CLI, "the Compose plugin": filepath.Join(t.Config, "cli-plugins", "docker-compose"), "the cache": t.Cache} {
		if _, err := os.Stat(path); err != nil {
			return t, fmt.Errorf("%s: %v (scripts/setup-e2e.sh --docker installs it)", name, err)
		}
	}
	return t, nil
}

// StartDocker starts dockerd and waits until it answers. Its images stay in
// the cache's data root between runs; the daemon is stopped by PID with the
// stack (and by the caller's Stop), also when the test fails.
func (s *Stack) StartDocker(t DockerTools) (*Docker, error) {
	if err := reapKilledDockerRuns(filepath.Join(t.Cache, "data")); err != nil {
		return nil, err
	}
	// A unix socket's path is limited to 108 bytes: keep the exec root short.
	execRoot, err := os.MkdirTemp("", "sgd-")
	if err != nil {
		return nil, err
	}
	d := &Docker{st: s, cli: t.CLI, config: t.Config, cache: t.Cache, execRoot: execRoot}
	d.Socket = filepath.Join(execRoot, "docker.sock")
	d.Host = "unix://" + d.Socket
	// dockerd runs as the first process of a PID and mount namespace of its
	// own (util-linux's unshare): when the test dies before Stop (a
	// timeout's panic, SIGKILL), unshare dies with it (Pdeathsig) and takes
	// dockerd along (--kill-child), and the kernel then ends every other
	// process of the namespace — containerd's shims, made to outlive
	// dockerd, and the containers — while the overlays and network
	// namespaces dockerd mounted go with the mount namespace's last process.
	// unshare waits through a SIGTERM for dockerd, which stops as usual.
	d.Daemon, err = s.Start("dockerd", nil, "unshare", "--pid", "--fork", "--kill-child", "--mount", "--mount-proc", t.Dockerd,
		"--data-root", filepath.Join(t.Cache, "data"),
		"--exec-root", execRoot,
		"--pidfile", filepath.Join(execRoot, "dockerd.pid"),
		"-H", d.Host)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := d.Run(ctx, "version", "--format", "{{.Server.APIVersion}}")
		cancel()
		if err == nil {
			return d, d.removeKilledRunsContainers()
		}
		select {
		case <-d.Daemon.done:
			_ = d.Stop()
			return nil, fmt.Errorf("dockerd exited before answering: %v\n%s", d.Daemon.err, Tail(d.Daemon.Logs(), 3000))
		default:
		}
		if time.Now().After(deadline) {
			_ = d.Stop()
			return nil, fmt.Errorf("dockerd did not answer on %s within 90 s: %v\n%s", d.Socket, err, Tail(d.Daemon.Logs(), 3000))
		}
		time.Sleep(300 * time.Millisecond)
	}
}

// Stop ends dockerd (SIGTERM to its PID's group, SIGKILL after 30 s), takes
// down what it left mounted in its exec root (its network namespace, when
// it was killed or did not unmount it) and removes the exec root; an error
// says what is left behind.
func (d *Docker) Stop() error {
	d.Daemon.StopWithin(30 * time.Second)
	for _, m := range mountsUnder(d.execRoot) {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("dockerd left %s mounted: %v", m, err)
		}
	}
	return os.RemoveAll(d.execRoot)
}

// reapKilledDockerRuns ends what an earlier run of this engine left when
// its test was killed (a timeout's panic, SIGKILL) before Stop and its
// dockerd ran without a namespace of its own (before StartDocker gave it
// one): dockerd died with the test (Pdeathsig), but containerd's shims are
// made to outlive it, so its containers kept running, their overlays
// mounted. (Since, such a run leaves only its exec root, removed here.) An exec root
// (sgd-* in the temporary directory) whose dockerd is not running is such a
// run's: the shims serving it (their -address is in it) and each shim's
// container (its children: the container's init, whose death ends its PID
// namespace) get SIGKILL, its mounts go and it is removed; then, when no
// engine of ours runs, the data root's mounts too. Only what names
// one of these exec roots, or the data root when no engine of ours runs,
// is touched.
func reapKilledDockerRuns(dataRoot string) error {
	roots, _ := filepath.Glob(filepath.Join(os.TempDir(), "sgd-*"))
	live := false
	for _, root := range roots {
		if dockerdRunning(root) {
			live = true
			continue
		}
		for _, shim := range processesWithArgs("-address", filepath.Join(root, "containerd", "containerd.sock")) {
			for _, child := range childrenOf(shim) {
				_ = syscall.Kill(child, syscall.SIGKILL)
			}
			_ = syscall.Kill(shim, syscall.SIGKILL)
		}
		for _, m := range mountsUnder(root) {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
				return fmt.Errorf("an earlier run's dockerd left %s mounted: %v", m, err)
			}
		}
		if err := os.RemoveAll(root); err != nil {
			return fmt.Errorf("an earlier run's exec root: %w", err)
		}
	}
	if live {
		return nil // the data root's mounts are its own
	}
	// The containers' overlays and shm, and the data root bound onto itself
	// (dockerd makes it a private mount and unmounts it when it stops).
	mounts := mountsUnder(dataRoot)
	if isMountPoint(dataRoot) {
		mounts = append(mounts, dataRoot)
	}
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			return fmt.Errorf("an earlier run's dockerd left %s mounted: %v", m, err)
		}
	}
	return nil
}

// removeKilledRunsContainers removes the containers and networks a killed
// run left in this engine's data root (reapKilledDockerRuns ended their
// processes; the engine still lists them, stopped). A run that ends takes
// its own down, and the engine is the test's alone, so anything here is
// such a run's — and the next one's Compose project, of the same name,
// would find them (seen: after a killed run, the next run's first Frappe
// topology answered 502 to the realtime server's callback, twice of two).
// The images stay.
func (d *Docker) removeKilledRunsContainers() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ids, err := d.Run(ctx, "ps", "--all", "--quiet")
	if err != nil {
		_ = d.Stop()
		return err
	}
	if ids := strings.Fields(ids); len(ids) > 0 {
		if _, err := d.Run(ctx, append([]string{"rm", "--force", "--volumes"}, ids...)...); err != nil {
			_ = d.Stop()
			return err
		}
	}
	if _, err := d.Run(ctx, "network", "prune", "--force"); err != nil {
		_ = d.Stop()
		return err
	}
	return nil
}

// isMountPoint: dir is a mount point (a line of /proc/self/mountinfo).
func isMountPoint(dir string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if fields := strings.Fields(line); len(fields) > 4 && fields[4] == dir {
			return true
		}
	}
	return false
}

// dockerdRunning: a dockerd of that exec root is alive. (Not by its
// pidfile: dockerd writes the PID its own namespace gives it.)
func dockerdRunning(execRoot string) bool {
	return len(processesWithArgs("--exec-root", execRoot)) > 0
}

// processesWithArgs lists the processes whose command line holds flag and
// value as two consecutive arguments.
func processesWithArgs(flag, value string) []int {
	want := []byte("\x00" + flag + "\x00" + value + "\x00")
	var out []int
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err == nil && bytes.Contains(append(cmdline, 0), want) {
			out = append(out, pid)
		}
	}
	return out
}

// childrenOf lists the processes whose parent is pid (/proc/<pid>/task/*/children).
func childrenOf(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, task := range tasks {
		b, err := os.ReadFile(task)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if child, err := strconv.Atoi(f); err == nil {
				out = append(out, child)
			}
		}
	}
	return out
}

// mountsUnder lists the mount points below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			out = append(out, fields[4])
		}
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// Env is what the docker CLI needs to reach this engine and its Compose.
func (d *Docker) Env() []string {
	return []string{"DOCKER_HOST=" + d.Host, "DOCKER_CONFIG=" + d.config, "DOCKER_BUILDKIT=0"}
}

// Run runs the docker CLI against this engine and returns its standard
// output; an error carries the standard error.
func (d *Docker) Run(ctx context.Context, args ...string) (string, error) {
	return d.RunEnv(ctx, nil, args...)
}

// RunEnv is Run with more environment variables (a compose file's).
func (d *Docker) RunEnv(ctx context.Context, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, d.cli, args...)
	cmd.Env = append(append(os.Environ(), d.Env()...), env...)
	cmd.Dir = d.st.Dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("docker %s: %v\n%s", strings.Join(args, " "), err, Tail(stderr.String(), 4000))
	}
	return stdout.String(), nil
}

// Image is one image the compose file names, as this test built it.
type Image struct {
	Name  string // the compose file's name, e.g. traefik:v3.7.13
	Built bool   // false: the cached one was current
	Took  time.Duration
}

const (
	baseImage  = "socketioguard/debian:bookworm-minbase"
	inputLabel = "io.socketioguard.input"
)

// EnsureImages builds the images demo/docker-compose.yml names (traefik:
// MainTraefik, node, redis, nginx; e2e/images says what each holds), unless
// the cached one was built from the same inputs.
func (d *Docker) EnsureImages(ctx context.Context, tools Tools) ([]Image, error) {
	rootfs := filepath.Join(d.cache, "debian-bookworm-minbase.tar")
	baseKey, err := fileKey(rootfs)
	if err != nil {
		return nil, fmt.Errorf("the Debian root filesystem: %v (scripts/setup-e2e.sh --docker makes it)", err)
	}
	var images []Image
	started := time.Now()
	if d.imageKey(ctx, baseImage) != baseKey {
		if _, err := d.Run(ctx, "import", "--change", "LABEL "+inputLabel+"="+baseKey, rootfs, baseImage); err != nil {
			return nil, err
		}
		images = append(images, Image{Name: baseImage, Built: true, Took: time.Since(started)})
	} else {
		images = append(images, Image{Name: baseImage})
	}

	npmDir := "/usr/lib/node_modules/npm"
	if real, err := filepath.EvalSymlinks(filepath.Join(filepath.Dir(tools.Node), "npm")); err == nil {
		npmDir = filepath.Dir(filepath.Dir(real)) // …/node_modules/npm/bin/npm-cli.js
	}
	specs := []struct {
		name, dir string
		extra     map[string]string // name in the build context → path on this machine
	}{
		{"traefik:" + MainTraefik, "traefik", map[string]string{"traefik": tools.Traefik}},
		{"node:20-bookworm-slim", "node", map[string]string{"node": tools.Node, "npm": npmDir, "npm-cache": filepath.Join(d.cache, "npm-cache")}},
		{"redis:7-bookworm", "redis", nil},
		{"nginx:1.27", "nginx", nil},
	}
	for _, spec := range specs {
		src := filepath.Join(tools.Repo, "e2e", "images", spec.dir)
		key, err := contextKey(baseKey, src, spec.extra)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", spec.name, err)
		}
		if d.imageKey(ctx, spec.name) == key {
			images = append(images, Image{Name: spec.name})
			continue
		}
		started := time.Now()
		buildDir, err := os.MkdirTemp(d.st.Dir, "image-"+spec.dir+"-")
		if err != nil {
			return nil, err
		}
		if err := copyTree(src, buildDir); err != nil {
			return nil, err
		}
		for name, path := range spec.extra {
			if err := copyTree(path, filepath.Join(buildDir, name)); err != nil {
				return nil, fmt.Errorf("%s: %v", spec.name, err)
			}
		}
		// --network host: the apt steps reach Debian's mirror as this machine does.
		_, err = d.Run(ctx, "build", "--network", "host", "--label", inputLabel+"="+key, "-t", spec.name, buildDir)
		_ = os.RemoveAll(buildDir)
		if err != nil {
			return nil, err
		}
		images = append(images, Image{Name: spec.name, Built: true, Took: time.Since(started)})
	}
	return images, nil
}

func (d *Docker) imageKey(ctx context.Context, name string) string {
	out, err := d.Run(ctx, "image", "inspect", "--format", `{{index .Config.Labels "`+inputLabel+`"}}`, name)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// fileKey names a file by its size and modification time (the root
// filesystem: hashing 100 MB on every run is not worth it).
func fileKey(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%d-%d", fi.Size(), fi.ModTime().Unix()), nil
}

// contextKey hashes an image's build inputs: the base, the files of its
// folder in e2e/images, and each extra input's path, size and time.
func contextKey(base, dir string, extra map[string]string) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, base)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", e.Name(), len(b))
		h.Write(b)
	}
	for _, name := range []string{"traefik", "node", "npm", "npm-cache"} {
		path, ok := extra[name]
		if !ok {
			continue
		}
		key, err := fileKey(path)
		if err != nil {
			return "", err
		}
		if name == "npm-cache" {
			// The cache's content follows the lockfile it was filled from.
			b, err := os.ReadFile(filepath.Join(path, ".socketioguard-lock"))
			if err != nil {
				return "", err
			}
			key = fmt.Sprintf("%x", sha256.Sum256(b))
		}
		fmt.Fprintf(h, "%s %s %s\n", name, path, key)
	}
	return hex.EncodeToString(h.Sum(nil))[:32], nil
}

// copyTree copies a file or a folder (hard links where the file system
// allows: the Traefik and Node binaries are large).
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		target := filepath.Join(dst, rel)
		switch {
		case fi.IsDir():
			return os.MkdirAll(target, 0o755)
		case fi.Mode()&os.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case !fi.Mode().IsRegular():
			return nil
		}
		if err := os.Link(path, target); err == nil {
			return nil
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
}

// Tail keeps the end of a log, where the error is.
func Tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
