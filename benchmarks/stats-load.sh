#!/bin/sh
# SPDX-License-Identifier: MIT
# Load on tcp-server-stats: report POSTs per second with wrk, and the
# service's memory with 1,000 reporters holding keep-alive connections.
#
#   benchmarks/stats-load.sh [BUILD_DIR] [SECONDS]
#
# The service gets CPU 0 and wrk CPU 1 (when there are two), so they do not
# fight over one core.  Only 127.0.0.1 is used.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-"$here/../build"}
secs=${2:-10}
exe="$build/stats/tcp-server-stats"
[ -x "$exe" ] || { echo "no $exe: build first" >&2; exit 77; }
command -v wrk >/dev/null || { echo "wrk is not installed" >&2; exit 77; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url="http://127.0.0.1:$port"
pin_srv="" pin_wrk=""
if [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
	pin_srv="taskset -c 0" pin_wrk="taskset -c 1"
fi

# Expiry longer than the run: every reporter stays in the table.
$pin_srv "$exe" --listen "127.0.0.1:$port" --expire 600 2>/tmp/stats-load.$$.log &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f /tmp/stats-load.$$.log /tmp/stats-load.$$.wrk' EXIT
for _ in $(seq 50); do
	curl -sf "$url/healthz" >/dev/null 2>&1 && break
	sleep 0.1
done

rss() { awk '/^VmRSS/ { print $2 }' "/proc/$pid/status"; }
rows() { curl -sf "$url/api/state" | python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["reporters"])'; }

echo "== idle: RSS $(rss) KiB"

echo "== report POSTs, 64 keep-alive connections, ${secs}s"
REPORTERS=1000 $pin_wrk wrk -t1 -c64 -d"${secs}s" --latency -s "$here/stats-report.lua" "$url" |
	grep -E "Requests/sec|Latency|50%|99%|requests in|Non-2xx|Socket errors"
echo "   reporters in the table: $(rows); RSS $(rss) KiB"

echo "== 1,000 reporters, each on its own keep-alive connection, ${secs}s"
REPORTERS=1000 $pin_wrk wrk -t1 -c1000 -d"${secs}s" --latency -s "$here/stats-report.lua" "$url" \
	>/tmp/stats-load.$$.wrk &
wrk_pid=$!
sleep $((secs / 2))
conns=$(curl -sf "$url/metrics" | awk '/^ringhold_stats_http_connections / { print $2 }')
echo "   mid-run: $conns open connections, RSS $(rss) KiB"
wait $wrk_pid || true
grep -E "Requests/sec|Latency|50%|99%|requests in|Non-2xx|Socket errors" /tmp/stats-load.$$.wrk || true
echo "   after: reporters in the table: $(rows); RSS $(rss) KiB"
bytes=$(curl -sf "$url/api/ServerStatistics" | wc -c)
echo "   GET /api/ServerStatistics with $(rows) rows: $bytes bytes"
echo "== GET /api/ServerStatistics, 16 connections, 5s"
$pin_wrk wrk -t1 -c16 -d5s "$url/api/ServerStatistics" | grep -E "Requests/sec|Transfer/sec"
echo "== GET /metrics, 16 connections, 5s"
$pin_wrk wrk -t1 -c16 -d5s "$url/metrics" | grep -E "Requests/sec|Transfer/sec"
echo "   final RSS $(rss) KiB"
