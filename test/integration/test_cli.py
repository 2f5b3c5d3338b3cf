#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Command lines: every bad option or value is a one-line error naming it,
exit code 2; --help and --version exit 0; a plan that cannot fit is refused
before anything starts; an unreachable stats service costs a log line, never
a connection."""
import subprocess
import time

from harness import Proc, check, established, run_test, wait_for

PORT = 10004


def run(argv, env=None):
    return subprocess.run(argv, capture_output=True, text=True, timeout=20, env=env)


def body(args, procs):
    bad = [
        ([args.server, "--idle-timeout", "soon"], "--idle-timeout"),
        ([args.server, "--listen", "127.0.0.1:99999"], "--listen"),
        ([args.server, "--backend", "kqueue"], "--backend"),
        ([args.server, "--no-such-option"], "--no-such-option"),
        ([args.server, "--max-connections", "-5"], "--max-connections"),
        ([args.client, "--server", "127.0.0.1:1", "--connections", "x"], "--connections"),
        ([args.client, "--server", "127.0.0.1:1", "--source", "127.0.0.9-127.0.0.1"],
         "--source"),
        ([args.client, "--connections", "5"], "--server"),
        ([args.client, "--server", "127.0.0.1:1", "--report-url", "ftp://x"],
         "--report-url"),
        ([args.client, "-s", "127.0.0.1:1", "-c", "70000"], "do not fit"),
    ]
    for argv, needle in bad:
        r = run(argv)
        lines = r.stderr.strip().splitlines()
        what = " ".join(argv[1:])
        check(r.returncode == 2, "'%s' exits 2 (got %d)" % (what, r.returncode))
        check(len(lines) == 1, "'%s' gives one line: %r" % (what, r.stderr))
        if needle:
            check(needle in lines[0], "'%s' names %s: %s" % (what, needle, lines[0]))

    env_bad = run([args.client], env={"SERVER": "127.0.0.1", "PORT": "10", "CLIENTCOUNT": "lots"})
    check(env_bad.returncode == 2 and "CLIENTCOUNT" in env_bad.stderr,
          "a bad env value is named: %s" % env_bad.stderr.strip())

    for prog in (args.server, args.client):
        r = run([prog, "--help"])
        check(r.returncode == 0 and "Usage:" in r.stdout, "%s --help" % prog)
        r = run([prog, "--version"])
        check(r.returncode == 0 and r.stdout.strip(), "%s --version: %s" % (prog, r.stdout.strip()))

    # The stats service is down: the client holds its connections anyway.
    server = Proc("server", [args.server, "--listen", "127.0.0.1:%d" % PORT,
                             "--backend", args.backend])
    procs.append(server)
    wait_for("server listening", lambda: "listening on" in server.output(), 10)
    client = Proc("client", [args.client, "--server", "127.0.0.1:%d" % PORT,
                             "--connections", "200", "--backend", args.backend,
                             "--report-url", "http://127.0.0.1:1/api/ServerStatistics",
                             "--report-interval", "1"])
    procs.append(client)
    wait_for("200 established", lambda: established(PORT) == 200, 20)
    wait_for("a warning about the report", lambda: "report to" in client.output(), 10)
    time.sleep(3)
    check(established(PORT) == 200, "all 200 held while reports fail")
    warnings = client.output().count("report to")
    check(warnings == 1, "failed reports are rate-limited (%d warnings)" % warnings)
    check(client.stop() == 0, "client exits 0")
    check(server.stop() == 0, "server exits 0")


run_test(body)
