#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A client stopped with SIGSTOP falls silent: the server drops its
connections after the idle timeout, not before; once the client runs again
it notices and reconnects everything."""
import signal
import time

from harness import Proc, check, established, run_test, wait_for

PORT = 10001
N = 1000
IDLE = 3


def body(args, procs):
    server = Proc("server", [args.server, "--listen", "127.0.0.1:%d" % PORT,
                             "--idle-timeout", str(IDLE), "--backend", args.backend])
    procs.append(server)
    wait_for("server listening", lambda: "listening on" in server.output(), 10)
    client = Proc("client", [args.client, "--server", "127.0.0.1:%d" % PORT,
                             "--connections", str(N), "--interval", "1",
                             "--backend", args.backend])
    procs.append(client)
    wait_for("%d established" % N, lambda: established(PORT) == N, 30)
    # Keepalives every second keep them well inside a 3 s idle timeout.
    time.sleep(IDLE + 2)
    check(established(PORT) == N, "keepalives hold all %d past the idle timeout" % N)

    client.signal(signal.SIGSTOP)
    stopped = time.monotonic()
    time.sleep(2.0)
    check(established(PORT) == N, "nothing dropped 2 s into the silence (timeout %d s)" % IDLE)
    wait_for("the server to drop the silent client", lambda: established(PORT) == 0,
             IDLE + 8)
    took = time.monotonic() - stopped
    # Silence began at each connection's last keepalive, which can precede
    # the SIGSTOP by one 100 ms keepalive bucket (more on a loaded machine).
    check(took >= IDLE - 0.5, "dropped %.1f s after the stop (timeout %d s)" % (took, IDLE))
    check("closed in the last second" in server.output(), "server logged the drop")

    client.signal(signal.SIGCONT)
    wait_for("the client to reconnect all %d" % N, lambda: established(PORT) == N, 30)
    check(server.stop() == 0, "server exits 0")
    check(client.stop() == 0, "client exits 0")


run_test(body)
