#!/usr/bin/env python3
"""The admin listener's write side: the bearer token of
--admin-token-file (ctl/admintoken.c) and the plugin files under
/plugins/NAME.so (ctl/admin.c, ctl/plugfile.c): upload (atomic, then a
rescan), download, removal, their limits, and the per-route figures of
/metrics that `spoke rollout` watches.

Every check is on what a client sees: statuses, the
WWW-Authenticate field, the files in the plugins directory, which build
answers a route, and that the server keeps serving.
"""

import json
import os
import re
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (SPOKE_BIN, Conn, Server, check,  # noqa
                           check_eq, check_response, main, plugin_bytes,
                           test, wait_answer)

ADMIN_RE = re.compile(r"admin endpoint at (\S+):(\d+) ")
TOKEN = "t0ken-for-the-admin-0123456789abcdef"
V1, V3 = plugin_bytes("versioned_v1.so"), plugin_bytes("versioned_v3.so")


def token_file(text=TOKEN + "\n"):
    fd, path = tempfile.mkstemp(prefix="spoke-token-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def build_id(data):
    """FNV-1a 64 of the bytes, as the server names a build."""
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return "%016x" % h


def admin_port(srv):
    m = srv.wait_log(ADMIN_RE)
    check(m is not None, "no admin endpoint line:\n%s" % srv.log_text())
    return int(m.group(2))


def call(srv, method, path, token=None, body=None, headers=None,
         chunked=False):
    hdrs = dict(headers or {})
    if token is not None:
        hdrs["Authorization"] = "Bearer " + token
    with Conn(admin_port(srv)) as c:
        return c.roundtrip(method, path, headers=hdrs, body=body,
                           chunked=chunked)


def metrics(srv):
    values = {}
    r = call(srv, "GET", "/metrics")
    check_response(r, 200)
    for line in r.body.decode().splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def server(processes=1, token=True, files=None):
    args = ["--admin", "127.0.0.1:0", "--processes", str(processes),
            "--loops", "1", "--workers", "2"]
    if token:
        args += ["--admin-token-file", token_file()]
    return Server(["hello.so"], args=args,
                  files=files if files is not None else {"versioned.so": V1})


@test
def write_endpoints_need_the_token():
    with server() as srv:
        r = call(srv, "POST", "/reload")
        check_response(r, 401)
        check_eq(r.header("WWW-Authenticate"), 'Bearer realm="spoke admin"',
                 "challenge without a token")
        for wrong in ("Bearer " + TOKEN[:-1], "Bearer " + TOKEN + "x",
                      "Bearer " + TOKEN.upper(), "Basic " + TOKEN, TOKEN,
                      "Bearer"):
            r = call(srv, "POST", "/reload",
                     headers={"Authorization": wrong})
            check_response(r, 401)
            check(r.header("WWW-Authenticate").endswith(
                'error="invalid_token"'), "challenge for %r: %s"
                % (wrong, r.header("WWW-Authenticate")))
        for method, path in (("GET", "/plugins/versioned.so"),
                             ("PUT", "/plugins/versioned.so"),
                             ("DELETE", "/plugins/versioned.so")):
            r = call(srv, method, path, token="nope-nope-nope-nope-1",
                     body=b"x" if method == "PUT" else None)
            check_response(r, 401)
        # nothing was touched by any of them
        with open(os.path.join(srv.plugins_dir, "versioned.so"), "rb") as f:
            check(f.read() == V1, "the plugin file changed")
        # the right token, with the scheme in any case
        r = call(srv, "POST", "/reload",
                 headers={"Authorization": "bearer  " + TOKEN})
        check_response(r, 200)
        check_eq(json.loads(r.body)["changed"], [], "nothing changed")
        # the read-only endpoints need none
        check_response(call(srv, "GET", "/status"), 200)
        check_response(call(srv, "GET", "/metrics"), 200)
        check_response(srv.get("/v/async"), 200, b"v1\n")


@test
def without_a_token_plugin_files_are_refused_and_reload_stays_open():
    with server(token=False) as srv:
        for method in ("GET", "PUT", "DELETE"):
            r = call(srv, method, "/plugins/versioned.so",
                     body=V3 if method == "PUT" else None)
            check_response(r, 403)
        check_response(call(srv, "POST", "/reload"), 200)
        check_response(srv.get("/v/async"), 200, b"v1\n")
        check_eq(sorted(os.listdir(srv.plugins_dir)),
                 ["hello.so", "versioned.so"], "plugins directory")


@test
def upload_download_and_remove_a_plugin():
    # two worker processes: the one that takes the upload has the other
    # rescan too, and the serving gauge counts both
    with server(processes=2) as srv:
        check_response(srv.get("/v/async"), 200, b"v1\n")
        r = call(srv, "GET", "/plugins/versioned.so", token=TOKEN)
        check_response(r, 200)
        check(r.body == V1, "download is not the file's bytes")

        r = call(srv, "PUT", "/plugins/versioned.so", token=TOKEN, body=V3)
        check_response(r, 200)
        answer = json.loads(r.body)
        check_eq(answer["build"], build_id(V3), "build of the upload")
        check_eq([(c["file"], c["change"], c["version"])
                  for c in answer["changed"]],
                 [("versioned.so", "reloaded", "3")], "changes")
        for _ in range(6):  # whichever worker answers
            wait_answer(srv, "/v/async", 200, b"v3\n")
        with open(os.path.join(srv.plugins_dir, "versioned.so"), "rb") as f:
            check(f.read() == V3, "the file is not the upload")
        key = ('spoke_plugin_serving{plugin="versioned",version="3",'
               'build="%s"}' % build_id(V3))
        deadline_values = metrics(srv)
        for _ in range(100):
            if deadline_values.get(key) == 2:
                break
            srv.wait_log(r"^$", timeout=0.05)
            deadline_values = metrics(srv)
        check_eq(deadline_values.get(key), 2, "workers serving build 3")

        # a file that cannot load: refused, and build 3 keeps serving
        bad = plugin_bytes("bad_abi.so")
        r = call(srv, "PUT", "/plugins/versioned.so", token=TOKEN, body=bad)
        check_response(r, 200)
        change = json.loads(r.body)["changed"][0]
        check_eq(change["change"], "refused", "bad upload")
        check("ABI" in change["error"], "reason: %s" % change["error"])
        check_response(srv.get("/v/async"), 200, b"v3\n")

        # and back, then gone
        r = call(srv, "PUT", "/plugins/versioned.so", token=TOKEN, body=V1)
        check_eq(json.loads(r.body)["changed"][0]["change"], "reloaded",
                 "upload after a refusal")
        wait_answer(srv, "/v/async", 200, b"v1\n")
        r = call(srv, "DELETE", "/plugins/versioned.so", token=TOKEN)
        check_response(r, 200)
        check_eq(json.loads(r.body)["changed"],
                 [{"file": "versioned.so", "change": "removed"}], "removal")
        for _ in range(6):
            wait_answer(srv, "/v/async", 404)
        check_response(call(srv, "DELETE", "/plugins/versioned.so",
                            token=TOKEN), 404)
        check_response(call(srv, "GET", "/plugins/versioned.so",
                            token=TOKEN), 404)
        check_eq(sorted(os.listdir(srv.plugins_dir)), ["hello.so"],
                 "no file and no temporary file left")
        check_response(srv.get("/hello"), 200)


@test
def upload_limits_and_a_cut_upload():
    with server() as srv:
        port = admin_port(srv)
        r = call(srv, "PUT", "/plugins/.hidden.so", token=TOKEN, body=V3)
        check_response(r, 400)
        r = call(srv, "PUT", "/plugins/notes.txt", token=TOKEN, body=V3)
        check_response(r, 400)
        r = call(srv, "PUT", "/plugins/x.so", token=TOKEN, body=[V3],
                 chunked=True)
        check_response(r, 411)
        with Conn(port) as c:  # no Content-Length at all
            c.send(b"PUT /plugins/x.so HTTP/1.1\r\nHost: a\r\n"
                   b"Authorization: Bearer " + TOKEN.encode() +
                   b"\r\n\r\n")
            check_response(c.read_response(), 411)
        with Conn(port) as c:  # answered before any body byte is sent
            c.send(b"PUT /plugins/x.so HTTP/1.1\r\nHost: a\r\n"
                   b"Authorization: Bearer " + TOKEN.encode() +
                   b"\r\nContent-Length: %d\r\n\r\n" % ((64 << 20) + 1))
            check_response(c.read_response(), 413)
        with Conn(port) as c:  # without the token: no body byte taken
            c.send(b"PUT /plugins/x.so HTTP/1.1\r\nHost: a\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(V3))
            check_response(c.read_response(), 401)
        # half a file, then the client goes: nothing changes
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"PUT /plugins/versioned.so HTTP/1.1\r\nHost: a\r\n"
                  b"Authorization: Bearer " + TOKEN.encode() +
                  b"\r\nContent-Length: %d\r\n\r\n" % len(V3) +
                  V3[:len(V3) // 2])
        s.close()
        # the next request on the admin listener runs after the cut one
        # was dropped (one control thread, in order of arrival)
        for _ in range(100):
            names = sorted(os.listdir(srv.plugins_dir))
            if names == ["hello.so", "versioned.so"]:
                break
            srv.wait_log(r"^$", timeout=0.05)
        check_eq(names, ["hello.so", "versioned.so"],
                 "no temporary file left")
        with open(os.path.join(srv.plugins_dir, "versioned.so"), "rb") as f:
            check(f.read() == V1, "the cut upload changed the file")
        check_response(srv.get("/v/async"), 200, b"v1\n")


@test
def a_bad_token_file_stops_the_start():
    for text, why in (("short\n", "at least 16"),
                      ("has a space in it 0123456789\n", "not visible"),
                      ("\n", "at least 16")):
        path = token_file(text)
        p = subprocess.run([SPOKE_BIN, "--listen", "127.0.0.1:0",
                            "--admin-token-file", path],
                           capture_output=True, text=True, timeout=20)
        check_eq(p.returncode, 2, "exit status for %r" % text)
        check(why in p.stderr and path in p.stderr and
              p.stderr.count("\n") == 1, "stderr: %r" % p.stderr)
    p = subprocess.run([SPOKE_BIN, "--admin-token-file", "/nonexistent/t"],
                       capture_output=True, text=True, timeout=20)
    check_eq(p.returncode, 2, "exit status for a missing file")
    check("No such file" in p.stderr, "stderr: %r" % p.stderr)


@test
def route_latency_is_counted_per_route():
    with server() as srv:
        for _ in range(5):
            check_response(srv.get("/v/async"), 200)
        check_response(srv.get("/v/sync"), 200)
        m = metrics(srv)
        count = 'spoke_route_duration_seconds_count{plugin="versioned",' \
                'route="GET /v/async"}'
        inf = 'spoke_route_duration_seconds_bucket{plugin="versioned",' \
              'route="GET /v/async",le="+Inf"}'
        check_eq(m.get(count), 5, "count of GET /v/async")
        check_eq(m.get(inf), 5, "+Inf bucket of GET /v/async")
        check_eq(m.get(count.replace("async", "sync")), 1, "GET /v/sync")
        serving = [k for k in m if k.startswith("spoke_plugin_serving{")]
        check_eq(sorted(serving), sorted([
            'spoke_plugin_serving{plugin="hello",version="1.0.0",'
            'build="%s"}' % build_id(plugin_bytes("hello.so")),
            'spoke_plugin_serving{plugin="versioned",version="1",'
            'build="%s"}' % build_id(V1)]), "serving")


if __name__ == "__main__":
    main()
