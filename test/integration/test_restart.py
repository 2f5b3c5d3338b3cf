#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A restarted server gets every connection back from the same client, which
backs off while the server is down instead of hammering it."""
import time

from harness import Proc, check, established, run_test, wait_for

PORT = 10002
N = 3000


def start_server(args, procs, tag):
    server = Proc("server-" + tag, [args.server, "--listen", "127.0.0.1:%d" % PORT,
                                    "--backend", args.backend])
    procs.append(server)
    wait_for("server listening", lambda: "listening on" in server.output(), 10)
    return server


def body(args, procs):
    server = start_server(args, procs, "1")
    client = Proc("client", [args.client, "--server", "127.0.0.1:%d" % PORT,
                             "--connections", str(N), "--json",
                             "--backend", args.backend], stdout="capture")
    procs.append(client)
    wait_for("%d established" % N, lambda: established(PORT) == N, 30)
    # Connections closed within 2 s count as failures (a full server's
    # refusals look like that); these have lived, so they reconnect quickly.
    time.sleep(2.5)

    check(server.stop() == 0, "first server exits 0 on SIGTERM")
    wait_for("the client to see its connections drop",
             lambda: established(PORT, "client") == 0, 10)
    # Down for 3 s: backing off, the client probes each (source, server)
    # pair with one connect at a time, a handful of times, not thousands.
    time.sleep(3)
    check(client.alive(), "client keeps running while the server is down")
    server = start_server(args, procs, "2")
    wait_for("all %d back on the restarted server" % N, lambda: established(PORT) == N, 40)
    check(client.stop() == 0, "client exits 0")
    summary = client.stdout_json()
    drops = sum(v["count"] for v in summary["drops"].values())
    check(drops >= N, "client counted %d drops" % drops)
    refused = summary["failed"].get("ECONNREFUSED", {}).get("count", 0)
    check(0 < refused <= 20, "back-off kept refused connects to %d while down" % refused)
    check(server.stop() == 0, "second server exits 0")


run_test(body)
