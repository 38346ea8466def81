#!/usr/bin/env python3
"""Supervised worker processes (--processes N, core/ctl/supervise.c).

A master keeps the sockets and replaces a worker that dies. A segfault in
a sync handler and in an async handler each cost one worker: the server
answers /hello again, the master logs one line naming the plugin,
version, generation, route and mode, and the next worker's /metrics
counts the crash and the restart. A loop held past --stall-kill gets its
worker replaced the same way, named and counted as a stall. Deaths with
no plugin to blame back off before the respawn. SIGTERM to the master
drains every worker: requests in flight get their answers.

The crash tests need spoke's fatal-signal handler, which sanitizer builds
leave to the sanitizer (ctl/crash.c), whose report of the deliberate
fault would fail the run: they run in the normal build only. Nothing sleeps to synchronize:
the tests wait for log lines and answers.
"""

import json
import os
import re
import signal
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (SANITIZED, Server, admin_get,  # noqa
                           admin_metrics, check, check_eq, check_response,
                           lose_connection, main, no_cores, test, wait_count)

SERVING_RE = re.compile(r"spoke\[(\d+)\] info: worker process serving")
RESPAWN_RE = (r"spoke\[(?P<master>\d+)\] error: worker (?P<old>\d+) died: "
              r"(?P<cause>.*); respawned as (?P<new>\d+) in (?P<ms>\d+) ms$")


def start(plugins, extra=()):
    no_cores()  # inherited by the server: a crash leaves no core file
    return Server(plugins, args=["--processes", "1", "--loops", "2",
                                 "--workers", "2", "--admin", "127.0.0.1:0"]
                  + list(extra))


def crash_and_respawn(path, cause_re, signal_label):
    with start(["bad.so", "hello.so"]) as srv:
        first = srv.wait_log(SERVING_RE)
        check(first is not None, "no worker serving line")
        check_response(srv.get("/bad/ok"), 200, b"bad ok\n")
        lose_connection(srv, path)
        m = srv.wait_log(RESPAWN_RE)
        check(m is not None, "no respawn line:\n" + srv.log_tail())
        check_eq(int(m.group("master")), srv.proc.pid, "master pid")
        check_eq(m.group("old"), first.group(1), "the dead worker")
        check(m.group("new") != m.group("old"), "a new worker")
        check(re.fullmatch(cause_re, m.group("cause")) is not None,
              "cause %r, want %s" % (m.group("cause"), cause_re))
        # The replacement serves, the other plugins as well as the one
        # that crashed.
        check_response(srv.get("/hello"), 200, b"Hello, World!")
        check_response(srv.get("/bad/ok"), 200, b"bad ok\n")
        v = admin_metrics(srv)
        check_eq(v.get("spoke_worker_restarts_total"), 1.0, "restarts")
        key = ('spoke_plugin_crashes_total{plugin="bad",'
               'version="1.0.0",signal="%s"}' % signal_label)
        check_eq(v.get(key), 1.0, key)
        check(srv.alive(), "the master is alive")


def normal_build_only(fn):
    if SANITIZED:
        print("skipping %s: a sanitizer build (the sanitizer owns the fatal "
              "signals there)" % fn.__name__)
        return fn
    return test(fn)


@normal_build_only
def sync_segfault_costs_one_worker():
    crash_and_respawn(
        "/bad/crash",
        r"SIGSEGV in plugin bad 1\.0\.0 \(generation \d+, GET /bad/crash, "
        r"sync\) on thread spoke-worker-\d+", "SIGSEGV")


@normal_build_only
def async_segfault_costs_one_worker():
    crash_and_respawn(
        "/bad/crash-async",
        r"SIGSEGV in plugin bad 1\.0\.0 \(generation \d+, "
        r"GET /bad/crash-async, async\) on thread spoke-loop-\d+", "SIGSEGV")


@test
def stall_past_stall_kill_replaces_the_worker():
    with start(["blocker.so", "hello.so"], ["--stall-kill", "300"]) as srv:
        check(srv.wait_log(SERVING_RE) is not None, "no serving line")
        lose_connection(srv, "/blocker/block?ms=20000")
        m = srv.wait_log(RESPAWN_RE)
        check(m is not None, "no respawn line:\n" + srv.log_tail())
        cm = re.fullmatch(
            r"loop held (\d+) ms \(past --stall-kill\) by plugin blocker "
            r"1\.0\.0 \(generation \d+, GET /blocker/block, async\) on "
            r"thread spoke-loop-\d+", m.group("cause"))
        check(cm is not None, "cause %r" % m.group("cause"))
        check(int(cm.group(1)) >= 300, "held %s ms" % cm.group(1))
        check_response(srv.get("/hello"), 200, b"Hello, World!")
        v = admin_metrics(srv)
        check_eq(v.get('spoke_plugin_crashes_total{plugin="blocker",'
                       'version="1.0.0",signal="stall"}'), 1.0, "stalls")
        check_eq(v.get("spoke_worker_restarts_total"), 1.0, "restarts")


@test
def queued_connections_outlive_a_dead_worker():
    # One loop, held by a handler until --stall-kill replaces its worker:
    # connections made meanwhile wait in the kernel's accept queue of the
    # master's socket, and the replacement serves every one of them.
    with start(["blocker.so", "hello.so"],
               ["--stall-kill", "300", "--loops", "1"]) as srv:
        check(srv.wait_log(SERVING_RE) is not None, "no serving line")
        held = srv.conn()
        held.request("GET", "/blocker/block?ms=10000")
        check(srv.wait_log(r"blocker: loop block start") is not None,
              "the handler did not start:\n" + srv.log_tail())
        queued = [srv.conn() for _ in range(8)]
        for c in queued:
            c.request("GET", "/hello")
        check(srv.wait_log(RESPAWN_RE) is not None,
              "no respawn line:\n" + srv.log_tail())
        for c in queued:
            check_response(c.read_response(), 200, b"Hello, World!")
            c.close()
        held.close()


@test
def sigterm_to_every_process_still_drains():
    # systemd (KillMode=control-group) and `kill $(pidof spoke)` signal
    # the master and the workers at once: a worker then gets SIGTERM
    # twice, directly and passed on by its master, and must still drain.
    with start(["blocker.so", "hello.so"], ["--processes", "2"]) as srv:
        wait_count(srv, SERVING_RE, 2)
        workers = {int(m.group(1)) for m in
                   (SERVING_RE.search(l) for l in srv.log_lines()) if m}
        c = srv.conn()
        c.request("GET", "/blocker/sync?ms=1000")
        check(srv.wait_log(r"blocker: sync start") is not None,
              "the request did not start")
        # The workers first, each seen draining (so the master's SIGTERM
        # cannot merge with theirs), then the master.
        for pid in sorted(workers):
            os.kill(pid, signal.SIGTERM)
            check(srv.wait_log(r"spoke\[%d\] info: SIGTERM: draining" % pid)
                  is not None, "worker %d did not drain" % pid)
        os.kill(srv.proc.pid, signal.SIGTERM)
        check_response(c.read_response(), 200, b"blocked 1000 ms\n")
        c.close()
        srv.stop(None, expect_code=0)
        check(not any("again" in l for l in srv.log_lines()),
              "a signal counted as the second:\n" + srv.log_tail())


@test
def second_sigterm_ends_every_worker_at_once():
    # Two SIGTERMs in a row reach the master, which must not pass on two
    # SIGTERMs that merge into one in a worker: the workers exit at once
    # although a request is still in flight, and the master exits 1.
    with start(["blocker.so", "hello.so"], ["--processes", "2"]) as srv:
        wait_count(srv, SERVING_RE, 2)
        c = srv.conn()
        c.request("GET", "/blocker/sync?ms=10000")
        check(srv.wait_log(r"blocker: sync start") is not None,
              "the request did not start")
        srv.send_signal(signal.SIGTERM)
        check(srv.wait_log(r"SIGTERM: draining 2 worker processes")
              is not None, "no drain line")
        srv.stop(signal.SIGTERM, expect_code=1)
        check(srv.wait_log(r"SIGTERM again: exiting without waiting for "
                           r"\d worker process") is not None,
              "no line for the second SIGTERM:\n" + srv.log_tail())
        c.close()


@test
def admin_answers_for_every_worker():
    # Whichever worker accepts the admin request answers for all: its
    # /status lists every worker, its /metrics sums their requests.
    with Server(["hello.so"], args=["--processes", "3", "--loops", "1",
                                    "--admin", "127.0.0.1:0"]) as srv:
        wait_count(srv, SERVING_RE, 3)
        serving = {int(m.group(1)) for m in
                   (SERVING_RE.search(l) for l in srv.log_lines()) if m}
        n = 30
        for _ in range(n):
            check_response(srv.get("/hello"), 200, b"Hello, World!")
        for _ in range(4):  # whichever worker answers
            st = json.loads(admin_get(srv, "/status").body)
            check_eq(st["master_pid"], srv.proc.pid, "master_pid")
            check_eq(st["processes"], 3, "processes")
            check_eq({w["pid"] for w in st["workers"]}, serving,
                     "the workers listed")
            check(all("status" in w for w in st["workers"]),
                  "a worker did not answer: %r" % st["workers"])
            v = admin_metrics(srv)
            check_eq(v.get('spoke_requests_total{plugin="hello",'
                           'route="GET /hello",class="2xx"}'), float(n),
                     "requests summed over the workers")
            check_eq(v.get("spoke_worker_processes_counted"), 3.0, "counted")
            check_eq(v.get("spoke_worker_restarts_total"), 0.0,
                     "the master's count, once")


@test
def deaths_with_no_plugin_back_off():
    with start(["hello.so"]) as srv:
        first = srv.wait_log(SERVING_RE)
        check(first is not None, "no serving line")
        n = len(srv.log_lines())
        os.kill(int(first.group(1)), signal.SIGKILL)
        m = srv.wait_log(RESPAWN_RE, start=n)
        check(m is not None, "no respawn line:\n" + srv.log_tail())
        check_eq(m.group("cause"), "killed by SIGKILL (no report from the "
                 "worker)", "cause")
        n = len(srv.log_lines())
        os.kill(int(m.group("new")), signal.SIGKILL)
        b = srv.wait_log(r"worker %s died: killed by SIGKILL \(no report "
                         r"from the worker\); respawning in 50 ms \(2 deaths "
                         r"in a row with no plugin to blame\)"
                         % m.group("new"), start=n)
        check(b is not None, "no back-off line:\n" + srv.log_tail())
        check(srv.wait_log(SERVING_RE, start=n) is not None,
              "not respawned after the pause")
        check_response(srv.get("/hello"), 200, b"Hello, World!")


@test
def sigterm_drains_every_worker():
    with Server(["blocker.so"], args=["--processes", "2", "--loops", "1",
                                      "--workers", "4"]) as srv:
        results = []
        started = threading.Semaphore(0)

        def client():
            try:
                with srv.conn() as c:
                    c.request("GET", "/blocker/sync?ms=400")
                    started.release()
                    results.append(c.read_response())
            except Exception as e:  # noqa: a failure is what we count
                started.release()
                results.append(e)

        threads = [threading.Thread(target=client) for _ in range(6)]
        for t in threads:
            t.start()
        for _ in threads:
            started.acquire()
        # Each request has been sent; wait until all six run on a worker.
        wait_count(srv, r"blocker: sync start", 6)
        srv.stop()  # SIGTERM to the master; exit code 0
        for t in threads:
            t.join()
        for r in results:
            check(not isinstance(r, Exception), "client error: %r" % (r,))
            check_response(r, 200, b"blocked 400 ms\n")


if __name__ == "__main__":
    main()
