// A thin bridge from pytest to the system Chromium: one JSON command per stdin line, one JSON
// answer per stdout line ({id, ok, result|error}). The test keeps every assertion; this only
// drives pages ("phones"), each in its own browser context, like separate devices.
//
// Network: only hosts in `allowHosts` (all resolving to 127.0.0.1) may be reached. Chromium's
// resolver maps every other name nowhere, and a route handler aborts and records any request
// to another host, so the test can assert that nothing came from the internet. Playwright
// gives every launch a fresh temporary profile (--user-data-dir) and deletes it on close.
import { createInterface } from "node:readline";
import { chromium } from "playwright-core";

const STEP_TIMEOUT_MS = 15000;

let browser = null;
let allowHosts = new Set(["127.0.0.1"]);
const blocked = [];
const pages = new Map(); // name -> {context, page, console, errors, ws}

function allowed(url) {
  const { protocol, hostname } = new URL(url);
  if (protocol === "data:" || protocol === "blob:") return true;
  return allowHosts.has(hostname);
}

const commands = {
  // `audible`: keep the sound (playwright mutes by default); with PULSE_SINK in the driver's
  // environment the browser plays into that PulseAudio sink (tests/heard.py records it).
  async launch({ executablePath = "/usr/bin/chromium", hosts = ["127.0.0.1"], extraArgs = [], audible = false }) {
    allowHosts = new Set(hosts);
    // Names are aliases of 127.0.0.1; IP addresses (a network namespace's) are reached as is.
    const isIp = (h) => /^\d+\.\d+\.\d+\.\d+$/.test(h);
    const aliases = hosts.filter((h) => !isIp(h)).map((h) => `MAP ${h} 127.0.0.1`);
    const direct = ["127.0.0.1", ...hosts.filter((h) => isIp(h) && h !== "127.0.0.1")];
    const rules = [...aliases, "MAP * ~NOTFOUND", ...direct.map((h) => `EXCLUDE ${h}`)].join(", ");
    browser = await chromium.launch({
      executablePath,
      headless: true,
      timeout: 30000,
      ignoreDefaultArgs: audible ? ["--mute-audio"] : [],
      args: [
        "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-default-apps", "--disable-extensions", "--no-pings",
        `--host-resolver-rules=${rules}`,
        ...extraArgs,
      ],
    });
    return { version: browser.version() };
  },

  async open({ page: name, url, width = 390, height = 844, userAgent, reducedMotion }) {
    const context = await browser.newContext({
      viewport: { width, height },
      deviceScaleFactor: 2,
      isMobile: false,
      hasTouch: true,
      userAgent,
      reducedMotion, // "reduce": no CSS animation burning a core per page (slow machines)
      serviceWorkers: "block",
    });
    const entry = { context, page: null, console: [], errors: [], ws: [] };
    await context.route("**/*", (route) => {
      const requestUrl = route.request().url();
      if (allowed(requestUrl)) return route.continue();
      blocked.push(requestUrl);
      return route.abort("blockedbyclient");
    });
    const page = await context.newPage();
    entry.page = page;
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on("console", (msg) => {
      entry.console.push(`${msg.type()}: ${msg.text()}`);
      if (entry.console.length > 300) entry.console.shift();
    });
    page.on("pageerror", (err) => entry.errors.push(String(err)));
    page.on("websocket", (ws) => {
      const record = { url: ws.url(), bytesIn: 0, framesIn: 0, opened: Date.now(), closed: null };
      if (!allowed(ws.url().replace(/^ws/, "http"))) blocked.push(ws.url());
      ws.on("framereceived", ({ payload }) => {
        if (typeof payload !== "string") {
          record.bytesIn += payload.length;
          record.framesIn += 1;
        }
      });
      ws.on("close", () => {
        record.closed = Date.now();
      });
      entry.ws.push(record);
    });
    pages.set(name, entry);
    // Chromium aborts a navigation, or one of the page's module scripts, with
    // ERR_NETWORK_CHANGED when an interface changes under it (a namespace's link coming up).
    // A person would just reload: we retry twice, until the player itself has started.
    for (let attempt = 0; ; attempt += 1) {
      try {
        await page.goto(url, { waitUntil: "load", timeout: STEP_TIMEOUT_MS });
        await page.waitForFunction(() => window.partyStream, null, { timeout: 10000 });
        break;
      } catch (err) {
        const changed = String(err).includes("ERR_NETWORK_CHANGED") || String(err).includes("Timeout");
        if (attempt >= 2 || !changed) throw err;
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    }
    return { title: await page.title() };
  },

  async tap({ page: name, selector }) {
    await pages.get(name).page.tap(selector, { timeout: STEP_TIMEOUT_MS });
    return null;
  },

  async click({ page: name, selector }) {
    await pages.get(name).page.click(selector, { timeout: STEP_TIMEOUT_MS });
    return null;
  },

  async reload({ page: name }) {
    const { page } = pages.get(name);
    await page.reload({ waitUntil: "load", timeout: STEP_TIMEOUT_MS });
    await page.waitForFunction(() => window.partyStream, null, { timeout: 10000 });
    return null;
  },

  async eval({ page: name, expression }) {
    return pages.get(name).page.evaluate(expression);
  },

  async screenshot({ page: name, path }) {
    await pages.get(name).page.screenshot({ path, timeout: STEP_TIMEOUT_MS });
    return path;
  },

  async network({ page: name }) {
    const entry = pages.get(name);
    return { ws: entry.ws, errors: entry.errors };
  },

  // The page's main-thread time (CDP Performance metrics: TaskDuration, ScriptDuration, in
  // seconds) and the renderer's pid, for CPU cost measurements.
  async metrics({ page: name }) {
    const entry = pages.get(name);
    if (!entry.cdp) {
      entry.cdp = await entry.context.newCDPSession(entry.page);
      await entry.cdp.send("Performance.enable");
    }
    const { metrics } = await entry.cdp.send("Performance.getMetrics");
    return Object.fromEntries(metrics.map(({ name: key, value }) => [key, value]));
  },

  async logs({ page: name }) {
    return pages.get(name).console;
  },

  async close({ page: name }) {
    const entry = pages.get(name);
    pages.delete(name);
    await entry.context.close();
    return null;
  },

  async blocked() {
    return blocked;
  },

  async quit() {
    if (browser) await browser.close();
    browser = null;
    setTimeout(() => process.exit(0), 10);
    return null;
  },
};

function reply(message) {
  process.stdout.write(`${JSON.stringify(message)}\n`);
}

const lines = createInterface({ input: process.stdin });
lines.on("line", async (line) => {
  let request;
  try {
    request = JSON.parse(line);
  } catch {
    reply({ id: null, ok: false, error: `not JSON: ${line}` });
    return;
  }
  const handler = commands[request.cmd];
  try {
    if (!handler) throw new Error(`unknown command ${request.cmd}`);
    if (request.page !== undefined && request.cmd !== "open" && !pages.has(request.page)) {
      throw new Error(`no page named ${request.page}`);
    }
    reply({ id: request.id, ok: true, result: await handler(request) });
  } catch (err) {
    reply({ id: request.id, ok: false, error: String(err && err.stack ? err.stack : err) });
  }
});

// pytest gone (stdin closed): never leave a browser behind.
lines.on("close", async () => {
  try {
    if (browser) await browser.close();
  } finally {
    process.exit(0);
  }
});
