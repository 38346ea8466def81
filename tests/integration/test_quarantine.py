#!/usr/bin/env python3
"""Quarantine and rollback (ctl/ledger.c, ctl/rollback.c, supervise.c).

A plugin build that crashes --quarantine-after times (3) within
--quarantine-window is quarantined by the master: every worker, the
replacement and the ones still running, serves the newest earlier build
of that plugin that served without crashing (its own answers prove it),
or, with none, answers the plugin's routes 503 while the other plugins
serve. A different build in the directory lifts it; the quarantined
build brought back stays quarantined. A build that crashes in init
kills each replacement before it serves: those respawns back off, and
the quarantine ends it.

The fixture is versioned.so: build 2 segfaults on GET /v/crash, builds 1
and 3 answer it. Crashes need spoke's fatal-signal handler, so this runs
in the normal build only (sanitizer builds keep the signals). Nothing
sleeps to synchronize: the tests wait for log lines and answers.
"""

import json
import os
import re
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (SANITIZED, PluginFile, Server,  # noqa
                           admin_get, admin_metrics, check, check_eq,
                           check_response, lose_connection, main, no_cores,
                           plugin_path, test, wait_answer, wait_count)

V = {n: plugin_path("versioned_v%d.so" % n) for n in (1, 2, 3)}
RESPAWNED = r"error: worker \d+ died: SIGSEGV in plugin versioned 2 .*; " \
            r"respawned as \d+ in \d+ ms$"
SERVING = r"info: worker process serving"


def start(first, processes):
    no_cores()  # inherited by the server: a crash leaves no core file
    return Server(["hello.so"],
                  args=["--processes", str(processes), "--loops", "1",
                        "--workers", "2", "--admin", "127.0.0.1:0"],
                  files={"versioned.so": open(V[first], "rb").read()})


def crash_three_times(srv):
    """Three requests that each kill the worker they reach; each waits
    for that worker's replacement to serve before the next."""
    before = sum(re.search(RESPAWNED, l) is not None
                 for l in srv.log_lines())
    for i in range(3):
        lose_connection(srv, "/v/crash")
        wait_count(srv, RESPAWNED, before + i + 1)


def answers_all(srv, path, status, body, n=12):
    """N requests, each on a new connection (spread over the workers)."""
    for _ in range(n):
        check_response(srv.get(path), status, body)


def status(srv):
    """The status of the worker that answered (they agree on these)."""
    return json.loads(admin_get(srv, "/status").body)["workers"][0]["status"]


@test
def three_crashes_roll_back_every_worker_and_a_new_build_lifts_it():
    with start(1, 2) as srv:
        wait_count(srv, SERVING, 2)
        pf = PluginFile(srv, "versioned.so")
        answers_all(srv, "/v/crash", 200, b"v1\n")
        pf.rename(V[2])
        wait_count(srv, r"reloaded plugin versioned from versioned.so: "
                   r"1 -> 2", 2)
        wait_answer(srv, "/v/async", 200, b"v2\n")
        crash_three_times(srv)
        m = srv.wait_log(r"error: rolled back plugin versioned 2 -> 1 after "
                         r"3 crashes: build ([0-9a-f]{16}) crashed 3 times "
                         r"within 60 s; quarantined until a different build "
                         r"of it is in ")
        check(m is not None, "no rollback line:\n" + srv.log_tail())
        bad_build = m.group(1)
        # The replacement loads build 1 from the archive; the worker that
        # was running is told to rescan and swaps to it.
        wait_count(srv, r"plugin versioned .*rolled back from 2: its build "
                   r"is quarantined", 2)
        wait_answer(srv, "/v/crash", 200, b"v1\n")
        answers_all(srv, "/v/crash", 200, b"v1\n")
        answers_all(srv, "/hello", 200, b"Hello, World!", n=4)

        st = status(srv)
        check_eq([(q["plugin"], q["version"], q["build"], q["crashes"],
                   q["rollback"]["version"]) for q in st["quarantine"]],
                 [("versioned", "2", bad_build, 3, "1")], "quarantine")
        served = [i for i in st["instances"] if i["name"] == "versioned"
                  and i["state"] == "current"]
        check_eq([(i["version"], i["file"], i["quarantined"])
                  for i in served], [("1", "versioned.so", None)],
                 "the instance serving")
        v = admin_metrics(srv)
        check_eq(v.get('spoke_plugin_crashes_total{plugin="versioned",'
                       'version="2",signal="SIGSEGV"}'), 3.0, "crashes")
        check_eq(v.get("spoke_plugin_builds_quarantined"), 1.0,
                 "quarantined builds")

        # A fixed build lifts it, in every worker.
        pf.rename(V[3])
        wait_count(srv, r"reloaded plugin versioned from versioned.so: "
                   r"1 -> 3", 2)
        wait_answer(srv, "/v/crash", 200, b"v3\n")
        answers_all(srv, "/v/crash", 200, b"v3\n")

        # The crashing build brought back is still quarantined: the
        # workers serve the newest clean build instead, now build 3.
        pf.rename(V[2])
        wait_count(srv, r"reloaded plugin versioned from versioned.so: "
                   r"3 -> 3 .*rolled back from 2", 2)
        answers_all(srv, "/v/crash", 200, b"v3\n")
        check(srv.alive(), "the master is alive")


@test
def no_earlier_build_answers_503_and_other_plugins_serve():
    with start(2, 1) as srv:
        wait_count(srv, SERVING, 1)
        crash_three_times(srv)
        check(srv.wait_log(r"error: quarantined plugin versioned 2 after 3 "
                           r"crashes: build [0-9a-f]{16} crashed 3 times "
                           r"within 60 s; no earlier build of it served "
                           r"without crashing, so its routes answer 503")
              is not None, "no quarantine line:\n" + srv.log_tail())
        wait_count(srv, r"loaded plugin versioned 2 from versioned.so .*"
                   r"quarantined: build [0-9a-f]{16} crashed 3 times", 1)
        r = wait_answer(srv, "/v/async", 503)
        check(r.header("Retry-After") is not None, "no Retry-After")
        check(re.fullmatch(rb"503 plugin versioned 2 is quarantined: build "
                           rb"[0-9a-f]{16} crashed 3 times within 60 s\n",
                           r.body) is not None, "body %r" % r.body)
        # Its crashing route runs none of its code: no fourth crash.
        answers_all(srv, "/v/crash", 503, None, n=4)
        answers_all(srv, "/hello", 200, b"Hello, World!", n=4)
        st = status(srv)
        check_eq([(q["version"], q["rollback"]) for q in st["quarantine"]],
                 [("2", None)], "quarantine")
        check(srv.alive(), "the master is alive")
        # A different build lifts it.
        pf = PluginFile(srv, "versioned.so")
        pf.rename(V[1])
        wait_answer(srv, "/v/crash", 200, b"v1\n")


@test
def crash_in_init_backs_off_then_quarantines():
    # A build that crashes in init kills the worker that reloads it and
    # then each replacement before it serves: the respawns back off, and
    # the third crash quarantines it; the next worker serves the rest.
    fd, conf = tempfile.mkstemp(prefix="spoke-it-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write("[plugin bad]\ncrash = init\n")
    no_cores()
    with Server(["hello.so"], args=["--processes", "1", "--config", conf]) \
            as srv:
        wait_count(srv, SERVING, 1)
        PluginFile(srv, "bad.so").rename(plugin_path("bad.so"))
        check(srv.wait_log(r"error: worker \d+ died: SIGSEGV in plugin bad "
                           r"1\.0\.0 \(generation \d+, init\) .*; "
                           r"respawning in 50 ms \(2 deaths in a row before "
                           r"serving\)$") is not None,
              "no back-off line:\n" + srv.log_tail())
        check(srv.wait_log(r"error: quarantined plugin bad 1\.0\.0 after 3 "
                           r"crashes") is not None,
              "no quarantine line:\n" + srv.log_tail())
        wait_answer(srv, "/bad/ok", 503)
        answers_all(srv, "/hello", 200, b"Hello, World!", n=4)
    os.unlink(conf)


@test
def quarantine_after_0_never_quarantines():
    no_cores()
    with Server(["hello.so"],
                args=["--processes", "1", "--quarantine-after", "0"],
                files={"versioned.so": open(V[2], "rb").read()}) as srv:
        wait_count(srv, SERVING, 1)
        crash_three_times(srv)
        lose_connection(srv, "/v/crash")  # a fourth: still its code
        wait_count(srv, RESPAWNED, 4)
        check(not any("quarantined" in l for l in srv.log_lines()),
              "quarantined with --quarantine-after 0:\n" + srv.log_tail())


if __name__ == "__main__":
    if SANITIZED:
        print("skipped: %s is a sanitizer build (the sanitizer owns the "
              "fatal signals there)" % os.environ.get("SPOKE_BIN", "spoke"))
        sys.exit(77)
    main()
