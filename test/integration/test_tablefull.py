#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A full fixed-file table is not a crash: with a descriptor limit of 300 a
one-shard server's table holds 300 connections; the rest are refused
(closed at once, not left hanging), counted, and logged once, and the
server keeps serving what it holds."""
import re
import socket
import time

from harness import Proc, check, run_test, wait_for

PORT = 10005
SLOTS = 300


def held(server):
    counts = re.findall(r"connections: (\d+)", server.output())
    return int(counts[-1]) if counts else 0


def body(args, procs):
    if args.backend != "uring":
        print("the fixed-file table is io_uring's; epoll's limit is covered by test_cli")
    server = Proc("server", ["prlimit", "--nofile=%d:%d" % (SLOTS, SLOTS), args.server,
                             "--listen", "127.0.0.1:%d" % PORT, "--shards", "1",
                             "--backend", args.backend])
    procs.append(server)
    wait_for("server listening", lambda: "listening on" in server.output(), 10)
    client = Proc("client", [args.client, "--server", "127.0.0.1:%d" % PORT,
                             "--connections", str(SLOTS + 100), "--json",
                             "--backend", args.backend], stdout="capture")
    procs.append(client)
    if args.backend == "uring":
        wait_for("the table-full warning", lambda: "table is full" in server.output(), 20)
    else:
        wait_for("the descriptor warning", lambda: "refus" in server.output(), 20)
    time.sleep(2)
    n = held(server)
    check(0 < n <= SLOTS, "server holds %d of at most %d slots" % (n, SLOTS))
    check(server.output().count("table is full") <= 1, "the warning is logged once")

    # A connection beyond the table is closed promptly, not left waiting.
    s = socket.create_connection(("127.0.0.1", PORT))
    s.settimeout(3)
    t0 = time.monotonic()
    try:
        data = s.recv(1)
    except OSError as e:
        data = e
    took = time.monotonic() - t0
    check(data in (b"",) or isinstance(data, ConnectionResetError),
          "an extra connection is refused (%r after %.2f s)" % (data, took))
    s.close()

    check(server.alive(), "server still running")
    check(client.stop() == 0, "client exits 0")
    summary = client.stdout_json()
    eof = summary["drops"].get("EOF", {}).get("count", 0)
    check(eof > 0, "client saw refused connections closed: %r" % summary["drops"])
    # Closed at once counts as a failure: the client backs off instead of
    # reconnecting the refused 100 in a tight loop.
    check(eof < 400, "client backs off from a full server (%d refused reconnects)" % eof)
    check(server.stop() == 0, "server exits 0")


run_test(body)
