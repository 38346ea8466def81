#!/usr/bin/env python3
"""Several instances behind a real nginx, and `spoke rollout` across them
(core/cli/roll*.c, the admin's /plugins/NAME.so, deploy/nginx/).

Three spoke instances (each a master and one worker process, with an
admin listener and a token) serve versioned.so; a real nginx (Debian's)
runs deploy/nginx/spoke-upstream.conf in front of them, rendered with
their ports. Client threads send GET requests through nginx the whole
time, each on a keep-alive connection, and record every answer that is
not a 200 with a version's body. Then:

  - a rollout of build 3 over build 1: exits 0, every instance ends on
    build 3, clients saw build 3, and no client request failed;
  - a rollout of build 2, which crashes its worker on GET /v/crash (the
    clients ask for it): it stops at the first instance, rolls that one
    back, leaves the other two untouched, exits 1 with a report that
    names the crash, and no client GET failed (nginx retried the ones
    the crash cut on another instance);
  - SIGKILL of one instance, master and worker: no client GET fails.

Crashes need spoke's fatal-signal handler, so the crashing rollout runs
in the normal build only (sanitizer builds keep the signals). Nothing
sleeps to synchronize: the test waits for counts of answers, for log
lines and for the rollout's exit.
"""

import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (SANITIZED, SPOKE_BIN, Server,  # noqa
                           admin_metrics, check, check_eq, main, no_cores,
                           plugin_bytes, test)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
NGINX_CONF = os.path.join(ROOT, "deploy", "nginx", "spoke-upstream.conf")
ADMIN_RE = re.compile(r"admin endpoint at (\S+):(\d+) ")
TOKEN = "rollout-test-token-0123456789abcdef"
V = {n: plugin_bytes("versioned_v%d.so" % n) for n in (1, 2, 3)}
PATHS = ["/v/async", "/v/sync", "/v/crash", "/hello"]
CLIENTS = 6
ROLLOUT_TIMEOUT = 90


def build_id(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def nginx_binary():
    for p in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if p and os.access(p, os.X_OK):
            return p
    raise AssertionError("nginx is not installed (make deps installs it)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Fleet:
    """Three instances, nginx in front, clients through nginx."""

    def __init__(self, first):
        no_cores()
        self.tmp = tempfile.mkdtemp(prefix="spoke-it-fleet-")
        self.token_file = os.path.join(self.tmp, "admin.token")
        with open(self.token_file, "w") as f:
            f.write(TOKEN + "\n")
        os.chmod(self.token_file, 0o600)
        self.instances = []
        self.nginx = None
        self.stop = threading.Event()
        self.lock = threading.Condition()
        self.ok = 0
        self.errors = []          # (path, what)
        self.bodies = {}          # body -> count
        self.threads = []
        try:
            for _ in range(3):
                self.instances.append(Server(
                    ["hello.so"], files={"versioned.so": V[first]},
                    args=["--admin", "127.0.0.1:0", "--processes", "1",
                          "--loops", "1", "--workers", "4",
                          "--admin-token-file", self.token_file]))
            self.admins = ["127.0.0.1:%s" % s.wait_log(ADMIN_RE).group(2)
                           for s in self.instances]
            self.start_nginx()
        except BaseException:
            self.close()
            raise

    # -- nginx

    def start_nginx(self):
        text = open(NGINX_CONF).read()
        servers = re.findall(r"^\s*server 127\.0\.0\.1:(\d+)", text, re.M)
        check_eq(len(servers), 3, "upstream servers in %s" % NGINX_CONF)
        for old, srv in zip(servers, self.instances):
            text = text.replace("127.0.0.1:%s " % old,
                                "127.0.0.1:%d " % srv.port, 1)
        self.port = free_port()
        text, n = re.subn(r"listen 80;", "listen 127.0.0.1:%d;" % self.port,
                          text)
        check_eq(n, 1, "listen lines")
        temp = os.path.join(self.tmp, "nginx-temp")
        os.makedirs(temp)
        os.chmod(self.tmp, 0o755)
        os.chmod(temp, 0o777)
        with open(os.path.join(self.tmp, "spoke-upstream.conf"), "w") as f:
            f.write(text)
        conf = os.path.join(self.tmp, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off;
worker_processes 1;
pid %(tmp)s/nginx.pid;
error_log %(tmp)s/nginx-error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path %(temp)s;
  proxy_temp_path %(temp)s;
  fastcgi_temp_path %(temp)s;
  uwsgi_temp_path %(temp)s;
  scgi_temp_path %(temp)s;
  include %(tmp)s/spoke-upstream.conf;
}
""" % {"tmp": self.tmp, "temp": temp})
        self.nginx = subprocess.Popen(
            [nginx_binary(), "-p", self.tmp, "-c", conf,
             "-e", os.path.join(self.tmp, "nginx-error.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 20
        while True:  # nginx says nothing when it is up: ask it
            try:
                if self.get("/hello")[0] == 200:
                    return
            except OSError:
                pass
            check(self.nginx.poll() is None, "nginx exited: %s" %
                  self.nginx.stderr.read().decode(errors="replace"))
            check(time.monotonic() < deadline, "nginx did not answer")
            self.stop.wait(0.05)

    def get(self, path, conn=None):
        c = conn or http.client.HTTPConnection("127.0.0.1", self.port,
                                               timeout=30)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            if conn is None:
                c.close()

    # -- clients

    def client(self, n):
        conn = None
        i = n
        while not self.stop.is_set():
            path = PATHS[i % len(PATHS)]
            i += 1
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                      timeout=30)
                status, body = self.get(path, conn)
                good = status == 200 and (
                    re.fullmatch(rb"v\d\n", body) is not None or
                    body == b"Hello, World!")
                with self.lock:
                    if good:
                        self.ok += 1
                        self.bodies[body] = self.bodies.get(body, 0) + 1
                    else:
                        self.errors.append((path, "%d %r" % (status,
                                                             body[:200])))
                    self.lock.notify_all()
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.errors.append((path, repr(e)))
                    self.lock.notify_all()
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def start_clients(self):
        for n in range(CLIENTS):
            t = threading.Thread(target=self.client, args=(n,), daemon=True)
            t.start()
            self.threads.append(t)

    def wait_answers(self, n, timeout=60):
        """Waits until N more requests were answered well."""
        with self.lock:
            want = self.ok + n
            check(self.lock.wait_for(lambda: self.ok >= want, timeout),
                  "clients got %d of %d more answers (errors: %s)"
                  % (self.ok - want + n, n, self.errors[:5]))

    def stop_clients(self):
        self.stop.set()
        for t in self.threads:
            t.join(40)
        self.threads = []

    def seen(self, body):
        with self.lock:
            return self.bodies.get(body, 0)

    # -- the instances

    def serving(self, i):
        """{(plugin, version, build): processes} of instance I."""
        out = {}
        for k, v in admin_metrics(self.instances[i]).items():
            m = re.match(r'spoke_plugin_serving\{plugin="([^"]*)",'
                         r'version="([^"]*)",build="([^"]*)"\}', k)
            if m:
                out[m.groups()] = v
        return out

    def rollout(self, data, *extra, name="versioned.so"):
        d = tempfile.mkdtemp(dir=self.tmp)
        path = os.path.join(d, name)
        with open(path, "wb") as f:
            f.write(data)
        t0 = time.monotonic()
        p = subprocess.run([SPOKE_BIN, "rollout", path, "--to",
                            ",".join(self.admins), "--token-file",
                            self.token_file] + list(extra),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=ROLLOUT_TIMEOUT)
        out = p.stdout.decode(errors="replace")
        print("rollout (%.1f s, exit %d):\n%s"
              % (time.monotonic() - t0, p.returncode, out), flush=True)
        return p.returncode, out

    def close(self):
        self.stop_clients()
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.send_signal(signal.SIGQUIT)
            try:
                self.nginx.wait(20)
            except subprocess.TimeoutExpired:
                self.nginx.kill()
                self.nginx.wait()
        for s in self.instances:
            if s.alive():
                s.stop()
            else:
                s._kill()  # killed by the test: only its files to remove
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def plugin_log_lines(srv, pattern):
    return [l for l in srv.log_lines() if re.search(pattern, l)]


@test
def rollout_of_a_good_build_drops_nothing():
    with Fleet(first=1) as f:
        f.start_clients()
        f.wait_answers(200)
        rc, out = f.rollout(V[3], "--bake", "2")
        check_eq(rc, 0, "exit status")
        m = re.search(r"^rolled out versioned 3 to 3 instances in "
                      r"([\d.]+)s$", out, re.M)
        check(m is not None, "no summary line")
        # every instance serves build 3 on its one process, only it
        for i in range(3):
            check_eq(f.serving(i).get(("versioned", "3", build_id(V[3]))), 1,
                     "instance %d serves build 3" % i)
            check(("versioned", "1", build_id(V[1])) not in f.serving(i),
                  "instance %d still serves build 1" % i)
            with open(os.path.join(f.instances[i].plugins_dir,
                                   "versioned.so"), "rb") as fh:
                check(fh.read() == V[3], "instance %d's file" % i)
        # the clients move to build 3 and nothing failed on the way
        before = f.seen(b"v3\n")
        f.wait_answers(100)
        check(f.seen(b"v3\n") > before, "clients never saw build 3")
        f.stop_clients()
        check_eq(f.errors, [], "client errors through nginx")
        print("good rollout: %s s, %d answers, 0 errors"
              % (m.group(1), f.ok))


@test
def rollout_of_a_crashing_build_stops_at_the_first_instance():
    if SANITIZED:
        print("skipped: sanitizer builds keep the fatal signals")
        return
    with Fleet(first=3) as f:
        f.start_clients()
        f.wait_answers(200)
        before = [f.instances[i].log_lines() for i in range(3)]
        rc, out = f.rollout(V[2], "--bake", "5")
        check_eq(rc, 1, "exit status")
        first, rest = f.admins[0], f.admins[1:]
        check(re.search(r"^\[ *[\d.]+s\] %s +FAILED while (waiting for the "
                        r"new build|baking): crashed: SIGSEGV"
                        % re.escape(first), out, re.M) is not None,
              "no crash failure for the first instance")
        check(re.search(r"^  rolled back: %s \(ok\)$" % re.escape(first),
                        out, re.M) is not None, "first instance rolled back")
        check(re.search(r"^  not touched: %s$" % re.escape(", ".join(rest)),
                        out, re.M) is not None, "the others untouched")
        # the first serves build 3 again, with build 3 in its directory
        check_eq(f.serving(0).get(("versioned", "3", build_id(V[3]))), 1,
                 "first instance serves build 3 again")
        with open(os.path.join(f.instances[0].plugins_dir, "versioned.so"),
                  "rb") as fh:
            check(fh.read() == V[3], "first instance's file is build 3")
        check(any(re.search(r"worker \d+ died: SIGSEGV in plugin versioned 2",
                            l) for l in f.instances[0].log_lines()),
              "the crash is named in the first instance's log")
        # the other two never saw an upload nor a reload
        for i in (1, 2):
            new = f.instances[i].log_lines()[len(before[i]):]
            check_eq([l for l in new if "/plugins/" in l or "reload" in l],
                     [], "instance %d's log since the rollout" % i)
            check_eq(f.serving(i), {
                ("versioned", "3", build_id(V[3])): 1,
                ("hello", "1.0.0", build_id(plugin_bytes("hello.so"))): 1},
                "instance %d serves what it did" % i)
        f.wait_answers(100)
        f.stop_clients()
        check_eq(f.errors, [], "client errors through nginx")


@test
def dry_run_refusals_and_a_slow_build_change_nothing_for_good():
    with Fleet(first=1) as f:
        files = [os.path.join(i.plugins_dir, "versioned.so")
                 for i in f.instances]
        rc, out = f.rollout(V[3], "--dry-run")
        check_eq(rc, 0, "dry run")
        for a in f.admins:
            check(re.search(r"^  %s +versioned 1 \(build %s\) on 1/1 "
                            r"processes -> versioned 3 \(build %s\)$"
                            % (re.escape(a), build_id(V[1]),
                               build_id(V[3])), out, re.M) is not None,
                  "plan line for %s" % a)
        check("dry run: nothing changed" in out, "dry run summary")

        rc, out = f.rollout(plugin_bytes("bad_abi.so"))
        check_eq(rc, 1, "a build refused locally")
        check("refused locally" in out and "ABI" in out, "its reason")

        good = f.token_file
        f.token_file = os.path.join(f.tmp, "wrong.token")
        with open(f.token_file, "w") as fh:
            fh.write("not-the-token-of-these-instances\n")
        rc, out = f.rollout(V[3])
        f.token_file = good
        check_eq(rc, 1, "a wrong token")
        check("nothing changed" in out and "401" in out, "its reason")

        # a build that passes alone but not on an instance (its route
        # GET /hello is hello.so's there): refused by the first, whose
        # new file is removed again (it had none); the others untouched
        rc, out = f.rollout(plugin_bytes("twin_hello.so"),
                            name="twin_hello.so")
        check_eq(rc, 1, "a build the instance refuses")
        check(re.search(r"FAILED while uploading: refused by %s: .*/hello"
                        % re.escape(f.admins[0]), out) is not None,
              "the instance's reason")
        check("not touched: %s" % ", ".join(f.admins[1:]) in out,
              "the others untouched")
        for i in f.instances:
            check_eq(sorted(os.listdir(i.plugins_dir)),
                     ["hello.so", "versioned.so"], "plugin files")

        # a p99 no build can meet: the first instance fails its bake and
        # is rolled back; the others are never touched
        f.start_clients()
        f.wait_answers(100)
        rc, out = f.rollout(V[3], "--bake", "3", "--max-p99", "0.001")
        check_eq(rc, 1, "a build over --max-p99")
        check(re.search(r"FAILED while baking: p99 .* above --max-p99",
                        out) is not None, "the p99 is named")
        check("not touched: %s" % ", ".join(f.admins[1:]) in out,
              "the others untouched")
        for path in files:
            with open(path, "rb") as fh:
                check(fh.read() == V[1], "%s changed" % path)
        for i in range(3):
            check_eq(f.serving(i).get(("versioned", "1", build_id(V[1]))), 1,
                     "instance %d serves build 1" % i)
        f.stop_clients()
        check_eq(f.errors, [], "client errors through nginx")


@test
def sigkill_of_one_instance_loses_no_get():
    with Fleet(first=1) as f:
        f.start_clients()
        f.wait_answers(200)
        victim = f.instances[1]
        worker = victim.serving_pid()
        os.kill(victim.proc.pid, signal.SIGKILL)
        os.kill(worker, signal.SIGKILL)
        victim.proc.wait(20)
        f.wait_answers(2000)
        with socket.socket() as s:  # it is gone: nginx had to go elsewhere
            check(s.connect_ex(("127.0.0.1", victim.port)) != 0,
                  "the killed instance still accepts")
        f.stop_clients()
        check_eq(f.errors, [], "client errors through nginx")


if __name__ == "__main__":
    main()
