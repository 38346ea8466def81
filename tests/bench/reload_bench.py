#!/usr/bin/env python3
"""reload_bench.py: what hot reload costs, measured on a running spoke.

  1. latency: from the rename of versioned.so to the first response from
     the new version (polling /v/async on a keep-alive connection), over
     100 reloads: median and max;
  2. /hello requests/s under wrk (-t1 -c64) with versioned.so replaced
     every 100 ms, against no reloads, alternated A B A B in one run;
  3. spoke's RSS after 50 and after 1000 reload cycles.

  tests/bench/reload_bench.py [BUILD_DIR]     (default build/; needs wrk)
Load goes to 127.0.0.1 only and every phase stops by itself."""
import os
import re
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
V = [os.path.join(BUILD, "tests", "plugins", "versioned_v%d.so" % n) for n in (1, 2)]


def recv(sock):
    data = sock.recv(4096)
    if not data:
        raise ConnectionError("server closed the connection")
    return data


def get(sock, path):
    sock.sendall(b"GET %s HTTP/1.1\r\nHost: b\r\n\r\n" % path.encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += recv(sock)
    head, rest = buf.split(b"\r\n\r\n", 1)
    n = int(re.search(rb"Content-Length: (\d+)", head).group(1))
    while len(rest) < n:
        rest += recv(sock)
    return rest[:n]


class Client:
    """One keep-alive connection, opened again when spoke closes it (it
    does after --max-requests, 1000 by default; the polling below makes
    that many requests in well under a second)."""

    def __init__(self, port):
        self.port = port
        self.sock = None

    def get(self, path):
        for _ in range(2):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port))
            try:
                return get(self.sock, path)
            except ConnectionError:
                self.sock.close()
                self.sock = None
        raise ConnectionError("GET %s: connection closed twice" % path)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def main():
    work = tempfile.mkdtemp(prefix="spoke-bench-")
    plugins, stage = os.path.join(work, "plugins"), os.path.join(work, "stage")
    os.makedirs(plugins)
    os.makedirs(stage)
    shutil.copyfile(V[0], os.path.join(plugins, "versioned.so"))
    shutil.copyfile(os.path.join(BUILD, "plugins", "hello.so"), os.path.join(plugins, "hello.so"))
    proc = subprocess.Popen([os.path.join(BUILD, "spoke"), "--listen", "127.0.0.1:0",
                             "--plugins", plugins, "--loops", "2", "--log-level", "warn",
                             "--processes", "0"],  # one process: its RSS is the server's
                            stderr=subprocess.PIPE, text=True)
    # warn level hides "listening on"; find the port from the socket table.
    port = None
    for _ in range(100):
        out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
        m = re.search(r"127\.0\.0\.1:(\d+).*pid=%d," % proc.pid, out)
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    assert port, "spoke did not start"
    n = [0]

    def replace():
        n[0] += 1
        tmp = os.path.join(stage, "v.so")
        shutil.copyfile(V[n[0] % 2], tmp)
        os.rename(tmp, os.path.join(plugins, "versioned.so"))
        return b"v%d\n" % (n[0] % 2 + 1)

    try:
        c = Client(port)
        c.get("/hello")
        rss_start = rss_kib(proc.pid)
        lat = []
        for _ in range(100):
            want = replace()
            t0 = time.monotonic()
            while c.get("/v/async") != want:
                pass
            lat.append((time.monotonic() - t0) * 1000)
        print("reload latency over 100 reloads: median %.1f ms, max %.1f ms (debounce 20 ms included)"
              % (statistics.median(lat), max(lat)))

        def wrk():
            out = subprocess.run(["wrk", "-t1", "-c64", "-d8s", "http://127.0.0.1:%d/hello" % port],
                                 capture_output=True, text=True).stdout
            return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

        quiet, busy = [], []
        for _ in range(3):
            quiet.append(wrk())
            stop = threading.Event()

            def reloader():
                while not stop.is_set():
                    replace()
                    stop.wait(0.1)
            t = threading.Thread(target=reloader)
            t.start()
            busy.append(wrk())
            stop.set()
            t.join()
        print("/hello req/s, no reloads: %s  median %.0f" % (["%.0f" % x for x in quiet], statistics.median(quiet)))
        print("/hello req/s, reload every 100 ms: %s  median %.0f" % (["%.0f" % x for x in busy], statistics.median(busy)))
        print("ratio with/without reloads: %.3f" % (statistics.median(busy) / statistics.median(quiet)))

        # RSS: cycles counted from here, each waited for.
        def cycles(k):
            for _ in range(k):
                want = replace()
                while c.get("/v/async") != want:
                    pass
        base = rss_kib(proc.pid)
        cycles(50)
        r50 = rss_kib(proc.pid)
        cycles(950)
        r1000 = rss_kib(proc.pid)
        print("RSS: %d KiB at start, %d KiB after the %d reloads above, then %d KiB after 50 more "
              "reload cycles and %d KiB after 1000" % (rss_start, base, n[0] - 1000, r50, r1000))
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
