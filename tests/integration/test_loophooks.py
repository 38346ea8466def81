#!/usr/bin/env python3
"""Per-loop plugin hooks and spoke_offload (SDK 1.4).

The fixture `loophooks` (built as loophooks_v1.so and loophooks_v2.so)
keeps per-loop state made by loop_init on each loop's thread, with a
repeating uv_timer_t of its own that only loop_fini closes; it logs each
hook with its thread's name. These tests check:
  - loop_init runs on every loop, on that loop's thread, before the
    version takes its first request there;
  - after a hot reload the new version's loop_init runs before it
    serves, and the old version's loop_fini runs only after its last
    request on that loop, then its timer's close callback (its code still
    mapped), then fini; and never from inside the plugin's own call (the
    last request is freed inside its spoke_response_send);
  - shutdown runs loop_fini on every loop before fini, and the plugin's
    own timer does not keep the server up;
  - a loop_init that fails makes the routes answer 503 on that loop with
    one log line, while the other plugins serve;
  - spoke_offload runs the blocking call on a pool thread and continues
    on the loop; the loop serves others meanwhile; a client that leaves
    is reported to the done callback as SPOKE_ECANCELED; a full pool is
    SPOKE_EBUSY (the plugin answers 503); a second offload on the same
    request is refused; a pending offload keeps its version loaded
    across a reload.

Blocking calls end when the test writes to a FIFO the pool thread reads,
so the tests order events without sleeping."""

import os
import re
import select
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (Conn, PluginFile, Server, build_request,  # noqa: E402
                           check, check_eq, main, plugin_path, test)

V = {n: plugin_path("loophooks_v%d.so" % n) for n in (1, 2)}


def v1_files():
    with open(V[1], "rb") as f:
        return {"loophooks.so": f.read()}


def line_index(srv, pattern, start=0):
    """Index of the first log line at or after START matching PATTERN."""
    m = srv.wait_log(pattern, start=start)
    check(m is not None, "no log line %r\n%s" % (pattern, srv.log_tail()))
    rx = re.compile(pattern)
    lines = srv.log_lines()
    for i in range(start, len(lines)):
        if rx.search(lines[i]):
            return i
    raise AssertionError("log line %r vanished" % pattern)


class Fifo:
    """A FIFO the plugin's offloaded call blocks on until release()."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="spoke-it-fifo-")
        self.path = os.path.join(self.dir, "gate")
        os.mkfifo(self.path)

    def release(self):
        with open(self.path, "wb") as f:  # meets the reader's open
            f.write(b"go\n")

    def close(self):
        try:
            os.unlink(self.path)
            os.rmdir(self.dir)
        except OSError:
            pass


def pending(conn):
    """True if nothing has arrived on CONN yet (a response still owed)."""
    r, _, _ = select.select([conn.sock], [], [], 0)
    return not r


@test
def loop_init_runs_on_every_loop_before_its_first_request():
    with Server(["hello"], files=v1_files(), args=["--loops", "2"]) as srv:
        for loop in (0, 1):
            line_index(srv, r"loophooks v1 loop_init on spoke-loop-%d seq \d"
                       % loop)
        for _ in range(8):
            r = srv.get("/lh/state")
            check_eq(r.status, 200, "state")
            check(re.fullmatch(rb"v1 seq [12] on spoke-loop-[01]\n", r.body),
                  "answered from its loop's state: %r" % r.body)


@test
def reload_starts_the_new_version_first_and_finishes_the_old_after_its_last_request():
    with Server(["hello"], files=v1_files(), args=["--loops", "1"]) as srv:
        sw = PluginFile(srv, "loophooks.so")
        waiting = Conn(srv.port)
        waiting.send(build_request("GET", "/lh/wait?ms=1500"))
        sw.rename(V[2])
        sw.wait_reloaded("loophooks", "2.0.0")
        r = srv.get("/lh/state")
        check_eq((r.status, r.body), (200, b"v2 seq 1 on spoke-loop-0\n"),
                 "v2 serves from its own loop state")
        old = waiting.read_response()
        check_eq((old.status, old.body), (200, b"v1 seq 1 on spoke-loop-0\n"),
                 "the request in flight finished in v1")
        waiting.close()
        i_init2 = line_index(srv, r"loophooks v2 loop_init on spoke-loop-0")
        i_fini1 = line_index(srv, r"loophooks v1 loop_fini on spoke-loop-0 "
                             r"seq 1 served 1$")
        i_closed = line_index(srv, r"loophooks v1 timer closed on spoke-loop-0")
        i_final = line_index(srv, r"loophooks v1 fini$")
        check(i_init2 < i_fini1 < i_closed < i_final,
              "v2 loop_init, v1 loop_fini (after its request), its timer's "
              "close, v1 fini: lines %d %d %d %d\n%s"
              % (i_init2, i_fini1, i_closed, i_final, srv.log_tail()))
        check(srv.wait_log(r"loophooks v2 loop_fini", timeout=0) is None,
              "v2 is still serving")
        check("INSIDE spoke_response_send" not in srv.log_text(),
              "loop_fini ran inside the plugin's own call")
        check_eq(srv.get("/hello").status, 200, "still serving")


@test
def shutdown_finishes_every_loop_before_fini():
    srv = Server(["hello"], files=v1_files(), args=["--loops", "2"])
    try:
        for loop in (0, 1):
            line_index(srv, r"loophooks v1 loop_init on spoke-loop-%d" % loop)
        check_eq(srv.get("/lh/state").status, 200, "serving")
        srv.stop()  # would hang if a plugin timer kept a loop up
        i_final = line_index(srv, r"loophooks v1 fini$")
        for loop in (0, 1):
            i = line_index(srv, r"loophooks v1 loop_fini on spoke-loop-%d "
                           % loop)
            j = line_index(srv, r"loophooks v1 timer closed on spoke-loop-%d"
                           % loop)
            check(i < j < i_final, "loop %d: loop_fini %d, close %d, fini %d"
                  % (loop, i, j, i_final))
    finally:
        srv.__exit__(None, None, None)


@test
def failed_loop_init_answers_503_there_and_the_rest_serves():
    fd, conf = tempfile.mkstemp(prefix="spoke-it-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write("[plugin loophooks]\nfail = yes\n")
    try:
        with Server(["hello"], files=v1_files(),
                    args=["--loops", "1", "--config", conf]) as srv:
            line_index(srv, r"plugin loophooks 1\.0\.0: loop_init failed on "
                       r"loop 0: SPOKE_EIO \(i/o error\); its routes answer "
                       r"503 on that loop")
            r = srv.get("/lh/state")
            check_eq(r.status, 503, "routes of a version that could not start")
            check_eq(r.header("Retry-After"), "10", "Retry-After")
            check(b"could not start on this loop" in r.body, repr(r.body))
            check_eq(srv.get("/hello").status, 200, "other plugins serve")
            srv.stop()
            check(srv.wait_log(r"loophooks v1 loop_fini", timeout=0) is None,
                  "no loop_fini where loop_init failed")
            line_index(srv, r"loophooks v1 fini$")
    finally:
        os.unlink(conf)


@test
def offload_runs_on_a_worker_and_continues_on_the_loop():
    with Server(["hello"], files=v1_files(), args=["--loops", "1"]) as srv:
        r = srv.get("/lh/offload?ms=5")
        check_eq(r.status, 200, "offloaded")
        check(re.fullmatch(rb"v1 offloaded on spoke-worker-\d+, done on "
                           rb"spoke-loop-0\n", r.body), repr(r.body))
        line_index(srv, r"loophooks v1 offload done status OK")


@test
def the_loop_serves_others_while_an_offloaded_call_blocks():
    fifo = Fifo()
    try:
        with Server(["hello"], files=v1_files(),
                    args=["--loops", "1", "--workers", "2"]) as srv:
            blocked = Conn(srv.port)
            blocked.send(build_request("GET", "/lh/offload?fifo=" + fifo.path))
            line_index(srv, r"loophooks offload start on spoke-worker-")
            for _ in range(5):
                check_eq(srv.get("/hello").status, 200, "hello meanwhile")
            check(pending(blocked), "the offloaded request is still pending")
            fifo.release()
            r = blocked.read_response()
            check_eq(r.status, 200, "answered once the call returned")
            blocked.close()
    finally:
        fifo.close()


@test
def a_client_that_leaves_is_reported_to_done_and_nothing_leaks():
    fifo = Fifo()
    try:
        with Server(["hello"], files=v1_files(), args=["--loops", "1"]) as srv:
            c = Conn(srv.port)
            c.send(build_request("GET", "/lh/offload?fifo=" + fifo.path))
            start = line_index(srv, r"loophooks offload start")
            c.close()
            line_index(srv, r"loophooks client gone", start)
            fifo.release()
            line_index(srv, r"loophooks v1 offload done status "
                       r"SPOKE_ECANCELED", start)
            check_eq(srv.get("/hello").status, 200, "alive")
    finally:
        fifo.close()


@test
def a_full_pool_refuses_with_ebusy():
    fifo = Fifo()
    try:
        with Server(["hello"], files=v1_files(),
                    args=["--loops", "1", "--workers", "1",
                          "--max-queue", "0"]) as srv:
            blocked = Conn(srv.port)
            blocked.send(build_request("GET", "/lh/offload?fifo=" + fifo.path))
            line_index(srv, r"loophooks offload start")
            r = srv.get("/lh/offload?ms=0")
            check_eq((r.status, r.body), (503, b"SPOKE_EBUSY"), "pool full")
            check_eq(r.header("Retry-After"), "1", "Retry-After")
            fifo.release()
            check_eq(blocked.read_response().status, 200, "the first one")
            blocked.close()
            check_eq(srv.get("/lh/offload?ms=0").status, 200, "room again")
    finally:
        fifo.close()


@test
def one_offload_at_a_time_per_request():
    with Server(["hello"], files=v1_files(), args=["--loops", "1"]) as srv:
        r = srv.get("/lh/offload-twice")
        check_eq(r.status, 200, "the first offload answers")
        line_index(srv, r"loophooks second offload: SPOKE_EBUSY")


@test
def a_pending_offload_keeps_its_version_across_a_reload():
    fifo = Fifo()
    try:
        with Server(["hello"], files=v1_files(), args=["--loops", "1"]) as srv:
            sw = PluginFile(srv, "loophooks.so")
            blocked = Conn(srv.port)
            blocked.send(build_request("GET", "/lh/offload?fifo=" + fifo.path))
            line_index(srv, r"loophooks offload start")
            sw.rename(V[2])
            sw.wait_reloaded("loophooks", "2.0.0")
            check_eq(srv.get("/lh/state").body, b"v2 seq 1 on spoke-loop-0\n",
                     "v2 serves")
            check(srv.wait_log(r"loophooks v1 loop_fini", timeout=0) is None,
                  "v1 is not finished while its call runs")
            fifo.release()
            r = blocked.read_response()
            check_eq(r.status, 200, "v1's done answered")
            check(r.body.startswith(b"v1 offloaded on spoke-worker-"),
                  repr(r.body))
            blocked.close()
            i = line_index(srv, r"loophooks v1 loop_fini on spoke-loop-0")
            j = line_index(srv, r"loophooks v1 fini$")
            check(i < j, "loop_fini before fini")
    finally:
        fifo.close()


if __name__ == "__main__":
    main()
