"""spoke_harness.py: start the real spoke binary and talk raw HTTP/1.1 to it.

Python 3 standard library only. Used by every tests/integration/test_*.py.

Environment (set by ctest, see CMakeLists.txt; defaults point into build/):
  SPOKE_BIN           the server binary
  SPOKE_PLUGINS       directory of the shipped plugins (hello.so, sleep.so ...)
  SPOKE_TEST_PLUGINS  directory of the fixture plugins (misbehave.so ...)
  SPOKE_TEST_IO_TIMEOUT  seconds a socket read may block (default 30)

Pieces:
  Server      copies chosen .so files into a fresh plugins directory, starts
              `spoke --listen 127.0.0.1:0 --plugins DIR ...`, waits for the
              "listening on HOST:PORT" line, keeps collecting stderr/stdout in
              background threads; stop() sends SIGTERM, waits, checks exit
              code 0 and that no sanitizer report is in stderr.
  Conn        a raw-socket client: send bytes, read responses one at a time
              (Content-Length, chunked or read-to-close bodies; HEAD; 1xx),
              so keep-alive and pipelining are under the test's control.
  test/main   a tiny runner: @test functions run in order, each failure
              prints its traceback and the server's log; the last line is
              "N passed, M failed"; the exit code is non-zero on failure.

No sleeps are used for synchronisation: the harness waits on the log line,
on sockets and on the process.
"""

import atexit
import os
import json
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _env(var, default):
    value = os.environ.get(var)
    return value if value else default


SPOKE_BIN = _env("SPOKE_BIN", os.path.join(ROOT, "build", "spoke"))
SPOKE_PLUGINS = _env("SPOKE_PLUGINS", os.path.join(ROOT, "build", "plugins"))
SPOKE_TEST_PLUGINS = _env("SPOKE_TEST_PLUGINS",
                          os.path.join(ROOT, "build", "tests", "plugins"))
IO_TIMEOUT = float(_env("SPOKE_TEST_IO_TIMEOUT", "30"))
START_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0

LISTEN_RE = re.compile(r"listening on ([0-9.]+):(\d+)")
SANITIZER_RE = re.compile(
    r"ERROR: (?:Address|Leak|Thread|Memory|UndefinedBehavior)Sanitizer"
    r"|runtime error:")

HELLO = b"Hello, World!"


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    """assert that survives python -O, with a message."""
    if not cond:
        raise TestFailure(msg)


def check_eq(got, want, what):
    if got != want:
        raise TestFailure("%s: got %r, want %r" % (what, got, want))


# ---------------------------------------------------------------- plugins

def plugin_path(name):
    """Path of a built plugin NAME(.so), from SPOKE_PLUGINS first, then
    SPOKE_TEST_PLUGINS."""
    if not name.endswith(".so"):
        name += ".so"
    for d in (SPOKE_PLUGINS, SPOKE_TEST_PLUGINS):
        p = os.path.join(d, name)
        if os.path.isfile(p):
            return p
    raise TestFailure("plugin %s not found in %s or %s (not built?)"
                      % (name, SPOKE_PLUGINS, SPOKE_TEST_PLUGINS))


def plugin_bytes(name):
    with open(plugin_path(name), "rb") as f:
        return f.read()


# ---------------------------------------------------------------- server

_live_servers = []          # every Server not yet stopped (for cleanup)
_test_servers = []          # servers started by the current test (for logs)


_SERVING_RE = re.compile(r"spoke\[(\d+)\] info: worker process serving")


class Server:
    """One spoke process on 127.0.0.1:<ephemeral port>.

    plugins: names of .so files to copy into the plugins directory.
    files:   {filename: bytes} extra files written into it.
    args:    extra command-line arguments.
    """

    def __init__(self, plugins=(), args=(), files=None, start=True):
        self.plugins_dir = tempfile.mkdtemp(prefix="spoke-it-plugins-")
        for name in plugins:
            src = plugin_path(name)
            shutil.copyfile(src, os.path.join(self.plugins_dir,
                                              os.path.basename(src)))
        for fname, data in (files or {}).items():
            with open(os.path.join(self.plugins_dir, fname), "wb") as f:
                f.write(data)
        self.args = list(args)
        self.proc = None
        self.host = None
        self.port = None
        self._lines = []        # stderr lines (str, no newline)
        self._out = []          # stdout lines
        self._cond = threading.Condition()
        self._eof = False
        self._threads = []
        self.returncode = None
        if start:
            self.start()

    # -- process

    def start(self):
        cmd = [SPOKE_BIN, "--listen", "127.0.0.1:0",
               "--plugins", self.plugins_dir] + self.args
        if not os.path.isfile(SPOKE_BIN):
            raise TestFailure("server binary %s does not exist (not built?)"
                              % SPOKE_BIN)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _live_servers.append(self)
        _test_servers.append(self)
        t_err = threading.Thread(target=self._pump,
                                 args=(self.proc.stderr, self._lines, True),
                                 daemon=True)
        t_out = threading.Thread(target=self._pump,
                                 args=(self.proc.stdout, self._out, False),
                                 daemon=True)
        self._threads = [t_err, t_out]
        t_err.start()
        t_out.start()
        m = self.wait_log(LISTEN_RE, timeout=START_TIMEOUT)
        if m is None:
            try:
                rc = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                rc = None
            if rc is not None and rc < 0:
                rc = "%d (killed by %s)" % (rc, signal.Signals(-rc).name)
            self._kill()
            raise TestFailure(
                "server did not print 'listening on HOST:PORT' (exit code %s)"
                "\ncommand: %s\nstderr:\n%s"
                % (rc, " ".join(cmd), self.log_text()))
        self.host = m.group(1)
        self.port = int(m.group(2))
        check(self.port != 0, "server printed port 0: %s" % m.group(0))
        return self

    def _pump(self, stream, lines, is_stderr):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._cond:
                lines.append(line)
                self._cond.notify_all()
        with self._cond:
            if is_stderr:
                self._eof = True
            self._cond.notify_all()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig):
        if self.alive():
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """Waits for the process to end; returns its exit code, or None on
        timeout (the process is then still running)."""
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        for t in self._threads:
            t.join(timeout=5)
        return self.returncode

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT, expect_code=0):
        """Sends SIG (None: send nothing, the test already did), waits for
        exit, checks the exit code and the absence of sanitizer reports."""
        try:
            if sig is not None:
                self.send_signal(sig)
            rc = self.wait_exit(timeout)
            if rc is None:
                self._kill()
                raise TestFailure(
                    "server did not exit within %.0fs after %s\nstderr:\n%s"
                    % (timeout, sig.name if sig else "the signal",
                       self.log_tail()))
            self.check_sanitizers()
            check(rc == expect_code,
                  "server exit code %r, want %r\nstderr:\n%s"
                  % (rc, expect_code, self.log_tail()))
        finally:
            self._cleanup()
        return rc

    def check_sanitizers(self):
        bad = [l for l in self.log_lines() if SANITIZER_RE.search(l)]
        check(not bad, "sanitizer report in server stderr:\n%s\n--- full "
              "stderr tail:\n%s" % ("\n".join(bad), self.log_tail(200)))

    def _kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        self._cleanup()

    def _cleanup(self):
        if self in _live_servers:
            _live_servers.remove(self)
        shutil.rmtree(self.plugins_dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            if self.proc is not None and self.returncode is None:
                self.stop()
        else:
            self._kill()
        return False

    # -- logs

    def log_lines(self):
        with self._cond:
            return list(self._lines)

    def log_text(self):
        return "\n".join(self.log_lines())

    def log_tail(self, n=60):
        return "\n".join(self.log_lines()[-n:])

    def stdout_text(self):
        with self._cond:
            return "\n".join(self._out)

    def wait_log(self, pattern, timeout=IO_TIMEOUT, start=0):
        """Waits until a stderr line (index >= START) matches PATTERN (regex
        or compiled). Returns the match, or None on timeout or process end."""
        rx = re.compile(pattern) if isinstance(pattern, str) else pattern
        deadline = time.monotonic() + timeout
        i = start
        with self._cond:
            while True:
                while i < len(self._lines):
                    m = rx.search(self._lines[i])
                    if m:
                        return m
                    i += 1
                if self._eof:
                    return None
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    # -- HTTP shortcuts

    def serving_pid(self):
        """The pid of the process that holds the connections: the newest
        worker under a master (--processes N, the default 1), else the
        server itself (--processes 0)."""
        pid = self.proc.pid
        for line in self.log_lines():
            m = _SERVING_RE.search(line)
            if m:
                pid = int(m.group(1))
        return pid

    def conn(self, timeout=IO_TIMEOUT):
        return Conn(self.port, self.host, timeout=timeout)

    def request(self, method, path, **kw):
        """One request on a fresh connection; returns the Response."""
        with self.conn() as c:
            return c.roundtrip(method, path, **kw)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)


@atexit.register
def _kill_leftovers():
    for s in list(_live_servers):
        s._kill()


# ---------------------------------------------------------------- client

class ConnectionClosed(Exception):
    pass


class ProtocolError(Exception):
    pass


class Response:
    def __init__(self):
        self.version = None      # "HTTP/1.1"
        self.status = None       # int
        self.reason = ""
        self.headers = []        # [(name, value)] as received
        self.body = b""
        self.framing = None      # "length" | "chunked" | "close" | "none"
        self.chunks = []         # chunk payloads, when chunked
        self.trailers = []
        self.head = b""          # raw status line + headers

    def header(self, name):
        """First value of header NAME (case-insensitive), or None."""
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return None

    def header_all(self, name):
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def __repr__(self):
        return "<Response %s %s %s body=%r>" % (
            self.version, self.status, self.headers, self.body[:200])


def build_request(method, path, headers=None, body=None, version="HTTP/1.1",
                  chunked=False, host=True):
    """Bytes of one request. HEADERS: dict or list of pairs. BODY: bytes,
    or with CHUNKED a list of byte strings sent as one chunk each (bytes
    are split into one chunk). Host and Content-Length are added unless
    given."""
    if headers is None:
        hdrs = []
    elif isinstance(headers, dict):
        hdrs = list(headers.items())
    else:
        hdrs = list(headers)
    names = {k.lower() for k, _ in hdrs}
    if host and "host" not in names and version == "HTTP/1.1":
        hdrs.insert(0, ("Host", "127.0.0.1"))
    payload = b""
    if body is not None:
        if chunked:
            parts = [body] if isinstance(body, (bytes, bytearray)) else body
            if "transfer-encoding" not in names:
                hdrs.append(("Transfer-Encoding", "chunked"))
            for p in parts:
                if p:
                    payload += b"%x\r\n%s\r\n" % (len(p), p)
            payload += b"0\r\n\r\n"
        else:
            if isinstance(body, str):
                body = body.encode()
            if "content-length" not in names:
                hdrs.append(("Content-Length", str(len(body))))
            payload = bytes(body)
    head = "%s %s %s\r\n" % (method, path, version)
    head += "".join("%s: %s\r\n" % (k, v) for k, v in hdrs)
    head += "\r\n"
    return head.encode("latin-1") + payload


_STATUS_RE = re.compile(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$")


class Conn:
    """One client connection with its own read buffer."""

    def __init__(self, port, host="127.0.0.1", timeout=IO_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def settimeout(self, t):
        self.sock.settimeout(t)

    # -- sending

    def send(self, data):
        self.sock.sendall(data)

    def request(self, method, path, **kw):
        self.send(build_request(method, path, **kw))

    def roundtrip(self, method, path, **kw):
        self.request(method, path, **kw)
        return self.read_response(method=method)

    # -- receiving

    def _fill(self):
        if self.eof:
            raise ConnectionClosed("connection closed by server")
        data = self.sock.recv(65536)
        if not data:
            self.eof = True
            raise ConnectionClosed("connection closed by server")
        self.buf += data

    def _read_until(self, delim, limit=1 << 20):
        while True:
            i = self.buf.find(delim)
            if i >= 0:
                out = bytes(self.buf[:i + len(delim)])
                del self.buf[:i + len(delim)]
                return out
            if len(self.buf) > limit:
                raise ProtocolError("no %r within %d bytes" % (delim, limit))
            self._fill()

    def _read_exact(self, n):
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def _read_to_eof(self):
        while True:
            try:
                self._fill()
            except ConnectionClosed:
                break
            except ConnectionResetError:
                self.eof = True
                break
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def read_response(self, method="GET", interim=False):
        """Reads one response. 1xx responses are skipped unless INTERIM,
        in which case a 1xx is returned as it comes."""
        while True:
            r = self._read_one(method)
            if 100 <= r.status < 200 and not interim:
                continue
            return r

    def _read_one(self, method):
        head = self._read_until(b"\r\n\r\n")
        r = Response()
        r.head = head
        lines = head[:-4].split(b"\r\n")
        m = _STATUS_RE.match(lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0])
        r.version = m.group(1).decode()
        r.status = int(m.group(2))
        r.reason = (m.group(3) or b"").decode("latin-1")
        for line in lines[1:]:
            if b":" not in line:
                raise ProtocolError("bad header line %r in %r" % (line, head))
            k, v = line.split(b":", 1)
            if k != k.strip() or not k:
                raise ProtocolError("bad header name %r" % k)
            r.headers.append((k.decode("latin-1"),
                              v.strip(b" \t").decode("latin-1")))
        if (method == "HEAD" or 100 <= r.status < 200
                or r.status in (204, 304)):
            r.framing = "none"
            return r
        te = r.header("Transfer-Encoding")
        cl = r.header_all("Content-Length")
        if te is not None:
            if te.split(",")[-1].strip().lower() != "chunked":
                raise ProtocolError("unsupported Transfer-Encoding %r" % te)
            if cl:
                raise ProtocolError("both Transfer-Encoding and "
                                    "Content-Length: %r" % head)
            r.framing = "chunked"
            r.body = self._read_chunked(r)
        elif cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                raise ProtocolError("bad Content-Length %r" % cl)
            r.framing = "length"
            r.body = self._read_exact(int(cl[0]))
        else:
            r.framing = "close"
            r.body = self._read_to_eof()
        return r

    def _read_chunked(self, r):
        body = bytearray()
        while True:
            line = self._read_until(b"\r\n")[:-2]
            size_s = line.split(b";", 1)[0].strip()
            try:
                size = int(size_s, 16)
            except ValueError:
                raise ProtocolError("bad chunk size line %r" % line)
            if size == 0:
                while True:
                    t = self._read_until(b"\r\n")
                    if t == b"\r\n":
                        return bytes(body)
                    r.trailers.append(t[:-2])
            data = self._read_exact(size)
            r.chunks.append(data)
            body += data
            if self._read_exact(2) != b"\r\n":
                raise ProtocolError("chunk not followed by CRLF")

    def wait_closed(self):
        """True when the server closes the connection (EOF or reset) before
        the socket timeout with no further bytes; False on timeout. Raises
        if unexpected bytes arrive."""
        if self.buf:
            raise ProtocolError("unexpected bytes %r" % bytes(self.buf[:200]))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            return True
        if data:
            raise ProtocolError("unexpected bytes %r" % data[:200])
        self.eof = True
        return True


# ---------------------------------------------------------------- builds

def _binary_has(*names):
    """Whether SPOKE_BIN contains one of NAMES (bytes): a sanitizer's entry
    point tells what kind of build it is."""
    try:
        with open(SPOKE_BIN, "rb") as f:
            data = f.read()
    except OSError:
        return False  # Server() says so, as in every other test
    return any(n in data for n in names)


# ASan keeps freed memory in quarantine and TSan in shadow memory: there
# RSS says nothing about leaks (LeakSanitizer does), and the sanitizer,
# not spoke, owns the fatal signals.
ASAN_BUILD = _binary_has(b"__asan_init")
SANITIZED = _binary_has(b"__asan_init", b"__tsan_init")


# ---------------------------------------------------------------- plugins

RUNTIME_RE = re.compile(r"runtime directory (\S+)")


class PluginFile:
    """One plugin file of a running server, replaced the ways users do it:
    rename (`mv new.so NAME`, atomic) and copy in place (`cp new.so NAME`,
    seen half-written); and the log lines that follow, waited for in
    order (each wait starts after the line the last one matched)."""

    def __init__(self, srv, name):
        self.srv = srv
        self.name = name
        self.dst = os.path.join(srv.plugins_dir, name)
        # Staging beside the plugins directory: same filesystem, so a
        # rename is atomic, and outside it, so it is never loaded itself.
        self.stage = srv.plugins_dir + ".stage"
        os.makedirs(self.stage, exist_ok=True)
        self.runtime = srv.wait_log(RUNTIME_RE).group(1)
        self.mark = len(srv.log_lines())
        self.n = 0

    def rename(self, src):
        tmp = os.path.join(self.stage, "next-%d.so" % self.n)
        self.n += 1
        shutil.copyfile(src, tmp)
        os.rename(tmp, self.dst)

    def copy_in_place(self, src):
        shutil.copyfile(src, self.dst)  # open(O_TRUNC), write, close

    def wait(self, pattern, what):
        """Waits for a log line after the last one waited for."""
        rx = re.compile(pattern)
        m = self.srv.wait_log(rx, start=self.mark)
        check(m is not None, "no log line for %s (%s)\nlog tail:\n%s"
              % (what, pattern, self.srv.log_tail()))
        lines = self.srv.log_lines()
        for i in range(self.mark, len(lines)):
            if rx.search(lines[i]):
                self.mark = i + 1
                break
        return m

    def wait_reloaded(self, plugin, version):
        """The reload of this file to VERSION; group 1 is its generation."""
        return self.wait(r"reloaded plugin %s from %s: \S+ -> %s "
                         r"\(generation (\d+)"
                         % (re.escape(plugin), re.escape(self.name),
                            re.escape(str(version))),
                         "reload to %s" % version)

    def status(self):
        with open(os.path.join(self.runtime, "status.json")) as f:
            return json.load(f)

    def copies(self):
        return sorted(f for f in os.listdir(self.runtime) if f.endswith(".so"))

    def close(self):
        shutil.rmtree(self.stage, ignore_errors=True)


def wait_answer(srv, path, status, body=None, timeout=10.0):
    """Polls GET PATH until it answers STATUS (and BODY): each loop takes a
    new table when it next runs, so a request may still meet the old."""
    deadline = time.monotonic() + timeout
    while True:
        r = srv.get(path)
        if r.status == status and (body is None or r.body == body):
            return r
        check(time.monotonic() < deadline,
              "GET %s: %r, want %d %r within %.0fs\n--- log:\n%s"
              % (path, r, status, body, timeout, srv.log_tail()))
        srv.wait_log(r"^$", timeout=0.01)  # a short, bounded pause


# ------------------------------------------------- worker processes, admin

ADMIN_RE = re.compile(r"admin endpoint at (\S+):(\d+) ")


def no_cores():
    """No core files from this process and what it starts (a test that
    crashes a worker on purpose)."""
    _, hard = resource.getrlimit(resource.RLIMIT_CORE)
    resource.setrlimit(resource.RLIMIT_CORE, (0, hard))


def admin_get(srv, path):
    """GET PATH on the server's --admin listener (from its log line)."""
    m = srv.wait_log(ADMIN_RE)
    check(m is not None, "no admin endpoint line:\n%s" % srv.log_text())
    with Conn(int(m.group(2)), m.group(1)) as c:
        r = c.roundtrip("GET", path)
    check_response(r, 200)
    return r


def admin_metrics(srv):
    """/metrics as {"name{labels}": value}."""
    values = {}
    for line in admin_get(srv, "/metrics").body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def wait_count(srv, pattern, n):
    """Waits until N stderr lines match PATTERN."""
    while True:
        lines = srv.log_lines()
        if sum(re.search(pattern, l) is not None for l in lines) >= n:
            return
        check(srv.wait_log(pattern, start=len(lines)) is not None,
              "fewer than %d lines match %r:\n%s"
              % (n, pattern, srv.log_tail()))


def lose_connection(srv, path):
    """GET PATH must end the connection without an answer (a crash)."""
    with srv.conn() as c:
        c.request("GET", path)
        try:
            r = c.read_response()
            raise AssertionError("GET %s answered: %r" % (path, r))
        except (ConnectionClosed, ConnectionResetError, socket.timeout):
            pass


# ---------------------------------------------------------------- asserts

# -- what the server process holds (from /proc)

def _server_conns(pid):
    """(local port, remote port) of each TCP connection (not listener)
    the process PID holds open: its socket fds matched against
    /proc/net/tcp{,6}."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for name in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    out = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[9] in inodes and fields[3] != "0A":
                        out.append((int(fields[1].rsplit(":", 1)[1], 16),
                                    int(fields[2].rsplit(":", 1)[1], 16)))
        except OSError:
            pass
    return out


def server_conns(pid):
    """_server_conns, read twice and merged: the kernel's table is not a
    snapshot, an entry can be skipped while other sockets churn."""
    return set(_server_conns(pid)) | set(_server_conns(pid))


def conn_fds(pid):
    """Number of TCP connections the process PID holds open."""
    return len(server_conns(pid))


def holds_peer(pid, peer_port):
    """Whether process PID holds open a connection to PEER_PORT."""
    return any(rem == peer_port for _, rem in server_conns(pid))


def wait_response_started(s, timeout):
    """Waits until the first response bytes are in S's receive queue,
    without reading them (MSG_PEEK): the server has accepted and started
    writing."""
    s.settimeout(timeout)
    check(s.recv(1, socket.MSG_PEEK) != b"", "closed before any response")


def read_final(c, status, what):
    """Reads the response that ends connection C: STATUS, announced with
    Connection: close, and then the connection really closes."""
    try:
        r = c.read_response()
    except socket.timeout:
        raise AssertionError("%s: no %d response within %.0fs"
                             % (what, status, c.sock.gettimeout() or 0))
    except Exception as e:  # noqa: B902
        raise AssertionError("%s: no %d response (%s: %s)"
                             % (what, status, type(e).__name__, e))
    check(r.status == status, "%s: status %r, want %d: %r"
          % (what, r.status, status, r))
    check_framing(r)
    check_eq((r.header("Connection") or "").lower(), "close",
             "%s: Connection header of the %d" % (what, status))
    check(c.wait_closed(), "%s: connection left open after the %d"
          % (what, status))
    return r


def check_framing(r, method="GET"):
    """Every response has Date and Content-Length or chunked."""
    check(r.header("Date") is not None, "no Date header: %r" % r.head)
    if method != "HEAD" and not (100 <= r.status < 200):
        check(r.framing in ("length", "chunked"),
              "response neither Content-Length nor chunked: %r" % r.head)


def check_response(r, status, body=None, method="GET"):
    check(r.status == status, "status %r, want %r: %r" % (r.status, status, r))
    check_framing(r, method)
    if body is not None:
        if isinstance(body, str):
            body = body.encode()
        check(r.body == body, "body %r, want %r" % (r.body[:300], body))


# ---------------------------------------------------------------- threads

def run_threads(fn, args_list, timeout=IO_TIMEOUT * 2):
    """Runs fn(*args) for each args in ARGS_LIST on its own thread; returns
    the results in order. Re-raises the first exception."""
    results = [None] * len(args_list)
    errors = [None] * len(args_list)

    def body(i, args):
        try:
            results[i] = fn(*args)
        except BaseException as e:  # noqa: B902 - re-raised below
            errors[i] = e

    threads = [threading.Thread(target=body, args=(i, a), daemon=True)
               for i, a in enumerate(args_list)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
        check(not t.is_alive(), "worker thread did not finish in %.0fs"
              % timeout)
    for i, e in enumerate(errors):
        if e is not None:
            raise TestFailure("thread %d failed: %s: %s"
                              % (i, type(e).__name__, e)) from e
    return results


# ---------------------------------------------------------------- runner

_tests = []


def test(fn):
    _tests.append(fn)
    return fn


def main():
    """Runs the @test functions of the calling module in definition order
    (names given on the command line select by substring)."""
    selected = sys.argv[1:]
    passed = failed = 0
    failures = []
    t_all = time.monotonic()
    for fn in _tests:
        if selected and not any(s in fn.__name__ for s in selected):
            continue
        del _test_servers[:]
        t0 = time.monotonic()
        print("RUN  %s" % fn.__name__, flush=True)
        try:
            fn()
        except BaseException as e:  # noqa: B902
            if isinstance(e, KeyboardInterrupt):
                raise
            failed += 1
            failures.append(fn.__name__)
            print("FAIL %s (%.2fs)" % (fn.__name__, time.monotonic() - t0))
            traceback.print_exc(file=sys.stdout)
            for s in _test_servers:
                print("--- server %s stderr (last 60 lines):"
                      % " ".join(getattr(s, "cmd", [])))
                print(s.log_tail())
            sys.stdout.flush()
        else:
            passed += 1
            print("PASS %s (%.2fs)" % (fn.__name__, time.monotonic() - t0),
                  flush=True)
        finally:
            for s in list(_test_servers):
                if s in _live_servers:
                    s._kill()
    if failures:
        print("failed: %s" % ", ".join(failures))
    print("%d passed, %d failed (%.1fs)"
          % (passed, failed, time.monotonic() - t_all), flush=True)
    sys.exit(1 if failed or passed == 0 else 0)
