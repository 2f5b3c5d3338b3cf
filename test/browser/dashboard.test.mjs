// SPDX-License-Identifier: MIT
// The dashboard in a real browser: Debian's chromium, driven by
// playwright-core.  During a real run of tcp-server-stats the numbers on the
// page must match the API, change live as reports arrive, mark a silent
// reporter stale, and come back by themselves after the service restarts.
//
// usage: node dashboard.test.mjs STATS_EXE ARTIFACTS_DIR
// exit: 0 pass, 1 fail, 77 skip (no chromium, or npm ci not run here)
import { spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const FLAGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
  "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
];

function skip(why) {
  console.error("SKIP: " + why);
  process.exit(77);
}

function fail(why) {
  throw new Error(why);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function until(what, fn, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last === true) return;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  fail(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

class Stats {
  constructor(exe, port) {
    this.exe = exe;
    this.port = port;
    this.base = `http://127.0.0.1:${port}`;
  }

  async start() {
    this.proc = spawn(this.exe, ["--listen", `127.0.0.1:${this.port}`, "--expire", "4"],
      { stdio: ["ignore", "inherit", "inherit"] });
    this.exited = new Promise((r) => this.proc.on("exit", r));
    await until("the service to answer", async () => (await fetch(this.base + "/healthz")).ok, 5000);
  }

  async stop() {
    if (this.proc.exitCode !== null) return;
    this.proc.kill("SIGTERM");
    await this.exited;
  }

  async report(body) {
    const r = await fetch(this.base + "/api/ServerStatistics", {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    if (r.status !== 200) fail(`report ${JSON.stringify(body)} answered ${r.status}`);
  }

  async state() {
    return (await fetch(this.base + "/api/state")).json();
  }
}

// What the page shows: the totals and the row per reporter.
async function pageNumbers(page) {
  return page.evaluate(() => {
    const v = (id) => Number(document.getElementById(id).dataset.value);
    const rows = {};
    for (const tr of document.querySelectorAll("#rows tr[data-name]")) {
      rows[tr.dataset.role + "/" + tr.dataset.name] = {
        connections: Number(tr.querySelector("td.conns").dataset.value),
        stale: tr.classList.contains("stale"),
        shown: tr.querySelector("td.conns").textContent,
      };
    }
    return {
      connections: v("total-connections"), servers: v("total-servers"),
      clientConnections: v("total-client-connections"), clients: v("total-clients"),
      stale: v("total-stale"), rows, live: document.getElementById("live").textContent,
    };
  });
}

function apiNumbers(state) {
  const rows = {};
  for (const r of state.reporters) rows[r.role + "/" + r.name] = { connections: r.connections, stale: r.stale };
  const t = state.totals;
  return { connections: t.connections, servers: t.servers, clientConnections: t.clientConnections,
           clients: t.clients, stale: t.stale, rows };
}

function matches(shown, api) {
  for (const k of ["connections", "servers", "clientConnections", "clients", "stale"])
    if (shown[k] !== api[k]) return `${k}: page ${shown[k]}, api ${api[k]}`;
  const a = Object.keys(api.rows).sort(), b = Object.keys(shown.rows).sort();
  if (JSON.stringify(a) !== JSON.stringify(b)) return `rows: page ${b}, api ${a}`;
  for (const k of a) {
    if (shown.rows[k].connections !== api.rows[k].connections ||
        shown.rows[k].stale !== api.rows[k].stale)
      return `row ${k}: page ${JSON.stringify(shown.rows[k])}, api ${JSON.stringify(api.rows[k])}`;
  }
  return true;
}

async function main() {
  const [exe, artifacts] = process.argv.slice(2);
  if (!exe || !artifacts) fail("usage: node dashboard.test.mjs STATS_EXE ARTIFACTS_DIR");
  if (!fs.existsSync(exe)) skip(`${exe} is not built`);
  if (!fs.existsSync(CHROMIUM)) skip(`${CHROMIUM} is missing (apt-get install chromium)`);
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch {
    skip("playwright-core is missing (npm ci in test/browser)");
  }
  fs.mkdirSync(artifacts, { recursive: true });

  const stats = new Stats(exe, await freePort());
  await stats.start();
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "ringhold-chromium-"));
  let context, ticker;
  try {
    // A persistent context is how playwright takes a fresh --user-data-dir.
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: FLAGS,
      viewport: { width: 1400, height: 900 },
    });
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));

    await stats.report({ role: "server", name: "srv-a", connections: 100, backend: "io_uring" });
    await stats.report({ role: "server", name: "srv-b", connections: 50, backend: "epoll" });
    await stats.report({ role: "client", name: "cli", connections: 150, target: 200,
                         latencyUs: { p50: 80, p90: 100, p99: 900, max: 2000 },
                         failures: { ECONNREFUSED: 2 } });
    await page.goto(stats.base + "/", { waitUntil: "load" });
    await until("the page to go live", async () => (await pageNumbers(page)).live === "live", 10000);

    // Keep srv-a and cli reporting; srv-b falls silent later.
    let srvA = 100;
    let silentB = false;
    ticker = setInterval(() => {
      stats.report({ role: "server", name: "srv-a", connections: srvA }).catch(() => {});
      stats.report({ role: "client", name: "cli", connections: 150 }).catch(() => {});
      if (!silentB) stats.report({ role: "server", name: "srv-b", connections: 50 }).catch(() => {});
    }, 500);

    const sameAsApi = async () => matches(await pageNumbers(page), apiNumbers(await stats.state()));
    await until("the page to match the API", sameAsApi, 5000);
    const first = await pageNumbers(page);
    if (first.connections !== 150 || first.clientConnections !== 150 || first.servers !== 2)
      fail(`first totals ${JSON.stringify(first)}`);
    if (first.rows["server/srv-a"].shown !== "100") fail(`srv-a shown as ${first.rows["server/srv-a"].shown}`);

    // Live: a new count shows without a reload.
    srvA = 4321;
    await stats.report({ role: "server", name: "srv-a", connections: srvA });
    await until("the page to show 4,371 held", async () => {
      const n = await pageNumbers(page);
      return n.connections === 4371 || n.connections;
    }, 5000);
    if ((await pageNumbers(page)).rows["server/srv-a"].shown !== "4,321") fail("srv-a not formatted as 4,321");
    await until("the page to match the API after the change", sameAsApi, 5000);

    // Stale: srv-b stops; after expire/2 it is marked and left out of the totals.
    silentB = true;
    await until("srv-b marked stale", async () => {
      const n = await pageNumbers(page);
      return (n.rows["server/srv-b"] && n.rows["server/srv-b"].stale && n.connections === 4321) || n;
    }, 6000);
    await until("the page to match the API with a stale row", sameAsApi, 5000);
    await page.screenshot({ path: path.join(artifacts, "dashboard.png"), fullPage: true });

    // Then gone.
    await until("srv-b gone", async () => !(await pageNumbers(page)).rows["server/srv-b"], 8000);

    // The chart has drawn something.
    const painted = await page.evaluate(() => {
      const c = document.getElementById("chart");
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
      return n;
    });
    if (painted < 500) fail(`the chart is nearly empty (${painted} painted pixels)`);

    // Restart: the page reconnects by itself and shows the new service's data.
    await stats.stop();
    await until("the page to notice", async () => (await pageNumbers(page)).live !== "live", 15000);
    await stats.start();
    srvA = 777;
    await until("the page to reconnect and show 777 + 150",
      async () => {
        const n = await pageNumbers(page);
        return (n.live === "live" && n.connections === 777) || n;
      }, 20000);
    await until("the page to match the API after the restart", sameAsApi, 5000);
    await page.screenshot({ path: path.join(artifacts, "dashboard-after-restart.png"), fullPage: true });
    if (errors.length) fail("page errors: " + errors.join("; "));
    console.error("dashboard matches the API, changes live, marks stale rows and reconnects");
  } finally {
    clearInterval(ticker);
    if (context) await context.close();
    await stats.stop();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

main().then(() => process.exit(0), (e) => {
  console.error("FAIL: " + (e && e.stack ? e.stack : e));
  process.exit(1);
});
