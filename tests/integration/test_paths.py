#!/usr/bin/env python3
"""Request-target normalization before routing: dot segments resolved and
never above the root (also percent-encoded: %2e, %2E), percent-encoded
unreserved characters decoded, repeated slashes merged; invalid
percent-encodings, %00 and targets not starting with "/" (other than the
absolute form http://host/path) refused with 400. misbehave's
/mis/path/* answers with spoke_request_path(), the normalized path."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Server, check, check_response,  # noqa: E402
                           main, test)

PLUGINS = ["hello.so", "misbehave.so"]

# (request target, normalized path as /mis/path/* reports it)
NORMALIZED = [
    ("/mis/path/plain", "/mis/path/plain"),
    ("/mis/path/a/../b", "/mis/path/b"),
    ("/mis/path/./a", "/mis/path/a"),
    ("/mis/path/a/./b/../c", "/mis/path/a/c"),
    ("/mis/path/a/b/../../c", "/mis/path/c"),
    ("/mis/path/x/..", "/mis/path/"),
    ("/mis/path/x/.", "/mis/path/x/"),
    ("/mis/./path/a", "/mis/path/a"),
    ("/x/../mis/path/a", "/mis/path/a"),
    ("/../mis/path/a", "/mis/path/a"),
    ("/../../../../mis/path/a", "/mis/path/a"),
    ("/mis/path/../../../../../mis/path/a", "/mis/path/a"),
    ("/mis//path///a", "/mis/path/a"),
    ("//mis/path/a", "/mis/path/a"),
    ("/mis/path/a//b", "/mis/path/a/b"),
    ("/mis/path/a/%2e%2e/b", "/mis/path/b"),
    ("/mis/path/a/%2E%2E/b", "/mis/path/b"),
    ("/mis/path/a/.%2e/b", "/mis/path/b"),
    ("/mis/path/a/%2e./b", "/mis/path/b"),
    ("/mis/path/a/%2e/b", "/mis/path/a/b"),
    ("/mis/path/a/%2E/b", "/mis/path/a/b"),
    ("/%2e%2e/mis/path/a", "/mis/path/a"),
    ("/mis/path/h%65llo", "/mis/path/hello"),
    ("/mis/path/%41%42%43", "/mis/path/ABC"),
    ("/mis/path/%61%62%63", "/mis/path/abc"),
    ("/mis/path/a%2Eb", "/mis/path/a.b"),
    ("/mis/path/a%2db%5fc%7ed", "/mis/path/a-b_c~d"),
    ("/mis/path/%7E%2D%5F%2E", "/mis/path/~-_."),
    ("/mis/path/%30%39", "/mis/path/09"),
    ("/%6Dis/path/a", "/mis/path/a"),
    ("/mis/path/a?x=/../..", "/mis/path/a"),
    ("/mis/path/a/..?q=1", "/mis/path/"),
]

# request targets that reach /hello after normalization
TO_HELLO = [
    "/hello", "/../hello", "/../../hello", "/./hello", "/a/../hello",
    "/a/b/../../hello", "//hello", "///hello", "/h%65llo", "/%68ello",
    "/%68%65%6C%6C%6F", "/%2e%2e/hello", "/%2E%2E/hello", "/.%2e/hello",
    "/%2e/hello", "/a/%2e%2e/hello", "/./././hello", "/hello?a=%2e%2e",
    "/x/./../hello",
]

BAD = [
    "/mis/path/%zz", "/mis/path/%4", "/mis/path/%", "/mis/path/a%",
    "/mis/path/%g0", "/mis/path/%0g", "/hello%", "/h%zzllo",
    "/mis/path/%00", "/mis/path/a%00b", "/hello%00", "/%00/../hello",
    "hello", "mis/path/a", "*", "../hello", "./hello", "%2Fhello",
    "%2e%2e/hello",
]


def bad_request(srv, target):
    """TARGET gets a 400; then either the connection closes, or it keeps
    working normally."""
    with srv.conn() as c:
        c.send(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = c.read_response()
        except Exception as e:  # noqa: B902
            return "%s: no response (%s: %s)" % (target, type(e).__name__, e)
        if r.status != 400:
            return "%s: status %r body %r" % (target, r.status, r.body[:80])
        if (r.header("Connection") or "").lower() == "close":
            if not c.wait_closed():
                return "%s: open after Connection: close" % target
        else:
            try:
                r2 = c.roundtrip("GET", "/hello")
            except Exception as e:  # noqa: B902
                return "%s: keep-alive after the 400 broke (%s)" % (target, e)
            if r2.status != 200 or r2.body != HELLO:
                return "%s: next request got %r" % (target, r2)
    return None


@test
def dot_segments_slashes_and_unreserved_escapes_are_normalized():
    wrong = []
    with Server(PLUGINS) as srv, srv.conn() as c:
        for target, want in NORMALIZED:
            c.send(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            if r.status != 200 or r.body != want.encode():
                wrong.append("%-40s -> %s %r, want %r"
                             % (target, r.status, r.body[:80], want))
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
    check(not wrong, "paths not normalized as expected:\n  "
          + "\n  ".join(wrong))


@test
def normalized_paths_route_to_hello():
    wrong = []
    with Server(PLUGINS) as srv, srv.conn() as c:
        for target in TO_HELLO:
            c.send(b"GET " + target.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            r = c.read_response()
            if r.status != 200 or r.body != HELLO:
                wrong.append("%-24s -> %s %r" % (target, r.status,
                                                  r.body[:80]))
    check(not wrong, "targets that should reach /hello:\n  "
          + "\n  ".join(wrong))


@test
def head_and_query_keep_working_with_normalization():
    with Server(PLUGINS) as srv, srv.conn() as c:
        r = c.roundtrip("HEAD", "/a/../hello")
        check_response(r, 200, method="HEAD")
        # the query is not a path: dot segments in it are not resolved,
        # and query parameters are still decoded
        r = c.roundtrip("GET", "/mis/../mis/query?a=%2e%2e%2Fx")
        check_response(r, 200, b"a=../x")
        # the query survives a normalized path shorter than the raw one
        for target, want in (
                ("/x/../y/../z/../mis/./././/query?a=value", b"a=value"),
                ("/mis/%71%75%65%72%79?a=encoded-path", b"a=encoded-path"),
                ("/mis/query?a=plain", b"a=plain"),
                ("/mis//query?b=1&a=" + "q" * 500, b"a=" + b"q" * 500),
                ("/mis/query/.?a=dot", None)):
            r = c.roundtrip("GET", target)
            if want is None:
                check(r.status in (200, 404), "%s: %r" % (target, r))
            else:
                check_response(r, 200, want)
        # dot segments are resolved before route params are taken
        r = c.roundtrip("GET", "/mis/params/1/a/%2e%2e/x")
        check_response(r, 200, b"id=1 rest=x")


@test
def double_encoding_and_lookalikes_do_not_climb():
    # Only unreserved characters are decoded, once: "%252e" is "%2e" text,
    # not a dot; a backslash and overlong UTF-8 are not separators/dots.
    with Server(PLUGINS) as srv:
        with srv.conn() as c:
            r = c.roundtrip("GET", "/mis/path/%252e%252e/x")
            check_response(r, 200, b"/mis/path/%252e%252e/x")
        for target in ("/%252e%252e/hello", "/x/..%5chello",
                       "/x/%c0%ae%c0%ae/hello", "/x/%2e%2e%5chello"):
            with srv.conn() as c:
                c.send(b"GET " + target.encode()
                       + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                r = c.read_response()
                check(not (r.status == 200 and r.body == HELLO),
                      "%s reached /hello" % target)
        # many dot segments, far more than path segments: stays at the root
        with srv.conn() as c:
            r = c.roundtrip("GET", "/" + "../" * 1500 + "hello")
            check_response(r, 200, HELLO)
            r = c.roundtrip("GET", "/a" * 1000 + "/.." * 1000 + "/hello")
            check_response(r, 200, HELLO)
            r = c.roundtrip("GET", "/" * 3000 + "hello")
            check_response(r, 200, HELLO)
        check_response(srv.get("/hello"), 200, HELLO)


@test
def invalid_targets_get_400():
    wrong = []
    with Server(PLUGINS) as srv:
        for target in BAD:
            err = bad_request(srv, target)
            if err:
                wrong.append(err)
        check_response(srv.get("/hello"), 200, HELLO)
    check(not wrong, "targets not refused with 400:\n  " + "\n  ".join(wrong))


@test
def absolute_form_is_accepted_and_normalized():
    with Server(PLUGINS) as srv, srv.conn() as c:
        c.send(b"GET http://127.0.0.1/hello HTTP/1.1\r\nHost: x\r\n\r\n")
        check_response(c.read_response(), 200, HELLO)
        c.send(b"GET http://example.com:8080/mis/path/a/../b?q=1 HTTP/1.1"
               b"\r\nHost: example.com\r\n\r\n")
        check_response(c.read_response(), 200, b"/mis/path/b")
        c.send(b"GET http://x/../../hello HTTP/1.1\r\nHost: x\r\n\r\n")
        check_response(c.read_response(), 200, HELLO)
        c.send(b"GET http://x/mis/path/%2e%2e/%2e%2e/hello HTTP/1.1\r\n"
               b"Host: x\r\n\r\n")
        check_response(c.read_response(), 200, HELLO)


@test
def connect_and_asterisk_forms_refused():
    with Server(PLUGINS) as srv:
        for raw in (b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443"
                    b"\r\n\r\n",
                    b"GET * HTTP/1.1\r\nHost: x\r\n\r\n"):
            with srv.conn() as c:
                c.send(raw + b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
                r = c.read_response()
                check(400 <= r.status < 600 and r.status != 404,
                      "%r: status %r" % (raw[:30], r.status))
                # the bytes after a refused CONNECT are never a request
                check(c.wait_closed(), "%r: connection left open" % raw[:30])
        check_response(srv.get("/hello"), 200, HELLO)


if __name__ == "__main__":
    main()
