#!/usr/bin/env python3
"""The config file (--config): server settings, flags that override them,
a plugin reading its [plugin NAME] section through spoke_config(), a
route table written by init from that section, and mistakes refused with
the file and line."""

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, SANITIZER_RE, SPOKE_BIN, Server,  # noqa
                           check, check_eq, check_response, main,
                           plugin_path, test)


def conf_file(text):
    fd, path = tempfile.mkstemp(prefix="spoke-it-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


@test
def plugin_reads_its_section_and_routes_from_it():
    path = conf_file("# test\n"
                     "[plugin configured]\n"
                     "greeting = hello there\n"
                     "prefix = /cfg\n"
                     "[plugin someone-else]\n"
                     "secret = not yours\n")
    try:
        with Server(["configured.so", "hello.so"],
                    args=["--config", path]) as srv:
            r = srv.get("/cfg/greeting")
            check_response(r, 200, b"hello there")
            r = srv.get("/cfg/secret")  # another plugin's key: not visible
            check_response(r, 404, b"unset")
            # the route moved to the configured prefix
            check_response(srv.get("/configured/greeting"), 404)
            check_response(srv.get("/hello"), 200, HELLO)
    finally:
        os.unlink(path)


@test
def configured_routes_survive_reloads():
    """Each version writes its route from the config in init and frees it
    in fini; the server reads the table (for its counters) before fini."""
    path = conf_file("[plugin configured]\nprefix = /cfg\ngreeting = hi\n")
    try:
        with Server(["configured.so", "hello.so"],
                    args=["--config", path]) as srv:
            target = os.path.join(srv.plugins_dir, "configured.so")
            for gen in range(3):
                check_response(srv.get("/cfg/greeting"), 200, b"hi")
                with open(plugin_path("configured.so"), "rb") as f:
                    data = f.read()
                with open(target + ".new", "wb") as f:
                    f.write(data)
                os.rename(target + ".new", target)
                srv.wait_log(r"unloaded plugin configured", start=0)
                srv.wait_log(r"reloaded plugin configured")
            for _ in range(100):  # each loop switches when it next runs
                if srv.get("/cfg/greeting").status == 200:
                    break
            check_response(srv.get("/cfg/greeting"), 200, b"hi")
            check_response(srv.get("/hello"), 200, HELLO)
    finally:
        os.unlink(path)


@test
def without_a_file_spoke_config_is_null():
    with Server(["configured.so"]) as srv:
        check_response(srv.get("/configured/greeting"), 404, b"unset")


@test
def file_settings_apply_and_flags_win():
    path = conf_file("max-body = 10\n")
    body = b"x" * 20
    try:
        with Server(["echo.so"], args=["--config", path]) as srv:
            with srv.conn() as c:
                check_response(c.roundtrip("POST", "/echo", body=body), 413)
        with Server(["echo.so"],
                    args=["--config", path, "--max-body", "100"]) as srv:
            with srv.conn() as c:
                check_response(c.roundtrip("POST", "/echo", body=body), 200,
                               body)
    finally:
        os.unlink(path)


@test
def route_table_broken_by_init_is_refused_with_one_line():
    path = conf_file("[plugin configured]\nprefix = no-slash\n")
    try:
        with Server(["configured.so", "hello.so"],
                    args=["--config", path]) as srv:
            srv.wait_log(r"configured\.so.*after init")
            lines = [l for l in srv.log_lines() if "configured.so" in l
                     and " error: " in l]
            check_eq(len(lines), 1, "error lines about configured.so:\n%s"
                     % srv.log_text())
            check_response(srv.get("/hello"), 200, HELLO)
    finally:
        os.unlink(path)


@test
def bad_file_stops_start_up_with_file_and_line():
    path = conf_file("loops = 2\nloops 3\n")
    try:
        p = subprocess.run([SPOKE_BIN, "--config", path], timeout=30,
                           stdin=subprocess.DEVNULL, capture_output=True,
                           text=True)
        check_eq(p.returncode, 2, "exit status for a bad config file")
        check("%s:2: expected KEY = VALUE" % path in p.stderr,
              "stderr:\n%s" % p.stderr)
        check(not SANITIZER_RE.search(p.stderr), p.stderr)
    finally:
        os.unlink(path)


if __name__ == "__main__":
    main()
