// A stand-in for the Frappe web app (gunicorn on port 8000): it answers its
// own pages and API, and 404 with an HTML page on any path it does not know —
// /socket.io/ included, which is exactly what a misrouted Socket.IO request gets.
//
// usage: node webapp.js --port 8000 [--static dir]   (dir/index.html is served at /)
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const port = Number(args.port || 8000);
const host = args.host || "127.0.0.1";
const staticDir = args.static ? path.resolve(args.static) : "";

const types = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8" };

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://placeholder");
  if (url.pathname === "/api/method/frappe.realtime.get_user_info") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ message: { user: "Administrator", user_type: "System User" } }));
    return;
  }
  if (url.pathname === "/api/method/ping") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ message: "pong" }));
    return;
  }
  const file = staticFile(url.pathname);
  if (file) {
    res.writeHead(200, { "Content-Type": types[path.extname(file)] || "application/octet-stream", "Set-Cookie": "sid=demo-session; Path=/; SameSite=Lax" });
    fs.createReadStream(file).pipe(res);
    return;
  }
  if (url.pathname === "/") {
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8", "Set-Cookie": "sid=demo-session; Path=/; SameSite=Lax" });
    res.end("<!doctype html><title>Frappe</title><h1>Frappe web app</h1>\n");
    return;
  }
  res.writeHead(404, { "Content-Type": "text/html; charset=utf-8", "Set-Cookie": "sid=Guest; Path=/" });
  res.end("<!doctype html><title>Not Found</title><h1>Page not found</h1>\n");
});

function staticFile(pathname) {
  if (!staticDir) return "";
  const rel = pathname === "/" ? "index.html" : pathname.slice(1);
  const file = path.resolve(staticDir, rel);
  if (!file.startsWith(staticDir + path.sep)) return "";
  try {
    return fs.statSync(file).isFile() ? file : "";
  } catch {
    return "";
  }
}

server.listen(port, host, () => process.stdout.write(`[webapp] listening on ${host}:${port}\n`));
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
