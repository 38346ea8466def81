#!/usr/bin/env python3
"""File bodies through the kernel, and streams of declared length (SDK
1.5: spoke_response_file, spoke_response_length).

The fixture `files` answers a file it opens with spoke_response_file
(from a worker and from the loop) and streams bodies of a declared
length. These tests check what a client and the server's descriptors
see:
  - bodies are byte-exact with Content-Length and no chunking, whole or
    an offset and length, small or larger than the socket buffers (the
    socket fills, and the rest goes as the client reads);
  - HEAD, 304 and 204 send no body, and close the descriptor;
  - pipelined requests behind a file are answered after it, in order;
    Connection: close and HTTP/1.0 end after the whole file;
  - a client that leaves mid-file, or reads nothing past --send-timeout,
    costs nothing: the server serves on and every descriptor it opened
    is closed (counted in /proc);
  - a file shorter than the length promised ends the connection;
  - a drain waits for a file on its way to a slow reader;
  - a declared-length stream is framed by Content-Length, refuses a
    write past it, and is cut off when it ends short.
No sleeps: the tests wait on sockets, log lines and the process."""

import hashlib
import os
import re
import signal
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (IO_TIMEOUT, Conn, Server, build_request,  # noqa: E402
                           check, check_eq, main, test)

WORK = tempfile.mkdtemp(prefix="spoke-it-files-")


def make_file(name, size, seed=7):
    """A file of SIZE pseudo-random bytes; returns (path, bytes)."""
    path = os.path.join(WORK, name)
    data = bytearray()
    h = hashlib.sha256(b"%d" % seed).digest()
    while len(data) < size:
        h = hashlib.sha256(h).digest()
        data += h * 64
    data = bytes(data[:size])
    with open(path, "wb") as f:
        f.write(data)
    return path, data


SMALL, SMALL_DATA = make_file("small.bin", 3000)
BIG, BIG_DATA = make_file("big.bin", 24 << 20, seed=9)


def q(path):
    return path.replace("/", "%2F")


def fds(srv):
    """The serving process's open descriptors, as a count."""
    return len(os.listdir("/proc/%d/fd" % srv.serving_pid()))


def held_base(srv):
    """A connection the test keeps open, and the serving process's
    descriptor count with it: the server's side of a connection the
    client has just closed may or may not be closed yet, so the base is
    taken with no connection in that state."""
    c = Conn(srv.port)
    check_eq(c.roundtrip("GET", "/hello").status, 200, "warm")
    return c, fds(srv)


def wait_fds(srv, want, what, timeout=10.0):
    """Polls until the serving process holds WANT descriptors, within
    TIMEOUT (the server closes a connection's descriptors when it notices
    the close, a moment after the client's)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while fds(srv) != want and time.monotonic() < deadline:
        pause.wait(0.02)  # a short, bounded pause between looks
    check_eq(fds(srv), want, what)


def files_server(*args):
    return Server(["hello", "files.so"], args=["--loops", "1"] + list(args))


@test
def whole_and_partial_files_are_exact_with_a_length():
    with files_server() as srv:
        with Conn(srv.port) as c:
            for route in ("/file/send", "/file/async"):
                r = c.roundtrip("GET", "%s?path=%s" % (route, q(SMALL)))
                check_eq((r.status, r.framing, r.body),
                         (200, "length", SMALL_DATA), route + " small")
                check_eq(r.header("Content-Length"), str(len(SMALL_DATA)),
                         "length")
            r = c.roundtrip("GET", "/file/send?path=%s" % q(BIG))
            check_eq((r.status, r.framing), (200, "length"), "big")
            check(r.body == BIG_DATA, "big body byte-exact (%d bytes)"
                  % len(r.body))
            off, n = 5_000_001, 3_333_333
            r = c.roundtrip("GET", "/file/send?path=%s&off=%d&len=%d"
                            % (q(BIG), off, n))
            check(r.body == BIG_DATA[off:off + n], "a slice byte-exact")
            r = c.roundtrip("GET", "/hello")
            check_eq(r.body, b"Hello, World!", "the connection goes on")


@test
def head_and_no_content_statuses_send_no_body_and_close_the_file():
    with files_server() as srv:
        keep, base = held_base(srv)
        with Conn(srv.port) as c:
            r = c.roundtrip("HEAD", "/file/send?path=%s" % q(BIG))
            check_eq((r.status, r.header("Content-Length")),
                     (200, str(len(BIG_DATA))), "HEAD: the GET's length")
            for status in (304, 204):
                r = c.roundtrip("GET", "/file/send?path=%s&status=%d"
                                % (q(SMALL), status))
                check_eq((r.status, r.body, r.header("Content-Length")),
                         (status, b"", None), "%d: no body" % status)
            check_eq(c.roundtrip("GET", "/hello").status, 200, "framed")
        wait_fds(srv, base, "every file closed")


@test
def errors_take_the_descriptor_too():
    with files_server() as srv:
        keep, base = held_base(srv)
        r = srv.get("/file/bad")
        check_eq((r.status, r.body), (200, b"SPOKE_EINVAL SPOKE_EINVAL"),
                 "a negative fd and a directory are refused")
        r = srv.get("/file/twice?path=%s" % q(SMALL))
        check_eq(r.body, SMALL_DATA, "the file went")
        srv.wait_log(r"files: second completion: SPOKE_EALREADY")
        wait_fds(srv, base, "the directory's descriptor was closed")


@test
def pipelined_requests_wait_behind_a_file_in_order():
    with files_server() as srv:
        with Conn(srv.port) as c:
            c.send(build_request("GET", "/file/send?path=%s" % q(BIG)) +
                   build_request("GET", "/hello") +
                   build_request("GET", "/file/async?path=%s" % q(SMALL)) +
                   build_request("GET", "/hello"))
            check(c.read_response().body == BIG_DATA, "1: the big file")
            check_eq(c.read_response().body, b"Hello, World!", "2: hello")
            check_eq(c.read_response().body, SMALL_DATA, "3: small file")
            check_eq(c.read_response().body, b"Hello, World!", "4: hello")


@test
def close_and_http10_end_after_the_whole_file():
    with files_server() as srv:
        for version, headers in (("HTTP/1.1", {"Connection": "close"}),
                                 ("HTTP/1.0", {})):
            with Conn(srv.port) as c:
                c.send(build_request("GET", "/file/send?path=%s" % q(BIG),
                                     headers=headers, version=version))
                r = c.read_response()
                check(r.body == BIG_DATA, version + ": whole file")
                check(c.wait_closed(), version + ": then closed")


@test
def a_client_that_leaves_mid_file_costs_nothing():
    with files_server() as srv:
        keep, base = held_base(srv)
        for _ in range(5):
            c = Conn(srv.port)
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            c.send(build_request("GET", "/file/send?path=%s" % q(BIG)))
            got = c.sock.recv(65536)
            check(got.startswith(b"HTTP/1.1 200"), "it started")
            c.close()
        check_eq(srv.get("/hello").status, 200, "serving")
        wait_fds(srv, base, "files and socket copies closed")


@test
def a_client_that_reads_nothing_is_cut_by_the_send_timeout():
    with files_server("--send-timeout", "300ms") as srv:
        keep, base = held_base(srv)
        c = Conn(srv.port)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        c.send(build_request("GET", "/file/send?path=%s" % q(BIG)))
        # first the transfer holds its socket and file; only then is
        # "back to BASE" the send timeout's work, not a look too early
        deadline = time.monotonic() + 10
        while fds(srv) < base + 2 and time.monotonic() < deadline:
            threading.Event().wait(0.01)
        check(fds(srv) >= base + 2, "the transfer never started")
        wait_fds(srv, base, "the stalled transfer was dropped")
        c.close()
        check_eq(srv.get("/hello").status, 200, "serving")


@test
def a_file_shorter_than_promised_ends_the_connection():
    with files_server() as srv:
        with Conn(srv.port) as c:
            c.send(build_request("GET", "/file/send?path=%s&len=%d"
                                 % (q(SMALL), len(SMALL_DATA) + 500)))
            head = c._read_until(b"\r\n\r\n")
            check(b"Content-Length: %d" % (len(SMALL_DATA) + 500) in head,
                  "the promised length")
            got = c._read_to_eof()
            check_eq(got, SMALL_DATA, "what the file had, then the close")
        check_eq(srv.get("/hello").status, 200, "serving")


@test
def many_files_leak_no_descriptor():
    with files_server() as srv:
        keep, base = held_base(srv)
        with Conn(srv.port) as c:
            for i in range(200):
                route = "/file/send" if i % 2 else "/file/async"
                r = c.roundtrip("GET", "%s?path=%s" % (route, q(SMALL)))
                check_eq(r.body, SMALL_DATA, "file %d" % i)
        wait_fds(srv, base, "200 files, no descriptor left")


@test
def a_drain_waits_for_a_file_on_its_way():
    srv = files_server()
    try:
        c = Conn(srv.port)
        c.send(build_request("GET", "/file/send?path=%s" % q(BIG)))
        head = c._read_until(b"\r\n\r\n")
        check(head.startswith(b"HTTP/1.1 200"), "it started")
        # Not reading: the socket buffers fill far short of 24 MB, so the
        # file is mid-way when the drain begins.
        srv.send_signal(signal.SIGTERM)
        srv.wait_log(r"draining")
        body = c._read_exact(len(BIG_DATA))
        check(body == BIG_DATA, "the whole file, after the drain began")
        check(c.wait_closed(), "then closed")
        c.close()
        srv.stop(sig=None)  # the SIGTERM above: it exits by itself, 0
    finally:
        if srv.returncode is None:
            srv.stop()


@test
def declared_lengths_frame_a_stream():
    with files_server() as srv:
        with Conn(srv.port) as c:
            r = c.roundtrip("GET", "/file/length?n=25000")
            check_eq((r.status, r.framing, r.header("Content-Length"),
                      r.body), (200, "length", "25000", b"x" * 25000),
                     "a stream with Content-Length")
            r = c.roundtrip("GET", "/file/length?n=100&past=1")
            check_eq(r.body, b"x" * 100, "nothing past the length")
            srv.wait_log(r"files: write past: SPOKE_EINVAL")
            check_eq(c.roundtrip("GET", "/hello").status, 200, "framed")
        with Conn(srv.port) as c:
            c.send(build_request("GET", "/file/length?n=100",
                                 headers={"Connection": "keep-alive"},
                                 version="HTTP/1.0"))
            r = c.read_response()
            check_eq((r.framing, r.body), ("length", b"x" * 100), "HTTP/1.0")
            c.send(build_request("GET", "/hello",
                                 headers={"Connection": "keep-alive"},
                                 version="HTTP/1.0"))
            check_eq(c.read_response().body, b"Hello, World!",
                     "HTTP/1.0 keep-alive survives a stream of known length")
        with Conn(srv.port) as c:
            c.send(build_request("GET", "/file/length?n=100&declared=300"))
            head = c._read_until(b"\r\n\r\n")
            check(b"Content-Length: 300" in head, head)
            check_eq(c._read_to_eof(), b"x" * 100, "cut off short")
        srv.wait_log(r"response ended after 100 of the 300 bytes it "
                     r"declared; closing the connection")


if __name__ == "__main__":
    try:
        main()
    finally:
        for f in os.listdir(WORK):
            os.unlink(os.path.join(WORK, f))
        os.rmdir(WORK)
