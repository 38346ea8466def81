#!/usr/bin/env python3
"""Abuse, bounded (each test well under 30 s): many connections opened at
once and dropped; hundreds of slow-header clients while a normal client
keeps being served; a client that never reads a 64 MiB response; clients
that leave at every stage of a request; protocol versions spoke does not
speak (HTTP/0.9, HTTP/2, the HTTP/2 preface) and Upgrade requests; and the
plugin mistakes of misbehave.so, each survived with one log line.

Memory is read from /proc/PID/status (VmRSS now, VmHWM peak). ASan builds
keep freed memory in quarantine and map shadow memory, so there the
memory bounds are reported, not asserted; the sanitizer itself checks
those runs (the harness looks for reports at stop)."""

import errno
import os
import re
import resource
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (ASAN_BUILD, HELLO, Server, build_request,  # noqa
                           check, check_eq, check_response, main, test,
                           conn_fds, holds_peer, wait_response_started)

PLUGINS = ["hello.so", "echo.so", "sleep.so", "misbehave.so"]
MiB = 1024 * 1024
RSS_SLACK = 16 * MiB          # allowed growth of VmRSS after an attack
PEAK_SLACK = 32 * MiB         # allowed growth of VmHWM during one
WAIT = 20.0
WARN_RE = re.compile(r" (warn|error): ")




def proc_status(pid, field):
    """FIELD (VmRSS, VmHWM) of process PID, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def fd_listing(pid):
    out = []
    for name in sorted(os.listdir("/proc/%d/fd" % pid), key=int):
        try:
            out.append("%s -> %s" % (name, os.readlink(
                "/proc/%d/fd/%s" % (pid, name))))
        except OSError:
            pass
    return "\n".join(out)


def socket_states(port):
    """The kernel's view of the connections to PORT (ss), for failure
    messages."""
    try:
        return subprocess.run(["ss", "-tnoi", "( sport = :%d )" % port],
                              capture_output=True,
                              text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError) as e:
        return "(ss failed: %s)" % e


def wait_no_conns(srv, what, timeout=WAIT):
    """Waits until the server holds no client connection open (every one
    closed on its side); its other fds are compared with BASE_FDS by the
    caller if it wants."""
    deadline = time.monotonic() + timeout
    while True:
        n = conn_fds(srv.serving_pid())
        if n == 0:
            return
        check(time.monotonic() < deadline,
              "%s: the server still holds %d connections after %.0fs\n"
              "fds:\n%s\nsockets:\n%s"
              % (what, n, timeout, fd_listing(srv.serving_pid()),
                 socket_states(srv.port)))
        time.sleep(0.05)


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    return soft


def hello_ok(srv):
    with srv.conn(timeout=WAIT) as c:
        check_response(c.roundtrip("GET", "/hello"), 200, HELLO)


def mem_report(what, base_rss, rss, hwm):
    line = ("%s: VmRSS %.1f MiB before, %.1f MiB after (%+.1f); VmHWM "
            "%.1f MiB (%+.1f over the RSS before)%s"
            % (what, base_rss / MiB, rss / MiB, (rss - base_rss) / MiB,
               hwm / MiB, (hwm - base_rss) / MiB,
               " [ASan build: not asserted]" if ASAN_BUILD else ""))
    print("     " + line, flush=True)
    return line


def linger0(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


# ------------------------------------------------------------ many conns

@test
def two_thousand_connections_opened_and_dropped():
    n = 2000
    raise_nofile(n + 512)
    with Server(PLUGINS) as srv:
        pid = srv.serving_pid()
        # warm up: every code path once, so the baseline includes it
        for _ in range(20):
            hello_ok(srv)
        with srv.conn() as c:
            c.roundtrip("POST", "/echo", body=b"warm")
        wait_no_conns(srv, "warm-up")
        base_fds = fd_count(pid)
        base_rss = proc_status(pid, "VmRSS")

        socks = []
        sel = selectors.DefaultSelector()
        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                err = s.connect_ex((srv.host, srv.port))
                check(err in (0, errno.EINPROGRESS, errno.EAGAIN),
                      "connect %d: %s" % (i, os.strerror(err)))
                socks.append(s)
                sel.register(s, selectors.EVENT_WRITE, i)
            # wait (bounded) for the connects, then send each its part
            pending = set(range(n))
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    i = key.data
                    s = socks[i]
                    sel.unregister(s)
                    pending.discard(i)
                    if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                        continue
                    kind = i % 5
                    try:
                        if kind == 1:
                            s.send(b"GET /hello HTTP/1.1\r\nHo")
                        elif kind == 2:
                            s.send(build_request("GET", "/hello"))
                        elif kind == 3:
                            s.send(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                                   b"Content-Length: 1000\r\n\r\nab")
                        elif kind == 4:
                            s.send(build_request("GET", "/hello"))
                            linger0(s)
                    except OSError:
                        pass
            connected = n - len(pending)
            print("     %d of %d connections established"
                  % (connected, n), flush=True)
            check(connected >= n // 2, "only %d of %d connections "
                  "established" % (connected, n))
            # all of them accepted and held by the server at once
            deadline = time.monotonic() + WAIT
            while True:
                held = conn_fds(pid)
                if held >= connected:
                    break
                check(time.monotonic() < deadline,
                      "the server holds only %d of the %d connections"
                      % (held, connected))
                time.sleep(0.1)
            # the server answers others while they are all open
            hello_ok(srv)
        finally:
            sel.close()
            for s in socks:
                s.close()
        wait_no_conns(srv, "after dropping %d connections" % n)
        check_eq(fd_count(pid), base_fds, "server fds after dropping "
                 "%d connections (fd leak?)" % n)
        hello_ok(srv)

        rss = proc_status(pid, "VmRSS")
        hwm = proc_status(pid, "VmHWM")
        mem_report("%d dropped connections" % n, base_rss, rss, hwm)
        if not ASAN_BUILD:
            check(rss <= base_rss + RSS_SLACK,
                  "VmRSS grew from %.1f to %.1f MiB"
                  % (base_rss / MiB, rss / MiB))


@test
def idle_keepalive_connections_hold_no_read_buffer():
    """An idle keep-alive connection keeps no read buffer: reads land in
    the loop's shared one. 2000 connections, each after one answered
    request, must cost far less than the 16 KiB a buffer each would."""
    n = 2000
    per_conn_max = 4096
    raise_nofile(n + 512)
    with Server(PLUGINS, args=["--loops", "2"]) as srv:
        pid = srv.serving_pid()
        for _ in range(20):
            hello_ok(srv)
        base_rss = proc_status(pid, "VmRSS")
        socks = []
        try:
            for i in range(n):
                s = socket.create_connection((srv.host, srv.port),
                                             timeout=WAIT)
                socks.append(s)
                s.sendall(build_request("GET", "/hello"))
            for i, s in enumerate(socks):  # every one answered, kept open
                got = b""
                while not got.endswith(HELLO):
                    chunk = s.recv(4096)
                    check(chunk, "connection %d closed before its answer"
                          % i)
                    got += chunk
                check(got.startswith(b"HTTP/1.1 200 "),
                      "connection %d: %r" % (i, got[:40]))
            check_eq(conn_fds(pid), n, "connections the server holds")
            rss = proc_status(pid, "VmRSS")
            per = (rss - base_rss) / n
            print("     %d idle keep-alive connections: VmRSS +%.1f MiB, "
                  "%.0f bytes each%s" % (n, (rss - base_rss) / MiB, per,
                                         " [ASan: not asserted]"
                                         if ASAN_BUILD else ""), flush=True)
            if not ASAN_BUILD:
                check(per <= per_conn_max, "%.0f bytes per idle connection"
                      " (at most %d)" % (per, per_conn_max))
            hello_ok(srv)
        finally:
            for s in socks:
                s.close()
        wait_no_conns(srv, "after closing %d idle connections" % n)
        hello_ok(srv)


# ------------------------------------------------------------ slow headers

@test
def five_hundred_slow_header_clients_do_not_starve_others():
    n = 500
    raise_nofile(n + 512)
    with Server(PLUGINS, args=["--header-timeout", "30s"]) as srv:
        head = b"GET /hello HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 64
        socks = []
        sel = selectors.DefaultSelector()
        stop = threading.Event()
        served = []
        errors = []

        def normal_client():
            try:
                c = srv.conn(timeout=WAIT)
                while not stop.is_set():
                    # alternate keep-alive and fresh connections
                    if len(served) % 2:
                        c.close()
                        c = srv.conn(timeout=WAIT)
                    r = c.roundtrip("GET", "/hello")
                    if r.status != 200 or r.body != HELLO:
                        errors.append("got %r" % r)
                        return
                    served.append(time.monotonic())
                    time.sleep(0.02)
                c.close()
            except Exception as e:  # noqa: B902
                errors.append("%s: %s" % (type(e).__name__, e))

        try:
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.connect_ex((srv.host, srv.port))
                socks.append(s)
            # wait for all connects
            for i, s in enumerate(socks):
                sel.register(s, selectors.EVENT_WRITE, i)
            pending = set(range(n))
            deadline = time.monotonic() + 10
            while pending and time.monotonic() < deadline:
                for key, _ in sel.select(timeout=0.5):
                    sel.unregister(key.fileobj)
                    pending.discard(key.data)
            check(not pending, "%d slow clients never connected"
                  % len(pending))
            for s in socks:
                sel.register(s, selectors.EVENT_READ)
            t = threading.Thread(target=normal_client, daemon=True)
            t.start()
            # one byte of the head per second per client, about 5 s
            for sec in range(6):
                t_next = time.monotonic() + 1.0
                for s in socks:
                    try:
                        s.send(head[sec:sec + 1])
                    except OSError as e:
                        raise AssertionError("slow client cut at %d s: %s"
                                             % (sec, e))
                # none of them may have been answered or closed
                while True:
                    left = t_next - time.monotonic()
                    if left <= 0:
                        break
                    for key, _ in sel.select(timeout=left):
                        try:
                            d = key.fileobj.recv(4096)
                        except OSError as e:
                            d = ("error %s" % e).encode()
                        raise AssertionError(
                            "a slow-header client (30 s timeout) got %r "
                            "after %d s" % (d[:80], sec))
            stop.set()
            t.join(WAIT)
            check(not t.is_alive(), "normal client stuck")
            check(not errors, "normal client failed: %s" % errors)
            print("     %d /hello answered during 6 s of %d slow clients"
                  % (len(served), n), flush=True)
            check(len(served) >= 5, "only %d /hello answered in 6 s"
                  % len(served))
        finally:
            stop.set()
            sel.close()
            for s in socks:
                s.close()
        hello_ok(srv)


# ------------------------------------------------------------ never reads

@test
def client_that_never_reads_64mib_is_cut_and_memory_bounded():
    with Server(PLUGINS, args=["--send-timeout", "1s"]) as srv:
        pid = srv.serving_pid()
        for _ in range(10):
            hello_ok(srv)
        wait_no_conns(srv, "warm-up")
        base_rss = proc_status(pid, "VmRSS")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.settimeout(WAIT)
        s.connect((srv.host, srv.port))
        try:
            s.sendall(build_request("GET", "/mis/big?kb=65536"))
            wait_response_started(s, WAIT)
            port = s.getsockname()[1]
            deadline = time.monotonic() + WAIT
            answered = 0
            while holds_peer(pid, port):
                check(time.monotonic() < deadline,
                      "the non-reading connection still open after %.0fs "
                      "(--send-timeout 1s); server fds:\n%s\nsockets:\n%s"
                      % (WAIT, fd_listing(pid), socket_states(srv.port)))
                # others are served meanwhile
                hello_ok(srv)
                answered += 1
                time.sleep(0.1)
            print("     %d /hello answered while the reader stalled"
                  % answered, flush=True)
            total = 0
            while True:
                try:
                    d = s.recv(MiB)
                except (ConnectionResetError, socket.timeout):
                    break
                if not d:
                    break
                total += len(d)
            print("     the stalled client received %d bytes in all" % total,
                  flush=True)
            check(total < 64 * MiB, "the stalled client got all %d bytes"
                  % total)
        finally:
            s.close()
        hello_ok(srv)
        rss = proc_status(pid, "VmRSS")
        hwm = proc_status(pid, "VmHWM")
        mem_report("64 MiB response never read", base_rss, rss, hwm)
        if not ASAN_BUILD:
            check(hwm <= base_rss + PEAK_SLACK,
                  "peak VmHWM %.1f MiB vs %.1f MiB before: the response "
                  "was buffered" % (hwm / MiB, base_rss / MiB))
            check(rss <= base_rss + RSS_SLACK,
                  "VmRSS grew from %.1f to %.1f MiB"
                  % (base_rss / MiB, rss / MiB))


# ------------------------------------------------------------ clients leave

@test
def clients_leaving_at_every_stage():
    with Server(PLUGINS) as srv:
        pid = srv.serving_pid()
        hello_ok(srv)
        wait_no_conns(srv, "warm-up")
        base_fds = fd_count(pid)

        def leave(data, pause=0.0, rst=False, read=0):
            s = socket.create_connection((srv.host, srv.port), timeout=WAIT)
            try:
                if data:
                    s.sendall(data)
                if pause:
                    time.sleep(pause)
                got = 0
                while got < read:
                    d = s.recv(65536)
                    if not d:
                        break
                    got += len(d)
                if rst:
                    linger0(s)
            finally:
                s.close()

        for rst in (False, True):
            for i in range(10):
                # mid request line, mid headers
                leave(b"GET /hel", rst=rst)
                leave(b"GET /hello HTTP/1.1\r\nHost: x\r\nX-A: ", rst=rst)
                # mid body, by length and chunked
                leave(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 100000\r\n\r\n" + b"b" * 5000,
                      rst=rst)
                leave(b"POST /echo HTTP/1.1\r\nHost: x\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n10\r\nabc",
                      rst=rst)
                # while a sync handler runs, while an async one waits
                # (right away, and once the handler surely started)
                leave(build_request("GET", "/sleep/sync?ms=300"), rst=rst)
                leave(build_request("GET", "/sleep/async?ms=300"), rst=rst)
                leave(build_request("GET", "/sleep/sync?ms=300"), 0.05,
                      rst=rst)
                leave(build_request("GET", "/sleep/async?ms=300"), 0.05,
                      rst=rst)
                # pipelined behind a slow one
                leave(build_request("GET", "/sleep/async?ms=200")
                      + build_request("GET", "/hello") * 3, rst=rst)
                # mid-response: a big streamed one, partly read
                leave(build_request("GET", "/mis/big?kb=4096"), rst=rst,
                      read=256 * 1024)
                leave(build_request("GET", "/mis/big?kb=4096"), rst=rst)
                # mid-stream from the plugin side too
                leave(build_request("GET", "/mis/stream-async"), rst=rst)
                leave(build_request("GET", "/mis/thread?ms=100"), rst=rst)
            hello_ok(srv)
        # the sleeps end, the plugin threads finish, every connection is
        # released
        wait_no_conns(srv, "after the leaving clients")
        check_eq(fd_count(pid), base_fds,
                 "server fds after the leaving clients (fd leak?)")
        hello_ok(srv)
        check_response(srv.get("/sleep/sync?ms=1"), 200, HELLO)
        check_response(srv.get("/sleep/async?ms=1"), 200, HELLO)


# ------------------------------------------------------------ protocols

def raw_exchange(srv, data, timeout=WAIT):
    """Sends DATA, returns (everything until the server closes or TIMEOUT,
    whether it closed)."""
    s = socket.create_connection((srv.host, srv.port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = b""
    closed = False
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            try:
                d = s.recv(65536)
            except ConnectionResetError:
                closed = True
                break
            except socket.timeout:
                break
            if not d:
                closed = True
                break
            out += d
    finally:
        s.close()
    return out, closed


def status_of(out):
    m = re.match(rb"HTTP/1\.[01] (\d{3}) ", out)
    return int(m.group(1)) if m else None


@test
def unsupported_protocol_versions_refused_and_closed():
    cases = [
        ("HTTP/0.9 request", b"GET /hello\r\n\r\n"),
        ("HTTP/0.9 request, no blank line", b"GET /hello\r\n"),
        ("HTTP/2.0 version", b"GET /hello HTTP/2.0\r\nHost: x\r\n\r\n"),
        ("HTTP/3.0 version", b"GET /hello HTTP/3.0\r\nHost: x\r\n\r\n"),
        ("HTTP/0.9 version", b"GET /hello HTTP/0.9\r\nHost: x\r\n\r\n"),
        ("HTTP/1.2 version", b"GET /hello HTTP/1.2\r\nHost: x\r\n\r\n"),
        ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        ("HTTP/2 preface + SETTINGS",
         b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00"
         b"\x00\x00"),
    ]
    wrong = []
    with Server(PLUGINS) as srv:
        for name, raw in cases:
            out, closed = raw_exchange(
                srv, raw + build_request("GET", "/hello"))
            st = status_of(out)
            if name == "HTTP/1.2 version" and st == 200:
                # an HTTP/1.x minor above 1 may be served as 1.1
                continue
            if st not in (400, 505):
                wrong.append("%s: %r" % (name, out[:80]))
            elif not closed:
                wrong.append("%s: %d but left open" % (name, st))
            elif out.count(b"HTTP/1.") != 1:
                wrong.append("%s: more than one response: %r"
                             % (name, out[:300]))
        hello_ok(srv)
    check(not wrong, "not refused with 400/505 and close:\n  "
          + "\n  ".join(wrong))


@test
def upgrade_requests_answered_normally_then_closed():
    ws = (b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
          b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    h2c = (b"GET /hello HTTP/1.1\r\nHost: x\r\n"
           b"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58"
    cases = [
        ("websocket upgrade alone", ws),
        ("h2c upgrade alone", h2c),
        # followed by bytes of the would-be new protocol, or by another
        # request: neither may be taken as HTTP/1.1
        ("websocket upgrade + a frame", ws + frame),
        ("websocket upgrade + a request", ws + build_request("GET",
                                                            "/hello")),
        ("h2c upgrade + a request", h2c + build_request("GET", "/hello")),
        ("h2c upgrade + frame + request",
         h2c + frame + build_request("GET", "/hello")),
    ]
    wrong = []
    with Server(PLUGINS) as srv:
        for name, raw in cases:
            out, closed = raw_exchange(srv, raw, timeout=5)
            try:
                hello_ok(srv)
            except Exception as e:  # noqa: B902
                srv.wait_exit(5)
                wrong.append("%s: the server stopped answering (%s; exit "
                             "code %r)" % (name, e, srv.proc.poll()))
                break
            if status_of(out) != 200 or b"101 Switching" in out:
                wrong.append("%s: %r" % (name, out[:120]))
            elif not (out.endswith(HELLO) and out.count(b"HTTP/1.1 ") == 1):
                wrong.append("%s: not exactly one /hello response: %r"
                             % (name, out[:400]))
            elif not closed:
                wrong.append("%s: connection left open after answering "
                             "an Upgrade request" % name)
        if srv.alive():
            hello_ok(srv)
            check(not wrong, "Upgrade requests:\n  " + "\n  ".join(wrong))
    check(not wrong, "Upgrade requests:\n  " + "\n  ".join(wrong))


# ------------------------------------------------------------ plugin mistakes

def marker(srv, name):
    check_response(srv.get("/mis/log?msg=" + name), 200, b"ok")
    rx = re.compile(r"mis/log: %s$" % re.escape(name))
    check(srv.wait_log(rx) is not None, "marker %s not in the log" % name)
    lines = srv.log_lines()
    for i in range(len(lines) - 1, -1, -1):
        if rx.search(lines[i]):
            return i
    raise AssertionError("marker %s vanished" % name)


def server_warnings(srv, start, end):
    """warn/error lines of the server between two log indexes, leaving out
    misbehave's own spoke_log lines ("plugin misbehave: mis/...")."""
    return [l for l in srv.log_lines()[start:end]
            if WARN_RE.search(l) and "plugin misbehave: mis/" not in l]


@test
def plugin_mistakes_survived_with_one_log_line():
    # (path, expected status, expected body, allowed warn/error lines)
    cases = [
        ("/mis/twice", 200, b"first", (1,)),
        ("/mis/after-end", 200, b"done", (1,)),
        ("/mis/error", 500, None, (1,)),
        ("/mis/nocomplete", 500, None, (1,)),
        # the plugin gets an error code back; a line is optional
        ("/mis/badheader", 200, b"SPOKE_EINVAL", (0, 1)),
        ("/mis/badstatus", 200, b"SPOKE_EINVAL", (0, 1)),
        ("/mis/badstatus?code=600", 200, b"SPOKE_EINVAL", (0, 1)),
        ("/mis/badstatus?code=199", 200, b"SPOKE_EINVAL", (0, 1)),
        ("/mis/badstatus?code=-1", 200, b"SPOKE_EINVAL", (0, 1)),
        ("/mis/badstatus?code=1000", 200, b"SPOKE_EINVAL", (0, 1)),
        ("/mis/timer-thread", 200, b"SPOKE_ETHREAD", (0, 1)),
        # not mistakes: completing from a foreign thread is allowed
        ("/mis/thread?ms=1", 200, b"from thread", (0,)),
        ("/mis/badstatus?code=599", 200, b"OK", (0,)),
        ("/mis/badstatus?code=200", 200, b"OK", (0,)),
    ]
    wrong = []
    with Server(PLUGINS) as srv:
        start = marker(srv, "start")
        for n, (path, status, body, allowed) in enumerate(cases):
            with srv.conn() as c:
                r = c.roundtrip("GET", path)
                if r.status != status or (body is not None
                                          and r.body != body):
                    wrong.append("%s: %s %r, want %s %r"
                                 % (path, r.status, r.body[:60], status,
                                    body))
                # the connection stays usable after the mistake
                r = c.roundtrip("GET", "/hello")
                if r.status != 200 or r.body != HELLO:
                    wrong.append("%s: next request got %r" % (path, r))
            end = marker(srv, "case-%d" % n)
            warns = server_warnings(srv, start, end)
            if len(warns) not in allowed:
                wrong.append("%s: %d warn/error lines, want %s:\n      %s"
                             % (path, len(warns), " or ".join(
                                 map(str, allowed)),
                                "\n      ".join(warns) or "(none)"))
            start = end
        plugin_said = [l for l in srv.log_lines() if "expected SPOKE_" in l]
        hello_ok(srv)
    check(not plugin_said, "SDK calls returned the wrong code:\n"
          + "\n".join(plugin_said))
    check(not wrong, "plugin mistakes:\n  " + "\n  ".join(wrong))


if __name__ == "__main__":
    main()
