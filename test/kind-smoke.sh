#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Smoke test on a real (local) Kubernetes: build the image, create a kind cluster, load
# the image into it, apply k8s/overlays/kind, wait for the Deployments, then poll the
# stats API until the servers report every connection the clients were told to open.
# On failure it prints pod logs, descriptions and events. Bounded in time throughout.
#
# Needs docker, kind and kubectl (and python3 to read the JSON). Run from anywhere:
#   test/kind-smoke.sh
# Environment:
#   KIND_CLUSTER   cluster name (default ringhold-smoke)
#   KEEP_CLUSTER=1 leave the cluster running afterwards (default: delete it if this
#                  script created it)
#   SKIP_BUILD=1   use an existing ringhold:dev image
#   SMOKE_TIMEOUT  seconds allowed for the connections to show up (default 180)

set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cluster=${KIND_CLUSTER:-ringhold-smoke}
# Must match `images:` in k8s/overlays/kind/kustomization.yaml.
image=ringhold:dev
ns=ringhold
overlay="$repo/k8s/overlays/kind"
smoke_timeout=${SMOKE_TIMEOUT:-180}
ctx="kind-$cluster"
created=0

for tool in docker kind kubectl python3; do
	command -v "$tool" >/dev/null || { echo "kind-smoke: $tool not found" >&2; exit 1; }
done

k() { kubectl --context "$ctx" -n "$ns" "$@"; }

dump() {
	echo "==== diagnostics"
	k get all -o wide || true
	echo "---- events"
	k get events --sort-by=.lastTimestamp || true
	echo "---- pods"
	k describe pods || true
	for pod in $(k get pods -o name 2>/dev/null); do
		echo "---- logs $pod"
		k logs "$pod" --all-containers --tail=200 || true
		k logs "$pod" --all-containers --tail=50 --previous 2>/dev/null || true
	done
}

finish() {
	local rc=$?
	trap - EXIT
	set +e
	[ "$rc" -ne 0 ] && dump
	if [ "$created" -eq 1 ] && [ "${KEEP_CLUSTER:-0}" != 1 ]; then
		timeout 120 kind delete cluster --name "$cluster"
	fi
	exit "$rc"
}
trap finish EXIT

step() { echo "==== $*"; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
	step "docker build -t $image"
	timeout 1200 docker build -t "$image" "$repo"
fi

if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
	step "kind create cluster --name $cluster"
	created=1
	timeout 300 kind create cluster --name "$cluster" --wait 180s
fi

step "kind load docker-image $image --name $cluster"
timeout 300 kind load docker-image "$image" --name "$cluster"

step "kubectl apply -k k8s/overlays/kind"
timeout 120 kubectl --context "$ctx" apply -k "$overlay"

step "waiting for the Deployments"
for dep in tcp-server-stats tcp-server tcp-client; do
	k rollout status "deployment/$dep" --timeout=180s
done

replicas=$(k get deployment tcp-client -o jsonpath='{.spec.replicas}')
per_client=$(k get deployment tcp-client \
	-o jsonpath='{.spec.template.spec.containers[0].env[?(@.name=="CLIENTCOUNT")].value}')
expected=$((replicas * per_client))
step "polling the stats API for $expected connections ($replicas clients x $per_client)"

# Servers' rows: role "server" or, without a role, a tcp-server-* pod name; counts in
# "connections" or the original tool's "clients"; keys in any case.
held_check() { # FILE EXPECTED
	python3 - "$1" "$2" <<'EOF'
import json, sys
expected = int(sys.argv[2])
doc = json.load(open(sys.argv[1]))
rows = doc if isinstance(doc, list) else next(
    (v for v in doc.values() if isinstance(v, list)), [])
rows = [r for r in rows if isinstance(r, dict)]
def get(row, *keys):
    low = {k.lower(): v for k, v in row.items()}
    return next((low[k.lower()] for k in keys if k.lower() in low), None)
def is_server(r):
    role = get(r, "role")
    name = str(get(r, "name", "machineName") or "")
    if role:
        return role == "server"
    return name.startswith("tcp-server-") and not name.startswith("tcp-server-stats")
held = sum(int(get(r, "connections", "clients") or 0) for r in rows if is_server(r))
backends = sorted({str(get(r, "backend")) for r in rows})
print(f"servers hold {held} / {expected} connections; backends {backends}")
sys.exit(0 if held == expected else 1)
EOF
}

# Through the API server's service proxy: no port-forward, no port on this machine.
stats_path="/api/v1/namespaces/$ns/services/tcp-server-stats:http/proxy/api/ServerStatistics"
answer=$(mktemp)
deadline=$((SECONDS + smoke_timeout))
while :; do
	timeout 20 kubectl --context "$ctx" get --raw "$stats_path" >"$answer" 2>/dev/null || true
	if held_check "$answer" "$expected"; then
		step "PASS"
		rm -f "$answer"
		exit 0
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		echo "last answer: $(cat "$answer")"
		rm -f "$answer"
		echo "kind-smoke: stats never showed $expected connections within ${smoke_timeout}s" >&2
		exit 1
	fi
	sleep 5
done
