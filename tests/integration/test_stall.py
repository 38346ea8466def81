#!/usr/bin/env python3
"""The stall watchdog (core/http/watchdog.c): an async handler or callback
that blocks its I/O loop is named in the log (one warning: plugin,
version, route, mode, how long) and counted in /metrics
(spoke_loop_stalls_total, spoke_loop_stall_seconds_total); fast async
handlers and blocking sync handlers are not stalls; sync jobs running
past --stall-warn show in /status; --stall-warn 0 turns it all off.

No sleeping as synchronization: the tests wait for log lines. The one
duration asserted is the one the server reports. Where a test must know
that a warning would have been logged by now, it asks for a sync job
after the blocking request: its "blocker: sync start" line is written
after anything the loop logged for the request before it (one loop)."""

import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (Server, admin_get, admin_metrics,  # noqa
                           check, check_eq, check_response, main, test)

ADVICE = ("this handler blocks; make it SPOKE_SYNC or move the blocking "
          "work off the loop")
STALL_RE = re.compile(
    r"loop (\d+) blocked (\d+) ms by plugin (\S+) (\S+), (.*)$")
BLOCK_RE = re.compile(
    r"loop 0 blocked (\d+) ms by plugin blocker 1\.0\.0, "
    r"GET /blocker/block \(async\): " + re.escape(ADVICE) + "$")
TIMER_RE = re.compile(
    r"loop 0 blocked (\d+) ms by plugin blocker 1\.0\.0, "
    r"timer callback of GET /blocker/timer: this callback blocks; move the "
    r"blocking work off the loop$")
OUTSIDE_RE = re.compile(
    r"loop 0 blocked over (\d+) ms outside a plugin call spoke made "
    r"\(a plugin's own libuv callback, or the core\)$")
MARK_RE = re.compile(r"blocker: sync start")
ARGS = ["--admin", "127.0.0.1:0", "--loops", "1"]


def stall_lines(srv):
    return [line for line in srv.log_lines() if STALL_RE.search(line)]


def marker(srv, start):
    """A sync job after what came before on the loop: once its log line is
    in, every line the loop wrote before it is too."""
    check_response(srv.get("/blocker/sync?ms=0"), 200, b"blocked 0 ms\n")
    check(srv.wait_log(MARK_RE, start=start) is not None,
          "no sync start line:\n%s" % srv.log_tail())


def stall_key(metric, route):
    return '%s{plugin="blocker",route="%s"}' % (metric, route)


@test
def blocking_async_handler_is_named_and_counted():
    with Server(["blocker.so"], args=ARGS) as srv:
        check_response(srv.get("/blocker/block?ms=300"), 200,
                       b"blocked 300 ms\n")
        m = srv.wait_log(BLOCK_RE)
        check(m is not None, "no stall warning:\n%s" % srv.log_tail())
        check(int(m.group(1)) >= 300,
              "reported %s ms for a 300 ms block" % m.group(1))
        marker(srv, len(srv.log_lines()))
        check_eq(len(stall_lines(srv)), 1, "stall warnings")
        check(" warn: " in stall_lines(srv)[0],
              "not a warning: %s" % stall_lines(srv))

        v = admin_metrics(srv)
        route = "GET /blocker/block"
        check_eq(v.get(stall_key("spoke_loop_stalls_total", route)), 1.0,
                 "spoke_loop_stalls_total")
        secs = v.get(stall_key("spoke_loop_stall_seconds_total", route), 0)
        check(secs >= 0.3, "stall seconds %s < 0.3" % secs)
        check(abs(secs - int(m.group(1)) / 1000.0) < 0.002,
              "metric %s s and log %s ms disagree" % (secs, m.group(1)))
        check(stall_key("spoke_loop_stalls_total", "GET /blocker/sync")
              not in v, "the sync route counted as a stall")
        # the loop-lag histogram: the loop was held 300 ms, so its lag
        # timer, due every 100 ms, ran late at least once
        check(v.get("spoke_loop_lag_seconds_count", 0) >= 1,
              "no lag samples: %s" % sorted(k for k in v if "lag" in k))
        check(v.get('spoke_loop_lag_seconds_bucket{le="+Inf"}') ==
              v.get("spoke_loop_lag_seconds_count"), "+Inf bucket")
        check(v.get("spoke_loop_lag_seconds_sum", 0) > 0, "lag sum")


@test
def blocking_timer_callback_is_named():
    with Server(["blocker.so"], args=ARGS) as srv:
        check_response(srv.get("/blocker/timer?ms=300"), 200,
                       b"blocked 300 ms\n")
        m = srv.wait_log(TIMER_RE)
        check(m is not None, "no stall warning:\n%s" % srv.log_tail())
        check(int(m.group(1)) >= 300, "reported %s ms" % m.group(1))
        v = admin_metrics(srv)
        check_eq(v.get(stall_key("spoke_loop_stalls_total",
                                 "GET /blocker/timer")), 1.0, "stalls")


@test
def blocked_outside_a_plugin_call_is_logged_by_the_watchdog():
    with Server(["blocker.so"], args=ARGS) as srv:
        check_response(srv.get("/blocker/own?ms=600"), 200,
                       b"blocked 600 ms\n")
        m = srv.wait_log(OUTSIDE_RE)
        check(m is not None, "no blocked-outside line:\n%s" % srv.log_tail())
        check(int(m.group(1)) >= 100, "reported over %s ms" % m.group(1))
        marker(srv, len(srv.log_lines()))
        check_eq(len([line for line in srv.log_lines()
                      if OUTSIDE_RE.search(line)]), 1, "one per episode")
        check_eq(stall_lines(srv), [], "no plugin is blamed")


@test
def fast_async_and_blocking_sync_are_not_stalls():
    with Server(["blocker.so"], args=ARGS) as srv:
        for _ in range(20):
            check_response(srv.get("/blocker/ok"), 200, b"ok\n")
        check_response(srv.get("/blocker/sync?ms=300"), 200,
                       b"blocked 300 ms\n")
        # a real stall after them: once it is reported, the watchdog has
        # been watching all along
        check_response(srv.get("/blocker/block?ms=300"), 200)
        check(srv.wait_log(BLOCK_RE) is not None,
              "no stall warning:\n%s" % srv.log_tail())
        marker(srv, len(srv.log_lines()))
        lines = stall_lines(srv)
        check_eq(len(lines), 1, "stall warnings: %s" % lines)
        check("/blocker/block" in lines[0], lines[0])
        v = admin_metrics(srv)
        for route in ("GET /blocker/ok", "GET /blocker/sync"):
            check(stall_key("spoke_loop_stalls_total", route) not in v,
                  "%s counted as a stall" % route)


@test
def status_lists_long_sync_jobs():
    with Server(["blocker.so"], args=ARGS) as srv:
        st = json.loads(admin_get(srv, "/status").body)
        check_eq(st["sync_running"], [], "sync_running when idle")
        with srv.conn() as c:
            c.request("GET", "/blocker/sync?ms=1000")
            check(srv.wait_log(MARK_RE) is not None,
                  "the sync job did not start:\n%s" % srv.log_tail())
            # listed once it has run --stall-warn (100 ms): poll for it
            deadline = time.monotonic() + 10
            jobs = []
            while not jobs and time.monotonic() < deadline:
                st = json.loads(admin_get(srv, "/status").body)
                jobs = st["sync_running"]
                if not jobs:
                    time.sleep(0.02)
            check_eq(len(jobs), 1, "sync_running: %s" % st)
            job = jobs[0]
            check_eq(job["plugin"], "blocker", "plugin")
            check_eq(job["route"], "GET /blocker/sync", "route")
            check(re.fullmatch(r"spoke-worker-\d+", job["thread"]) is not None,
                  "thread %r" % job["thread"])
            check(job["running_s"] >= 0.1, "running_s %s" % job["running_s"])
            r = c.read_response()
            check_response(r, 200, b"blocked 1000 ms\n")
        st = json.loads(admin_get(srv, "/status").body)
        check_eq(st["sync_running"], [], "sync_running once done")
        check_eq(stall_lines(srv), [], "stall warnings")


@test
def stall_warn_zero_disables():
    with Server(["blocker.so"], args=ARGS + ["--stall-warn", "0"]) as srv:
        check_response(srv.get("/blocker/block?ms=300"), 200,
                       b"blocked 300 ms\n")
        marker(srv, 0)
        check_eq(stall_lines(srv), [], "stall warnings")
        check(not any("outside a plugin call" in line
                      for line in srv.log_lines()), "blocked-outside line")
        v = admin_metrics(srv)
        check(not any(k.startswith("spoke_loop_stalls_total{") for k in v),
              "stalls counted: %s" % [k for k in v if "stall" in k])


if __name__ == "__main__":
    main()
