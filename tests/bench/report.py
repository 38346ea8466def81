"""report.py: what a benchmark run found, as a table, Markdown and a chart.

Results keeps every round's value of every metric per server; the table
shows each server's median and, for the peers, its ratio to spoke's
median (peer / spoke, whatever the direction: the "better" column says
which way is good). "n/a" means the server has no equivalent endpoint
(or was not asked for); "failed" that every round of it failed (see the
notes). The targets are checked on spoke's medians, and "every round"
where a target says so, and printed PASS or MISS; they are goals to
report, never assertions.

Outputs: the table on stdout; OUT/results.md (the table, the targets,
the machine and versions, the notes); OUT/results.json (every round's
raw values); OUT/chart.png through gnuplot, when gnuplot is installed.
"""

import json
import os
import shutil
import statistics
import subprocess
import time

from servers import LIGHTTPD, SERVERS, SYSTEM_PYTHON, nginx_binary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


class Results:
    def __init__(self, servers):
        self.servers = servers          # column order, spoke first
        self.values = {}                # (wid, key) -> {server: [values]}
        self.ran = {}                   # wid -> servers that took part
        self.notes = []

    def add(self, wid, server, values):
        for key, v in values.items():
            if v is not None:
                self.values.setdefault((wid, key), {}).setdefault(
                    server, []).append(v)

    def all(self, wid, key, server):
        return self.values.get((wid, key), {}).get(server, [])

    def median(self, wid, key, server):
        vs = self.all(wid, key, server)
        return statistics.median(vs) if vs else None


# ---- numbers as text -------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "-"
    if unit in ("req/s", "count"):
        return format(round(v), ",")
    if unit == "ms":
        return "%.0f" % v if v >= 100 else "%.2f" % v
    if unit == "s":
        return "%.3f" % v
    return "%.2f" % v if unit in ("x", "KiB") else "%.1f" % v


def cell(results, wl, metric, server):
    if server not in results.ran.get(wl.id, ()):
        return "n/a"
    v = results.median(wl.id, metric.key, server)
    if v is None:
        ok = any(results.all(wl.id, k, server)
                 for (w, k) in results.values if w == wl.id)
        return "n/a" if ok else "failed"
    text = fmt(v, metric.unit)
    base = results.median(wl.id, metric.key, "spoke")
    if server != "spoke" and base:
        text += " (%.2fx)" % (v / base)
    return text


def table_rows(results, workloads, params):
    """[(section title or None, [cells])]: one row per metric."""
    rows = []
    for wl in workloads:
        if wl.id not in results.ran:
            continue
        rows.append(("%s %s" % (wl.id, wl.title), None))
        for m in wl.metrics(params):
            rows.append((None, [m.label, m.unit, m.better or ""]
                         + [cell(results, wl, m, s) for s in results.servers]))
    return rows


def spread_text(results, workloads, params):
    """Each server's min..max over the rounds, per metric with a unit of
    req/s or ms: how far apart the rounds were (bench.py --compare-build)."""
    out = ["min..max over the rounds:"]
    for wl in workloads:
        for m in wl.metrics(params):
            if m.unit not in ("req/s", "ms"):
                continue
            for s in results.servers:
                vs = results.all(wl.id, m.key, s)
                if vs:
                    out.append("  %s %s, %s: %s..%s %s (%d rounds)" % (
                        wl.id, m.label, s, fmt(min(vs), m.unit),
                        fmt(max(vs), m.unit), m.unit, len(vs)))
    return "\n".join(out)


def header(results):
    return ["metric", "unit", "better"] + [
        s if s == "spoke" else "%s (x spoke)" % s for s in results.servers]


def text_table(results, workloads, params):
    head = header(results)
    rows = table_rows(results, workloads, params)
    widths = [len(h) for h in head]
    for title, cells in rows:
        for i, c in enumerate(cells or []):
            widths[i] = max(widths[i], len(c))
    line = lambda cs: "  ".join(c.ljust(w) if i < 3 else c.rjust(w)
                                for i, (c, w) in enumerate(zip(cs, widths)))
    out = [line(head), "  ".join("-" * w for w in widths)]
    for title, cells in rows:
        out.append(title if cells is None else line(cells))
    return "\n".join(out)


def markdown_table(results, workloads, params):
    head = header(results)
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join([" --- "] * 3 + [" ---: "] * (len(head) - 3)) + "|"]
    for title, cells in table_rows(results, workloads, params):
        if cells is None:
            out.append("| **%s** |%s" % (title, " |" * (len(head) - 1)))
        else:
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


# ---- targets ---------------------------------------------------------------

def verdict(ok):
    return "n/a" if ok is None else ("PASS" if ok else "MISS")


def ratio_target(res, wid, key, unit, peer, want, higher=True):
    a, b = res.median(wid, key, "spoke"), res.median(wid, key, peer)
    if a is None or not b:
        return None, "not measured"
    r = a / b
    ok = r >= want if higher else r <= want
    return ok, "%.2fx %s (%s vs %s %s)" % (r, peer, fmt(a, unit),
                                          fmt(b, unit), unit)


def limit_target(res, wid, key, limit, unit):
    v = res.median(wid, key, "spoke")
    if v is None:
        return None, "not measured"
    return v <= limit, "%s %s (limit %s)" % (fmt(v, unit), unit, limit)


def targets(res, params):
    """[(target, verdict, detail)] for spoke."""
    n = max(params.w2_ns)
    k = "n%d_" % n
    out = []

    def add(label, ok_detail):
        out.append((label, verdict(ok_detail[0]), ok_detail[1]))

    add("W1 /hello req/s >= 1.0x nginx",
        ratio_target(res, "W1", "rps", "req/s", "nginx", 1.0))
    add("W1 /hello p99 no worse than nginx",
        ratio_target(res, "W1", "p99", "ms", "nginx", 1.0, higher=False))
    add("W1 pipelined req/s >= 1.0x nginx",
        ratio_target(res, "W1", "pipe_rps", "req/s", "nginx", 1.0))
    oks, errs = res.all("W2", k + "ok", "spoke"), res.all("W2", k + "errors",
                                                          "spoke")
    add("W2 %s waits: all answered, 0 errors, every round" % format(n, ","),
        (None, "not measured") if not oks else
        (all(o == n for o in oks) and not any(errs),
         "answered %s, errors %s" % (oks, errs)))
    add("W2 %s waits: wall <= 2.5 s" % format(n, ","),
        limit_target(res, "W2", k + "wall", 2.5, "s"))
    add("W2 %s waits: peak RSS <= 64 MiB" % format(n, ","),
        limit_target(res, "W2", k + "peak", 64, "MiB"))
    add("W3 /hello p99 saturated <= 2x idle",
        limit_target(res, "W3", "busy_ratio", 2.0, "x"))
    q503, qra = res.all("W3", "q_503", "spoke"), res.all("W3", "q_retry",
                                                         "spoke")
    add("W3 overflow past --max-queue: 503 with Retry-After, every round",
        (None, "not measured") if not q503 else
        (all(a > 0 and a == b for a, b in zip(q503, qra)),
         "503s %s, with Retry-After %s" % (q503, qra)))
    add("W4 /hello/sync >= 0.5x /hello",
        (lambda v: (None, "not measured") if v is None else
         (v >= 0.5, "%.2fx" % v))(res.median("W4", "sync_ratio", "spoke")))
    add("W5 <= 2 KiB per idle connection",
        limit_target(res, "W5", "per_conn", 2.0, "KiB"))
    # issue 15: files at least as fast as nginx's sendfile, the largest
    # within 5%
    for name, _, _ in params.w6_files:
        want = 0.95 if name == "20MB" else 1.0
        add("W6 /files/%s req/s >= %.2gx nginx" % (name, want),
            ratio_target(res, "W6", name + "_rps", "req/s", "nginx", want))
    n = params.w7_n
    prog = res.all("W7", "progressing", "spoke")
    errs = res.all("W7", "errors", "spoke")
    add("W7 all %s slow downloads progressing at once, 0 errors, every "
        "round" % format(n, ","),
        (None, "not measured") if not prog else
        (all(v == n for v in prog) and not any(errs),
         "progressing %s, errors %s" % (prog, errs)))
    return out


def targets_text(rows):
    w = max(len(r[0]) for r in rows)
    return "\n".join("%s  %-4s  %s" % (r[0].ljust(w), r[1], r[2])
                     for r in rows)


def targets_markdown(rows):
    return "\n".join(["| target (spoke) | result | measured |",
                      "| --- | --- | --- |"]
                     + ["| %s | %s | %s |" % r for r in rows])


# ---- machine and versions --------------------------------------------------

def run_text(argv):
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return (p.stdout.strip() or p.stderr.strip()).splitlines()[0] \
        if (p.stdout.strip() or p.stderr.strip()) else "?"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def python_versions():
    code = ("import importlib.metadata as m\n"
            "for d in ('flask', 'gunicorn', 'quart', 'hypercorn'):\n"
            "    try: print(d, m.version(d))\n"
            "    except Exception: print(d, 'missing')\n")
    try:
        p = subprocess.run([SYSTEM_PYTHON, "-c", code], capture_output=True,
                           text=True, timeout=20)
        return ", ".join(p.stdout.split("\n")[:4]).strip(", ")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine(ctx):
    commit = run_text(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    dirty = run_text(["git", "-C", ROOT, "status", "--porcelain"])
    return [
        ("date", time.strftime("%Y-%m-%d %H:%M:%S %Z")),
        ("machine", "%d CPUs (nproc), %s, kernel %s" % (
            os.cpu_count(), cpu_model(), os.uname().release)),
        ("load average at start", ctx.load_at_start),
        ("spoke", "%s, commit %s%s" % (
            run_text([os.path.join(ctx.build, "spoke"), "--version"]), commit,
            " + uncommitted changes" if dirty not in ("", "?") else "")),
        ("nginx", run_text([nginx_binary() or "nginx", "-v"])),
        ("lighttpd", run_text([LIGHTTPD, "-v"])),
        ("wrk", run_text(["wrk", "-v"])),
        ("python peers", python_versions()),
        ("run", "%d round(s), servers %s, workloads %s, %s" % (
            ctx.params.rounds, ", ".join(ctx.results.servers),
            ", ".join(w.id for w in ctx.workloads),
            "smoke" if ctx.smoke else "full")),
    ]


def markdown(ctx, table_md, targets_md, elapsed_s):
    p = ctx.params
    lines = ["# spoke benchmarks", "",
             "Medians of %d round(s), servers alternated within each round "
             "(A B A B), each measurement on a fresh server process; a "
             "peer's cell gives its ratio to spoke's median. A wall time at "
             "the client's timeout (%g s in W2, %g s in W3) means requests "
             "were still unanswered when it gave up: they count as errors."
             % (p.rounds, p.w2_timeout, p.w3_timeout), "", table_md, "",
             "## Targets", "", targets_md, "", "## Servers", ""]
    lines += ["- %s: %s" % (s, SERVERS[s].about) for s in ctx.results.servers]
    lines += ["", "## Machine", ""]
    lines += ["- %s: %s" % kv for kv in machine(ctx)]
    lines += ["- total run time: %.0f s" % elapsed_s, ""]
    if ctx.results.notes:
        lines += ["## Notes", ""] + ["- " + n for n in ctx.results.notes]
    return "\n".join(lines) + "\n"


# ---- chart -----------------------------------------------------------------

CHART_HEAD = """\
set terminal %(term)s size %(width)d,520 font ",10"
set output "%(png)s"
set datafile missing "?"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set grid ytics
set key top right
set multiplot layout 1,%(panels)d title "spoke benchmarks (medians; %(when)s)"
"""

W1_PANEL = """\
set title "W1 /hello throughput"
set ylabel "requests/s (log scale)"
set logscale y
set format y "%%.0s%%c"
plot "%(dat)s" using 2:xtic(1) title "keep-alive", \\
     "" using 3 title "pipelined x%(depth)d"
unset logscale y
set format y "%%g"
"""

W2_PANEL = """\
set title "W2 concurrent /sleep/async?ms=%(ms)d"
set ylabel "wall time until all answered (s)"
set yrange [0:%(top)g]
set arrow from graph 0, first %(timeout)g to graph 1, first %(timeout)g \\
    nohead dashtype 2
set label "client timeout: not all answered" at graph 0.02, \\
    first %(timeout)g offset 0,0.7
plot %(plots)s
"""


def chart_data(res, p, path):
    """chart.dat: one line per server, "?" where there is no value."""
    with open(path, "w") as f:
        f.write("# server w1_rps w1_pipelined_rps %s\n" % " ".join(
            "w2_wall_n%d" % n for n in p.w2_ns))
        for s in res.servers:
            vals = [res.median("W1", "rps", s),
                    res.median("W1", "pipe_rps", s)]
            vals += [res.median("W2", "n%d_wall" % n, s) for n in p.w2_ns]
            f.write("%s %s\n" % (s, " ".join(
                "?" if v is None else "%g" % v for v in vals)))


def chart_script(res, p, dat, png, term):
    """The gnuplot script: one panel per workload that ran, or None."""
    panels = []
    if res.values.get(("W1", "rps")):
        panels.append(W1_PANEL % {"dat": dat, "depth": p.pipe_depth})
    if any(res.values.get(("W2", "n%d_wall" % n)) for n in p.w2_ns):
        plots = ", ".join('"%s" using %d%s title "N=%s"' % (
            dat, 4 + i, ":xtic(1)" if i == 0 else "", format(n, ","))
            for i, n in enumerate(p.w2_ns))
        panels.append(W2_PANEL % {"ms": p.sleep_ms, "top": p.w2_timeout * 1.15,
                                  "timeout": p.w2_timeout, "plots": plots})
    if not panels:
        return None
    head = CHART_HEAD % {"term": term, "png": png, "panels": len(panels),
                         "width": 600 * len(panels),
                         "when": time.strftime("%Y-%m-%d")}
    return head + "".join(panels) + "unset multiplot\n"


def chart(ctx, out_dir):
    """Writes OUT/chart.png (W1 and W2 bars); returns its path, or None
    without gnuplot or without data for it."""
    gnuplot = shutil.which("gnuplot")
    if gnuplot is None:
        ctx.results.notes.append("no chart: gnuplot not installed "
                                 "(apt-get install gnuplot-nox)")
        return None
    dat = os.path.join(out_dir, "chart.dat")
    png = os.path.join(out_dir, "chart.png")
    if os.path.exists(png):
        os.remove(png)  # never leave an old run's chart behind
    chart_data(ctx.results, ctx.params, dat)
    term = "pngcairo" if "pngcairo" in run_text(
        [gnuplot, "-e", "set terminal pngcairo; print 'pngcairo'"]) else "png"
    script = chart_script(ctx.results, ctx.params, dat, png, term)
    if script is None:
        return None
    gp = os.path.join(out_dir, "chart.gp")
    with open(gp, "w") as f:
        f.write(script)
    r = subprocess.run([gnuplot, gp], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 0 or not os.path.exists(png):
        ctx.results.notes.append("gnuplot failed: " + r.stderr.strip())
        return None
    return png


def write_all(ctx, out_dir, elapsed_s):
    """Prints the table and targets; writes results.md/.json and the
    chart. Returns the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    res, p = ctx.results, ctx.params
    tgt = targets(res, p)
    print()
    print(text_table(res, ctx.workloads, p))
    print()
    print(targets_text(tgt))
    png = chart(ctx, out_dir)
    raw = os.path.join(out_dir, "results.json")
    with open(raw, "w") as f:
        json.dump({"%s.%s" % k: v for k, v in res.values.items()}, f,
                  indent=1, sort_keys=True)
    md = os.path.join(out_dir, "results.md")
    with open(md, "w") as f:
        f.write(markdown(ctx, markdown_table(res, ctx.workloads, p),
                         targets_markdown(tgt), elapsed_s))
    for n in res.notes:
        print("note: " + n)
    return [x for x in (md, raw, png) if x]
