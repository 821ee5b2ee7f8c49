// A stand-in for Frappe's realtime server (frappe/realtime/index.js and
// middlewares/authenticate.js, v15 / develop), faithful where it matters to
// the guard and the doctor: Socket.IO 4 on its own port,
// http.createServer() without a request handler (a path Socket.IO does not
// own is never answered), no allowEIO3 (an EIO=3 handshake gets engine.io's
// 400 code 5), one namespace per site, Frappe's authentication in Frappe's
// order with Frappe's messages, the callback to <Origin>/api/method/
// frappe.realtime.get_user_info (or http://<server_ip> when --server-ip is
// given, as Frappe's conf.server_ip), the rooms every socket joins, and
// doc_subscribe joining only after the permission callback.
//
// Events arrive through Redis, in one of two ways (several replicas differ):
//   Frappe's way (default): every process subscribes to the Redis channel
//     "events" itself — {"event","message","room","namespace":<site>}, as
//     frappe.publish_realtime publishes — and emits to its own clients; an
//     event without a room goes to every site. No adapter: with one on top,
//     each event would reach each client once per replica.
//   --adapter: the generic Socket.IO app's way, @socket.io/redis-adapter over
//     the same Redis; events are emitted once, by @socket.io/redis-emitter
//     (webapp.js --emit adapter) or by one replica.
//
// usage: node realtime.js --port 9000 --redis redis://127.0.0.1:6379 [--adapter]
//          [--name replica-a] [--server-ip 127.0.0.1:8000] [--default-site raven.localhost]
//          [--ping-interval 25000] [--ping-timeout 20000] [--refuse-requests] [--ack-subscriptions]
//          [--frappe v15|develop] [--log-origins]
//
// --frappe picks the HTTP client of Frappe's callback, which matters when the
// callback is redirected (http → https): v15 calls with superagent 8
// (?sid= in the query; it follows 5 redirects and drops Cookie/Authorization
// only when the host changes), develop with Node's fetch (Cookie: sid=…;
// undici drops Cookie on a cross-origin redirect, http → https included).
// Without it: a plain http(s).get with both, no redirects followed.
// --log-origins logs each Engine.IO request's transport, Origin and
// X-Forwarded-Proto as it arrived, and whom the callback answered for.
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");
const { createClient } = require("redis");
const https = require("node:https");
const { createAdapter } = require("@socket.io/redis-adapter");

const args = parseArgs(process.argv.slice(2));
const port = Number(args.port || 9000);
const name = args.name || `realtime:${port}`;
const host = args.host || "127.0.0.1";

main().catch((err) => {
  log(`cannot start: ${err.message}`);
  process.exit(1);
});

async function main() {
  const server = http.createServer();
  const adapter = args.adapter ? await redisAdapter() : undefined;
  const io = new Server(server, {
    adapter,
    cors: { origin: true, credentials: true },
    cleanupEmptyChildNamespaces: true,
    pingInterval: Number(args["ping-interval"] || 25000),
    pingTimeout: Number(args["ping-timeout"] || 20000),
    // Not Frappe: stands for a server whose allowRequest refuses (origin, CORS or auth checks).
    allowRequest: args["refuse-requests"] ? (req, callback) => callback("Forbidden", false) : undefined,
  });

  // After the Server: engine.io takes over the listeners attached before it.
  if (args["log-origins"]) {
    const arrived = (req, kind) => {
      const q = new URL(req.url, "http://x").searchParams;
      log(`arrived ${kind} transport=${q.get("transport") || "-"} sid=${q.has("sid") ? "yes" : "no"} origin=${req.headers.origin || "-"} x-forwarded-proto=${req.headers["x-forwarded-proto"] || "-"}`);
    };
    server.on("request", (req) => arrived(req, "request"));
    server.on("upgrade", (req) => arrived(req, "upgrade"));
  }

  // Multitenancy, as Frappe: any "/<sitename>" namespace, validated on connect.
  const realtime = io.of(/^\/.*$/);

  // Frappe's authenticate middleware, in its order and with its messages.
  realtime.use((socket, next) => {
    const headers = socket.request.headers;
    const namespace = socket.nsp.name.slice(1);
    const site = siteName(headers);
    if (namespace !== site) {
      next(new Error("Invalid namespace"));
      // Frappe does not return here: the next refusal may follow.
    }
    if (getHostname(headers.host) !== getHostname(headers.origin)) {
      next(new Error("Invalid origin"));
      return;
    }
    if (!headers.cookie) {
      next(new Error("No cookie transmitted."));
      return;
    }
    const sid = cookieValue(headers.cookie, "sid");
    if (!sid && !headers.authorization) {
      next(new Error("No authentication method used. Use cookie or authorization header."));
      return;
    }
    frappeCall(socket, "/api/method/frappe.realtime.get_user_info", {}, sid, site)
      .then(({ status, body }) => {
        if (status !== 200) throw new Error(statusText(status));
        if (args["log-origins"]) log(`callback for ${socket.nsp.name} answered user=${body.message.user}`);
        socket.user = body.message.user;
        socket.user_type = body.message.user_type;
        socket.sid = sid;
        next();
      })
      .catch((err) => next(new Error(`Unauthorized: Error: ${err.message}`)));
  });

  realtime.on("connection", (socket) => {
    log(`client connected to ${socket.nsp.name} as ${socket.user}`); // the suite counts clients per replica
    socket.join(`user:${socket.user}`);
    socket.join("website");
    if (socket.user_type === "System User") socket.join("all");
    socket.on("doc_subscribe", (doctype, docname) => {
      // Joins only when the permission call answers 200; Frappe sends no
      // acknowledgement. --ack-subscriptions (the test harness's readiness
      // signal, off by default) emits doc_subscribed once joined.
      frappeCall(socket, "/api/method/frappe.realtime.can_subscribe_doc", { doctype, docname }, socket.sid, socket.nsp.name.slice(1))
        .then(({ status }) => {
          if (status !== 200) return;
          socket.join(`doc:${doctype}/${docname}`);
          if (args["ack-subscriptions"]) socket.emit("doc_subscribed", { doctype, docname });
        })
        .catch((err) => log(`doc_subscribe: ${err.message}`));
    });
    socket.on("doc_unsubscribe", (doctype, docname) => {
      socket.leave(`doc:${doctype}/${docname}`);
    });
  });

  // Frappe's way: this process subscribes to "events" and emits to its own clients.
  if (!args.adapter && args.redis) {
    const subscriber = redisClient("events subscriber");
    await subscriber.connect();
    await subscriber.subscribe("events", (raw) => {
      let m;
      try {
        m = JSON.parse(raw);
      } catch {
        log(`events: not JSON: ${raw.slice(0, 80)}`);
        return;
      }
      if (m.room) io.of(`/${m.namespace}`).to(m.room).emit(m.event, m.message);
      else realtime.emit(m.event, m.message); // every site
    });
  }

  server.listen(port, host, () => {
    log(`listening on ${host}:${port}${args.adapter ? " (redis adapter)" : args.redis ? " (subscribed to Redis events)" : ""}`);
  });

  for (const sig of ["SIGTERM", "SIGINT"]) {
    process.on(sig, () => {
      io.close();
      process.exit(0);
    });
  }
}

async function redisAdapter() {
  const pub = redisClient("adapter pub");
  const sub = redisClient("adapter sub");
  await Promise.all([pub.connect(), sub.connect()]);
  return createAdapter(pub, sub);
}

// redisClient reconnects by itself (node-redis v4's default strategy) and
// restores its subscriptions, as Frappe's realtime server relies on.
function redisClient(role) {
  if (!args.redis) throw new Error("--redis is required");
  const client = createClient({ url: args.redis });
  let down = false;
  client.on("error", (err) => {
    if (!down) log(`redis ${role}: ${err.message}`);
    down = true;
  });
  client.on("ready", () => {
    if (down) log(`redis ${role}: reconnected`);
    down = false;
  });
  return client;
}

// Frappe's get_site_name: X-Frappe-Site-Name, else default_site for
// localhost, else the Origin's hostname, else the Host's.
function siteName(headers) {
  const hostName = getHostname(headers.host);
  if (headers["x-frappe-site-name"]) return getHostname(headers["x-frappe-site-name"]);
  if (["localhost", "127.0.0.1"].includes(hostName) && args["default-site"]) return args["default-site"];
  if (headers.origin) return getHostname(headers.origin);
  return hostName;
}

// Frappe's get_hostname: scheme and port ignored.
function getHostname(url) {
  if (!url) return undefined;
  if (url.indexOf("://") > -1) url = url.split("/")[2];
  return url.match(/:/g) ? url.slice(0, url.indexOf(":")) : url;
}

// Frappe's get_url: http://<server_ip><path> when server_ip is configured,
// else <Origin><path> — the Origin is the URL the realtime server calls.
function frappeURL(socket, path) {
  if (args["server-ip"]) return `http://${args["server-ip"]}${path}`;
  return `${socket.request.headers.origin}${path}`;
}

function frappeCall(socket, path, query, sid, site) {
  if (args.frappe === "v15") return frappeCallV15(socket, path, query, sid);
  if (args.frappe === "develop") return frappeCallDevelop(socket, path, query, sid);
  return new Promise((resolve, reject) => {
    let url;
    try {
      url = new URL(frappeURL(socket, path));
    } catch (err) {
      reject(new Error(`invalid URL ${frappeURL(socket, path)}`));
      return;
    }
    for (const [k, v] of Object.entries({ ...query, sid })) if (v) url.searchParams.set(k, v);
    const headers = { "X-Frappe-Site-Name": site || "" };
    if (sid) headers.Cookie = `sid=${sid}`;
    if (socket.request.headers.authorization) headers.Authorization = socket.request.headers.authorization;
    const req = (url.protocol === "https:" ? https : http).get(url, { headers, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        try {
          resolve({ status: res.statusCode, body: body ? JSON.parse(body) : {} });
        } catch {
          resolve({ status: res.statusCode, body: {} });
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

// Frappe v15 (realtime/middlewares/authenticate.js): superagent, the sid in
// the query, else the Authorization header.
function frappeCallV15(socket, path, query, sid) {
  const request = require("superagent");
  let req = request.get(frappeURL(socket, path)).query(query).timeout(5000).ok(() => true);
  if (sid) req = req.query({ sid });
  else if (socket.request.headers.authorization) req = req.set("Authorization", socket.request.headers.authorization);
  return req.then((res) => ({ status: res.status, body: res.body && typeof res.body === "object" ? res.body : {} }));
}

// Frappe develop (since 2024-04): Node's fetch, the sid as a Cookie, else
// the Authorization header.
async function frappeCallDevelop(socket, path, query, sid) {
  const url = new URL(frappeURL(socket, path));
  for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
  const headers = {};
  if (socket.request.headers.authorization) headers.Authorization = socket.request.headers.authorization;
  else headers.Cookie = `sid=${sid}`;
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(5000) });
  let body = {};
  try {
    body = await res.json();
  } catch {}
  return { status: res.status, body };
}

function statusText(status) {
  return http.STATUS_CODES[status] || String(status);
}

function cookieValue(header, key) {
  const m = new RegExp(`(?:^|;\\s*)${key}=([^;]*)`).exec(header || "");
  return m ? decodeURIComponent(m[1]) : "";
}

function parseArgs(argv) {
  const out = {};
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith("--")) out[argv[i].slice(2)] = argv[i + 1] && !argv[i + 1].startsWith("--") ? argv[++i] : "true";
  }
  return out;
}

function log(msg) {
  process.stdout.write(`[${name}] ${msg}\n`);
}
