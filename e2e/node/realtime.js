// A stand-in for Frappe's realtime server (frappe/realtime/index.js, v15),
// faithful where it matters for the transport: Socket.IO 4 on its own port,
// http.createServer() without a request handler (a path Socket.IO does not
// own is never answered), one namespace per site, Frappe's authentication
// order ("Invalid namespace", "Invalid origin", cookie checks), rooms
// "doc:<doctype>/<name>", and events published from outside (Frappe uses
// Redis pub/sub; here a control port takes the same {event, room, message}).
//
// usage: node realtime.js --port 9000 --control-port 9100 [--name replica-a]
//        [--webapp http://127.0.0.1:8000]   (asks it who the user is, like Frappe)
"use strict";

const http = require("node:http");
const { Server } = require("socket.io");

const args = parseArgs(process.argv.slice(2));
const port = Number(args.port || 9000);
const controlPort = Number(args["control-port"] || 0);
const name = args.name || `realtime:${port}`;
const host = args.host || "127.0.0.1";

const server = http.createServer();
const io = new Server(server, {
  cors: { origin: true, credentials: true },
  cleanupEmptyChildNamespaces: true,
  allowEIO3: true,
});

// Multitenancy, as Frappe: any "/<sitename>" namespace, validated on connect.
const realtime = io.of(/^\/.*$/);

realtime.use((socket, next) => {
  const headers = socket.request.headers;
  const namespace = socket.nsp.name.slice(1);
  if (namespace !== siteName(headers)) {
    next(new Error("Invalid namespace"));
    return;
  }
  if (hostname(headers.host) !== hostname(headers.origin)) {
    next(new Error("Invalid origin"));
    return;
  }
  if (!headers.cookie) {
    next(new Error("No cookie transmitted."));
    return;
  }
  const sid = /(?:^|;\s*)sid=([^;]*)/.exec(headers.cookie);
  if (!sid && !headers.authorization) {
    next(new Error("No sid transmitted."));
    return;
  }
  userInfo(socket, sid ? sid[1] : "")
    .then((user) => {
      socket.user = user;
      next();
    })
    .catch((err) => next(new Error(`Unauthorized: ${err.message}`)));
});

realtime.on("connection", (socket) => {
  socket.join(`user:${socket.user}`);
  socket.join("all");
  socket.on("doc_subscribe", (doctype, docname) => {
    socket.join(`doc:${doctype}/${docname}`);
    socket.emit("doc_subscribed", { doctype, docname });
  });
  socket.on("doc_unsubscribe", (doctype, docname) => {
    socket.leave(`doc:${doctype}/${docname}`);
  });
});

server.listen(port, host, () => {
  log(`listening on ${host}:${port}`);
});

// The control port stands in for Frappe's Redis "events" channel:
// POST /publish {"namespace":"/site","room":"doc:Raven Channel/general","event":"message_created","message":{...}}
if (controlPort) {
  const control = http.createServer((req, res) => {
    if (req.method === "GET" && req.url === "/health") {
      res.writeHead(200, { "Content-Type": "application/json" });
      res.end(JSON.stringify({ name, clients: io.engine.clientsCount }));
      return;
    }
    if (req.method !== "POST" || req.url !== "/publish") {
      res.writeHead(404).end();
      return;
    }
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      try {
        const { namespace, room, event, message } = JSON.parse(body);
        const nsp = io.of(namespace);
        (room ? nsp.to(room) : nsp).emit(event, message);
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ published: event, room, namespace }));
      } catch (err) {
        res.writeHead(400, { "Content-Type": "application/json" });
        res.end(JSON.stringify({ error: err.message }));
      }
    });
  });
  control.listen(controlPort, host, () => log(`control on ${host}:${controlPort}`));
}

function siteName(headers) {
  if (headers["x-frappe-site-name"]) return hostname(headers["x-frappe-site-name"]);
  if (headers.origin) return hostname(headers.origin);
  return hostname(headers.host);
}

function hostname(value) {
  if (!value) return undefined;
  try {
    const url = value.includes("://") ? new URL(value) : new URL(`http://${value}`);
    return url.hostname;
  } catch {
    return undefined;
  }
}

// Frappe asks the web app who the session belongs to
// (/api/method/frappe.realtime.get_user_info). Without --webapp every sid is Administrator.
function userInfo(socket, sid) {
  if (!args.webapp) return Promise.resolve("Administrator");
  return new Promise((resolve, reject) => {
    const url = new URL("/api/method/frappe.realtime.get_user_info", args.webapp);
    const req = http.get(url, { headers: { Cookie: `sid=${sid}`, "X-Frappe-Site-Name": socket.nsp.name.slice(1) }, timeout: 5000 }, (res) => {
      let body = "";
      res.on("data", (c) => (body += c));
      res.on("end", () => {
        if (res.statusCode !== 200) return reject(new Error(`get_user_info answered ${res.statusCode}`));
        try {
          resolve(JSON.parse(body).message.user);
        } catch (err) {
          reject(err);
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error("get_user_info timed out")));
    req.on("error", reject);
  });
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

for (const sig of ["SIGTERM", "SIGINT"]) {
  process.on(sig, () => {
    io.close();
    process.exit(0);
  });
}
