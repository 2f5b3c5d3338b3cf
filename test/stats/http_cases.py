#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""HTTP behaviour of tcp-server-stats, one case per Meson test:
bad input gets the right status and a short body, and the service keeps
serving everyone else; keep-alive, pipelining, Expect, HEAD, SSE."""
import json
import socket
import time

from statslib import Stats, check, eq, parse_responses, read_all, run

REPORT = b'{"machineName":"m","clients":1}'


def still_serving(st):
    eq(st.get("/healthz")[0], 200, "healthz after the bad request")
    eq(st.post({"machineName": "after", "clients": 2})[0], 200,
       "a report after the bad request")


def one_error(st, raw, status, word=None, **kw):
    got = parse_responses(st.raw(raw, **kw))
    eq(len(got), 1, "responses to %r" % raw[:60])
    eq(got[0][0], status, "status for %r" % raw[:60])
    eq(got[0][1].get("connection"), "close", "Connection header on an error")
    body = json.loads(got[0][2])
    check("error" in body, "error body names the problem: %r" % body)
    if word:
        check(word in body["error"], "error %r mentions %r" % (body["error"], word))


def malformed(exe):
    with Stats(exe) as st:
        one_error(st, b"GET\x01 / HTTP/1.1\r\n\r\n", 400)
        one_error(st, b"BREW /pot HTTP/1.1\r\n\r\n", 400)
        one_error(st, b"GET / HTTP/7.3\r\nHost: x\r\n\r\n", 400)
        one_error(st, b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx", 400)
        one_error(st, b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 400)
        still_serving(st)


def bad_header(exe):
    with Stats(exe) as st:
        one_error(st, b"GET / HTTP/1.1\r\nHost x\r\n\r\n", 400)
        one_error(st, b"GET / HTTP/1.1\r\nHo st: x\r\n\r\n", 400)
        one_error(st, b"GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400)
        one_error(st, b"GET / HTTP/1.1\r\n: empty\r\n\r\n", 400)
        one_error(st, b"GET / HTTP/1.1\r\nX(y): 1\r\n\r\n", 400)
        one_error(st, b"GET / HTTP/1.1\r\nX-A: 1\n\r\n", 400)
        one_error(st, b"GET / HTTP/1.1\r\nX: a\x00b\r\n\r\n", 400)
        one_error(st, b"GET / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400)
        still_serving(st)


def head_too_large(exe):
    with Stats(exe) as st:
        big = b"GET / HTTP/1.1\r\n" + b"".join(b"X-Pad-%d: %s\r\n" % (i, b"a" * 100) for i in range(200)) + b"\r\n"
        one_error(st, big, 431, "head")
        # The same, trickled in small pieces, must hit the same limit.
        s = st.connect()
        for i in range(0, len(big), 700):
            try:
                s.sendall(big[i:i + 700])
            except OSError:
                break
        got = parse_responses(read_all(s))
        s.close()
        eq(got[0][0], 431, "status for a head sent in pieces")
        # One huge header line.
        one_error(st, b"GET / HTTP/1.1\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431)
        still_serving(st)


def body_too_large(exe):
    with Stats(exe) as st:
        # Refused on the Content-Length alone, before the body arrives.
        one_error(st, b"POST /api/ServerStatistics HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", 413, "body")
        # Chunked: refused once the chunks add up past the limit.
        chunk = b"8000\r\n" + b"x" * 0x8000 + b"\r\n"
        one_error(st, b"POST /api/ServerStatistics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3, 413, "body")
        still_serving(st)


def target_too_long(exe):
    with Stats(exe) as st:
        one_error(st, b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\n\r\n", 414)
        still_serving(st)


def not_found(exe):
    with Stats(exe) as st:
        for path in ("/nope", "/api", "/api/ServerStatistics/extra", "/metrics/"):
            status, headers, body = st.get(path)
            eq(status, 404, "status for " + path)
            check(json.loads(body)["error"], "404 body")
        still_serving(st)


def wrong_method(exe):
    with Stats(exe) as st:
        for method, path, allow in (("DELETE", "/api/ServerStatistics", "GET, HEAD, POST"),
                                    ("PUT", "/api/ServerStatistics", "GET, HEAD, POST"),
                                    ("POST", "/metrics", "GET, HEAD"),
                                    ("POST", "/", "GET, HEAD"),
                                    ("DELETE", "/healthz", "GET, HEAD"),
                                    ("POST", "/api/events", "GET, HEAD")):
            status, headers, body = st.request(method, path)
            eq(status, 405, "%s %s" % (method, path))
            eq(headers.get("allow"), allow, "Allow for %s %s" % (method, path))
        still_serving(st)


def invalid_json(exe):
    with Stats(exe) as st:
        for body, word in ((b'{"machineName": ', "invalid JSON"),
                           (b'{"machineName": "a", "clients": 1,}', "invalid JSON"),
                           (b'', "invalid JSON"),
                           (b'[1, 2]', "JSON object"),
                           (b'"text"', "JSON")):
            status, _, data = st.post(body)
            eq(status, 400, "status for %r" % body)
            msg = json.loads(data)["error"]
            check(word in msg, "error %r mentions %r" % (msg, word))
        eq(st.get_json("/api/ServerStatistics"), [], "nothing recorded")
        still_serving(st)


def wrong_type(exe):
    with Stats(exe) as st:
        cases = (({"machineName": "a", "clients": "5"}, "clients"),
                 ({"machineName": 5, "clients": 5}, "machineName"),
                 ({"name": "a", "connections": -1}, "connections"),
                 ({"name": "a", "connections": 1.5}, "connections"),
                 ({"name": "a", "connections": 1, "role": "proxy"}, "role"),
                 ({"name": "a", "connections": 1, "latencyUs": {"p99": "x"}}, "latencyUs.p99"),
                 ({"name": "a", "connections": 1, "failures": {"ECONNREFUSED": "x"}}, "failures.ECONNREFUSED"),
                 ({"name": "a", "connections": 1, "drops": [1]}, "drops"),
                 ({"name": "a", "connections": 1, "connectRate": "fast"}, "connectRate"),
                 ({"name": "a", "connections": 1, "rssBytes": {}}, "rssBytes"),
                 ({"name": "a", "connections": 1, "pod": 3}, "pod"),
                 ({"name": "a" * 300, "connections": 1}, "name"),
                 ({"name": "a", "connections": 1, "pod": "p" * 300}, "pod"),
                 ({"connections": 1}, "name"),
                 ({"name": "a"}, "connections"))
        for body, field in cases:
            status, _, data = st.post(body)
            eq(status, 400, "status for %r" % body)
            msg = json.loads(data)["error"]
            check("'%s'" % field in msg, "error %r names field %r" % (msg, field))
        eq(st.get_json("/api/ServerStatistics"), [], "nothing recorded")
        still_serving(st)


def slow_client(exe):
    import select
    with Stats(exe, "--header-timeout", "1") as st:
        slow = st.connect()
        slow.settimeout(6)
        start = time.time()
        answered = None
        slow.sendall(b"GET /healthz HTTP/1.1\r\n")
        # One byte every 0.3 s: far slower than any real client.
        for c in b"Host: localhost\r\nX-Slow: yes\r\nX-Slower: still\r\n\r\n":
            if select.select([slow], [], [], 0)[0]:
                answered = time.time() - start
                break
            try:
                slow.sendall(bytes([c]))
            except OSError:
                break
            # Meanwhile everybody else is served.
            eq(st.get("/healthz")[0], 200, "healthz while a slow client trickles")
            time.sleep(0.3)
        got = read_all(slow)
        slow.close()
        check(answered is not None, "the slow client was answered before it finished")
        # The timeout is checked once a second: 1 s, plus up to 1 s.
        check(answered < 3, "slow client dropped after about the header timeout (%.1f s)" % answered)
        resp = parse_responses(got)
        eq(resp[0][0] if resp else None, 408, "slow client answered 408")
        still_serving(st)


def idle_timeout(exe):
    with Stats(exe, "--idle-timeout", "1") as st:
        s = st.connect()
        s.settimeout(5)
        start = time.time()
        eq(read_all(s), b"", "an idle connection is closed without a word")
        elapsed = time.time() - start
        check(0.9 <= elapsed < 3.5, "idle connection closed after about 1 s (%.1f s)" % elapsed)
        still_serving(st)


def disconnect_mid_body(exe):
    with Stats(exe) as st:
        for _ in range(20):
            s = st.connect()
            s.sendall(b"POST /api/ServerStatistics HTTP/1.1\r\nContent-Length: 100\r\n\r\n"
                      b'{"machineName":')
            s.close()
        s = st.connect()
        s.sendall(b"POST /api/ServerStatistics HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()  # a reset rather than a FIN
        eq(st.get_json("/api/ServerStatistics"), [], "no half report recorded")
        still_serving(st)
        m = st.get("/metrics")[2].decode()
        check("ringhold_stats_http_connections 1\n" in m or "ringhold_stats_http_connections 0\n" in m,
              "aborted connections are gone: " + [l for l in m.splitlines() if l.startswith("ringhold_stats_http_connections ")][0])


def keep_alive(exe):
    with Stats(exe) as st:
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", st.port, timeout=5)
        sock = None
        for i in range(10):
            conn.request("POST", "/api/ServerStatistics",
                         body=json.dumps({"name": "ka", "role": "server", "connections": i}))
            r = conn.getresponse()
            eq(r.status, 200, "POST %d on one connection" % i)
            eq(r.getheader("Connection"), "keep-alive", "keep-alive answered")
            r.read()
            if sock is None:
                sock = conn.sock
            check(conn.sock is sock, "the connection was reused")
            conn.request("GET", "/api/ServerStatistics")
            r = conn.getresponse()
            rows = json.loads(r.read())
            eq(rows[0]["connections"], i, "count after POST %d" % i)
        conn.close()
        # HTTP/1.0 without keep-alive: answered, then closed.
        got = parse_responses(st.raw(b"GET /healthz HTTP/1.0\r\n\r\n"))
        eq(got[0][0], 200, "HTTP/1.0 request")
        eq(got[0][1]["connection"], "close", "HTTP/1.0 connection closes")


def pipelining(exe):
    body = json.dumps({"name": "pipe", "role": "client", "connections": 7}).encode()
    req = (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
           b"POST /api/ServerStatistics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
           b"GET /api/ServerStatistics HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
           b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (len(body), body))
    with Stats(exe) as st:
        for how in ("at once", "byte by byte", "in odd pieces"):
            s = st.connect()
            if how == "at once":
                s.sendall(req)
            else:
                step = 1 if how == "byte by byte" else 7
                for i in range(0, len(req), step):
                    s.sendall(req[i:i + step])
            got = parse_responses(read_all(s))
            s.close()
            eq([g[0] for g in got], [200, 200, 200, 404, 200], "statuses " + how)
            eq(json.loads(got[2][2])[0]["connections"], 7, "list sees the pipelined POST " + how)
            eq(got[4][1]["connection"], "close", "last response closes " + how)


def expect_continue(exe):
    with Stats(exe) as st:
        s = st.connect()
        s.sendall(b"POST /api/ServerStatistics HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(REPORT))
        first = s.recv(100)
        check(first.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), "100 Continue first: %r" % first)
        s.sendall(REPORT)
        s.shutdown(socket.SHUT_WR)
        got = parse_responses(first[25:] + read_all(s))
        s.close()
        eq(got[0][0], 200, "report after 100 Continue")
        # Chunked bodies are fine too.
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(REPORT), REPORT)
        got = parse_responses(st.raw(b"POST /api/ServerStatistics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
                                     b"Connection: close\r\n\r\n" + chunked))
        eq(got[0][0], 200, "chunked report")


def head_method(exe):
    with Stats(exe) as st:
        for path in ("/", "/metrics", "/api/ServerStatistics", "/healthz"):
            raw = st.raw(b"HEAD %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
            head, _, rest = raw.partition(b"\r\n\r\n")
            check(head.startswith(b"HTTP/1.1 200"), "HEAD %s status: %r" % (path, head[:40]))
            eq(rest, b"", "HEAD %s has no body" % path)


def sse(exe):
    with Stats(exe) as st:
        s = st.connect()
        s.settimeout(5)
        s.sendall(b"GET /api/events HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n")
        buf = b""

        def next_event():
            nonlocal buf
            while b"\n\n" not in buf.partition(b"\r\n\r\n")[2] if b"\r\n\r\n" in buf else True:
                d = s.recv(65536)
                check(d, "event stream ended early")
                buf += d
            head, _, body = buf.partition(b"\r\n\r\n")
            ev, _, rest = body.partition(b"\n\n")
            buf = head + b"\r\n\r\n" + rest
            fields = {}
            for line in ev.decode().split("\n"):
                k, _, v = line.partition(": ")
                fields[k] = v
            return fields

        first = next_event()
        check("retry" in first, "stream starts with a retry hint: %r" % first)
        head = buf.partition(b"\r\n\r\n")[0].decode().lower()
        check("content-type: text/event-stream" in head, "SSE content type: %r" % head)
        hist = next_event()
        eq(hist.get("event"), "history", "first event")
        check(isinstance(json.loads(hist["data"]), list), "history is a list")
        state = next_event()
        eq(state.get("event"), "state", "second event")
        eq(json.loads(state["data"])["totals"]["connections"], 0, "no connections yet")
        st.report({"name": "sse-srv", "role": "server", "connections": 42})
        start = time.time()
        while True:
            ev = next_event()
            data = json.loads(ev["data"])
            if data["totals"]["connections"] == 42:
                break
            check(time.time() - start < 3, "the report shows up in a state event within 3 s")
        names = [r["name"] for r in data["reporters"]]
        eq(names, ["sse-srv"], "reporters in the event")
        m = st.get("/metrics")[2].decode()
        check("ringhold_stats_sse_clients 1\n" in m, "one SSE client counted")
        s.close()


run({
    "malformed": malformed,
    "bad-header": bad_header,
    "head-too-large": head_too_large,
    "body-too-large": body_too_large,
    "target-too-long": target_too_long,
    "not-found": not_found,
    "wrong-method": wrong_method,
    "invalid-json": invalid_json,
    "wrong-type": wrong_type,
    "slow-client": slow_client,
    "idle-timeout": idle_timeout,
    "disconnect-mid-body": disconnect_mid_body,
    "keep-alive": keep_alive,
    "pipelining": pipelining,
    "expect-continue": expect_continue,
    "head-method": head_method,
    "sse": sse,
})
