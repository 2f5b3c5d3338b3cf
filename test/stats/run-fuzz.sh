#!/bin/sh
# SPDX-License-Identifier: MIT
# Runs the stats fuzz targets for a bounded time each.
#
#   test/stats/run-fuzz.sh BUILD_DIR [SECONDS]      every target (CI)
#   test/stats/run-fuzz.sh --one FUZZER SEEDS SECONDS
#
# BUILD_DIR must be configured with CC=clang -Dfuzz=true.  The seeds are
# copied, never written to; crashes land in BUILD_DIR/fuzz-artifacts.
# Exit 0 when nothing crashed, 1 when something did, 77 when not built.
set -u

run_one() {
	fuzzer=$1 seeds=$2 secs=$3 artifacts=$4
	if [ ! -x "$fuzzer" ]; then
		echo "SKIP: $fuzzer is not built (CC=clang meson setup -Dfuzz=true)" >&2
		return 77
	fi
	corpus=$(mktemp -d) || return 1
	mkdir -p "$artifacts"
	cp "$seeds"/* "$corpus"/ 2>/dev/null
	# -rss_limit_mb: a leak or runaway buffer is a failure, not a slow CI.
	"$fuzzer" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 \
		-print_final_stats=1 -artifact_prefix="$artifacts/" \
		"$corpus" >"$corpus.log" 2>&1
	rc=$?
	tail -n 12 "$corpus.log" >&2
	rm -rf "$corpus" "$corpus.log"
	[ $rc -eq 0 ] && return 0
	echo "FAIL: $fuzzer exited $rc; see $artifacts" >&2
	return 1
}

if [ "${1:-}" = "--one" ]; then
	[ $# -eq 4 ] || { echo "usage: $0 --one FUZZER SEEDS SECONDS" >&2; exit 1; }
	run_one "$2" "$3" "$4" "$(dirname "$2")/fuzz-artifacts"
	exit $?
fi

[ $# -ge 1 ] || { echo "usage: $0 BUILD_DIR [SECONDS]" >&2; exit 1; }
build=$1 secs=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
status=0 ran=0
for name in http report; do
	run_one "$build/test/stats/fuzz-$name" "$here/fuzz-seeds/$name" "$secs" \
		"$build/fuzz-artifacts"
	rc=$?
	case $rc in
	0) ran=$((ran + 1)) ;;
	77) ;;
	*) status=1 ;;
	esac
done
[ $status -eq 0 ] && [ $ran -eq 0 ] && exit 77
exit $status
