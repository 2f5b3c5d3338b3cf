#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A server at --max-connections refuses the rest, says so once, and keeps
serving: connections it holds stay, and capacity freed is used again."""
import time

from harness import Proc, check, established, run_test, wait_for

PORT = 10003
MAX = 1000


def body(args, procs):
    server = Proc("server", [args.server, "--listen", "127.0.0.1:%d" % PORT,
                             "--max-connections", str(MAX), "--backend", args.backend])
    procs.append(server)
    wait_for("server listening", lambda: "listening on" in server.output(), 10)
    client = Proc("client-a", [args.client, "--server", "127.0.0.1:%d" % PORT,
                               "--connections", "1500", "--backend", args.backend])
    procs.append(client)
    wait_for("the server to hold %d" % MAX,
             lambda: established(PORT, "server") >= MAX, 30)
    time.sleep(2)
    held = established(PORT, "server")
    check(held == MAX, "server holds exactly %d (kernel count %d)" % (MAX, held))
    log = server.output()
    check(log.count("refusing the rest") == 1, "server says once that it refuses the rest")
    check(server.alive(), "server still running")

    check(client.stop() == 0, "first client exits 0")
    wait_for("the server to let go", lambda: established(PORT, "server") == 0, 10)
    client = Proc("client-b", [args.client, "--server", "127.0.0.1:%d" % PORT,
                               "--connections", "400", "--backend", args.backend])
    procs.append(client)
    wait_for("400 on the freed server", lambda: established(PORT, "server") == 400, 30)
    check(client.stop() == 0, "second client exits 0")
    check(server.stop() == 0, "server exits 0")


run_test(body)
