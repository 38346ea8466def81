#!/usr/bin/env python3
"""Timeouts, each set small by its flag (300 ms to 1 s): --header-timeout
(408 for a head not complete in time, silent close for a connection that
never sent a byte), --keepalive-timeout (idle keep-alive connection
closed silently), --body-timeout (408 when the body stalls),
--body-deadline and --body-min-rate (408 for a body trickled below the
rate, none for a steady one that takes longer than the deadline),
--send-timeout (a client that does not read gets its connection closed),
--handler-timeout (504 for an async handler that has not started its
response; its late completion is discarded; sync handlers are exempt).

These are behavioural tests: they check that the thing happens and what
it looks like, never that it happens fast. Every wait is bounded by a
generous socket timeout (WAIT seconds); the client sends nothing while it
waits for a 408, so the 408 has to come on its own."""

import os
import re
import select
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Server, build_request, check,  # noqa: E402
                           check_eq, check_response, holds_peer, main,
                           read_final, test, wait_response_started)

PLUGINS = ["hello.so", "echo.so", "sleep.so", "misbehave.so"]
WAIT = 15.0             # upper bound for anything to happen
WARN_RE = re.compile(r" (warn|error): ")




def closed_silently(c, what):
    try:
        closed = c.wait_closed()
    except socket.timeout:
        closed = False
    check(closed, "%s: connection not closed within %.0fs" % (what, WAIT))


def still_serving(srv):
    with srv.conn() as c:
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)







def marker(srv, name):
    """Puts a line into the server's log through misbehave's /mis/log and
    returns the index of that line: everything the server logged for
    earlier requests is before it."""
    check_response(srv.get("/mis/log?msg=" + name), 200, b"ok")
    rx = re.compile(r"mis/log: %s$" % re.escape(name))
    m = srv.wait_log(rx)
    check(m is not None, "marker %s not in the log" % name)
    lines = srv.log_lines()
    for i in range(len(lines) - 1, -1, -1):
        if rx.search(lines[i]):
            return i
    raise AssertionError("marker %s vanished" % name)


# ------------------------------------------------------------ header timeout

@test
def incomplete_head_gets_408_on_its_own():
    with Server(PLUGINS, args=["--header-timeout", "500ms"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\n")  # no blank line
            read_final(c, 408, "head without its final CRLF")
        with srv.conn(timeout=WAIT) as c:
            c.send(b"GET /hel")                           # mid request line
            read_final(c, 408, "half a request line")
        still_serving(srv)


@test
def header_timeout_counts_from_the_first_byte_not_the_last():
    # A client trickling one byte every 100 ms never lets the connection
    # go idle for 500 ms, yet its head is not complete in 500 ms: 408.
    with Server(PLUGINS, args=["--header-timeout", "500ms"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            head = b"GET /hello HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " \
                + b"s" * 400
            deadline = time.monotonic() + WAIT
            i = 0
            got = b""
            c.settimeout(0.1)
            while time.monotonic() < deadline:
                try:
                    d = c.sock.recv(65536)
                    if not d:
                        break
                    got += d
                    if b"\r\n\r\n" in got:
                        break
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    break
                if i < len(head):
                    try:
                        c.send(head[i:i + 1])
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    i += 1
            c.settimeout(WAIT)
            check(got.startswith(b"HTTP/1.1 408"),
                  "trickled head (%d bytes sent): got %r instead of a 408"
                  % (i, got[:100]))
            c.buf += got
            read_final(c, 408, "trickled head")
        still_serving(srv)


@test
def connection_that_never_sends_is_closed_silently():
    with Server(PLUGINS, args=["--header-timeout", "500ms"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            closed_silently(c, "connection that sent nothing")
        still_serving(srv)


@test
def header_timeout_applies_to_later_requests_too():
    with Server(PLUGINS, args=["--header-timeout", "500ms",
                               "--keepalive-timeout", "30"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n")
            read_final(c, 408, "second request's head stalled")
        still_serving(srv)


@test
def head_completed_in_time_is_served():
    # A head sent in a few pieces, well within the timeout: normal.
    with Server(PLUGINS, args=["--header-timeout", "2s"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            raw = build_request("GET", "/hello")
            for i in range(0, len(raw), 8):
                c.send(raw[i:i + 8])
            check_response(c.read_response(), 200, HELLO)


# ------------------------------------------------------------ keep-alive

@test
def idle_keep_alive_connection_closed_silently():
    with Server(PLUGINS, args=["--keepalive-timeout", "500ms",
                               "--header-timeout", "30"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            closed_silently(c, "idle keep-alive connection")
        still_serving(srv)


@test
def busy_keep_alive_connection_is_not_cut():
    # Requests 100 ms apart, for about 3 s, with a 1 s keep-alive timeout:
    # the idle timer restarts after each response.
    with Server(PLUGINS, args=["--keepalive-timeout", "1s"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            t_end = time.monotonic() + 3
            n = 0
            while time.monotonic() < t_end:
                check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
                n += 1
                time.sleep(0.1)
            check(n >= 2, "only %d requests" % n)


@test
def keep_alive_timer_does_not_run_during_a_slow_handler():
    # A handler slower than the keep-alive timeout: the connection is not
    # idle while its request is being handled.
    with Server(PLUGINS, args=["--keepalive-timeout", "300ms"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            check_response(c.roundtrip("GET", "/sleep/async?ms=1000"), 200,
                           HELLO)
            check_response(c.roundtrip("GET", "/sleep/sync?ms=1000"), 200,
                           HELLO)


# ------------------------------------------------------------ body timeout

@test
def stalled_body_gets_408():
    with Server(PLUGINS, args=["--body-timeout", "500ms"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 100\r\n\r\n" + b"b" * 10)
            read_final(c, 408, "body stalled after 10 of 100")
        with srv.conn(timeout=WAIT) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 100\r\n\r\n")
            read_final(c, 408, "body stalled before its 1st byte")
        with srv.conn(timeout=WAIT) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            read_final(c, 408, "chunked body stalled")
        with srv.conn(timeout=WAIT) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n5\r\nhel")
            read_final(c, 408, "chunked body stalled mid-chunk")
        still_serving(srv)


@test
def stalled_body_after_100_continue_gets_408():
    with Server(PLUGINS, args=["--body-timeout", "500ms"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                   b"Expect: 100-continue\r\n\r\n")
            r = c.read_response(method="POST", interim=True)
            check_eq(r.status, 100, "interim status")
            read_final(c, 408, "no body after 100 Continue")
        still_serving(srv)


@test
def slow_but_steady_body_is_accepted():
    # A byte every 100 ms, 20 bytes: never 1 s without progress.
    with Server(PLUGINS, args=["--body-timeout", "1s",
                               "--header-timeout", "30"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            body = b"0123456789abcdefghij"
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                   b"Content-Type: text/plain\r\n\r\n" % len(body))
            for i in range(len(body)):
                time.sleep(0.1)
                c.send(body[i:i + 1])
            check_response(c.read_response(method="POST"), 200, body)


@test
def trickled_body_meets_the_body_deadline():
    # A byte every 100 ms never lets --body-timeout (5 s) run out, but
    # stays far below --body-min-rate (1000 bytes/s): --body-deadline
    # (1 s, plus a second per 1000 bytes) cuts it long before its 100
    # bytes are in. The pause between bytes is pacing: it ends early
    # when the 408 is there to read.
    with Server(PLUGINS, args=["--body-timeout", "5s", "--body-deadline",
                               "1s", "--body-min-rate", "1000"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 100\r\n\r\n")
            sent = 0
            while sent < 100:
                if select.select([c.sock], [], [], 0.1)[0]:
                    break  # the answer came
                try:
                    c.send(b"b")
                except (BrokenPipeError, ConnectionResetError):
                    break
                sent += 1
            read_final(c, 408, "trickled body")
            check(sent < 100, "all 100 bytes went in before the 408")
        still_serving(srv)


@test
def steady_body_at_the_minimum_rate_outlives_the_deadline():
    # 200 bytes every 50 ms, four times --body-min-rate, for 1.5 s: past
    # --body-deadline (1 s), but every 1000 bytes read bought a second.
    body = bytes(i % 251 for i in range(6000))
    with Server(PLUGINS, args=["--body-timeout", "5s", "--body-deadline",
                               "1s", "--body-min-rate", "1000"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: %d"
                   b"\r\nContent-Type: application/octet-stream\r\n\r\n"
                   % len(body))
            for i in range(0, len(body), 200):
                time.sleep(0.05)
                c.send(body[i:i + 200])
            check_response(c.read_response(method="POST"), 200, body)


# ------------------------------------------------------------ send timeout

@test
def client_that_does_not_read_is_disconnected():
    with Server(PLUGINS, args=["--send-timeout", "1s"]) as srv:
        pid = srv.serving_pid()
        still_serving(srv)
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(WAIT)
        s.connect((srv.host, srv.port))
        try:
            s.sendall(build_request("GET", "/mis/big?kb=65536"))
            # the server must close its side on its own; watch the
            # connections it holds (not the socket: reading would make
            # progress)
            wait_response_started(s, WAIT)
            port = s.getsockname()[1]
            deadline = time.monotonic() + WAIT + 15
            while holds_peer(pid, port):
                check(time.monotonic() < deadline,
                      "server kept the non-reading connection open")
                still_serving(srv)   # others are served meanwhile
                time.sleep(0.1)
            s.settimeout(WAIT)
            # now read: what was in flight, then EOF or reset, never the
            # whole 64 MiB response
            total = 0
            ended = b""
            while True:
                try:
                    d = s.recv(1 << 20)
                except ConnectionResetError:
                    break
                if not d:
                    break
                total += len(d)
                ended = (ended + d)[-16:]
            check(total < 64 * 1024 * 1024,
                  "received %d bytes: the whole response" % total)
            check(not ended.endswith(b"0\r\n\r\n"),
                  "response ended properly despite the send timeout")
        finally:
            s.close()
        still_serving(srv)


@test
def client_that_does_not_read_a_whole_body_response_is_disconnected():
    # Not streamed this time: /echo answers 12 MiB with one send, more
    # than the kernel's send buffer can take (tcp_wmem max is commonly
    # 4 MiB), so the server itself has bytes it cannot write.
    with Server(PLUGINS, args=["--send-timeout", "1s",
                               "--max-body", "16m"]) as srv:
        pid = srv.serving_pid()
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(WAIT)
        s.connect((srv.host, srv.port))
        try:
            body = b"w" * (12 * 1024 * 1024)
            s.sendall(build_request("POST", "/echo", body=body))
            wait_response_started(s, WAIT)
            port = s.getsockname()[1]
            deadline = time.monotonic() + WAIT + 15
            while holds_peer(pid, port):
                check(time.monotonic() < deadline,
                      "server kept the non-reading connection open")
                still_serving(srv)
                time.sleep(0.1)
            s.settimeout(WAIT)
            total = 0
            while True:
                try:
                    d = s.recv(1 << 20)
                except ConnectionResetError:
                    break
                if not d:
                    break
                total += len(d)
            check(total < len(body), "received all %d bytes" % total)
        finally:
            s.close()
        still_serving(srv)


@test
def slow_but_steady_reader_gets_everything():
    # Reads 64 KiB every 50 ms: always progress, never cut.
    with Server(PLUGINS, args=["--send-timeout", "1s"]) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.settimeout(WAIT)
        s.connect((srv.host, srv.port))
        try:
            s.sendall(build_request("GET", "/mis/big?kb=2048"))
            got = b""
            while not got.endswith(b"0\r\n\r\n"):
                time.sleep(0.05)
                d = s.recv(64 * 1024)
                check(d != b"", "closed after %d bytes" % len(got))
                got += d
            head, _, body = got.partition(b"\r\n\r\n")
            check(head.startswith(b"HTTP/1.1 200"), "head %r" % head[:80])
            # de-chunk
            data = bytearray()
            rest = body
            while True:
                line, _, rest = rest.partition(b"\r\n")
                size = int(line, 16)
                if size == 0:
                    break
                data += rest[:size]
                rest = rest[size + 2:]
            check_eq(len(data), 2048 * 1024, "body length")
            check(data == b"x" * (2048 * 1024), "body content")
        finally:
            s.close()


# ------------------------------------------------------------ handler timeout

@test
def async_handler_that_never_answers_gets_504():
    # /mis/abort completes only from its abort callback. After the 504
    # the request is still the plugin's; it must be aborted for the
    # plugin (at the timeout, or at the latest when the client leaves),
    # exactly once, so the plugin completes and its instance drains: a
    # SIGTERM then finds nothing in flight.
    problems = []
    with Server(PLUGINS, args=["--handler-timeout", "300ms",
                               "--shutdown-timeout", "10s"]) as srv:
        start = len(srv.log_lines())
        with srv.conn(timeout=WAIT) as c:
            c.request("GET", "/mis/abort")
            try:
                r = c.read_response()
            except socket.timeout:
                raise AssertionError("no 504 within %.0fs" % WAIT)
            check_response(r, 504)
            if (r.header("Connection") or "").lower() == "close":
                check(c.wait_closed(), "open after Connection: close")
            else:
                check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
        deadline = time.monotonic() + 10
        while True:
            body = srv.get("/mis/aborts").body
            if body == b"1\n":
                break
            if body != b"0\n":
                problems.append("abort callback ran %r times" % body)
                break
            if time.monotonic() > deadline:
                problems.append("the timed-out /mis/abort request was never "
                                "aborted for the plugin (its abort callback "
                                "did not run within 10 s of the 504 and the "
                                "client leaving), so it never completes")
                break
            time.sleep(0.05)
        end = marker(srv, "after-abort")
        warns = [l for l in srv.log_lines()[start:end] if WARN_RE.search(l)]
        if len(warns) != 1:
            problems.append("%d warn/error lines about the handler timeout, "
                            "want 1:\n%s" % (len(warns), "\n".join(warns)))
        check_response(srv.get("/hello"), 200, HELLO)
        t0 = time.monotonic()
        srv.stop()
        unfinished = [l for l in srv.log_lines() if "unfinished" in l]
        if unfinished:
            problems.append("SIGTERM waited %.1f s for the timed-out request:"
                            " %s" % (time.monotonic() - t0, unfinished[0]))
    check(not problems, "after a handler timeout:\n  "
          + "\n  ".join(problems))


@test
def late_completion_after_504_is_discarded():
    with Server(PLUGINS, args=["--handler-timeout", "300ms"]) as srv:
        start = len(srv.log_lines())
        with srv.conn(timeout=WAIT) as c:
            c.request("GET", "/mis/thread?ms=1500")
            r = c.read_response()
            check_response(r, 504)
            if (r.header("Connection") or "").lower() == "close":
                check(c.wait_closed(), "open after Connection: close")
                c = None
            # the thread completes 1.5 s after the request; wait past it
            # (pacing, not synchronisation: if it comes later, the checks
            # below are only weaker)
            time.sleep(2.5)
            if c is not None:
                # the late "from thread" must not leak onto the connection
                r = c.roundtrip("GET", "/hello")
                check_response(r, 200, HELLO)
        check_response(srv.get("/hello"), 200, HELLO)
        end = marker(srv, "after-late")
        warns = [l for l in srv.log_lines()[start:end] if WARN_RE.search(l)]
        check_eq(len(warns), 1, "warn/error lines about the handler "
                 "timeout and the late completion:\n%s\n"
                 % "\n".join(warns))
        # several at once, then the server still drains and stops cleanly
        conns = [srv.conn(timeout=WAIT) for _ in range(10)]
        try:
            for c in conns:
                c.request("GET", "/mis/thread?ms=800")
            for c in conns:
                check_response(c.read_response(), 504)
        finally:
            for c in conns:
                c.close()
        check_response(srv.get("/hello"), 200, HELLO)


@test
def handler_timeout_applies_to_async_sleep_not_to_sync():
    with Server(PLUGINS, args=["--handler-timeout", "300ms"]) as srv:
        with srv.conn(timeout=WAIT) as c:
            check_response(c.roundtrip("GET", "/sleep/async?ms=1500"), 504)
        with srv.conn(timeout=WAIT) as c:
            # sync handlers are not subject to it
            check_response(c.roundtrip("GET", "/sleep/sync?ms=1000"), 200,
                           HELLO)
        with srv.conn(timeout=WAIT) as c:
            # a fast async one is untouched
            check_response(c.roundtrip("GET", "/sleep/async?ms=1"), 200,
                           HELLO)
        still_serving(srv)


@test
def started_stream_is_not_cut_by_handler_timeout():
    # /mis/big starts its response at once; finishing after the handler
    # timeout is fine once the response has started.
    with Server(PLUGINS, args=["--handler-timeout", "300ms"]) as srv:
        s = socket.create_connection((srv.host, srv.port), timeout=WAIT)
        try:
            s.sendall(build_request("GET", "/mis/big?kb=1024"))
            got = b""
            time.sleep(0.6)   # slower than the handler timeout
            while not got.endswith(b"0\r\n\r\n"):
                d = s.recv(1 << 16)
                check(d != b"", "closed after %d bytes" % len(got))
                got += d
            check(got.startswith(b"HTTP/1.1 200"), "head %r" % got[:80])
            check(b"504" not in got[:20], "504 after the stream started")
        finally:
            s.close()


@test
def handler_timeout_zero_means_none():
    with Server(PLUGINS, args=["--handler-timeout", "0"]) as srv:
        check_response(srv.get("/sleep/async?ms=1000"), 200, HELLO)


if __name__ == "__main__":
    main()
