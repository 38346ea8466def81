#!/usr/bin/env python3
"""Back-pressure for responses streamed from the loop thread (SDK 1.3:
spoke_response_pending and spoke_response_on_drain), with the fixture
plugin bigstream.so, which writes 64 KiB chunks while less than 2 MiB is
pending and otherwise waits for its drain callback.

The bound: a client asks for 50 MiB and reads nothing. The server writes
what the socket takes and queues the rest up to the plugin's 2 MiB; we
poll the server's VmRSS (/proc/PID/status) until it stops growing, then
assert it grew by less than 8 MiB. Without on_drain the plugin writes the
whole body at once and VmRSS grows by about 50 MiB. Then the client reads
everything and checks the byte count and the pattern (byte i is i % 251),
and the server still answers /hello.

Also: clients that leave mid-stream get the abort callback and never a
drain callback, and every request is freed (exit code 0 at stop); the
contract's refusals (NULL callback, another thread, a completed request)
and replacement; streams pipelined on one connection and several at once.

Sanitizer builds keep freed memory in quarantine (ASan) or in shadow
memory (TSan), so there the memory bound is reported, not asserted (as in
test_abuse.py)."""

import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, SANITIZED, Server,  # noqa: E402
                           build_request, check, check_eq, check_response,
                           main, run_threads, test, wait_response_started)

PLUGINS = ["hello.so", "bigstream.so"]
ARGS = ["--loops", "1", "--send-timeout", "60s"]
MiB = 1024 * 1024
PERIOD = 251
RSS_BOUND = 8 * MiB         # allowed VmRSS growth while 50 MiB are owed
POLL = 0.05                 # seconds between VmRSS samples
STABLE = 10                 # samples in a row within STABLE_EPS: settled
STABLE_EPS = 64 * 1024
MAX_POLLS = 600             # 30 s at most
WAIT = 30.0




def vm_rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


def pattern(n):
    block = bytes(range(PERIOD))
    return (block * (n // PERIOD + 1))[:n]


def hello_ok(srv):
    check_response(srv.get("/hello"), 200, HELLO)


def stats(srv):
    r = srv.get("/bigstream/stats")
    check_eq(r.status, 200, "/bigstream/stats status")
    return dict(kv.split("=", 1) for kv in r.text.split())


def check_body(r, mb, what):
    check_eq(r.status, 200, "%s: status" % what)
    check_eq(r.framing, "chunked", "%s: framing" % what)
    check_eq(len(r.body), mb * MiB, "%s: body length" % what)
    want = pattern(mb * MiB)
    if r.body != want:
        first = next(i for i in range(len(want)) if r.body[i] != want[i])
        check(False, "%s: body differs from the pattern at byte %d"
              % (what, first))


def settle_rss(pid):
    """Polls VmRSS until STABLE samples in a row stay within STABLE_EPS
    (at most MAX_POLLS); returns (last, peak, polls)."""
    last = peak = vm_rss(pid)
    same = 0
    for i in range(MAX_POLLS):
        time.sleep(POLL)
        rss = vm_rss(pid)
        peak = max(peak, rss)
        same = same + 1 if abs(rss - last) <= STABLE_EPS else 0
        last = rss
        if same >= STABLE:
            return rss, peak, i + 1
    raise AssertionError("VmRSS still changing after %d samples (%.1f MiB)"
                         % (MAX_POLLS, last / MiB))


# ------------------------------------------------------------ the bound

@test
def stalled_reader_of_50mib_stream_keeps_memory_bounded():
    with Server(PLUGINS, args=ARGS) as srv:
        pid = srv.proc.pid
        # Warm-up: the allocator's arenas and the request pool as a
        # steady server has them, a whole stream included.
        for _ in range(10):
            hello_ok(srv)
        with srv.conn() as c:
            c.request("GET", "/bigstream?mb=4")
            check_body(c.read_response(), 4, "warm-up stream")
        base, _, _ = settle_rss(pid)

        with srv.conn(timeout=WAIT) as c:
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
            c.request("GET", "/bigstream?mb=50")
            wait_response_started(c.sock, WAIT)
            rss, peak, polls = settle_rss(pid)
            print("     50 MiB owed, nothing read: VmRSS %.1f MiB before, "
                  "%.1f MiB settled after %d samples (%+.1f MiB), peak "
                  "%+.1f MiB%s" % (base / MiB, rss / MiB, polls,
                                   (rss - base) / MiB, (peak - base) / MiB,
                                   " (sanitizer build: reported, not asserted)"
                                   if SANITIZED else ""), flush=True)
            hello_ok(srv)  # the loop is not stuck behind the stream
            if not SANITIZED:
                check(peak - base < RSS_BOUND,
                      "VmRSS grew by %.1f MiB (peak) while a client read "
                      "nothing of a 50 MiB stream: no back-pressure"
                      % ((peak - base) / MiB))
            r = c.read_response()
            check_body(r, 50, "the stalled stream")
            print("     %d chunks, all 50 MiB intact" % len(r.chunks),
                  flush=True)
        hello_ok(srv)
        st = stats(srv)
        check(int(st["drains"]) > 0, "no drain callback ran: %r" % st)
        check_eq(st["late"], "0", "drain callbacks after the client left")


# ------------------------------------------------------------ leaving

def wait_stats(srv, key, least, what):
    """Polls /bigstream/stats until KEY is at least LEAST (bounded)."""
    deadline = time.monotonic() + WAIT
    while True:
        st = stats(srv)
        if int(st[key]) >= least:
            return st
        check(time.monotonic() < deadline, "%s: %s=%s after %.0fs, want "
              "%d or more" % (what, key, st[key], WAIT, least))
        time.sleep(POLL)


def leave_after(srv, nbytes, rst):
    """Reads NBYTES of a 50 MiB stream, stops reading until the stream
    waits for a drain callback, then leaves (RST: with a reset)."""
    st = stats(srv)
    pending = int(st["waits"]) - int(st["drains"])
    s = socket.create_connection((srv.host, srv.port), timeout=WAIT)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        s.sendall(build_request("GET", "/bigstream?mb=50"))
        got = 0
        while got < nbytes:
            d = s.recv(min(65536, nbytes - got))
            check(d != b"", "closed after %d bytes" % got)
            got += len(d)
        # While it read, its stream may have waited and been drained any
        # number of times; now that it reads nothing, the stream ends up
        # waiting for good: one more callback registered and not run.
        deadline = time.monotonic() + WAIT
        while True:
            st = stats(srv)
            if int(st["waits"]) - int(st["drains"]) > pending:
                break
            check(time.monotonic() < deadline, "no stalled stream after "
                  "%.0fs: %r" % (WAIT, st))
            time.sleep(POLL)
        if rst:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         struct.pack("ii", 1, 0))
    finally:
        s.close()


@test
def clients_leaving_mid_stream_get_abort_never_drain():
    """Each client leaves while its stream waits for a drain callback:
    the abort callback runs, the drain callback never does."""
    with Server(PLUGINS, args=ARGS) as srv:
        cases = [(0, False), (0, True), (3 * MiB, False), (3 * MiB, True),
                 (12 * MiB, False), (12 * MiB, True)]
        for nbytes, rst in cases:
            leave_after(srv, nbytes, rst)
        st = wait_stats(srv, "aborts", len(cases), "abort callbacks")
        check_eq(st["aborts"], str(len(cases)), "abort callbacks")
        # Each left while one callback was registered and its queue full:
        # those never run (the abort callback ran instead), so exactly one
        # registration per client is left unrun; callbacks that ran did so
        # while their client still read.
        check_eq(int(st["waits"]) - int(st["drains"]), len(cases),
                 "drain callbacks registered and never run")
        check_eq(st["late"], "0", "drain callbacks after the client left")
        hello_ok(srv)
        # stop() (by the with) checks exit code 0: every request freed,
        # the drain holds included.


# ------------------------------------------------------------ contract

@test
def on_drain_refusals_and_replacement():
    with Server(PLUGINS, args=ARGS) as srv:
        r = srv.get("/bigstream/codes")
        check_response(r, 200, "null=SPOKE_EINVAL first=OK second=OK "
                               "thread=SPOKE_ETHREAD\n")
        check_response(srv.get("/bigstream/late"), 200, "ok\n")
        st = stats(srv)
        check_eq(st["after_end"], "SPOKE_EALREADY",
                 "on_drain on a completed request")
        check_eq(st["replaced"], "0", "a replaced drain callback ran")
        check_eq(st["drains"], "1", "drain callbacks of /bigstream/codes")


# ------------------------------------------------------------ shapes

@test
def pipelined_and_concurrent_streams_arrive_intact():
    with Server(PLUGINS, args=ARGS) as srv:
        with srv.conn(timeout=WAIT) as c:
            c.send(build_request("GET", "/bigstream?mb=6") +
                   build_request("GET", "/hello") +
                   build_request("GET", "/bigstream?mb=3"))
            check_body(c.read_response(), 6, "first pipelined stream")
            check_response(c.read_response(), 200, HELLO)
            check_body(c.read_response(), 3, "second pipelined stream")

        def one(mb):
            with srv.conn(timeout=WAIT) as c:
                c.request("GET", "/bigstream?mb=%d" % mb)
                check_body(c.read_response(), mb, "stream of %d MiB" % mb)
            return mb

        check_eq(run_threads(one, [(8,), (5,), (8,), (1,)]), [8, 5, 8, 1],
                 "concurrent streams")
        hello_ok(srv)
        with srv.conn() as c:  # HTTP/1.0: ends by closing
            c.request("GET", "/bigstream?mb=3", version="HTTP/1.0")
            r = c.read_response()
            check_eq(r.framing, "close", "HTTP/1.0 framing")
            check(r.body == pattern(3 * MiB), "HTTP/1.0 body differs")


if __name__ == "__main__":
    main()
