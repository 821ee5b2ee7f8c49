// A stand-in for the Frappe web app (gunicorn on port 8000): it answers its
// own pages and API, and 404 with an HTML page on any path it does not know —
// /socket.io/ included, which is exactly what a misrouted Socket.IO request gets.
//
// It publishes realtime events as frappe.publish_realtime does, through Redis
// (--redis): PUBLISH on the channel "events" with
// {"event","message","room","namespace":<site>} (Frappe's way: every realtime
// process subscribes), or with --emit adapter once through
// @socket.io/redis-emitter (the generic Socket.IO app's way, for replicas on
// @socket.io/redis-adapter). Raven's backend: POST
// /api/method/raven.api.send_message publishes message_created with Raven's
// payload; POST /publish_realtime {"event","message","room","namespace"}
// publishes anything (the test harness's frappe.publish_realtime), and
// answers how many Redis subscribers received it.
//
// usage: node webapp.js --port 8000 [--static dir] [--site raven.localhost]
//                       [--redis redis://127.0.0.1:6379] [--emit events|adapter]
//                       [--dev-server 9000]
"use strict";

const fs = require("node:fs");
const http = require("node:http");
const path = require("node:path");
const { createClient } = require("redis");
const { Emitter } = require("@socket.io/redis-emitter");

const args = {};
for (let i = 2; i < process.argv.length; i += 2) args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
const port = Number(args.port || 8000);
const host = args.host || "127.0.0.1";
const staticDir = args.static ? path.resolve(args.static) : "";
const site = args.site || "raven.localhost";
// --dev-server PORT: the desk page says what Frappe's says when its web
// process runs with DEV_SERVER (bench start): window.dev_server = 1 and the
// boot's socketio_port, which its socket client then connects to directly.
const devServerPort = args["dev-server"] ? Number(args["dev-server"]) : 0;

// One Redis connection for publishing; it reconnects by itself.
let redis = null;
let emitter = null;
if (args.redis) {
  redis = createClient({ url: args.redis });
  redis.on("error", () => {}); // reconnects; a publish meanwhile fails and says so
  redis.connect().catch(() => {});
  if (args.emit === "adapter") emitter = new Emitter(redis);
}

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
    res.end(JSON.stringify({ message: site }));
    return;
  }
  if (url.pathname === "/publish_realtime" && req.method === "POST") {
    readJSON(req)
      .then((body) => publishRealtime(body.event, body.message, body.room, body.namespace || site))
      .then((subscribers) => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ subscribers }));
      })
      .catch((err) => {
        res.writeHead(502, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ exc: err.message }));
      });
    return;
  }
  if (url.pathname === "/api/method/raven.api.send_message" && req.method === "POST") {
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
  // Frappe's desk page (frappe/www/desk.html) for a logged-in session, a
  // redirect to the login page otherwise.
  if (url.pathname === "/app") {
    if (sessionUser(req, url) === "Guest") {
      res.writeHead(302, { Location: "/login?redirect-to=%2Fapp" });
      res.end();
      return;
    }
    const boot = { sitename: site, socketio_port: devServerPort || 9000, user: { name: "Administrator" } };
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(`<!DOCTYPE html><html><head><title>Frappe</title></head><body>\n<script>\n` +
      `window._version_number = "e2e";\nwindow.app = true;\nwindow.dev_server = ${devServerPort ? 1 : 0};\n` +
      `if (!window.frappe) window.frappe = {};\nfrappe.boot = ${JSON.stringify(boot)};\n</script>\n</body></html>\n`);
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
  return publishRealtime("message_created", message, `doc:Raven Channel/${channelID}`, site).then(() => message);
}

// frappe.publish_realtime: one PUBLISH on "events" (Frappe's way), or one
// emit through the Redis emitter (--emit adapter). Resolves to the number of
// Redis subscribers that received it (the emitter's own channel counts too).
async function publishRealtime(event, message, room, namespace) {
  if (!redis) throw new Error("no --redis to publish to");
  if (!redis.isReady) throw new Error("Redis is not connected");
  if (emitter) {
    const nsp = emitter.of(`/${namespace}`);
    (room ? nsp.to(room) : nsp).emit(event, message);
    return -1; // the emitter does not say
  }
  return redis.publish("events", JSON.stringify({ event, message, room, namespace }));
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
