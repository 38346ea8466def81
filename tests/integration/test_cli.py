#!/usr/bin/env python3
"""Command line: --help, --version, bad options, the bound address."""

import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, SANITIZER_RE, SPOKE_BIN, Server,  # noqa
                           check, check_response, main, test)


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


if __name__ == "__main__":
    main()
