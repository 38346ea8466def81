#!/usr/bin/env python3
"""Plugin-owned work outlives its code's reload (SDK 1.3 plugin holds).

The fixture `ownwork` (built as ownwork_v1.so and ownwork_v2.so) starts
libuv handles of its own on the request's loop and holds its version
(spoke_plugin_hold) until each handle's close callback: a uv_timer_t
that fires after the request was answered, and a uv_tcp_t to a backend
whose read callback answers, closes the handle and keeps running its own
code for 20 ms. Replacing the plugin while that work is pending must not
unmap code that will still run: the old version stays loaded, says so in
/status, and unloads once the last hold is released. Before plugin holds
both shapes killed the server with SIGSEGV and no log line.

Also here: a request the plugin never completes is answered 504 by the
handler timeout and no longer keeps its version loaded; /status and
/metrics agree on what is in flight; a drain does not wait for it.

The tests wait on log lines, sockets and the process, never on time."""

import http.client
import json
import os
import re
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (SANITIZED, PluginFile, Server,  # noqa: E402
                           check, check_eq, main, plugin_path, test)

V = {n: plugin_path("ownwork_v%d.so" % n) for n in (1, 2)}




class Backend:
    """A TCP peer on 127.0.0.1 that answers each "ping" line with "pong".
    With gate set, it holds every answer until release() is called."""

    def __init__(self, gate=False):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.gate = threading.Event()
        if not gate:
            self.gate.set()
        self.accepted = threading.Semaphore(0)
        self.closing = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.release()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with c:
            try:
                data = b""
                while b"\n" not in data:
                    chunk = c.recv(64)
                    if not chunk:
                        return
                    data += chunk
                self.gate.wait(60)
                c.sendall(b"pong\n")
                c.recv(64)  # until the plugin closes its side
            except OSError:
                pass

    def release(self):
        self.gate.set()

    def close(self):
        self.closing = True
        self.gate.set()
        self.sock.close()


class Swap(PluginFile):
    """ownwork.so, replaced by rename as a deploy does."""

    def __init__(self, srv):
        super().__init__(srv, "ownwork.so")

    def to(self, version):
        self.rename(V[version])
        return self.wait_reloaded("ownwork", version)


def instances(st, name="ownwork"):
    return {i["version"]: i for i in st["instances"] if i["name"] == name}


def unloaded_re(version):
    return r"unloaded plugin ownwork %d \(generation" % version


@test
def own_timer_keeps_the_old_version_until_it_has_run():
    with Server(["hello"], files={"ownwork.so": open(V[1], "rb").read()},
                args=["--loops", "1", "--retire-warn", "100ms",
                      "--shutdown-timeout", "300ms"]) as srv:
        sw = Swap(srv)
        r = srv.get("/own/timer?ms=60000")  # pending long after the reload
        check_eq((r.status, r.body), (200, b"own1\n"), "v1 answers at once")
        sw.to(2)
        check_eq(srv.get("/own/timer?ms=0").body, b"own2\n", "v2 serves")
        # v1's timer is pending: v1 is retiring and held, and says so.
        sw.wait(r"plugin ownwork 1 \(generation \d+\) still loaded [0-9.]+ s "
                r"after it stopped serving: 0 requests in flight, 1 plugin "
                r"hold not released", "the retiring warning")
        v1 = instances(sw.status()).get("1")
        check(v1 is not None, "v1 gone from status.json")
        check_eq((v1["state"], v1["holds"], v1["in_flight"]),
                 ("retiring", 1, 0), "v1 in status.json")
        check(re.search(unloaded_re(1), srv.log_text()) is None,
              "v1 unloaded while its timer was pending")
        sw.close()
        # SIGTERM drains: plugin-owned work that holds its version is
        # waited for up to --shutdown-timeout, like requests; still no
        # crash, exit 0.
        srv.stop()
        check(re.search(r"shutdown deadline passed", srv.log_text()),
              "the drain did not wait for the held timer:\n" + srv.log_tail())


@test
def own_timer_fires_in_the_old_code_after_a_reload():
    with Server([], files={"ownwork.so": open(V[1], "rb").read()}) as srv:
        sw = Swap(srv)
        check_eq(srv.get("/own/timer?ms=400").body, b"own1\n", "v1")
        sw.to(2)
        # The timer fires in v1's code, then its close callback releases
        # the hold: only then does v1 go.
        sw.wait(unloaded_re(1), "v1 unloaded after its timer ran")
        check_eq(srv.get("/own/timer?ms=0").body, b"own2\n", "v2 serves")
        check(srv.alive(), "server died")
        sw.close()


@test
def tcp_reply_completes_then_runs_on_after_a_reload():
    backend = Backend(gate=True)
    try:
        with Server([], files={"ownwork.so": open(V[1], "rb").read()}) as srv:
            sw = Swap(srv)
            result = {}

            def client():
                result["r"] = srv.get("/own/tcp?port=%d" % backend.port)

            t = threading.Thread(target=client, daemon=True)
            t.start()
            check(backend.accepted.acquire(timeout=30), "plugin never connected")
            sw.to(2)
            # v1 waits on its backend: it has a request in flight and a hold.
            v1 = instances(sw.status()).get("1")
            check(v1 is not None and v1["state"] == "retiring",
                  "v1 not retiring: %r" % v1)
            backend.release()
            t.join(60)
            check("r" in result, "no response")
            check_eq((result["r"].status, result["r"].body),
                     (200, b"own1 tcp pong\n"), "answered by v1")
            # After answering, v1's read callback closed its handle and ran
            # 20 ms more of its own code; the version went only after that.
            sw.wait(unloaded_re(1), "v1 unloaded")
            check_eq(srv.get("/own/count").body[:5], b"fired", "v2 serves")
            check(srv.alive(), "server died")
            sw.close()
    finally:
        backend.close()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


@test
def two_hundred_reloads_under_load_with_plugin_owned_work():
    backend = Backend()
    conns, errors, stop = 8, [], threading.Event()
    counts = [0] * conns
    try:
        with Server([], args=["--loops", "2", "--max-requests", "1000000000"],
                    files={"ownwork.so": open(V[1], "rb").read()}) as srv:
            sw = Swap(srv)
            pid = srv.serving_pid()

            def client(i):
                paths = ["/own/timer?ms=30", "/own/tcp?port=%d" % backend.port]
                try:
                    with srv.conn() as c:
                        while not stop.is_set():
                            path = paths[counts[i] % 2] if i % 2 else paths[i % 2]
                            r = c.roundtrip("GET", path)
                            ok = r.body in (b"own1\n", b"own2\n",
                                            b"own1 tcp pong\n",
                                            b"own2 tcp pong\n")
                            if r.status != 200 or not ok:
                                errors.append("conn %d: %d %r" % (i, r.status,
                                                                  r.body))
                                return
                            counts[i] += 1
                except Exception as e:  # noqa: B902 - a dropped request
                    errors.append("conn %d: %r" % (i, e))

            threads = [threading.Thread(target=client, args=(i,), daemon=True)
                       for i in range(conns)]
            for t in threads:
                t.start()
            for k in range(20):  # warm up: pools, buffers, first loads
                sw.to(2 if k % 2 == 0 else 1)
            fds0, rss0 = fd_count(pid), rss_kib(pid)
            for k in range(200):
                sw.to(2 if k % 2 == 0 else 1)
                check(not errors, "failed during reload %d: %s"
                      % (k, errors[:3]))
            stop.set()
            for t in threads:
                t.join(60)
                check(not t.is_alive(), "client stuck")
            check(not errors, "failures: %s" % errors[:3])
            check(all(n > 0 for n in counts), "a client got nothing: %r"
                  % counts)
            # Every replaced version unloads once its timers have run and
            # its TCP links closed: one instance left, one private copy.
            want = 220  # every reload retires one version
            for _ in range(want):
                if len(re.findall(r"unloaded plugin ownwork ",
                                  srv.log_text())) >= want:
                    break
                srv.wait_log(r"unloaded plugin ownwork ", timeout=1,
                             start=len(srv.log_lines()))
            check_eq(len(re.findall(r"unloaded plugin ownwork ",
                                    srv.log_text())), want,
                     "versions unloaded")
            check_eq(len(instances(sw.status())), 1, "instances left")
            copies = [f for f in os.listdir(sw.runtime) if f.endswith(".so")]
            check_eq(len(copies), 1, "private copies left: %r" % copies)
            # No leak: the descriptors are back where they were (clients
            # closed), and memory did not grow with the reloads.
            fds1, rss1 = fd_count(pid), rss_kib(pid)
            check(fds1 <= fds0, "fds grew from %d to %d" % (fds0, fds1))
            print("     RSS %d KiB after warm-up, %d KiB after 200 reloads "
                  "(%+d KiB)%s" % (rss0, rss1, rss1 - rss0,
                                   " (sanitizer build: reported, not "
                                   "asserted)" if SANITIZED else ""),
                  flush=True)
            if not SANITIZED:
                check(rss1 - rss0 < 16 * 1024,
                      "RSS grew by %d KiB over 200 reloads" % (rss1 - rss0))
            sw.close()
    finally:
        backend.close()


def admin_get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request("GET", path)
        return c.getresponse().read()
    finally:
        c.close()


@test
def never_completed_request_gets_504_and_lets_its_version_go():
    with Server([], files={"ownwork.so": open(V[1], "rb").read()},
                args=["--handler-timeout", "200ms",
                      "--admin", "127.0.0.1:0"]) as srv:
        sw = Swap(srv)
        admin = int(srv.wait_log(r"admin endpoint at 127\.0\.0\.1:(\d+)")
                    .group(1))
        r = srv.get("/own/never")
        check_eq(r.status, 504, "the handler timeout answers")
        st = json.loads(admin_get(admin, "/status"))
        metrics = admin_get(admin, "/metrics").decode()
        inst = instances(st["status"])["1"]
        check_eq(inst["in_flight"], 0, "/status in_flight after the 504")
        check(re.search(r"^spoke_requests_in_flight 0$", metrics, re.M),
              "/metrics in_flight:\n" + metrics)
        check(re.search(r"^spoke_requests_abandoned 1$", metrics, re.M),
              "/metrics abandoned:\n" + metrics)
        # Replaced, the version that owes the completion unloads: nothing
        # of the core will run its code for that request again.
        sw.to(2)
        sw.wait(unloaded_re(1), "v1 unloaded despite the abandoned request")
        sw.close()
        # A drain does not wait for it either: exit 0 at once, not at the
        # shutdown deadline.
        srv.stop()
        check(re.search(r"shutdown deadline passed", srv.log_text()) is None,
              "the drain waited for the abandoned request")


if __name__ == "__main__":
    main()
