"""clients.py: the load generators of the benchmarks, run and read.

  wrk         Debian's wrk: keep-alive load (-t1 -c64 by default), with
              --latency for the percentiles, optionally pipelined through
              pipeline.lua. parse_wrk() reads its report into numbers.
  waitclient  our C client (waitclient.c, built into BUILD/tests/bench):
              N concurrent one-shot requests, one JSON line back; with
              hold() the connections stay open until released.
  slowclient  our other C client (slowclient.c, built beside it): N
              downloads each read at a bounded rate, one JSON line back.
  fetch       one GET from Python, the body whole (chunked decoded), to
              check a file's bytes before it is measured.

Every client run is bounded: wrk by its duration (and killed if it
overruns), waitclient by its own deadline and by a timeout here. Clients
are tracked in servers.LIVE while they run, so an interrupted benchmark
stops them too.
"""

import json
import math
import os
import re
import select
import socket
import subprocess

from servers import LIVE, kill

HERE = os.path.dirname(os.path.abspath(__file__))
PIPELINE_LUA = os.path.join(HERE, "pipeline.lua")
OVERRUN = 20.0  # seconds a client may run past its own bound

UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
# wrk's Transfer/sec, in binary units (its format_binary divides by 1024)
UNIT_MIB = {"B": 1.0 / 1048576, "KB": 1.0 / 1024, "MB": 1.0, "GB": 1024.0,
            "TB": 1048576.0}


class ClientError(RuntimeError):
    pass


def latency_ms(text, percentile):
    """A line of wrk's latency distribution ("  99%   3.80ms") in ms."""
    m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % percentile, text,
                  re.M)
    return float(m.group(1)) * UNIT_MS[m.group(2)] if m else None


def parse_wrk(text):
    """wrk's report as {rps, mib_s, p50_ms, p99_ms, requests, errors,
    timeouts, non2xx}; errors counts socket errors and non-2xx/3xx
    answers, mib_s is what wrk read (heads included) in MiB/s."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    xfer = re.search(r"Transfer/sec:\s+([\d.]+)([KMGT]?B)", text)
    total = re.search(r"(\d+) requests in", text)
    if rps is None or total is None:
        raise ClientError("unreadable wrk output:\n" + text)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), "
                     r"write (\d+), timeout (\d+)", text)
    socket_errors = [int(x) for x in sock.groups()] if sock else [0, 0, 0, 0]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    non2xx = int(non2xx.group(1)) if non2xx else 0
    requests = int(total.group(1))
    # with nothing answered wrk still prints a distribution, of zeros
    return {"rps": float(rps.group(1)), "requests": requests,
            "mib_s": (float(xfer.group(1)) * UNIT_MIB[xfer.group(2)]
                      if xfer else None),
            "p50_ms": latency_ms(text, 50) if requests else None,
            "p99_ms": latency_ms(text, 99) if requests else None,
            "errors": sum(socket_errors) + non2xx,
            "timeouts": socket_errors[3], "non2xx": non2xx}


def wrk_argv(url, seconds, conns=64, pipeline=0, timeout_s=None,
             path="/hello"):
    # wrk takes whole seconds only ("-d5.5s" is an error)
    argv = ["wrk", "-t1", "-c%d" % conns, "-d%ds" % math.ceil(seconds),
            "--latency"]
    if timeout_s:
        argv.append("--timeout=%ds" % math.ceil(timeout_s))
    if pipeline:
        argv += ["-s", PIPELINE_LUA, url, "--", path, str(pipeline)]
    else:
        argv.append(url)
    return argv


def wrk(url, seconds, **kw):
    """Runs wrk to the end; returns parse_wrk() of its report."""
    argv = wrk_argv(url, seconds, **kw)
    try:
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=seconds + OVERRUN)
    except subprocess.TimeoutExpired:
        raise ClientError("wrk overran: %s" % " ".join(argv))
    return parse_wrk(out.stdout)


def wrk_background(url, seconds, **kw):
    """Starts wrk and returns at once (its output is not read): load in
    the background while something else measures. Stop it with kill()."""
    proc = subprocess.Popen(wrk_argv(url, seconds, **kw),
                            stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    LIVE.append(proc)
    return proc


def waitclient_argv(binary, port, n, path, timeout_s, hold_s=None):
    argv = [binary, "--port", str(port), "--n", str(n), "--path", path,
            "--timeout", "%g" % timeout_s]
    if hold_s:
        argv += ["--hold", "%g" % hold_s]
    return argv


def read_json_line(proc, timeout_s):
    """The next line of proc's stdout as JSON, waiting at most timeout_s."""
    ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
    line = proc.stdout.readline() if ready else ""
    if not line:
        raise ClientError("waitclient said nothing (exit %s)" % proc.poll())
    return json.loads(line)


def waitclient(binary, port, n, path, timeout_s):
    """N concurrent GET PATH; the client's JSON report as a dict."""
    argv = waitclient_argv(binary, port, n, path, timeout_s)
    try:
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=timeout_s + OVERRUN)
    except subprocess.TimeoutExpired:
        raise ClientError("waitclient overran: %s" % " ".join(argv))
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise ClientError("waitclient failed (exit %d): %s"
                          % (out.returncode, out.stderr.strip()))
    return json.loads(lines[-1])


def slowclient(binary, port, n, path, expect, chunk, every_ms, window_s,
               sample_s, min_bytes):
    """N slow downloads of PATH (slowclient.c); its JSON report."""
    argv = [binary, "--port", str(port), "--n", str(n), "--path", path,
            "--expect", str(expect), "--chunk", str(chunk),
            "--every", str(every_ms), "--window", "%g" % window_s,
            "--sample", "%g" % sample_s, "--min-bytes", str(min_bytes)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=window_s + OVERRUN)
    except subprocess.TimeoutExpired:
        raise ClientError("slowclient overran: %s" % " ".join(argv))
    lines = out.stdout.strip().splitlines()
    if not lines:
        raise ClientError("slowclient failed (exit %d): %s"
                          % (out.returncode, out.stderr.strip()))
    return json.loads(lines[-1])


def dechunk(data):
    """A chunked body decoded (trailers dropped); ValueError if bad."""
    out, at = [], 0
    while True:
        eol = data.index(b"\r\n", at)
        size = int(data[at:eol].split(b";")[0], 16)
        if size == 0:
            return b"".join(out)
        out.append(data[eol + 2:eol + 2 + size])
        at = eol + 2 + size + 2


def fetch(port, path, timeout_s=30.0):
    """GET PATH on a fresh connection (Connection: close): (status, body),
    the body framed by Content-Length or chunked, or read to the close."""
    with socket.create_connection(("127.0.0.1", port), timeout_s) as s:
        s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                  b"Connection: close\r\n\r\n" % path.encode())
        chunks = []
        while True:
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    m = re.match(rb"HTTP/1\.[01] (\d{3})", head)
    if m is None:
        raise ClientError("GET %s: no HTTP response" % path)
    if re.search(rb"(?im)^transfer-encoding:.*chunked", head):
        body = dechunk(body)
    else:
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        if length:
            body = body[:int(length.group(1))]
    return int(m.group(1)), body


class Held:
    """N connections that each did one GET PATH and stay open:

        with Held(binary, port, n, "/hello", 15) as held:
            held.report   # waitclient's JSON, once all were answered
            ...           # measure the server meanwhile
        held.closed       # how many the server closed while held
    """

    HOLD_MAX_S = 120  # the client lets go by itself after this

    def __init__(self, binary, port, n, path, timeout_s):
        self.argv = waitclient_argv(binary, port, n, path, timeout_s,
                                    hold_s=self.HOLD_MAX_S)
        self.timeout_s = timeout_s
        self.proc = None
        self.report = None
        self.closed = None

    def __enter__(self):
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        LIVE.append(self.proc)
        try:
            self.report = read_json_line(self.proc, self.timeout_s + OVERRUN)
        except BaseException:
            kill(self.proc, group=False)
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.proc.stdin.close()  # the client's cue to let go
            self.closed = read_json_line(self.proc, 10)["closed_while_held"]
        except (ClientError, OSError, ValueError):
            self.closed = None
        finally:
            kill(self.proc, group=False)
