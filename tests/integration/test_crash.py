#!/usr/bin/env python3
"""A crash names its culprit (core/ctl/crash.c).

The fixture plugin bad.so (tests/plugins/bad.c) crashes on request: a
write through NULL in a sync handler (on a worker), in an async handler
(on a loop), an abort() on a loop, a stack overflow on a worker, and a
write through NULL in init when its config section says `crash = init`.
For each the server process must die by the signal itself (so exit
statuses and cores are what they always were), and its stderr must hold
exactly one "fatal:" line, in the log's format, naming the plugin, its
version and generation, the route and mode (or what was called), and the
thread. Answers given before the crash were real 200s. These servers run
as one process (--processes 0): under a master the same crash costs one
worker instead (test_supervise.py).

Skipped (exit 77) in sanitizer builds: ASan and TSan own SIGSEGV there
and spoke leaves the fatal signals to them (their report says more), so
no such line is written. A sanitizer build is recognized by its runtime's
entry points (__asan_init, __tsan_init) named in the binary.

These servers die, so the harness's Server.stop() (exit 0, no sanitizer
report) is not used: the tests wait for the exit and read the log
themselves. Core dumps are switched off for the servers started here
(RLIMIT_CORE 0, inherited), which changes nothing else about the death.
"""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (SANITIZED, SPOKE_BIN, ConnectionClosed,  # noqa
                           Server,
                           check, check_eq, check_response, main,
                           plugin_path, test)

FATAL_RE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z spoke\[(?P<pid>\d+)\] fatal: "
    r"(?P<sig>SIG[A-Z]+) in plugin bad 1\.0\.0 "
    r"\(generation (?P<gen>\d+), (?P<what>[^)]*)\) "
    r"on thread (?P<thread>\S+); the server stops \(core dump as usual\)$")
LOADED_RE = re.compile(r"loaded plugin bad 1\.0\.0 from bad\.so "
                       r"\(generation (\d+)")


def no_cores():
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))


def fatal_lines(lines):
    return [l for l in lines if " fatal: " in l]


def check_fatal(lines, pid, sig, gen, what, thread_re):
    """Exactly one fatal line, and it says all of this."""
    fatal = fatal_lines(lines)
    check(len(fatal) == 1, "want one fatal line, got %d:\n%s"
          % (len(fatal), "\n".join(lines[-40:])))
    m = FATAL_RE.match(fatal[0])
    check(m is not None, "fatal line not in the expected form:\n%s"
          % fatal[0])
    check_eq(int(m.group("pid")), pid, "pid in " + fatal[0])
    check_eq(m.group("sig"), sig.name, "signal in " + fatal[0])
    check_eq(int(m.group("gen")), gen, "generation in " + fatal[0])
    check_eq(m.group("what"), what, "what in " + fatal[0])
    check(re.fullmatch(thread_re, m.group("thread")) is not None,
          "thread %r, want %s: %s" % (m.group("thread"), thread_re,
                                      fatal[0]))


def crash_on(path, sig, what, thread_re, reload_first=False):
    rundir = tempfile.mkdtemp(prefix="spoke-it-crash-")
    srv = Server(["bad.so"], args=["--processes", "0",
                                   "--runtime-dir", rundir, "--loops", "2",
                                   "--workers", "2"])
    try:
        m = LOADED_RE.search(srv.log_text())
        check(m is not None, "no 'loaded plugin bad' line:\n" +
              srv.log_text())
        gen = int(m.group(1))
        if reload_first:
            # A new version (same file, new generation) takes over: the
            # report must name the generation that serves, not the first.
            # Once the first is unloaded no loop routes to it any more.
            target = os.path.join(srv.plugins_dir, "bad.so")
            shutil.copyfile(plugin_path("bad.so"), target + ".new")
            os.rename(target + ".new", target)
            m = srv.wait_log(r"reloaded plugin bad from bad\.so: .* "
                             r"\(generation (\d+)")
            check(m is not None, "no 'reloaded plugin bad' line:\n" +
                  srv.log_text())
            check(srv.wait_log(r"unloaded plugin bad 1\.0\.0 \(generation "
                               r"%d\)" % gen) is not None,
                  "the first version was not unloaded:\n" + srv.log_text())
            gen = int(m.group(1))
        check_response(srv.get("/bad/ok"), 200, b"bad ok\n")
        with srv.conn() as c:
            c.request("GET", path)
            try:
                r = c.read_response()
                raise AssertionError("GET %s answered instead of crashing: %r"
                                     % (path, r))
            except (ConnectionClosed, ConnectionResetError, socket.timeout):
                pass
        rc = srv.wait_exit()
        check(rc is not None, "server still running after GET %s:\n%s"
              % (path, srv.log_tail()))
        check_eq(rc, -sig, "exit status after GET %s (stderr:\n%s\n)"
                 % (path, srv.log_tail()))
        check_fatal(srv.log_lines(), srv.proc.pid, sig, gen, what,
                    thread_re)
    finally:
        srv._kill()
        shutil.rmtree(rundir, ignore_errors=True)


@test
def sync_handler_segfault_names_route_and_worker():
    crash_on("/bad/crash", signal.SIGSEGV, "GET /bad/crash, sync",
             r"spoke-worker-\d+")


@test
def async_handler_segfault_names_route_and_loop():
    crash_on("/bad/crash-async", signal.SIGSEGV,
             "GET /bad/crash-async, async", r"spoke-loop-\d+")


@test
def abort_in_async_handler():
    crash_on("/bad/abort", signal.SIGABRT, "GET /bad/abort, async",
             r"spoke-loop-\d+")


@test
def stack_overflow_is_reported_from_the_alternate_stack():
    crash_on("/bad/overflow", signal.SIGSEGV, "GET /bad/overflow, sync",
             r"spoke-worker-\d+")


@test
def the_generation_is_the_serving_one_after_a_reload():
    crash_on("/bad/crash", signal.SIGSEGV, "GET /bad/crash, sync",
             r"spoke-worker-\d+", reload_first=True)


@test
def crash_in_init_names_init_on_the_control_thread():
    tmp = tempfile.mkdtemp(prefix="spoke-it-crash-")
    try:
        plugins = os.path.join(tmp, "plugins")
        rundir = os.path.join(tmp, "run")
        os.mkdir(plugins)
        os.mkdir(rundir)
        shutil.copyfile(plugin_path("bad.so"), os.path.join(plugins,
                                                            "bad.so"))
        conf = os.path.join(tmp, "spoke.conf")
        with open(conf, "w") as f:
            f.write("[plugin bad]\ncrash = init\n")
        p = subprocess.Popen([SPOKE_BIN, "--processes", "0",
                              "--listen", "127.0.0.1:0",
                              "--plugins", plugins, "--runtime-dir", rundir,
                              "--config", conf],
                             stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        try:
            _, err = p.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            raise AssertionError("server still running although init "
                                 "crashes")
        lines = err.decode("utf-8", "replace").splitlines()
        check_eq(p.returncode, -signal.SIGSEGV,
                 "exit status (stderr:\n%s\n)" % "\n".join(lines))
        check(not any("listening on" in l for l in lines),
              "listened although init crashed:\n" + "\n".join(lines))
        # Not loaded yet: its generation is the one the first scan gives
        # it (the "loaded" line never comes), 1 in a fresh server.
        check_fatal(lines, p.pid, signal.SIGSEGV, 1, "init", r"control")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    if SANITIZED:
        print("skipped: %s is a sanitizer build (the sanitizer owns the "
              "fatal signals there)" % SPOKE_BIN)
        sys.exit(77)
    no_cores()
    main()
