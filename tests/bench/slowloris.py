#!/usr/bin/env python3
"""slowloris.py: what 500 slow-header or slow-body connections cost
everyone else.

Starts spoke (build/spoke, hello.so and echo.so) and measures /hello p99
with `wrk -t1 -c32 -d8s --latency`, alternately with no slow clients and
with 500 connections each sending one byte a second, spread over the
second (A B A B, 3 rounds each): of a request head that never ends, then of a request body (a
POST /echo whose head is whole, Content-Length 100000). Then how long one
such connection lives: a slow head with --header-timeout 2s, a slow body
with --body-deadline 2s (from the first byte to the 408).

  tests/bench/slowloris.py [BUILD_DIR]      (needs wrk; loopback only)"""
import os
import re
import resource
import select
import selectors
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
HEAD = b"GET /hello HTTP/1.1\r\nHost: slow\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
BODY_HEAD = (b"POST /echo HTTP/1.1\r\nHost: slow\r\nContent-Length: 100000\r\n"
             b"\r\n")


def start(args):
    d = tempfile.mkdtemp(prefix="spoke-slow-")
    for name in ("hello.so", "echo.so"):
        shutil.copyfile(os.path.join(BUILD, "plugins", name), os.path.join(d, name))
    p = subprocess.Popen([os.path.join(BUILD, "spoke"), "--listen", "127.0.0.1:0",
                          "--plugins", d, "--loops", "2"] + args,
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r"listening on [\d.]+:(\d+)", line)
        if m:
            threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
            return p, int(m.group(1)), d
    raise SystemExit("spoke did not start")


def slow_clients(port, n, stop, body=False):
    """N connections sending a byte a second: of a head that never ends,
    or (BODY) of a body after a whole head."""
    sel = selectors.DefaultSelector()
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    pos = [0] * n
    if body:
        for s in socks:
            s.send(BODY_HEAD)
    # Each client sends once a second, the clients spread evenly over the
    # second (independent clients are not in step; 500 sends in the same
    # millisecond would measure a burst, not slow clients).
    start = time.monotonic()
    while not stop.is_set():
        for i, s in enumerate(socks):
            if stop.is_set():
                break
            due = start + i / n
            if due > time.monotonic():
                stop.wait(due - time.monotonic())
            if body or pos[i] < len(HEAD) - 4:  # never complete the head
                try:
                    s.send(b"b" if body else HEAD[pos[i]:pos[i] + 1])
                    pos[i] += 1
                except OSError:
                    pass
        start += 1.0
        if start > time.monotonic():
            stop.wait(start - time.monotonic())
    for s in socks:
        s.close()
    sel.close()


def p99(port):
    out = subprocess.run(["wrk", "-t1", "-c32", "-d8s", "--latency",
                          "http://127.0.0.1:%d/hello" % port], capture_output=True, text=True).stdout
    v = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    ms = float(v.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[v.group(2)]
    return ms, rps


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    proc, port, d = start([])
    try:
        for kind, body in (("slow-header", False), ("slow-body", True)):
            idle, loaded = [], []
            for _ in range(3):
                idle.append(p99(port))
                stop = threading.Event()
                t = threading.Thread(target=slow_clients,
                                     args=(port, 500, stop, body))
                t.start()
                time.sleep(1.5)  # let all 500 connect and start dripping
                loaded.append(p99(port))
                stop.set()
                t.join()
            med = lambda xs, i: statistics.median(x[i] for x in xs)
            print("/hello p99 with no slow clients: %s ms, median %.2f ms (%.0f req/s)"
                  % (["%.2f" % x[0] for x in idle], med(idle, 0), med(idle, 1)))
            print("/hello p99 with 500 %s clients: %s ms, median %.2f ms (%.0f req/s)"
                  % (kind, ["%.2f" % x[0] for x in loaded], med(loaded, 0), med(loaded, 1)))
            print("%s p99 ratio loaded/idle: %.2f" % (kind, med(loaded, 0) / med(idle, 0)))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(d, ignore_errors=True)

    for kind, args, first, drip in (
            ("slow-header", ["--header-timeout", "2s"], HEAD[:1], HEAD[1:-4]),
            ("slow-body", ["--body-deadline", "2s"], BODY_HEAD, b"b" * 1000)):
        proc, port, d = start(args)
        try:
            lives = []
            for _ in range(5):
                s = socket.create_connection(("127.0.0.1", port))
                t0 = time.monotonic()
                s.send(first)
                got, i = b"", 0
                # A byte a second, as the slow clients do, until spoke answers.
                while time.monotonic() - t0 < 30:
                    if select.select([s], [], [], 1.0)[0]:
                        try:
                            x = s.recv(4096)
                        except OSError:
                            break
                        if not x:
                            break
                        got += x
                    elif i < len(drip):
                        try:
                            s.send(drip[i:i + 1])
                        except OSError:
                            break
                        i += 1
                lives.append(time.monotonic() - t0)
                assert got.startswith(b"HTTP/1.1 408"), got[:40]
                s.close()
            print("%s connection dropped (408) after %s s with %s"
                  % (kind, ["%.2f" % x for x in lives], " ".join(args)))
        finally:
            proc.terminate()
            proc.wait(30)
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
