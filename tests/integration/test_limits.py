#!/usr/bin/env python3
"""Size and count limits, each set small by its flag: --max-request-line
(414), --max-header (431), --max-headers (431), --max-body (413, decided
from Content-Length before the body is read, and for a chunked body as it
grows), --max-conns (503 with Retry-After for the connections past it,
the others keep working), --max-requests (the Nth response on a
keep-alive connection carries Connection: close and the connection
closes). Every refusal closes its connection and the server keeps
serving /hello afterwards."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Server, build_request, check,  # noqa: E402
                           check_eq, check_response, main, read_final,
                           server_conns, test)

PLUGINS = ["hello.so", "echo.so", "misbehave.so"]




def send_tolerant(c, data):
    """Sends DATA; the server may already have answered and closed (it is
    allowed to decide before it has read everything)."""
    try:
        c.send(data)
    except (BrokenPipeError, ConnectionResetError):
        pass



def still_serving(srv):
    with srv.conn() as c:
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)


# ------------------------------------------------------------ request line

@test
def request_line_over_limit_gets_414():
    with Server(PLUGINS, args=["--max-request-line", "1k"]) as srv:
        # well under the limit: served (the query is ignored by /hello)
        with srv.conn() as c:
            path = "/hello?pad=" + "a" * 900
            check_response(c.roundtrip("GET", path), 200, HELLO)
            # and keep-alive goes on
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
        # over it, complete request in one piece
        with srv.conn() as c:
            c.send(build_request("GET", "/hello?pad=" + "b" * 2000))
            read_final(c, 414, "2 KiB request line, limit 1k")
        # over it by a long path rather than a query
        with srv.conn() as c:
            c.send(build_request("GET", "/" + "c" * 1500))
            read_final(c, 414, "1.5 KiB path, limit 1k")
        # a request line that never ends: 414 once the limit is passed,
        # without waiting for the CRLF (sent in pieces, nothing more)
        with srv.conn() as c:
            c.send(b"GET /hello?pad=")
            send_tolerant(c, b"d" * 3000)
            read_final(c, 414, "3 KiB request line without its CRLF")
        still_serving(srv)


@test
def request_line_limit_is_per_request_on_keep_alive():
    # A good request first, then an oversized one on the same connection:
    # the second gets 414 and the connection closes.
    with Server(PLUGINS, args=["--max-request-line", "512"]) as srv:
        with srv.conn() as c:
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            c.send(build_request("GET", "/hello?" + "e" * 1000))
            read_final(c, 414, "second request over --max-request-line")
        still_serving(srv)


@test
def pipelined_good_request_answered_before_the_414():
    with Server(PLUGINS, args=["--max-request-line", "512"]) as srv:
        with srv.conn() as c:
            c.send(build_request("GET", "/hello")
                   + build_request("GET", "/hello?" + "p" * 1000)
                   + build_request("GET", "/hello"))
            check_response(c.read_response(), 200, HELLO)
            read_final(c, 414, "second of three pipelined requests")
        still_serving(srv)


@test
def default_request_line_limit_is_8k():
    with Server(PLUGINS) as srv:
        with srv.conn() as c:
            check_response(c.roundtrip("GET", "/hello?p=" + "a" * 7000),
                           200, HELLO)
        with srv.conn() as c:
            c.send(build_request("GET", "/hello?p=" + "a" * 10000))
            read_final(c, 414, "10 KB request line, default limit")
        still_serving(srv)


# ------------------------------------------------------------ header block

@test
def header_block_over_limit_gets_431():
    with Server(PLUGINS, args=["--max-header", "1k"]) as srv:
        # about 600 bytes of headers: fine
        with srv.conn() as c:
            hdrs = [("X-Pad-%d" % i, "v" * 100) for i in range(5)]
            check_response(c.roundtrip("GET", "/hello", headers=hdrs),
                           200, HELLO)
        # about 3 KiB in many headers
        with srv.conn() as c:
            hdrs = [("X-Pad-%d" % i, "v" * 100) for i in range(30)]
            c.send(build_request("GET", "/hello", headers=hdrs))
            read_final(c, 431, "3 KiB header block in 30 fields, limit 1k")
        # one huge header
        with srv.conn() as c:
            c.send(build_request("GET", "/hello",
                                 headers=[("X-Huge", "h" * 3000)]))
            read_final(c, 431, "one 3 KiB header, limit 1k")
        # a header block that never ends: 431 once the limit is passed
        with srv.conn() as c:
            c.send(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Endless: ")
            send_tolerant(c, b"z" * 4000)
            read_final(c, 431, "4 KiB unfinished header, limit 1k")
        # the request line does not count against --max-header
        with srv.conn() as c:
            check_response(c.roundtrip("GET", "/hello?q=" + "r" * 1500),
                           200, HELLO)
        still_serving(srv)


@test
def header_block_limit_on_second_request():
    with Server(PLUGINS, args=["--max-header", "1k"]) as srv:
        with srv.conn() as c:
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            c.send(build_request("GET", "/hello",
                                 headers=[("X-Huge", "h" * 2000)]))
            read_final(c, 431, "second request over --max-header")
        still_serving(srv)


@test
def default_header_block_limit_is_16k():
    with Server(PLUGINS) as srv:
        with srv.conn() as c:
            hdrs = [("X-Pad-%d" % i, "v" * 1000) for i in range(12)]
            check_response(c.roundtrip("GET", "/hello", headers=hdrs),
                           200, HELLO)
        with srv.conn() as c:
            hdrs = [("X-Pad-%d" % i, "v" * 1000) for i in range(24)]
            c.send(build_request("GET", "/hello", headers=hdrs))
            read_final(c, 431, "24 KB header block, default limit")
        still_serving(srv)


# ------------------------------------------------------------ header count

@test
def header_count_over_limit_gets_431():
    with Server(PLUGINS, args=["--max-headers", "10"]) as srv:
        # exactly 10 fields (Host + 9): fine
        with srv.conn() as c:
            hdrs = [("X-N-%d" % i, "1") for i in range(9)]
            r = c.roundtrip("GET", "/hello", headers=hdrs)
            check_response(r, 200, HELLO)
        # 11 fields
        with srv.conn() as c:
            hdrs = [("X-N-%d" % i, "1") for i in range(10)]
            c.send(build_request("GET", "/hello", headers=hdrs))
            read_final(c, 431, "11 header fields, limit 10")
        # many more, tiny ones (well under --max-header in bytes)
        with srv.conn() as c:
            hdrs = [("A", "") for _ in range(200)]
            c.send(build_request("GET", "/hello", headers=hdrs))
            read_final(c, 431, "201 empty header fields, limit 10")
        # repeated names count one each
        with srv.conn() as c:
            hdrs = [("X-Same", str(i)) for i in range(20)]
            c.send(build_request("GET", "/hello", headers=hdrs))
            read_final(c, 431, "20 repeated X-Same fields, limit 10")
        still_serving(srv)


@test
def default_header_count_limit_is_100():
    with Server(PLUGINS) as srv:
        with srv.conn() as c:
            hdrs = [("X-N-%d" % i, "1") for i in range(90)]
            check_response(c.roundtrip("GET", "/hello", headers=hdrs),
                           200, HELLO)
        with srv.conn() as c:
            hdrs = [("X-N-%d" % i, "1") for i in range(150)]
            c.send(build_request("GET", "/hello", headers=hdrs))
            read_final(c, 431, "151 header fields, default limit")
        still_serving(srv)


# ------------------------------------------------------------ body

@test
def content_length_over_max_body_refused_before_the_body():
    with Server(PLUGINS, args=["--max-body", "1k"]) as srv:
        # only the head, announcing 10 MB: the 413 must come on its own,
        # the server must not wait for (or read) the body first
        with srv.conn(timeout=15) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 10000000\r\n\r\n")
            read_final(c, 413, "head announcing 10 MB, limit 1k")
        # an absurd Content-Length
        with srv.conn(timeout=15) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: 99999999999999\r\n\r\n")
            read_final(c, 413, "head announcing 99999999999999 bytes")
        # just over the limit, with the body
        with srv.conn() as c:
            c.send(build_request("POST", "/echo", body=b"x" * 1025))
            read_final(c, 413, "1025-byte body, limit 1k")
        # at the limit: fine
        with srv.conn() as c:
            check_response(c.roundtrip("POST", "/echo", body=b"y" * 1024),
                           200, b"y" * 1024)
        still_serving(srv)


@test
def chunked_body_growing_past_max_body_gets_413():
    with Server(PLUGINS, args=["--max-body", "1k"]) as srv:
        # chunks sent one by one; the 413 must come once the total passes
        # 1 KiB, even though the body has not ended
        with srv.conn(timeout=15) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(3):
                send_tolerant(c, b"200\r\n" + b"c" * 0x200 + b"\r\n")
            # 1.5 KiB sent, no last chunk
            read_final(c, 413, "unfinished chunked body of 1.5 KiB")
        # one big chunk (1 MiB announced), 2 KiB of it sent
        with srv.conn(timeout=15) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n100000\r\n")
            send_tolerant(c, b"d" * 2048)
            read_final(c, 413, "chunk of 1 MiB announced, limit 1k")
        # a complete chunked body under the limit: fine
        with srv.conn() as c:
            r = c.roundtrip("POST", "/echo", body=[b"e" * 500, b"f" * 500],
                            chunked=True)
            check_response(r, 200, b"e" * 500 + b"f" * 500)
        still_serving(srv)


@test
def max_body_takes_a_size_suffix():
    with Server(PLUGINS, args=["--max-body", "1m"]) as srv:
        with srv.conn() as c:
            r = c.roundtrip("POST", "/echo", body=b"m" * (1024 * 1024))
            check_response(r, 200)
            check_eq(len(r.body), 1024 * 1024, "echoed 1 MiB")
        with srv.conn(timeout=15) as c:
            c.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Length: %d\r\n\r\n" % (1024 * 1024 + 1))
            read_final(c, 413, "1 MiB + 1 announced, --max-body 1m")
        still_serving(srv)


@test
def bad_limit_and_timeout_values_are_refused_at_startup():
    import subprocess
    from spoke_harness import SPOKE_BIN, SPOKE_PLUGINS
    for flag, value in (("--max-body", "12q"), ("--max-header", "-1"),
                        ("--max-headers", "many"), ("--max-conns", "0"),
                        ("--header-timeout", "5x"),
                        ("--send-timeout", "ms"),
                        ("--handler-timeout", "-3")):
        p = subprocess.run([SPOKE_BIN, "--listen", "127.0.0.1:0",
                            "--plugins", SPOKE_PLUGINS, flag, value],
                           capture_output=True, text=True, timeout=30,
                           stdin=subprocess.DEVNULL)
        check(p.returncode != 0, "%s %s accepted (exit 0)" % (flag, value))
        check(flag in p.stderr, "%s %s: the error does not name the flag: "
              "%r" % (flag, value, p.stderr[-300:]))
        check("listening on" not in p.stderr,
              "%s %s: the server started" % (flag, value))


# ------------------------------------------------------------ connections

def open_served(srv, n):
    """N keep-alive connections, each with one /hello answered (so each is
    accepted and counted by the server)."""
    conns = []
    for _ in range(n):
        c = srv.conn(timeout=15)
        conns.append(c)
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
    return conns


def read_503_refusal(c, what):
    """The connection past --max-conns: 503 + Connection: close +
    Retry-After, then closed. The server may answer at once or after
    reading the request: wait a little before sending one."""
    c.settimeout(2)
    try:
        data = c.sock.recv(65536)
    except socket.timeout:
        data = None
    except ConnectionResetError:
        raise AssertionError("%s: reset without a response" % what)
    c.settimeout(15)
    if data is None:
        send_tolerant(c, build_request("GET", "/hello"))
    elif data == b"":
        raise AssertionError("%s: closed without a response" % what)
    else:
        c.buf += data
    r = read_final(c, 503, what)
    check(r.header("Retry-After") is not None,
          "%s: 503 without Retry-After: %r" % (what, r.head))
    return r


@test
def max_conns_refuses_with_503_and_existing_keep_working():
    with Server(PLUGINS, args=["--max-conns", "5", "--loops", "2"]) as srv:
        conns = open_served(srv, 5)
        try:
            # connections past the limit, several times
            for i in range(3):
                with srv.conn(timeout=15) as extra:
                    read_503_refusal(extra, "connection %d past "
                                     "--max-conns 5" % (6 + i))
            # the five keep working, keep-alive and all
            for c in conns:
                check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            # close one: a new connection is accepted again (the server
            # notices the close asynchronously: retry, bounded)
            conns.pop().close()
            deadline = time.monotonic() + 15
            while True:
                c = srv.conn(timeout=15)
                try:
                    c.request("GET", "/hello")
                    r = c.read_response()
                except (ConnectionResetError, BrokenPipeError):
                    r = None
                if r is not None and r.status == 200:
                    check_eq(r.body, HELLO, "body on the freed slot")
                    conns.append(c)
                    break
                c.close()
                check(r is None or r.status == 503,
                      "unexpected response on a freed slot: %r" % r)
                check(time.monotonic() < deadline,
                      "a closed connection's slot was not freed in 15s")
                time.sleep(0.05)
            for c in conns:
                check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
        finally:
            for c in conns:
                c.close()
        # all closed: the server serves normally again (bounded retry,
        # closes are noticed asynchronously)
        deadline = time.monotonic() + 15
        while True:
            with srv.conn(timeout=15) as c:
                try:
                    r = c.roundtrip("GET", "/hello")
                except (ConnectionResetError, BrokenPipeError):
                    r = None
            if r is not None and r.status == 200:
                break
            check(time.monotonic() < deadline,
                  "server still refusing 15s after every connection closed")
            time.sleep(0.05)


@test
def max_conns_counts_idle_connections_too():
    # Connections that sent nothing yet occupy their slot as well.
    with Server(PLUGINS, args=["--max-conns", "3"]) as srv:
        idle = [srv.conn(timeout=15) for _ in range(3)]
        try:
            # wait until the server has accepted all three (otherwise a
            # probe accepted first would make an idle one the 4th)
            ports = {i.sock.getsockname()[1] for i in idle}
            deadline = time.monotonic() + 15
            while not ports <= {rem for _, rem in
                                server_conns(srv.serving_pid())}:
                check(time.monotonic() < deadline,
                      "the server did not accept 3 idle connections")
                time.sleep(0.02)
            deadline = time.monotonic() + 15
            while True:
                c = srv.conn(timeout=15)
                try:
                    c.request("GET", "/hello")
                    r = c.read_response()
                except (ConnectionResetError, BrokenPipeError):
                    r = None
                c.close()
                if r is not None and r.status == 503:
                    check(r.header("Retry-After") is not None,
                          "503 without Retry-After: %r" % r.head)
                    break
                check(time.monotonic() < deadline,
                      "4th connection with 3 idle ones open and "
                      "--max-conns 3 not refused: %r\nidle client ports %s;"
                      " the server holds connections %s"
                      % (r, [i.sock.getsockname()[1] for i in idle],
                         server_conns(srv.serving_pid())))
                time.sleep(0.05)
            # the idle ones still work
            for c in idle:
                check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
        finally:
            for c in idle:
                c.close()


# ------------------------------------------------------------ requests/conn

@test
def max_requests_closes_after_the_nth_response():
    with Server(PLUGINS, args=["--max-requests", "3"]) as srv:
        with srv.conn() as c:
            for i in range(2):
                r = c.roundtrip("GET", "/hello")
                check_response(r, 200, HELLO)
                check((r.header("Connection") or "").lower() != "close",
                      "response %d of 3 says Connection: close" % (i + 1))
            r = c.roundtrip("GET", "/hello")
            check_response(r, 200, HELLO)
            check_eq((r.header("Connection") or "").lower(), "close",
                     "Connection header of the 3rd (last) response")
            check(c.wait_closed(), "connection open after --max-requests")
        # pipelined: five sent, three answered, then closed
        with srv.conn() as c:
            c.send(build_request("GET", "/hello") * 5)
            for i in range(3):
                r = c.read_response()
                check_response(r, 200, HELLO)
            check_eq((r.header("Connection") or "").lower(), "close",
                     "Connection header of the 3rd pipelined response")
            check(c.wait_closed(),
                  "pipelined requests past --max-requests were answered")
        # a POST with a body as the last one
        with srv.conn() as c:
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            r = c.roundtrip("POST", "/echo", body=b"last")
            check_response(r, 200, b"last")
            check_eq((r.header("Connection") or "").lower(), "close",
                     "Connection header of the last (POST) response")
            check(c.wait_closed(), "connection open after --max-requests")
        still_serving(srv)


@test
def max_requests_last_responses_reach_a_slow_pipelining_client():
    # A client pipelines far more requests than --max-requests and reads
    # slowly (small receive buffer). Every one of the N responses must
    # reach it: the server closes after the Nth with requests still
    # unread, and a plain close() then sends a reset that throws away
    # the responses still queued in the server's kernel send buffer. A
    # lingering close (shut down writing, drain the input for a while,
    # then close) delivers them, as nginx does.
    n = 100
    with Server(PLUGINS, args=["--max-requests", str(n)]) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(15)
        s.connect((srv.host, srv.port))
        try:
            try:
                # 1000 requests of 250 bytes: far more than the server
                # reads ahead, so some are still unread when it closes
                s.sendall(build_request("GET", "/hello",
                                        headers={"X-Pad": "p" * 200})
                          * (10 * n))
            except (BrokenPipeError, ConnectionResetError):
                pass
            time.sleep(0.5)  # let the server run ahead of the reader
            got = b""
            how = "EOF"
            while True:
                try:
                    d = s.recv(4096)
                except ConnectionResetError:
                    how = "reset"
                    break
                except socket.timeout:
                    how = "timeout"
                    break
                if not d:
                    break
                got += d
        finally:
            s.close()
        count = got.count(b"HTTP/1.1 200 ")
        check(count == n, "%d of the %d responses reached the client, then "
              "%s (want all %d, the last with Connection: close)"
              % (count, n, how, n))
        check(got.endswith(HELLO), "last response cut short: %r"
              % got[-80:])
        check(b"Connection: close" in got[got.rfind(b"HTTP/1.1 200 "):],
              "the last response lacks Connection: close")
        still_serving(srv)


@test
def refusal_reaches_a_client_still_sending():
    # Pipelined: 50 good requests, then a POST over --max-body whose body
    # keeps coming. The 50 responses and the 413 must all reach a client
    # that reads slowly, although the server closes with body bytes
    # unread (see the test above: lingering close).
    with Server(PLUGINS, args=["--max-body", "1k"]) as srv:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(15)
        s.connect((srv.host, srv.port))
        try:
            try:
                s.sendall(build_request("GET", "/hello",
                                        headers={"X-Pad": "p" * 200}) * 50
                          + b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                          b"Content-Length: 10000000\r\n\r\n"
                          + b"b" * 1000000)
            except (BrokenPipeError, ConnectionResetError):
                pass
            time.sleep(0.5)
            got = b""
            how = "EOF"
            while True:
                try:
                    d = s.recv(4096)
                except ConnectionResetError:
                    how = "reset"
                    break
                except socket.timeout:
                    how = "timeout"
                    break
                if not d:
                    break
                got += d
        finally:
            s.close()
        count = got.count(b"HTTP/1.1 200 ")
        check(count == 50 and b"HTTP/1.1 413 " in got,
              "%d of 50 responses%s reached the client, then %s"
              % (count, " and the 413" if b" 413 " in got else
                 " (no 413)", how))
        still_serving(srv)


@test
def max_requests_one_means_no_keep_alive():
    with Server(PLUGINS, args=["--max-requests", "1"]) as srv:
        with srv.conn() as c:
            r = c.roundtrip("GET", "/hello")
            check_response(r, 200, HELLO)
            check_eq((r.header("Connection") or "").lower(), "close",
                     "Connection header with --max-requests 1")
            check(c.wait_closed(), "connection open after --max-requests 1")


@test
def max_requests_counts_error_responses():
    # 404s and 405s are responses like any other on the connection.
    with Server(PLUGINS, args=["--max-requests", "3"]) as srv:
        with srv.conn() as c:
            check_response(c.roundtrip("GET", "/nope"), 404)
            check_response(c.roundtrip("POST", "/hello", body=b""), 405)
            r = c.roundtrip("GET", "/hello")
            check_response(r, 200, HELLO)
            check_eq((r.header("Connection") or "").lower(), "close",
                     "Connection header of the 3rd response")
            check(c.wait_closed(), "connection open after --max-requests")


@test
def default_max_requests_allows_many():
    # Default 1000: 200 requests on one connection are all kept alive.
    with Server(PLUGINS) as srv, srv.conn() as c:
        c.send(build_request("GET", "/hello") * 200)
        for i in range(200):
            r = c.read_response()
            check_response(r, 200, HELLO)
            check((r.header("Connection") or "").lower() != "close",
                  "response %d says Connection: close" % (i + 1))


if __name__ == "__main__":
    main()
