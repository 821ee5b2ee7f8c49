// A minimal Raven channel view: connects like Raven/Frappe's frontend
// (origin + /socket.io/, the site's namespace, reconnectionAttempts: 3),
// shows messages as message_created arrives, shows the transport in use,
// and when the connection fails shows the guard's error id and hint instead
// of a vague banner.
"use strict";

const channelID = "general";
const $ = (id) => document.getElementById(id);
const page = { site: null, attempts: 0 };

async function main() {
  page.site = (await (await fetch("/api/method/raven.get_site")).json()).message;
  const socket = io(`${window.location.origin}/${page.site}`, {
    path: "/socket.io/",
    transports: ["polling", "websocket"],
    withCredentials: true,
    reconnectionAttempts: 3,
  });
  window.ravenSocket = socket; // for the browser test and the curious

  socket.io.on("open", () => {
    showTransport(socket.io.engine.transport.name);
    socket.io.engine.on("upgrade", (t) => showTransport(t.name));
  });
  socket.on("connect", () => {
    setState("connected", "connected");
    $("problem").hidden = true;
    showTransport(socket.io.engine.transport.name);
    socket.emit("doc_subscribe", "Raven Channel", channelID);
    refreshGuardInfo();
  });
  socket.on("disconnect", (reason) => setState("connecting", `disconnected (${reason})`));
  socket.on("connect_error", (err) => explainFailure(err, socket));
  socket.io.on("reconnect_failed", () => setState("failed", "failed"));
  socket.on("message_created", (event) => {
    if (event.channel_id !== channelID) return;
    addMessage(event, socket.io.engine.transport.name);
  });

  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const text = $("text").value.trim();
    if (!text) return;
    $("text").value = "";
    await fetch("/api/method/raven.api.send_message", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ channel_id: channelID, text }),
    });
  });
}

function setState(state, text) {
  $("status").dataset.state = state;
  $("state").textContent = text;
}

function showTransport(name) {
  $("transport").textContent = name;
  $("status").dataset.transport = name;
}

function addMessage(event, transport) {
  const li = document.createElement("li");
  li.dataset.messageId = event.message_id;
  const sender = document.createElement("span");
  sender.className = "sender";
  sender.textContent = event.sender;
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = (event.message_details && event.message_details.text) || "";
  const via = document.createElement("span");
  via.className = "via";
  via.textContent = `via ${transport}`;
  li.append(sender, text, via);
  $("messages").append(li);
}

// Known refusals by Frappe's realtime server (a CONNECT_ERROR, not HTTP).
const frappeRefusals = {
  "Invalid origin": "Frappe compares the hostnames of Origin and Host. Browsers send no Origin on same-origin polling requests: enable setMissingOrigin on the guard and pin Host() on its router (or set Origin in the proxy, only when absent and only for this site's own pages).",
  "Invalid namespace": "The namespace must be the site name: set X-Frappe-Site-Name in the proxy (Traefik headers middleware) or use the site's hostname.",
  "No cookie transmitted.": "The session cookie did not reach the realtime server: open the page through the same host as /socket.io.",
  "No authentication method used. Use cookie or authorization header.": "A cookie arrived but without the session (sid): log in again.",
};
// "Unauthorized: …": Frappe could not check the session by calling the Origin back.
const unauthorizedHint = "Frappe's realtime server calls <Origin>/api/method/frappe.realtime.get_user_info to check the session: that URL must be reachable from it (or set server_ip in Frappe's configuration).";

async function explainFailure(err, socket) {
  page.attempts++;
  setState(socket.active ? "connecting" : "failed", socket.active ? `retrying (${page.attempts})` : "failed");
  const problem = { title: "Realtime events are not working", cause: err.message, id: "—", detail: "—", hint: "—" };

  // Ask the same endpoint once more to read the guard's answer: its header
  // and JSON say what broke and how to fix it.
  try {
    const res = await fetch(`/socket.io/?EIO=4&transport=polling&t=diagnose${Date.now()}`, { credentials: "include" });
    const id = res.headers.get("X-Socketio-Guard-Error");
    if (id) {
      const body = await res.json();
      Object.assign(problem, { id, detail: body.guard.detail, hint: body.guard.hint, cause: `HTTP ${res.status} from the guard` });
    } else if (frappeRefusals[err.message] || err.message.startsWith("Unauthorized")) {
      const hint = frappeRefusals[err.message] || unauthorizedHint;
      Object.assign(problem, { id: "(refused by the Socket.IO server)", detail: err.message, hint });
    } else if (err.description) {
      problem.detail = `HTTP ${err.description}`;
    }
  } catch (probeErr) {
    problem.detail = String(probeErr);
  }
  $("problem-cause").textContent = problem.cause;
  $("problem-id").textContent = problem.id;
  $("problem-detail").textContent = problem.detail;
  $("problem-hint").textContent = problem.hint;
  $("problem").hidden = false;
  $("problem").dataset.guardError = problem.id;
}

async function refreshGuardInfo() {
  try {
    const res = await fetch("/socket.io/.guard");
    if (!res.ok || res.headers.get("Content-Type") !== "application/json") return;
    const info = await res.json();
    const repairs = Object.entries(info.counters.repairs).map(([k, v]) => `${k} ×${v}`).join(", ") || "none";
    $("guard-info").textContent = `guard ${info.middleware}: ${info.counters.engineIORequests} Engine.IO requests, repairs: ${repairs}`;
  } catch {
    /* inspection is optional */
  }
}

main();
