#!/usr/bin/env python3
"""The operator's view: the --admin listener (GET /status, GET /metrics,
POST /reload, nothing of it on the main listener) and the access log
(--access-log: Combined Log Format plus request time, reopened on
SIGUSR1)."""

import json
import os
import re
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, Conn, Server, check, check_eq,  # noqa
                           check_response, main, plugin_path, test)

ADMIN_RE = re.compile(r"admin endpoint at (\S+):(\d+) ")


def admin(srv):
    """A connection factory for the server's admin port."""
    m = srv.wait_log(ADMIN_RE)
    check(m is not None, "no admin endpoint line:\n%s" % srv.log_text())
    host, port = m.group(1), int(m.group(2))
    return lambda: Conn(port, host)


def admin_get(connect, path, method="GET"):
    with connect() as c:
        return c.roundtrip(method, path)


def metrics(connect):
    r = admin_get(connect, "/metrics")
    check_response(r, 200)
    values = {}
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def requests_total(values, plugin, route, cls):
    return values.get('spoke_requests_total{plugin="%s",route="%s",'
                      'class="%s"}' % (plugin, route, cls), 0)


@test
def status_metrics_and_not_on_the_main_listener():
    with Server(["hello.so", "sleep.so"],
                args=["--admin", "127.0.0.1:0", "--loops", "2"]) as srv:
        connect = admin(srv)
        r = admin_get(connect, "/status")
        check_response(r, 200)
        check_eq(r.header("Content-Type"), "application/json", "type")
        st = json.loads(r.body)
        for key in ("build", "uptime_s", "loops", "workers", "queue_depth",
                    "open_connections", "status"):
            check(key in st, "/status lacks %s: %s" % (key, st))
        check_eq(st["loops"], 2, "loops")
        names = sorted(i["name"] for i in st["status"]["instances"])
        check_eq(names, ["hello", "sleep"], "instances")
        hello = [i for i in st["status"]["instances"]
                 if i["name"] == "hello"][0]
        check_eq(hello["state"], "current", "state")
        check_eq([(x["path"], x["mode"]) for x in hello["routes"]],
                 [("/hello", "async"), ("/hello/sync", "sync")], "routes")

        for _ in range(3):
            check_response(srv.get("/hello"), 200, HELLO)
        check_response(srv.get("/hello/sync"), 200, HELLO)
        check_response(srv.get("/nope"), 404)
        # the admin resources do not exist on the main listener
        check_response(srv.get("/status"), 404)
        check_response(srv.get("/metrics"), 404)
        check_response(srv.request("POST", "/reload"), 404)

        v = metrics(connect)
        check_eq(requests_total(v, "hello", "GET /hello", "2xx"), 3,
                 "hello 2xx")
        check_eq(requests_total(v, "hello", "GET /hello/sync", "2xx"), 1,
                 "hello/sync 2xx")
        # 404 for /nope and the three admin paths asked on the main port
        check_eq(requests_total(v, "core", "", "4xx"), 4, "core 4xx")
        count = v["spoke_request_duration_seconds_count"]
        check_eq(count, 8, "histogram count")
        check_eq(v['spoke_request_duration_seconds_bucket{le="+Inf"}'],
                 count, "+Inf bucket")
        for name in ("spoke_requests_in_flight", "spoke_sync_queue_depth",
                     "spoke_sync_rejected_total", "spoke_plugin_loads_total",
                     "spoke_plugin_load_failures_total",
                     "spoke_open_connections"):
            check(name in v, "/metrics lacks %s" % name)
        check_eq(v["spoke_plugin_loads_total"], 2, "loads")

        check_response(admin_get(connect, "/nope"), 404)
        check_response(admin_get(connect, "/status", "POST"), 405)
        check_response(admin_get(connect, "/reload"), 405)
        with connect() as c:  # garbage gets a 400, the listener lives on
            c.send(b"NONSENSE\r\n\r\n")
            check_response(c.read_response(), 400)
        check_response(admin_get(connect, "/status"), 200)


def wait_status(srv, path, status, tries=200):
    for _ in range(tries):
        r = srv.get(path)
        if r.status == status:
            return r
        srv.wait_log(r"^$", timeout=0.01)  # a short, bounded pause
    check(False, "GET %s never answered %d" % (path, status))


@test
def reload_answers_what_changed_and_counts_survive_it():
    with Server(["versioned_v1.so"],
                args=["--admin", "127.0.0.1:0"]) as srv:
        connect = admin(srv)
        for _ in range(2):
            check_response(srv.get("/v/async"), 200)
        # nothing changed
        r = admin_get(connect, "/reload", "POST")
        check_response(r, 200)
        check_eq(json.loads(r.body)["changed"], [], "changes of a no-op")

        # a new version of the file, and a new file
        shutil.copyfile(plugin_path("versioned_v2.so"),
                        os.path.join(srv.plugins_dir, "versioned_v1.so.tmp"))
        os.rename(os.path.join(srv.plugins_dir, "versioned_v1.so.tmp"),
                  os.path.join(srv.plugins_dir, "versioned_v1.so"))
        shutil.copyfile(plugin_path("hello.so"),
                        os.path.join(srv.plugins_dir, "hello.so"))
        r = admin_get(connect, "/reload", "POST")
        check_response(r, 200)
        changed = {c["file"]: c for c in json.loads(r.body)["changed"]}
        # the watcher may have won the race for either file; whatever
        # POST /reload did itself, it says, and both end up loaded
        for f, c in changed.items():
            check(c["change"] in ("loaded", "reloaded"), "change %r" % c)
        srv.wait_log(r"versioned .*-> 2|loaded plugin versioned 2")
        # each loop switches to the new table when it next runs
        wait_status(srv, "/hello", 200)
        for _ in range(3):
            check_response(srv.get("/v/async"), 200)

        # a broken file is refused, and POST /reload says why
        with open(os.path.join(srv.plugins_dir, "broken.so"), "wb") as f:
            f.write(b"not a plugin")
        r = admin_get(connect, "/reload", "POST")
        body = json.loads(r.body)
        st = json.loads(admin_get(connect, "/status").body)
        files = {f["file"]: f for f in st["status"]["files"]}
        check(files["broken.so"]["error"], "broken.so has no error: %r"
              % files)
        broken = [c for c in body["changed"] if c["file"] == "broken.so"]
        if broken:  # unless the watcher refused it first
            check_eq(broken[0]["change"], "refused", "broken change")
            check(broken[0]["error"], "no error text")

        v = metrics(connect)
        total = sum(val for k, val in v.items()
                    if k.startswith('spoke_requests_total{plugin="versioned"'
                                    ',route="GET /v/async"'))
        check_eq(total, 5, "GET /v/async across the reload")
        check(v["spoke_plugin_load_failures_total"] >= 1, "failures")


LINE_RE = re.compile(
    r'^(\S+) - - \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0000)\] '
    r'"([^"]*)" (\d{3}) (\d+) "([^"]*)" "([^"]*)" (\d+\.\d{3})$')


def read_lines(path):
    with open(path) as f:
        return f.read().splitlines()


@test
def access_log_lines_and_reopen_on_sigusr1():
    d = tempfile.mkdtemp(prefix="spoke-it-log-")
    log = os.path.join(d, "access.log")
    try:
        with Server(["hello.so", "echo.so"],
                    args=["--access-log", log]) as srv:
            with srv.conn() as c:
                check_response(c.roundtrip(
                    "GET", "/hello?x=1",
                    headers={"Referer": "http://r/", "User-Agent":
                             'evil "agent"\\'}), 200, HELLO)
                check_response(c.roundtrip("POST", "/echo", body=b"12345"),
                               200, b"12345")
                check_response(c.roundtrip("GET", "/missing"), 404)
            # lines are written by the loop after each iteration: wait
            # for them by the count, not by sleeping
            srv.wait_log(r"^$", timeout=0.01)
            lines = []
            for _ in range(200):
                lines = read_lines(log)
                if len(lines) >= 3:
                    break
                srv.wait_log(r"^$", timeout=0.02)
            check_eq(len(lines), 3, "lines:\n%s" % "\n".join(lines))
            parsed = [LINE_RE.match(l) for l in lines]
            check(all(parsed), "not CLF:\n%s" % "\n".join(lines))
            a, b, c = parsed
            check_eq(a.group(1), "127.0.0.1", "client")
            check_eq(a.group(3), "GET /hello?x=1 HTTP/1.1", "request line")
            check_eq((a.group(4), a.group(5)), ("200", "13"), "status bytes")
            check_eq(a.group(6), "http://r/", "referer")
            check_eq(a.group(7), r"evil \x22agent\x22\x5C", "escaped agent")
            check_eq((b.group(3), b.group(4), b.group(5)),
                     ("POST /echo HTTP/1.1", "200", "5"), "echo line")
            check_eq((c.group(4), c.group(7)), ("404", "-"), "404 line")

            # logrotate: move the file away, SIGUSR1, new lines go anew
            os.rename(log, log + ".1")
            srv.send_signal(signal.SIGUSR1)
            check(srv.wait_log(r"reopened access log") is not None,
                  "no reopen line:\n%s" % srv.log_text())
            check_response(srv.get("/hello"), 200, HELLO)
            for _ in range(200):
                if os.path.exists(log) and len(read_lines(log)) >= 1:
                    break
                srv.wait_log(r"^$", timeout=0.02)
            check_eq(len(read_lines(log)), 1, "lines after reopen")
            check_eq(len(read_lines(log + ".1")), 3, "lines before reopen")
    finally:
        shutil.rmtree(d, ignore_errors=True)


@test
def shutdown_closes_idle_admin_connections():
    with Server(["hello.so"], args=["--admin", "127.0.0.1:0"]) as srv:
        connect = admin(srv)
        c = connect()
        c.send(b"GET /sta")  # half a request, left hanging
        srv.stop()           # exits 0, promptly, despite it
        c.close()


if __name__ == "__main__":
    main()
