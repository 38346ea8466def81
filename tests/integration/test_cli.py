#!/usr/bin/env python3
"""Command line: --help, --version, bad options, the bound address, and
`spoke check --plugins DIR` (checking beside a plugins directory)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, SANITIZER_RE, SPOKE_BIN, Server,  # noqa
                           check, check_eq, check_response, main,
                           plugin_path, test)


def run(args, timeout=30):
    check(os.path.isfile(SPOKE_BIN), "no server binary at %s" % SPOKE_BIN)
    p = subprocess.run([SPOKE_BIN] + args, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout)
    out = p.stdout.decode("utf-8", "replace")
    err = p.stderr.decode("utf-8", "replace")
    check(not SANITIZER_RE.search(err), "sanitizer report:\n%s" % err)
    return p.returncode, out, err


@test
def help_prints_usage_and_exits_zero():
    rc, out, err = run(["--help"])
    check(rc == 0, "--help exit code %r\nstdout:%s\nstderr:%s" % (rc, out, err))
    text = out + err
    for opt in ("--listen", "--plugins", "--loops", "--workers",
                "--max-queue", "--max-body"):
        check(opt in text, "--help does not mention %s:\n%s" % (opt, text))
    check("--listen" in out,
          "--help should print its usage on stdout:\nstdout:%s\nstderr:%s"
          % (out, err))


@test
def version_prints_version_and_exits_zero():
    rc, out, err = run(["--version"])
    check(rc == 0, "--version exit code %r\n%s%s" % (rc, out, err))
    check(re.search(r"\d+\.\d+(\.\d+)?", out + err),
          "--version printed no version number: %r" % (out + err))


@test
def unknown_flag_fails_with_message():
    rc, out, err = run(["--bogus-flag"])
    check(rc != 0, "unknown flag exit code 0")
    check("bogus-flag" in (out + err),
          "unknown-flag message does not name the flag: %r" % (out + err))


@test
def missing_option_value_fails():
    rc, out, err = run(["--listen"])
    check(rc != 0, "--listen without a value: exit code 0")
    check((out + err).strip(), "no message for --listen without a value")


@test
def bad_values_fail():
    d = tempfile.mkdtemp(prefix="spoke-it-cli-")
    try:
        for args in (["--listen", "127.0.0.1:notaport", "--plugins", d],
                     ["--listen", "127.0.0.1:99999", "--plugins", d],
                     ["--listen", "127.0.0.1:0", "--plugins", d,
                      "--workers", "abc"],
                     ["--listen", "192.0.2.1:0", "--plugins", d]):
            rc, out, err = run(args)
            check(rc != 0, "%s: exit code 0" % " ".join(args))
            check((out + err).strip(), "%s: no message" % " ".join(args))
    finally:
        os.rmdir(d)


@test
def listening_line_has_real_port_and_serves():
    with Server(["hello.so"]) as srv:
        check(srv.port > 0, "port %r" % srv.port)
        check(srv.host == "127.0.0.1", "listening host %r" % srv.host)
        check_response(srv.get("/hello"), 200, HELLO)


@test
def all_options_accepted_together():
    with Server(["hello.so", "sleep.so"],
                args=["--loops", "2", "--workers", "3", "--max-queue", "10",
                      "--max-body", "4096"]) as srv:
        check_response(srv.get("/hello"), 200, HELLO)
        check_response(srv.get("/sleep/sync?ms=1"), 200, HELLO)


@test
def check_beside_a_plugins_directory():
    """A file fine alone is refused beside a directory it clashes with;
    a file named as one in the directory replaces it, as a reload."""
    d = tempfile.mkdtemp(prefix="spoke-it-cli-check-")
    try:
        plugins = os.path.join(d, "plugins")
        os.makedirs(plugins)
        shutil.copy(plugin_path("hello.so"), os.path.join(plugins, "hello.so"))
        shutil.copy(plugin_path("sleep.so"), os.path.join(plugins, "sleep.so"))
        with open(os.path.join(plugins, "notes.txt"), "w") as f:
            f.write("not a plugin\n")
        twin = plugin_path("twin_hello.so")

        # Alone it checks ok, with a note that nothing else was looked at.
        rc, out, err = run(["check", twin])
        check(rc == 0, "twin_hello alone: exit %r\n%s%s" % (rc, out, err))
        check_eq(out.splitlines()[-1], "ok", "last line")
        check("--plugins" in err, "no note about --plugins:\n%s" % err)

        # Beside the directory holding hello.so it is refused, as the
        # server would refuse it there.
        rc, out, err = run(["check", "--plugins", plugins, twin])
        check(rc == 1, "twin_hello --plugins: exit %r\n%s%s" % (rc, out, err))
        check(re.search(r"plugins/hello\.so: serving beside: plugin hello ",
                        out) and
              re.search(r"plugins/sleep\.so: serving beside: plugin sleep ",
                        out),
              "directory's plugins not listed:\n%s" % out)
        check(re.search(r"twin_hello\.so: refused: .*GET /hello", out),
              "no clash refusal:\n%s" % out)
        check("notes.txt" not in out, "a non-plugin file looked at:\n%s" % out)
        check("--plugins" not in err, "note despite --plugins:\n%s" % err)

        # A new build of hello.so replaces the directory's hello.so.
        new = os.path.join(d, "hello.so")
        shutil.copy(plugin_path("hello.so"), new)
        rc, out, err = run(["check", "--plugins=" + plugins, new])
        check(rc == 0, "hello.so replacing: exit %r\n%s%s" % (rc, out, err))
        check("plugins/hello.so" not in out and
              re.search(r"plugins/sleep\.so: serving beside", out),
              "the replaced file was checked beside:\n%s" % out)
        check_eq(out.splitlines()[-1], "ok", "last line")

        # A directory file the server refuses is left out, not fatal.
        shutil.copy(plugin_path("bad_notelf.so"),
                    os.path.join(plugins, "broken.so"))
        rc, out, err = run(["check", "--plugins", plugins,
                            plugin_path("echo.so")])
        check(rc == 0, "echo beside a broken file: exit %r\n%s%s"
              % (rc, out, err))
        check(re.search(r"plugins/broken\.so: left out, the server refuses "
                        r"it too: ", out), "broken.so:\n%s" % out)
        check_eq(out.splitlines()[-1], "ok", "last line")

        rc, out, err = run(["check", "--plugins",
                            os.path.join(d, "nonesuch"), twin])
        check(rc == 2 and "nonesuch" in err,
              "--plugins on a missing directory: exit %r\n%s%s"
              % (rc, out, err))
    finally:
        shutil.rmtree(d, True)


if __name__ == "__main__":
    main()
