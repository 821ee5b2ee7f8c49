package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/sysmayal/socketioguard/e2e/stack"
)

// nodeDriver talks to one of the bench's Node helpers (soak.js, storm.js)
// over its stdin and stdout: one command a line, answered by one JSON line
// with a "type" (T is that answer); other output lines are passed over.
type nodeDriver[T any] struct {
	script string
	cmd    *exec.Cmd
	in     io.WriteCloser
	lines  *bufio.Scanner
}

// startNodeDriver starts e2e/node/<script> with args in a process group of
// its own (stop ends the group), killed too if the bench dies.
func startNodeDriver[T any](st *stack.Stack, script string, args ...string) (*nodeDriver[T], error) {
	cmd := exec.Command(st.Tools.Node, append([]string{filepath.Join(st.Tools.NodeDir, script)}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &nodeDriver[T]{script: script, cmd: cmd, in: in, lines: bufio.NewScanner(out)}
	d.lines.Buffer(make([]byte, 1<<20), 1<<20)
	return d, nil
}

func (d *nodeDriver[T]) ask(command string) (T, error) {
	var answer T
	if _, err := fmt.Fprintln(d.in, command); err != nil {
		return answer, err
	}
	for d.lines.Scan() {
		var head struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(d.lines.Bytes(), &head) == nil && head.Type != "" {
			return answer, json.Unmarshal(d.lines.Bytes(), &answer)
		}
	}
	return answer, fmt.Errorf("%s ended: %v", d.script, d.lines.Err())
}

// waitFor asks until ok(answer) or the time runs out, every interval.
func (d *nodeDriver[T]) waitFor(command string, timeout, interval time.Duration, ok func(T) bool) (T, error) {
	return waitUntil(d.ask, command, timeout, interval, ok, func(answer T) string { return fmt.Sprintf("%+v", answer) })
}

// waitUntil asks (command) until ok(answer) or the time runs out, every
// interval; the error shows the last answer as brief writes it.
func waitUntil[T any](ask func(string) (T, error), command string, timeout, interval time.Duration, ok func(T) bool, brief func(T) string) (T, error) {
	deadline := time.Now().Add(timeout)
	for {
		answer, err := ask(command)
		if err != nil || ok(answer) {
			return answer, err
		}
		if time.Now().After(deadline) {
			return answer, fmt.Errorf("not reached within %s: %s", timeout, brief(answer))
		}
		time.Sleep(interval)
	}
}

func (d *nodeDriver[T]) stop() {
	if d.cmd.Process != nil {
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		_ = d.cmd.Wait()
	}
}
