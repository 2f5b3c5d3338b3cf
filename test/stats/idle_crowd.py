#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""10,000 idle connections to the stats port must not stop reports: the
crowd costs direct descriptors, not the service's attention."""
import resource
import sys
import time

from statslib import SKIP, Stats, check, eq, run

CROWD = 10000


def idle_crowd(exe):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < CROWD + 200:
        sys.stderr.write("SKIP: fd hard limit %d is below %d\n" % (hard, CROWD + 200))
        return SKIP
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with Stats(exe) as st:
        crowd = []
        try:
            start = time.time()
            for i in range(CROWD):
                crowd.append(st.connect())
                if i % 1000 == 999:  # reports keep flowing while the crowd grows
                    st.report({"role": "server", "name": "during", "connections": i + 1})
            sys.stderr.write("%d idle connections in %.1f s\n" % (CROWD, time.time() - start))
            # Wait until the service has accepted them all.
            deadline = time.time() + 20
            while True:
                m = st.get("/metrics")[2].decode()
                open_ = int(next(l.split()[1] for l in m.splitlines()
                                 if l.startswith("ringhold_stats_http_connections ")))
                if open_ >= CROWD:
                    break
                check(time.time() < deadline, "service holds the crowd (%d open)" % open_)
                time.sleep(0.2)
            t0 = time.time()
            for i in range(200):
                st.report({"role": "server", "name": "srv-%d" % (i % 20), "connections": i})
            per = (time.time() - t0) / 200
            sys.stderr.write("reports with the crowd attached: %.2f ms each\n" % (per * 1000))
            check(per < 0.05, "a report takes under 50 ms with the crowd attached (%.1f ms)" % (per * 1000))
            state = st.get_json("/api/state")
            eq(state["totals"]["servers"], 21, "every reporter recorded")
            check(st.get("/")[0] == 200, "the dashboard still loads")
        finally:
            for s in crowd:
                s.close()
        check(st.alive(), "service survived the crowd")


run({"idle-crowd": idle_crowd})
