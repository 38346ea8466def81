#!/usr/bin/env python3
"""Concurrency: async requests overlap on a loop, sync requests overlap on
the worker pool while the loop keeps answering, the bounded sync queue
answers 503, several loops serve, a shared counter stays exact.

Overlap is proven by behaviour, not speed: N requests that each wait MS
would need N*MS one after another; all N finishing within N*MS/2 of the
first send means they waited at the same time."""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Conn, Server, build_request,  # noqa: E402
                           check, check_eq, check_response, main,
                           run_threads, test)


def _open_and_send(srv, paths):
    conns = []
    for p in paths:
        c = srv.conn(timeout=60)
        conns.append(c)
    for c, p in zip(conns, paths):
        c.send(build_request("GET", p))
    return conns


def _read_all(conns):
    def read(c):
        r = c.read_response()
        return r, time.monotonic()
    try:
        return run_threads(read, [(c,) for c in conns], timeout=120)
    finally:
        for c in conns:
            c.close()


@test
def fifty_async_sleeps_overlap():
    n, ms = 50, 1000
    with Server(["hello.so", "sleep.so"]) as srv:
        t0 = time.monotonic()
        conns = _open_and_send(srv, ["/sleep/async?ms=%d" % ms] * n)
        results = _read_all(conns)
        wall = time.monotonic() - t0
        for r, _ in results:
            check_response(r, 200, HELLO)
        check(wall < n * ms / 1000.0 / 2,
              "%d async sleeps of %d ms took %.1fs: they did not overlap "
              "(one after another would be %.0fs)"
              % (n, ms, wall, n * ms / 1000.0))


@test
def sync_sleeps_overlap_on_pool_while_loop_answers():
    n, ms = 8, 1000
    # One I/O loop: if a sync handler ran on it, /hello would stall.
    with Server(["hello.so", "sleep.so"],
                args=["--workers", str(n), "--loops", "1"]) as srv:
        t0 = time.monotonic()
        conns = _open_and_send(srv, ["/sleep/sync?ms=%d" % ms] * n)
        first_sync_done = threading.Event()
        results = [None] * n
        errors = []

        def reader(i, c):
            try:
                results[i] = (c.read_response(), time.monotonic())
            except Exception as e:  # noqa: B902
                errors.append(e)
            first_sync_done.set()

        threads = [threading.Thread(target=reader, args=(i, c), daemon=True)
                   for i, c in enumerate(conns)]
        for t in threads:
            t.start()
        # While the sync requests hold every pool thread, /hello (async, on
        # the loop) must keep answering.
        hellos_while_outstanding = 0
        with srv.conn() as hc:
            for _ in range(50):
                r = hc.roundtrip("GET", "/hello")
                check_response(r, 200, HELLO)
                if first_sync_done.is_set():
                    break
                hellos_while_outstanding += 1
        for t in threads:
            t.join(120)
            check(not t.is_alive(), "sync reader stuck")
        wall = time.monotonic() - t0
        for c in conns:
            c.close()
        check(not errors, "sync requests failed: %r" % errors)
        for r, _ in results:
            check_response(r, 200, HELLO)
        check(hellos_while_outstanding >= 3,
              "only %d /hello answered while %d sync sleeps of %d ms were "
              "outstanding: the loop is blocked by sync work"
              % (hellos_while_outstanding, n, ms))
        check(wall < n * ms / 1000.0 / 2,
              "%d sync sleeps of %d ms on %d workers took %.1fs: they did "
              "not overlap (one after another would be %.0fs)"
              % (n, ms, n, wall, n * ms / 1000.0))


@test
def async_sleeps_do_not_block_the_loop():
    # One loop, 20 requests parked on timers: /hello answers meanwhile.
    with Server(["hello.so", "sleep.so"], args=["--loops", "1"]) as srv:
        conns = _open_and_send(srv, ["/sleep/async?ms=1500"] * 20)
        done = threading.Event()
        out = {}

        def read_all():
            try:
                out["r"] = _read_all(conns)
            finally:
                done.set()

        t = threading.Thread(target=read_all, daemon=True)
        t.start()
        answered_before = 0
        with srv.conn() as hc:
            for _ in range(20):
                check_response(hc.roundtrip("GET", "/hello"), 200, HELLO)
                if done.is_set():
                    break
                answered_before += 1
        t.join(120)
        check("r" in out, "async sleepers failed")
        for r, _ in out["r"]:
            check_response(r, 200, HELLO)
        check(answered_before >= 3,
              "only %d /hello answered while 20 async sleeps were pending"
              % answered_before)


@test
def max_queue_overflow_gets_503_with_retry_after():
    """Workers + --max-queue sync requests are admitted, the rest get 503:
    a burst never mistakes idle workers for a full queue. (All requests
    arrive well within the first one's 500 ms.)"""
    for workers, max_queue, n in ((1, 1, 6), (3, 2, 10)):
        with Server(["hello.so", "sleep.so"],
                    args=["--workers", str(workers),
                          "--max-queue", str(max_queue)]) as srv:
            conns = _open_and_send(srv, ["/sleep/sync?ms=500"] * n)
            results = _read_all(conns)
            statuses = [r.status for r, _ in results]
            check_eq(sorted(statuses),
                     sorted([200] * (workers + max_queue) +
                            [503] * (n - workers - max_queue)),
                     "statuses with --workers %d --max-queue %d, %d "
                     "concurrent sync requests" % (workers, max_queue, n))
            for r, _ in results:
                if r.status == 503:
                    check_response(r, 503)
                    check(r.header("Retry-After") is not None,
                          "503 without Retry-After: %r" % r.head)
                else:
                    check_response(r, 200, HELLO)
            # the server recovers: a later sync request is served
            check_response(srv.get("/sleep/sync?ms=1"), 200, HELLO)


@test
def two_loops_serve_many_connections():
    with Server(["hello.so", "counter.so"], args=["--loops", "2"]) as srv:
        def client(k):
            for _ in range(10):
                with srv.conn() as c:
                    check_response(c.roundtrip("GET", "/hello"), 200, HELLO)
            return k
        run_threads(client, [(k,) for k in range(16)], timeout=120)
        # 40 simultaneous open connections, all served
        conns = [srv.conn() for _ in range(40)]
        try:
            for c in conns:
                c.send(build_request("GET", "/hello"))
            for c in conns:
                check_response(c.read_response(), 200, HELLO)
        finally:
            for c in conns:
                c.close()


@test
def shared_counter_exact_under_concurrency():
    threads, per = 8, 25
    with Server(["counter.so"], args=["--loops", "2"]) as srv:
        def client(k):
            vals = []
            with srv.conn() as c:
                for _ in range(per):
                    r = c.roundtrip("GET", "/counter")
                    check_response(r, 200)
                    vals.append(int(r.body))
            return vals
        allv = sum(run_threads(client, [(k,) for k in range(threads)],
                               timeout=120), [])
        check_eq(sorted(allv), list(range(1, threads * per + 1)),
                 "counter values (duplicates or gaps)")
        check_eq(srv.get("/counter").body,
                 b"%d\n" % (threads * per + 1), "final counter")


@test
def mixed_load_on_keepalive_connections():
    with Server(["hello.so", "sleep.so", "echo.so"],
                args=["--loops", "2", "--workers", "4"]) as srv:
        def client(k):
            with Conn(srv.port) as c:
                for j in range(10):
                    body = b"%d-%d" % (k, j)
                    c.send(build_request("POST", "/echo", body=body)
                           + build_request("GET", "/sleep/sync?ms=5")
                           + build_request("GET", "/sleep/async?ms=5"))
                    check_response(c.read_response(), 200, body)
                    check_response(c.read_response(), 200, HELLO)
                    check_response(c.read_response(), 200, HELLO)
            return k
        run_threads(client, [(k,) for k in range(12)], timeout=120)


if __name__ == "__main__":
    main()
