// Node's own HTTP server with its defaults — what Socket.IO's server (and
// Frappe's realtime process) listens with: an idle keep-alive connection is
// closed 5 s after its last answer (keepAliveTimeout, which it announces as
// "Keep-Alive: timeout=5"), 6 s in releases that add a second of grace
// (HTTP_SERVER_KEEP_ALIVE_TIMEOUT_BUFFER: Node 20.20 among them). POST answers
// "ok" once its body is read, as Engine.IO answers a poll's data.
// GET /stall?ms=N answers "stalling" and then keeps the event loop busy for
// N ms, as a replica busy with every client reconnecting at once is.
//
// usage: node keepalive.js --port 9000
"use strict";

const http = require("node:http");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const port = Number(args.port);

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost");
  if (url.pathname === "/stall") {
    const ms = Math.min(Number(url.searchParams.get("ms")) || 0, 5000);
    res.end("stalling");
    setImmediate(() => {
      const end = Date.now() + ms;
      while (Date.now() < end) {} // the event loop runs nothing else meanwhile
    });
    return;
  }
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "Content-Type": "text/html", "Content-Length": "2" });
    res.end("ok");
  });
});
server.listen(port, "127.0.0.1", () => process.stdout.write(`[keepalive] listening on 127.0.0.1:${port}, keepAliveTimeout ${server.keepAliveTimeout} ms\n`));
