#!/usr/bin/env python3
"""Start-up plugin loading: bad plugins are refused one log line each and
the good ones serve; route conflicts, and a plugin refused for one that
loads, its file untouched, once the other plugin is removed or replaced
by a version without the clashing route; a truncated .so; versioned
plugin; a plugin built for a newer minor SDK loads with one warning,
which `spoke check` prints too."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, SANITIZER_RE, SPOKE_BIN,  # noqa: E402
                           Server, check, check_eq, check_response, main,
                           plugin_bytes, plugin_path, test, wait_answer)

BAD = ["bad_notelf.so", "bad_nodesc.so", "bad_abi.so", "bad_small.so",
       "bad_initfail.so", "twin_hello.so"]


def refusal_lines(srv, fname):
    return [l for l in srv.log_lines()
            if fname in l and "refus" in l.lower()]


def check_refused_once(srv, fname):
    lines = refusal_lines(srv, fname)
    check(len(lines) == 1,
          "want exactly one log line naming %s and containing 'refus', got "
          "%d:\n%s\n--- log:\n%s" % (fname, len(lines), "\n".join(lines),
                                     srv.log_text()))
    return lines[0]


@test
def bad_plugins_refused_good_ones_serve():
    with Server(["hello.so"] + BAD) as srv:
        check_response(srv.get("/hello"), 200, HELLO)
        # twin_hello is refused whole: neither its /hello nor its /twin
        check_response(srv.get("/twin"), 404)
        for path in ("/badabi", "/badsmall", "/initfail"):
            check_response(srv.get(path), 404)
        lines = {f: check_refused_once(srv, f) for f in BAD}
        # the ABI refusal names both versions (the plugin's 99 and ours)
        abi = lines["bad_abi.so"]
        check("99" in abi, "ABI refusal does not name version 99: %r" % abi)
        check(len(re.findall(r"\d+\.\d+", abi)) >= 2 or
              len(re.findall(r"\d+", abi)) >= 2,
              "ABI refusal does not name both versions: %r" % abi)
        # the conflict line says what was taken
        twin = lines["twin_hello.so"]
        check("/hello" in twin, "conflict refusal does not name the route: %r"
              % twin)


def file_id(path):
    st = os.stat(path)
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def wait_twin_loaded(srv):
    m = srv.wait_log(r"loaded plugin twin_hello 1 from twin_hello\.so")
    check(m is not None, "twin_hello.so never loaded:\n%s" % srv.log_text())


@test
def clash_refused_at_start_loads_when_the_other_is_removed():
    with Server(["hello.so", "twin_hello.so", "bad_notelf.so"]) as srv:
        twin = os.path.join(srv.plugins_dir, "twin_hello.so")
        before = file_id(twin)
        check_refused_once(srv, "twin_hello.so")
        check_response(srv.get("/twin"), 404)
        # Nothing but the removal: no signal, no touch of twin_hello.so.
        os.unlink(os.path.join(srv.plugins_dir, "hello.so"))
        wait_twin_loaded(srv)
        wait_answer(srv, "/twin", 200, b"twin\n")
        wait_answer(srv, "/hello", 200, b"twin\n")
        check_eq(file_id(twin), before, "twin_hello.so stat")
        check_refused_once(srv, "twin_hello.so")
        # A refusal that is no conflict is not retried on a removal.
        check_refused_once(srv, "bad_notelf.so")


@test
def clash_lifted_by_a_replacement_without_the_route():
    with Server(["hello.so", "twin_hello.so"]) as srv:
        check_refused_once(srv, "twin_hello.so")
        # hello.so becomes echo: the slot stays, GET /hello leaves it.
        stage = srv.plugins_dir + ".stage"
        os.makedirs(stage)
        try:
            shutil.copyfile(plugin_path("echo.so"),
                            os.path.join(stage, "hello.so"))
            os.rename(os.path.join(stage, "hello.so"),
                      os.path.join(srv.plugins_dir, "hello.so"))
        finally:
            shutil.rmtree(stage, ignore_errors=True)
        check(srv.wait_log(r"reloaded plugin echo from hello\.so")
              is not None, "hello.so not replaced:\n%s" % srv.log_text())
        wait_twin_loaded(srv)
        wait_answer(srv, "/twin", 200, b"twin\n")
        check_response(srv.request("POST", "/echo", body=b"x"), 200, b"x")
        check_refused_once(srv, "twin_hello.so")


@test
def truncated_plugin_refused_rest_serve():
    trunc = plugin_bytes("hello.so")[:1000]
    with Server(["hello.so", "echo.so"], files={"trunc.so": trunc}) as srv:
        check_response(srv.get("/hello"), 200, HELLO)
        check_response(srv.request("POST", "/echo", body=b"x"), 200, b"x")
        check_refused_once(srv, "trunc.so")


@test
def truncated_plugin_alone_server_still_starts():
    trunc = plugin_bytes("hello.so")[:1000]
    empty = b""
    with Server([], files={"trunc.so": trunc, "empty.so": empty}) as srv:
        check_response(srv.get("/hello"), 404)
        check_refused_once(srv, "trunc.so")
        check_refused_once(srv, "empty.so")


@test
def empty_plugins_dir_serves_404():
    with Server([]) as srv:
        check_response(srv.get("/"), 404)
        check_response(srv.get("/hello"), 404)


@test
def non_so_files_are_ignored():
    files = {"README.txt": b"not a plugin\n", "hello.so.bak": b"junk"}
    with Server(["hello.so"], files=files) as srv:
        check_response(srv.get("/hello"), 200, HELLO)
        check(not refusal_lines(srv, "README.txt"),
              "README.txt treated as a plugin:\n%s" % srv.log_text())


@test
def versioned_v1_serves_async_and_sync():
    with Server(["versioned_v1.so"]) as srv:
        check_response(srv.get("/v/async"), 200, b"v1\n")
        check_response(srv.get("/v/sync"), 200, b"v1\n")
        check_response(srv.get("/v/async?ms=20"), 200, b"v1\n")
        check_response(srv.get("/v/sync?ms=20"), 200, b"v1\n")


@test
def all_plugins_together():
    with Server(["hello.so", "sleep.so", "echo.so", "counter.so",
                 "misbehave.so", "versioned_v1.so"]) as srv:
        check_response(srv.get("/hello"), 200, HELLO)
        check_response(srv.get("/sleep/async?ms=1"), 200, HELLO)
        check_response(srv.get("/counter"), 200, b"1\n")
        check_response(srv.get("/v/sync"), 200, b"v1\n")
        check_response(srv.get("/mis/query?a=1"), 200, b"a=1")
        check_eq([l for l in srv.log_lines() if "refus" in l.lower()], [],
                 "refusals with only good plugins")


# The warning newer_minor.so (descriptor: SDK 1.(N+1), one pointer more
# than this host's spoke_plugin_t) earns, as the server logs it.
NEWER_RE = re.compile(
    r"warn: (plugin newer_minor 1\.0\.0 was built for SDK (\d+)\.(\d+); "
    r"this host speaks (\d+)\.(\d+): host functions added after "
    r"\4\.\5 are missing here \(the plugin must test them with "
    r"SPOKE_HOST_HAS\); its descriptor has (\d+) bytes this host does "
    r"not read .*)$")


@test
def newer_minor_plugin_loads_with_one_warning():
    with Server(["hello.so", "newer_minor.so"]) as srv:
        check_response(srv.get("/newerminor"), 200, b"newer minor\n")
        check_response(srv.get("/hello"), 200, HELLO)
        lines = [l for l in srv.log_lines() if "newer_minor" in l and
                 "warn" in l]
        check(len(lines) == 1,
              "want exactly one warning about newer_minor, got %d:\n%s"
              % (len(lines), srv.log_text()))
        m = NEWER_RE.search(lines[0])
        check(m, "warning does not say what newer_minor may miss: %r"
              % lines[0])
        major, minor, hmajor, hminor, extra = (int(g) for g in m.groups()[1:])
        check_eq((major, minor), (hmajor, hminor + 1), "versions named")
        check(extra > 0, "extra descriptor bytes %r" % extra)
        check_eq([l for l in srv.log_lines() if "refus" in l.lower()], [],
                 "refusals")
        # An older or same-minor plugin earns no warning at all.
        check_eq([l for l in srv.log_lines() if " warn: " in l and
                  "newer_minor" not in l], [], "other warnings")
        warning = m.group(1)
    # `spoke check` prints the same text, as a warning line before "ok".
    with tempfile.TemporaryDirectory(prefix="spoke-it-newer-") as rundir:
        path = plugin_path("newer_minor.so")
        p = subprocess.run([SPOKE_BIN, "check", "--runtime-dir", rundir,
                            path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=60)
        out = p.stdout.decode("utf-8", "replace")
        err = p.stderr.decode("utf-8", "replace")
        check(not SANITIZER_RE.search(err), "sanitizer report:\n%s" % err)
        check(p.returncode == 0, "spoke check newer_minor.so: exit %r\n%s%s"
              % (p.returncode, out, err))
        lines = out.splitlines()
        check_eq(lines[-1], "ok", "last line")
        check_eq(lines[-2], "%s: warning: %s" % (path, warning),
                 "line before ok")
        check_eq(sum(1 for l in lines if "warning" in l), 1,
                 "warning lines in:\n%s" % out)
        check_eq(os.listdir(rundir), [], "left in the runtime dir")


if __name__ == "__main__":
    main()
