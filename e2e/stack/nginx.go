package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Nginx is a running Debian nginx with its own prefix directory.
type Nginx struct {
	*Process
	Port int
}

// StartNginx runs nginx in the foreground with the given server blocks
// (inside http { }); {{port}} is replaced by the port it listens on.
// Temp paths, pid and logs stay in the stack's directory.
func (s *Stack) StartNginx(name, servers string) (*Nginx, error) {
	return s.StartNginxOn(name, 0, servers)
}

// StartNginxOn is StartNginx on a given port (0, or a busy port: a free one).
func (s *Stack) StartNginxOn(name string, port int, servers string) (*Nginx, error) {
	if port == 0 || !PortFree(port) {
		var err error
		if port, err = FreePort(); err != nil {
			return nil, err
		}
	}
	dir := filepath.Join(s.Dir, name)
	for _, sub := range []string{"tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "logs"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o777); err != nil {
			return nil, err
		}
	}
	workers, connections, files := s.NginxWorkers, s.NginxConnections, s.NginxFiles
	if workers == 0 {
		workers = 1
	}
	if connections == 0 {
		connections = 8192
	}
	if files == 0 {
		files = 20000
	}
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers read the temp paths the master created
	}
	conf := fmt.Sprintf(`%s
worker_processes %[6]d;
daemon off;
master_process on;
pid %[2]s/nginx.pid;
error_log %[2]s/logs/error.log info;
events { worker_connections %[4]d; }
worker_rlimit_nofile %[5]d;
http {
  access_log %[2]s/logs/access.log;
  client_body_temp_path %[2]s/tmp/body;
  proxy_temp_path %[2]s/tmp/proxy;
  fastcgi_temp_path %[2]s/tmp/fastcgi;
  uwsgi_temp_path %[2]s/tmp/uwsgi;
  scgi_temp_path %[2]s/tmp/scgi;
%[3]s
}
`, user, dir, strings.ReplaceAll(servers, "{{port}}", fmt.Sprint(port)), connections, files, workers)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := s.StartIn(dir, name, nil, s.Tools.Nginx, "-p", dir, "-c", confPath, "-e", filepath.Join(dir, "logs", "error.log"))
	if err != nil {
		return nil, err
	}
	if err := WaitTCP(p, Addr(port), 10*time.Second); err != nil {
		return nil, err
	}
	return &Nginx{Process: p, Port: port}, nil
}

// URL is http://127.0.0.1:<port>.
func (n *Nginx) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", n.Port) }
