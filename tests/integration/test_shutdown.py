#!/usr/bin/env python3
"""Graceful shutdown: SIGTERM/SIGINT stop accepting, in-flight requests
(async and sync) finish with 200, idle connections close, exit code 0.
However the server ends, its runtime directory goes: on the drain, past
the shutdown deadline, on a second signal; a killed server's directory is
removed by the next server started in the same parent."""

import errno
import os
import random
import re
import shutil
import signal
import socket
import string
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Conn, ConnectionClosed, Server,  # noqa: E402
                           build_request,
                           check, check_eq, check_response, main,
                           run_threads, test)


def check_not_served(srv):
    """A new connection now is refused, or closed/reset without a 2xx."""
    try:
        c = Conn(srv.port, srv.host, timeout=30)
    except OSError as e:
        check(e.errno in (errno.ECONNREFUSED, errno.ECONNRESET),
              "connect after SIGTERM failed oddly: %r" % e)
        return "refused"
    try:
        try:
            c.send(build_request("GET", "/hello"))
            r = c.read_response()
        except socket.timeout:
            raise AssertionError("connection accepted after SIGTERM and "
                                 "neither served nor closed in 30s")
        except (ConnectionClosed, ConnectionError):
            return "closed"
        check(not (200 <= r.status < 300),
              "a new connection after SIGTERM was served: %r" % r)
        return "status %d" % r.status
    finally:
        c.close()


def _inflight_then_signal(sig, loops):
    with Server(["hello.so", "sleep.so"],
                args=["--loops", str(loops), "--workers", "4"]) as srv:
        paths = ["/sleep/async?ms=1000"] * 5 + ["/sleep/sync?ms=1000"] * 2
        conns = [srv.conn() for _ in paths]
        for c, p in zip(conns, paths):
            c.send(build_request("GET", p))
        # With one loop, a /hello on a connection opened after those
        # requests were sent is answered only after the loop has accepted
        # and read the earlier ones: they are in flight now.
        check_response(srv.get("/hello"), 200, HELLO)
        srv.send_signal(sig)
        results = run_threads(lambda c: c.read_response(),
                              [(c,) for c in conns], timeout=120)
        for p, r in zip(paths, results):
            check(r.status == 200 and r.body == HELLO,
                  "in-flight %s during drain: %r" % (p, r))
        how = check_not_served(srv)
        for c in conns:
            c.close()
        srv.stop(sig=None)
        return how


@test
def a_draining_master_refuses_new_connections_at_once():
    """Under a master (--processes, default 1) the port closes as the
    drain starts: a new connection is refused at once, so a front proxy
    tries another instance, while the request in flight still finishes.
    (Before, the master kept the socket: new connections waited unserved
    in its queue until the drain ended, and were reset then.)"""
    with Server(["hello.so", "sleep.so"], args=["--loops", "2"]) as srv:
        c = srv.conn()
        c.send(build_request("GET", "/sleep/async?ms=6000"))
        check_response(srv.get("/hello"), 200, HELLO)
        n = len(srv.log_lines())
        srv.send_signal(signal.SIGTERM)
        check(srv.wait_log(r"SIGTERM: draining", start=n) is not None,
              "no drain line")
        deadline = time.monotonic() + 4
        while True:
            with socket.socket() as s:
                s.settimeout(2)
                rc = s.connect_ex((srv.host, srv.port))
            if rc == errno.ECONNREFUSED:
                break
            check(time.monotonic() < deadline,
                  "new connections still accepted by the draining server "
                  "(connect: %s)" % os.strerror(rc))
            srv.wait_log(r"^$", timeout=0.02)
        r = c.read_response()
        check_response(r, 200, HELLO)
        c.close()
        srv.stop(sig=None)


@test
def sigterm_drains_inflight_async_and_sync():
    _inflight_then_signal(signal.SIGTERM, loops=1)


@test
def sigint_drains_inflight_too():
    _inflight_then_signal(signal.SIGINT, loops=1)


@test
def sigterm_idle_server_exits_zero():
    with Server(["hello.so"]) as srv:
        check_response(srv.get("/hello"), 200, HELLO)
        srv.stop(signal.SIGTERM)


@test
def sigterm_with_no_plugins_exits_zero():
    srv = Server([])
    srv.stop(signal.SIGTERM)


@test
def sigterm_closes_idle_keepalive_connections():
    with Server(["hello.so"], args=["--loops", "2"]) as srv:
        conns = [srv.conn() for _ in range(4)]
        for c in conns:
            check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
        srv.send_signal(signal.SIGTERM)
        for c in conns:
            check(c.wait_closed(),
                  "idle keep-alive connection not closed after SIGTERM")
            c.close()
        srv.stop(sig=None)


@test
def drain_answers_request_pipelined_behind_inflight_one_or_closes():
    # A request already read behind an in-flight one: the server may
    # answer it or close after the in-flight response, but the in-flight
    # response must be complete and the exit clean.
    with Server(["hello.so", "sleep.so"], args=["--loops", "1"]) as srv:
        c = srv.conn()
        c.send(build_request("GET", "/sleep/async?ms=500")
               + build_request("GET", "/hello"))
        check_response(srv.get("/hello"), 200, HELLO)
        srv.send_signal(signal.SIGTERM)
        r = c.read_response()
        check_response(r, 200, HELLO)
        try:
            r2 = c.read_response()
        except (ConnectionClosed, ConnectionResetError):
            r2 = None
        if r2 is not None:
            check_response(r2, 200, HELLO)
        c.close()
        srv.stop(sig=None)


@test
def drain_exit_code_after_many_requests():
    with Server(["hello.so", "sleep.so", "echo.so"],
                args=["--loops", "2"]) as srv:
        for i in range(30):
            check_response(srv.request("POST", "/echo", body=b"%d" % i), 200,
                           b"%d" % i)
        check_eq(srv.stop(signal.SIGTERM), 0, "exit code")


# ---------------------------------------------------------------- runtime dir

RUNTIME_RE = re.compile(r"runtime directory (\S+) \(")
STALE_RE = re.compile(r"removed stale runtime directory: (\S+) of dead "
                      r"process (\d+)")


def runtime_parent():
    """A fresh --runtime-dir parent of this test's own."""
    return tempfile.mkdtemp(prefix="spoke-it-rt-")


def runtime_of(srv):
    """The runtime directory SRV logged; checks it holds a plugin copy and
    status.json."""
    rt = srv.wait_log(RUNTIME_RE).group(1)
    names = os.listdir(rt)
    check("status.json" in names, "no status.json in %s: %r" % (rt, names))
    check(any(n.endswith(".so") for n in names),
          "no plugin copy in %s: %r" % (rt, names))
    return rt


def check_gone(rt, when):
    if os.path.exists(rt):
        raise AssertionError("runtime directory %s left behind %s: %r"
                             % (rt, when, sorted(os.listdir(rt))))


def slow_sync_in_flight(srv):
    """A /sleep/sync?ms=30000 in flight on one loop; returns its Conn. A
    /hello on a later connection is answered only after the loop has
    accepted and dispatched the sleep."""
    c = srv.conn()
    c.send(build_request("GET", "/sleep/sync?ms=30000"))
    check_response(srv.get("/hello"), 200, HELLO)
    return c


@test
def drain_past_deadline_removes_runtime_dir():
    parent = runtime_parent()
    try:
        with Server(["hello.so", "sleep.so"],
                    args=["--loops", "1", "--shutdown-timeout", "200ms",
                          "--runtime-dir", parent]) as srv:
            rt = runtime_of(srv)
            c = slow_sync_in_flight(srv)
            srv.stop(signal.SIGTERM, expect_code=0)
            check(srv.wait_log("shutdown deadline passed") is not None,
                  "no deadline line: the drain did not pass the deadline")
            c.close()
            check_gone(rt, "after the deadline")
            check_eq(os.listdir(parent), [], "left in the --runtime-dir")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@test
def second_signal_exits_1_and_removes_runtime_dir():
    parent = runtime_parent()
    try:
        with Server(["hello.so", "sleep.so"],
                    args=["--loops", "1", "--runtime-dir", parent]) as srv:
            rt = runtime_of(srv)
            c = slow_sync_in_flight(srv)
            srv.send_signal(signal.SIGTERM)
            check(srv.wait_log("SIGTERM: draining") is not None,
                  "no drain line after SIGTERM")
            srv.stop(signal.SIGTERM, expect_code=1)
            check(srv.wait_log("SIGTERM again: exiting without waiting")
                  is not None, "no line for the second SIGTERM")
            c.close()
            check_gone(rt, "after a second signal")
            check_eq(os.listdir(parent), [], "left in the --runtime-dir")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


def fake_rundir(parent, pid, files):
    """PARENT/spoke.PID.XXXXXX holding FILES (names), as a server of PID
    would have left it (mkdtemp's six letters and digits)."""
    while True:
        d = os.path.join(parent, "spoke.%d.%s" % (pid, "".join(
            random.choice(string.ascii_letters + string.digits)
            for _ in range(6))))
        try:
            os.mkdir(d, 0o700)
            break
        except FileExistsError:
            continue
    for f in files:
        with open(os.path.join(d, f), "wb") as fp:
            fp.write(b"x")
    return d


@test
def killed_servers_runtime_dir_swept_by_next_start():
    parent = runtime_parent()
    try:
        # One process each: a killed master's workers drain and clean up
        # after themselves (PR_SET_PDEATHSIG), which is not what is tested.
        live = Server(["hello.so"], args=["--processes", "0",
                                          "--runtime-dir", parent])
        live_rt = runtime_of(live)
        killed = Server(["hello.so"], args=["--processes", "0",
                                            "--runtime-dir", parent])
        killed_rt = runtime_of(killed)
        killed_pid = killed.proc.pid
        killed.proc.kill()
        check_eq(killed.wait_exit(), -signal.SIGKILL, "killed server's exit")
        check(os.path.isdir(killed_rt), "a SIGKILL left no runtime directory?")
        # Left alone: another directory under the live spoke's PID; one
        # whose name is not spoke's pattern.
        live_fake = fake_rundir(parent, live.proc.pid, ["status.json"])
        odd = os.path.join(parent, "spoke.%d.abc" % killed_pid)
        os.mkdir(odd)
        # The PID reused by a live program that is not spoke (this test):
        # stale. One with a file spoke never writes keeps it, and itself.
        reused = fake_rundir(parent, os.getpid(),
                             ["hello.1.so", "status.json"])
        foreign = fake_rundir(parent, killed_pid,
                              ["hello.3.so", "notes.txt"])

        with Server(["hello.so"], args=["--runtime-dir", parent]) as srv:
            rt = runtime_of(srv)
            # Scripts find the server's own directory by the first line
            # with "runtime directory PATH": the sweep's lines are not it.
            check_eq(srv.wait_log(r"runtime directory (\S+)").group(1), rt,
                     "the first 'runtime directory PATH' line")
            removed = {}
            for line in srv.log_lines():
                m = STALE_RE.search(line)
                if m:
                    removed[m.group(1)] = int(m.group(2))
            check_eq(removed, {killed_rt: killed_pid,
                               reused: os.getpid()},
                     "stale directories the next server removed")
            check(not os.path.exists(killed_rt),
                  "killed server's runtime directory %s not removed"
                  % killed_rt)
            check(not os.path.exists(reused), "%s not removed" % reused)
            check_eq(sorted(os.listdir(foreign)), ["notes.txt"],
                     "left in a stale directory holding another file")
            check(srv.wait_log(re.escape(foreign) + r" of dead process "
                               r"\d+; it holds other files")
                  is not None, "no line for the directory that stays")
            check(os.path.isdir(odd), "%s removed: not spoke's name" % odd)
            check_eq(os.listdir(live_fake), ["status.json"],
                     "a directory of the live spoke's PID was touched")
            names = os.listdir(live_rt)
            check("status.json" in names and any(
                n.endswith(".so") for n in names),
                "the live server's runtime directory was touched: %r"
                % names)
            check_response(live.get("/hello"), 200, HELLO)
            srv.stop()
            check_gone(rt, "after SIGTERM")
        live.stop()
        check_gone(live_rt, "after SIGTERM")
    finally:
        shutil.rmtree(parent, ignore_errors=True)


if __name__ == "__main__":
    main()
