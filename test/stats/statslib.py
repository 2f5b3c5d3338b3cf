# SPDX-License-Identifier: MIT
"""Helpers for the tcp-server-stats tests: start the service on a free
loopback port, talk raw HTTP to it, and exit 0/1/77 the way Meson expects."""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

PASS, FAIL, SKIP = 0, 1, 77


class TestFailure(Exception):
    pass


def check(cond, what, got=None, want=None):
    if not cond:
        extra = "" if got is None and want is None else " (got %r, want %r)" % (got, want)
        raise TestFailure(what + extra)


def eq(got, want, what):
    check(got == want, what, got, want)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stats:
    """tcp-server-stats on 127.0.0.1 and a free port, stopped with SIGTERM."""

    def __init__(self, exe, *args, env=None):
        self.exe = exe
        self.args = list(args)
        self.env = env
        self.proc = None
        self.port = None

    def __enter__(self):
        for _ in range(5):  # a free port can be taken before we bind it
            self.port = free_port()
            env = dict(os.environ)
            for k in ("LISTEN", "PORT", "EXPIRE", "BACKEND", "HEADER_TIMEOUT",
                      "IDLE_TIMEOUT", "MAX_REPORTERS"):
                env.pop(k, None)
            env.update(self.env or {})
            # STATS_BACKEND runs the same case on another event loop.
            backend = os.environ.get("STATS_BACKEND")
            extra = ["--backend", backend] if backend else []
            self.proc = subprocess.Popen(
                [self.exe, "--listen", "127.0.0.1:%d" % self.port] + extra + self.args,
                env=env, stderr=subprocess.PIPE, text=True)
            if self._wait_ready():
                return self
            self.proc.kill()
            self.proc.wait()
        raise TestFailure("tcp-server-stats did not start")

    def _wait_ready(self):
        deadline = time.time() + 5
        while time.time() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                if self.get("/healthz")[0] == 200:
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise TestFailure("tcp-server-stats did not stop on SIGTERM")
            err = self.proc.stderr.read()
            if exc[0] is None and rc != 0:
                raise TestFailure("tcp-server-stats exited %d: %s" % (rc, err))
            if exc[0] is not None:
                sys.stderr.write(err)
        return False

    def alive(self):
        return self.proc.poll() is None

    def request(self, method, path, body=None, headers=None, timeout=5):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body)
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
        finally:
            conn.close()

    def get(self, path):
        return self.request("GET", path)

    def get_json(self, path):
        status, _, body = self.get(path)
        eq(status, 200, "GET %s status" % path)
        return json.loads(body)

    def post(self, body, path="/api/ServerStatistics"):
        return self.request("POST", path, body=body,
                            headers={"Content-Type": "application/json"})

    def report(self, body):
        status, _, data = self.post(body)
        eq(status, 200, "POST report %r answered %r" % (body, data))

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.port), timeout=5)

    def raw(self, data, timeout=5, shut=False):
        """Sends bytes on a fresh connection, returns all bytes until EOF."""
        s = self.connect()
        s.settimeout(timeout)
        try:
            s.sendall(data)
            if shut:
                s.shutdown(socket.SHUT_WR)
            return read_all(s)
        finally:
            s.close()


def read_all(s):
    out = b""
    while True:
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            break
        if not d:
            break
        out += d
    return out


def parse_responses(data):
    """Splits raw bytes into [(status, headers, body)] using Content-Length."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        check(sep, "incomplete response head: %r" % data[:200])
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        if "content-length" in headers:
            n = int(headers["content-length"])
            out.append((status, headers, rest[:n]))
            data = rest[n:]
        else:
            out.append((status, headers, rest))
            data = b""
    return out


def run(cases):
    """argv: EXE CASE.  Runs cases[CASE](EXE) and exits 0, 1 or 77."""
    if len(sys.argv) != 3 or sys.argv[2] not in cases:
        sys.stderr.write("usage: %s EXE {%s}\n" % (sys.argv[0], ",".join(cases)))
        sys.exit(FAIL)
    exe = sys.argv[1]
    if not os.access(exe, os.X_OK):
        sys.stderr.write("SKIP: %s is not built\n" % exe)
        sys.exit(SKIP)
    try:
        rc = cases[sys.argv[2]](exe)
    except TestFailure as e:
        sys.stderr.write("FAIL: %s\n" % e)
        sys.exit(FAIL)
    sys.exit(PASS if rc is None else rc)
