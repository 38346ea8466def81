#!/usr/bin/env python3
"""Hot reload: replace a plugin's .so under a running server.

The fixture `versioned` is built several times from one source; each
build answers /v/async and /v/sync (both with ?ms= waits) with a body
naming its version. A file is replaced the two ways users do it: rename
(`mv new.so versioned.so`, atomic) and copy in place (`cp new.so
versioned.so`, seen half-written). The server logs every load, refusal,
retirement and unload; the tests wait on those lines, never on time.

A rescan (SIGHUP, POST /reload) tries again every file refused before,
unchanged or not: a route clash (twin_hello.so against hello.so) is
refused again, one line per rescan, while the other plugin serves, and
loads, listed as such by POST /reload, once the other is gone."""

import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Conn, PluginFile,  # noqa
                           Server, build_request, check, check_eq,
                           check_response, main, plugin_path, test,
                           wait_answer)

V = {n: plugin_path("versioned_v%d.so" % n) for n in (1, 2, 3)}
BODY = {n: b"v%d\n" % n for n in (1, 2, 3)}


class Reloading(PluginFile):
    """A server with versioned v1 as versioned.so, and ways to replace it."""

    def __init__(self, srv, name="versioned.so"):
        super().__init__(srv, name)

    def wait_reloaded(self, version):
        return super().wait_reloaded("versioned", version)


def versioned_server(args=()):
    return Server([], args=["--loops", "1"] + list(args),
                  files={"versioned.so": open(V[1], "rb").read()})


def body_of(srv, path):
    r = srv.get(path)
    check_response(r, 200)
    return r.body


def in_flight_request_finishes_on_old_code(path):
    with versioned_server() as srv:
        rl = Reloading(srv)
        check_eq(body_of(srv, path), BODY[1], "before the reload")
        slow = srv.conn()
        slow.send(build_request("GET", path + "?ms=1000"))
        # One loop: once this answer is back, the slow request has been
        # read in the same or an earlier loop iteration, so it is
        # dispatched into v1 before any new snapshot can be swapped in.
        check_eq(body_of(srv, path), BODY[1], "probe")
        rl.rename(V[2])
        rl.wait_reloaded(2)
        m = rl.wait(r"retiring plugin versioned 1 .*: (\d+) requests? in flight",
                    "v1 retiring")
        check(int(m.group(1)) >= 1, "v1 retired with nothing in flight: %s"
              % m.group(0))
        check_eq(body_of(srv, path), BODY[2], "after the reload")
        r = slow.read_response()
        slow.close()
        check_response(r, 200, BODY[1])
        rl.wait(r"unloaded plugin versioned 1 ", "v1 unloaded once drained")
        check_eq(body_of(srv, path), BODY[2], "still v2")
        rl.close()


@test
def async_request_in_flight_keeps_v1_new_ones_get_v2():
    in_flight_request_finishes_on_old_code("/v/async")


@test
def sync_request_in_flight_keeps_v1_new_ones_get_v2():
    in_flight_request_finishes_on_old_code("/v/sync")


@test
def replaced_200_times_under_load_drops_nothing():
    replaced_200_times_under_load([])


@test
def replaced_200_times_under_load_with_2_worker_processes():
    # Each worker process watches the directory and reloads on its own;
    # the clients are spread over both by the shared listening sockets.
    replaced_200_times_under_load(["--processes", "2"])


def replaced_200_times_under_load(extra):
    conns, per_conn = 32, []
    stop = threading.Event()
    errors = []
    # Keep-alive connections live for the whole test: no request cap.
    with Server([], args=["--loops", "2", "--max-requests", "1000000000"]
                + extra,
                files={"versioned.so": open(V[1], "rb").read()}) as srv:
        rl = Reloading(srv)

        def client(i):
            seen = {"ok": 0, "bodies": set()}
            per_conn.append(seen)
            try:
                with Conn(srv.port) as c:
                    path = "/v/async" if i % 2 else "/v/sync"
                    while not stop.is_set():
                        r = c.roundtrip("GET", path)
                        if r.status != 200 or r.body not in (BODY[1], BODY[2]):
                            errors.append("conn %d: %d %r" % (i, r.status, r.body))
                            return
                        seen["ok"] += 1
                        seen["bodies"].add(r.body)
            except Exception as e:  # noqa: B902 - any failure is a dropped request
                errors.append("conn %d: %r" % (i, e))

        threads = [threading.Thread(target=client, args=(i,), daemon=True)
                   for i in range(conns)]
        for t in threads:
            t.start()
        for k in range(200):
            version = 2 if k % 2 == 0 else 1
            if k % 4 < 2:
                rl.rename(V[version])
            else:
                rl.copy_in_place(V[version])
            rl.wait_reloaded(version)
            check(not errors, "failed during reload %d: %s" % (k, errors[:5]))
        stop.set()
        for t in threads:
            t.join(60)
            check(not t.is_alive(), "client stuck")
        check(not errors, "failures: %s" % errors[:5])
        total = sum(s["ok"] for s in per_conn)
        check_eq(len(per_conn), conns, "client connections")
        check(all(s["ok"] > 0 for s in per_conn), "a connection never got an answer")
        check(any(len(s["bodies"]) == 2 for s in per_conn),
              "no connection saw both versions in %d requests" % total)
        rl.close()


@test
def broken_versions_keep_v1_serving_then_v3_loads():
    broken = [
        ("truncated", open(V[2], "rb").read()[:3000], r"truncated ELF file"),
        ("wrong ABI", open(plugin_path("bad_abi.so"), "rb").read(),
         r"ABI version mismatch: plugin built for 99\.0"),
        ("failing init", open(plugin_path("bad_initfail.so"), "rb").read(),
         r"init failed: SPOKE_EINIT"),
        ("not ELF", b"not a shared object\n", r"not an ELF shared object"),
    ]
    with versioned_server() as srv:
        rl = Reloading(srv)
        for what, data, reason in broken:
            with open(os.path.join(rl.stage, "bad.so"), "wb") as f:
                f.write(data)
            os.rename(os.path.join(rl.stage, "bad.so"), rl.dst)
            rl.wait(r"refused plugin versioned\.so: .*%s.*; versioned 1 "
                    r"\(generation 1\) keeps serving" % reason, what)
            check_eq(body_of(srv, "/v/async"), BODY[1], "v1 after " + what)
            st = rl.status()
            check_eq([i["version"] for i in st["instances"]], ["1"],
                     "instances after " + what)
            check(re.search(reason, st["files"][0]["error"] or ""),
                  "status error after %s: %r" % (what, st["files"][0]))
        rl.copy_in_place(V[3])
        rl.wait_reloaded(3)
        check_eq(body_of(srv, "/v/sync"), BODY[3], "v3")
        check_eq(rl.status()["files"][0]["error"], None, "error cleared")
        rl.close()


@test
def deleting_the_file_removes_routes_in_flight_finishes():
    with versioned_server() as srv:
        rl = Reloading(srv)
        slow = srv.conn()
        slow.send(build_request("GET", "/v/async?ms=1000"))
        check_eq(body_of(srv, "/v/async"), BODY[1], "probe")
        os.unlink(rl.dst)
        rl.wait(r"removed plugin versioned 1: versioned\.so is gone", "removal")
        check_eq(srv.get("/v/async").status, 404, "after removal")
        check_response(slow.read_response(), 200, BODY[1])
        slow.close()
        rl.wait(r"unloaded plugin versioned 1 ", "unload after the last request")
        check_eq(rl.status()["instances"], [], "instances after removal")
        check_eq(rl.copies(), [], "private copies after removal")
        rl.close()


@test
def a_new_file_adds_its_routes():
    with Server(["hello.so"]) as srv:
        rl = Reloading(srv, "echo.so")
        check_eq(srv.request("POST", "/echo", body=b"x").status, 404, "before")
        rl.rename(plugin_path("echo.so"))
        rl.wait(r"loaded plugin echo .* from echo\.so", "echo loaded")
        check_response(srv.request("POST", "/echo", body=b"xyz"), 200, b"xyz")
        rl.close()


@test
def counter_keeps_counting_across_a_reload():
    with Server(["counter.so"]) as srv:
        rl = Reloading(srv, "counter.so")
        for n in (1, 2, 3):
            check_response(srv.get("/counter"), 200, b"%d\n" % n)
        rl.copy_in_place(plugin_path("counter.so"))
        rl.wait(r"reloaded plugin counter .*state handed over", "counter reload")
        check_response(srv.get("/counter"), 200, b"4\n")
        rl.rename(plugin_path("counter.so"))
        rl.wait(r"reloaded plugin counter .*state handed over", "second reload")
        check_response(srv.get("/counter"), 200, b"5\n")
        rl.close()


@test
def sighup_rescans_and_leaves_unchanged_plugins_alone():
    with versioned_server() as srv:
        rl = Reloading(srv)
        gen = rl.status()["generation"]
        srv.send_signal(signal.SIGHUP)
        rl.wait(r"SIGHUP: rescanning", "SIGHUP")
        # A request after the rescan was handled: status is settled.
        check_eq(body_of(srv, "/v/async"), BODY[1], "after SIGHUP")
        check_eq(rl.status()["generation"], gen, "generation after SIGHUP")
        check(not any("reloaded plugin" in l for l in srv.log_lines()),
              "an unchanged plugin was reloaded")
        rl.close()


@test
def thousand_reload_cycles_leave_one_instance_and_no_copies():
    with versioned_server(["--watch-debounce", "1"]) as srv:
        rl = Reloading(srv)
        for k in range(1000):
            version = 2 if k % 2 == 0 else 1
            if k % 2:
                rl.rename(V[version])
            else:
                rl.copy_in_place(V[version])
            rl.wait_reloaded(version)
            if k % 100 == 99:
                check_eq(body_of(srv, "/v/sync"), BODY[version], "cycle %d" % k)
        rl.wait(r"unloaded plugin versioned 2 ", "last retired version unloaded")
        st = rl.status()
        check_eq([(i["version"], i["state"]) for i in st["instances"]],
                 [("1", "current")], "instances after 1000 reloads")
        check_eq(len(rl.copies()), 1, "private copies after 1000 reloads")
        runtime = rl.runtime
        rl.close()
        srv.stop()  # fails on any sanitizer or leak report
        check(not os.path.exists(runtime), "runtime directory left behind")


# -- refused plugins tried again

TWIN_REFUSED = re.compile(r"refused plugin twin_hello\.so: route GET /hello "
                          r"already taken by plugin hello")
NOTELF_REFUSED = re.compile(r"refused plugin bad_notelf\.so: ")
ADMIN_RE = re.compile(r"admin endpoint at (\S+):(\d+) ")


def line_index(srv, rx, start, what):
    """Index of the first log line from START matching RX, waiting for it."""
    check(srv.wait_log(rx, start=start) is not None,
          "no log line for %s (%s)\nlog tail:\n%s"
          % (what, rx.pattern, srv.log_tail()))
    lines = srv.log_lines()
    return next(i for i in range(start, len(lines)) if rx.search(lines[i]))


def count(srv, rx, start, end):
    return sum(1 for l in srv.log_lines()[start:end] if rx.search(l))


@test
def sighup_retries_a_refused_clash_once_each_time():
    with Server(["hello.so", "twin_hello.so", "bad_notelf.so"]) as srv:
        hup = re.compile(r"SIGHUP: rescanning")
        marks = [0]
        # One SIGHUP at a time (two pending ones would make one signal),
        # each after the last one's refusals; the third only closes the
        # second's lines off.
        for k in range(3):
            srv.send_signal(signal.SIGHUP)
            h = line_index(srv, hup, marks[-1], "SIGHUP %d" % (k + 1))
            marks.append(h + 1)
            if k < 2:
                line_index(srv, TWIN_REFUSED, h, "refusal %d" % (k + 2))
                line_index(srv, NOTELF_REFUSED, h, "refusal %d" % (k + 2))
                check_response(srv.get("/hello"), 200, HELLO)
                check_response(srv.get("/twin"), 404)
        for a, b in zip(marks, marks[1:]):
            for rx in (TWIN_REFUSED, NOTELF_REFUSED):
                check_eq(count(srv, rx, a, b), 1,
                         "refusals %s in log lines %d..%d:\n%s"
                         % (rx.pattern, a, b, srv.log_text()))
        check(not any(re.search(r"\bloaded plugin twin_hello", l)
                      for l in srv.log_lines()), "twin_hello loaded")


def post_reload(srv):
    m = srv.wait_log(ADMIN_RE)
    check(m is not None, "no admin endpoint line:\n%s" % srv.log_text())
    with Conn(int(m.group(2)), m.group(1)) as c:
        r = c.roundtrip("POST", "/reload")
    check_response(r, 200)
    return json.loads(r.body)


@test
def post_reload_loads_a_refused_clash_once_the_other_is_gone():
    # A minute's debounce keeps the watcher out of the way: POST /reload
    # is the one to find hello.so gone.
    with Server(["hello.so", "twin_hello.so"],
                args=["--admin", "127.0.0.1:0",
                      "--watch-debounce", "60000"]) as srv:
        check_eq(post_reload(srv)["changed"], [],
                 "changed while hello.so serves")
        # The answer can overtake the log line on its way through the
        # harness's stderr reader: wait for the second refusal to arrive.
        first = next(i for i, l in enumerate(srv.log_lines())
                     if TWIN_REFUSED.search(l))
        srv.wait_log(TWIN_REFUSED, start=first + 1)
        check_eq(count(srv, TWIN_REFUSED, 0, None), 2,
                 "twin_hello.so refusals (start-up and POST /reload)")
        check_response(srv.get("/hello"), 200, HELLO)

        os.unlink(os.path.join(srv.plugins_dir, "hello.so"))
        changed = {c["file"]: c for c in post_reload(srv)["changed"]}
        check_eq(sorted(changed), ["hello.so", "twin_hello.so"], "changed")
        check_eq(changed["hello.so"]["change"], "removed", "hello.so")
        twin = changed["twin_hello.so"]
        check_eq((twin["change"], twin["plugin"], twin["version"]),
                 ("loaded", "twin_hello", "1"), "twin_hello.so")
        check("error" not in twin, "twin_hello.so still has an error: %r"
              % twin)
        check(srv.wait_log(r"loaded plugin twin_hello 1 from twin_hello\.so")
              is not None, "no load line:\n%s" % srv.log_text())
        wait_answer(srv, "/twin", 200, b"twin\n")
        wait_answer(srv, "/hello", 200, b"twin\n")
        check_eq(post_reload(srv)["changed"], [], "changed once loaded")


if __name__ == "__main__":
    main()
