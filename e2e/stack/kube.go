package stack

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// KubeTools are what setup-e2e.sh --kube printed: Debian's etcd, and
// kube-apiserver and kubectl built from the Go module proxy
// (scripts/build-kube.sh), and the CRDs Traefik's module ships.
type KubeTools struct {
	Etcd, Dir, TraefikCRDs, GatewayCRDs string
}

// FindKubeTools reads them from the environment and says what to run when
// one is missing.
func FindKubeTools() (KubeTools, error) {
	t := KubeTools{
		Etcd:        os.Getenv("SOCKETIOGUARD_ETCD"),
		Dir:         os.Getenv("SOCKETIOGUARD_KUBE"),
		TraefikCRDs: os.Getenv("SOCKETIOGUARD_TRAEFIK_CRDS"),
		GatewayCRDs: os.Getenv("SOCKETIOGUARD_GATEWAY_CRDS"),
	}
	if t.Etcd == "" || t.Dir == "" || t.TraefikCRDs == "" || t.GatewayCRDs == "" {
		return t, fmt.Errorf("no Kubernetes API server configured: run eval \"$(scripts/setup-e2e.sh --kube)\" (make e2e does)")
	}
	for _, path := range []string{t.Etcd, filepath.Join(t.Dir, "kube-apiserver"), filepath.Join(t.Dir, "kubectl"), t.TraefikCRDs, t.GatewayCRDs} {
		if _, err := os.Stat(path); err != nil {
			return t, fmt.Errorf("%v (scripts/setup-e2e.sh --kube installs it)", err)
		}
	}
	return t, nil
}

// Kube is an etcd and a kube-apiserver the test started itself, on
// loopback, with a token of system:masters and AlwaysAllow authorization.
type Kube struct {
	st         *Stack
	Etcd, API  *Process
	URL        string // https://127.0.0.1:port
	Token      string
	CAFile     string // the API server's serving certificate (its own CA)
	Kubeconfig string
	kubectl    string
}

// StartKube starts etcd and kube-apiserver (the notes' minimal flags) and
// waits for /readyz. Both are stopped by PID with the stack.
func (s *Stack) StartKube(t KubeTools) (*Kube, error) {
	dir := filepath.Join(s.Dir, "kube")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	k := &Kube{st: s, kubectl: filepath.Join(t.Dir, "kubectl"), Token: fmt.Sprintf("token-%d", time.Now().UnixNano())}
	ports, err := FreePorts(3)
	if err != nil {
		return nil, err
	}
	client, peer, secure := ports[0], ports[1], ports[2]
	k.Etcd, err = s.Start("etcd", nil, t.Etcd,
		"--name", "default", "--data-dir", filepath.Join(dir, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", client),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peer))
	if err != nil {
		return nil, err
	}

	// A self-signed serving certificate for 127.0.0.1: its own CA for
	// kubectl and Traefik.
	serving, err := NewCertificate(dir, "serving", []string{"127.0.0.1", "localhost"}, true, nil)
	if err != nil {
		return nil, err
	}
	k.CAFile = serving.CertFile
	keyFile := serving.KeyFile
	saKey, saPub := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	if err := writeServiceAccountKey(saKey, saPub); err != nil {
		return nil, err
	}
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(k.Token+`,admin,admin,"system:masters"`+"\n"), 0o600); err != nil {
		return nil, err
	}
	k.API, err = s.Start("kube-apiserver", nil, filepath.Join(t.Dir, "kube-apiserver"),
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", client),
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", secure),
		"--tls-cert-file="+k.CAFile, "--tls-private-key-file="+keyFile,
		"--service-account-key-file="+saPub, "--service-account-signing-key-file="+saKey,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--token-auth-file="+tokens, "--authorization-mode=AlwaysAllow",
		"--endpoint-reconciler-type=none", "--disable-admission-plugins=ServiceAccount",
		"--service-cluster-ip-range=10.96.0.0/16")
	if err != nil {
		return nil, err
	}
	k.URL = fmt.Sprintf("https://127.0.0.1:%d", secure)
	k.Kubeconfig = filepath.Join(dir, "kubeconfig")
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, k.URL, k.CAFile, k.Token)
	if err := os.WriteFile(k.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return nil, err
	}
	if err := k.waitReady(90 * time.Second); err != nil {
		return nil, err
	}
	return k, nil
}

func (k *Kube) waitReady(timeout time.Duration) error {
	pem, err := os.ReadFile(k.CAFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		for _, p := range []*Process{k.Etcd, k.API} {
			select {
			case <-p.done:
				return fmt.Errorf("%s exited: %v\n%s", p.Name, p.err, Tail(p.Logs(), 4000))
			default:
			}
		}
		req, _ := http.NewRequest(http.MethodGet, k.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+k.Token)
		resp, err := client.Do(req)
		if err == nil {
			var b bytes.Buffer
			_, _ = b.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, Tail(b.String(), 300))
		} else {
			last = err.Error()
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("kube-apiserver not ready within %s: %s\n%s", timeout, last, Tail(k.API.Logs(), 4000))
}

// Kubectl runs kubectl against this API server, with stdin when not empty.
func (k *Kube) Kubectl(ctx context.Context, stdin string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, k.kubectl, append([]string{"--kubeconfig", k.Kubeconfig}, args...)...)
	cmd.Dir = k.st.Dir
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, Tail(stderr.String(), 3000))
	}
	return stdout.String(), nil
}

// ProviderYAML is the static configuration of Traefik's kubernetesCRD
// provider, and with gateway its kubernetesGateway provider, watching this
// API server (indented as under providers:); crdExtra is more of
// kubernetesCRD's keys (e.g. "allowCrossNamespace: true").
func (k *Kube) ProviderYAML(gateway bool, crdExtra ...string) string {
	conn := fmt.Sprintf("    endpoint: %s\n    token: %s\n    certAuthFilePath: %s\n", k.URL, k.Token, k.CAFile)
	var extra strings.Builder
	for _, line := range crdExtra {
		extra.WriteString("    " + line + "\n")
	}
	yaml := "  kubernetesCRD:\n" + conn + extra.String()
	if gateway {
		yaml += "  kubernetesGateway:\n" + conn
	}
	return yaml
}

func writeServiceAccountKey(keyFile, pubFile string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
}
