#!/usr/bin/env python3
"""check_layers.py: core/ is a house of floors; check that every call and
every include points down, and that no two source files call each other
round a circle.

The floors, bottom up (docs/DESIGN.md, "Architecture"):

    base/    buffers, arena, strings, log, paths, status reasons, settings
    plugin/  descriptors, instances, routers, snapshots, admission
    http/    connections, requests, responses, the write path, timeouts,
             dispatch, the worker pool, the I/O loops
    ctl/     the control thread: start-up, signals, reload, watch, admin,
             status, metrics, config
    cli/     main and the subcommands (check, new, rollout)

A file may call into its own floor or the floors below it. Calls are read
from the compiled objects (nm: what each object defines and what it
needs), so a call through a function pointer (a callback a higher floor
installs) is, rightly, not a call. Includes are read from the sources.

The plugins (plugins/, examples/) have no floors, but no two of their
files may call each other round a circle either.

Usage: check_layers.py SOURCE_DIR OBJECT_DIR...   (exit 1 on a violation)
"""
import collections
import os
import re
import subprocess
import sys

FLOORS = ["base", "plugin", "http", "ctl", "cli"]


def floor_of(path):
    """The floor of a file under core/ (core/FLOOR/...), or None."""
    parts = path.replace("\\", "/").split("/")
    for i in range(len(parts) - 2, 0, -1):
        if parts[i - 1] == "core" and parts[i] in FLOORS:
            return parts[i]
    return None


# Sources whose objects are checked: ours, not llhttp's.
OURS = ("core/", "plugins/", "examples/")


def objects(dirs):
    """(unit, source path, path of its .o) for every object of ours under
    DIRS (CMake object directories, TARGET.dir/<source path>.o). Objects
    of one unit link together: the server (spoke_core and spoke), or one
    plugin; a symbol resolves only within its unit."""
    for d in dirs:
        for root, _, files in os.walk(d):
            for f in files:
                if not f.endswith(".c.o"):
                    continue
                path = os.path.join(root, f).replace("\\", "/")
                m = re.search(r"/([^/]+)\.dir/(.+)\.o$", path)
                if m is None or not m.group(2).startswith(OURS):
                    continue
                unit = "spoke" if m.group(1) in ("spoke", "spoke_core") \
                    else m.group(1)
                yield unit, m.group(2), path


def symbols(obj, functions_only=False):
    out = subprocess.run(["nm", obj], capture_output=True, text=True,
                         check=True).stdout
    defined, needed = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in ("TW" if functions_only
                                            else "TDBRCVW"):
            defined.add(parts[2])
        elif len(parts) == 2 and parts[0] == "U":
            needed.add(parts[1])
    return defined, needed


def strongly_connected(nodes, edges):
    """Tarjan's algorithm: the components with more than one file."""
    index, low, on, stack, out, n = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) < 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    src, objdirs = sys.argv[1], sys.argv[2:]
    problems = []

    files = {}
    for unit, name, obj in objects(objdirs):
        files[name] = (unit, obj)
    if not any(floor_of(n) for n in files):
        print("check_layers: no core objects under %s" % " ".join(objdirs))
        return 2
    defs, needs = {}, {}
    for name, (unit, obj) in files.items():
        # In a plugin every file reads the SDK's one shared variable,
        # spoke_host, which SPOKE_PLUGIN defines beside the descriptor:
        # that is the SDK's shape, not a call. Plugins are checked for
        # calls; the server for every symbol, data too.
        d, u = symbols(obj, functions_only=(unit != "spoke"))
        needs[name] = u
        for sym in d:
            defs[(unit, sym)] = name
    calls = collections.defaultdict(lambda: collections.defaultdict(set))
    for a, syms in needs.items():
        for sym in syms:
            b = defs.get((files[a][0], sym))
            if b is not None and b != a:
                calls[a][b].add(sym)
    for a in sorted(calls):
        for b in sorted(calls[a]):
            fa, fb = floor_of(a), floor_of(b)
            if fa is not None and fb is not None and \
                    FLOORS.index(fb) > FLOORS.index(fa):
                problems.append("%s calls up into %s: %s" % (
                    a, b, ", ".join(sorted(calls[a][b]))))
    for comp in strongly_connected(files.keys(), calls):
        ties = ["%s -> %s (%s)" % (a, b, ", ".join(sorted(calls[a][b])))
                for a in comp for b in comp if b in calls.get(a, {})]
        problems.append("call cycle among %s:\n    %s" % (
            ", ".join(comp), "\n    ".join(ties)))

    inc = re.compile(r'^\s*#\s*include\s+"([a-z]+)/[^"]+"', re.M)
    core = os.path.join(src, "core")
    for root, _, fs in os.walk(core):
        for f in sorted(fs):
            if not f.endswith((".c", ".h")):
                continue
            path = os.path.join(root, f)
            fa = floor_of(path)
            if fa is None:
                problems.append("%s: outside every floor" % path)
                continue
            with open(path, encoding="utf-8") as fh:
                for m in inc.finditer(fh.read()):
                    fb = m.group(1)
                    if fb in FLOORS and FLOORS.index(fb) > FLOORS.index(fa):
                        problems.append("%s/%s includes %s/: a floor above" %
                                        (fa, f, fb))

    for p in problems:
        print("check_layers: " + p)
    nfiles, ncalls = len(files), sum(len(v) for v in calls.values())
    if problems:
        print("check_layers: %d problem(s) in %d files" % (len(problems),
                                                          nfiles))
        return 1
    print("check_layers: %d files, %d file-to-file call edges, all pointing "
          "down, no cycle" % (nfiles, ncalls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
