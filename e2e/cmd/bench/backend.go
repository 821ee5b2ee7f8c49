package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/coder/websocket"
)

// The backend answers like an Engine.IO polling endpoint (a ping packet,
// text/plain) on /socket.io/, like a web app elsewhere, and echoes websocket
// messages: as fast as possible, so that the proxy's cost shows.
func serveBackend(args []string) int {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	port := fs.Int("port", 0, "port on 127.0.0.1")
	_ = fs.Parse(args)
	page := []byte("<!doctype html><title>Raven</title><div id=app></div>\n")
	handler := http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		switch {
		case req.URL.Query().Get("transport") == "websocket":
			echo(rw, req)
		case strings.HasPrefix(req.URL.Path, "/socket.io/") && req.Method == http.MethodPost:
			rw.Header().Set("Content-Type", "text/html") // Engine.IO's answer to a polling POST
			rw.Header().Set("Content-Length", "2")
			_, _ = io.WriteString(rw, "ok")
		case strings.HasPrefix(req.URL.Path, "/socket.io/"):
			rw.Header().Set("Content-Type", "text/plain; charset=UTF-8")
			rw.Header().Set("Content-Length", "1")
			_, _ = io.WriteString(rw, "2")
		default:
			rw.Header().Set("Content-Type", "text/html; charset=utf-8")
			_, _ = rw.Write(page)
		}
	})
	if err := http.ListenAndServe(fmt.Sprintf("127.0.0.1:%d", *port), handler); err != nil {
		fmt.Fprintln(os.Stderr, "backend:", err)
		return 1
	}
	return 0
}

func echo(rw http.ResponseWriter, req *http.Request) {
	conn, err := websocket.Accept(rw, req, &websocket.AcceptOptions{InsecureSkipVerify: true, CompressionMode: websocket.CompressionDisabled})
	if err != nil {
		return
	}
	defer conn.CloseNow()
	ctx := req.Context()
	for {
		typ, msg, err := conn.Read(ctx)
		if err != nil {
			return
		}
		if err := conn.Write(ctx, typ, msg); err != nil {
			return
		}
	}
}
