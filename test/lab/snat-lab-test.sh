#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# The SNAT lab in small (issue 6): 1,000 SNAT ports per frontend address, so
# it runs in well under a minute.  Checks that
#   - one frontend address holds exactly its 1,000 ports,
#   - two hold exactly 2,000,
#   - without NAT every connection requested is held,
#   - a NAT that forgets idle flows after 3 s resets connections only when
#     the keepalive interval (6 s) is longer than that, not when it is 1 s.
# Usage: snat-lab-test.sh SNAT_LAB_SH BUILD_DIR.  Exit 0 pass, 1 fail, 77
# skip (not root, or nft / ip / ss missing: the lab says which).
set -uo pipefail

lab=$1
build=$2
out=$(mktemp /tmp/snat-lab-test.XXXXXX)
trap 'rm -f "$out"' EXIT

"$lab" --bin "$build" --ports 20000-20999 --pods 2 --addrs 4 \
	--connect-timeout 2 --settle 4 --duration 40 --no-stats \
	--direct --snat --snat-k 2 --idle 3 >"$out"
rc=$?
(( rc == 77 )) && exit 77
if (( rc != 0 )); then
	echo "snat-lab.sh failed (exit $rc)" >&2
	exit 1
fi

python3 - "$out" <<'PY'
import json, sys

runs = {r["scenario"]: r for r in json.load(open(sys.argv[1]))}
fails = 0

def check(what, got, want):
    global fails
    ok = got == want
    print(f"{'ok  ' if ok else 'FAIL'} {what}: {got} (want {want})")
    fails += not ok

def drops(r):
    return sum(v["count"] for v in r["drops"].values())

for name, want in (("snat-1", 1000), ("snat-2", 2000)):
    r = runs.get(name)
    if r is None:
        check(f"{name} ran", False, True)
        continue
    check(f"{name}: held by the server", r["held_by_server"], want)
    check(f"{name}: established by the clients", r["established"], want)
    check(f"{name}: the rest timed out", "ETIMEDOUT" in r["failed"], True)
r = runs.get("snat-2")
if r:
    check("snat-2: frontend addresses the server sees", len(r["server_peers"]), 2)
r = runs.get("direct")
if r:
    check("direct: held by the server", r["held_by_server"], r["requested"])
    check("direct: established by the clients", r["established"], r["requested"])
r = runs.get("idle-below")
if r:
    check("idle, keepalive 1 s < 3 s: drops", drops(r), 0)
r = runs.get("idle-above")
if r:
    check("idle, keepalive 6 s > 3 s: some connections reset",
          r["drops"].get("ECONNRESET", {}).get("count", 0) > 0, True)
sys.exit(1 if fails else 0)
PY
