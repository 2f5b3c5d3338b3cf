# SPDX-License-Identifier: MIT
"""Shared pieces of the integration tests.

Every test runs in a network namespace of its own (unshare -n): its loopback
and its net.* sysctls are private, so a test may raise the backlog and the
port range, bind any 127.0.0.0/8 address, and never touches the machine's
settings.  Exit codes follow Meson: 0 pass, 1 fail, 77 skip.
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

SKIP = 77

SYSCTLS = {
    "net.core.somaxconn": "65535",
    "net.ipv4.tcp_max_syn_backlog": "65535",
    "net.ipv4.ip_local_port_range": "1024 65535",
}


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True, help="tcp-server binary")
    p.add_argument("--client", required=True, help="tcp-client binary")
    p.add_argument("--stats", help="tcp-server-stats binary")
    p.add_argument("--backend", default="uring")
    return p.parse_args()


def enter_netns():
    """Re-executes this script inside a new network namespace once."""
    if os.environ.get("RINGHOLD_IN_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        for key, value in SYSCTLS.items():
            with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
                f.write(value)
        return
    if os.geteuid() != 0:
        print("skip: needs root for a private network namespace")
        sys.exit(SKIP)
    env = dict(os.environ, RINGHOLD_IN_NETNS="1")
    r = subprocess.run(["unshare", "-n", sys.executable] + sys.argv, env=env)
    sys.exit(r.returncode)


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)
    print("ok:", what, flush=True)


def wait_for(what, fn, timeout, interval=0.2):
    """Polls fn() until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise Failure("timed out after %.0fs waiting for %s (last: %r)" % (timeout, what, last))


def established(port, side="server"):
    """Established TCP sockets on this loopback, counted by the kernel (ss)."""
    flt = "sport = :%d" % port if side == "server" else "dport = :%d" % port
    out = subprocess.run(["ss", "-Htn", "state", "established", flt],
                         capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def bytes_received(port):
    """Sum of bytes_received over the server's sockets on port (ss -ti)."""
    out = subprocess.run(["ss", "-Htni", "state", "established", "sport = :%d" % port],
                         capture_output=True, text=True, check=True).stdout
    total = 0
    for tok in out.split():
        if tok.startswith("bytes_received:"):
            total += int(tok.split(":", 1)[1])
    return total


class Proc:
    """A program under test, its output kept in a log file."""

    def __init__(self, name, argv, stdout=subprocess.DEVNULL):
        self.name = name
        self.log_path = "/tmp/ringhold-test-%s-%d.log" % (name, os.getpid())
        self.log = open(self.log_path, "w+")
        self.stdout_path = None
        if stdout == "capture":
            self.stdout_path = self.log_path + ".out"
            stdout = open(self.stdout_path, "w+")
        print("run:", " ".join(argv), flush=True)
        self.p = subprocess.Popen(argv, stdout=stdout, stderr=self.log)

    def signal(self, sig):
        self.p.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM and wait; returns the exit code (None if it had to be killed)."""
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                return None
        return self.p.returncode

    def output(self):
        with open(self.log_path) as f:
            return f.read()

    def stdout_json(self):
        with open(self.stdout_path) as f:
            return json.load(f)

    def alive(self):
        return self.p.poll() is None


def run_test(body):
    """Runs body(args, procs) and reports; kills whatever is left."""
    args = parse_args()
    enter_netns()
    procs = []
    code = 0
    try:
        body(args, procs)
        print("PASS")
    except Failure as e:
        print("FAIL:", e)
        code = 1
    finally:
        for p in procs:
            if p.alive():
                p.p.kill()
                p.p.wait()
        if code:
            for p in procs:
                print("---- %s log (last 30 lines) ----" % p.name)
                print("\n".join(p.output().splitlines()[-30:]))
        for p in procs:
            p.log.close()
            os.unlink(p.log_path)
    sys.exit(code)
