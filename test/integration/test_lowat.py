#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""--recv-lowat N: the server reads a connection only once N keepalive bytes
wait in its socket.  Up to N-1 unread bytes sit in each receive queue (the
kernel's Recv-Q); the connections stay up while N keepalive periods fit in
the idle timeout, and are dropped as silent when they do not."""
import subprocess
import time

from harness import Proc, check, established, run_test, wait_for

PORT = 10001
N = 200
LOWAT = 3


def recv_queues(port):
    """Recv-Q of every established server socket on port (ss)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "sport = :%d" % port],
                         capture_output=True, text=True, check=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if line.strip()]


def start(args, procs, idle):
    server = Proc("server-idle%d" % idle, [args.server, "--listen", "127.0.0.1:%d" % PORT,
                             "--idle-timeout", str(idle), "--recv-lowat", str(LOWAT),
                             "--backend", args.backend])
    procs.append(server)
    wait_for("server listening", lambda: "listening on" in server.output(), 10)
    client = Proc("client-idle%d" % idle, [args.client, "--server", "127.0.0.1:%d" % PORT,
                             "--connections", str(N), "--interval", "1",
                             "--backend", args.backend])
    procs.append(client)
    wait_for("%d established" % N, lambda: established(PORT) == N, 30)
    return server, client


def body(args, procs):
    # Reads every 3 s fit in a 7 s idle timeout.
    server, client = start(args, procs, 7)
    check("read once %d bytes wait" % LOWAT in server.output(),
          "the server says how often it reads")
    seen = set()
    deadline = time.monotonic() + 9
    while time.monotonic() < deadline:
        seen.update(recv_queues(PORT))
        time.sleep(0.3)
    check(established(PORT) == N, "all %d held past the 7 s idle timeout" % N)
    check(1 in seen and 2 in seen,
          "keepalive bytes wait unread in the kernel (Recv-Q seen: %s)" % sorted(seen))
    # The byte that reaches the low-water mark is read at once; allow a
    # sample that catches it just before the read.
    check(max(seen) <= LOWAT, "never more than %d unread (seen %s)" % (LOWAT, sorted(seen)))
    check(server.stop() == 0, "server exits 0")
    check(client.stop() == 0, "client exits 0")
    wait_for("old connections gone", lambda: established(PORT) == 0, 10)

    # Reads every 3 s do not fit in a 1 s idle timeout (the server closes
    # after 2 whole seconds of silence; 2 s, as the period, would race the
    # read): dropped as silent, although the client sends every second.
    server, client = start(args, procs, 1)
    wait_for("the server to drop connections it does not read in time",
             lambda: "closed in the last second" in server.output() and
             established(PORT) < N, 15)
    check(server.stop() == 0, "server exits 0")
    check(client.stop() == 0, "client exits 0")


run_test(body)
