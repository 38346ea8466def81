#!/usr/bin/env python3
"""Plugin mistakes and SDK features through the misbehave.so fixture:
uncompleted sync handler, double completion, handler error, completion
from a thread, streaming, client abort, header injection, route params,
query decoding."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Server, build_request, check,  # noqa: E402
                           check_eq, check_response, main, test)

PLUGINS = ["misbehave.so", "hello.so"]
STREAM = b"one\ntwo\nthree\n"


@test
def sync_handler_that_never_completes_gets_500():
    with Server(PLUGINS) as srv, srv.conn() as c:
        check_response(c.roundtrip("GET", "/mis/nocomplete"), 500)
        # the connection and the server stay usable
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
        check_response(c.roundtrip("GET", "/mis/nocomplete"), 500)


@test
def double_completion_first_wins_server_alive():
    with Server(PLUGINS) as srv:
        with srv.conn() as c:
            r = c.roundtrip("GET", "/mis/twice")
            check_response(r, 200, b"first")
            # no stray "second" bytes on the connection
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            for _ in range(3):
                check_response(c.roundtrip("GET", "/mis/twice"), 200,
                               b"first")
        check_response(srv.get("/hello"), 200, HELLO)
        bad = [l for l in srv.log_lines() if "expected SPOKE_EALREADY" in l]
        check(not bad, "second completion did not return SPOKE_EALREADY:\n%s"
              % "\n".join(bad))


@test
def handler_error_gets_500():
    with Server(PLUGINS) as srv, srv.conn() as c:
        check_response(c.roundtrip("GET", "/mis/error"), 500)
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)


@test
def completion_from_another_thread():
    with Server(PLUGINS) as srv:
        check_response(srv.get("/mis/thread"), 200, b"from thread")
        check_response(srv.get("/mis/thread?ms=0"), 200, b"from thread")
        # many at once, on one keep-alive connection each
        conns = [srv.conn() for _ in range(10)]
        try:
            for c in conns:
                c.send(build_request("GET", "/mis/thread?ms=20") * 3)
            for c in conns:
                for _ in range(3):
                    check_response(c.read_response(), 200, b"from thread")
        finally:
            for c in conns:
                c.close()


@test
def streaming_sync_and_async_is_chunked():
    with Server(PLUGINS) as srv:
        for path in ("/mis/stream", "/mis/stream-async"):
            with srv.conn() as c:
                r = c.roundtrip("GET", path)
                check_response(r, 200, STREAM)
                check_eq(r.framing, "chunked", "framing of %s" % path)
                check_eq((r.header("Transfer-Encoding") or "").lower(),
                         "chunked", "Transfer-Encoding of %s" % path)
                check(r.header("Content-Length") is None,
                      "Content-Length on a chunked response: %r" % r.head)
                # keep-alive after a chunked response
                check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
                # pipelined streams stay in order
                c.send(build_request("GET", path) * 2
                       + build_request("GET", "/hello"))
                check_response(c.read_response(), 200, STREAM)
                check_response(c.read_response(), 200, STREAM)
                check_response(c.read_response(), 200, HELLO)


@test
def streaming_head_has_no_body():
    with Server(PLUGINS) as srv, srv.conn() as c:
        r = c.roundtrip("HEAD", "/mis/stream")
        check_eq(r.status, 200, "HEAD /mis/stream status")
        check_eq(r.body, b"", "HEAD body")
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)


@test
def streaming_to_http10_client_is_not_chunked():
    with Server(PLUGINS) as srv:
        for path in ("/mis/stream", "/mis/stream-async"):
            with srv.conn() as c:
                c.send(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
                r = c.read_response()
                check_eq(r.status, 200, "status of %s" % path)
                check(r.framing != "chunked",
                      "chunked response to an HTTP/1.0 client: %r" % r.head)
                check_eq(r.body, STREAM, "body of %s over HTTP/1.0" % path)


@test
def client_abort_runs_abort_callback():
    with Server(PLUGINS) as srv:
        check_response(srv.get("/mis/aborts"), 200, b"0\n")
        c = srv.conn()
        # send the request, then close without reading anything
        c.send(build_request("GET", "/mis/abort"))
        c.close()
        # The abort is noticed asynchronously: poll, bounded.
        deadline = time.monotonic() + 10
        seen = []
        while True:
            body = srv.get("/mis/aborts").body
            seen.append(body)
            if body == b"1\n":
                break
            check(body == b"0\n", "aborts counter %r" % body)
            check(time.monotonic() < deadline,
                  "abort callback did not run within 10s (counter stayed "
                  "%r)" % body)
            time.sleep(0.05)
        check_response(srv.get("/hello"), 200, HELLO)
        # a second abort, this time with the request given time to be
        # dispatched (a /hello on another connection answered meanwhile)
        c = srv.conn()
        c.send(build_request("GET", "/mis/abort"))
        check_response(srv.get("/hello"), 200, HELLO)
        c.close()
        deadline = time.monotonic() + 10
        while srv.get("/mis/aborts").body != b"2\n":
            check(time.monotonic() < deadline,
                  "second abort not counted within 10s")
            time.sleep(0.05)


@test
def header_injection_refused():
    with Server(PLUGINS) as srv, srv.conn() as c:
        r = c.roundtrip("GET", "/mis/badheader")
        check_response(r, 200, b"SPOKE_EINVAL")
        check(b"injected" not in r.head.lower(),
              "injected header reached the wire: %r" % r.head)
        check(r.header("X-Bad") is None, "X-Bad header was sent: %r" % r.head)
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)


@test
def route_params_and_wildcard():
    with Server(PLUGINS) as srv:
        check_response(srv.get("/mis/params/42/a/b"), 200, b"id=42 rest=a/b")
        check_response(srv.get("/mis/params/7/x"), 200, b"id=7 rest=x")
        check_response(srv.get("/mis/params/9/"), 200, b"id=9 rest=")
        check_response(srv.get("/mis/params/a%20b/c"), 200,
                       b"id=a b rest=c")
        # :id matches one non-empty segment
        check_response(srv.get("/mis/params"), 404)


@test
def query_param_decoding():
    with Server(PLUGINS) as srv:
        check_response(srv.get("/mis/query?a=x%20y"), 200, b"a=x y")
        check_response(srv.get("/mis/query?b=1&a=2&a=3"), 200, b"a=2")
        check_response(srv.get("/mis/query?a="), 200, b"a=")
        check_response(srv.get("/mis/query"), 200, b"a=(null)")


if __name__ == "__main__":
    main()
