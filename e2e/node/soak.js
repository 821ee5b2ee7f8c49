// Many socket.io-client sessions in one process, for the soak run
// (make soak): each client joins one channel's room and records the
// sequence numbers of the message_created events it receives.
//
// usage: node soak.js --url http://127.0.0.1:8006 --namespace /raven.localhost --clients 500 --channels 50
// stdin commands, one per line; each answers one JSON line on stdout:
//   status        → {"type":"status","clients":…,"connected":…,"websocket":…,"subscribed":…, …}
//   expect N      → the same, checking that every client holds seqs 1..N exactly once, in order
//   mark-restart  → from now on, disconnects count as expected (the server is restarted)
//   close         → closes every client and answers the final status, then exits
"use strict";

const readline = require("node:readline");
const { io } = require("socket.io-client");

const opts = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, "")] = argv[i + 1];
const clientsWanted = Number(opts.clients || 500);
const channels = Number(opts.channels || 50);

const clients = [];
let restartMarked = false;
const disconnectReasons = {}; // "before restart: transport close" → count
const connectErrorMessages = {};

for (let i = 0; i < clientsWanted; i++) {
  const channel = `soak-${i % channels}`;
  const c = { channel, seqs: [], connects: 0, unexpectedDisconnects: 0, expectedDisconnects: 0, subscribed: false, errors: 0 };
  const socket = io(new URL(opts.namespace || "/", opts.url).toString(), {
    path: "/socket.io/",
    transports: ["polling", "websocket"],
    extraHeaders: { Cookie: `sid=soak-${i}` },
    reconnectionDelay: 500,
    reconnectionDelayMax: 2000,
    timeout: 20000,
  });
  c.socket = socket;
  socket.on("connect", () => {
    c.connects++;
    c.subscribed = false;
    socket.emit("doc_subscribe", "Raven Channel", channel);
  });
  socket.on("doc_subscribed", () => (c.subscribed = true));
  socket.on("disconnect", (reason) => {
    c.subscribed = false;
    if (reason === "io client disconnect") return;
    if (restartMarked) c.expectedDisconnects++;
    else c.unexpectedDisconnects++;
    const key = `${restartMarked ? "after" : "before"} restart: ${reason}`;
    disconnectReasons[key] = (disconnectReasons[key] || 0) + 1;
  });
  socket.on("connect_error", (err) => {
    c.errors++;
    const key = `${restartMarked ? "after" : "before"} restart: ${err.message}${err.description ? " " + (err.description.message || err.description) : ""}`;
    connectErrorMessages[key] = (connectErrorMessages[key] || 0) + 1;
  });
  socket.on("message_created", (event) => {
    if (event.channel_id === channel) c.seqs.push(event.seq);
  });
  clients.push(c);
}

function status(expected) {
  const s = {
    type: "status",
    clients: clients.length,
    connected: 0,
    websocket: 0,
    subscribed: 0,
    received: 0,
    lost: 0,
    duplicated: 0,
    outOfOrder: 0,
    reconnects: 0,
    unexpectedDisconnects: 0,
    expectedDisconnects: 0,
    connectErrors: 0,
  };
  for (const c of clients) {
    if (c.socket.connected) s.connected++;
    if (c.socket.connected && c.socket.io.engine && c.socket.io.engine.transport.name === "websocket") s.websocket++;
    if (c.subscribed) s.subscribed++;
    s.received += c.seqs.length;
    s.reconnects += Math.max(0, c.connects - 1);
    s.unexpectedDisconnects += c.unexpectedDisconnects;
    s.expectedDisconnects += c.expectedDisconnects;
    s.connectErrors += c.errors;
    if (expected !== undefined) {
      const seen = new Set(c.seqs);
      for (let n = 1; n <= expected; n++) if (!seen.has(n)) s.lost++;
      s.duplicated += c.seqs.length - seen.size;
      for (let k = 1; k < c.seqs.length; k++) if (c.seqs[k] < c.seqs[k - 1]) s.outOfOrder++;
    }
  }
  if (expected !== undefined) s.expected = expected * clients.length;
  s.disconnectReasons = disconnectReasons;
  s.connectErrorMessages = connectErrorMessages;
  return s;
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === "status") emit(status());
  else if (cmd === "expect") emit(status(Number(arg)));
  else if (cmd === "mark-restart") {
    restartMarked = true;
    emit({ type: "marked" });
  } else if (cmd === "close") {
    const final = status(Number(arg || 0) || undefined);
    for (const c of clients) c.socket.close();
    final.type = "final";
    emit(final);
    setTimeout(() => process.exit(0), 200);
  }
});
rl.on("close", () => process.exit(0));
