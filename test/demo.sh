#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The main job on one machine: tcp-server-stats, tcp-server and tcp-client on
# loopback, the client holding 10,000 connections to the server, both
# reporting to the stats service.  The client's progress is shown live; the
# dashboard address is printed.  Ends on Ctrl-C, or after SECONDS (> 0).
#
#   test/demo.sh BUILD_DIR [SECONDS]
#
# Environment: CONNECTIONS (10000), STATS_LISTEN (127.0.0.1:8080),
# SERVER_LISTEN (127.0.0.1:10000).
set -euo pipefail

build=${1:?usage: demo.sh BUILD_DIR [SECONDS]}
secs=${2:-0}
connections=${CONNECTIONS:-10000}
stats_listen=${STATS_LISTEN:-127.0.0.1:8080}
server_listen=${SERVER_LISTEN:-127.0.0.1:10000}
report="http://$stats_listen/api/ServerStatistics"
logs=$(mktemp -d /tmp/ringhold-demo.XXXXXX)
pids=()

cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "logs kept in $logs" >&2
}
trap cleanup EXIT
trap 'exit 0' INT TERM

wait_listening() {	# name log pattern
	for _ in $(seq 50); do
		grep -q "$3" "$2" 2>/dev/null && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || { cat "$2" >&2; exit 1; }
		sleep 0.1
	done
	echo "demo: $1 did not start; its log:" >&2
	cat "$2" >&2
	exit 1
}

"$build/stats/tcp-server-stats" --listen "$stats_listen" >"$logs/stats.log" 2>&1 &
pids+=($!)
wait_listening tcp-server-stats "$logs/stats.log" "dashboard at"

"$build/server/tcp-server" --listen "$server_listen" --name demo-server \
	--report-url "$report" --report-interval 2 >"$logs/server.log" 2>&1 &
pids+=($!)
wait_listening tcp-server "$logs/server.log" "listening on"

cat >&2 <<MSG

  Dashboard:  http://$stats_listen/
  JSON API:   http://$stats_listen/api/ServerStatistics
  Metrics:    http://$stats_listen/metrics
  Logs:       $logs/{stats,server}.log

  tcp-client now opens $connections connections to $server_listen.
  Ctrl-C stops everything.

MSG

duration=()
[ "$secs" -gt 0 ] && duration=(--duration "$secs")
"$build/client/tcp-client" --server "$server_listen" --connections "$connections" \
	--name demo-client --report-url "$report" --report-interval 2 \
	"${duration[@]}" &
pids+=($!)
wait "${pids[-1]}"
