"""servers.py: the servers the benchmarks compare, started and stopped on
loopback, one fresh process tree per measurement.

  spoke   build/spoke with hello.so and sleep.so, --loops 2; with
          static.so too (root = WORK/www/files, prefix = /files) when a
          file workload asks for it (files=True)
  spoke-without  the same from bench.py --compare-build DIR (a build with
          -DSPOKE_CALL_MARKER=OFF), with --stall-warn 0: spoke without its
          per-call marker and watchdog, to measure what they cost
  nginx   Debian's nginx 1.22, worker_processes 2; /sleep/async through
          the echo module's echo_sleep when libnginx-mod-http-echo is there;
          /files/ from WORK/www with sendfile on
  lighttpd  Debian's lighttpd 1.4, server.max-worker 2, its default
          network backend (sendfile on Linux); /hello is the static file
          WORK/www/hello, /files/ the tree below it
  flask   peers/flask_app.py under gunicorn: 2 workers x 16 threads
          (gthread, the "sync workers + threads" model)
  quart   peers/quart_app.py under hypercorn: 2 asyncio workers

Every server gets the same routes (GET /hello, /hello/sync, /sleep/async,
/sleep/sync, each answering "Hello, World!", and /files/NAME, the files
of WORK/www/files) where it has an equivalent,
a raised open-files limit (20,000, the hard limit here), a listen backlog
of 4096 and a 75 s keep-alive timeout. A server is ready when GET /hello
answers 200 and, for the multi-process peers, when every worker has
answered (/pid); never after a fixed sleep.

Each server runs in its own session; stop() kills its whole process
group, and stop_all() (called on every exit path of bench.py) stops
whatever is still running, clients included.
"""

import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_DIR = os.path.join(HERE, "peers")
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, which has flask/quart
ECHO_MODULE = "/usr/lib/nginx/modules/ngx_http_echo_module.so"
LIGHTTPD = "/usr/sbin/lighttpd"
NOFILE = 20000
HELLO = b"Hello, World!"
START_TIMEOUT = 20.0
STOP_GRACE = 1.0

LIVE = []  # every Popen still to be stopped: servers and clients


class ServerError(RuntimeError):
    pass


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_nofile():
    """Soft open-files limit up to NOFILE (or the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = NOFILE if hard == resource.RLIM_INFINITY else min(NOFILE, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def spawn_server(argv, log_path, cwd=None, env=None):
    """Starts a server in its own session (so its workers can be killed
    as one group) with the raised open-files limit, stdout and stderr into
    log_path, ENV added to the environment; tracked in LIVE."""
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", **(env or {}))
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT,
                                start_new_session=True,
                                preexec_fn=raise_nofile)
    proc.is_server = True
    LIVE.append(proc)
    return proc


def signal_all(proc, sig, group):
    try:
        if group:
            os.killpg(proc.pid, sig)
        elif proc.poll() is None:
            proc.send_signal(sig)
    except ProcessLookupError:
        pass


def kill(proc, group):
    """SIGTERM, a short grace, then SIGKILL; to the process group of a
    server (its workers too), to the process alone otherwise."""
    if proc.poll() is None:
        signal_all(proc, signal.SIGTERM, group)
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            pass
    signal_all(proc, signal.SIGKILL, group)  # stragglers: workers
    proc.wait()
    if proc in LIVE:
        LIVE.remove(proc)


def stop_all():
    for proc in list(LIVE):
        kill(proc, group=getattr(proc, "is_server", False))


def http_get(port, path, timeout=2.0):
    """One GET on a fresh connection: (status, body) or (None, b"")."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      b"Connection: close\r\n\r\n" % path.encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError:
        return None, b""
    m = re.match(rb"HTTP/1\.[01] (\d{3})", data)
    return (int(m.group(1)) if m else None), data.split(b"\r\n\r\n", 1)[-1]


def www_dir(work):
    """WORK/www, made on first use: `hello` (lighttpd's /hello) and the
    directory files/ that the file workloads fill and every server
    serves as /files/. Readable by all: nginx's workers are nobody."""
    www = os.path.join(work, "www")
    if not os.path.isdir(www):
        os.makedirs(os.path.join(www, "files"))
        for d in (www, os.path.join(www, "files")):
            os.chmod(d, 0o755)
        with open(os.path.join(www, "hello"), "wb") as f:
            f.write(HELLO)
        os.chmod(os.path.join(www, "hello"), 0o644)
    return www


def children(pid):
    """Direct children of pid, from /proc."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # the field after "(comm)" is the state, then the ppid
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def proc_kib(pid, field):
    """VmRSS or VmHWM of pid in KiB (0 once it is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            m = re.search(r"^%s:\s+(\d+) kB" % field, f.read(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


class Server:
    """One benchmark server. Subclasses say how to start it (argv) and
    which processes hold its connections (memory_pids)."""

    name = "?"
    about = ""   # how it is configured, for the report
    workers = 1  # processes that answer (multi-process peers)
    routes = ("/hello", "/hello/sync", "/sleep/async", "/sleep/sync")

    def __init__(self, ctx, **opts):
        self.ctx = ctx
        self.opts = opts
        self.port = free_port()
        self.proc = None
        self.log = os.path.join(ctx.work, "%s.log" % self.name)

    def argv(self):
        raise NotImplementedError

    def cwd(self):
        return None

    def start(self):
        self.proc = spawn_server(self.argv(), self.log, cwd=self.cwd())
        try:
            self.wait_ready()
        except BaseException:
            self.stop()  # __exit__ does not run when __enter__ raises
            raise
        return self

    def stop(self):
        if self.proc is not None:
            kill(self.proc, group=True)
            self.proc = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @classmethod
    def has(cls, route):
        return route in cls.routes

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while http_get(self.port, "/hello")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ServerError("%s did not start (exit %s); log %s:\n%s" % (
                    self.name, self.proc.poll(), self.log, self.log_tail()))
            time.sleep(0.02)
        self.wait_workers(deadline)

    def wait_workers(self, deadline):
        pass

    def memory_pids(self):
        return [self.proc.pid]

    def memory_kib(self, field="VmRSS"):
        return sum(proc_kib(p, field) for p in self.memory_pids())

    def log_tail(self, lines=20):
        try:
            with open(self.log, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""


class Spoke(Server):
    name = "spoke"
    about = ("build/spoke --loops 2 --log-level warn with hello.so and "
             "sleep.so (a master and one worker process, the default); "
             "--max-conns 20000 in W2, W5 and W7; W3 and W7 set --workers "
             "and --max-queue as their rows say; W6 and W7 add static.so "
             "(`root` = the file tree, `prefix = /files`)")
    routes = Server.routes + ("/files",)

    extra = []  # options after the common ones

    def memory_pids(self):
        # The master and its worker processes (--processes, default 1).
        return [self.proc.pid] + children(self.proc.pid)

    def build(self):
        return self.ctx.build

    def plugins_dir(self):
        """WORK/NAME-plugins with hello.so and sleep.so, or, for the file
        workloads (files=True), WORK/NAME-files-plugins with static.so
        besides."""
        files = self.opts.get("files")
        sos = ("hello.so", "sleep.so") + (("static.so",) if files else ())
        plugins = os.path.join(self.ctx.work, self.name +
                               ("-files-plugins" if files else "-plugins"))
        if not os.path.isdir(plugins):
            os.makedirs(plugins)
            for so in sos:
                shutil.copy(os.path.join(self.build(), "plugins", so),
                            plugins)
        return plugins

    def config_argv(self):
        """--config with static.so's section, for the file workloads."""
        if not self.opts.get("files"):
            return []
        conf = os.path.join(self.ctx.work, "spoke-files.conf")
        with open(conf, "w") as f:
            f.write("# written by tests/bench/servers.py\n"
                    "[plugin static]\nroot = %s\nprefix = /files\n"
                    % os.path.join(www_dir(self.ctx.work), "files"))
        return ["--config", conf]

    def argv(self):
        c = self.ctx
        runtime = os.path.join(c.work, "spoke-runtime-%d" % self.port)
        os.makedirs(runtime, exist_ok=True)
        argv = [os.path.join(self.build(), "spoke"),
                "--listen", "127.0.0.1:%d" % self.port,
                "--plugins", self.plugins_dir(),
                "--loops", "2", "--log-level", "warn",
                "--runtime-dir", runtime] + self.config_argv() + self.extra
        for opt in ("workers", "max_queue", "max_conns"):
            if opt in self.opts:
                argv += ["--" + opt.replace("_", "-"), str(self.opts[opt])]
        return argv


class SpokeWithout(Spoke):
    """spoke without its fault containment: the --compare-build tree's
    binary (-DSPOKE_CALL_MARKER=OFF) and no watchdog."""
    name = "spoke-without"
    about = ("COMPARE/spoke (bench.py --compare-build COMPARE, built with "
             "-DSPOKE_CALL_MARKER=OFF) with --stall-warn 0: no per-call "
             "marker, no watchdog thread; otherwise as spoke")
    extra = ["--stall-warn", "0"]

    def build(self):
        return self.ctx.compare_build


NGINX_CONF = """\
# nginx peer of the spoke benchmarks (written by tests/bench/servers.py)
%(load_echo)s
worker_processes 2;
worker_rlimit_nofile %(nofile)d;
daemon off;
pid %(work)s/nginx.pid;
error_log %(work)s/nginx-error.log warn;
events { worker_connections %(nofile)d; }
http {
  access_log off;
  keepalive_timeout 75;
  client_body_temp_path %(work)s/nginx-tmp;
  proxy_temp_path %(work)s/nginx-tmp;
  fastcgi_temp_path %(work)s/nginx-tmp;
  uwsgi_temp_path %(work)s/nginx-tmp;
  scgi_temp_path %(work)s/nginx-tmp;
  # ?ms=N as echo_sleep's seconds: 2000 -> 2.000, 20 -> 0.020
  map $arg_ms $sleep_s {
    "~^(?<s>\\d*)(?<f>\\d{3})$" "0$s.$f";
    "~^(?<f>\\d\\d)$" "0.0$f";
    "~^(?<f>\\d)$" "0.00$f";
    default 2;
  }
  server {
    listen 127.0.0.1:%(port)d reuseport backlog=4096;
    default_type text/plain;
    location = /hello { return 200 "Hello, World!"; }
    location /files/ { root %(www)s; sendfile on; }
%(sleep_location)s
  }
}
"""

NGINX_SLEEP = """\
    location = /sleep/async { echo_sleep $sleep_s; echo -n "Hello, World!"; }
"""


def nginx_binary():
    for p in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.access(p, os.X_OK):
            return p
    return None


def python_has(*modules):
    """Does Debian's python3 import all of these?"""
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    code = "import " + ", ".join(modules)
    return subprocess.run([SYSTEM_PYTHON, "-c", code],
                          stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode == 0


class Nginx(Server):
    name = "nginx"
    workers = 2
    about = ("worker_processes 2, worker_connections 20000, "
             "`return 200` for /hello; /sleep/async is `echo_sleep` then "
             "`echo` (libnginx-mod-http-echo, a chunked answer); /files/ "
             "with `root` and `sendfile on`; no blocking or worker-pool "
             "route, so n/a in W3 and W4")

    @classmethod
    def has(cls, route):
        return route in ("/hello", "/files") or (
            route == "/sleep/async" and os.path.exists(ECHO_MODULE))

    def argv(self):
        work = self.ctx.work
        os.makedirs(os.path.join(work, "nginx-tmp"), exist_ok=True)
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            echo = self.has("/sleep/async")
            f.write(NGINX_CONF % {
                "load_echo": "load_module %s;" % ECHO_MODULE
                             if echo else "# no echo module: no /sleep/async",
                "nofile": NOFILE, "work": work, "port": self.port,
                "www": www_dir(work),
                "sleep_location": NGINX_SLEEP if echo else ""})
        return [nginx_binary(), "-p", work, "-c", conf,
                "-e", os.path.join(work, "nginx-error.log")]

    def wait_workers(self, deadline):
        while len(self.memory_pids()) < self.workers:
            if time.monotonic() > deadline:
                raise ServerError("nginx workers did not start")
            time.sleep(0.02)

    def memory_pids(self):
        return children(self.proc.pid)


LIGHTTPD_CONF = """\
# lighttpd peer of the spoke benchmarks (written by tests/bench/servers.py)
server.modules = ()
server.document-root = "%(www)s"
server.bind = "127.0.0.1"
server.port = %(port)d
server.max-worker = 2
server.max-fds = %(nofile)d
server.max-connections = %(conns)d
server.listen-backlog = 4096
server.max-keep-alive-idle = 75
server.max-keep-alive-requests = 1000
server.errorlog = "%(work)s/lighttpd-error.log"
mimetype.assign = ("" => "text/plain")
"""


class Lighttpd(Server):
    """lighttpd: /hello is a static file, so every route is its file
    handler (stat cache, then sendfile)."""
    name = "lighttpd"
    workers = 2
    routes = ("/hello", "/files")
    about = ("server.max-worker 2 (a master and 2 worker processes; the "
             "workers' memory is counted, as nginx's), server.max-fds "
             "20000, server.max-connections 10000, keep-alive 75 s and "
             "1,000 requests, no access log, the default network backend "
             "(sendfile on Linux); /hello is a static file whose body is "
             "`Hello, World!` (Debian's lighttpd has no mod_magnet), so "
             "it costs a stat-cache lookup and a sendfile that nginx's "
             "`return 200` does not; no sleep routes, so n/a in W2 to W4")

    def argv(self):
        work = self.ctx.work
        conf = os.path.join(work, "lighttpd.conf")
        with open(conf, "w") as f:
            f.write(LIGHTTPD_CONF % {
                "www": www_dir(work), "port": self.port, "nofile": NOFILE,
                "conns": NOFILE // 2, "work": work})
        return [LIGHTTPD, "-D", "-f", conf]

    def wait_workers(self, deadline):
        while len(self.memory_pids()) < self.workers:
            if time.monotonic() > deadline:
                raise ServerError("lighttpd workers did not start")
            time.sleep(0.02)

    def memory_pids(self):
        return children(self.proc.pid)


class PythonPeer(Server):
    """A Python app under a multi-process server: 2 workers."""
    workers = 2

    def cwd(self):
        return PEERS_DIR

    def memory_pids(self):
        return children(self.proc.pid)

    def wait_workers(self, deadline):
        """Until every worker has answered /pid once: the master binds
        before its workers have loaded the app."""
        seen = set()
        while len(seen) < self.workers and time.monotonic() < deadline:
            status, body = http_get(self.port, "/pid")
            if status == 200:
                seen.add(body)
            else:
                time.sleep(0.02)
        if len(seen) < self.workers:
            print("note: %s: only %d of %d workers answered before start-up "
                  "timed out" % (self.name, len(seen), self.workers),
                  file=sys.stderr)


class Flask(PythonPeer):
    name = "flask"
    about = ("Flask under gunicorn: 2 workers x 16 threads (gthread), "
             "keep-alive 75 s; every view runs on a worker thread, both "
             "sleep routes call time.sleep()")

    def argv(self):
        return [SYSTEM_PYTHON, "-m", "gunicorn", "--workers", "2",
                "--worker-class", "gthread", "--threads", "16",
                "--worker-connections", str(NOFILE), "--backlog", "4096",
                "--keep-alive", "75", "--log-level", "warning",
                "--bind", "127.0.0.1:%d" % self.port, "flask_app:app"]


class Quart(PythonPeer):
    name = "quart"
    about = ("Quart under hypercorn: 2 asyncio workers, keep-alive 75 s; "
             "/sleep/async awaits asyncio.sleep(), /sleep/sync calls "
             "time.sleep() in an async view (it blocks its worker's loop), "
             "/hello/sync is a plain view that Quart runs on a thread pool")

    def argv(self):
        return [SYSTEM_PYTHON, "-m", "hypercorn", "--workers", "2",
                "--backlog", "4096", "--keep-alive", "75",
                "--bind", "127.0.0.1:%d" % self.port, "quart_app:app"]


SERVERS = {"spoke": Spoke, "spoke-without": SpokeWithout, "nginx": Nginx,
           "lighttpd": Lighttpd, "flask": Flask, "quart": Quart}


def missing(name):
    """Why server NAME cannot run here, or None."""
    if name == "nginx" and nginx_binary() is None:
        return "nginx not installed (apt-get install nginx)"
    if name == "lighttpd" and not os.access(LIGHTTPD, os.X_OK):
        return "lighttpd not installed (apt-get install lighttpd)"
    if name == "flask" and not python_has("flask", "gunicorn"):
        return "python3-flask or gunicorn not installed"
    if name == "quart" and not python_has("quart", "hypercorn"):
        return "python3-quart or python3-hypercorn not installed"
    return None
