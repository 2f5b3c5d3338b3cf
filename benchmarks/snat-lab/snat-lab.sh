#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# snat-lab.sh: the load balancer's SNAT port cap, reproduced on one machine.
#
# Topology, all in network namespaces this script creates (name prefix
# rhlab<pid>-) and deletes again:
#
#   podN (client, A source addresses) --veth--+
#   ...                                        lb (routes; nft SNAT) --veth-- srv
#   pod0 (client, A source addresses) --veth--+   (tcp-server, tcp-server-stats)
#
#   pod i: 10.201.i.2/24, sources 10.201.i.10..; lb side 10.201.i.1
#   lb <-> srv: 10.202.0.1 <-> 10.202.0.2; SNAT frontend addresses 10.203.0.1..K
#
# In the snat scenarios the server only has a route to the frontend addresses,
# as a server behind a load balancer only ever sees those.  Scenarios are
# flags; the table of each goes to stderr, the JSON of all to stdout.
#
# It changes one global setting, and only for --conntrack-max:
# net.netfilter.nf_conntrack_max can only be written in the root namespace
# and is the limit of every namespace's own table.  It is restored when the
# scenario ends, and by the EXIT/INT/TERM trap.
set -uo pipefail

prog=snat-lab
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

usage() {
	cat <<EOF
Usage: $prog [OPTIONS] SCENARIO...
Builds client "pods", a NAT load balancer and a server in network namespaces,
runs tcp-server and tcp-client through them and tells how many connections
each configuration holds.

Scenarios (at least one; --all for every one):
      --direct              no NAT: the pod IP path
      --snat                SNAT to one frontend address
      --snat-k K            SNAT to K frontend addresses (2-16)
      --conntrack-max N     SNAT to one address with the conntrack table
                            limited to N (changes the global
                            net.netfilter.nf_conntrack_max while it runs)
      --idle T              conntrack forgets established flows idle T s
                            (like a load balancer's idle timeout; a packet of
                            a forgotten flow is answered with a RST): one run
                            with the keepalive interval below T, one above
      --all                 all of the above (K=2, N=--ports/2, T=4)

Configuration:
  -c, --connections N       connections requested (default: twice the
                            expected cap, at least 1000; --idle: 1000 or
                            half the ports)
      --ports LO-HI         SNAT port range (default 1024-65535)
      --pods N              client namespaces (default 2)
      --addrs N             source addresses per pod (default 4)
      --rate N              connects per second per pod (default 5000)
      --connect-timeout S   client connect timeout (default 3)
      --interval S          keepalive interval outside --idle (default 15)
      --duration S          bound on each run (default 120)
      --settle S            end a run when the server's count has not changed
                            for S seconds (default 10; not for --idle)
      --bin DIR             build directory with server/tcp-server,
                            client/tcp-client and stats/tcp-server-stats
                            (default: the newest build*/ of this tree)
      --no-stats            do not run tcp-server-stats in the lab
      --keep                leave the namespaces (one scenario only), with
                            the programs stopped, for debugging (remove
                            them with ip netns del NAME)
  -h, --help                this text

Needs root, nft (nftables), ip and ss (iproute2), python3.
Exit status: 0 done, 1 a run failed, 2 bad usage, 77 not root or a tool
missing.
EOF
}

die() { echo "$prog: $*" >&2; exit 2; }
note() { echo "$prog: $*" >&2; }

# --- options ---------------------------------------------------------------
scenarios=()
connections=0
ports=1024-65535
pods=2
addrs=4
rate=5000
connect_timeout=3
interval=15
duration=120
settle=10
bindir=
use_stats=1
keep=0
snat_k=2
ct_max=0
idle_t=0

need_uint() {	# option value min max
	[[ $2 =~ ^[0-9]+$ ]] || die "$1: '$2' is not a number"
	(( $2 >= $3 && $2 <= $4 )) || die "$1: $2 is not in $3..$4"
}

while (($#)); do
	opt=$1
	case $opt in
	--direct) scenarios+=(direct) ;;
	--snat) scenarios+=(snat1) ;;
	--snat-k) need_uint "$opt" "${2-}" 2 16; snat_k=$2; scenarios+=(snatk); shift ;;
	--conntrack-max) need_uint "$opt" "${2-}" 64 1000000; ct_max=$2; scenarios+=(conntrack); shift ;;
	--idle) need_uint "$opt" "${2-}" 2 3600; idle_t=$2; scenarios+=(idle-below idle-above); shift ;;
	--all) scenarios+=(direct snat1 snatk conntrack idle-below idle-above) ;;
	-c|--connections) need_uint "$opt" "${2-}" 1 1000000; connections=$2; shift ;;
	--ports)
		[[ ${2-} =~ ^([0-9]+)-([0-9]+)$ ]] || die "$opt: '${2-}' is not LO-HI"
		lo=${BASH_REMATCH[1]} hi=${BASH_REMATCH[2]}
		need_uint "$opt" "$lo" 1 65535
		need_uint "$opt" "$hi" "$lo" 65535
		ports=$2; shift ;;
	--pods) need_uint "$opt" "${2-}" 1 16; pods=$2; shift ;;
	--addrs) need_uint "$opt" "${2-}" 1 64; addrs=$2; shift ;;
	--rate) need_uint "$opt" "${2-}" 0 1000000; rate=$2; shift ;;
	--connect-timeout) need_uint "$opt" "${2-}" 1 60; connect_timeout=$2; shift ;;
	--interval) need_uint "$opt" "${2-}" 1 3600; interval=$2; shift ;;
	--duration) need_uint "$opt" "${2-}" 5 3600; duration=$2; shift ;;
	--settle) need_uint "$opt" "${2-}" 2 600; settle=$2; shift ;;
	--bin) [[ -n ${2-} ]] || die "$opt needs a directory"; bindir=$2; shift ;;
	--no-stats) use_stats=0 ;;
	--keep) keep=1 ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown option '$opt'" ;;
	esac
	shift
done
((${#scenarios[@]})) || { usage >&2; die "no scenario given (e.g. --snat)"; }
(( keep && ${#scenarios[@]} > 1 )) && die "--keep needs a single scenario"

port_lo=${ports%-*}
port_hi=${ports#*-}
nports=$((port_hi - port_lo + 1))
(( ct_max )) || ct_max=$(( nports / 2 > 64 ? nports / 2 : 64 ))
(( idle_t )) || idle_t=4

# --- what we need ------------------------------------------------------------
if (( EUID != 0 )); then
	echo "$prog: needs root (network namespaces, nft): skipped" >&2
	exit 77
fi
for tool in nft ip ss python3; do
	if ! command -v "$tool" >/dev/null; then
		case $tool in
		nft) pkg=nftables ;; ip|ss) pkg=iproute2 ;; *) pkg=$tool ;;
		esac
		echo "$prog: '$tool' not found (apt-get install $pkg): skipped" >&2
		exit 77
	fi
done
if [[ -z $bindir ]]; then
	bindir=$(ls -dt "$root"/build*/ 2>/dev/null | while read -r d; do
		[[ -x $d/server/tcp-server && -x $d/client/tcp-client ]] && { echo "$d"; break; }
	done)
	[[ -n $bindir ]] || die "no build directory with tcp-server and tcp-client under $root (build one, or --bin DIR)"
fi
server_bin=$bindir/server/tcp-server
client_bin=$bindir/client/tcp-client
stats_bin=$bindir/stats/tcp-server-stats
[[ -x $server_bin ]] || die "$server_bin: not found"
[[ -x $client_bin ]] || die "$client_bin: not found"
if (( use_stats )) && [[ ! -x $stats_bin ]]; then
	note "$stats_bin not built: running without the dashboard"
	use_stats=0
fi

# --- cleanup -------------------------------------------------------------------
P=rhlab$$
work=$(mktemp -d "/tmp/$P.XXXXXX")
pids=()
namespaces=()
ct_max_saved=

stop_pids() {
	local pid
	for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${pids[@]}"; do
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
	done
	pids=()
}

teardown() {
	local ns pid
	stop_pids
	# Deleting a namespace does not end what runs in it; anything still in
	# ours was started by us.
	for ns in "${namespaces[@]}"; do
		for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	namespaces=()
}

restore_ct_max() {
	if [[ -n $ct_max_saved ]]; then
		sysctl -qw net.netfilter.nf_conntrack_max="$ct_max_saved" ||
			note "could not restore net.netfilter.nf_conntrack_max=$ct_max_saved: do it by hand"
		ct_max_saved=
	fi
}

cleanup() {
	trap - EXIT INT TERM
	if (( keep )) && ((${#namespaces[@]})); then
		stop_pids
		note "kept namespaces: ${namespaces[*]}"
	else
		teardown
	fi
	restore_ct_max
	[[ -n ${SNAT_LAB_KEEP_WORK-} ]] && note "work files kept in $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'note interrupted; exit 130' INT
trap 'note terminated; exit 143' TERM

# --- topology ------------------------------------------------------------------
ns_lb=$P-lb
ns_srv=$P-srv
srv_ip=10.202.0.2
srv_port=10000
stats_port=8080

# Not for programs started with &: a function would run in a subshell, and
# $! would be the subshell, not the program.
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

frontend_range() {	# K -> "10.203.0.1" or "10.203.0.1-10.203.0.K"
	(( $1 == 1 )) && echo 10.203.0.1 || echo "10.203.0.1-10.203.0.$1"
}

# mode: direct | snat; $2 frontends; $3 conntrack idle timeout (0: default)
build() {
	local mode=$1 k=$2 idle=$3 i a
	for ns in "$ns_lb" "$ns_srv"; do
		ip netns add "$ns" || return 1
		namespaces+=("$ns")
		nsx "$ns" ip link set lo up
	done
	# Both ends of each veth are created inside our namespaces: nothing
	# appears in the root namespace, even for a moment.
	nsx "$ns_lb" ip link add srv type veth peer name eth0 netns "$ns_srv" || return 1
	nsx "$ns_lb" ip addr add 10.202.0.1/24 dev srv
	nsx "$ns_lb" ip link set srv up
	nsx "$ns_srv" ip addr add "$srv_ip/24" dev eth0
	nsx "$ns_srv" ip link set eth0 up
	nsx "$ns_lb" sysctl -qw net.ipv4.ip_forward=1
	nsx "$ns_srv" sysctl -qw net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535
	for ((i = 0; i < pods; i++)); do
		local ns=$P-pod$i
		ip netns add "$ns" || return 1
		namespaces+=("$ns")
		nsx "$ns" ip link set lo up
		nsx "$ns_lb" ip link add "pod$i" type veth peer name eth0 netns "$ns" || return 1
		nsx "$ns_lb" ip addr add "10.201.$i.1/24" dev "pod$i"
		nsx "$ns_lb" ip link set "pod$i" up
		nsx "$ns" ip addr add "10.201.$i.2/24" dev eth0
		for ((a = 0; a < addrs; a++)); do
			nsx "$ns" ip addr add "10.201.$i.$((10 + a))/24" dev eth0
		done
		nsx "$ns" ip link set eth0 up
		nsx "$ns" ip route add default via "10.201.$i.1"
		nsx "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65535"
	done
	if [[ $mode == direct ]]; then
		nsx "$ns_srv" ip route add 10.201.0.0/16 via 10.202.0.1
		return 0
	fi
	nsx "$ns_srv" ip route add 10.203.0.0/24 via 10.202.0.1
	# pins: which frontend address each client address was given (the
	# kernel picks one per source by hash), read back to compute the cap.
	local reject=
	(( idle )) && reject='ct state invalid reject with tcp reset'
	nsx "$ns_lb" nft -f - <<EOF || return 1
table ip ringhold_lab {
	set pins {
		type ipv4_addr . ipv4_addr
		flags dynamic
		size 4096
	}
	chain nat_postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "srv" meta l4proto tcp snat to $(frontend_range "$k"):$port_lo-$port_hi
	}
	chain pin_postrouting {
		type filter hook postrouting priority srcnat + 10; policy accept;
		oifname "srv" ct state new add @pins { ct original ip saddr . ip saddr }
	}
	chain idle_forward {
		type filter hook forward priority filter; policy accept;
		$reject
	}
}
EOF
	if (( idle )); then
		# Per namespace (measured): only this lab's NAT forgets early.
		# tcp_loose=0 keeps conntrack from adopting the next packet of a
		# forgotten flow as a new one, so the packet is invalid and
		# rejected: an Azure load balancer with TCP reset on idle.
		nsx "$ns_lb" sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_established="$idle" \
			net.netfilter.nf_conntrack_tcp_loose=0 || return 1
	fi
}

server_count() {
	nsx "$ns_srv" ss -Htn state established "( sport = :$srv_port )" 2>/dev/null | wc -l
}

# --- one run ---------------------------------------------------------------------
results=()	# one JSON file per run

# name mode k conntrack_max idle interval requested settle(0/1)
run() {
	local name=$1 mode=$2 k=$3 ctm=$4 idle=$5 ival=$6 req=$7 use_settle=$8
	local dir=$work/$name i pid t held last stable=0 srv_idle report=
	mkdir -p "$dir"
	note "--- $name: $req connections requested, $mode$( [[ $mode == snat ]] && echo " to $k address(es), ports $ports")$( ((ctm)) && echo ", nf_conntrack_max $ctm")$( ((idle)) && echo ", NAT idle timeout ${idle}s, keepalive every ${ival}s")"
	build "$mode" "$k" "$idle" || { note "$name: building the topology failed"; teardown; return 1; }
	if (( ctm )); then
		if ! set_ct_max "$ctm"; then teardown; return 1; fi
	fi
	if (( use_stats )); then
		ip netns exec "$ns_srv" "$stats_bin" --listen "$srv_ip:$stats_port" >"$dir/stats.log" 2>&1 &
		pids+=($!)
		report="http://$srv_ip:$stats_port/api/ServerStatistics"
	fi
	srv_idle=$(( ival * 3 + 5 > 45 ? ival * 3 + 5 : 45 ))
	ip netns exec "$ns_srv" "$server_bin" --listen "$srv_ip:$srv_port" --idle-timeout "$srv_idle" \
		--name lab-server ${report:+--report-url "$report" --report-interval 2} \
		>"$dir/server.log" 2>&1 &
	pids+=($!)
	for t in $(seq 50); do
		nsx "$ns_srv" ss -Hltn "( sport = :$srv_port )" | grep -q . && break
		sleep 0.1
	done
	local client_pids=() base=$((req / pods)) extra=$((req % pods)) n
	for ((i = 0; i < pods; i++)); do
		n=$((base + (i < extra ? 1 : 0)))
		(( n )) || continue
		ip netns exec "$P-pod$i" "$client_bin" --server "$srv_ip:$srv_port" --connections "$n" \
			--source "10.201.$i.10-10.201.$i.$((9 + addrs))" --per-tuple 64512 \
			--rate "$rate" --connect-timeout "$connect_timeout" --interval "$ival" \
			--duration "$((duration + 5))" --json --name "pod$i" \
			${report:+--report-url "$report" --report-interval 2} \
			>"$dir/client$i.json" 2>"$dir/client$i.log" &
		pids+=($!)
		client_pids+=($!)
	done
	last=-1
	for ((t = 1; t <= duration; t++)); do
		sleep 1
		held=$(server_count)
		if (( tty )); then
			printf '\r%s: %3ds, the server holds %s  ' "$name" "$t" "$held" >&2
		elif (( t % 5 == 0 )); then
			printf '%s: %3ds, the server holds %s\n' "$name" "$t" "$held" >&2
		fi
		if (( held == last )); then stable=$((stable + 1)); else stable=0; fi
		last=$held
		if (( use_settle && held > 0 && stable >= settle )); then break; fi
		local alive=0
		for pid in "${client_pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
		(( alive )) || break
	done
	(( tty )) && echo >&2
	held=$(server_count)
	# The peers the server sees: the frontend addresses, or the pods.
	nsx "$ns_srv" ss -Htn state established "( sport = :$srv_port )" |
		awk '{ sub(/:[0-9]+$/, "", $4); n[$4]++ } END { for (a in n) print a, n[a] }' >"$dir/peers"
	if [[ $mode == snat ]]; then
		nsx "$ns_lb" nft -j list set ip ringhold_lab pins >"$dir/pins.json" 2>/dev/null
		nsx "$ns_lb" cat /proc/sys/net/netfilter/nf_conntrack_count >"$dir/ct_count" 2>/dev/null
	fi
	if [[ -n $report ]] && command -v curl >/dev/null; then
		nsx "$ns_srv" curl -s -m 3 "$report" >"$dir/dashboard.json" 2>/dev/null
	fi
	# SIGTERM: each client prints its JSON summary and exits.
	for pid in "${client_pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
	for pid in "${client_pids[@]}"; do
		for t in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	done
	if (( keep )); then stop_pids; else teardown; fi
	(( ctm )) && restore_ct_max
	python3 - "$dir" "$name" "$mode" "$k" "$nports" "$ctm" "$idle" "$ival" "$req" \
		"$pods" "$addrs" "$held" >"$dir/result.json" <<'EOF' || { note "$name: no result"; return 1; }
import json, os, sys
d, name, mode = sys.argv[1], sys.argv[2], sys.argv[3]
k, nports, ctm, idle, ival, req, pods, addrs, held = map(int, sys.argv[4:])
est = ok = nfail = keepalives = 0
failed, drops, clients = {}, {}, []
for i in range(pods):
    p = os.path.join(d, f"client{i}.json")
    try:
        c = json.load(open(p))
    except (OSError, ValueError):
        continue
    clients.append(c)
    est += c.get("established", 0)
    nfail += c.get("connects_failed", 0)
    keepalives += c.get("keepalives_sent", 0)
    for src, dst in (("failed", failed), ("drops", drops)):
        for e, v in c.get(src, {}).items():
            dst.setdefault(e, {"count": 0, "text": v.get("text", "")})
            dst[e]["count"] += v.get("count", 0)
peers = {}
for line in open(os.path.join(d, "peers")):
    a, n = line.split()
    peers[a] = int(n)
# What each client address asks for: the lab splits the request over the
# pods, each client splits its share over its addresses (client/plan.c).
demand = {}
for i in range(pods):
    n = req // pods + (1 if i < req % pods else 0)
    for a in range(addrs):
        demand[f"10.201.{i}.{10 + a}"] = n // addrs + (1 if a < n % addrs else 0)
pins = {}
try:
    for item in json.load(open(os.path.join(d, "pins.json")))["nftables"]:
        for e in item.get("set", {}).get("elem", []):
            src, fe = e["concat"]
            pins[src] = fe
except (OSError, ValueError, KeyError):
    pass
note = ""
if mode == "direct":
    expected = req
    note = "no NAT: every connection"
else:
    per_fe = {}
    for src, fe in pins.items():
        per_fe[fe] = per_fe.get(fe, 0) + demand.get(src, 0)
    expected = sum(min(nports, v) for v in per_fe.values())
    if len(per_fe) < k:
        note = f"{len(per_fe)} of {k} frontend addresses used: the kernel pins each client address to one by hash"
    else:
        note = f"{len(per_fe)} x {nports} ports"
    if not pins:
        expected, note = min(req, k * nports), f"{k} x {nports} ports (pins not read)"
    if ctm:
        expected = min(expected, ctm)
        note = f"conntrack table of {ctm} entries (less the lab's own report flows)"
    expected = min(expected, req)
if idle:
    note = (f"NAT forgets after {idle}s idle, keepalive every {ival}s: " +
            ("drops expected" if ival > idle else "no drops expected"))
dash = None
try:
    dash = json.load(open(os.path.join(d, "dashboard.json")))
except (OSError, ValueError):
    pass
ct_count = None
try:
    ct_count = int(open(os.path.join(d, "ct_count")).read())
except (OSError, ValueError):
    pass
diagnoses = [c["diagnosis"] for c in clients if c.get("diagnosis")]
ramps = [c.get("time_to_target_s") for c in clients]
ramp = max(ramps) if ramps and None not in ramps else None
print(json.dumps({
    "scenario": name, "mode": mode, "frontend_addresses": k if mode == "snat" else 0,
    "ports_per_address": nports if mode == "snat" else None,
    "nf_conntrack_max": ctm or None, "nat_idle_timeout_s": idle or None,
    "keepalive_interval_s": ival, "requested": req,
    "established": est, "held_by_server": held, "expected_cap": expected,
    "expected_note": note, "connects_failed": nfail, "failed": failed,
    "drops": drops, "keepalives_sent": keepalives,
    "server_peers": peers, "pins": pins, "lb_conntrack_count": ct_count,
    "clients_time_to_target_s": ramp,
    "clients_reported": len(clients), "diagnosis": diagnoses or None,
    "dashboard_rows": len(dash) if isinstance(dash, list) else None,
}))
EOF
	results+=("$dir/result.json")
	print_table "$dir/result.json"
}

set_ct_max() {
	local want=$1 ns c worst=0
	# The limit is global; every namespace's table must stay well below it
	# while the scenario runs, or we would break someone else's traffic.
	c=$(cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0)
	worst=$c
	for ns in $(ip netns list | awk '{print $1}'); do
		[[ $ns == "$P"-* ]] && continue
		c=$(ip netns exec "$ns" cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo 0)
		(( c > worst )) && worst=$c
	done
	if (( worst * 2 > want )); then
		note "conntrack: some namespace tracks $worst connections; a global nf_conntrack_max of $want would hurt it: not run"
		return 1
	fi
	ct_max_saved=$(cat /proc/sys/net/netfilter/nf_conntrack_max)
	sysctl -qw net.netfilter.nf_conntrack_max="$want" || { ct_max_saved=; return 1; }
	note "net.netfilter.nf_conntrack_max $ct_max_saved -> $want for this scenario"
}

print_table() {
	python3 - "$@" >&2 <<'EOF'
import json, sys
rows = [json.load(open(p)) for p in sys.argv[1:]]
hdr = ("scenario", "requested", "established", "held (ss)", "expected cap", "failures", "drops")
def errs(m):
    return ", ".join(f"{e} {v['count']}" for e, v in sorted(m.items())) or "-"
lines = [hdr] + [(r["scenario"], str(r["requested"]), str(r["established"]),
                  str(r["held_by_server"]), str(r["expected_cap"]),
                  errs(r["failed"]), errs(r["drops"])) for r in rows]
w = [max(len(l[i]) for l in lines) for i in range(len(hdr))]
for n, l in enumerate(lines):
    print("  ".join(c.rjust(w[i]) if 0 < i < 5 else c.ljust(w[i]) for i, c in enumerate(l)).rstrip())
    if n == 0:
        print("  ".join("-" * x for x in w))
for r in rows:
    print(f"  {r['scenario']}: {r['expected_note']}")
    if r.get("diagnosis"):
        for dg in r["diagnosis"]:
            print(f"  {r['scenario']}: client says: {dg}")
EOF
}

# --- scenarios ---------------------------------------------------------------------
# Twice the cap, at least 1000: the kernel pins each client address to one
# frontend address by hash, so with K addresses some get fewer client
# addresses; asking each client address for 2 x cap / sources keeps every
# address that has two of them full.
default_req() {
	local n=$(( 2 * $1 ))
	(( n < 1000 )) && n=1000
	echo "$n"
}

tty=0
[[ -t 2 ]] && tty=1
status=0
for s in "${scenarios[@]}"; do
	case $s in
	direct)	req=$(( connections ? connections : $(default_req "$nports") ))
		run direct direct 0 0 0 "$interval" "$req" 1 ;;
	snat1)	req=$(( connections ? connections : $(default_req "$nports") ))
		run snat-1 snat 1 0 0 "$interval" "$req" 1 ;;
	snatk)	req=$(( connections ? connections : $(default_req $((snat_k * nports))) ))
		run "snat-$snat_k" snat "$snat_k" 0 0 "$interval" "$req" 1 ;;
	conntrack)
		req=$(( connections ? connections : $(default_req "$ct_max") ))
		run "conntrack-$ct_max" snat 1 "$ct_max" 0 "$interval" "$req" 1 ;;
	idle-below|idle-above)
		if [[ $s == idle-below ]]; then ival=$(( idle_t / 2 > 0 ? idle_t / 2 : 1 ))
		else ival=$(( idle_t * 2 )); fi
		# Half the ports at most: connections reset by the NAT leave
		# their port in CLOSE for 10 s, and reconnects need ports too.
		req=$(( connections ? connections : 1000 ))
		(( req > nports / 2 )) && req=$(( nports / 2 ))
		# Every connection writes within one interval of its start and
		# again one interval later: by then the NAT forgot it (above).
		saved=$duration
		duration=$(( 2 * ival + 3 < saved ? 2 * ival + 3 : saved ))
		run "$s" snat 1 0 "$idle_t" "$ival" "$req" 0
		duration=$saved ;;
	esac || status=1
done

if ((${#results[@]} > 1)); then
	note "=== summary"
	print_table "${results[@]}"
fi
python3 -c 'import json, sys; print(json.dumps([json.load(open(p)) for p in sys.argv[1:]], indent=2))' "${results[@]}"
exit $status
