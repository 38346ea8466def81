#!/usr/bin/env python3
"""bad_input_vs_nginx.py: what spoke and nginx answer to malformed and
hostile requests, side by side.

Starts nginx (Debian's, `apt-get install -y nginx-light` if it is missing
and we are root) on a loopback port, serving
    location = /hello { return 200 "Hello, World!"; }
    location = /echo  { return 200 "echo"; }
and spoke (build/spoke with build/plugins: hello, echo, ...) on another.
Each input class is sent to both on a fresh connection, in one write,
followed by a second, valid pipelined request (GET /hello). Then it reads
until the server closes (or 3 s of silence) and prints a Markdown table:
the status of the first response ('closed' when the server closed without
one, 'open' when it said nothing and kept the connection, 'no status
line' for an HTTP/0.9-style answer) and whether the second request was
answered. After a refused request spoke must not answer the pipelined
one: those bytes are untrustworthy (request smuggling).

    tests/bench/bad_input_vs_nginx.py [--spoke build/spoke]
        [--plugins build/plugins]

Loopback only; both servers are stopped at the end. Python 3 stdlib.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

SECOND = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n"
HOST = b"Host: x\r\n"

# (class, bytes, what spoke must do: "refuse" = an error status and the
# pipelined request not answered; "normalize" = served as /hello;
# "answer" = served as /hello, the pipelined request not answered)
CASES = [
    ("Content-Length + Transfer-Encoding",
     b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 5\r\n"
     b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "refuse"),
    ("two different Content-Lengths",
     b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 3\r\n"
     b"Content-Length: 4\r\n\r\nabcd", "refuse"),
    ("bad chunk size",
     b"POST /echo HTTP/1.1\r\n" + HOST + b"Transfer-Encoding: chunked\r\n"
     b"\r\nzz\r\nabc\r\n0\r\n\r\n", "refuse"),
    ("obs-fold continuation line",
     b"GET /hello HTTP/1.1\r\n" + HOST + b"X-A: a\r\n  folded\r\n\r\n",
     "refuse"),
    ("bare LF line ends", b"GET /hello HTTP/1.1\nHost: x\nX-A: 1\n\n",
     "refuse"),
    ("bare CR in the head",
     b"GET /hello HTTP/1.1\r\n" + HOST + b"X-A: a\rX-B: b\r\n\r\n",
     "refuse"),
    ("NUL in a header value",
     b"GET /hello HTTP/1.1\r\n" + HOST + b"X-A: a\x00b\r\n\r\n", "refuse"),
    ("control byte in a header name",
     b"GET /hello HTTP/1.1\r\n" + HOST + b"X\x01A: 1\r\n\r\n", "refuse"),
    ("space before the colon",
     b"GET /hello HTTP/1.1\r\nHost : x\r\n\r\n", "refuse"),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "refuse"),
    ("garbage bytes", b"\xff\xfe\x00\x01garbage\x7f\r\n\r\n", "refuse"),
    ("TLS ClientHello on a plain port",
     b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 32
     + b"\r\n\r\n", "refuse"),
    ("HTTP/0.9 request (no version)", b"GET /hello\r\n\r\n", "refuse"),
    ("HTTP/2.0 version in an HTTP/1 request line",
     b"GET /hello HTTP/2.0\r\n" + HOST + b"\r\n", "refuse"),
    ("huge request line (20 KB)",
     b"GET /hello?" + b"a" * 20000 + b" HTTP/1.1\r\n" + HOST + b"\r\n",
     "refuse"),
    ("huge header (20 KB value)",
     b"GET /hello HTTP/1.1\r\n" + HOST + b"X-Big: " + b"b" * 20000
     + b"\r\n\r\n", "refuse"),
    ("too many headers (150)",
     b"GET /hello HTTP/1.1\r\n" + HOST
     + b"".join(b"X-N-%d: 1\r\n" % i for i in range(150)) + b"\r\n",
     "refuse"),
    ("dot segments climbing above the root (/../hello)",
     b"GET /../hello HTTP/1.1\r\n" + HOST + b"\r\n", "normalize"),
    ("encoded dot segments (/%2e%2e/%2e%2e/hello)",
     b"GET /%2e%2e/%2e%2e/hello HTTP/1.1\r\n" + HOST + b"\r\n",
     "normalize"),
    ("%00 in the path", b"GET /hel%00lo HTTP/1.1\r\n" + HOST + b"\r\n",
     "refuse"),
    ("invalid percent-encoding (%zz)",
     b"GET /hel%zzlo HTTP/1.1\r\n" + HOST + b"\r\n", "refuse"),
    ("CONNECT (authority form)",
     b"CONNECT 127.0.0.1:443 HTTP/1.1\r\nHost: 127.0.0.1:443\r\n\r\n",
     "refuse"),
    # last: answered as a plain request, then the connection closes, so
    # the bytes after it (here the pipelined GET) are never parsed
    ("Upgrade: websocket request",
     b"GET /hello HTTP/1.1\r\n" + HOST + b"Connection: Upgrade\r\n"
     b"Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
     b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", "answer"),
]

STATUS_RE = re.compile(rb"HTTP/1\.[01] (\d{3})[ \r]")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def find_nginx():
    for p in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.access(p, os.X_OK):
            return p
    if os.geteuid() == 0:
        print("nginx missing: apt-get install -y nginx-light", file=sys.stderr)
        subprocess.run(["apt-get", "install", "-y", "nginx-light"],
                       check=False, stdout=subprocess.DEVNULL)
        if os.access("/usr/sbin/nginx", os.X_OK):
            return "/usr/sbin/nginx"
    sys.exit("nginx not found; install it: apt-get install -y nginx-light")


def start_nginx(work, port):
    conf = os.path.join(work, "nginx.conf")
    for d in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        os.makedirs(os.path.join(work, d), exist_ok=True)
        os.chmod(os.path.join(work, d), 0o777)
    with open(conf, "w") as f:
        f.write("""
worker_processes 1;
pid %(w)s/nginx.pid;
error_log %(w)s/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %(w)s/body;
  proxy_temp_path %(w)s/proxy;
  fastcgi_temp_path %(w)s/fastcgi;
  uwsgi_temp_path %(w)s/uwsgi;
  scgi_temp_path %(w)s/scgi;
  server {
    listen 127.0.0.1:%(p)d;
    location = /hello { default_type text/plain; return 200 "Hello, World!"; }
    location = /echo { default_type text/plain; return 200 "echo"; }
  }
}
""" % {"w": work, "p": port})
    proc = subprocess.Popen([find_nginx(), "-c", conf, "-p", work],
                            stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(work, "nginx.out"), "w"))
    if not wait_port(port):
        proc.kill()
        sys.exit("nginx did not start; see %s/nginx-error.log" % work)
    return proc


def start_spoke(work, binary, plugins):
    pdir = os.path.join(work, "plugins")
    shutil.copytree(plugins, pdir)
    log = open(os.path.join(work, "spoke.log"), "w+")
    proc = subprocess.Popen([binary, "--listen", "127.0.0.1:0", "--plugins",
                             pdir], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with open(log.name) as f:
            m = re.search(r"listening on [0-9.]+:(\d+)", f.read())
        if m:
            return proc, int(m.group(1))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    sys.exit("spoke did not start; see %s" % log.name)


def exchange(port, data, quiet=3.0):
    """Sends DATA + SECOND in one write; returns (bytes received, how the
    connection ended: 'closed', 'reset' or 'open')."""
    s = socket.create_connection(("127.0.0.1", port), timeout=quiet)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = b""
    end = "open"
    try:
        try:
            s.sendall(data + SECOND)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                end = "reset"
                break
            if not d:
                end = "closed"
                break
            out += d
    finally:
        s.close()
    return out, end


def describe(out, end):
    """(first status as text, number of responses)."""
    # the bodies involved ("Hello, World!", "echo", short error pages)
    # never contain a status line themselves
    statuses = [m.group(1).decode() for m in STATUS_RE.finditer(out)]
    if not out:
        return ("closed" if end != "open" else "open (no answer)"), 0
    if not out.startswith(b"HTTP/"):
        return "no status line: %r" % out[:20], len(statuses)
    return statuses[0] if statuses else "?", len(statuses)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spoke", default=os.path.join(ROOT, "build", "spoke"))
    ap.add_argument("--plugins",
                    default=os.path.join(ROOT, "build", "plugins"))
    args = ap.parse_args()
    if not os.path.isfile(args.spoke):
        sys.exit("%s not built (make build)" % args.spoke)

    work = tempfile.mkdtemp(prefix="spoke-badinput-")
    os.chmod(work, 0o755)
    nginx = spoke = None
    try:
        nport = free_port()
        nginx = start_nginx(work, nport)
        spoke, sport = start_spoke(work, args.spoke, args.plugins)
        rows = []
        bad = []
        for name, data, want in CASES:
            s_out, s_end = exchange(sport, data)
            n_out, n_end = exchange(nport, data)
            s_status, s_count = describe(s_out, s_end)
            n_status, n_count = describe(n_out, n_end)
            s_second = "yes" if s_count >= 2 else "no"
            n_second = "yes" if n_count >= 2 else "no"
            if want == "refuse":
                ok = (s_second == "no"
                      and not s_status.startswith(("2", "3", "open")))
            elif want == "answer":
                ok = s_status == "200" and s_second == "no"
            else:
                ok = s_status == "200"
            if not ok:
                bad.append(name)
            rows.append((name, s_status, n_status, s_second, n_second,
                         "ok" if ok else "**NO**"))
            time.sleep(0.2)
            if spoke.poll() is not None:
                bad.append("spoke died (exit %s) after: %s"
                           % (spoke.returncode, name))
                rows[-1] = rows[-1][:5] + ("**NO: spoke died (exit %s)**"
                                           % spoke.returncode,)
                break
        print("| input class | spoke | nginx | 2nd request answered: "
              "spoke | 2nd request answered: nginx | spoke as specified |")
        print("| --- | --- | --- | --- | --- | --- |")
        for r in rows:
            print("| %s | %s | %s | %s | %s | %s |" % r)
        print()
        print("%s; %s" % (
            subprocess.run([args.spoke, "--version"], capture_output=True,
                           text=True).stdout.strip() or "?",
            subprocess.run([find_nginx(), "-v"], capture_output=True,
                           text=True).stderr.strip()))
        if bad:
            print("spoke not as specified: %s" % "; ".join(bad))
            return 1
        return 0
    finally:
        for p in (spoke, nginx):
            if p is not None and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
