#!/usr/bin/env python3
"""Request-smuggling shapes that Debian's llhttp 8.1.0 still accepts and
spoke refuses itself: obs-fold continuation lines (with an empty or a
non-empty first line) and whitespace before the colon, also when the bytes
arrive split at the awkward places (sent as separate segments with
TCP_NODELAY; if TCP coalesces them the case only gets easier, never
falsely red). Each must get 400 and a closed connection, and must never
yield a second response out of the same bytes. Good requests split the
same way must still get 200."""

import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import HELLO, Server, check, check_eq, main, test  # noqa: E402

HEAD = b"GET /hello HTTP/1.1\r\nHost: x\r\n"

BAD = [
    ("obs-fold after a value", [HEAD + b"X-A: a\r\n  folded\r\n\r\n"]),
    ("obs-fold after an empty value", [HEAD + b"X-A:\r\n  folded\r\n\r\n"]),
    ("obs-fold with a tab", [HEAD + b"X-A: a\r\n\tfolded\r\n\r\n"]),
    ("folded Transfer-Encoding",
     [b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n"
      b"Content-Length: 5\r\n\r\n0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n"]),
    ("obs-fold split after the CRLF", [HEAD + b"X-A: a\r\n", b"  folded\r\n\r\n"]),
    ("obs-fold split inside the blanks", [HEAD + b"X-A: a\r\n ", b" folded\r\n\r\n"]),
    ("empty-value fold split", [HEAD + b"X-A:\r\n", b" ", b" folded\r\n\r\n"]),
    ("obs-fold byte by byte", [bytes([c]) for c in HEAD + b"X-A:\r\n \t f\r\n\r\n"]),
    ("space before the colon", [HEAD + b"X-A : 1\r\n\r\n"]),
    ("tab before the colon", [HEAD + b"X-A\t: 1\r\n\r\n"]),
    ("bare CR ending a header", [b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: 1\rTransfer-Encoding: chunked\r\n\r\n"]),
    # Found by the fuzzer (tests/fuzz/regressions/strict): llhttp built
    # without LLHTTP_STRICT_MODE let a bare CR after an empty value hide a
    # Content-Length; the rest are bare CR/LF and fold variants.
    ("bare CR after an empty value hides a header",
     [b"POST /echo HTTP/1.1\r\nHost: a\r\nX-A:\rZContent-Length: 5\r\n\r\nhello"]),
    ("bare CR before the final CRLF", [HEAD + b"\r\r\n"]),
    ("bare CR then a byte ends the head",
     [HEAD + b"\rXGET /hello HTTP/1.1\r\nHost: a\r\n\r\n"]),
    ("bare LF ends the head", [HEAD + b"\n"]),
    ("bare LF ends the request line", [b"GET /hello HTTP/1.1\nHost: a\r\n\r\n"]),
    ("bare LF split from its line", [HEAD + b"X-A: 1", b"\n\r\n"]),
    ("chunk data without CRLF",
     [b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXX0\r\n\r\n"]),
    ("control byte in the target", [b"GET /hello?a\x0cb HTTP/1.1\r\nHost: a\r\n\r\n"]),
    ("fold line of whitespace only", [HEAD + b"X-A: \r\n\t\r\n\r\n"]),
    ("obs-fold in a trailer",
     [b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      b"3\r\nabc\r\n0\r\nX-T: a\r\n b\r\n\r\n"]),
    ("obs-fold in a trailer split across reads",
     [b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      b"3\r\nabc\r\n0\r\nX-T: a\r\n", b" b\r\n\r\n"]),
    ("bare LF ending an empty trailer section",
     [b"HEAD /hello HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      b"3\r\nabc\r\n0\r\n\n\rGET"]),
    ("bare LF ending a chunk size line",
     [b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      b"3\nabc\r\n0\r\n\r\n"]),
    ("bare LF in a trailer",
     [b"POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      b"3\r\nabc\r\n0\r\nX-T: a\n\r\n"]),
]

GOOD = [
    ("value split inside", [HEAD + b"X-A: a ", b"b\r\n\r\n"]),
    ("empty value then a header", [HEAD + b"X-A:\r\n", b"Y: 1\r\n\r\n"]),
    ("empty value split at its CRLF", [HEAD + b"X-A:", b"\r\n", b"Y: 1\r\n\r\n"]),
    ("empty last header", [HEAD + b"X-A:\r\n", b"\r\n"]),
    ("CRLF split", [HEAD + b"X-A: 1\r", b"\nY: 2\r\n\r\n"]),
    ("byte by byte", [bytes([c]) for c in HEAD + b"X-A: a b\r\nY:\r\nZ: 3\r\n\r\n"]),
]


def exchange(port, pieces):
    """Sends the pieces as separate segments; returns all bytes until close
    (or until the server has answered and a read would block)."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(10)
    try:
        for p in pieces:
            s.sendall(p)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered 400 and closed before the last piece
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
            if out.startswith(b"HTTP/1.1 200") and out.endswith(HELLO):
                break  # keep-alive: the one response is complete
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
    return out


@test
def smuggling_shapes_get_400_and_close():
    with Server(["hello.so", "echo.so"]) as srv:
        wrong = []
        for name, pieces in BAD:
            out = exchange(srv.port, pieces)
            if not out.startswith(b"HTTP/1.1 400 "):
                wrong.append("%s: %r" % (name, out[:60]))
            elif out.count(b"HTTP/1.1 ") != 1:
                wrong.append("%s: more than one response: %r" % (name, out))
        check(not wrong, "not refused:\n  " + "\n  ".join(wrong))
        check_eq(srv.get("/hello").status, 200, "alive afterwards")


@test
def good_heads_split_anywhere_still_served():
    with Server(["hello.so"]) as srv:
        wrong = []
        for name, pieces in GOOD:
            out = exchange(srv.port, pieces)
            if not (out.startswith(b"HTTP/1.1 200 ") and out.endswith(HELLO)):
                wrong.append("%s: %r" % (name, out[:60]))
        check(not wrong, "good requests refused:\n  " + "\n  ".join(wrong))


# Found by the connection fuzzer: after an upgrade request (or CONNECT,
# which llhttp treats as one) the server went on parsing the bytes that
# followed and crashed on a request that did not exist.
AFTER_UPGRADE = [
    ("upgrade then a byte",
     b"GET /hello HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\nX"),
    ("CONNECT then a request",
     b"CONNECT /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("CONNECT host:port then a request",
     b"CONNECT example.com:443 HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\n"),
]


@test
def nothing_after_an_upgrade_request_is_read():
    with Server(["hello.so"]) as srv:
        for name, data in AFTER_UPGRADE:
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
            s.close()
            check_eq(out.count(b"HTTP/1.1 "), 1, name + ": responses")
            check(b"Connection: close" in out, name + ": not closed: %r" % out)
            check_eq(srv.get("/hello").status, 200, name + ": alive afterwards")


if __name__ == "__main__":
    main()
