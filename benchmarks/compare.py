#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""io_uring against epoll, side by side, in one invocation (issue 4).

    benchmarks/compare.py [--build DIR] [--reps N] [--quick] [--readme]

Runs in its own network namespace (unshare -n, then ip link set lo up) and
sets the per-namespace sysctls it needs there (somaxconn, tcp_max_syn_backlog,
ip_local_port_range): they die with the namespace, so nothing is restored
and the machine's own settings are never touched.  Needs root.

Parts, each repeated --reps times with the backends alternating (the machine
is shared: medians are reported, every sample is kept in the JSON):
  ramp       time for tcp-client to establish N connections to tcp-server
             (N = 10,000 and 15,000 on both backends, one shard each side so
             the engines compare like with like; 100,000 on io_uring alone,
             default shards) and connects/s
  keepalive  15,000 connections each writing one byte a second; over a fixed
             window, server and client CPU (utime+stime, /proc/PID/stat) per
             keepalive byte the server received (ss bytes_received)
  memory     measured in the keepalive runs: server RSS per connection beyond
             its idle RSS (the fixed per-shard cost), client RSS per
             connection, kernel memory per connection pair (slab and
             /proc/net/sockstat "mem" deltas; both are machine-wide, so other
             work on the machine shows up as noise)
  capacity   the most connections one tcp-server holds: epoll up to its
             RLIMIT_NOFILE, io_uring up to --capacity-max (a bound of this
             benchmark, not of the server; benchmarks/capacity goes further)

Writes benchmarks/results/compare-STAMP.{json,svg,md} (and compare-latest.*),
prints the table; --readme also puts the table into benchmarks/README.md and
the plot into benchmarks/compare-latest.svg.  Bounded: every process has a
deadline and the whole run stops starting parts after --budget seconds.
Exit: 0 every target met, 1 a target missed or a part failed, 77 cannot run
here (not root, no unshare, not built).
"""
import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
BACKENDS = ("uring", "epoll")
NAMES = {"uring": "io_uring", "epoll": "epoll"}
SOURCES = "127.0.0.2-127.0.0.9"     # 8 sources: well under 30k per pair
NETNS_SYSCTLS = {
    "net/core/somaxconn": "65535",
    "net/ipv4/tcp_max_syn_backlog": "65535",
    "net/ipv4/ip_local_port_range": "1024\t65535",
}
RECORD_SYSCTLS = NETNS_SYSCTLS.keys() | {
    "net/core/netdev_max_backlog", "net/ipv4/tcp_tw_reuse", "fs/nr_open",
    "kernel/io_uring_disabled",
}
# Targets of issue 4.
TARGET_KA_RATIO = 0.75       # io_uring server CPU/message over epoll's
TARGET_RAMP_RATIO = 1.0      # io_uring connects/s over epoll's at 15,000
TARGET_RATE_100K = 100000.0  # io_uring connects/s at 100,000
TARGET_RSS_B = 64.0          # io_uring server bytes per connection


class Stop(Exception):
    """SIGTERM or SIGINT: write what was measured, then stop."""


def on_signal(signo, frame):
    raise Stop(signal.Signals(signo).name)


def read(path):
    with open(path) as f:
        return f.read()


def pdeathsig():
    """Children get SIGKILL if the benchmark dies without cleaning up."""
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG


def cpu_ticks(pid):
    f = read("/proc/%d/stat" % pid).rsplit(")", 1)[1].split()
    return int(f[11]) + int(f[12])               # utime + stime, all threads


def rss(pid):
    for line in read("/proc/%d/status" % pid).splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def sockstat_mem_bytes():
    """TCP socket buffer pages in use (machine-wide)."""
    for line in read("/proc/net/sockstat").splitlines():
        if line.startswith("TCP:"):
            f = line.split()
            return int(f[f.index("mem") + 1]) * PAGE
    return 0


# Caches a TCP connection's kernel objects come from: the sockets, their
# inode/dentry/file, epoll items, io_uring requests, buffers.
CONN_CACHES = re.compile(r"^(TCP|tcp_bind|request_sock_TCP|sock_inode_cache|"
                         r"dentry|filp|eventpoll|io_kiocb|kmalloc-|skbuff_|"
                         r"inet_peer|ip_dst_cache|ip_fib)")


def slab_bytes():
    """(all slab caches, connection-related caches): active objects x size.
    Machine-wide: other work on the machine is in here too."""
    total = conn = 0
    for line in read("/proc/slabinfo").splitlines()[2:]:
        f = line.split()
        b = int(f[1]) * int(f[3])
        total += b
        if CONN_CACHES.match(f[0]):
            conn += b
    return total, conn


def ss_server_side(port, info=True):
    """(sockets, bytes received) over established sockets on local port."""
    out = subprocess.run(["ss", "-Htn" + ("i" if info else ""), "state",
                          "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, timeout=120).stdout
    got = [int(x) for x in re.findall(r"bytes_received:(\d+)", out)]
    return sum(1 for line in out.splitlines() if not line[:1].isspace()), sum(got)


def cpu_busy(span=0.5):
    """Fraction of all cores busy (not idle or iowait) over span seconds."""
    def sample():
        f = [int(x) for x in read("/proc/stat").split("\n", 1)[0].split()[1:]]
        return sum(f), f[3] + f[4]
    t0, i0 = sample()
    time.sleep(span)
    t1, i1 = sample()
    return 1 - (i1 - i0) / max(1, t1 - t0)


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


class Proc:
    """A program under test, its stderr in a file."""

    def __init__(self, name, argv, logdir, deadline_s):
        self.name = name
        self.log_path = os.path.join(logdir, "%s.log" % name)
        self.out_path = os.path.join(logdir, "%s.out" % name)
        self.deadline = time.monotonic() + deadline_s
        with open(self.log_path, "w") as log, open(self.out_path, "w") as out:
            self.p = subprocess.Popen(argv, stdout=out, stderr=log,
                                      preexec_fn=pdeathsig)
        self.pid = self.p.pid

    def log(self):
        return read(self.log_path)

    def wait_log(self, pattern, timeout):
        end = min(time.monotonic() + timeout, self.deadline)
        while time.monotonic() < end:
            if re.search(pattern, self.log()):
                return True
            if self.p.poll() is not None:
                return bool(re.search(pattern, self.log()))
            time.sleep(0.05)
        return False

    def stop(self, grace=15):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
            try:
                self.p.wait(grace)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        return self.p.returncode

    def json(self):
        try:
            return json.loads(read(self.out_path))
        except ValueError:
            return None


class Bench:
    def __init__(self, args):
        self.args = args
        self.port = 20000
        self.logdir = tempfile.mkdtemp(prefix="compare-", dir=args.outdir)
        self.start = time.monotonic()
        self.failures = []
        self.data = {"ramp": [], "keepalive": [], "ramp_big": [], "capacity": []}

    def left(self):
        return self.args.budget - (time.monotonic() - self.start)

    def quiet(self):
        """Waits (bounded) for the machine to calm down before a run: tearing
        down a namespace with many sockets keeps a kworker busy for seconds,
        and other people's work comes and goes.  Returns the busy fraction
        the run started with, which goes into its sample."""
        end = time.monotonic() + self.args.quiet_wait
        busy = cpu_busy()
        while busy > self.args.quiet_busy and time.monotonic() < end:
            busy = cpu_busy(1.0)
        return round(busy, 3)

    def next_port(self):
        # A fresh server port per run: no TIME_WAIT from the run before.
        self.port += 1
        return self.port

    def server(self, backend, port, maxconn, shards, tag):
        argv = [self.args.server, "--listen", "127.0.0.1:%d" % port,
                "--backend", backend, "--max-connections", str(maxconn),
                "--idle-timeout", "60"]
        if shards:
            argv += ["--shards", str(shards)]
        s = Proc("server-%s" % tag, argv, self.logdir, 300)
        if not s.wait_log(r"listening on", 15):
            s.stop()
            raise RuntimeError("%s server did not start: %s" % (backend, s.log()[-400:]))
        time.sleep(0.3)   # shards up, buffers touched: the idle RSS
        return s

    def client(self, backend, port, n, tag, interval=15, shards=None,
               duration=120, inflight=None):
        argv = [self.args.client, "--server", "127.0.0.1:%d" % port,
                "--connections", str(n), "--rate", "0", "--source", SOURCES,
                "--max-inflight", str(inflight or self.args.max_inflight),
                "--interval", str(interval), "--duration", str(int(duration)),
                "--backend", backend, "--json"]
        if shards:
            argv += ["--shards", str(shards)]
        return Proc("client-%s" % tag, argv, self.logdir, duration + 30)

    def reached(self, client, n, timeout):
        return client.wait_log(r"established %d/%d" % (n, n), timeout)

    # -- parts ------------------------------------------------------------

    def ramp_once(self, backend, n, shards, rep, inflight=None):
        tag = "ramp-%s-%d-%d" % (backend, n, rep)
        port = self.next_port()
        busy = self.quiet()
        srv = self.server(backend, port, n + n // 4, shards, tag)
        rss0 = rss(srv.pid)
        cl = self.client(backend, port, n, tag, shards=shards,
                         duration=self.args.ramp_timeout, inflight=inflight)
        ok = self.reached(cl, n, self.args.ramp_timeout)
        rss1 = rss(srv.pid)
        cl.stop()
        srv.stop()
        summary = cl.json() or {}
        t = summary.get("time_to_target_s")
        row = {"backend": backend, "n": n, "rep": rep, "shards": shards,
               "busy_before": busy,
               "reached": ok and t is not None,
               "time_s": t, "connects_per_s": n / t if ok and t else None,
               "latency_us": summary.get("latency_us"),
               "failed": summary.get("failed"),
               "server_rss_per_conn_b": (rss1 - rss0) / n if ok else None}
        if not row["reached"]:
            self.failures.append("ramp %s %d rep %d did not reach target" %
                                 (backend, n, rep))
        return row

    def keepalive_once(self, backend, rep):
        a = self.args
        n = a.ka_connections
        tag = "ka-%s-%d" % (backend, rep)
        port = self.next_port()
        busy = self.quiet()
        srv = self.server(backend, port, n + n // 4, 1, tag)
        srv_idle = rss(srv.pid)
        # Kernel memory over the shortest span around the ramp, to keep
        # the rest of the machine's churn out of the delta.
        slab0, sock0 = slab_bytes(), sockstat_mem_bytes()
        cl = self.client(backend, port, n, tag, interval=1, shards=1,
                         duration=a.ramp_timeout + a.settle + a.window + 30)
        ok = self.reached(cl, n, a.ramp_timeout)
        slab1, sock1 = slab_bytes(), sockstat_mem_bytes()
        if not ok:
            cl.stop()
            srv.stop()
            self.failures.append("keepalive %s rep %d: never reached %d" %
                                 (backend, rep, n))
            return None
        time.sleep(a.settle)
        held0, bytes0 = ss_server_side(port)
        t0 = time.monotonic()
        s0, c0 = cpu_ticks(srv.pid), cpu_ticks(cl.pid)
        time.sleep(a.window)
        s1, c1 = cpu_ticks(srv.pid), cpu_ticks(cl.pid)
        t1 = time.monotonic()
        held1, bytes1 = ss_server_side(port)
        srv_rss, cl_rss = rss(srv.pid), rss(cl.pid)
        cl.stop()
        srv.stop()
        msgs = bytes1 - bytes0
        secs = t1 - t0
        row = {"backend": backend, "rep": rep, "connections": n,
               "busy_before": busy,
               "held": min(held0, held1), "window_s": secs, "messages": msgs,
               "messages_per_s": msgs / secs,
               "server_cpu_s": (s1 - s0) / CLK_TCK,
               "client_cpu_s": (c1 - c0) / CLK_TCK,
               "server_us_per_msg": (s1 - s0) / CLK_TCK / msgs * 1e6 if msgs else None,
               "client_us_per_msg": (c1 - c0) / CLK_TCK / msgs * 1e6 if msgs else None,
               "server_rss_idle_b": srv_idle, "server_rss_b": srv_rss,
               "server_rss_per_conn_b": (srv_rss - srv_idle) / n,
               "client_rss_b": cl_rss, "client_rss_per_conn_b": cl_rss / n,
               "slab_per_pair_b": (slab1[1] - slab0[1]) / n,
               "slab_all_per_pair_b": (slab1[0] - slab0[0]) / n,
               "sockstat_mem_per_pair_b": (sock1 - sock0) / n}
        if min(held0, held1) < n:
            self.failures.append("keepalive %s rep %d held only %d" %
                                 (backend, rep, min(held0, held1)))
        return row

    def capacity_once(self, backend):
        """Offers more than the server can take; counts what it holds."""
        a = self.args
        port = self.next_port()
        tag = "cap-%s" % backend
        if backend == "epoll":
            offer, maxconn = a.epoll_offer, None    # server caps itself
        else:
            offer = maxconn = a.capacity_max
        # ~8.5 KiB of kernel memory per pair (FACTS.md); keep 4 GiB spare
        # on a machine others use too.
        avail = int(re.search(r"MemAvailable:\s+(\d+)", read("/proc/meminfo"))[1]) * 1024
        if offer * 9 * 1024 + (4 << 30) > avail:
            self.failures.append("capacity %s skipped: %.1f GiB available" %
                                 (backend, avail / (1 << 30)))
            return {"backend": backend, "offered": offer, "held": 0,
                    "skipped": True, "bounded_by_benchmark": False}
        argv_max = maxconn if maxconn else 1000000
        srv = Proc("server-" + tag,
                   [a.server, "--listen", "127.0.0.1:%d" % port, "--backend",
                    backend, "--idle-timeout", "60"] +
                   (["--max-connections", str(argv_max)] if maxconn else []),
                   self.logdir, 300)
        if not srv.wait_log(r"listening on", 15):
            srv.stop()
            raise RuntimeError("capacity server did not start")
        # The client is io_uring either way, so it is never the limit.
        cl = self.client("uring", port, offer, tag, duration=a.ramp_timeout + 30)
        t0 = time.monotonic()
        best, last_change = 0, t0
        while time.monotonic() - t0 < a.ramp_timeout:
            counts = [int(x) for x in re.findall(r"connections: (\d+)", srv.log())]
            now = counts[-1] if counts else 0
            if now > best:
                best, last_change = now, time.monotonic()
            if best >= offer or time.monotonic() - last_change > 4:
                break
            time.sleep(0.5)
        held, _ = ss_server_side(port, info=False)
        srv_rss = rss(srv.pid)
        cl.stop()
        srv.stop()
        log = srv.log()
        return {"backend": backend, "offered": offer, "held": held,
                "server_log_max": best, "bounded_by_benchmark": held >= offer,
                "server_rss_b": srv_rss,
                "limit_note": (re.findall(r"holding at most \d+ connections.*", log)
                               or [""])[0]}

    def run(self):
        a = self.args
        order = list(BACKENDS)
        for rep in range(a.reps if "ramp" in a.parts else 0):
            for n in a.ramp_sizes:
                for b in order:
                    if self.left() < 60:
                        self.failures.append("budget: ramp cut short")
                        return
                    self.data["ramp"].append(self.ramp_once(b, n, 1, rep))
                    self.log_row("ramp", self.data["ramp"][-1])
                order.reverse()   # alternate which backend goes first
        for rep in range(a.reps if "keepalive" in a.parts else 0):
            for b in order:
                if self.left() < a.window + 60:
                    self.failures.append("budget: keepalive cut short")
                    return
                row = self.keepalive_once(b, rep)
                if row:
                    self.data["keepalive"].append(row)
                    self.log_row("keepalive", row)
            order.reverse()
        for rep in range(a.big_reps if "big" in a.parts else 0):
            for n in a.big_sizes:
                if self.left() < 90:
                    self.failures.append("budget: 100k ramp cut short")
                    return
                self.data["ramp_big"].append(
                    self.ramp_once("uring", n, 0, rep, a.big_inflight))
                self.log_row("ramp", self.data["ramp_big"][-1])
        for b in (BACKENDS if "capacity" in a.parts else ()):
            if self.left() < 120:
                self.failures.append("budget: capacity cut short")
                return
            self.data["capacity"].append(self.capacity_once(b))
            self.log_row("capacity", self.data["capacity"][-1])

    def log_row(self, part, row):
        keep = {k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in row.items() if not isinstance(v, dict)}
        print("%-9s %s" % (part, json.dumps(keep)), file=sys.stderr, flush=True)


def summarize(data):
    s = {"ramp": {}, "keepalive": {}, "capacity": {}, "targets": []}
    for row in data["ramp"] + data["ramp_big"]:
        key = "%s/%d" % (row["backend"], row["n"])
        s["ramp"].setdefault(key, []).append(row)
    s["ramp"] = {k: {"backend": v[0]["backend"], "n": v[0]["n"], "reps": len(v),
                     "time_s": median(r["time_s"] for r in v),
                     "connects_per_s": median(r["connects_per_s"] for r in v),
                     "min": min((r["connects_per_s"] or 0) for r in v),
                     "max": max((r["connects_per_s"] or 0) for r in v),
                     "server_rss_per_conn_b": median(r["server_rss_per_conn_b"] for r in v),
                     "busy_before_max": max(r["busy_before"] for r in v)}
                 for k, v in s["ramp"].items()}
    for b in BACKENDS:
        rows = [r for r in data["keepalive"] if r["backend"] == b]
        if rows:
            s["keepalive"][b] = {k: median(r[k] for r in rows) for k in rows[0]
                                 if k not in ("backend", "rep")}
            s["keepalive"][b]["busy_before_max"] = max(r["busy_before"] for r in rows)
            s["keepalive"][b]["reps"] = len(rows)
    for row in data["capacity"]:
        s["capacity"][row["backend"]] = row

    def ratio(a, b):
        return a / b if a and b else None

    def target(name, value, ok, want):
        s["targets"].append({"name": name, "value": value, "want": want,
                             "met": bool(ok) if value is not None else None})

    ku, ke = s["keepalive"].get("uring"), s["keepalive"].get("epoll")
    r = ratio(ku and ku["server_us_per_msg"], ke and ke["server_us_per_msg"])
    target("keepalive server CPU/msg io_uring/epoll", r,
           r is not None and r <= TARGET_KA_RATIO, "<= %.2f" % TARGET_KA_RATIO)
    ru, re_ = s["ramp"].get("uring/15000"), s["ramp"].get("epoll/15000")
    r = ratio(ru and ru["connects_per_s"], re_ and re_["connects_per_s"])
    target("ramp connects/s io_uring/epoll at 15,000", r,
           r is not None and r >= TARGET_RAMP_RATIO, ">= %.1f" % TARGET_RAMP_RATIO)
    big = s["ramp"].get("uring/100000")
    v = big and big["connects_per_s"]
    target("io_uring connects/s at 100,000", v, v and v >= TARGET_RATE_100K,
           ">= %d" % TARGET_RATE_100K)
    v = ku and ku["server_rss_per_conn_b"]
    target("io_uring server RSS/connection beyond idle (15,000)", v,
           v is not None and v < TARGET_RSS_B, "< %d B" % TARGET_RSS_B)
    return s


def machine(args):
    def sysctl(name):
        try:
            return read("/proc/sys/" + name).strip().replace("\t", " ")
        except OSError:
            return None

    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    mem = {l.split(":")[0]: int(l.split()[1]) * 1024
           for l in read("/proc/meminfo").splitlines() if l.split()[1].isdigit()}
    model = re.findall(r"model name\s*:\s*(.*)", read("/proc/cpuinfo"))
    return {
        "cores": os.cpu_count(), "cpu": model[0] if model else None,
        "kernel": os.uname().release, "mem_total_b": mem.get("MemTotal"),
        "mem_available_b": mem.get("MemAvailable"),
        "liburing": cmd(["pkg-config", "--modversion", "liburing"]),
        "loadavg": read("/proc/loadavg").split()[:3],
        "nofile": list(__import__("resource").getrlimit(
            __import__("resource").RLIMIT_NOFILE)),
        "sysctls": {n.replace("/", "."): sysctl(n) for n in sorted(RECORD_SYSCTLS)},
        "sysctls_note": "net.core.somaxconn, net.ipv4.tcp_max_syn_backlog and "
                        "net.ipv4.ip_local_port_range set in this run's own "
                        "network namespace; gone with it, nothing to restore",
        "git": cmd(["git", "-C", ROOT, "describe", "--always", "--dirty"]),
        "server_version": cmd([args.server, "--version"]),
    }


def fmt(v, spec="%.0f"):
    return spec % v if v is not None else "-"


def table(s, m, command):
    out = []
    out.append("Machine: %d cores, kernel %s, liburing %s, load %s at start; %s."
               % (m["cores"], m["kernel"], m["liburing"], " ".join(m["loadavg"]),
                  command))
    busy = [v["busy_before_max"] for v in list(s["ramp"].values()) +
            list(s["keepalive"].values()) if v.get("busy_before_max") is not None]
    if busy:
        out.append("Other work on the machine: up to %.0f%% of the CPUs busy just "
                   "before a run (each run waits up to 30 s for less than 35%%)."
                   % (100 * max(busy)))
    out.append("")
    out.append("| ramp-up (1 shard each side) | io_uring | epoll | ratio |")
    out.append("|---|---|---|---|")
    for n in sorted({v["n"] for v in s["ramp"].values()}):
        u, e = s["ramp"].get("uring/%d" % n), s["ramp"].get("epoll/%d" % n)
        cell = lambda x: ("%s/s (%s s)" % (fmt(x["connects_per_s"]),
                                           fmt(x["time_s"], "%.2f"))) if x else "-"
        r = (u["connects_per_s"] / e["connects_per_s"]
             if u and e and u["connects_per_s"] and e["connects_per_s"] else None)
        label = "%d connections%s" % (n, " (default shards)" if not e and n >= 100000 else "")
        out.append("| %s | %s | %s | %s |" % (label, cell(u), cell(e), fmt(r, "%.2f")))
    out.append("")
    ku, ke = s["keepalive"].get("uring"), s["keepalive"].get("epoll")
    out.append("| keepalive: %s connections, 1 byte/s each | io_uring | epoll | ratio |"
               % fmt((ku or ke or {}).get("connections")))
    out.append("|---|---|---|---|")
    rows = [("messages/s received", "messages_per_s", "%.0f"),
            ("server CPU per message (us)", "server_us_per_msg", "%.2f"),
            ("client CPU per message (us)", "client_us_per_msg", "%.2f"),
            ("server RSS per connection beyond idle (B)", "server_rss_per_conn_b", "%.0f"),
            ("server idle RSS (fixed, KiB)", "server_rss_idle_b", None),
            ("client RSS per connection, all in (B)", "client_rss_per_conn_b", "%.0f"),
            ("kernel slab per pair, socket caches (B)", "slab_per_pair_b", "%.0f"),
            ("kernel slab per pair, all caches (B)", "slab_all_per_pair_b", "%.0f"),
            ("kernel TCP buffer pages per pair (B)", "sockstat_mem_per_pair_b", "%.0f")]
    for label, key, spec in rows:
        u, e = ku and ku.get(key), ke and ke.get(key)
        if spec is None:
            u, e, spec = u and u / 1024, e and e / 1024, "%.0f"
        r = u / e if u and e else None
        out.append("| %s | %s | %s | %s |" % (label, fmt(u, spec), fmt(e, spec),
                                             fmt(r, "%.2f")))
    out.append("")
    out.append("| capacity: one tcp-server process | io_uring | epoll |")
    out.append("|---|---|---|")
    cu, ce = s["capacity"].get("uring"), s["capacity"].get("epoll")
    cell = lambda c: ("%d of %d offered%s" % (c["held"], c["offered"],
                      " (the benchmark's bound)" if c["bounded_by_benchmark"] else ""))\
        if c else "-"
    out.append("| connections held | %s | %s |" % (cell(cu), cell(ce)))
    out.append("")
    out.append("| target | measured | wanted | met |")
    out.append("|---|---|---|---|")
    for t in s["targets"]:
        v = t["value"]
        out.append("| %s | %s | %s | %s |" % (
            t["name"], fmt(v, "%.2f" if v is not None and v < 10 else "%.0f"),
            t["want"], {True: "yes", False: "**no**", None: "not measured"}[t["met"]]))
    return "\n".join(out) + "\n"


def plot(s, stem):
    """Three panels: ramp connects/s, keepalive CPU/message, RSS/connection."""
    dat = stem + ".dat"
    with open(dat, "w") as f:
        f.write("# label io_uring epoll\n")
        for n in (10000, 15000):
            u, e = s["ramp"].get("uring/%d" % n), s["ramp"].get("epoll/%d" % n)
            f.write('"%dk" %s %s\n' % (n // 1000, (u or {}).get("connects_per_s") or 0,
                                        (e or {}).get("connects_per_s") or 0))
        f.write("\n\n")
        ku, ke = s["keepalive"].get("uring") or {}, s["keepalive"].get("epoll") or {}
        for label, key in (("server", "server_us_per_msg"), ("client", "client_us_per_msg")):
            f.write('"%s" %s %s\n' % (label, ku.get(key) or 0, ke.get(key) or 0))
        f.write("\n\n")
        for label, key in (("server", "server_rss_per_conn_b"),
                           ("client", "client_rss_per_conn_b"),
                           ("kernel slab", "slab_per_pair_b")):
            f.write('"%s" %s %s\n' % (label, ku.get(key) or 0, ke.get(key) or 0))
    gp = """set terminal svg size 1200,420 dynamic noenhanced font "sans,11"
set output '{svg}'
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key top left
set yrange [0:*]
set multiplot layout 1,3
set title 'ramp-up: connects/s (median)'
plot '{dat}' index 0 using 2:xtic(1) title 'io_uring' lc rgb '#1f77b4', '' index 0 using 3 title 'epoll' lc rgb '#ff7f0e'
set title 'keepalive: CPU us per message (median)'
plot '{dat}' index 1 using 2:xtic(1) title 'io_uring' lc rgb '#1f77b4', '' index 1 using 3 title 'epoll' lc rgb '#ff7f0e'
set title 'memory: bytes per connection (median)'
set logscale y
set yrange [1:*]
plot '{dat}' index 2 using 2:xtic(1) title 'io_uring' lc rgb '#1f77b4', '' index 2 using 3 title 'epoll' lc rgb '#ff7f0e'
unset multiplot
""".format(svg=stem + ".svg", dat=dat)
    with open(stem + ".gp", "w") as f:
        f.write(gp)
    r = subprocess.run(["gnuplot", stem + ".gp"], capture_output=True, text=True)
    if r.returncode:
        print("gnuplot: %s" % r.stderr.strip(), file=sys.stderr)
        return None
    return stem + ".svg"


def update_readme(text, svg):
    path = os.path.join(HERE, "README.md")
    begin, end = "<!-- compare:begin -->", "<!-- compare:end -->"
    doc = read(path) if os.path.exists(path) else ""
    if begin not in doc:
        doc += "\n%s\n%s\n" % (begin, end)
    head, rest = doc.split(begin, 1)
    tail = rest.split(end, 1)[1]
    with open(path, "w") as f:
        f.write(head + begin + "\n" + text + end + tail)
    if svg:
        shutil.copy(svg, os.path.join(HERE, "compare-latest.svg"))


def inner(args):
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for name, value in NETNS_SYSCTLS.items():
        with open("/proc/sys/" + name, "w") as f:
            f.write(value)
    m = machine(args)
    bench = Bench(args)
    error = None
    try:
        bench.run()
    except (Stop, RuntimeError, OSError, subprocess.SubprocessError) as e:
        error = str(e)
        bench.failures.append("error: " + error)
    s = summarize(bench.data)
    command = os.environ.get("COMPARE_COMMAND", "benchmarks/compare.py")
    doc = {"command": command, "stamp": args.stamp, "machine": m,
           "params": {k: sorted(v) if isinstance(v, set) else v
                      for k, v in vars(args).items()},
           "elapsed_s": time.monotonic() - bench.start, "failures": bench.failures,
           "summary": s, "samples": bench.data, "logs": bench.logdir}
    stem = os.path.join(args.outdir, "compare-" + args.stamp)
    with open(stem + ".json", "w") as f:
        json.dump(doc, f, indent=2)
    svg = plot(s, stem)
    text = table(s, m, "`%s`, %d reps, medians" % (command.strip(), args.reps))
    if bench.failures:
        text += "\nNot clean: " + "; ".join(bench.failures) + "\n"
    with open(stem + ".md", "w") as f:
        f.write(text)
    for ext in (".json", ".md", ".svg"):
        if os.path.exists(stem + ext):
            shutil.copy(stem + ext, os.path.join(args.outdir, "compare-latest" + ext))
    print(text)
    print("results: %s.{json,md,svg}" % stem)
    if args.readme:
        update_readme(text, svg)
    missed = [t for t in s["targets"] if t["met"] is False]
    return 1 if missed or bench.failures else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    build = os.environ.get("MESON_BUILD_ROOT") or os.path.join(ROOT, "build")
    ap.add_argument("--server", default=os.path.join(build, "server", "tcp-server"))
    ap.add_argument("--client", default=os.path.join(build, "client", "tcp-client"))
    ap.add_argument("--build", help="build directory (sets --server, --client)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per part (3)")
    ap.add_argument("--ramp-sizes", type=lambda v: [int(x) for x in v.split(",")],
                    default=[10000, 15000])
    ap.add_argument("--big-sizes", type=lambda v: [int(x) for x in v.split(",")],
                    default=[100000], help="io_uring-only ramps (100000)")
    ap.add_argument("--big-reps", type=int, default=3)
    ap.add_argument("--ka-connections", type=int, default=15000)
    ap.add_argument("--window", type=float, default=15, help="keepalive window s (15)")
    ap.add_argument("--settle", type=float, default=3, help="s before the window (3)")
    ap.add_argument("--max-inflight", type=int, default=1024,
                    help="client connects in flight, 10k/15k ramps (1024)")
    ap.add_argument("--big-inflight", type=int, default=8192,
                    help="client connects in flight, io_uring-only ramps (8192)")
    ap.add_argument("--parts", type=lambda v: set(v.split(",")),
                    default={"ramp", "keepalive", "big", "capacity"},
                    help="any of ramp,keepalive,big,capacity (all)")
    ap.add_argument("--ramp-timeout", type=float, default=60)
    ap.add_argument("--capacity-max", type=int, default=200000,
                    help="io_uring capacity probe bound (200000)")
    ap.add_argument("--epoll-offer", type=int, default=21000,
                    help="connections offered to the epoll server (21000)")
    ap.add_argument("--quiet-busy", type=float, default=0.35,
                    help="before each run wait until the CPUs are less busy "
                         "than this fraction (0.35) ...")
    ap.add_argument("--quiet-wait", type=float, default=30,
                    help="... but at most this many s (30)")
    ap.add_argument("--budget", type=float, default=1500,
                    help="stop starting parts after this many s (1500)")
    ap.add_argument("--quick", action="store_true",
                    help="2 reps, 8 s window, one 100k ramp, 100k capacity")
    ap.add_argument("--readme", action="store_true",
                    help="write the table into benchmarks/README.md")
    ap.add_argument("--outdir", default=os.path.join(HERE, "results"))
    ap.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--stamp", help=argparse.SUPPRESS)
    argv = sys.argv[1:]
    args = ap.parse_args()
    if args.build:
        args.server = os.path.join(args.build, "server", "tcp-server")
        args.client = os.path.join(args.build, "client", "tcp-client")
    if args.quick:
        args.reps, args.window, args.big_reps = 2, 8, 1
        args.capacity_max = min(args.capacity_max, 100000)
    if args.inner:
        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        return inner(args)

    for p in (args.server, args.client):
        if not os.access(p, os.X_OK):
            print("compare: %s not built (meson setup build && ninja -C build, "
                  "or --build DIR)" % p, file=sys.stderr)
            return 77
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        print("compare: needs root, unshare and ip (own network namespace)",
              file=sys.stderr)
        return 77
    if not shutil.which("gnuplot"):
        print("compare: gnuplot missing: no plot (apt-get install gnuplot-nox)",
              file=sys.stderr)
    os.makedirs(args.outdir, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    cmd = ["unshare", "--net", "--", sys.executable, os.path.abspath(__file__),
           "--inner", "--stamp", stamp, "--server", os.path.abspath(args.server),
           "--client", os.path.abspath(args.client)] + argv
    shown, skip = ["benchmarks/compare.py"], False
    for a in argv:   # the command as a user would retype it, minus paths
        if a in ("--build", "--server", "--client", "--outdir"):
            skip = True
        elif not skip and not a.startswith(("--build=", "--server=", "--client=")):
            shown.append(a)
        else:
            skip = False
    env = dict(os.environ, COMPARE_COMMAND=" ".join(shown))
    # Ctrl-C reaches the inner run too (same process group): it writes what
    # it measured and exits; this one just waits for it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.run(cmd, env=env, timeout=args.budget + 600).returncode
    except subprocess.TimeoutExpired:
        print("compare: over budget, stopped", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
