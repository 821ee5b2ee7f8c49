// Drives the demo's Raven-like page in a real headless Chromium (Debian's
// chromium, through playwright-core) as a user would, reporting JSON lines:
//   {"type":"connected","transport":"websocket"}   the page says it is connected
//   {"type":"message","text":…,"via":…}             the sent message appeared without reload
//   {"type":"problem","id":…,"hint":…}              the page shows the guard's explanation
//   {"type":"result",…}                             last line
//
// usage: node browser.js --url http://127.0.0.1:8005/ [--expect connected|problem]
//          [--transport websocket] [--message "text"] [--screenshot out.png] [--timeout 20000]
"use strict";

const { chromium } = require("playwright-core");

const opts = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) opts[argv[i].replace(/^--/, "")] = argv[i + 1];
const timeout = Number(opts.timeout || 20000);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

(async () => {
  const result = { type: "result", ok: false, transport: null, messages: [], problem: null, reloaded: false, consoleErrors: [] };
  const browser = await chromium.launch({
    executablePath: process.env.SOCKETIOGUARD_CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // As this machine's probe runs it: no sandbox as root, no background
    // networking (the network is closed), a fresh profile per launch.
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 560 } });
    page.on("console", (m) => m.type() === "error" && result.consoleErrors.push(m.text()));
    await page.goto(opts.url, { waitUntil: "load", timeout });
    await page.evaluate(() => (window.__sameDocument = true));

    if ((opts.expect || "connected") === "connected") {
      const transport = opts.transport || "websocket";
      await page.waitForFunction(
        (t) => document.getElementById("status").dataset.state === "connected" && document.getElementById("transport").textContent === t,
        transport,
        { timeout },
      );
      result.transport = await page.textContent("#transport");
      emit({ type: "connected", transport: result.transport });

      const text = opts.message || `hello from chromium ${Date.now()}`;
      await page.fill("#text", text);
      await page.click("button[type=submit]");
      await page.waitForFunction((t) => [...document.querySelectorAll("#messages .text")].some((el) => el.textContent === t), text, { timeout });
      result.messages = await page.$$eval("#messages li", (lis) =>
        lis.map((li) => ({ text: li.querySelector(".text").textContent, via: li.querySelector(".via").textContent })),
      );
      emit({ type: "message", ...result.messages[result.messages.length - 1] });
      result.ok = true;
    } else {
      await page.waitForFunction(() => !document.getElementById("problem").hidden && document.getElementById("problem-hint").textContent !== "—", null, { timeout });
      result.problem = await page.evaluate(() => ({
        id: document.getElementById("problem-id").textContent,
        cause: document.getElementById("problem-cause").textContent,
        detail: document.getElementById("problem-detail").textContent,
        hint: document.getElementById("problem-hint").textContent,
      }));
      emit({ type: "problem", ...result.problem });
      result.ok = true;
    }
    result.reloaded = !(await page.evaluate(() => window.__sameDocument === true));
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot });
  } catch (err) {
    result.error = String(err.message || err).split("\n")[0];
  } finally {
    await browser.close();
  }
  emit(result);
})();
