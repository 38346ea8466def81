#!/usr/bin/env python3
"""The shipped example plugins: hello, sleep, echo, counter."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Server, check, check_eq,  # noqa: E402
                           check_response, main, test)

EXAMPLES = ["hello.so", "sleep.so", "echo.so", "counter.so"]


@test
def hello_get_and_head():
    with Server(EXAMPLES) as srv:
        r = srv.get("/hello")
        check_response(r, 200, HELLO)
        check_eq(r.header("Content-Length"), "13", "Content-Length")
        check(r.header("Content-Type", ) is not None
              and r.header("Content-Type").startswith("text/plain"),
              "Content-Type %r" % r.header("Content-Type"))
        with srv.conn() as c:
            h = c.roundtrip("HEAD", "/hello")
            check_response(h, 200, method="HEAD")
            check_eq(h.header("Content-Length"), "13", "HEAD Content-Length")
            check_eq(h.body, b"", "HEAD body")
            # nothing after the HEAD head: the next response parses cleanly
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            # the same handler in sync mode, on the same connection
            s = c.roundtrip("GET", "/hello/sync")
            check_response(s, 200, HELLO)
            check_eq(s.header("Content-Length"), "13", "sync Content-Length")


@test
def sleep_async_and_sync():
    with Server(EXAMPLES) as srv:
        check_response(srv.get("/sleep/async?ms=10"), 200, HELLO)
        check_response(srv.get("/sleep/sync?ms=10"), 200, HELLO)
        check_response(srv.get("/sleep/async?ms=0"), 200, HELLO)
        check_response(srv.get("/sleep/sync?ms=0"), 200, HELLO)
        # the plugin refuses a non-number with its own 400
        check_response(srv.get("/sleep/async?ms=x"), 400)
        check_response(srv.get("/sleep/sync?ms=-5"), 400)


@test
def echo_body_and_content_type():
    with Server(EXAMPLES) as srv:
        r = srv.request("POST", "/echo", body=b"some body \x00\xff bytes",
                        headers={"Content-Type": "application/x-test; a=1"})
        check_response(r, 200, b"some body \x00\xff bytes")
        check_eq(r.header("Content-Type"), "application/x-test; a=1",
                 "echoed Content-Type")
        r = srv.request("POST", "/echo", body=b"")
        check_response(r, 200, b"")
        check_eq(r.header("Content-Length"), "0", "empty echo length")
        r = srv.request("POST", "/echo", body=b"untyped")
        check_response(r, 200, b"untyped")
        check_eq(r.header("Content-Type"), "application/octet-stream",
                 "default Content-Type")


@test
def echo_chunked_request_body():
    with Server(EXAMPLES) as srv:
        parts = [b"Hello", b", ", b"chunked", b" ", b"World", b"!" * 300]
        r = srv.request("POST", "/echo", body=parts, chunked=True,
                        headers={"Content-Type": "text/plain"})
        check_response(r, 200, b"".join(parts))
        check_eq(r.header("Content-Type"), "text/plain", "Content-Type")
        # chunk extensions and a trailer are legal and ignored
        with srv.conn() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n"
                   b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n")
            check_response(c.read_response(), 200, b"abcde")
        # a trailer is not a header: echo, which copies the request's
        # Content-Type, must not see one that came after the body
        with srv.conn() as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n"
                   b"3\r\nabc\r\n0\r\nContent-Type: text/trailer\r\n\r\n")
            r = c.read_response()
            check_response(r, 200, b"abc")
            check_eq(r.header("Content-Type"), "application/octet-stream",
                     "Content-Type (a trailer merged into the headers?)")


@test
def echo_large_body():
    data = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(48 * 1024))
    with Server(EXAMPLES) as srv:
        r = srv.request("POST", "/echo", body=data)
        check_response(r, 200, data)
        chunks = [data[i:i + 1000] for i in range(0, len(data), 1000)]
        r = srv.request("POST", "/echo", body=chunks, chunked=True)
        check_response(r, 200, data)


def _find_header(obj, name):
    """The value of header NAME in the JSON from /echo/headers: a
    {"Name": "value"} object, compared case-insensitively."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k.lower() == name.lower():
                return v
        for v in obj.values():
            found = _find_header(v, name)
            if found is not None:
                return found
    return None


@test
def echo_headers_json():
    with Server(EXAMPLES) as srv:
        r = srv.request("GET", "/echo/headers",
                        headers=[("X-Test", "abc"), ("Cookie", "a=1"),
                                 ("cookie", "b=2"),
                                 ("X-Quote", 'say "hi" \\ ok')])
        check_response(r, 200)
        check((r.header("Content-Type") or "").startswith("application/json"),
              "Content-Type %r" % r.header("Content-Type"))
        try:
            obj = json.loads(r.body.decode("ascii"))
        except ValueError as e:
            raise AssertionError("not JSON (%s): %r" % (e, r.body))
        check(isinstance(obj, dict), "not a JSON object: %r" % obj)
        check_eq(_find_header(obj, "X-Test"), "abc", "X-Test in %r" % obj)
        check_eq(_find_header(obj, "Host"), "127.0.0.1", "Host")
        check_eq(_find_header(obj, "Cookie"), ["a=1", "b=2"], "Cookie")
        check_eq(_find_header(obj, "X-Quote"), 'say "hi" \\ ok', "X-Quote")


@test
def counter_increases_across_connections():
    with Server(EXAMPLES) as srv:
        got = [srv.get("/counter").body for _ in range(3)]
        check_eq(got, [b"1\n", b"2\n", b"3\n"], "counter")
        with srv.conn() as c:
            got = [c.roundtrip("GET", "/counter").body for _ in range(3)]
        check_eq(got, [b"4\n", b"5\n", b"6\n"], "counter on keep-alive")


if __name__ == "__main__":
    main()
