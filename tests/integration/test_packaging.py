#!/usr/bin/env python3
"""Packaging: the files under deploy/ work with the spoke they ship with.

- deploy/systemd/spoke@.service passes `systemd-analyze verify` (as the
  instance spoke@web1.service, its ExecStart pointed at the built
  binary) with no warning, and says what spoke does: ExecReload sends
  the signal that rescans, the stop signal drains within TimeoutStopSec,
  the writable paths are the example config's plugins and log
  directories.
- deploy/systemd/spoke.conf.example is accepted by spoke: started with
  --config (listen, plugins, admin and access-log moved to temporary
  places by flags, which win) it runs the processes and loops the file
  asks for, serves /hello, rescans on the unit's reload signal and
  drains an in-flight request on the unit's stop signal, exit 0.
- deploy/logrotate/spoke, run by logrotate on a temporary log directory
  (its postrotate left out), rotates the access log; the signal its
  postrotate sends makes every worker reopen the log, and the next
  request's line lands in the new file.

Needs systemd-analyze (Debian package systemd) and logrotate (package
logrotate); without either the test exits 77 (skipped). Neither needs a
running systemd.
"""

import fnmatch
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (ADMIN_RE, HELLO, IO_TIMEOUT, ROOT,  # noqa: E402
                           SPOKE_BIN, Conn, Server, admin_get, admin_metrics,
                           build_request, check, check_eq, check_response,
                           main, test, wait_count)

SKIP = 77  # SKIP_RETURN_CODE of the integration tests

UNIT = os.path.join(ROOT, "deploy", "systemd", "spoke@.service")
CONF = os.path.join(ROOT, "deploy", "systemd", "spoke.conf.example")
LOGROTATE = os.path.join(ROOT, "deploy", "logrotate", "spoke")

INSTANCE = "web1"                    # the instance the example is for
INSTALLED_BIN = "/usr/local/bin/spoke"  # ExecStart's binary


# ------------------------------------------------------------ the files

def read(path):
    with open(path) as f:
        return f.read()


def unit_settings():
    """[(section, key, value)] of the unit, in order, %i as INSTANCE."""
    out, section = [], None
    for line in read(UNIT).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(),
                    value.strip().replace("%i", INSTANCE)))
    return out


def unit_value(key, section="Service"):
    """The last value of KEY in SECTION (systemd: the last one wins)."""
    found = [v for s, k, v in unit_settings() if s == section and k == key]
    check(found, "the unit sets no %s= in [%s]" % (key, section))
    return found[-1]


def conf_settings():
    """The example's server settings (before any [plugin] section), read
    the way core/base/conffile.c reads them."""
    out = {}
    for line in read(CONF).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            break
        key, _, value = line.partition("=")
        out[key.strip()] = value.strip()
    return out


def seconds(value):
    """A systemd or spoke time ("45s", "500ms", "2min", "30") in s."""
    m = re.fullmatch(r"(\d+)\s*(ms|s|sec|min|)", value)
    check(m is not None, "cannot read the time %r" % value)
    n = int(m.group(1))
    return {"ms": n / 1000.0, "min": n * 60.0}.get(m.group(2), float(n))


def signal_named(name):
    name = name.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    return signal.Signals[name]


def reload_signal():
    """The signal ExecReload sends to $MAINPID (/bin/kill -s SIG)."""
    argv = shlex.split(unit_value("ExecReload"))
    check(len(argv) == 4 and os.path.basename(argv[0]) == "kill"
          and argv[1] == "-s" and argv[3] == "$MAINPID",
          "ExecReload is not `kill -s SIG $MAINPID`: %r" % argv)
    return signal_named(argv[2])


def stop_signal():
    """What systemctl stop sends, and to whom: KillMode=mixed sends it to
    the main process only (the master passes it on)."""
    check_eq(unit_value("KillMode"), "mixed", "KillMode")
    return signal_named(unit_value("KillSignal"))


def postrotate_command():
    """The snippet's postrotate command, as argv."""
    m = re.search(r"^\s*postrotate\s*\n(.*?)^\s*endscript\s*$",
                  read(LOGROTATE), re.S | re.M)
    check(m is not None, "no postrotate ... endscript in %s" % LOGROTATE)
    lines = [l.strip() for l in m.group(1).splitlines()
             if l.strip() and not l.strip().startswith("#")]
    check(len(lines) == 1, "postrotate is not one command: %r" % lines)
    return shlex.split(lines[0])


def rotate_signal():
    """The signal postrotate sends, checked to go to the main process of
    every spoke@ instance (systemctl kill --kill-whom=main)."""
    argv = postrotate_command()
    check(argv[:2] == ["systemctl", "kill"],
          "postrotate is not `systemctl kill`: %r" % argv)
    opts = dict(a[2:].split("=", 1) for a in argv[2:] if a.startswith("--"))
    units = [a for a in argv[2:] if not a.startswith("-")]
    check_eq(opts.get("kill-whom"), "main", "postrotate --kill-whom")
    check(units and all(fnmatch.fnmatchcase("spoke@%s.service" % INSTANCE,
                                            u) for u in units),
          "postrotate's units %r miss spoke@%s.service" % (units, INSTANCE))
    return signal_named(opts["signal"])


def token_line():
    """The example's admin-token-file line: (commented, path)."""
    m = re.search(r"^(#\s*)?admin-token-file\s*=\s*(\S+)\s*$", read(CONF),
                  re.M)
    check(m is not None, "the example has no admin-token-file line")
    return m.group(1) is not None, m.group(2)


# ------------------------------------------------------------ helpers

def poll_until(fn, what, timeout=IO_TIMEOUT):
    """Calls FN until it returns a true value, for at most TIMEOUT s."""
    deadline = time.monotonic() + timeout
    while True:
        got = fn()
        if got:
            return got
        check(time.monotonic() < deadline,
              "%s: not within %.0f s" % (what, timeout))
        time.sleep(0.01)  # the poll's interval, not a wait for an event


def file_has(path, text):
    try:
        with open(path) as f:
            return text in f.read()
    except FileNotFoundError:
        return False


def example_server(tmp, plugins=("hello.so",), args=()):
    """spoke with the example config; the flags move what it would write
    or bind to temporary places (flags win over the file)."""
    log_dir = os.path.join(tmp, "log", INSTANCE)
    os.makedirs(log_dir, exist_ok=True)
    os.chmod(log_dir, 0o755)  # logrotate refuses group-writable parents
    if "--admin-token-file" not in args:  # the example's is /etc/spoke's
        tfile = os.path.join(tmp, "admin.token")
        with open(tfile, "w") as f:
            f.write("example-token-of-this-test-0123\n")
        args = list(args) + ["--admin-token-file", tfile]
    srv = Server(list(plugins),
                 args=["--config", CONF, "--admin", "127.0.0.1:0",
                       "--access-log", os.path.join(log_dir, "access.log")]
                 + list(args))
    srv.access_log = os.path.join(log_dir, "access.log")
    return srv


def processes():
    return int(conf_settings().get("processes", "1"))


# ------------------------------------------------------------ the unit

def verify(unit_dir, name):
    """systemd-analyze verify UNIT_DIR/NAME: (exit code, output lines)."""
    env = dict(os.environ, SYSTEMD_LOG_LEVEL="notice", SYSTEMD_COLORS="0",
               SYSTEMD_PAGER="")
    p = subprocess.run(["systemd-analyze", "verify", "--man=no",
                        "--recursive-errors=no",
                        os.path.join(unit_dir, name)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       env=env, timeout=60, cwd=unit_dir)
    return p.returncode, p.stdout.decode("utf-8", "replace").splitlines()


def instance_copy(unit_dir, text):
    """TEXT as UNIT_DIR/spoke@web1.service, its ExecStart running the
    built binary; returns the name."""
    check_eq(text.count(INSTALLED_BIN), 1,
             "mentions of %s in the unit" % INSTALLED_BIN)
    check(re.search(r"^ExecStart=%s " % re.escape(INSTALLED_BIN), text,
                    re.M), "ExecStart does not run %s" % INSTALLED_BIN)
    name = "spoke@%s.service" % INSTANCE
    with open(os.path.join(unit_dir, name), "w") as f:
        f.write(text.replace(INSTALLED_BIN, os.path.abspath(SPOKE_BIN)))
    return name


@test
def unit_passes_systemd_analyze_verify():
    with tempfile.TemporaryDirectory(prefix="spoke-it-unit-") as d:
        name = instance_copy(d, read(UNIT))
        rc, lines = verify(d, name)
        about_us = [l for l in lines if "spoke" in l]
        check(rc == 0 and not about_us,
              "systemd-analyze verify %s: exit %d\n%s"
              % (name, rc, "\n".join(lines)))
        for l in lines:  # about another unit of this machine, not ours
            print("note: systemd-analyze: %s" % l)


@test
def verify_would_report_a_broken_unit():
    """The check above is not vacuous here: a misspelt key and a value
    systemd cannot parse are reported, naming the unit."""
    with tempfile.TemporaryDirectory(prefix="spoke-it-unit-") as d:
        text = read(UNIT).replace("ProtectHome=yes", "ProtectHome=yes\n"
                                  "ProtectSytem=strict\nPrivateTmp=maybe")
        name = instance_copy(d, text)
        _, lines = verify(d, name)
        out = "\n".join(lines)
        check("ProtectSytem" in out and "maybe" in out and name in out,
              "systemd-analyze verify missed the broken keys:\n%s" % out)


@test
def unit_agrees_with_spoke_and_the_example():
    conf = conf_settings()
    argv = shlex.split(unit_value("ExecStart"))
    check_eq(argv, [INSTALLED_BIN, "--config",
                    "/etc/spoke/%s.conf" % INSTANCE], "ExecStart")
    check_eq(reload_signal(), signal.SIGHUP, "ExecReload's signal (rescan)")
    check_eq(stop_signal(), signal.SIGTERM, "KillSignal (drain)")
    drain = seconds(conf.get("shutdown-timeout", "30s"))
    check(seconds(unit_value("TimeoutStopSec")) > drain,
          "TimeoutStopSec=%s is not above the example's shutdown-timeout "
          "%s: systemd would SIGKILL a drain spoke still runs"
          % (unit_value("TimeoutStopSec"), conf.get("shutdown-timeout")))
    for key, want in (("NoNewPrivileges", "yes"),
                      ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                      ("PrivateTmp", "yes"), ("Restart", "on-failure"),
                      ("User", "spoke")):
        check_eq(unit_value(key), want, key)
    check(int(unit_value("LimitNOFILE")) > int(conf.get("max-conns",
                                                        "10000")),
          "LimitNOFILE is below --max-conns")
    # Writable: the plugins directory and the access log's directory of
    # the example, nothing else. The runtime directory stays in /tmp,
    # which PrivateTmp= gives the instance.
    rw = set(unit_value("ReadWritePaths").split())
    check_eq(rw, {conf["plugins"], os.path.dirname(conf["access-log"])},
             "ReadWritePaths (the example's plugins and log directories)")
    check("runtime-dir" not in conf or conf["runtime-dir"] in rw,
          "the example's runtime-dir is not writable in the unit")
    dirs = {"/var/lib/" + unit_value("StateDirectory"),
            "/var/log/" + unit_value("LogsDirectory")}
    check_eq(dirs, rw, "StateDirectory= and LogsDirectory= (created at "
             "start) against ReadWritePaths=")
    # The logrotate snippet covers the example's log.
    m = re.search(r"^(/\S+)\s*\{", read(LOGROTATE), re.M)
    check(m is not None and fnmatch.fnmatchcase(conf["access-log"],
                                                 m.group(1)),
          "the logrotate snippet does not rotate %s" % conf["access-log"])
    check_eq(rotate_signal(), signal.SIGUSR1, "postrotate's signal")


# ------------------------------------------------------------ the config

@test
def example_config_serves_and_drains_on_the_stop_signal():
    with tempfile.TemporaryDirectory(prefix="spoke-it-pkg-") as tmp:
        with example_server(tmp, ("hello.so", "sleep.so")) as srv:
            conf = conf_settings()
            status = json.loads(admin_get(srv, "/status").body)
            # Read from the file: no flag set these.
            check_eq(status.get("processes"), processes(), "processes")
            check_eq(status.get("loops"), int(conf["loops"]), "loops")
            check_response(srv.get("/hello"), 200, HELLO)

            c = srv.conn()
            c.send(build_request("GET", "/sleep/async?ms=2000"))
            poll_until(lambda: admin_metrics(srv).get(
                "spoke_requests_in_flight", 0) >= 1,
                "the /sleep request in flight")
            c.sock.settimeout(0)  # a peek that does not wait
            try:
                early = c.sock.recv(1, socket.MSG_PEEK)
            except BlockingIOError:
                early = None
            c.sock.settimeout(IO_TIMEOUT)
            check(early is None, "/sleep answered before the stop signal")
            mark = len(srv.log_lines())
            srv.send_signal(stop_signal())  # the main process only
            check(srv.wait_log(r"SIGTERM: draining", start=mark),
                  "no drain after the stop signal")
            r = c.read_response()
            check_response(r, 200, HELLO)
            c.close()
            srv.stop(sig=None)  # exit code 0, checked by the harness


@test
def reload_signal_rescans_every_worker():
    with tempfile.TemporaryDirectory(prefix="spoke-it-pkg-") as tmp:
        with example_server(tmp) as srv:
            srv.send_signal(reload_signal())  # to $MAINPID: the master
            wait_count(srv, r"SIGHUP: rescanning", processes())
            check_response(srv.get("/hello"), 200, HELLO)


@test
def admin_token_file_in_the_example():
    """The example sets admin-token-file, and with a token the admin's
    POST /reload wants it (401 without, 200 with)."""
    commented, path = token_line()
    check(path.startswith("/etc/spoke/"), "token file %s" % path)
    check(not commented, "admin-token-file is commented out in "
          "deploy/systemd/spoke.conf.example")
    with tempfile.TemporaryDirectory(prefix="spoke-it-pkg-") as tmp:
        token = "t0k3n-for-the-example-%d" % os.getpid()
        tfile = os.path.join(tmp, "web1.token")
        fd = os.open(tfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
        with example_server(tmp, args=["--admin-token-file", tfile]) as srv:
            m = srv.wait_log(ADMIN_RE)
            port = int(m.group(2))
            with Conn(port, m.group(1)) as c:
                r = c.roundtrip("POST", "/reload", body=b"")
            check_eq(r.status, 401, "POST /reload without the token")
            with Conn(port, m.group(1)) as c:
                r = c.roundtrip("POST", "/reload", body=b"", headers={
                    "Authorization": "Bearer " + token})
            check_eq(r.status, 200, "POST /reload with the token")


# ------------------------------------------------------------ logrotate

def logrotate_copy(tmp):
    """The snippet for TMP/log/*/access.log, without its postrotate (the
    test sends that signal itself: no systemd runs here)."""
    text = read(LOGROTATE)
    check_eq(text.count("/var/log/spoke/"), 1, "log paths in the snippet")
    text = text.replace("/var/log/spoke/", os.path.join(tmp, "log") + "/")
    text, n = re.subn(r"^\s*postrotate\s*\n.*?^\s*endscript\s*\n", "", text,
                      flags=re.S | re.M)
    check_eq(n, 1, "postrotate blocks")
    path = os.path.join(tmp, "logrotate.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


@test
def logrotate_and_its_signal_reopen_the_access_log():
    with tempfile.TemporaryDirectory(prefix="spoke-it-pkg-") as tmp:
        conf = logrotate_copy(tmp)
        with example_server(tmp) as srv:
            log, old = srv.access_log, srv.access_log + ".1"
            check_response(srv.get("/hello", headers={
                "User-Agent": "before-rotate"}), 200, HELLO)
            poll_until(lambda: file_has(log, "before-rotate"),
                       "the access log line before the rotation")

            p = subprocess.run(["logrotate", "--force", "--state",
                                os.path.join(tmp, "state"), conf],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            out = p.stdout.decode("utf-8", "replace")
            check(p.returncode == 0 and "error" not in out.lower(),
                  "logrotate: exit %d\n%s" % (p.returncode, out))
            check(file_has(old, "before-rotate"),
                  "logrotate did not move the log to %s" % old)
            check_eq(stat.S_IMODE(os.stat(log).st_mode), 0o640,
                     "mode of the log logrotate created")
            check(not file_has(log, "before-rotate"), "the new log is old")

            srv.send_signal(rotate_signal())  # --kill-whom=main: the master
            # Every worker: the master passes the signal on.
            wait_count(srv, r"SIGUSR1: reopened access log", processes())
            check_response(srv.get("/hello", headers={
                "User-Agent": "after-rotate"}), 200, HELLO)
            poll_until(lambda: file_has(log, "after-rotate"),
                       "the access log line after the reopen, in %s" % log)
            check(not file_has(old, "after-rotate"),
                  "a line after the reopen went to the rotated file")


def tools_or_skip():
    # logrotate lives in /usr/sbin, which a user's PATH may lack.
    path = os.environ.get("PATH", os.defpath) + ":/usr/sbin:/sbin"
    os.environ["PATH"] = path
    for tool, package in (("systemd-analyze", "systemd"),
                          ("logrotate", "logrotate")):
        if shutil.which(tool, path=path) is None:
            print("SKIP: %s not found (Debian package %s)" % (tool, package))
            sys.exit(SKIP)


if __name__ == "__main__":
    tools_or_skip()
    main()
