#!/usr/bin/env python3
"""bench.py: spoke's benchmark suite, the one entry point (`make bench`).

Runs every workload (workloads.py: W1 hello, W2 waiting, W3 blocking,
W4 sync mode, W5 memory, W6 files, W7 slow readers) against spoke and
each peer that has its routes (servers.py: nginx, lighttpd, Flask under
gunicorn, Quart under hypercorn), alternated within each round (spoke,
nginx, lighttpd, flask, quart, then again), each measurement on a fresh
server process on 127.0.0.1. Then prints a table of medians and
ratios to spoke with PASS/MISS per target, and writes OUT/results.md,
OUT/results.json and OUT/chart.png (report.py).

    tests/bench/bench.py [--rounds N] [--only W1,W3] [--peers nginx,flask]
                         [--build build] [--out build/bench] [--smoke]
                         [--compare-build DIR]

--compare-build DIR adds the peer spoke-without: DIR/spoke (a build with
-DSPOKE_CALL_MARKER=OFF) run with --stall-warn 0, alternated with spoke
as any peer is, to measure what the per-call marker and the watchdog
cost; the only peer unless --peers names others. Prints each server's
min..max besides the medians.

--smoke is the 30-second version that ctest runs (bench_smoke): spoke,
nginx and lighttpd (left out, with a note, when it is not installed), one
round, small sizes. It checks behaviour, never timings: every workload
ran, every request that should succeed did, the overflow got 503 with
Retry-After, every file and slow download had the right bytes, the
Markdown was written. It exits 77 (ctest's skip) when wrk or nginx is not
installed, 1 when a check fails.

Bounded: every client has a deadline, every measurement stops its server,
and no measurement starts once --budget seconds are spent. Every process
started here is stopped on every way out (Ctrl-C and SIGTERM included).
Python 3 standard library only.
"""

import argparse
import os
import resource
import shutil
import signal
import sys
import tempfile
import time

from clients import ClientError
from report import Results, fmt, spread_text, write_all
from servers import SERVERS, ServerError, missing, raise_nofile, stop_all
from workloads import WORKLOADS, Params

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SKIP = 77
PEERS = ("nginx", "lighttpd", "flask", "quart")
OPTIONAL_IN_SMOKE = ("lighttpd",)  # left out with a note when missing


class Ctx:
    """What every workload needs: where things are, the sizes, results."""

    def __init__(self, args, params, servers, workloads):
        self.build = os.path.abspath(args.build)
        self.compare_build = args.compare_build and os.path.abspath(
            args.compare_build)
        self.waitclient = os.path.join(self.build, "tests", "bench",
                                       "waitclient")
        self.slowclient = os.path.join(self.build, "tests", "bench",
                                       "slowclient")
        self.files = {}  # W6/W7 test files made so far: name -> SHA-256
        self.smoke = args.smoke
        self.params = params
        self.workloads = workloads
        self.results = Results(servers)
        self.work = tempfile.mkdtemp(prefix="spoke-suite-")
        os.chmod(self.work, 0o755)
        with open("/proc/loadavg") as f:
            self.load_at_start = " ".join(f.read().split()[:3])

    def server(self, name, **opts):
        return SERVERS[name](self, **opts)


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description="spoke's benchmark suite against nginx, lighttpd, "
        "Flask, Quart")
    ap.add_argument("--build", default=os.path.join(ROOT, "build"),
                    help="build tree with spoke, plugins/, waitclient")
    ap.add_argument("--out", help="output directory (default BUILD/bench, "
                    "BUILD/bench-smoke with --smoke)")
    ap.add_argument("--rounds", type=int, help="rounds (default 3)")
    ap.add_argument("--only", help="workloads, e.g. W1,W3 (default all)")
    ap.add_argument("--peers", help="peers besides spoke, e.g. nginx,flask "
                    "(default nginx,lighttpd,flask,quart; nginx,lighttpd "
                    "with --smoke)")
    ap.add_argument("--smoke", action="store_true",
                    help="the 30-second behaviour check (ctest bench_smoke)")
    ap.add_argument("--budget", type=float,
                    help="seconds after which no measurement starts "
                    "(default 1500, 90 with --smoke)")
    ap.add_argument("--compare-build", metavar="DIR",
                    help="a -DSPOKE_CALL_MARKER=OFF build tree: adds the "
                    "peer spoke-without (its spoke, --stall-warn 0)")
    args = ap.parse_args(argv)
    args.out = args.out or os.path.join(
        args.build, "bench-smoke" if args.smoke else "bench")
    args.budget = args.budget or (90.0 if args.smoke else 1500.0)
    return args


def choose(args):
    """(servers, workloads) to run, or exits: with a message on a bad
    request or a missing build, 77 (--smoke) or 1 when a needed tool or
    peer is missing."""
    fail = SKIP if args.smoke else 1
    for path in ("spoke", "plugins/hello.so", "plugins/sleep.so",
                 "plugins/static.so", "tests/bench/waitclient",
                 "tests/bench/slowclient"):
        if not os.path.exists(os.path.join(args.build, path)):
            sys.exit("%s/%s missing: build first (make build)"
                     % (args.build, path))
    for path in ("spoke", "plugins/hello.so", "plugins/sleep.so"):
        if args.compare_build and not os.path.exists(
                os.path.join(args.compare_build, path)):
            sys.exit("%s/%s missing: build it first (--compare-build)"
                     % (args.compare_build, path))
    if shutil.which("wrk") is None:
        print("SKIP: wrk not installed (apt-get install wrk)")
        sys.exit(fail)
    wanted = (args.peers or ("nginx,lighttpd" if args.smoke else
                             "" if args.compare_build else ",".join(PEERS)))
    peers = [p for p in wanted.split(",") if p]
    if any(p not in PEERS for p in peers):
        sys.exit("unknown peer in --peers %s (known: %s)"
                 % (wanted, ", ".join(PEERS)))
    servers = ["spoke"] + (["spoke-without"] if args.compare_build else [])
    for p in peers:
        why = missing(p)
        if why and ((args.smoke and p not in OPTIONAL_IN_SMOKE)
                    or p == "nginx"):
            print("SKIP: " + why)
            sys.exit(fail)
        if why:
            print("note: %s left out: %s" % (p, why))
        else:
            servers.append(p)
    ids = (args.only or ",".join(w.id for w in WORKLOADS)).upper().split(",")
    workloads = [w for w in WORKLOADS if w.id in ids]
    if len(workloads) != len(set(ids)):
        sys.exit("unknown workload in --only %s" % args.only)
    return servers, workloads


def summary(wl, params, values):
    shown = []
    for m in wl.metrics(params)[:4]:
        if values.get(m.key) is not None:
            unit = "" if m.unit == "count" else " " + m.unit
            shown.append("%s %s%s" % (m.label, fmt(values[m.key], m.unit),
                                      unit))
    return "; ".join(shown)


def measure(ctx, wl, name, rnd, t0):
    """One server, one round of one workload; failures become notes."""
    tag = "%s round %d/%d %s" % (wl.id, rnd + 1, ctx.params.rounds, name)
    try:
        values = wl.run(ctx, name)
    except (ServerError, ClientError, OSError, ValueError, KeyError) as e:
        ctx.results.notes.append("%s failed: %s"
                                 % (tag, str(e).replace("\n", " | ")))
        print("[%4.0fs] %s: FAILED: %s" % (time.monotonic() - t0, tag, e),
              flush=True)
        return False
    ctx.results.add(wl.id, name, values)
    print("[%4.0fs] %s: %s" % (time.monotonic() - t0, tag,
                               summary(wl, ctx.params, values)), flush=True)
    return True


def run(ctx, budget, t0):
    """Every workload, round by round, servers alternated. Returns False
    when a spoke measurement failed."""
    spoke_ok = True
    for wl in ctx.workloads:
        names = [s for s in ctx.results.servers if wl.applies(SERVERS[s])]
        ctx.results.ran[wl.id] = names
        for rnd in range(ctx.params.rounds):
            for name in names:
                if time.monotonic() - t0 > budget:
                    ctx.results.notes.append(
                        "budget of %.0f s spent: %s round %d %s and what "
                        "follows not run" % (budget, wl.id, rnd + 1, name))
                    return spoke_ok
                ok = measure(ctx, wl, name, rnd, t0)
                spoke_ok = spoke_ok and (ok or name != "spoke")
    return spoke_ok


# ---- the smoke run's checks -------------------------------------------------

def expect(problems, cond, what):
    if not cond:
        problems.append(what)


def smoke_problems(ctx, written):
    """What the smoke run did not do, as a list of sentences."""
    res, p, out = ctx.results, ctx.params, []
    for wl in ctx.workloads:
        expect(out, wl.id in res.ran, "%s never started" % wl.id)
        for s in res.ran.get(wl.id, ()):
            expect(out, any(res.all(wl.id, m.key, s)
                            for m in wl.metrics(p)),
                   "%s did not run on %s" % (wl.id, s))
            for key, want, what in smoke_checks(wl.id, p, s):
                got = res.all(wl.id, key, s)  # one value per round
                expect(out, got and all(want(v) for v in got),
                       "%s %s: %s (got %r)" % (wl.id, s, what, got))
    md = next((w for w in written if w.endswith("results.md")), None)
    expect(out, md is not None and os.path.getsize(md) > 0,
           "results.md not written")
    if md:
        with open(md) as f:
            text = f.read()
        for wl in ctx.workloads:
            expect(out, "**%s " % wl.id in text, "results.md lacks %s" % wl.id)
    return out


def positive(v):
    return v > 0


def zero(v):
    return v == 0


def equals(n):
    return lambda v: v == n


def smoke_checks(wid, p, server):
    """[(metric key, predicate, what it means)] for one workload's smoke
    run on one server."""
    if wid == "W1":
        return [("requests", positive, "requests answered"),
                ("errors", zero, "no errors"),
                ("pipe_requests", positive, "pipelined requests answered"),
                ("pipe_errors", zero, "no pipelined errors")]
    if wid == "W2":
        return sum(([("n%d_ok" % n, equals(n), "all %d answered 200" % n),
                     ("n%d_errors" % n, zero, "no errors")]
                    for n in p.w2_ns), [])
    if wid == "W3":
        out = [("busy_requests", positive, "/hello served while saturated"),
               ("idle_errors", zero, "no /hello errors when idle"),
               ("sync_ok", equals(p.w3_n), "every queued sync request 200")]
        if server == "spoke":  # the bounded queue
            out += [("q_503", positive, "overflow answered 503"),
                    ("q_errors", zero, "no errors past the queue")]
        return out
    if wid == "W4":
        return [("sync_requests", positive, "/hello/sync answered"),
                ("sync_errors", zero, "no /hello/sync errors"),
                ("async_errors", zero, "no /hello errors")]
    if wid == "W5":
        return [("held", equals(p.w5_n), "every connection held"),
                ("errors", zero, "no errors")]
    if wid == "W6":
        return sum(([(f + "_right", equals(1), "/files/%s: its bytes" % f),
                     (f + "_requests", positive, "/files/%s answered" % f),
                     (f + "_errors", zero, "/files/%s: no errors" % f)]
                    for f, _, _ in p.w6_files), [])
    n = p.w7_n
    return [("right", equals(1), "/files/%s: its bytes" % p.w7_file[0]),
            ("ok", equals(n), "all %d slow downloads answered 200" % n),
            ("complete_right", equals(n),
             "all %d slow downloads whole, of the right length" % n),
            ("errors", zero, "no slow download failed")]


def retry_after_problems(ctx):
    """Every 503 past --max-queue carries Retry-After."""
    a = ctx.results.all("W3", "q_503", "spoke")
    b = ctx.results.all("W3", "q_retry", "spoke")
    return [] if a == b else ["W3 spoke: 503s %s but with Retry-After %s"
                              % (a, b)]


def on_signal(signum, frame):
    raise KeyboardInterrupt("signal %d" % signum)


def main(argv):
    args = parse_args(argv)
    servers, workloads = choose(args)
    params = Params(smoke=args.smoke)
    if args.rounds:
        params.rounds = args.rounds
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    raise_nofile()
    ctx = Ctx(args, params, servers, workloads)
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit < max(max(params.w2_ns), params.w5_n) + 1000:
        ctx.results.notes.append("open-files limit %d: too low for the "
                                 "largest workloads" % limit)
    t0 = time.monotonic()
    keep_work = False
    try:
        print("spoke benchmarks: %s; servers %s; %d round(s); load average "
              "%s; logs in %s"
              % (", ".join(w.id for w in workloads), ", ".join(servers),
                 params.rounds, ctx.load_at_start, ctx.work), flush=True)
        spoke_ok = run(ctx, args.budget, t0)
        written = write_all(ctx, args.out, time.monotonic() - t0)
        if args.compare_build:
            print(spread_text(ctx.results, workloads, params))
        print("\nwrote %s (%.0f s)" % (", ".join(written),
                                       time.monotonic() - t0))
        keep_work = bool(ctx.results.notes)
        if args.smoke:
            problems = smoke_problems(ctx, written) + \
                retry_after_problems(ctx)
            for pr in problems:
                print("FAIL: " + pr)
            keep_work = keep_work or bool(problems)
            print("bench smoke: %s" % ("FAILED" if problems else "ok"))
            return 1 if problems else 0
        return 0 if spoke_ok else 1
    finally:
        stop_all()
        if keep_work:
            print("logs kept in " + ctx.work)
        else:
            shutil.rmtree(ctx.work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        stop_all()
        print("\ninterrupted: every server and client stopped")
        sys.exit(130)
