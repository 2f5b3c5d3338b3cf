#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""End to end on loopback: tcp-server-stats, tcp-server and tcp-client.
The API shows the server holding exactly the client's connections and both
rows; stopping the client makes the count fall; a reporter that stops goes
stale, then disappears.

argv: STATS_EXE e2e SERVER_EXE CLIENT_EXE"""
import os
import signal
import subprocess
import sys
import time

from statslib import SKIP, Stats, TestFailure, check, eq, free_port

CONNS = 500


def wait_for(what, pred, timeout):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        ok, last = pred()
        if ok:
            return last
        time.sleep(0.2)
    raise TestFailure("timed out waiting for %s (last: %r)" % (what, last))


def stop(proc, name):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise TestFailure("%s did not stop on SIGTERM" % name)


def main():
    stats_exe, _, server_exe, client_exe = sys.argv[1:5]
    for exe in (stats_exe, server_exe, client_exe):
        if not os.access(exe, os.X_OK):
            sys.stderr.write("SKIP: %s is not built\n" % exe)
            return SKIP
    env = {k: v for k, v in os.environ.items()
           if k not in ("LISTEN", "PORT", "SERVER", "CLIENTCOUNT", "REPORTURI",
                        "REPORTINTERVAL", "NAME", "BACKEND", "SHARDS")}
    procs = []
    # Stale after 3 s, gone after 6 s: a stopped reporter is seen to go.
    with Stats(stats_exe, "--expire", "6") as st:
        url = "http://127.0.0.1:%d/api/ServerStatistics" % st.port
        port = free_port()
        try:
            server = subprocess.Popen(
                [server_exe, "--listen", "127.0.0.1:%d" % port, "--report-url", url,
                 "--report-interval", "1", "--name", "srv"], env=env)
            procs.append((server, "tcp-server"))
            time.sleep(0.3)
            client = subprocess.Popen(
                [client_exe, "--server", "127.0.0.1:%d" % port, "--connections", str(CONNS),
                 "--report-url", url, "--report-interval", "1", "--name", "cli"], env=env)
            procs.append((client, "tcp-client"))

            def rows():
                return {(r["role"], r["name"]): r for r in st.get_json("/api/ServerStatistics")}

            def both_full():
                r = rows()
                got = (r.get(("server", "srv"), {}).get("connections"),
                       r.get(("client", "cli"), {}).get("connections"))
                return got == (CONNS, CONNS), got

            wait_for("server and client rows at %d" % CONNS, both_full, 30)
            # Held steady, not a passing coincidence.
            time.sleep(2.5)
            eq(both_full()[1], (CONNS, CONNS), "counts still equal after 2.5 s")
            state = st.get_json("/api/state")
            eq((state["totals"]["connections"], state["totals"]["clientConnections"],
                state["totals"]["servers"], state["totals"]["clients"]),
               (CONNS, CONNS, 1, 1), "totals")
            r = rows()
            eq(r[("server", "srv")].get("backend") in ("io_uring", "epoll"), True,
               "server reports its backend")
            m = st.get("/metrics")[2].decode()
            check('ringhold_connections_held %d\n' % CONNS in m, "metrics total")

            stop(client, "tcp-client")

            def server_empty():
                srv = rows().get(("server", "srv"), {})
                return srv.get("connections") == 0, srv.get("connections")

            wait_for("the server's count to fall to 0", server_empty, 15)

            seen_stale = []

            def client_gone():
                c = rows().get(("client", "cli"))
                if c and c["stale"]:
                    seen_stale.append(True)
                return c is None, c and (c["connections"], c["stale"])

            wait_for("the client's row to go", client_gone, 15)
            check(seen_stale, "the client's row was stale before it went")
            eq(rows().get(("server", "srv"), {}).get("stale"), False,
               "the server, still reporting, stays fresh")
        finally:
            for p, name in reversed(procs):
                stop(p, name)
    return 0


try:
    sys.exit(main())
except TestFailure as e:
    sys.stderr.write("FAIL: %s\n" % e)
    sys.exit(1)
