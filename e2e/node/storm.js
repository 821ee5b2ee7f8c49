// Many socket.io-client sessions in one process, for the reconnect storm of
// make bench: every client reconnects after exactly --delay ms
// (randomizationFactor 0, no backoff growth), so that the time until all
// are back measures the path they reconnect through, not the backoff.
//
// usage: node storm.js --url http://127.0.0.1:8006 --namespace /raven.localhost --clients 1000 --delay 1000
// stdin commands, one per line; each answers one JSON line on stdout:
//   status   → {"type":"status","clients":…,"connected":…,"websocket":…,"stormMs":…}
//   storm    → marks the start of a storm (the driver then kills the server):
//              stormMs is the time from the mark until every client is
//              connected again and on websocket (null until then)
//   close    → closes every client, answers the final status, exits
"use strict";

const readline = require("node:readline");
const { io } = require("socket.io-client");

const opts = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, "")] = argv[i + 1];
const clientsWanted = Number(opts.clients || 1000);
const delay = Number(opts.delay || 1000);

const sockets = [];
let storm = null; // {started, dropped: Set of sockets not back yet, ms}

for (let i = 0; i < clientsWanted; i++) {
  const socket = io(new URL(opts.namespace || "/", opts.url).toString(), {
    path: "/socket.io/",
    transports: ["polling", "websocket"],
    // A browser sends its Origin on the websocket handshake and the polling
    // POST; socket.io-client in Node sends these headers on every request.
    extraHeaders: { Cookie: `sid=storm-${i}`, Origin: new URL(opts.url).origin },
    reconnectionDelay: delay,
    reconnectionDelayMax: delay,
    randomizationFactor: 0,
    timeout: 20000,
  });
  socket.on("disconnect", () => {
    if (storm) storm.dropped.add(socket);
  });
  socket.on("connect", () => checkBack(socket));
  socket.io.on("open", () => socket.io.engine.on("upgrade", () => checkBack(socket)));
  sockets.push(socket);
}

function onWebsocket(socket) {
  return socket.connected && socket.io.engine && socket.io.engine.transport.name === "websocket";
}

function checkBack(socket) {
  if (!storm || storm.ms !== null || !onWebsocket(socket)) return;
  storm.dropped.delete(socket);
  if (storm.dropped.size === 0 && sockets.every(onWebsocket)) storm.ms = Date.now() - storm.started;
}

function status() {
  const s = { type: "status", clients: sockets.length, connected: 0, websocket: 0, stormMs: storm ? storm.ms : null, dropped: storm ? storm.dropped.size : 0 };
  for (const socket of sockets) {
    if (socket.connected) s.connected++;
    if (onWebsocket(socket)) s.websocket++;
  }
  return s;
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const cmd = line.trim();
  if (cmd === "status") emit(status());
  else if (cmd === "storm") {
    storm = { started: Date.now(), dropped: new Set(), ms: null };
    emit({ type: "marked" });
  } else if (cmd === "close") {
    const final = status();
    for (const socket of sockets) socket.close();
    final.type = "final";
    emit(final);
    setTimeout(() => process.exit(0), 200);
  }
});
