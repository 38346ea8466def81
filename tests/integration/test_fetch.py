#!/usr/bin/env python3
"""examples/fetch.c: an async route that GETs an upstream with libcurl's
multi-socket interface on the request's loop (SDK 1.4 loop_init and
loop_fini hold one curl multi handle per loop).

Upstreams are real servers the test starts: a second spoke serving
hello.so and sleep.so, and Upstream below, a small socket server whose
answers the test holds back (a gate), withholds for ever, or refuses by
closing at once, and which counts the requests it received and the
connections the front spoke closed. The tests wait on those counts, on
sockets and on log lines, never on time."""

import os
import select
import socket
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, IO_TIMEOUT, PluginFile,  # noqa: E402
                           Server, check, check_eq, check_response, main,
                           plugin_path, test)

UPSTREAM_BODY = b"from the upstream\n"
UPSTREAM_TYPE = "text/x-upstream"


def conf_file(text):
    fd, path = tempfile.mkstemp(prefix="spoke-it-fetch-", suffix=".conf")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class Upstream:
    """An HTTP/1.1 upstream on 127.0.0.1 that the test controls.

    mode "answer": each request gets 200 UPSTREAM_BODY (keep-alive), once
                   the gate is open (gated=False: open from the start);
    mode "silent": requests are read and never answered;
    mode "close":  each connection is closed as soon as it is accepted.

    Counts, waited on with wait(): accepted connections, requests read,
    eofs (connections the client closed or reset)."""

    def __init__(self, mode="answer", gated=False):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.cond = threading.Condition()
        self.accepted = self.requests = self.eofs = 0
        self.heads = []
        self.gate = threading.Event()
        # Readable once the gate opens: a waiting connection selects on it
        # together with its own socket, so it also sees the client leave.
        self._gate_r, self._gate_w = socket.socketpair()
        if not gated:
            self.open()
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path="/up"):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def open(self):
        if not self.gate.is_set():
            self.gate.set()
            self._gate_w.send(b"x")

    def close(self):
        self.open()
        self.sock.close()

    def wait(self, what, n, timeout=IO_TIMEOUT):
        with self.cond:
            ok = self.cond.wait_for(lambda: getattr(self, what) >= n, timeout)
            check(ok, "upstream: %s %d, want %d" % (what, getattr(self, what),
                                                    n))

    def _count(self, what, head=None):
        with self.cond:
            setattr(self, what, getattr(self, what) + 1)
            if head is not None:
                self.heads.append(head)
            self.cond.notify_all()

    def _accept(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self._count("accepted")
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            try:
                if self.mode == "close":
                    return
                buf = b""
                while True:
                    while b"\r\n\r\n" not in buf:
                        data = c.recv(4096)
                        if not data:
                            self._count("eofs")
                            return
                        buf += data
                    head, buf = buf.split(b"\r\n\r\n", 1)
                    self._count("requests", head)
                    while self.mode == "silent" or not self.gate.is_set():
                        waits = [c] if self.mode == "silent" else \
                            [c, self._gate_r]
                        ready, _, _ = select.select(waits, [], [])
                        if c in ready:
                            data = c.recv(4096)
                            if not data:
                                self._count("eofs")
                                return
                            buf += data
                        elif self.mode != "silent":
                            break
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\n"
                              b"Content-Length: %d\r\n\r\n%s"
                              % (UPSTREAM_TYPE.encode(), len(UPSTREAM_BODY),
                                 UPSTREAM_BODY))
            except OSError:  # reset by the client: closed all the same
                self._count("eofs")


def front(url, *extra_conf, args=("--loops", "1"), plugins=("fetch", "hello")):
    """A spoke serving fetch.so with [plugin fetch] url = URL (and
    EXTRA_CONF lines); its config file goes when the server is stopped."""
    path = conf_file("[plugin fetch]\nurl = %s\n%s"
                     % (url, "".join(line + "\n" for line in extra_conf)))
    srv = Server(list(plugins), args=["--config", path] + list(args))
    os.unlink(path)  # read at start; a reload does not read it again
    return srv


class Fetches:
    """N GET PATH requests on their own connections and threads."""

    def __init__(self, srv, n, path="/fetch"):
        self.results = [None] * n
        self.threads = [threading.Thread(target=self._one,
                                         args=(srv, i, path), daemon=True)
                        for i in range(n)]
        for t in self.threads:
            t.start()

    def _one(self, srv, i, path):
        try:
            self.results[i] = srv.get(path)
        except Exception as e:  # noqa: B902 - reported by join()
            self.results[i] = e

    def pending(self):
        return sum(t.is_alive() for t in self.threads)

    def join(self):
        deadline = time.monotonic() + 2 * IO_TIMEOUT
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
            check(not t.is_alive(), "a /fetch got no answer")
        return self.results


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


@test
def fetch_answers_with_the_upstreams_body_and_status():
    with Server(["hello", "sleep"]) as up:
        with front("http://127.0.0.1:%d/hello" % up.port) as srv:
            r = srv.get("/fetch")
            check_response(r, 200, HELLO)
            check(r.header("Content-Type").startswith("text/plain"),
                  "upstream Content-Type passed on: %r" % r.header(
                      "Content-Type"))
            # The loop's curl keeps its connection: a second fetch works too.
            check_response(srv.get("/fetch"), 200, HELLO)
        # The query string goes along; the upstream's own 400 comes back.
        with front("http://127.0.0.1:%d/sleep/async" % up.port) as srv:
            check_response(srv.get("/fetch?ms=0"), 200, HELLO)
            r = srv.get("/fetch?ms=x")
            check_response(r, 400, b"ms must be a number of milliseconds\n")


@test
def fifty_concurrent_fetches_on_one_loop():
    with Server(["hello", "sleep"]) as up:
        with front("http://127.0.0.1:%d/sleep/async" % up.port) as srv:
            results = Fetches(srv, 50, "/fetch?ms=20").join()
            for r in results:
                check(not isinstance(r, Exception), "a fetch failed: %r" % r)
                check_response(r, 200, HELLO)


@test
def the_loop_serves_others_while_fifty_fetches_are_pending():
    up = Upstream(gated=True)
    try:
        with front(up.url()) as srv:
            fetches = Fetches(srv, 50)
            # All 50 reached the upstream, which holds every answer: they
            # are pending on the front's one loop...
            up.wait("requests", 50)
            check_eq(up.accepted, 50, "one upstream connection per transfer")
            # ...and that loop still answers.
            check_response(srv.get("/hello"), 200, HELLO)
            check_eq(fetches.pending(), 50, "fetches answered before the "
                     "upstream did")
            up.open()
            for r in fetches.join():
                check(not isinstance(r, Exception), "a fetch failed: %r" % r)
                check_response(r, 200, UPSTREAM_BODY)
                check_eq(r.header("Content-Type"), UPSTREAM_TYPE,
                         "Content-Type")
    finally:
        up.close()


@test
def silent_upstream_gets_504_after_timeout_ms():
    up = Upstream("silent")
    try:
        with front(up.url(), "timeout_ms = 100") as srv:
            check_response(srv.get("/fetch"), 504)
            up.wait("eofs", 1)  # curl gave the connection up
            check_response(srv.get("/hello"), 200, HELLO)
            check_response(srv.get("/fetch"), 504)
    finally:
        up.close()


@test
def refused_or_closed_upstream_gets_502():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there: connection refused
    with front("http://127.0.0.1:%d/x" % port) as srv:
        check_response(srv.get("/fetch"), 502)
        check_response(srv.get("/hello"), 200, HELLO)
    up = Upstream("close")
    try:
        with front(up.url()) as srv:
            check_response(srv.get("/fetch"), 502)
            check(up.accepted >= 1, "the upstream was never reached")
            check_response(srv.get("/hello"), 200, HELLO)
    finally:
        up.close()


@test
def limits_max_bytes_and_max_transfers():
    with Server(["hello"]) as up:
        # 13 bytes of "Hello, World!" against 12 allowed.
        with front("http://127.0.0.1:%d/hello" % up.port,
                   "max_bytes = 12") as srv:
            check_response(srv.get("/fetch"), 502)
        with front("http://127.0.0.1:%d/hello" % up.port,
                   "max_bytes = 13") as srv:
            check_response(srv.get("/fetch"), 200, HELLO)
    up = Upstream(gated=True)
    try:
        with front(up.url(), "max_transfers = 2") as srv:
            fetches = Fetches(srv, 2)
            up.wait("requests", 2)
            r = srv.get("/fetch")
            check_response(r, 503)
            check_eq(r.header("Retry-After"), "1", "Retry-After")
            up.open()
            for r in fetches.join():
                check_response(r, 200, UPSTREAM_BODY)
            check_response(srv.get("/fetch"), 200, UPSTREAM_BODY)
    finally:
        up.close()


@test
def client_leaving_cancels_the_upstream_transfer():
    up = Upstream(gated=True)
    try:
        # Only the cancellation, not curl's own timeout, may end it here.
        with front(up.url(), "timeout_ms = 3600000") as srv:
            with srv.conn() as c:
                c.request("GET", "/fetch")
                up.wait("requests", 1)
            # The client is gone: the front drops the transfer at once,
            # and the upstream, still holding its answer, reads EOF.
            up.wait("eofs", 1)
            check_response(srv.get("/hello"), 200, HELLO)
            up.open()
            check_response(srv.get("/fetch"), 200, UPSTREAM_BODY)
    finally:
        up.close()


@test
def handler_timeout_cancels_the_transfer_too():
    up = Upstream(gated=True)
    try:
        # The server's --handler-timeout answers 504 and calls the abort
        # callback, as when the client leaves: the transfer stops there.
        with front(up.url(), "timeout_ms = 3600000",
                   args=("--loops", "1", "--handler-timeout", "100ms")) as srv:
            check_response(srv.get("/fetch"), 504)
            up.wait("eofs", 1)
            up.open()
            check_response(srv.get("/fetch"), 200, UPSTREAM_BODY)
    finally:
        up.close()


@test
def hot_reload_while_fetches_are_pending():
    up = Upstream(gated=True)
    try:
        with front(up.url(), args=("--loops", "2")) as srv:
            sw = PluginFile(srv, "fetch.so")
            pid = srv.serving_pid()
            sw.rename(plugin_path("fetch.so"))  # warm up: one reload done
            sw.wait_reloaded("fetch", "1.0.0")
            sw.wait(r"unloaded plugin fetch ", "the first version unloaded")
            fds0 = fd_count(pid)
            fetches = Fetches(srv, 10)
            up.wait("requests", 10)
            sw.rename(plugin_path("fetch.so"))
            sw.wait_reloaded("fetch", "1.0.0")
            up.open()
            for r in fetches.join():
                check(not isinstance(r, Exception), "a fetch failed: %r" % r)
                check_response(r, 200, UPSTREAM_BODY)
            # The old version's transfers are done; its loop_fini on each
            # loop closes its curl multi handle and with it the keep-alive
            # connections curl kept: the upstream sees every one close.
            sw.wait(r"unloaded plugin fetch ", "the old version unloaded")
            up.wait("eofs", 10)
            # And nothing of it is left open: the descriptors come back to
            # what they were (the clients' own connections close as the
            # server reads their EOF, so allow it that moment).
            deadline = time.monotonic() + IO_TIMEOUT
            while fd_count(pid) > fds0 and time.monotonic() < deadline:
                srv.wait_log(r"^$", timeout=0.01)  # a short, bounded pause
            check(fd_count(pid) <= fds0, "fds grew from %d to %d"
                  % (fds0, fd_count(pid)))
            check_response(srv.get("/fetch"), 200, UPSTREAM_BODY)
            check_response(srv.get("/hello"), 200, HELLO)
            sw.close()
    finally:
        up.close()


if __name__ == "__main__":
    main()
