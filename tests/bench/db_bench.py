#!/usr/bin/env python3
"""db_bench.py: waiting on a real database, async against sync against a
peer (issue 14's workload; `make bench` runs it after bench.py).

Starts a throw-away PostgreSQL (tests/integration/pg_harness.py) and
sends N concurrent one-shot GETs (waitclient, one connection each) that
each make the server run SELECT pg_sleep(MS/1000):

  spoke-async  build/spoke --loops 2 with hello.so and pg.so:
               /pg/async, libpq driven by the loop (examples/pg/), a pool
               of N/2 connections per loop, so all N wait at once
  quart        Quart + asyncpg under hypercorn, 2 workers, a pool of N/2
               connections each (peers/quart_pg_app.py), if Debian's
               python3-quart, python3-hypercorn and python3-asyncpg are
               installed
  spoke-sync   the same spoke on /pg/sync: blocking PQexecParams on the
               worker pool (--workers W, default 16), so W at a time: the
               seed's lesson (time.sleep() in a Flask view) measured on a
               real database. Once, after the rounds: it takes N/W sleeps.

spoke-async and quart alternate, A B A B, ROUNDS rounds; each measurement
starts a fresh server and first fills its pool with N requests of
pg_sleep(0.2). Reported: wall time until all N are answered (median,
min..max), errors, p99, peak RSS (VmHWM, summed over the server's
processes), and the ratios quart / spoke-async and spoke-sync /
spoke-async. The Markdown table goes to BUILD/bench/db.md.

    tests/bench/db_bench.py [--build build] [--n 500] [--ms 1000]
                            [--rounds 3] [--workers 16]

Loopback only; every client and server has a deadline and is stopped on
every way out.
"""

import argparse
import math
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))

from clients import waitclient  # noqa: E402
from servers import (PEERS_DIR, SYSTEM_PYTHON, ServerError,  # noqa: E402
                     children, free_port, http_get, kill, proc_kib,
                     python_has, raise_nofile, spawn_server, stop_all)
import pg_harness  # noqa: E402

START_TIMEOUT = 30.0


class Run:
    """One server process tree for one measurement."""

    def __init__(self, argv, log, cwd=None, env=None):
        self.port = free_port()
        self.argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.log = log
        self.cwd = cwd
        self.env = env
        self.proc = None

    def __enter__(self):
        self.proc = spawn_server(self.argv, self.log, cwd=self.cwd,
                                 env=self.env)
        end = time.monotonic() + START_TIMEOUT
        while http_get(self.port, "/hello")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > end:
                kill(self.proc, group=True)
                with open(self.log, errors="replace") as f:
                    tail = f.read()[-2000:]
                raise ServerError("%s did not start:\n%s" % (self.argv[0],
                                                             tail))
            time.sleep(0.02)  # polling for readiness, bounded above
        return self

    def __exit__(self, *exc):
        kill(self.proc, group=True)

    def peak_mib(self):
        pids = [self.proc.pid] + children(self.proc.pid)
        return sum(proc_kib(p, "VmHWM") for p in pids) / 1024.0


def spoke_argv(args, work, pg, pool, extra):
    plugins = os.path.join(work, "plugins")
    if not os.path.isdir(plugins):
        os.makedirs(plugins)
        for so in ("hello.so", "pg.so"):
            shutil.copy(os.path.join(args.build, "plugins", so), plugins)
    conf = os.path.join(work, "spoke.conf")
    with open(conf, "w") as f:
        f.write("[plugin pg]\nconninfo = %s\npool = %d\nqueue = %d\n"
                % (pg.conninfo, pool, args.n * 2))
    return [os.path.join(args.build, "spoke"), "--listen", "127.0.0.1:{port}",
            "--plugins", plugins, "--config", conf, "--loops", "2",
            "--log-level", "warn", "--max-conns", "20000",
            "--max-queue", str(args.n * 2)] + extra


def measure(run, args, path, timeout_s):
    """Warm-up, then N concurrent PATH?ms=MS. The warm-up's N queries
    each hold a connection for 200 ms, so every pool (spoke's opens its
    connections as requests need them; asyncpg's opens min_size at start)
    is full before the measured run, which then times the waits, not the
    connection set-up."""
    waitclient(args.waitclient, run.port, args.n, path + "?ms=200", 60)
    r = waitclient(args.waitclient, run.port, args.n,
                   "%s?ms=%d" % (path, args.ms), timeout_s)
    return {"wall": r["wall_s"], "errors": r["errors"], "p99": r["p99_ms"],
            "ok": r["ok"], "peak": run.peak_mib()}


def summary(name, rows):
    walls = [r["wall"] for r in rows]
    return {"name": name, "wall": statistics.median(walls),
            "min": min(walls), "max": max(walls),
            "errors": sum(r["errors"] for r in rows),
            "p99": statistics.median(r["p99"] for r in rows),
            "peak": max(r["peak"] for r in rows), "rounds": len(rows)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--ms", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=16)
    args = ap.parse_args()
    args.build = os.path.abspath(args.build)
    args.waitclient = os.path.join(args.build, "tests", "bench", "waitclient")
    for p in ("spoke", "plugins/pg.so", "plugins/hello.so",
              "tests/bench/waitclient"):
        if not os.path.exists(os.path.join(args.build, p)):
            sys.exit("%s/%s missing: build first (make build)"
                     % (args.build, p))
    raise_nofile()
    have_quart = python_has("quart", "hypercorn", "asyncpg")
    if not have_quart:
        print("note: quart peer skipped (apt-get install python3-quart "
              "python3-hypercorn python3-asyncpg)")
    half = int(math.ceil(args.n / 2.0))
    pg = pg_harness.Postgres(max_connections=args.n + args.workers + 2 * half
                             + 50)
    work = tempfile.mkdtemp(prefix="spoke-db-bench-")
    dsn = "postgresql://postgres@127.0.0.1:%d/postgres" % pg.port
    sleep_s = args.ms / 1000.0
    results = {"spoke-async": [], "quart": []}
    try:
        for rnd in range(args.rounds):
            with Run(spoke_argv(args, work, pg, half, []),
                     os.path.join(work, "spoke.log")) as run:
                results["spoke-async"].append(
                    measure(run, args, "/pg/async", sleep_s + 30))
            if have_quart:
                with Run([SYSTEM_PYTHON, "-m", "hypercorn", "--workers", "2",
                          "--backlog", "4096", "--bind",
                          "127.0.0.1:{port}", "quart_pg_app:app"],
                         os.path.join(work, "quart.log"), cwd=PEERS_DIR,
                         env={"SPOKE_BENCH_PG_DSN": dsn,
                              "SPOKE_BENCH_PG_POOL": str(half)}) as run:
                    results["quart"].append(
                        measure(run, args, "/pg/async", sleep_s + 30))
            print("round %d: %s" % (rnd + 1, ", ".join(
                "%s %.2f s" % (k, v[-1]["wall"])
                for k, v in results.items() if v)), flush=True)
        sync_timeout = sleep_s * math.ceil(args.n / args.workers) + 60
        with Run(spoke_argv(args, work, pg, half,
                            ["--workers", str(args.workers)]),
                 os.path.join(work, "spoke-sync.log")) as run:
            results["spoke-sync"] = [measure(run, args, "/pg/sync",
                                             sync_timeout)]
    finally:
        stop_all()
        pg.close()
    rows = [summary(k, v) for k, v in results.items() if v]
    base = rows[0]["wall"]
    lines = ["# Waiting on PostgreSQL: %d concurrent pg_sleep(%g)"
             % (args.n, sleep_s), "",
             "| server | wall (median) | min..max | errors | p99 | "
             "peak RSS | wall / spoke-async |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append("| %s | %.2f s | %.2f..%.2f s | %d | %.0f ms | %.1f MiB "
                     "| %.2fx |" % (r["name"], r["wall"], r["min"], r["max"],
                                    r["errors"], r["p99"], r["peak"],
                                    r["wall"] / base))
    lines += ["", "spoke: --loops 2, pool %d per loop; spoke-sync: --workers "
              "%d; quart: hypercorn 2 workers, asyncpg pool %d each; %d "
              "round(s), A B A B; each after a warm-up of %d x pg_sleep(0.2)."
              % (half, args.workers, half, args.rounds, args.n)]
    text = "\n".join(lines) + "\n"
    print(text)
    out = os.path.join(args.build, "bench")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "db.md"), "w") as f:
        f.write(text)
    shutil.rmtree(work, ignore_errors=True)
    return 1 if any(r["errors"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
