"""pg_harness.py: a real, throw-away PostgreSQL server for a test.

Python 3 standard library only; uses Debian's PostgreSQL binaries
(/usr/lib/postgresql/<version>/bin, the newest one). A test without them
exits 77, which ctest reports as skipped; every other problem fails.

    pg = Postgres()          # initdb into a fresh temporary directory,
                             # then started (pg_ctl -w waits for ready)
    pg.sql("SELECT 1")       # psql, returns the rows as text
    pg.stop(); pg.start()    # mid-test outage
    pg.conninfo              # what spoke's [plugin pg] conninfo is set to
    pg.close()               # stopped (fast) and removed; also at exit

The cluster listens on 127.0.0.1 only, on a free port, with its unix
socket in its own temporary directory; authentication is `trust`.
initdb refuses to run as root, so under root the server's programs run
as the `postgres` user (runuser), which owns the directory.

Invariants: a Postgres that was created is removed at interpreter exit,
whether the test passed, failed or raised (atexit), and is never left
running; nothing outside its temporary directory is written.
"""

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

SKIP = 77

_live = []


def _bindir():
    """The newest /usr/lib/postgresql/*/bin holding initdb, or None."""
    found = []
    for initdb in glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        version = os.path.basename(os.path.dirname(os.path.dirname(initdb)))
        try:
            found.append((float(version), os.path.dirname(initdb)))
        except ValueError:
            continue
    return max(found)[1] if found else None


def skip_unless_available():
    """Exits 77 (skipped) when PostgreSQL's server programs are missing."""
    if _bindir() is None or shutil.which("psql") is None:
        print("SKIP: PostgreSQL server binaries not installed "
              "(apt-get install postgresql)")
        sys.exit(SKIP)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Postgres:
    def __init__(self, max_connections=400):
        skip_unless_available()
        self.bindir = _bindir()
        self.root = tempfile.mkdtemp(prefix="spoke-pg-")
        self.data = os.path.join(self.root, "data")
        self.logfile = os.path.join(self.root, "server.log")
        self.port = _free_port()
        self.running = False
        self._as_postgres = os.geteuid() == 0
        _live.append(self)
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run("initdb", "-D", self.data, "--auth=trust",
                  "--username=postgres", "--encoding=UTF8", "--locale=C",
                  "--no-sync")
        self.options = " ".join([
            "-c listen_addresses=127.0.0.1",
            "-p %d" % self.port,
            "-k %s" % self.root,
            "-c max_connections=%d" % max_connections,
            "-c shared_buffers=16MB",
            "-c fsync=off",
            "-c synchronous_commit=off",
        ])
        self.start()

    # -- the server's programs

    def _run(self, prog, *args):
        cmd = [os.path.join(self.bindir, prog)] + list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--"] + cmd
        p = subprocess.run(cmd, cwd=self.root, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=120)
        if p.returncode != 0:
            raise RuntimeError("%s failed (%d):\n%s\n--- server log:\n%s"
                               % (" ".join(cmd), p.returncode,
                                  p.stdout.decode("utf-8", "replace"),
                                  self.log_tail()))
        return p.stdout.decode("utf-8", "replace")

    def start(self):
        """Starts the server; returns once it accepts connections."""
        self._run("pg_ctl", "-D", self.data, "-l", self.logfile, "-w",
                  "-t", "60", "-o", self.options, "start")
        self.running = True

    def stop(self, mode="fast"):
        """Stops the server: `fast` ends sessions at once (they see
        "terminating connection due to administrator command")."""
        if self.running:
            self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60",
                      "stop")
            self.running = False

    def close(self):
        try:
            self.stop()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            if self in _live:
                _live.remove(self)

    def log_tail(self, n=40):
        try:
            with open(self.logfile, errors="replace") as f:
                return "".join(f.readlines()[-n:])
        except OSError:
            return ""

    # -- clients

    @property
    def conninfo(self):
        """A libpq connection string to the server, over TCP."""
        return "host=127.0.0.1 port=%d user=postgres dbname=postgres" \
            % self.port

    def env(self):
        """The same as libpq environment variables."""
        return {"PGHOST": "127.0.0.1", "PGPORT": str(self.port),
                "PGUSER": "postgres", "PGDATABASE": "postgres"}

    def sql(self, query):
        """Runs QUERY with psql over the unix socket; returns its rows,
        one per line, fields separated by '|'."""
        p = subprocess.run(
            ["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.root, "-p", str(self.port), "-U", "postgres",
             "-d", "postgres", "-c", query],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=60)
        if p.returncode != 0:
            raise RuntimeError("psql %r failed: %s"
                               % (query, p.stderr.decode("utf-8", "replace")))
        return p.stdout.decode("utf-8")

    def scalar(self, query):
        return self.sql(query).strip()


@atexit.register
def _cleanup():
    for pg in list(_live):
        try:
            pg.close()
        except Exception as e:  # noqa: B902 - keep removing the others
            print("pg_harness: cleanup of %s: %s" % (pg.root, e))
