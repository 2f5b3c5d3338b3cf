#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# A local stand-in for the kind cluster: every pod of the rendered overlay runs in its
# own network namespace, as on a node, with the command, sysctls and environment of its
# Deployment (downward API filled in), the pod name as its hostname, and the Service
# names resolving through /etc/netns/<ns>/hosts. All namespaces hang off one bridge in a
# namespace of their own: nothing is added to the host's network, nothing leaves it.
# Passes when the stats API shows the server holding replicas x CLIENTCOUNT connections
# and every client reporting its share, as test/kind-smoke.sh expects on a real cluster.
#
#   sudo test/k8s/netns-standin.sh --overlay k8s/overlays/kind --node node \
#        --tcp-server build/server/tcp-server --tcp-client build/client/tcp-client \
#        --tcp-server-stats build/stats/tcp-server-stats [--cache-dir DIR] [--keep-logs]
#
# Exit: 0 pass, 1 fail, 77 skip (not root, or no ip netns).

set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

overlay=k8s/overlays/kind
node_bin=node
cache_dir=
keep_logs=0
declare -A bin=()
while [ $# -gt 0 ]; do
	case "$1" in
	--overlay) overlay=$2; shift 2 ;;
	--node) node_bin=$2; shift 2 ;;
	--cache-dir) cache_dir=$2; shift 2 ;;
	--tcp-server|--tcp-client|--tcp-server-stats) bin[${1#--}]=$2; shift 2 ;;
	--keep-logs) keep_logs=1; shift ;;
	*) echo "unknown argument: $1" >&2; exit 1 ;;
	esac
done

# Wall-clock bound for the whole run, whatever the programs do.
readonly budget_s=${STANDIN_TIMEOUT:-90}
readonly deadline=$((SECONDS + budget_s))

skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "needs root for ip netns"
command -v ip >/dev/null || skip "ip (iproute2) not found"
command -v unshare >/dev/null || skip "unshare (util-linux) not found"
command -v python3 >/dev/null || skip "python3 not found"
for p in tcp-server tcp-client tcp-server-stats; do
	[ -n "${bin[$p]:-}" ] || fail "--$p not given"
	[ -x "${bin[$p]}" ] || fail "$p not built: ${bin[$p]}"
	bin[$p]=$(cd "$(dirname "${bin[$p]}")" && pwd)/$(basename "${bin[$p]}")
done

tag="rh$$"
sw="${tag}-sw"
namespaces=()
pids=()
logdir=$(mktemp -d "${TMPDIR:-/tmp}/ringhold-standin.XXXXXX")

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	set +e
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do
		for _ in 1 2 3 4 5 6 7 8 9 10; do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.2
		done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
		for f in "$logdir"/*.log; do
			[ -e "$f" ] || continue
			echo "---- $(basename "$f") (last 40 lines)"
			tail -n 40 "$f"
		done
	fi
	for ns in "${namespaces[@]}"; do
		# Anything still running inside a namespace this script made is ours.
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
		rm -rf "/etc/netns/$ns"
	done
	if [ "$keep_logs" -eq 1 ]; then
		echo "logs kept in $logdir"
	else
		rm -rf "$logdir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# ---- what the manifests say ------------------------------------------------------

describe() {
	local args=(--cache-dir "${cache_dir:-$logdir}")
	(cd "$repo" && "$node_bin" "$here/k8s-check.mjs" pod "$overlay" "$1" "${args[@]}")
}

declare -A replicas=() program=() port=()
declare -A envs=() argvs=() sysctls=()
for dep in tcp-server-stats tcp-server tcp-client; do
	desc=$(describe "$dep") || fail "cannot describe Deployment $dep in $overlay"
	envs[$dep]=
	argvs[$dep]=
	sysctls[$dep]=
	while IFS= read -r line; do
		case "$line" in
		replicas=*) replicas[$dep]=${line#replicas=} ;;
		program=*) program[$dep]=${line#program=} ;;
		port=*) port[$dep]=${line#port=} ;;
		env=*) envs[$dep]+="${line#env=}"$'\n' ;;
		arg=*) argvs[$dep]+="${line#arg=}"$'\n' ;;
		sysctl=*) sysctls[$dep]+="${line#sysctl=}"$'\n' ;;
		esac
	done <<<"$desc"
done

env_of() { # DEPLOYMENT KEY -> value from the manifest's env, or empty
	local line
	while IFS= read -r line; do
		[ "${line%%=*}" = "$2" ] && { echo "${line#*=}"; return; }
	done <<<"${envs[$1]}"
	return 0
}

clients=${replicas[tcp-client]}
per_client=$(env_of tcp-client CLIENTCOUNT)
stats_port=${port[tcp-server-stats]}
if [ -z "$clients" ] || [ -z "$per_client" ] || [ -z "$stats_port" ]; then
	fail "manifest lacks replicas, CLIENTCOUNT or the stats port"
fi
expected=$((clients * per_client))
echo "stand-in for $overlay: 1 stats, ${replicas[tcp-server]} server, $clients clients x $per_client = $expected connections"

# ---- the network: one bridge, one namespace per pod ------------------------------

subnet=10.251.0
ip netns add "$sw"
namespaces+=("$sw")
ip -n "$sw" link set lo up
ip -n "$sw" link add br0 type bridge
ip -n "$sw" link set br0 up

next_host=10
declare -A pod_ip=()
add_pod() { # NAME -> namespace with eth0 on the bridge, address in pod_ip[NAME]
	local name=$1 ns="${tag}-$2" addr="$subnet.$next_host"
	ip netns add "$ns"
	namespaces+=("$ns")
	ip -n "$sw" link add "p$next_host" type veth peer name eth0 netns "$ns"
	ip -n "$sw" link set "p$next_host" master br0 up
	ip -n "$ns" link set lo up
	ip -n "$ns" addr add "$addr/24" dev eth0
	ip -n "$ns" link set eth0 up
	pod_ip[$name]=$addr
	next_host=$((next_host + 1))
}

add_pod tcp-server-stats-standin-0 stats
add_pod tcp-server-standin-0 server
for ((i = 0; i < clients; i++)); do
	add_pod "tcp-client-standin-$i" "client$i"
done

# Cluster DNS for the Service names the manifests use (ip netns exec bind-mounts
# /etc/netns/<ns>/hosts over /etc/hosts). The headless tcp-server Service resolves to
# the pod, as it does in the cluster.
hosts_file() {
	local ip=${pod_ip[tcp-server-stats-standin-0]} sip=${pod_ip[tcp-server-standin-0]}
	printf '127.0.0.1 localhost\n'
	printf '%s tcp-server-stats tcp-server-stats.ringhold tcp-server-stats.ringhold.svc.cluster.local\n' "$ip"
	printf '%s tcp-server tcp-server.ringhold tcp-server.ringhold.svc.cluster.local\n' "$sip"
}
for ns in "${namespaces[@]}"; do
	[ "$ns" = "$sw" ] && continue
	mkdir -p "/etc/netns/$ns"
	hosts_file >"/etc/netns/$ns/hosts"
done

# ---- the pods --------------------------------------------------------------------

start_pod() { # DEPLOYMENT NSSUFFIX POD_NAME
	local dep=$1 ns="${tag}-$2" pod=$3 line
	local -a env_args=() argv=()
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		# Each pod gets its own name from the downward API, like the kubelet does.
		case "$line" in POD_NAME=*) line="POD_NAME=$pod" ;; esac
		env_args+=("$line")
	done <<<"${envs[$dep]}"
	while IFS= read -r line; do
		[ -n "$line" ] && argv+=("$line")
	done <<<"${argvs[$dep]}"
	while IFS= read -r line; do
		[ -n "$line" ] || continue
		# Pod sysctls are per network namespace: set them where the pod runs.
		# shellcheck disable=SC2016 # expanded by the inner sh
		ip netns exec "$ns" sh -c 'echo "$2" > "/proc/sys/$(echo "$1" | tr . /)"' \
			sh "${line%%=*}" "${line#*=}"
	done <<<"${sysctls[$dep]}"
	# Own UTS namespace: the hostname is the pod name, as in Kubernetes. Exactly the
	# manifest's environment (env -i), nothing inherited from this shell.
	# shellcheck disable=SC2016 # expanded by the inner sh
	ip netns exec "$ns" unshare --uts sh -c 'hostname "$1"; shift; exec env -i "$@"' \
		sh "$pod" "${env_args[@]}" "${bin[${program[$dep]}]}" "${argv[@]}" \
		>"$logdir/$pod.log" 2>&1 &
	pids+=("$!")
}

# GET a path of the stats service from a namespace; prints the body.
http_get() { # NSSUFFIX PATH
	ip netns exec "${tag}-$1" python3 - "http://tcp-server-stats:$stats_port$2" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=2) as r:
    sys.stdout.write(r.read().decode())
EOF
}

wait_for() { # WHAT COMMAND...
	local what=$1
	shift
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${budget_s}s waiting for $what"
		for pid in "${pids[@]}"; do
			kill -0 "$pid" 2>/dev/null || fail "a pod exited while waiting for $what"
		done
		sleep 0.5
	done
}

start_pod tcp-server-stats stats tcp-server-stats-standin-0
wait_for "stats /readyz" http_get server /readyz
start_pod tcp-server server tcp-server-standin-0
for ((i = 0; i < clients; i++)); do
	start_pod tcp-client "client$i" "tcp-client-standin-$i"
done

# ---- the check: the dashboard API shows every connection -------------------------

# Rows are found by reporter name (the hostname / POD_NAME this script gave each pod),
# counts by "connections" or the original tool's "clients"; keys in any case.
check_stats() {
	http_get server /api/ServerStatistics >"$logdir/stats.json" || return 1
	python3 - "$logdir/stats.json" "$expected" "$clients" "$per_client" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
expected, clients, per_client = map(int, sys.argv[2:5])
rows = doc if isinstance(doc, list) else next(
    (v for v in doc.values() if isinstance(v, list)), [])

def get(row, *keys):
    low = {k.lower(): v for k, v in row.items()}
    for k in keys:
        if k.lower() in low:
            return low[k.lower()]
    return None

by_name = {str(get(r, "name", "machineName")): r for r in rows if isinstance(r, dict)}
def count(name):
    r = by_name.get(name)
    return None if r is None else get(r, "connections", "clients")

server = count("tcp-server-standin-0")
client_counts = [count(f"tcp-client-standin-{i}") for i in range(clients)]
print(f"server {server} / {expected}; clients {client_counts}", flush=True)
ok = server == expected and all(c == per_client for c in client_counts)
sys.exit(0 if ok else 1)
EOF
}

until check_stats >"$logdir/check.out" 2>&1; do
	if [ "$SECONDS" -ge "$deadline" ]; then
		cat "$logdir/check.out"
		echo "last /api/ServerStatistics:"
		cat "$logdir/stats.json" 2>/dev/null || true
		echo
		fail "stats never showed $expected connections within ${budget_s}s"
	fi
	for pid in "${pids[@]}"; do
		kill -0 "$pid" 2>/dev/null || { cat "$logdir/check.out"; fail "a pod exited"; }
	done
	sleep 1
done
cat "$logdir/check.out"
echo "1 passed, 0 failed"
