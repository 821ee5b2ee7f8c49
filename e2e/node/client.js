// A real socket.io-client 4.8 session, driven from the command line and
// reporting what the user would experience as JSON lines on stdout:
//   {"type":"connected","transport":"polling"}   the namespace connect succeeded
//   {"type":"upgrade","transport":"websocket"}   the websocket probe succeeded
//   {"type":"ready","transport":…}               subscribed, transport settled: publish now
//   {"type":"event","name":…,"data":…}           a subscribed event arrived
//   {"type":"connect_error","message":…}         e.g. Frappe's "Invalid origin", "xhr poll error"
//   {"type":"result",…}                          last line: the summary
//
// usage: node client.js --url http://127.0.0.1:8005 [--path /socket.io/] [--namespace /site]
//          [--transports polling,websocket] [--header "Cookie: sid=x"]… [--subscribe "Raven Channel/general"]
//          [--wait-event message_created] [--events 1] [--timeout 15000] [--settle 1500]
//          [--reconnection-attempts 3] [--resolve erp.example.test=127.0.0.1]
// (--resolve: the site's name answers at that address, as /etc/hosts would;
// HTTPS trusts NODE_EXTRA_CA_CERTS.)
"use strict";

const { io } = require("socket.io-client");

const opts = { header: [] };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "");
  if (key === "header") opts.header.push(argv[i + 1]);
  else opts[key] = argv[i + 1];
}

const url = new URL(opts.namespace || "/", opts.url).toString();
const extraHeaders = {};
for (const h of opts.header) {
  const i = h.indexOf(":");
  // engine.io-client's Node websocket transport sets headers.cookie (lower
  // case) from its cookie jar, which would hide a "Cookie" key: keep the
  // session cookie under the name it uses.
  const name = h.slice(0, i).trim();
  extraHeaders[name.toLowerCase() === "cookie" ? "cookie" : name] = h.slice(i + 1).trim();
}
const ownCookie = extraHeaders.cookie;
const wantEvents = Number(opts.events || (opts["wait-event"] ? 1 : 0));
const timeoutMs = Number(opts.timeout || 15000);
const settleMs = Number(opts.settle || 1500);

const summary = {
  type: "result",
  connected: false,
  everConnected: false,
  transport: null,
  upgraded: false,
  events: [],
  errors: [],
  disconnects: [],
  reconnects: 0,
};
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

// Node's connections pick the address up through the agent's lookup.
let agent;
if (opts.resolve) {
  const [name, address] = opts.resolve.split("=");
  const lookup = (hostname, options, callback) => {
    if (hostname !== name) return require("node:dns").lookup(hostname, options, callback);
    if (options && options.all) return callback(null, [{ address, family: 4 }]);
    return callback(null, address, 4);
  };
  agent = new (url.startsWith("https:") ? require("node:https") : require("node:http")).Agent({ lookup });
}

const socket = io(url, {
  agent,
  path: opts.path || "/socket.io/",
  transports: (opts.transports || "polling,websocket").split(","),
  extraHeaders,
  withCredentials: true,
  reconnectionAttempts: Number(opts["reconnection-attempts"] || 3), // Frappe desk's setting
  reconnectionDelay: 200,
  reconnectionDelayMax: 1000,
  timeout: 5000,
});
// engine.io-client 6.6 in Node appends its cookie jar to extraHeaders.cookie
// in place: start each reconnection without the stale ones (see soak.js).
socket.io.on("reconnect_attempt", () => {
  if (ownCookie === undefined) delete extraHeaders.cookie;
  else extraHeaders.cookie = ownCookie;
});

let readySent = false;
let subscribed = !opts.subscribe;

// Each Engine.IO connection (first and reconnections) may upgrade; the probe
// can finish before the namespace connect, so listen from the engine's open.
socket.io.on("open", () => {
  socket.io.engine.once("upgrade", (transport) => {
    summary.transport = transport.name;
    summary.upgraded = true;
    emit({ type: "upgrade", transport: transport.name });
    maybeReady();
  });
});

socket.on("connect", () => {
  summary.connected = true;
  if (summary.everConnected) summary.reconnects++;
  summary.everConnected = true;
  summary.transport = socket.io.engine.transport.name;
  emit({ type: "connected", transport: summary.transport });
  if (opts.subscribe) {
    const slash = opts.subscribe.indexOf("/");
    socket.emit("doc_subscribe", opts.subscribe.slice(0, slash), opts.subscribe.slice(slash + 1));
  }
  setTimeout(() => {
    // Frappe acknowledges no doc_subscribe (only the suite's server does,
    // with --ack-subscriptions): after settleMs, take the room as joined.
    subscribed = true;
    maybeReady(true);
  }, settleMs);
});

socket.on("doc_subscribed", () => {
  subscribed = true;
  maybeReady();
});

socket.on("connect_error", (err) => {
  const error = { message: err.message, description: describe(err.description), context: describe(err.context) };
  summary.errors.push(error);
  emit({ type: "connect_error", ...error });
  // A refusal by the server's middleware is final in socket.io v4: no retry.
  setTimeout(() => {
    if (!socket.active) finish();
  }, 50);
});

socket.on("disconnect", (reason) => {
  summary.connected = false;
  summary.disconnects.push(reason);
  emit({ type: "disconnect", reason });
});

socket.io.on("reconnect_failed", () => finish());

if (opts["wait-event"]) {
  socket.on(opts["wait-event"], (data) => {
    summary.events.push(data);
    emit({ type: "event", name: opts["wait-event"], data });
    if (wantEvents && summary.events.length >= wantEvents) setTimeout(finish, 100);
  });
}

// ready: connected, subscribed, and either upgraded or given settleMs to upgrade.
function maybeReady(settled) {
  if (readySent || !summary.connected || !subscribed) return;
  const wantsUpgrade = socket.io.engine.transport.name === "polling" && (opts.transports || "polling,websocket").includes("websocket");
  if (wantsUpgrade && !summary.upgraded && !settled) return;
  readySent = true;
  emit({ type: "ready", transport: socket.io.engine.transport.name });
  if (!wantEvents) setTimeout(finish, 100);
}

function describe(value) {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number" || typeof value === "string") return value;
  if (value.message) return value.message;
  if (value.status !== undefined) return { status: value.status, responseText: String(value.responseText || "").slice(0, 300) };
  try {
    return JSON.parse(JSON.stringify(value));
  } catch {
    return String(value);
  }
}

let finished = false;
function finish() {
  if (finished) return;
  finished = true;
  summary.transport = socket.io.engine ? socket.io.engine.transport && socket.io.engine.transport.name : summary.transport;
  if (!summary.connected) summary.transport = summary.everConnected ? summary.transport : null;
  emit(summary);
  socket.close();
  process.exit(0);
}

setTimeout(finish, timeoutMs);
process.on("SIGTERM", finish);
