// A small bridge from pytest to a real browser: Debian's Chromium driven by
// playwright-core (from js/node_modules). It reads one JSON command per line
// on stdin and answers one JSON line per command on stdout:
//   -> {"id": 1, "cmd": "goto", "page": "tracker", "url": "http://..."}
//   <- {"id": 1, "ok": true, "value": ...}  or  {"id": 1, "ok": false, "error": "..."}
// Pages are named; each has a browser context of its own (its own
// sessionStorage), like two tabs of two people. The browser is closed when
// stdin closes, so a crashed pytest leaves no Chromium behind.
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const require = createRequire(join(here, "..", "..", "js", "package.json"));
const { chromium } = require("playwright-core");

const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"],
});
const pages = new Map(); // name -> {context, page, logs}
const MAX_LOG_LINES = 200;

async function page(name) {
  if (!pages.has(name)) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const p = await context.newPage();
    const logs = [];
    const log = (line) => {
      logs.push(line);
      if (logs.length > MAX_LOG_LINES) logs.shift();
    };
    p.on("console", (m) => log(`${m.type()}: ${m.text()}`));
    p.on("pageerror", (e) => log(`pageerror: ${e.message}`));
    pages.set(name, { context, page: p, logs });
  }
  return pages.get(name).page;
}

/** One Chrome DevTools Protocol session per page, performance metrics on from the start. */
async function cdpOf(name) {
  const entry = pages.get(name) ?? (await page(name), pages.get(name));
  if (!entry.cdp) {
    entry.cdp = await entry.context.newCDPSession(entry.page);
    await entry.cdp.send("Performance.enable");
  }
  return entry.cdp;
}

const commands = {
  goto: async ({ page: name, url }) => {
    await (await page(name)).goto(url, { waitUntil: "load" });
  },
  click: async ({ page: name, selector }) => (await page(name)).click(selector),
  type: async ({ page: name, selector, text }) => (await page(name)).locator(selector).pressSequentially(text, { delay: 20 }),
  eval: async ({ page: name, expr }) => (await page(name)).evaluate(expr),
  // Poll `expr` until truthy; answers the milliseconds it took.
  waitFor: async ({ page: name, expr, timeoutMs = 10_000 }) => {
    const started = Date.now();
    await (await page(name)).waitForFunction(expr, null, { timeout: timeoutMs, polling: 20 });
    return Date.now() - started;
  },
  // Click on one page, then time how long until `expr` holds on another.
  clickThenWait: async ({ page: name, selector, waitPage, expr, timeoutMs = 10_000 }) => {
    const target = await page(waitPage);
    await (await page(name)).click(selector);
    const started = Date.now();
    await target.waitForFunction(expr, null, { timeout: timeoutMs, polling: 10 });
    return Date.now() - started;
  },
  screenshot: async ({ page: name, path }) => {
    await (await page(name)).screenshot({ path, fullPage: true });
  },
  logs: async ({ page: name }) => pages.get(name)?.logs ?? [],
  // Raw mouse clicks at (x, y), `count` of them `intervalMs` apart: input
  // events as the user's, with none of playwright's actionability checks
  // (which run script in the page and so would wait out a busy main thread).
  clickAt: async ({ page: name, x, y, count = 1, intervalMs = 0 }) => {
    const p = await page(name);
    for (let i = 0; i < count; i++) {
      await p.mouse.click(x, y);
      if (intervalMs) await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  },
  // Chrome DevTools' network throttling (0 kbps: off), which also applies to WebSockets.
  throttle: async ({ page: name, kbps = 0, latencyMs = 0 }) => {
    const cdp = await cdpOf(name);
    const rate = kbps > 0 ? (kbps * 1000) / 8 : -1;
    await cdp.send("Network.enable");
    await cdp.send("Network.emulateNetworkConditions", {
      offline: false,
      latency: latencyMs,
      downloadThroughput: rate,
      uploadThroughput: rate,
    });
  },
  // Playwright's fake clock in the page (installed before navigation; time
  // flows on by itself), and a jump of `ms` with every timer due in it run.
  clockInstall: async ({ page: name }) => (await page(name)).clock.install(),
  clockRunFor: async ({ page: name, ms }) => (await page(name)).clock.runFor(ms),
  // Chrome's performance metrics for the page (TaskDuration, ScriptDuration, JSHeapUsedSize, ...; seconds and bytes).
  metrics: async ({ page: name }) => {
    const cdp = await cdpOf(name);
    const { metrics } = await cdp.send("Performance.getMetrics");
    return Object.fromEntries(metrics.map((m) => [m.name, m.value]));
  },
  closePage: async ({ page: name }) => {
    await pages.get(name)?.context.close();
    pages.delete(name);
  },
  version: async () => browser.version(),
};

const out = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
out({ id: 0, ok: true, value: browser.version() });
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  const request = JSON.parse(line);
  try {
    const value = await commands[request.cmd](request);
    out({ id: request.id, ok: true, value: value === undefined ? null : value });
  } catch (err) {
    out({ id: request.id, ok: false, error: String(err && err.stack ? err.stack : err) });
  }
}
await browser.close();
