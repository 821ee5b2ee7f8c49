// A stand-in for the Frappe web app (gunicorn on port 8000): it answers its
// own pages and API, and 404 with an HTML page on any path it does not know —
// /socket.io/ included, which is exactly what a misrouted Socket.IO request gets.
//
// For the demo it also plays Raven's backend: POST /api/method/raven.api.send_message
// publishes message_created with Raven's payload to the realtime server
// (frappe.publish_realtime → Redis → realtime; here its control port).
//
// usage: node webapp.js --port 8000 [--static dir] [--site raven.localhost]
//                       [--publish http://127.0.0.1:9100]   (the realtime control port)
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
  // Who a session belongs to, as Frappe answers its realtime server (v15
  // passes the session as ?sid=, develop as the sid cookie). A session Frappe
  // does not know is Guest: the client connects, but as Guest.
  if (url.pathname === "/api/method/frappe.realtime.get_user_info") {
    const user = sessionUser(req, url);
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ message: { user, user_type: user === "Guest" ? "Website User" : "System User" } }));
    return;
  }
  // doc_subscribe's permission check: Guest may read no document.
  if (url.pathname === "/api/method/frappe.realtime.can_subscribe_doc") {
    const allowed = sessionUser(req, url) !== "Guest";
    res.writeHead(allowed ? 200 : 403, { "Content-Type": "application/json" });
    res.end(JSON.stringify(allowed ? { message: true } : { exc_type: "PermissionError" }));
    return;
  }
  if (url.pathname === "/api/method/raven.get_site") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ message: args.site || "raven.localhost" }));
    return;
  }
  if (url.pathname === "/api/method/raven.api.send_message" && req.method === "POST" && args.publish) {
    readJSON(req)
      .then((body) => publishMessageCreated(body.channel_id || "general", String(body.text || "")))
      .then((message) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ message }));
      })
      .catch((err) => {
        res.writeHead(502, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ exc: err.message }));
      });
    return;
  }
  if (url.pathname === "/api/method/ping") {
    res.writeHead(200, { "Content-Type": "application/json" });
    res.end(JSON.stringify({ message: "pong" }));
    return;
  }
  // The socket.io client, bundled with the web app's assets as Frappe does
  // (so the page still loads when /socket.io itself is misrouted).
  if (url.pathname === "/assets/socket.io.min.js") {
    res.writeHead(200, { "Content-Type": types[".js"] });
    fs.createReadStream(path.join(__dirname, "node_modules", "socket.io-client", "dist", "socket.io.min.js")).pipe(res);
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

// sessionUser: the demo's sessions ("demo-session", "e2e-session", …) are
// Administrator's; "Guest", an empty sid, or one starting with "expired" is not a session.
function sessionUser(req, url) {
  const m = /(?:^|;\s*)sid=([^;]*)/.exec(req.headers.cookie || "");
  const sid = url.searchParams.get("sid") || (m ? m[1] : "");
  return !sid || sid === "Guest" || sid.startsWith("expired") ? "Guest" : "Administrator";
}

let messageCount = 0;

// Raven's publish_message_created_event: event message_created to the room
// doc:Raven Channel/<channel> of the site's namespace, after commit.
function publishMessageCreated(channelID, text) {
  const message = {
    channel_id: channelID,
    sender: "Administrator",
    message_id: `MSG-${Date.now()}-${++messageCount}`,
    message_details: { text, message_type: "Text" },
  };
  const body = JSON.stringify({ namespace: `/${args.site || "raven.localhost"}`, room: `doc:Raven Channel/${channelID}`, event: "message_created", message });
  return new Promise((resolve, reject) => {
    const req = http.request(new URL("/publish", args.publish), { method: "POST", headers: { "Content-Type": "application/json" }, timeout: 5000 }, (res) => {
      res.resume();
      res.on("end", () => (res.statusCode === 200 ? resolve(message) : reject(new Error(`publish answered ${res.statusCode}`))));
    });
    req.on("error", reject);
    req.end(body);
  });
}

function readJSON(req) {
  return new Promise((resolve, reject) => {
    let body = "";
    req.on("data", (c) => {
      body += c;
      if (body.length > 1e5) req.destroy(new Error("body too large"));
    });
    req.on("end", () => {
      try {
        resolve(JSON.parse(body || "{}"));
      } catch (err) {
        reject(err);
      }
    });
    req.on("error", reject);
  });
}

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
