#!/usr/bin/env python3
"""The pg example (examples/pg/) against a real PostgreSQL.

One throw-away PostgreSQL (pg_harness.py) serves the whole file; each
test starts its own spoke with pg.so and hello.so and a config file
whose [plugin pg] section points at it. pg.so names every connection
after its loaded version (application_name, logged by its init), so
pg_stat_activity tells what each version holds and runs.

What is proved, and how (no sleeps, no timing thresholds: the tests
wait on pg_stat_activity, log lines and sockets):
- async queries overlap on one loop: 50 pg_sleep at once in
  pg_stat_activity with --loops 1, and /hello answers while all 50 are
  still running there (counted before and after it);
- the sync route is bounded by the worker pool: with --workers 8,
  pg_stat_activity never shows more than 8 of 50, and does show 8; so
  is /pg/offload (spoke_offload from an async handler), while the loop
  stays free;
- /pg/query stores and returns values with quotes and unicode exactly
  (bound parameters, not pasted SQL), also with the PG* environment
  instead of a conninfo key;
- a hot reload under load fails no request, closes every connection of
  the old version and serves from the new one;
- a database outage mid-load gives 503 with Retry-After (never a dropped
  connection, a hang or a crash), /hello keeps answering, and the pool
  reconnects once the database is back;
- clients that leave mid-query or while queued leave no connection
  behind: the pool's connections are reused, never more than its size;
  a full wait queue answers 503 at once;
- SIGTERM closes every connection (loop_fini and fini) and exits 0
  with no sanitizer report.
"""

import json
import os
import re
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pg_harness  # noqa: E402
from spoke_harness import (HELLO, PluginFile, Server,  # noqa: E402
                           check, check_eq, check_response, main,
                           plugin_path, test)

APP_RE = re.compile(r"plugin pg: .*application_name '([^']+)'")
SLEEP_MATCH = "query LIKE 'SELECT pg_sleep%' AND state = 'active'"

_pg = None


def pg():
    """The file's PostgreSQL, made and started on first use."""
    global _pg
    if _pg is None:
        _pg = pg_harness.Postgres()
    return _pg


def pg_server(args=(), pool=None, queue=None, conninfo=True):
    """spoke with hello.so and pg.so, configured for the file's database."""
    lines = ["[plugin pg]"]
    if conninfo:
        lines.append("conninfo = %s" % pg().conninfo)
    if pool is not None:
        lines.append("pool = %d" % pool)
    if queue is not None:
        lines.append("queue = %d" % queue)
    fd, path = tempfile.mkstemp(prefix="spoke-pg-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(lines) + "\n")
    try:
        return Server(["hello", "pg"], args=["--config", path] + list(args))
    finally:
        os.unlink(path)  # read once, at start


def app_name(srv, start=0):
    m = srv.wait_log(APP_RE, start=start)
    check(m is not None, "pg.so logged no application_name:\n"
          + srv.log_tail())
    return m.group(1)


def q(s):
    """S as an SQL string literal."""
    return "'" + s.replace("'", "''") + "'"


def sleeping(app):
    return int(pg().scalar("SELECT count(*) FROM pg_stat_activity WHERE "
                           "application_name = %s AND %s"
                           % (q(app), SLEEP_MATCH)))


def connections(app):
    return int(pg().scalar("SELECT count(*) FROM pg_stat_activity "
                           "WHERE application_name = %s" % q(app)))


def wait_until(cond, what, timeout=90.0):
    """Polls COND (a database or server observation) until true."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = cond()
        if last:
            return last
        check(time.monotonic() < deadline, "never saw: %s" % what)
        time.sleep(0.02)  # a poll interval, not a synchronisation


def slept(ms, mode):
    return ('{"slept_ms":%d,"mode":"%s"}' % (ms, mode)).encode()


def send_all(srv, paths):
    """One connection per path, each request sent; returns the conns."""
    conns = []
    for p in paths:
        c = srv.conn(timeout=120)
        c.request("GET", p)
        conns.append(c)
    return conns


def stop_clean(srv, app):
    """SIGTERM: exit 0, no sanitizer report, and every connection of
    APP closed by loop_fini/fini."""
    srv.stop()
    wait_until(lambda: connections(app) == 0,
               "every connection of %s closed after SIGTERM" % app)


# ------------------------------------------------------------ overlapping

@test
def fifty_async_queries_overlap_on_one_loop():
    ms = 8000
    with pg_server(["--loops", "1"]) as srv:
        app = app_name(srv)
        t0 = time.monotonic()
        conns = send_all(srv, ["/pg/async?ms=%d" % ms] * 50)
        wait_until(lambda: sleeping(app) == 50, "50 pg_sleep at once")
        r = srv.get("/hello")
        check_response(r, 200, HELLO)
        # Still all 50 after /hello answered: it was served while the
        # loop had 50 queries in flight.
        check_eq(sleeping(app), 50, "queries running after /hello")
        for c in conns:
            check_response(c.read_response(), 200, slept(ms, "async"))
            c.close()
        print("  50 x /pg/async?ms=%d on 1 loop: %.2fs"
              % (ms, time.monotonic() - t0))
        check(connections(app) <= 64, "more connections than the pool")
        stop_clean(srv, app)


@test
def fifty_sync_queries_are_bounded_by_the_workers():
    ms = 1000
    with pg_server(["--loops", "1", "--workers", "8"]) as srv:
        app = app_name(srv)
        t0 = time.monotonic()
        conns = send_all(srv, ["/pg/sync?ms=%d" % ms] * 50)
        done = threading.Event()
        got = []

        def reader():
            try:
                for c in conns:
                    got.append(c.read_response())
            finally:
                done.set()

        threading.Thread(target=reader, daemon=True).start()
        wait_until(lambda: sleeping(app) == 8, "8 sync pg_sleep at once")
        most = 8
        while not done.is_set():
            most = max(most, sleeping(app))
        check(most == 8, "%d sync queries at once with 8 workers" % most)
        check_eq(len(got), 50, "responses")
        for r in got:
            check_response(r, 200, slept(ms, "sync"))
        print("  50 x /pg/sync?ms=%d, 8 workers: %.2fs"
              % (ms, time.monotonic() - t0))
        for c in conns:
            c.close()
        stop_clean(srv, app)


@test
def offload_runs_the_blocking_call_on_the_workers():
    ms = 1000
    with pg_server(["--loops", "1", "--workers", "2"]) as srv:
        app = app_name(srv)
        conns = send_all(srv, ["/pg/offload?ms=%d" % ms] * 6)
        wait_until(lambda: sleeping(app) == 2, "2 offloaded pg_sleep at once")
        # The loop is free while both workers block.
        check_response(srv.get("/hello"), 200, HELLO)
        got = []
        reader = threading.Thread(
            target=lambda: got.extend(c.read_response() for c in conns),
            daemon=True)
        reader.start()
        most = 2
        while reader.is_alive():
            most = max(most, sleeping(app))
        check(most == 2, "%d offloaded queries at once with 2 workers" % most)
        check_eq(len(got), 6, "responses")
        for r in got:
            check_response(r, 200, slept(ms, "offload"))
        for c in conns:
            c.close()
        stop_clean(srv, app)


@test
def bad_ms_is_400():
    with pg_server(["--loops", "1"]) as srv:
        app = app_name(srv)
        for route in ("async", "sync", "offload"):
            for bad in ("abc", "-1", "+5", "1.5", ""):
                r = srv.get("/pg/%s?ms=%s" % (route, bad))
                check_eq(r.status, 400, "/pg/%s?ms=%r" % (route, bad))
            check_response(srv.get("/pg/%s?ms=0" % route), 200,
                           slept(0, route))
        stop_clean(srv, app)


# ------------------------------------------------------------ parameters

def put(srv, key, value):
    return srv.request("POST", "/pg/query?key=" + urllib.parse.quote(key,
                                                                     safe=""),
                       body=value.encode("utf-8"))


def get(srv, key):
    return srv.get("/pg/query?key=" + urllib.parse.quote(key, safe=""))


def check_kv(r, status, key, value):
    check_response(r, status)
    check_eq(r.header("Content-Type"), "application/json", "content type")
    check_eq(json.loads(r.body.decode("utf-8")), {"key": key, "value": value},
             "JSON body")


@test
def query_returns_what_was_written():
    key = "it's \"k\" \u00fc\u2713"
    value = ("Robert'); DROP TABLE spoke_pg_kv;-- \"quoted\" \\ back\\slash "
             "\u00e9t\u00e9 \u65e5\u672c \U0001F418\n\ttab")
    with pg_server(["--loops", "2"]) as srv:
        app = app_name(srv)
        check_kv(get(srv, key), 404, key, None)
        check_kv(put(srv, key, value), 200, key, value)
        check_kv(get(srv, key), 200, key, value)
        # Overwrite, and the database agrees on what is stored.
        check_kv(put(srv, key, "second"), 200, key, "second")
        check_kv(get(srv, key), 200, key, "second")
        check_eq(pg().scalar("SELECT value FROM spoke_pg_kv WHERE key = %s"
                             % q(key)), "second", "stored value")
        check_kv(put(srv, "empty", ""), 200, "empty", "")
        # Bad input: no key, a NUL, bytes that are not UTF-8.
        check_eq(srv.get("/pg/query").status, 400, "no key")
        check_eq(srv.request("POST", "/pg/query?key=n", body=b"a\0b").status,
                 400, "NUL in the value")
        check_eq(srv.request("POST", "/pg/query?key=n",
                             body=b"\xff\xfe").status, 400, "not UTF-8")
        check_response(srv.get("/hello"), 200, HELLO)
        stop_clean(srv, app)


@test
def conninfo_from_the_pg_environment():
    saved = dict(os.environ)
    os.environ.update(pg().env())
    try:
        srv = pg_server(["--loops", "1"], conninfo=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    with srv:
        app = app_name(srv)
        check_kv(put(srv, "env", "from PGHOST"), 200, "env", "from PGHOST")
        check_response(srv.get("/pg/async?ms=0"), 200, slept(0, "async"))
        check(connections(app) >= 1, "no connection named %s" % app)
        stop_clean(srv, app)


# ------------------------------------------------------------ reload

class Load:
    """Client threads that keep requesting the pg routes on keep-alive
    connections; any answer but the expected 200 is an error."""

    def __init__(self, srv, n=6, ok_status=(200,)):
        self.srv = srv
        self.stop_ev = threading.Event()
        self.errors = []
        self.statuses = {}
        self.count = [0] * n
        self.ok_status = ok_status
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._run, args=(i,),
                                         daemon=True) for i in range(n)]
        for t in self.threads:
            t.start()

    def _run(self, i):
        paths = ["/pg/async?ms=20", "/pg/query?key=load%d" % i,
                 "/pg/sync?ms=5"]
        method = path = None
        c = None
        try:
            while not self.stop_ev.is_set():
                if c is None:  # (again) after --max-requests closed it
                    c = self.srv.conn(timeout=60)
                k = self.count[i]
                if k % 4 == 3:
                    method, path = "POST", "/pg/query?key=load%d" % i
                    c.request(method, path, body=b"v%d" % k)
                else:
                    method, path = "GET", paths[k % 3]
                    c.request(method, path)
                r = c.read_response(method=method)
                with self.lock:
                    self.statuses[r.status] = \
                        self.statuses.get(r.status, 0) + 1
                if r.status not in self.ok_status and not (
                        r.status == 404 and method == "GET"):
                    self.errors.append("client %d: %d %r"
                                       % (i, r.status, r.body[:200]))
                    return
                if r.status == 503:
                    check_eq(r.header("Retry-After"), "1", "Retry-After")
                self.count[i] += 1
                if (r.header("Connection") or "").lower() == "close":
                    c.close()
                    c = None
        except Exception as e:  # noqa: B902 - a dropped request
            self.errors.append("client %d: %s %s: %s: %s"
                               % (i, method, path, type(e).__name__, e))
        finally:
            if c is not None:
                c.close()

    def total(self):
        return sum(self.count)

    def finish(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(90)
            check(not t.is_alive(), "a client is stuck")


@test
def hot_reload_under_load_closes_the_old_versions_connections():
    with pg_server(["--loops", "2"], pool=16) as srv:
        app = app_name(srv)
        pf = PluginFile(srv, "pg.so")
        load = Load(srv)
        try:
            wait_until(lambda: connections(app) > 0 and load.total() > 20,
                       "load on the first version")
            for round_ in range(3):
                before = load.total()
                pf.rename(plugin_path("pg"))
                new = pf.wait(APP_RE, "the new version's init").group(1)
                pf.wait_reloaded("pg", "1.0.0")
                check(new != app, "the new version reused the name %s" % app)
                # The old version drains, its loop_fini closes its pool,
                # its fini its sync connections; the new one serves.
                wait_until(lambda: connections(app) == 0,
                           "no connection of the old version %s (round %d)"
                           % (app, round_))
                wait_until(lambda: connections(new) > 0
                           and load.total() > before + 20,
                           "the new version %s serving" % new)
                check(not load.errors, "failures: %s" % load.errors[:3])
                app = new
        finally:
            load.finish()
        check(not load.errors, "failures: %s" % load.errors[:3])
        print("  %d requests across 3 reloads, statuses %r"
              % (load.total(), load.statuses))
        pf.close()
        stop_clean(srv, app)


# ------------------------------------------------------------ outages

@test
def database_outage_answers_503_then_recovers():
    with pg_server(["--loops", "1", "--workers", "4"], pool=16) as srv:
        app = app_name(srv)
        pending = send_all(srv, ["/pg/async?ms=30000"] * 10)
        wait_until(lambda: sleeping(app) == 10, "10 queries running")
        load = Load(srv, n=4, ok_status=(200, 503))
        try:
            wait_until(lambda: load.total() > 10, "load running")
            pg().stop()  # fast: every session is terminated now
            # The running queries are answered, 503 with Retry-After.
            for c in pending:
                r = c.read_response()
                check_response(r, 503)
                check_eq(r.header("Retry-After"), "1", "Retry-After")
                c.close()
            # While it is down: 503s, no hang, and the server lives.
            for path in ("/pg/async?ms=0", "/pg/query?key=x", "/pg/sync?ms=0"):
                for _ in range(3):
                    r = srv.get(path)
                    check_response(r, 503)
                    check_eq(r.header("Retry-After"), "1", "Retry-After")
            check_response(srv.get("/hello"), 200, HELLO)
            n503 = load.statuses.get(503, 0)
            wait_until(lambda: load.statuses.get(503, 0) > n503 + 10,
                       "the load meeting the outage")
            check(srv.alive(), "server died")
            pg().start()
            wait_until(lambda: srv.get("/pg/async?ms=0").status == 200,
                       "/pg/async 200 again after the restart")
            n200 = load.statuses.get(200, 0)
            wait_until(lambda: load.errors
                       or load.statuses.get(200, 0) > n200 + 10,
                       "the load served again")
            check(not load.errors, "failures: %s" % load.errors[:3])
        finally:
            load.finish()
        check(not load.errors, "failures: %s" % load.errors[:3])
        check(srv.wait_log(r"plugin pg: database reachable again", timeout=5)
              is not None, "no 'reachable again' line")
        check_response(srv.get("/pg/sync?ms=0"), 200, slept(0, "sync"))
        print("  outage under load: statuses %r" % load.statuses)
        stop_clean(srv, app)


# ------------------------------------------------------------ clients leaving

@test
def clients_leaving_mid_query_leave_the_pool_whole():
    pool = 4
    with pg_server(["--loops", "1"], pool=pool, queue=64) as srv:
        app = app_name(srv)
        running = send_all(srv, ["/pg/async?ms=1500"] * pool)
        wait_until(lambda: sleeping(app) == pool, "the pool busy")
        queued = send_all(srv, ["/pg/async?ms=1500"] * 6)
        check_response(srv.get("/hello"), 200, HELLO)
        for c in running + queued:
            c.close()  # mid-query and while queued
        # The running queries end in their own time; the queued never
        # start. The pool then serves as before, with its own
        # connections: never more than its size.
        conns = send_all(srv, ["/pg/async?ms=0"] * 12)
        for c in conns:
            check_response(c.read_response(), 200, slept(0, "async"))
            c.close()
        check(connections(app) <= pool, "%d connections, pool %d"
              % (connections(app), pool))
        wait_until(lambda: sleeping(app) == 0, "the abandoned queries ended")
        conns = send_all(srv, ["/pg/async?ms=50"] * 12)
        for c in conns:
            check_response(c.read_response(), 200, slept(50, "async"))
            c.close()
        check_eq(connections(app), pool, "connections after reuse")
        stop_clean(srv, app)


@test
def a_full_wait_queue_answers_503_at_once():
    with pg_server(["--loops", "1"], pool=2, queue=3) as srv:
        app = app_name(srv)
        busy = send_all(srv, ["/pg/async?ms=30000"] * 2)
        wait_until(lambda: sleeping(app) == 2, "the pool busy")
        waiting = send_all(srv, ["/pg/async?ms=0"] * 3)
        r = srv.get("/pg/async?ms=0")  # the fourth waiter: no room
        check_response(r, 503)
        check_eq(r.header("Retry-After"), "1", "Retry-After")
        check(b"too many" in r.body, "body %r" % r.body)
        # Free the pool (the clients leave; their queries are cancelled
        # by the test, as an operator would): the queue drains.
        for c in busy:
            c.close()
        pg().sql("SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE "
                 "application_name = %s AND %s" % (q(app), SLEEP_MATCH))
        for c in waiting:
            check_response(c.read_response(), 200, slept(0, "async"))
            c.close()
        stop_clean(srv, app)


if __name__ == "__main__":
    pg_harness.skip_unless_available()
    main()
