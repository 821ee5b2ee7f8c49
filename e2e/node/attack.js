// Drives the cross-site JSONP attack of the Security section in a real
// headless Chromium (Debian's chromium through playwright-core): the victim
// opens the site's own page (which must connect over websocket and receive
// its message), then, in the same browser with the victim's cookies, opens
// the attacker's page on a sibling host, which includes the Socket.IO
// handshake as a <script> (JSONP) and as an <img>. Host names such as
// app.example.test and evil.example.test are mapped to loopback.
//
// usage: node attack.js --victim URL [--victim URL …] --attack URL [--attack URL …]
//          [--timeout 20000]
// Reports JSON lines:
//   {"type":"victim","url":…,"ok":true,"transport":"websocket","message":"…"}
//   {"type":"attack","url":…,"leaked":"<the handshake the page read>"|null,"blocked":true|false}
//   {"type":"done"}
"use strict";

const { chromium } = require("playwright-core");

const opts = { victim: [], attack: [] };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const key = argv[i].replace(/^--/, "");
  if (Array.isArray(opts[key])) opts[key].push(argv[i + 1]);
  else opts[key] = argv[i + 1];
}
const timeout = Number(opts.timeout || 20000);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.SOCKETIOGUARD_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
      "--disable-component-update", "--disable-sync",
      // Every *.example.test name is this machine; nothing leaves loopback.
      "--host-resolver-rules=MAP *.example.test 127.0.0.1",
    ],
  });
  try {
    // One browser profile: the victim's cookies are there when the attacker's page loads.
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    for (const url of opts.victim) {
      const page = await context.newPage();
      const result = { type: "victim", url, ok: false };
      try {
        await page.goto(url, { waitUntil: "load", timeout });
        await page.waitForFunction(
          () => document.getElementById("status").dataset.state === "connected" && document.getElementById("transport").textContent === "websocket",
          null,
          { timeout },
        );
        result.transport = await page.textContent("#transport");
        const text = `victim message ${Date.now()}`;
        await page.fill("#text", text);
        await page.click("button[type=submit]");
        await page.waitForFunction((t) => [...document.querySelectorAll("#messages .text")].some((el) => el.textContent === t), text, { timeout });
        result.message = text;
        result.ok = true;
      } catch (err) {
        result.error = String(err.message || err).split("\n")[0];
        result.status = await page.textContent("#status").catch(() => null);
      }
      emit(result);
      await page.close();
    }
    for (const url of opts.attack) {
      const page = await context.newPage();
      const result = { type: "attack", url, leaked: null, blocked: false };
      try {
        await page.goto(url, { waitUntil: "load", timeout });
        await page.waitForFunction(() => window.__result !== null, null, { timeout });
        const r = await page.evaluate(() => window.__result);
        result.leaked = r.leaked || null;
        result.blocked = !!r.blocked;
      } catch (err) {
        result.error = String(err.message || err).split("\n")[0];
      }
      emit(result);
      await page.close();
    }
  } finally {
    await browser.close();
  }
  emit({ type: "done" });
})();
