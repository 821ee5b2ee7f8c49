// Many socket.io-client sessions in one process, for the soak run
// (make soak): each client joins one channel's room, keeps the times it was
// subscribed, and records the sequence numbers of the message_created events
// it receives, so that the driver can count every event against the clients
// that were connected when it was published.
//
// usage: node soak.js --url http://127.0.0.1:8006 --namespace /raven.localhost --clients 1000 --channels 50
//        [--offset 0] [--local-address 127.0.0.2] [--rate 0] [--reconnect-delay 500 --reconnect-delay-max 2000]
//   --offset N         this process's clients are numbers N … N+clients-1 of the run (channel and
//                      cookie follow the number), when the run spreads its clients over processes
//   --local-address A  every connection (polling and websocket) leaves from this source address
//   --rate R           clients started per second (0: all at once)
//   --reconnect-delay, --reconnect-delay-max  socket.io-client's reconnectionDelay and
//                      reconnectionDelayMax, ms (socket.io's defaults, which Frappe's desk keeps: 1000, 5000)
// stdin commands, one per line; each answers one JSON line on stdout:
//   status             → {"type":"status","clients":…,"connected":…,"websocket":…,"subscribed":…,…}
//   fault NAME         → from now on, disconnects are attributed to the fault NAME, and each
//                        affected client's time until it is back (subscribed, on websocket) is kept
//   fault -            → no fault any more: later disconnects count as unexpected
//   evaluate FILE      → counts the events listed in FILE (JSON: [{"channel","seq","t","reached"}])
//                        per client: "counted" when the PUBLISH reached every live replica and the
//                        client was subscribed from 1 s before to 1 s after; the rest "in gaps"
//   close              → closes every client, answers the final status, exits
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const http = require("node:http");
const { monitorEventLoopDelay } = require("node:perf_hooks");
const { io } = require("socket.io-client");

const opts = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, "")] = argv[i + 1];
const clientsWanted = Number(opts.clients || 1000);
const channels = Number(opts.channels || 50);
const offset = Number(opts.offset || 0);
const rate = Number(opts.rate || 0);
// A source address of its own: polling requests go through an agent that
// binds it (engine.io-client passes "agent" to xmlhttprequest-ssl, which
// passes it to http.request; one connection per request, as with the
// default agent: false), the websocket through ws's localAddress.
const localAddress = opts["local-address"];
const agent = localAddress ? new http.Agent({ localAddress, keepAlive: false }) : undefined;
const bucketOf = (t) => Math.floor(t / 5000) * 5; // 5-second buckets, in epoch seconds
const unexpectedByTime = {}; // bucket → unexpected disconnects
const lagByTime = {}; // bucket → the event loop's largest delay, ms
const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
setInterval(() => {
  lagByTime[bucketOf(Date.now() - 1)] = Math.round(loop.max / 1e6);
  loop.reset();
}, 5000).unref();

const clients = [];
let fault = null; // {name, started}
const faults = {}; // name → {started, affected, recovered: [ms], disconnectReasons}
const unexpected = {}; // reason → count (disconnects outside any fault)
const connectErrorMessages = {};
const upgradeErrors = {}; // websocket probes that failed, by message

function startClient(i) {
  const channel = `soak-${i % channels}`;
  const c = { channel, received: new Map(), order: [], intervals: [], subscribedAt: null, connects: 0, pending: null };
  const extraHeaders = { Cookie: `sid=soak-${i}` };
  const socket = io(new URL(opts.namespace || "/", opts.url).toString(), {
    path: "/socket.io/",
    transports: ["polling", "websocket"],
    extraHeaders,
    withCredentials: true, // keeps Traefik's sticky cookie, as a browser does
    reconnectionDelay: Number(opts["reconnect-delay"] || 500),
    reconnectionDelayMax: Number(opts["reconnect-delay-max"] || 2000),
    timeout: 20000,
    ...(localAddress ? { localAddress, agent } : {}),
  });
  forgetStaleCookies(socket, extraHeaders);
  c.socket = socket;
  socket.on("connect", () => {
    c.connects++;
    socket.emit("doc_subscribe", "Raven Channel", channel);
  });
  socket.on("doc_subscribed", () => {
    c.subscribedAt = Date.now();
    checkRecovered(c);
  });
  socket.io.on("open", () => {
    socket.io.engine.on("upgrade", () => checkRecovered(c));
    // a failed websocket probe leaves the client on polling for good
    socket.io.engine.on("upgradeError", (err) => {
      const d = err && err.description;
      const key = `${err && err.message}${d ? ": " + (d.message || d.type || d) : ""}`;
      upgradeErrors[key] = (upgradeErrors[key] || 0) + 1;
    });
  });
  socket.on("disconnect", (reason) => {
    if (c.subscribedAt !== null) c.intervals.push([c.subscribedAt, Date.now()]);
    c.subscribedAt = null;
    if (reason === "io client disconnect") return;
    if (fault) {
      const f = faults[fault.name];
      f.affected++;
      f.disconnectReasons[reason] = (f.disconnectReasons[reason] || 0) + 1;
      c.pending = fault.name;
    } else {
      unexpected[reason] = (unexpected[reason] || 0) + 1;
      const b = bucketOf(Date.now());
      unexpectedByTime[b] = (unexpectedByTime[b] || 0) + 1;
    }
  });
  socket.on("connect_error", (err) => {
    const key = `${fault ? fault.name : "no fault"}: ${err.message}`;
    connectErrorMessages[key] = (connectErrorMessages[key] || 0) + 1;
  });
  socket.on("message_created", (event) => {
    if (event.channel_id !== channel) return;
    c.received.set(event.seq, (c.received.get(event.seq) || 0) + 1);
    c.order.push(event.seq);
  });
  clients.push(c);
}

if (rate > 0) {
  // rate clients a second, in steps of 100 ms
  let next = 0;
  const step = Math.max(1, Math.round(rate / 10));
  const timer = setInterval(() => {
    for (let k = 0; k < step && next < clientsWanted; k++) startClient(offset + next++);
    if (next >= clientsWanted) clearInterval(timer);
  }, 100);
} else {
  for (let i = 0; i < clientsWanted; i++) startClient(offset + i);
}

// forgetStaleCookies works around engine.io-client 6.6 in Node: its
// websocket transport appends the cookie jar's cookies to extraHeaders.cookie
// in place, so that after a reconnection the upgrade carries the old sticky
// cookie (pointing at a replica that is gone) before the new one, and a
// load balancer that reads the first one sends the upgrade to another
// replica ("Session ID unknown": the client silently stays on polling).
// Browsers keep one cookie per name; so does a client that starts each
// connection without the appended ones.
function forgetStaleCookies(socket, extraHeaders) {
  socket.io.on("reconnect_attempt", () => delete extraHeaders.cookie);
}

function onWebsocket(c) {
  return c.socket.connected && c.socket.io.engine && c.socket.io.engine.transport.name === "websocket";
}

// checkRecovered: a client a fault disconnected is back once subscribed on websocket.
function checkRecovered(c) {
  if (!c.pending || c.subscribedAt === null || !onWebsocket(c)) return;
  const f = faults[c.pending];
  f.recovered.push(Date.now() - f.started);
  c.pending = null;
}

function status() {
  const s = { type: "status", clients: clients.length, started: clients.length, wanted: clientsWanted, connected: 0, websocket: 0, subscribed: 0, reconnects: 0, pendingRecovery: 0 };
  for (const c of clients) {
    if (c.socket.connected) s.connected++;
    if (onWebsocket(c)) s.websocket++;
    if (c.subscribedAt !== null) s.subscribed++;
    if (c.pending) s.pendingRecovery++;
    s.reconnects += Math.max(0, c.connects - 1);
  }
  s.unexpectedDisconnects = Object.values(unexpected).reduce((a, b) => a + b, 0);
  s.unexpectedReasons = unexpected;
  s.connectErrorMessages = connectErrorMessages;
  s.unexpectedByTime = unexpectedByTime;
  s.upgradeErrors = upgradeErrors;
  s.lagByTime = lagByTime;
  s.faults = {};
  for (const [name, f] of Object.entries(faults)) {
    const r = [...f.recovered].sort((a, b) => a - b);
    const q = (p) => (r.length ? r[Math.min(r.length - 1, Math.floor(p * r.length))] : 0);
    s.faults[name] = {
      affected: f.affected, recovered: r.length, p50: q(0.5), p90: q(0.9), max: r.length ? r[r.length - 1] : 0,
      disconnectReasons: f.disconnectReasons, gapMissed: 0, gapReceived: 0, recoveredMs: r,
    };
  }
  return s;
}

// evaluate counts each listed event for each client of its channel.
function evaluate(file) {
  const events = JSON.parse(fs.readFileSync(file, "utf8"));
  const byChannel = new Map();
  for (const ev of events) {
    if (!byChannel.has(ev.channel)) byChannel.set(ev.channel, []);
    byChannel.get(ev.channel).push(ev);
  }
  const s = status();
  // A fault's window: from 1 s before it to 1 s after its last affected
  // client was back (at least 2 s): the deliveries in gaps are told per fault.
  const windows = Object.entries(faults).map(([name, f]) => {
    const last = f.recovered.length ? Math.max(...f.recovered) : 0;
    return { name, from: f.started - 1000, to: f.started + Math.max(last, 1000) + 1000 };
  });
  const gapOf = (t) => (windows.find((w) => t >= w.from && t <= w.to) || { name: "outside faults" }).name;
  s.gapsOutsideFaults = { gapMissed: 0, gapReceived: 0 };
  Object.assign(s, { type: "evaluation", counted: 0, receivedOnce: 0, lost: 0, duplicated: 0, outOfOrder: 0, gapEvents: 0, gapReceived: 0, gapMissed: 0, gapDuplicated: 0, clientsWithLoss: 0 });
  for (const c of clients) {
    const intervals = c.subscribedAt !== null ? [...c.intervals, [c.subscribedAt, Infinity]] : c.intervals;
    const countedSeqs = new Set();
    let lostHere = 0;
    for (const ev of byChannel.get(c.channel) || []) {
      const n = c.received.get(ev.seq) || 0;
      const connected = intervals.some(([from, to]) => from <= ev.t - 1000 && to >= ev.t + 1000);
      if (ev.reached && connected) {
        s.counted++;
        countedSeqs.add(ev.seq);
        if (n === 0) (s.lost++, lostHere++);
        else if (n === 1) s.receivedOnce++;
        else s.duplicated++;
      } else {
        s.gapEvents++;
        if (n === 0) s.gapMissed++;
        else if (n === 1) s.gapReceived++;
        else s.gapDuplicated++;
        const where = s.faults[gapOf(ev.t)] || s.gapsOutsideFaults;
        if (n === 0) where.gapMissed++;
        else where.gapReceived++;
      }
    }
    if (lostHere) s.clientsWithLoss++;
    const seen = c.order.filter((seq) => countedSeqs.has(seq));
    for (let k = 1; k < seen.length; k++) if (seen[k] < seen[k - 1]) s.outOfOrder++;
  }
  return s;
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => {
  const [cmd, arg] = line.trim().split(/\s+/);
  if (cmd === "status") emit(status());
  else if (cmd === "fault" && arg === "-") {
    fault = null; // calm again: later disconnects are unexpected
    emit({ type: "marked" });
  } else if (cmd === "fault") {
    fault = { name: arg, started: Date.now() };
    faults[arg] = { started: fault.started, affected: 0, recovered: [], disconnectReasons: {} };
    emit({ type: "marked" });
  } else if (cmd === "evaluate") emit(evaluate(arg));
  else if (cmd === "close") {
    const final = status();
    for (const c of clients) c.socket.close();
    final.type = "final";
    emit(final);
    setTimeout(() => process.exit(0), 200);
  }
});
rl.on("close", () => process.exit(0));
