"""workloads.py: the seven benchmark workloads, each a measurement of one
server in one round, on a fresh server process.

  W1 hello     wrk -t1 -c64 --latency on /hello, keep-alive, then the
               same 16-deep pipelined (pipeline.lua): req/s and p99
  W2 waiting   N concurrent GET /sleep/async?ms=2000 (N = 1,000, 10,000)
               from waitclient: wall time until all are answered, errors,
               p99, the server's peak RSS (VmHWM, summed over workers)
  W3 blocking  spoke --workers 32: /hello p99 (wrk -t1 -c4) idle and while
               32 connections keep /sleep/sync busy; 100 concurrent sync
               requests (queued, all served); the same with --max-queue 16
               (how many 503, and whether each has Retry-After)
  W4 sync mode /hello/sync (same handler on the worker pool) against
               /hello (on the loop), back to back, wrk as in W1
  W5 memory    RSS with 10,000 idle keep-alive connections, each after one
               GET /hello, against RSS before: KiB per connection
  W6 files     GET /files/NAME of 4 KiB (wrk -c64), 1 MiB and 20 MB (wrk
               -c16), keep-alive: req/s, MiB/s, p99; each file's bytes
               checked once first
  W7 slow      1,000 concurrent downloads of the 20 MB file (slowclient),
               each read at most 64 KiB every 100 ms, spoke with
               --workers 2: how many progress at once (at least 5 MiB
               each in the last 15 s of a 20 s window, then all are cut),
               errors, the server's peak RSS (VmHWM, summed)

The files of W6 and W7 are made once per run in WORK/www/files (random
bytes from a fixed seed, so every run serves the same bytes).

A workload names the metrics it yields (Metric: key, label, unit, which
direction is better) and runs one server per call; which servers apply
follows from the routes each has (servers.Server.has). Params holds every
size and duration, in two presets: the full run (about 20 minutes with
all five servers) and the 30-second smoke run.
"""

import hashlib
import os
import random
import time

from clients import Held, fetch, slowclient, waitclient, wrk, wrk_background
from servers import kill, www_dir

HIGHER, LOWER = "higher", "lower"


class Params:
    """Sizes and durations (seconds) of one benchmark run."""

    def __init__(self, smoke=False):
        self.rounds = 1 if smoke else 3
        self.warmup_s = 0 if smoke else 1
        self.w1_s = 2 if smoke else 10
        self.pipe_s = 1 if smoke else 5
        self.pipe_depth = 16
        self.w2_ns = (200,) if smoke else (1000, 10000)
        self.sleep_ms = 500 if smoke else 2000
        self.w2_timeout = 5 if smoke else 12
        self.max_conns = 20000
        self.w3_workers = 4 if smoke else 32
        self.w3_probe_s = 1 if smoke else 3
        self.w3_lead_s = 0.3 if smoke else 0.5
        self.w3_n = 10 if smoke else 100
        self.w3_max_queue = 2 if smoke else 16
        self.w3_timeout = 5 if smoke else 12
        self.w4_s = 1 if smoke else 5
        self.w5_n = 200 if smoke else 10000
        self.w5_timeout = 5 if smoke else 15
        self.w5_settle_s = 0.2 if smoke else 1.0
        # (name, bytes, wrk connections)
        self.w6_files = ([("4KiB", 4096, 64)] if smoke else
                         [("4KiB", 4096, 64), ("1MiB", 1 << 20, 16),
                          ("20MB", 20000000, 16)])
        self.w6_s = 1 if smoke else 5
        # W7: N downloads of one file, each read CHUNK bytes every
        # EVERY_MS; progress is counted from SAMPLE_S to WINDOW_S. The
        # smoke file is past static.so's 1 MiB whole-body limit, so its
        # streamed path is checked too, and small enough to finish.
        self.w7_file = ("1500KB", 1500000) if smoke else ("20MB", 20000000)
        self.w7_n = 5 if smoke else 1000
        self.w7_workers = 2
        self.w7_chunk = 256 * 1024 if smoke else 64 * 1024
        self.w7_every_ms = 100
        self.w7_window_s = 5 if smoke else 20
        self.w7_sample_s = 0.5 if smoke else 5
        # above what a server's socket send buffer can hold (tcp_wmem's
        # 4 MiB): a download counted progressing had the server writing
        self.w7_min_bytes = 5 << 20


class Metric:
    def __init__(self, key, label, unit, better=None):
        self.key, self.label, self.unit, self.better = key, label, unit, better


class Workload:
    id = "W?"
    title = ""
    needs = "/hello"  # the route a server must have to take part

    def metrics(self, p):
        raise NotImplementedError

    def applies(self, server_cls):
        return server_cls.has(self.needs)

    def run(self, ctx, name):
        """Measures server NAME once: {metric key: value}."""
        raise NotImplementedError


def sleep_path(route, p):
    return "%s?ms=%d" % (route, p.sleep_ms)


class Hello(Workload):
    id = "W1"
    title = "hello: wrk -t1 -c64 on /hello, keep-alive and pipelined"

    def metrics(self, p):
        return [Metric("rps", "/hello req/s", "req/s", HIGHER),
                Metric("p99", "/hello p99", "ms", LOWER),
                Metric("errors", "/hello errors", "count", LOWER),
                Metric("pipe_rps", "/hello req/s, %d-deep pipelined"
                       % p.pipe_depth, "req/s", HIGHER),
                Metric("pipe_errors", "pipelined errors", "count", LOWER)]

    def run(self, ctx, name):
        p = ctx.params
        with ctx.server(name) as srv:
            if p.warmup_s:
                wrk(srv.url("/hello"), p.warmup_s)
            a = wrk(srv.url("/hello"), p.w1_s)
            b = wrk(srv.url("/hello"), p.pipe_s, pipeline=p.pipe_depth)
        return {"rps": a["rps"], "p99": a["p99_ms"], "errors": a["errors"],
                "requests": a["requests"], "pipe_rps": b["rps"],
                "pipe_errors": b["errors"], "pipe_requests": b["requests"]}


class Waiting(Workload):
    id = "W2"
    title = "waiting: N concurrent GET /sleep/async, one per connection"
    needs = "/sleep/async"

    def metrics(self, p):
        out = []
        for n in p.w2_ns:
            k, at = "n%d_" % n, "N=%s: " % format(n, ",")
            out += [Metric(k + "wall", at + "wall until all answered", "s",
                           LOWER),
                    Metric(k + "errors", at + "errors", "count", LOWER),
                    Metric(k + "p99", at + "p99", "ms", LOWER),
                    Metric(k + "peak", at + "peak RSS", "MiB", LOWER)]
        return out

    def run(self, ctx, name):
        p = ctx.params
        out = {}
        for n in p.w2_ns:
            with ctx.server(name, max_conns=p.max_conns) as srv:
                r = waitclient(ctx.waitclient, srv.port, n,
                               sleep_path("/sleep/async", p), p.w2_timeout)
                peak = srv.memory_kib("VmHWM") / 1024.0
            k = "n%d_" % n
            out.update({k + "wall": r["wall_s"], k + "errors": r["errors"],
                        k + "p99": r["p99_ms"], k + "peak": peak,
                        k + "ok": r["ok"], k + "n": n})
        return out


class Blocking(Workload):
    id = "W3"
    title = "blocking: /hello while every worker sleeps; sync overflow"
    needs = "/sleep/sync"

    def metrics(self, p):
        q = "%d sync, %d workers, --max-queue %d: " % (
            p.w3_n, p.w3_workers, p.w3_max_queue)
        return [Metric("idle_p99", "/hello p99, idle", "ms", LOWER),
                Metric("busy_p99", "/hello p99, %d sync requests running"
                       % p.w3_workers, "ms", LOWER),
                Metric("busy_ratio", "p99 saturated / idle", "x", LOWER),
                Metric("busy_rps", "/hello req/s while saturated", "req/s",
                       HIGHER),
                Metric("sync_wall", "%d concurrent sync: wall" % p.w3_n, "s",
                       LOWER),
                Metric("sync_ok", "%d concurrent sync: 200s" % p.w3_n,
                       "count", HIGHER),
                Metric("q_503", q + "503s", "count"),
                Metric("q_retry", q + "503s with Retry-After", "count"),
                Metric("q_ok", q + "200s", "count")]

    def run(self, ctx, name):
        p = ctx.params
        out = self.saturation(ctx, name)
        with ctx.server(name, workers=p.w3_workers) as srv:
            r = self.sync_burst(ctx, srv)
        out.update({"sync_wall": r["wall_s"], "sync_ok": r["ok"],
                    "sync_errors": r["errors"]})
        if name == "spoke":  # the only one with a bounded queue to test
            with ctx.server(name, workers=p.w3_workers,
                            max_queue=p.w3_max_queue) as srv:
                r = self.sync_burst(ctx, srv)
            out.update({"q_503": r["status"].get("503", 0),
                        "q_retry": r["retry_after"], "q_ok": r["ok"],
                        "q_errors": r["errors"]})
        return out

    def saturation(self, ctx, name):
        """/hello p99 idle, then with every worker held by a sleep."""
        p = ctx.params
        probe = dict(conns=4, timeout_s=10)
        with ctx.server(name, workers=p.w3_workers) as srv:
            idle = wrk(srv.url("/hello"), p.w3_probe_s, **probe)
            load = wrk_background(
                srv.url(sleep_path("/sleep/sync", p)),
                p.w3_lead_s + p.w3_probe_s + 2, conns=p.w3_workers,
                timeout_s=10)
            try:
                time.sleep(p.w3_lead_s)  # every worker takes a sleep
                busy = wrk(srv.url("/hello"), p.w3_probe_s, **probe)
            finally:
                kill(load, group=False)
        busy_p99 = busy["p99_ms"]
        if busy["requests"] == 0:  # none answered: p99 > the probe's length
            busy_p99 = p.w3_probe_s * 1000.0
            ctx.results.notes.append(
                "W3 %s: no /hello answered during the %g s saturated probe; "
                "its p99 is shown as %g ms, a lower bound"
                % (name, p.w3_probe_s, busy_p99))
        ratio = (busy_p99 / idle["p99_ms"]
                 if busy_p99 and idle["p99_ms"] else None)
        return {"idle_p99": idle["p99_ms"], "busy_p99": busy_p99,
                "busy_ratio": ratio, "busy_rps": busy["rps"],
                "idle_errors": idle["errors"], "busy_errors": busy["errors"],
                "busy_requests": busy["requests"]}

    @staticmethod
    def sync_burst(ctx, srv):
        p = ctx.params
        return waitclient(ctx.waitclient, srv.port, p.w3_n,
                          sleep_path("/sleep/sync", p), p.w3_timeout)


class SyncMode(Workload):
    id = "W4"
    title = "sync-mode overhead: /hello/sync (pool) against /hello (loop)"
    needs = "/hello/sync"

    def metrics(self, p):
        return [Metric("async_rps", "/hello req/s", "req/s", HIGHER),
                Metric("sync_rps", "/hello/sync req/s", "req/s", HIGHER),
                Metric("sync_ratio", "sync / async req/s", "x", HIGHER),
                Metric("sync_p99", "/hello/sync p99", "ms", LOWER),
                Metric("sync_errors", "/hello/sync errors", "count", LOWER)]

    def run(self, ctx, name):
        p = ctx.params
        with ctx.server(name) as srv:
            if p.warmup_s:
                wrk(srv.url("/hello"), p.warmup_s)
            a = wrk(srv.url("/hello"), p.w4_s)
            s = wrk(srv.url("/hello/sync"), p.w4_s)
        return {"async_rps": a["rps"], "sync_rps": s["rps"],
                "sync_ratio": s["rps"] / a["rps"] if a["rps"] else None,
                "sync_p99": s["p99_ms"], "sync_errors": s["errors"],
                "async_errors": a["errors"], "sync_requests": s["requests"]}


class Memory(Workload):
    id = "W5"
    title = "memory: idle keep-alive connections, each after one GET /hello"

    def metrics(self, p):
        n = format(p.w5_n, ",")
        return [Metric("before", "RSS before", "MiB", LOWER),
                Metric("with", "RSS with %s idle connections" % n, "MiB",
                       LOWER),
                Metric("per_conn", "per idle connection", "KiB", LOWER),
                Metric("held", "connections held", "count", HIGHER)]

    def run(self, ctx, name):
        p = ctx.params
        with ctx.server(name, max_conns=p.max_conns) as srv:
            before = srv.memory_kib()
            with Held(ctx.waitclient, srv.port, p.w5_n, "/hello",
                      p.w5_timeout) as held:
                time.sleep(p.w5_settle_s)  # let the server go idle
                during = srv.memory_kib()
            answered = held.report["answered"]
        return {"before": before / 1024.0, "with": during / 1024.0,
                "per_conn": (during - before) / p.w5_n,
                "held": answered - (held.closed or 0),
                "errors": held.report["errors"],
                "closed_while_held": held.closed}


def test_file(ctx, name, size):
    """WORK/www/files/NAME of SIZE random bytes (seeded by its size), made
    once per run; returns its SHA-256."""
    if name not in ctx.files:
        path = os.path.join(www_dir(ctx.work), "files", name)
        data = random.Random(size).randbytes(size)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, 0o644)
        ctx.files[name] = hashlib.sha256(data).hexdigest()
    return ctx.files[name]


def check_file(ctx, srv, name, size):
    """1 when GET /files/NAME answers 200 with the file's bytes, else 0."""
    want = test_file(ctx, name, size)
    status, body = fetch(srv.port, "/files/" + name)
    ok = status == 200 and hashlib.sha256(body).hexdigest() == want
    if not ok:
        ctx.results.notes.append(
            "%s /files/%s: status %s, %d of %d bytes%s" % (
                srv.name, name, status, len(body), size,
                " (different bytes)" if len(body) == size else ""))
    return int(ok)


class Files(Workload):
    id = "W6"
    title = "files: GET /files/NAME, keep-alive (wrk -t1)"
    needs = "/files"

    def metrics(self, p):
        out = []
        for name, _, conns in p.w6_files:
            at = "%s -c%d: " % (name, conns)
            out += [Metric(name + "_rps", at + "req/s", "req/s", HIGHER),
                    Metric(name + "_mib_s", at + "transfer", "MiB/s", HIGHER),
                    Metric(name + "_p99", at + "p99", "ms", LOWER),
                    Metric(name + "_errors", at + "errors", "count", LOWER)]
        return out

    def run(self, ctx, name):
        p = ctx.params
        out = {}
        for fname, size, _ in p.w6_files:
            test_file(ctx, fname, size)  # before the server: none is timed
        with ctx.server(name, files=True) as srv:
            for fname, size, conns in p.w6_files:
                url = srv.url("/files/" + fname)
                out[fname + "_right"] = check_file(ctx, srv, fname, size)
                if p.warmup_s:
                    wrk(url, p.warmup_s, conns=conns, timeout_s=10)
                r = wrk(url, p.w6_s, conns=conns, timeout_s=10)
                out.update({fname + "_rps": r["rps"],
                            fname + "_mib_s": r["mib_s"],
                            fname + "_p99": r["p99_ms"],
                            fname + "_errors": r["errors"],
                            fname + "_requests": r["requests"]})
        return out


class SlowReaders(Workload):
    id = "W7"
    title = "slow readers: concurrent downloads, each read at a bounded rate"
    needs = "/files"

    def metrics(self, p):
        name = p.w7_file[0]
        n = format(p.w7_n, ",")
        rate = p.w7_chunk * 1000 // p.w7_every_ms // 1024
        phase = p.w7_window_s - p.w7_sample_s
        return [
            Metric("progressing", "%s x %s at %d KiB/s: progressing (>= %d "
                   "MiB in the last %g s)" % (n, name, rate,
                                              p.w7_min_bytes >> 20, phase),
                   "count", HIGHER),
            Metric("errors", "errors", "count", LOWER),
            Metric("peak", "peak RSS", "MiB", LOWER),
            Metric("waiting", "no response head at the end", "count", LOWER),
            Metric("phase_min", "slowest download, last %g s" % phase, "MiB",
                   HIGHER),
            Metric("phase_median", "median download, last %g s" % phase,
                   "MiB", HIGHER)]

    def run(self, ctx, name):
        p = ctx.params
        fname, size = p.w7_file
        test_file(ctx, fname, size)
        with ctx.server(name, files=True, workers=p.w7_workers,
                        max_conns=p.max_conns) as srv:
            right = check_file(ctx, srv, fname, size)
            r = slowclient(ctx.slowclient, srv.port, p.w7_n,
                           "/files/" + fname, size, p.w7_chunk,
                           p.w7_every_ms, p.w7_window_s, p.w7_sample_s,
                           p.w7_min_bytes)
            peak = srv.memory_kib("VmHWM") / 1024.0
        return {"progressing": r["progressing"], "errors": r["errors"],
                "peak": peak, "waiting": r["waiting"],
                "phase_min": r["phase_min_mib"],
                "phase_median": r["phase_median_mib"], "ok": r["ok"],
                "complete_right": r["complete_right"], "right": right}


WORKLOADS = [Hello(), Waiting(), Blocking(), SyncMode(), Memory(), Files(),
             SlowReaders()]
