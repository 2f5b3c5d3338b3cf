#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The tcp-server-stats API: the original's /api/ServerStatistics, our
richer reports, staleness and expiry, /metrics, probes, the dashboard page
and the command line."""
import datetime
import json
import os
import re
import subprocess
import time

from statslib import Stats, check, eq, run

FULL = {
    "role": "client", "name": "cli-1", "machineName": "ignored-when-name-is-set",
    "pod": "cli-1-abc", "namespace": "load", "node": "node-7",
    "backend": "io_uring", "connections": 480, "target": 500,
    "failures": {"ECONNREFUSED": 3, "ETIMEDOUT": 17},
    "drops": {"reset": 2}, "connectRate": 1234.5,
    "latencyUs": {"p50": 80, "p90": 120, "p99": 900, "max": 4000},
    "keepalives": 99, "rssBytes": 12345678, "startTime": 1700000000,
    "version": "0.1.0", "diagnosis": "ephemeral ports nearly exhausted",
    "somethingNew": {"nested": [1, 2, 3]},
}


def rows_by_name(st):
    return {r["name"]: r for r in st.get_json("/api/ServerStatistics")}


def compat(exe):
    with Stats(exe) as st:
        # ASP.NET bound JSON without regard to key case.
        st.report({"machineName": "a", "clients": 1})
        st.report({"MachineName": "b", "Clients": 2})
        st.report({"MACHINENAME": "c", "CLIENTS": 3})
        st.report({"machinename": "a", "clients": 10})  # an update, not a new row
        rows = st.get_json("/api/ServerStatistics")
        eq(sorted((r["machineName"], r["clients"]) for r in rows),
           [("a", 10), ("b", 2), ("c", 3)], "compat rows")
        for r in rows:
            when = datetime.datetime.fromisoformat(r["lastUpdated"].replace("Z", "+00:00"))
            age = abs((datetime.datetime.now(datetime.timezone.utc) - when).total_seconds())
            check(age < 5, "lastUpdated is now: %s" % r["lastUpdated"])
            eq(r["role"], "server", "a compat report is a server")
        # The path is matched without regard to case, as ASP.NET routed it.
        eq(st.request("GET", "/api/serverstatistics")[0], 200, "lower-case path")


def rich(exe):
    with Stats(exe) as st:
        st.report(FULL)
        rows = st.get_json("/api/ServerStatistics")
        eq(len(rows), 1, "one row")
        r = rows[0]
        for k in ("role", "name", "pod", "namespace", "node", "backend", "connections",
                  "target", "failures", "drops", "connectRate", "latencyUs",
                  "keepalives", "rssBytes", "startTime", "version", "diagnosis"):
            eq(r.get(k), FULL[k], "field " + k)
        eq(r["machineName"], "cli-1", "machineName mirrors name")
        eq(r["clients"], 480, "clients mirrors connections")
        check("somethingNew" not in r, "unknown fields ignored")
        eq(r["stale"], False, "fresh")
        # Keys in any case for our fields too, and null means absent.
        st.report({"ROLE": "SERVER", "NAME": "srv", "CONNECTIONS": 5, "pod": None})
        eq(rows_by_name(st)["srv"]["connections"], 5, "upper-case keys")
        # Same name, other role: a separate row.
        st.report({"role": "server", "name": "cli-1", "connections": 480})
        eq(len(st.get_json("/api/ServerStatistics")), 3, "role is part of the key")
        state = st.get_json("/api/state")
        eq(state["totals"], {"servers": 2, "clients": 1, "stale": 0, "reporters": 3,
                             "connections": 485, "clientConnections": 480}, "totals")


def restart(exe):
    with Stats(exe) as st:
        st.report({"role": "server", "name": "s", "connections": 100, "startTime": 1000,
                   "diagnosis": "old"})
        st.report({"role": "server", "name": "s", "connections": 150, "startTime": 1000})
        eq(rows_by_name(st)["s"]["reports"], 2, "two reports from one life")
        st.report({"role": "server", "name": "s", "connections": 0, "startTime": 2000})
        rows = st.get_json("/api/ServerStatistics")
        eq(len(rows), 1, "a restart replaces the row")
        eq(rows[0]["connections"], 0, "the new life's count")
        eq(rows[0]["startTime"], 2000, "the new start time")
        eq(rows[0]["reports"], 1, "the report count starts over")
        check("diagnosis" not in rows[0], "nothing left over from the old life")


def stale_expire(exe):
    with Stats(exe, "--expire", "2") as st:
        st.report({"role": "server", "name": "quiet", "connections": 7})
        st.report({"role": "server", "name": "chatty", "connections": 3})
        eq(st.get_json("/api/state")["totals"]["connections"], 10, "both counted")
        deadline = time.time() + 1.6
        while time.time() < deadline:  # keep one alive
            st.report({"role": "server", "name": "chatty", "connections": 3})
            time.sleep(0.2)
        rows = rows_by_name(st)
        eq(rows["quiet"]["stale"], True, "silent reporter stale after expire/2")
        eq(rows["chatty"]["stale"], False, "chatty reporter fresh")
        state = st.get_json("/api/state")
        eq(state["totals"]["connections"], 3, "a stale row is not counted")
        eq(state["totals"]["stale"], 1, "stale count")
        m = st.get("/metrics")[2].decode()
        check('ringhold_reporter_stale{role="server",name="quiet",pod="",namespace="",node=""} 1' in m,
              "stale in metrics")
        deadline = time.time() + 3
        while "quiet" in rows_by_name(st):
            st.report({"role": "server", "name": "chatty", "connections": 3})
            check(time.time() < deadline, "silent reporter expires")
            time.sleep(0.2)
        eq(list(rows_by_name(st)), ["chatty"], "only the chatty one is left")


def metrics(exe):
    with Stats(exe) as st:
        st.report(FULL)
        st.report({"role": "server", "name": 'we"ird\\name', "connections": 480})
        st.report({"machineName": "legacy", "clients": 20})
        status, headers, body = st.get("/metrics")
        eq(status, 200, "metrics status")
        check(headers["content-type"].startswith("text/plain; version=0.0.4"), "content type")
        m = body.decode()
        for line in (
            'ringhold_connections_held 500',
            'ringhold_client_connections 480',
            'ringhold_reporters{role="server",state="fresh"} 2',
            'ringhold_reporters{role="client",state="fresh"} 1',
            'ringhold_reporter_connections{role="client",name="cli-1",pod="cli-1-abc",namespace="load",node="node-7"} 480',
            'ringhold_reporter_connections{role="server",name="we\\"ird\\\\name",pod="",namespace="",node=""} 480',
            'ringhold_reporter_connections{role="server",name="legacy",pod="",namespace="",node=""} 20',
            'ringhold_reporter_failures_total{role="client",name="cli-1",pod="cli-1-abc",namespace="load",node="node-7",reason="ETIMEDOUT"} 17',
            'ringhold_reporter_latency_microseconds{role="client",name="cli-1",pod="cli-1-abc",namespace="load",node="node-7",quantile="0.99"} 900',
            'ringhold_reporter_target_connections{role="client",name="cli-1",pod="cli-1-abc",namespace="load",node="node-7"} 500',
            'ringhold_stats_reports_total{outcome="accepted"} 3',
        ):
            check(line + "\n" in m, "metrics line %r" % line)
        # Every sample line: name{labels} value, and each family declared once.
        families = set()
        for line in m.splitlines():
            if line.startswith("# TYPE "):
                name = line.split()[2]
                check(name not in families, "family %s declared once" % name)
                families.add(name)
            elif not line.startswith("#"):
                check(re.match(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)*\})? -?[0-9.e+]+$', line),
                      "well-formed sample %r" % line)


def probes(exe):
    with Stats(exe) as st:
        for path in ("/healthz", "/readyz"):
            status, _, body = st.get(path)
            eq((status, body), (200, b"ok\n"), path)


def dashboard(exe):
    with Stats(exe) as st:
        status, headers, body = st.get("/")
        eq(status, 200, "dashboard status")
        check(headers["content-type"].startswith("text/html"), "html")
        page = body.decode()
        check("/api/events" in page and "EventSource" in page, "live through SSE")
        check('id="total-connections"' in page and "<canvas" in page, "totals and chart")
        # No external assets: nothing fetched from anywhere but this service.
        check(not re.search(r'(src|href)\s*=\s*["\']?(https?:)?//', page), "no external src/href")
        check("@import" not in page and "url(" not in page, "no external CSS")
        eq(st.get("/index.html")[2], body, "/index.html is the same page")


def cli(exe):
    def go(*args, env=None):
        e = {k: v for k, v in os.environ.items()
             if k not in ("LISTEN", "PORT", "EXPIRE", "BACKEND", "HEADER_TIMEOUT",
                          "IDLE_TIMEOUT", "MAX_REPORTERS")}
        e.update(env or {})
        p = subprocess.run([exe] + list(args), env=e, capture_output=True, text=True, timeout=10)
        return p.returncode, p.stdout, p.stderr

    rc, out, err = go("--check-config")
    eq(rc, 0, "check-config exit")
    cfg = json.loads(out)
    eq((cfg["listen"], cfg["expireSeconds"], cfg["staleSeconds"], cfg["backend"]),
       ("0.0.0.0:8080", 60, 30.0, "auto"), "defaults")
    cfg = json.loads(go("--check-config", env={"PORT": "9001", "EXPIRE": "10", "BACKEND": "uring"})[1])
    eq((cfg["listen"], cfg["expireSeconds"], cfg["staleSeconds"], cfg["backend"]),
       ("0.0.0.0:9001", 10, 5.0, "io_uring"), "PORT, EXPIRE, BACKEND from the environment")
    cfg = json.loads(go("--check-config", env={"PORT": "9001", "LISTEN": "127.0.0.1:9002"})[1])
    eq(cfg["listen"], "127.0.0.1:9002", "LISTEN wins over PORT")
    cfg = json.loads(go("--check-config", "--listen", "127.0.0.1:9003", "--expire", "20",
                        "--backend", "epoll", env={"LISTEN": "127.0.0.1:9002", "EXPIRE": "10"})[1])
    eq((cfg["listen"], cfg["expireSeconds"], cfg["backend"]),
       ("127.0.0.1:9003", 20, "epoll"), "flags win over the environment")
    for args, env, word in ((["--expire", "abc"], None, "--expire"),
                            (["--expire", "0"], None, "--expire"),
                            (["--listen", "127.0.0.1:99999"], None, "--listen"),
                            (["--listen", "nohost-port:"], None, "--listen"),
                            (["--backend", "kqueue"], None, "--backend"),
                            (["--header-timeout", "-1"], None, "--header-timeout"),
                            (["--bogus"], None, "--bogus"),
                            (["--expire"], None, "--expire"),
                            (["stray"], None, "stray"),
                            ([], {"EXPIRE": "soon"}, "EXPIRE"),
                            ([], {"PORT": "http"}, "PORT"),
                            ([], {"BACKEND": "x"}, "BACKEND")):
        rc, out, err = go(*(args + ["--check-config"]), env=env)
        eq(rc, 2, "exit status for %r %r" % (args, env))
        eq(len(err.strip().splitlines()), 1, "one line for %r: %r" % (args, err))
        check(word in err, "%r names %r" % (err, word))
        eq(out, "", "nothing on stdout for %r" % args)
    rc, out, _ = go("--version")
    check(rc == 0 and re.match(r"tcp-server-stats \d+\.\d+\.\d+$", out.strip()), "version: %r" % out)
    rc, out, _ = go("--help")
    check(rc == 0 and "--listen" in out and "--expire" in out, "help")


run({
    "compat": compat,
    "rich": rich,
    "restart": restart,
    "stale-expire": stale_expire,
    "metrics": metrics,
    "probes": probes,
    "dashboard": dashboard,
    "cli": cli,
})
