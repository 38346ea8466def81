#!/usr/bin/env python3
"""The motivating example in a real browser: examples/demo.c's page, loaded
by Debian's headless Chromium from a server with one worker.

The page fires six requests at once to /sleep/async, then six at once to
/sleep/sync, and leaves its own timings in window.demo. From those timings,
not from any clock of the server's, the test asserts that the six async
requests overlapped (each started before any ended) and that the six sync
ones queued (answers at least ~one sleep apart, the last after five more),
although all six were on the wire before the first answer came back (the
page's Resource Timing entries), so the queue was the server's. It saves a
screenshot of the drawn timelines as demo-screenshot.png beside SPOKE_BIN
(build/ by default) and prints its path.

Then the page's database lane (examples/pg, window.demo.db), three ways:
  - without pg.so (the test above): the probe /pg/async?ms=0 answers 404,
    the lane is skipped with that reason, the sleep lanes are unharmed;
  - pg.so with nothing listening at its conninfo: skipped, 503;
  - pg.so with a throw-away PostgreSQL (pg_harness.py): the same checks
    as for sleep, on six /pg/async and six /pg/sync SELECT pg_sleep()
    queries (screenshot demo-db-screenshot.png). Without PostgreSQL's
    server programs this one test says so and passes without running;
    the others still run.

Chromium: SPOKE_CHROMIUM names the binary; else `chromium` on PATH; else,
as root, `apt-get install chromium` (Debian's package). Without one the
test prints why and exits 77, which ctest counts as skipped
(SKIP_RETURN_CODE in CMakeLists.txt). It speaks the DevTools protocol over
a WebSocket with cdp.py, standard library only.
"""

import atexit
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import cdp  # noqa: E402
import pg_harness  # noqa: E402
from spoke_harness import (SPOKE_BIN, Server, check, check_eq, main,  # noqa: E402
                           test)  # noqa: E402

SKIP = 77                   # SKIP_RETURN_CODE of this test in CMakeLists.txt
N = 6                       # the page's requests per group
MS = 1000                   # each request's sleep
DB_MS = 400                 # each query's pg_sleep, with PostgreSQL
SKIP_MS = 100               # each sleep, when the database lane is skipped
TEST_TIMEOUT = 50.0         # start of Chromium to screenshot
DEVTOOLS_RE = re.compile(r"DevTools listening on (ws://\S+)")
BUILD_DIR = os.path.dirname(os.path.abspath(SPOKE_BIN))
SCREENSHOT = os.path.join(BUILD_DIR, "demo-screenshot.png")
DB_SCREENSHOT = os.path.join(BUILD_DIR, "demo-db-screenshot.png")
NODB_SCREENSHOT = os.path.join(BUILD_DIR, "demo-nodb-screenshot.png")


# ---------------------------------------------------------------- chromium

def _installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    return r.returncode == 0 and b"ok installed" in r.stdout


def _apt_install(pkg):
    """apt-get install PKG (after apt-get update if the first try fails).
    Returns None, or why it failed."""
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends",
               "-o", "DPkg::Lock::Timeout=300", pkg]
    out = ""
    for cmd in (install, ["apt-get", "update", "-qq"], install):
        print("running: %s" % " ".join(cmd), flush=True)
        try:
            r = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as e:
            return "%s: %s" % (" ".join(cmd), e)
        out = r.stdout.decode("utf-8", "replace")
        if cmd is install and r.returncode == 0:
            return None
    return "apt-get install %s failed:\n%s" % (pkg, out[-2000:])


def find_chromium():
    """(path, None), or (None, why there is none)."""
    path = os.environ.get("SPOKE_CHROMIUM")
    if path:
        if os.access(path, os.X_OK):
            return path, None
        return None, "SPOKE_CHROMIUM=%s is not an executable" % path
    path = shutil.which("chromium")
    if path:
        return path, None
    if shutil.which("dpkg-query") is None or shutil.which("apt-get") is None:
        return None, "no chromium on PATH and no apt-get to install it"
    if _installed("chromium"):
        return None, "package chromium is installed but not on PATH"
    if os.geteuid() != 0:
        return None, ("no chromium; as root: apt-get install chromium "
                      "(or set SPOKE_CHROMIUM)")
    why = _apt_install("chromium")
    if why:
        return None, why
    path = shutil.which("chromium")
    return (path, None) if path else (None, "chromium installed, not found")


class Chromium:
    """Headless Chromium in its own process group and temporary profile,
    with its DevTools endpoint on an ephemeral port."""

    def __init__(self, path, timeout):
        self.tmp = tempfile.mkdtemp(prefix="spoke-it-chromium-")
        self.lines = []
        self.url = None
        self._ready = threading.Event()
        cmd = [path, "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-dev-shm-usage", "--no-first-run",
               "--no-default-browser-check", "--no-proxy-server",
               "--disable-extensions", "--disable-sync",
               "--disable-background-networking",
               "--disable-component-update",
               "--disable-background-timer-throttling",
               "--disable-renderer-backgrounding", "--mute-audio",
               "--hide-scrollbars", "--window-size=980,760",
               "--remote-debugging-address=127.0.0.1",
               "--remote-debugging-port=0",
               "--user-data-dir=" + os.path.join(self.tmp, "profile"),
               "about:blank"]
        # Everything Chromium writes stays in the temporary directory.
        env = dict(os.environ, HOME=self.tmp,
                   XDG_CONFIG_HOME=os.path.join(self.tmp, "config"),
                   XDG_CACHE_HOME=os.path.join(self.tmp, "cache"))
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     start_new_session=True)
        atexit.register(self.stop)
        threading.Thread(target=self._pump, daemon=True).start()
        if not self._ready.wait(timeout) or self.url is None:
            self.stop()
            raise AssertionError(
                "Chromium printed no 'DevTools listening on' within %.0fs"
                "\ncommand: %s\nstderr:\n%s"
                % (timeout, " ".join(cmd), self.log_tail()))

    def _pump(self):
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip()
            self.lines.append(line)
            m = DEVTOOLS_RE.search(line)
            if m and self.url is None:
                self.url = m.group(1)
                self._ready.set()
        self._ready.set()       # exited: stop waiting

    def log_tail(self, n=40):
        return "\n".join(self.lines[-n:])

    def stop(self):
        """Ends Chromium's process group (the browser and its renderer,
        GPU and utility children) and removes the temporary profile."""
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    pass
        # Children may outlive the browser process for a moment.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


CHROMIUM = None             # set in __main__


# ---------------------------------------------------------------- checks

def check_overlapped(name, spans, ms):
    """Every interval overlaps every other: the last start comes before
    the first end, and all of them fit in less than two sleeps."""
    last_start = max(s for s, _ in spans)
    first_end = min(e for _, e in spans)
    total = max(e for _, e in spans) - min(s for s, _ in spans)
    check(last_start < first_end,
          "%s: not all overlapped: last start %.0f ms, first end %.0f ms"
          % (name, last_start, first_end))
    check(total < 2 * ms, "%s: %d requests of %d ms took %.0f ms in all, "
          "want < %d" % (name, len(spans), ms, total, 2 * ms))


def check_queued(name, spans, ms):
    """The answers came one after another, so the last came after N-1
    more sleeps (a bound no delay in seeing an answer can break), and no
    two together (each gap at least half a sleep: the browser may see
    one answer late and the next on time, so not a whole one)."""
    ends = sorted(e for _, e in spans)
    gaps = [b - a for a, b in zip(ends, ends[1:])]
    total = ends[-1] - min(s for s, _ in spans)
    check(all(g >= 0.5 * ms for g in gaps),
          "%s: answers not a sleep apart: gaps %s ms"
          % (name, ", ".join("%.0f" % g for g in gaps)))
    check(total >= (len(spans) - 1) * ms,
          "%s: %.0f ms in all, want >= %d" % (name, total,
                                              (len(spans) - 1) * ms))


def check_all_sent_first(name, timing):
    """Resource Timing: every request went on the wire before the first
    answer byte came back, so any waiting happened in the server."""
    check(all(t is not None for t in timing),
          "%s: a Resource Timing entry is missing: %r" % (name, timing))
    last_sent = max(t["requestStart"] for t in timing)
    first_answer = min(t["responseStart"] for t in timing)
    check(last_sent < first_answer,
          "%s: not all sent before the first answer: last requestStart "
          "%.0f ms, first responseStart %.0f ms"
          % (name, last_sent, first_answer))


def summary(spans):
    t0 = min(s for s, _ in spans)
    return ", ".join("%.0f-%.0f" % (s - t0, e - t0) for s, e in spans)


def check_lanes(name, lanes, ms):
    """One section of window.demo (the sleep lanes: window.demo itself;
    the database's: window.demo.db): six async requests that overlapped,
    six sync ones that queued, all answered well, all sent before the
    first answer came."""
    print("%s async (ms from the first send): %s"
          % (name, summary(lanes["async"])))
    print("%s sync  (ms from the first send): %s"
          % (name, summary(lanes["sync"])))
    bad = [r for g in ("async", "sync")
           for r in lanes["requests"][g] if not r["ok"]]
    check(lanes["ok"] and not bad, "%s: failed requests: %r" % (name, bad))
    check(len(lanes["async"]) == N and len(lanes["sync"]) == N,
          "%s: want %d requests per group: %r" % (name, N, lanes))
    for g in ("async", "sync"):
        for s, e in lanes[g]:
            check(e - s >= 0.9 * ms, "%s %s: a request took %.0f ms, "
                  "less than its %d ms sleep" % (name, g, e - s, ms))
    check_overlapped(name + " async", lanes["async"], ms)
    check_all_sent_first(name + " async", lanes["timing"]["async"])
    check_queued(name + " sync", lanes["sync"], ms)
    check_all_sent_first(name + " sync", lanes["timing"]["sync"])


def check_db_skipped(demo, status, words):
    """The database lane was skipped because its probe answered STATUS,
    and the page says so with WORDS; it ran no query."""
    db = demo["db"]
    print("db skipped: %s" % db["skipped"])
    check(db["skipped"], "db lane not skipped: %r" % db)
    check_eq(db["requests"]["probe"]["status"], status, "probe status")
    for w in ("/pg/async", "answered %d" % status, words,
              "docs/DATABASE.md"):
        check(w in db["skipped"], "skip reason %r lacks %r"
              % (db["skipped"], w))
    check(db["async"] == [] and db["sync"] == []
          and set(db["requests"]) == {"probe"},
          "db lane skipped but ran requests: %r" % db)


# ---------------------------------------------------------------- page

def load_demo(srv, ms, screenshot):
    """Loads /demo?ms=MS from SRV in a fresh headless Chromium, waits for
    window.demo.done (the page's own end, no fixed sleep), saves a
    screenshot of the whole page to SCREENSHOT and returns window.demo."""
    deadline = time.monotonic() + TEST_TIMEOUT
    chrome = Chromium(CHROMIUM, timeout=20)
    browser = None
    try:
        browser = cdp.Browser(chrome.url, timeout=20)
        page = browser.attach("about:blank")
        browser.call("Runtime.enable", session=page)
        url = "http://127.0.0.1:%d/demo?ms=%d" % (srv.port, ms)
        nav = browser.call("Page.navigate", {"url": url}, session=page)
        check("errorText" not in nav, "navigation to %s failed: %r"
              % (url, nav))
        while True:
            try:
                # Until the page commits this may ask about:blank, or
                # a context the navigation just destroyed: ask again.
                if browser.evaluate(
                        page, "!!(window.demo && window.demo.done)"):
                    break
                last = None
            except cdp.CDPError as e:
                last = e
            if time.monotonic() > deadline:
                raise AssertionError(
                    "page not done within %.0fs (last error: %s); "
                    "page errors: %s" % (
                        TEST_TIMEOUT, last,
                        [e for e in browser.events if e["method"]
                         == "Runtime.exceptionThrown"]))
            time.sleep(0.2)
        demo = json.loads(browser.evaluate(
            page, "JSON.stringify(window.demo)"))

        # The picture first, so a failing run leaves it too.
        size = browser.evaluate(
            page, "[document.documentElement.scrollWidth,"
            " document.documentElement.scrollHeight]")
        shot = browser.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0],
                     "height": size[1], "scale": 1}}, session=page)
        with open(screenshot, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        print("screenshot: %s" % screenshot)
        return demo
    except BaseException:
        print("--- chromium stderr (last 40 lines):\n%s" % chrome.log_tail())
        raise
    finally:
        if browser is not None:
            browser.close()
        chrome.stop()


def pg_config(conninfo):
    """A --config file whose [plugin pg] points at CONNINFO; removed at
    exit."""
    fd, path = tempfile.mkstemp(prefix="spoke-it-demo-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write("[plugin pg]\nconninfo = %s\n" % conninfo)
    atexit.register(lambda: os.path.exists(path) and os.remove(path))
    return path


def warm_pool(srv, pg):
    """Opens the connections the page will use, so its timings are the
    queries' own and not a fresh backend's start (which a loaded machine
    can stretch to seconds): N overlapping /pg/async on the one loop
    leave N connections in its pool, one /pg/sync the worker's. Checks
    in pg_stat_activity that they are there."""
    answers = [None] * N

    def get(i):
        try:
            answers[i] = srv.get("/pg/async?ms=%d&warm=%d" % (DB_MS, i))
        except Exception as e:  # noqa: B902 - reported below
            answers[i] = e
    threads = [threading.Thread(target=get, args=(i,)) for i in range(N)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answers.append(srv.get("/pg/sync?ms=0&warm=sync"))
    bad = [a for a in answers if getattr(a, "status", None) != 200]
    check(not bad, "warming the pool: %r" % bad)
    held = int(pg.scalar("SELECT count(*) FROM pg_stat_activity "
                         "WHERE application_name LIKE 'spoke-pg%'"))
    check(held >= N + 1, "warming the pool: %d connections, want %d"
          % (held, N + 1))


def _free_port():
    """A loopback port nothing listens on (bound, then closed)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---------------------------------------------------------------- tests

@test
def demo_async_overlaps_sync_queues():
    """Sleep lanes; no pg.so, so the database lane is skipped (404)."""
    with Server(["demo.so", "sleep.so"], args=["--workers", "1"]) as srv:
        demo = load_demo(srv, MS, SCREENSHOT)
    check(demo["ms"] == MS, "page slept %r ms, want %d" % (demo["ms"], MS))
    check_lanes("sleep", demo, MS)
    check_db_skipped(demo, 404, "is pg.so loaded?")


@test
def demo_db_lane_skipped_without_database():
    """pg.so loaded, nothing at its conninfo: the probe answers 503, the
    page skips the lane and says why; the sleep lanes still run."""
    conf = pg_config("host=127.0.0.1 port=%d user=postgres "
                     "dbname=postgres connect_timeout=5" % _free_port())
    with Server(["demo.so", "sleep.so", "pg.so"],
                args=["--workers", "1", "--config", conf]) as srv:
        demo = load_demo(srv, SKIP_MS, NODB_SCREENSHOT)
    bad = [r for g in ("async", "sync")
           for r in demo["requests"][g] if not r["ok"]]
    check(demo["ok"] and not bad, "sleep: failed requests: %r" % bad)
    check_db_skipped(demo, 503, "is PostgreSQL running?")


@test
def demo_db_lane_with_postgres():
    """Six /pg/async queries overlap on the loop; six /pg/sync ones queue
    for the one worker, in the page's own timings."""
    if pg_harness._bindir() is None or shutil.which("psql") is None:
        print("skipped: PostgreSQL server programs not installed "
              "(apt-get install postgresql)")
        return
    pg = pg_harness.Postgres()
    try:
        conf = pg_config(pg.conninfo)
        with Server(["demo.so", "sleep.so", "pg.so"],
                    args=["--loops", "1", "--workers", "1",
                          "--config", conf]) as srv:
            warm_pool(srv, pg)
            demo = load_demo(srv, DB_MS, DB_SCREENSHOT)
    finally:
        pg.close()
    db = demo["db"]
    check(db["skipped"] is None, "db lane skipped: %s" % db["skipped"])
    check_eq(db["requests"]["probe"]["status"], 200, "probe status")
    check(demo["ok"], "sleep lanes failed: %r" % demo["requests"])
    for g in ("async", "sync"):
        for r in db["requests"][g]:
            body = json.loads(r["body"]) if r["ok"] else None
            check(body == {"slept_ms": DB_MS, "mode": g},
                  "/pg/%s answered %r, want slept_ms %d" % (g, r, DB_MS))
    check_lanes("db", db, DB_MS)


if __name__ == "__main__":
    CHROMIUM, why = find_chromium()
    if CHROMIUM is None:
        print("skipped: %s" % why)
        print("0 passed, 0 failed, 1 skipped", flush=True)
        sys.exit(SKIP)
    print("chromium: %s" % CHROMIUM, flush=True)
    main()
