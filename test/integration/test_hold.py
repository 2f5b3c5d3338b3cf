#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""One tcp-server process holds more connections than the descriptor limit
(20000 here) from one tcp-client process, as the kernel counts them; the
keepalive bytes arrive; SIGTERM ends both cleanly."""
import os
import signal
import time

from harness import Proc, bytes_received, check, established, run_test, wait_for

PORT = 10000


def body(args, procs):
    # The epoll baseline is bounded by RLIMIT_NOFILE per process.
    n = 30000 if args.backend == "uring" else 15000
    server = Proc("server", [args.server, "--listen", "127.0.0.1:%d" % PORT,
                             "--idle-timeout", "30", "--backend", args.backend])
    procs.append(server)
    wait_for("server listening", lambda: "listening on" in server.output(), 10)
    client = Proc("client", [args.client, "--server", "127.0.0.1:%d" % PORT,
                             "--connections", str(n), "--source", "127.0.0.2-127.0.0.3",
                             "--rate", "0", "--interval", "2", "--json",
                             "--backend", args.backend], stdout="capture")
    procs.append(client)

    wait_for("%d established on the server side" % n,
             lambda: established(PORT, "server") == n, 90)
    check(established(PORT, "client") == n, "%d established on the client side" % n)
    if args.backend == "uring":
        nfds = len(os.listdir("/proc/%d/fd" % server.p.pid))
        check(nfds < 1000, "server holds %d connections with %d ordinary fds" % (n, nfds))
        nfds = len(os.listdir("/proc/%d/fd" % client.p.pid))
        check(nfds < 1000, "client holds %d connections with %d ordinary fds" % (n, nfds))

    before = bytes_received(PORT)
    time.sleep(3.5)
    got = bytes_received(PORT) - before
    # Interval 2 s: in 3.5 s every connection writes at least once.
    check(got >= n, "keepalive bytes arrive (%d in 3.5 s from %d connections)" % (got, n))
    check(established(PORT, "server") == n, "still %d after keepalives" % n)

    t0 = time.monotonic()
    code = server.stop(timeout=10)
    took = time.monotonic() - t0
    check(code == 0, "server exits 0 on SIGTERM (got %r)" % code)
    check(took < 5, "server exits within 5 s holding %d (took %.1f s)" % (n, took))
    check("exited cleanly" in server.output(), "server logs a clean exit")
    code = client.stop(timeout=10)
    check(code == 0, "client exits 0 on SIGTERM (got %r)" % code)
    summary = client.stdout_json()
    check(summary["target"] == n, "summary target %d" % summary["target"])
    check(summary["connects_ok"] >= n, "summary connects_ok %d" % summary["connects_ok"])
    check(summary["latency_us"]["p50"] > 0, "summary has connect latency")
    check(summary["keepalives_sent"] >= n, "summary keepalives %d" % summary["keepalives_sent"])
    check(summary["backend"] == ("io_uring" if args.backend == "uring" else "epoll"),
          "summary names the backend")


run_test(body)
