#!/usr/bin/env python3
"""plugins/static/: files under a prefix with the right types and sizes,
HEAD, ETag/Last-Modified, 304s and 412s, Range (206/416), directories (404
with index off, index.html with it on), and no way out of the root: `..`,
encoded dots and slashes, NUL, symbolic links pointing out (or in), and
special files. The server stays up throughout.

The tree (built fresh in a temporary directory WORK):
  WORK/secret                 a file outside the root; never served
  WORK/outside/secret         the same, behind a directory link
  WORK/static/                the root (the default: "static" in the
                              server's working directory, which is WORK)
    hello.txt, data.bin (256 KiB), big.bin (3 MiB + 7: streamed), ...
    sub/nested.txt, sub/index.html, index.html
    link_out -> WORK/secret, dir_link -> WORK/outside, link_in -> hello.txt
    fifo (a named pipe)
With --config (when the binary has it) the root, prefix and index come
from a [plugin static] section instead.
"""

import contextlib
import email.utils
import gzip
import hashlib
import os
import selectors
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from spoke_harness import (HELLO, IO_TIMEOUT, SPOKE_BIN, Conn,  # noqa: E402
                           build_request,
                           Server, check, check_eq, check_framing,
                           check_response, main, run_threads, test,
                           wait_response_started)

SECRET = b"TOP SECRET: never served\n"
HELLO_TXT = b"Hello, static!\n"
DATA = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(256 * 1024))
BIG = bytes((i * 13 + (i >> 10)) & 0xFF for i in range(3 * 1024 * 1024 + 7))
INDEX = b"<!doctype html><title>root index</title>\n"
SUB_INDEX = b"<!doctype html><title>sub index</title>\n"

TYPES = {
    "page.html": "text/html; charset=utf-8",
    "page.htm": "text/html; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "mod.mjs": "text/javascript; charset=utf-8",
    "data.json": "application/json",
    "notes.txt": "text/plain; charset=utf-8",
    "feed.xml": "application/xml",
    "logo.svg": "image/svg+xml",
    "img.png": "image/png",
    "photo.jpg": "image/jpeg",
    "photo.jpeg": "image/jpeg",
    "anim.gif": "image/gif",
    "pic.webp": "image/webp",
    "favicon.ico": "image/x-icon",
    "prog.wasm": "application/wasm",
    "doc.pdf": "application/pdf",
    "font.woff": "font/woff",
    "font.woff2": "font/woff2",
    "clip.mp4": "video/mp4",
    "clip.webm": "video/webm",
    "song.mp3": "audio/mpeg",
    "table.csv": "text/csv; charset=utf-8",
    "README.md": "text/markdown; charset=utf-8",
    "SHOUT.HTML": "text/html; charset=utf-8",
    "unknown.xyz": "application/octet-stream",
    "noext": "application/octet-stream",
    ".hidden": "application/octet-stream",
}


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def make_tree():
    work = tempfile.mkdtemp(prefix="spoke-it-static-")
    root = os.path.join(work, "static")
    write(os.path.join(work, "secret"), SECRET)
    write(os.path.join(work, "outside", "secret"), SECRET)
    write(os.path.join(root, "hello.txt"), HELLO_TXT)
    write(os.path.join(root, "data.bin"), DATA)
    write(os.path.join(root, "big.bin"), BIG)
    write(os.path.join(root, "empty.txt"), b"")
    write(os.path.join(root, "index.html"), INDEX)
    write(os.path.join(root, "sub", "nested.txt"), b"nested\n")
    write(os.path.join(root, "sub", "index.html"), SUB_INDEX)
    write(os.path.join(root, "sub", "deeper", "leaf.txt"), b"leaf\n")
    write(os.path.join(root, "nodir", "plain.txt"), b"plain\n")
    write(os.path.join(root, "a b.txt"), b"space\n")
    write(os.path.join(root, "back\\slash.txt"), b"backslash\n")
    write(os.path.join(root, "100%.txt"), b"percent\n")
    for name in TYPES:
        write(os.path.join(root, name), name.encode())
    os.symlink(os.path.join(work, "secret"), os.path.join(root, "link_out"))
    os.symlink(os.path.join(work, "outside"), os.path.join(root, "dir_link"))
    os.symlink("../secret", os.path.join(root, "rel_link_out"))
    os.symlink("hello.txt", os.path.join(root, "link_in"))
    os.symlink("sub", os.path.join(root, "sub_link"))
    os.mkfifo(os.path.join(root, "fifo"))
    return work


@contextlib.contextmanager
def static_server(work=None, plugins=("static.so", "hello.so"), args=()):
    """A server whose working directory is WORK (a fresh tree by default),
    so the default root "static" is WORK/static."""
    own = work is None
    if own:
        work = make_tree()
    old = os.getcwd()
    os.chdir(work)
    try:
        srv = Server(list(plugins), args=list(args))
    finally:
        os.chdir(old)
    try:
        with srv:
            srv.work = work
            yield srv
    finally:
        if own:
            shutil.rmtree(work, ignore_errors=True)


def has_config_flag():
    p = subprocess.run([SPOKE_BIN, "--help"], capture_output=True, text=True,
                       timeout=30, stdin=subprocess.DEVNULL)
    return "--config" in p.stdout + p.stderr


def conf_file(work, text):
    path = os.path.join(work, "spoke.conf")
    with open(path, "w") as f:
        f.write(text)
    return path


def wait_get(srv, path, status, body=None, timeout=10.0, **kw):
    """Polls GET PATH until it answers STATUS (and BODY), within TIMEOUT:
    a change on disk is seen once the open-file cache looks again."""
    deadline = time.monotonic() + timeout
    while True:
        r = srv.get(path, **kw)
        if r.status == status and (body is None or r.body == body):
            check_framing(r)
            return r
        check(time.monotonic() < deadline,
              "GET %s: %r, want %d within %.0fs\n--- log:\n%s"
              % (path, r, status, timeout, srv.log_tail()))
        srv.wait_log(r"^$", timeout=0.01)  # a short, bounded pause


def sendfile_host(srv):
    """Whether the server hands files to the kernel (SDK 1.5's
    spoke_response_file), as the plugin's start line says."""
    m = srv.wait_log(r"serving .*; (files sent by the server|host older)",
                     timeout=10)
    check(m is not None, "no start line:\n" + srv.log_tail())
    return m.group(1).startswith("files sent")


def needs_sendfile(srv):
    """For a test of SDK 1.5's file responses: False (and says so) on an
    older host, where the plugin reads and sends files itself."""
    if sendfile_host(srv):
        return True
    print("  (skipped: this host is older than SDK 1.5)")
    return False


HUGE_SIZE = 20 * 1024 * 1024 + 11


def add_huge(srv):
    """WORK/static/huge.bin, 20 MiB + 11 bytes of noise; its sha256."""
    data = os.urandom(HUGE_SIZE)
    write(os.path.join(srv.work, "static", "huge.bin"), data)
    return hashlib.sha256(data).hexdigest()


class SmallConn(Conn):
    """A Conn whose receive buffer is RCVBUF bytes, set before connecting
    (the kernel would otherwise grow it to many MiB on loopback): a client
    that stops reading stops the server's sending soon."""

    def __init__(self, port, rcvbuf, timeout=IO_TIMEOUT):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(("127.0.0.1", port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s
        self.buf = bytearray()
        self.eof = False


def still_serving(srv):
    check(srv.alive(), "server died")
    check_response(srv.get("/hello"), 200, HELLO)
    check_response(srv.get("/static/hello.txt"), 200, HELLO_TXT)


def check_validators(r):
    etag = r.header("ETag")
    check(etag is not None and etag.startswith('"') and etag.endswith('"')
          and len(etag) > 2, "ETag %r" % etag)
    lm = r.header("Last-Modified")
    check(lm is not None and lm.endswith(" GMT")
          and email.utils.parsedate_to_datetime(lm) is not None,
          "Last-Modified %r" % lm)
    return etag, lm


def check_304(r):
    """304: no body, and so neither Content-Length nor chunked."""
    check_eq(r.status, 304, "status")
    check(r.header("Date") is not None, "no Date on 304")
    check_eq(r.body, b"", "304 body")
    check_eq(r.header("Content-Length"), None, "304 Content-Length")
    check_eq(r.header("Transfer-Encoding"), None, "304 Transfer-Encoding")


# ------------------------------------------------------------ files

@test
def serves_files_with_type_length_and_validators():
    with static_server() as srv:
        r = srv.get("/static/hello.txt")
        check_response(r, 200, HELLO_TXT)
        check_eq(r.framing, "length", "framing")
        check_eq(r.header("Content-Length"), str(len(HELLO_TXT)),
                 "Content-Length")
        check_eq(r.header("Content-Type"), "text/plain; charset=utf-8",
                 "Content-Type")
        check_eq(r.header("Accept-Ranges"), "bytes", "Accept-Ranges")
        check_validators(r)
        mtime = os.stat(os.path.join(srv.work, "static",
                                     "hello.txt")).st_mtime
        check_eq(email.utils.parsedate_to_datetime(
            r.header("Last-Modified")).timestamp(), float(int(mtime)),
            "Last-Modified is the file's mtime")

        r = srv.get("/static/data.bin")
        check_response(r, 200, DATA)
        check_eq(r.header("Content-Length"), str(len(DATA)), "binary length")
        check_eq(r.header("Content-Type"), "application/octet-stream",
                 "binary type")
        check_response(srv.get("/static/sub/nested.txt"), 200, b"nested\n")
        check_response(srv.get("/static/sub/deeper/leaf.txt"), 200,
                       b"leaf\n")
        r = srv.get("/static/empty.txt")
        check_response(r, 200, b"")
        check_eq(r.header("Content-Length"), "0", "empty length")
        # names with encoded bytes; a backslash is an ordinary character
        check_response(srv.get("/static/a%20b.txt"), 200, b"space\n")
        check_response(srv.get("/static/back%5Cslash.txt"), 200,
                       b"backslash\n")
        check_response(srv.get("/static/100%25.txt"), 200, b"percent\n")
        # an encoded slash never splits a name: refused, not resolved
        check_response(srv.get("/static/sub%2Fnested.txt"), 404)
        # the query is not part of the name
        check_response(srv.get("/static/hello.txt?v=3"), 200, HELLO_TXT)
        check_response(srv.get("/static/missing.txt"), 404)
        check_response(srv.get("/static/sub/missing/x.txt"), 404)
        # a file is not a directory
        check_response(srv.get("/static/hello.txt/"), 404)
        check_response(srv.get("/static/hello.txt/x"), 404)


@test
def content_types_by_extension():
    with static_server() as srv:
        with srv.conn() as c:
            for name, ctype in TYPES.items():
                r = c.roundtrip("GET", "/static/" + name)
                check_response(r, 200, name.encode())
                check_eq(r.header("Content-Type"), ctype,
                         "Content-Type of " + name)


@test
def head_has_get_headers_and_no_body():
    with static_server() as srv:
        for path in ("/static/hello.txt", "/static/data.bin",
                     "/static/big.bin", "/static/empty.txt"):
            with srv.conn() as c:
                g = c.roundtrip("GET", path)
                h = c.roundtrip("HEAD", path)
                check_response(h, 200, method="HEAD")
                check_eq(h.body, b"", "HEAD body of " + path)
                strip = lambda r: [(k.lower(), v) for k, v in r.headers
                                   if k.lower() != "date"]
                check_eq(strip(h), strip(g), "HEAD headers of " + path)
                # nothing after the HEAD head: the next response parses
                check_response(c.roundtrip("GET", "/static/hello.txt"), 200,
                               HELLO_TXT)
        # a Range on HEAD is ignored (range handling is defined for GET)
        h = srv.request("HEAD", "/static/hello.txt",
                        headers={"Range": "bytes=0-1"})
        check_eq(h.status, 200, "HEAD with Range")
        check_eq(h.header("Content-Length"), str(len(HELLO_TXT)),
                 "HEAD with Range: length")


@test
def large_file_downloads_whole():
    with static_server() as srv:
        sent_by_server = sendfile_host(srv)
        r = srv.get("/static/big.bin")
        check_response(r, 200)
        # SDK 1.5: Content-Length; an older host streams it chunked
        check_eq(r.framing, "length" if sent_by_server else "chunked",
                 "framing of a 3 MiB file")
        check(r.body == BIG, "big body differs (len %d, want %d)"
              % (len(r.body), len(BIG)))
        check_eq(r.header("Content-Type"), "application/octet-stream",
                 "type")
        check_validators(r)
        # HTTP/1.0: the end is the close
        with srv.conn() as c:
            r = c.roundtrip("GET", "/static/big.bin", version="HTTP/1.0")
            check_eq(r.status, 200, "HTTP/1.0 status")
            check(r.body == BIG, "HTTP/1.0 big body differs")
        # several at once, on the worker pool
        bodies = run_threads(lambda: srv.get("/static/big.bin").body,
                             [()] * 6)
        check(all(b == BIG for b in bodies), "a concurrent download differs")
        still_serving(srv)


@test
def client_leaving_mid_download_is_harmless():
    with static_server() as srv:
        for _ in range(5):
            with srv.conn() as c:
                c.request("GET", "/static/big.bin")
                check(c.sock.recv(1000) != b"", "no response started")
        still_serving(srv)


# ------------------------------------------- SDK 1.5: sent by the server

@test
def huge_file_is_exact_with_content_length_and_keep_alive():
    with static_server() as srv:
        if not needs_sendfile(srv):
            return
        digest = add_huge(srv)
        with srv.conn() as c:
            r = c.roundtrip("GET", "/static/huge.bin")
            check_eq(r.status, 200, "status")
            check_eq(r.framing, "length", "framing")
            check_eq(r.header("Content-Length"), str(HUGE_SIZE),
                     "Content-Length")
            check_eq(r.header("Transfer-Encoding"), None,
                     "Transfer-Encoding")
            check_eq(hashlib.sha256(r.body).hexdigest(), digest,
                     "sha256 of the body")
            # the same connection goes on: nothing after the body
            check_response(c.roundtrip("GET", "/static/hello.txt"), 200,
                           HELLO_TXT)
            # a range in the middle, on it again
            first, last = 7 * 1024 * 1024 + 3, 13 * 1024 * 1024 + 5
            r = c.roundtrip("GET", "/static/huge.bin",
                            headers={"Range": "bytes=%d-%d" % (first, last)})
            check_eq(r.status, 206, "range status")
            check_eq(r.framing, "length", "range framing")
            check_eq(r.header("Content-Range"), "bytes %d-%d/%d"
                     % (first, last, HUGE_SIZE), "Content-Range")
            with open(os.path.join(srv.work, "static", "huge.bin"),
                      "rb") as f:
                f.seek(first)
                want = f.read(last - first + 1)
            check(r.body == want, "range body differs (len %d, want %d)"
                  % (len(r.body), len(want)))
            check_response(c.roundtrip("GET", "/static/data.bin"), 200,
                           DATA)


@test
def stalled_download_does_not_hold_the_worker():
    # One worker. A client asks for 20 MiB and stops reading: its receive
    # buffer and the server's send buffer fill, and the transfer waits.
    # Before SDK 1.5 the handler waited with it, on the only worker; now
    # the transfer is the loop's, and another client is served in full.
    with static_server(args=["--workers", "1"]) as srv:
        if not needs_sendfile(srv):
            return
        digest = add_huge(srv)
        with SmallConn(srv.port, 16384) as stalled:
            stalled.request("GET", "/static/huge.bin")
            wait_response_started(stalled.sock, IO_TIMEOUT)
            with srv.conn(timeout=min(IO_TIMEOUT, 15)) as other:
                r = other.roundtrip("GET", "/static/big.bin")
                check(r.status == 200 and r.body == BIG,
                      "big.bin beside a stalled download: %r" % r)
                check_response(other.roundtrip("GET", "/static/data.bin"),
                               200, DATA)
                check_response(other.roundtrip("GET", "/hello"), 200, HELLO)
            # the stalled client reads on, and gets every byte
            stalled.settimeout(IO_TIMEOUT)
            r = stalled.read_response()
            check_eq(r.status, 200, "stalled status")
            check_eq(r.framing, "length", "stalled framing")
            check_eq(hashlib.sha256(r.body).hexdigest(), digest,
                     "sha256 of the stalled download")
        still_serving(srv)


@test
def a_cached_file_is_answered_on_the_loop_with_every_worker_busy():
    # SDK 1.4 + 1.5: the route is async, a file the cache holds is sent
    # from the loop, and only a miss goes to the pool (spoke_offload).
    # One worker, no queue, and that worker held by a sleep: a cached
    # file still answers 200, an uncached one 503 (the pool is full).
    with static_server(plugins=("static.so", "hello.so", "sleep.so"),
                       args=["--workers", "1", "--max-queue", "0",
                             "--shutdown-timeout", "500ms"]) as srv:
        if not needs_sendfile(srv):
            return
        check_response(srv.get("/static/hello.txt"), 200, HELLO_TXT)
        with srv.conn() as sleeper:
            sleeper.send(build_request("GET", "/sleep/sync?ms=60000"))
            r = wait_get(srv, "/hello/sync", 503)  # the worker is taken
            r = srv.get("/static/hello.txt")
            check_response(r, 200, HELLO_TXT)
            r = srv.get("/static/data.bin")
            check_eq((r.status, r.header("Retry-After")), (503, "1"),
                     "a miss needs the pool, which is full")


def read_many(port, path, n, rcvbuf):
    """N connections GET PATH at once; each socket (receive buffer RCVBUF)
    read a little at a time, round robin, one thread. Their raw bytes."""
    sel = selectors.DefaultSelector()
    out = []
    for i in range(n):
        c = SmallConn(port, rcvbuf)
        c.sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n"
                       b"Connection: close\r\n\r\n" % path.encode())
        c.sock.setblocking(False)
        out.append(bytearray())
        sel.register(c.sock, selectors.EVENT_READ, i)
    deadline = time.monotonic() + IO_TIMEOUT * 2
    open_socks = n
    while open_socks:
        left = deadline - time.monotonic()
        check(left > 0, "%d of %d downloads unfinished" % (open_socks, n))
        for key, _ in sel.select(timeout=left):
            data = key.fileobj.recv(4096)  # a little: a slow reader
            if data:
                out[key.data] += data
            else:
                sel.unregister(key.fileobj)
                key.fileobj.close()
                open_socks -= 1
    return out


@test
def many_slow_downloads_complete():
    # 100 clients at once, each reading a little at a time, on two
    # workers: every one gets the whole file.
    with static_server(args=["--workers", "2"]) as srv:
        if not needs_sendfile(srv):
            return
        for raw in read_many(srv.port, "/static/big.bin", 100, 8192):
            head, sep, body = bytes(raw).partition(b"\r\n\r\n")
            check(head.startswith(b"HTTP/1.1 200 ") and sep,
                  "head %r" % head[:200])
            check(b"\r\ncontent-length: %d\r\n" % len(BIG)
                  in head.lower() + b"\r\n", "head %r" % head)
            check(body == BIG, "a body differs (len %d, want %d)"
                  % (len(body), len(BIG)))
        still_serving(srv)


@test
def http10_download_of_a_large_file_ends_right():
    with static_server() as srv:
        sent_by_server = sendfile_host(srv)
        digest = add_huge(srv)
        with srv.conn() as c:
            r = c.roundtrip("GET", "/static/huge.bin", version="HTTP/1.0")
            check_eq(r.status, 200, "status")
            # SDK 1.5: Content-Length; before, the end is the close
            check_eq(r.framing, "length" if sent_by_server else "close",
                     "framing")
            check_eq(hashlib.sha256(r.body).hexdigest(), digest,
                     "sha256 of the HTTP/1.0 body")
            check(c.wait_closed(), "HTTP/1.0 connection left open")
        still_serving(srv)


# ------------------------------------------------------------ validators

@test
def if_none_match_gives_304():
    with static_server() as srv:
        r = srv.get("/static/hello.txt")
        etag, lm = check_validators(r)
        for inm in (etag, "W/" + etag, '"nope", ' + etag, '"a",W/%s' % etag,
                    "*", " %s , \"x\"" % etag):
            n = srv.get("/static/hello.txt", headers={"If-None-Match": inm})
            check_304(n)
            check_eq(n.header("ETag"), etag, "304 ETag")
            check_eq(n.header("Last-Modified"), lm, "304 Last-Modified")
            check_eq(n.header("Content-Length"), None, "304 Content-Length")
            h = srv.request("HEAD", "/static/hello.txt",
                            headers={"If-None-Match": inm})
            check_eq(h.status, 304, "HEAD If-None-Match %r" % inm)
        for inm in ('"nope"', 'W/"nope"', etag[1:], "garbage"):
            check_response(srv.get("/static/hello.txt",
                                   headers={"If-None-Match": inm}),
                           200, HELLO_TXT)
        # the 304 has no body: the connection goes on cleanly
        with srv.conn() as c:
            check_eq(c.roundtrip("GET", "/static/hello.txt", headers={
                "If-None-Match": etag}).status, 304, "keep-alive 304")
            check_response(c.roundtrip("GET", "/static/hello.txt"), 200,
                           HELLO_TXT)
        # another file has another tag
        other = srv.get("/static/sub/nested.txt").header("ETag")
        check(other != etag, "two files share the ETag %r" % etag)


@test
def if_modified_since_gives_304():
    with static_server() as srv:
        r = srv.get("/static/hello.txt")
        etag, lm = check_validators(r)
        t = email.utils.parsedate_to_datetime(lm).timestamp()
        later = email.utils.formatdate(t + 3600, usegmt=True)
        earlier = email.utils.formatdate(t - 3600, usegmt=True)
        for ims in (lm, later,
                    # the two obsolete forms (RFC 9110 5.6.7)
                    time_rfc850(t), time_asctime(t)):
            n = srv.get("/static/hello.txt",
                        headers={"If-Modified-Since": ims})
            check_304(n)
            check_eq(n.header("ETag"), etag, "304 ETag (%s)" % ims)
        for ims in (earlier, "not a date", "Sun, 99 Foo 2020 99:00:00 GMT"):
            check_response(srv.get("/static/hello.txt",
                                   headers={"If-Modified-Since": ims}),
                           200, HELLO_TXT)
        # If-None-Match wins: a miss there ignores If-Modified-Since
        check_response(srv.get("/static/hello.txt", headers={
            "If-None-Match": '"other"', "If-Modified-Since": later}),
            200, HELLO_TXT)
        # a changed file is modified again, with a new tag (once the
        # open-file cache looks again: within cache_valid, 1 s)
        path = os.path.join(srv.work, "static", "hello.txt")
        with open(path, "ab") as f:
            f.write(b"more\n")
        os.utime(path, (t + 7200, t + 7200))
        n = wait_get(srv, "/static/hello.txt", 200, HELLO_TXT + b"more\n",
                     headers={"If-None-Match": etag, "If-Modified-Since": lm})
        check(n.header("ETag") != etag, "ETag unchanged after a write")


@test
def if_match_and_if_unmodified_since_give_412():
    # RFC 9110 §13.1.1, §13.1.4, §13.2.2: If-Match (strong comparison,
    # "*" for any current file) is evaluated first; If-Unmodified-Since
    # only without it, and not when it is no date; a failing one is 412,
    # before If-None-Match is looked at.
    with static_server() as srv:
        r = srv.get("/static/hello.txt")
        etag, lm = check_validators(r)
        t = email.utils.parsedate_to_datetime(lm).timestamp()
        later = email.utils.formatdate(t + 3600, usegmt=True)
        earlier = email.utils.formatdate(t - 3600, usegmt=True)
        cases = [
            ({"If-Match": etag}, 200),
            ({"If-Match": "*"}, 200),
            ({"If-Match": '"nope", ' + etag}, 200),
            ({"If-Match": '"nope"'}, 412),
            ({"If-Match": "W/" + etag}, 412),  # weak never matches
            ({"If-Unmodified-Since": lm}, 200),
            ({"If-Unmodified-Since": later}, 200),
            ({"If-Unmodified-Since": earlier}, 412),
            ({"If-Unmodified-Since": "not a date"}, 200),
            # If-Match present: If-Unmodified-Since is ignored
            ({"If-Match": etag, "If-Unmodified-Since": earlier}, 200),
            ({"If-Match": '"nope"', "If-Unmodified-Since": later}, 412),
            # the 412 comes before a 304 would
            ({"If-Match": '"nope"', "If-None-Match": etag}, 412),
            ({"If-Unmodified-Since": earlier, "If-None-Match": etag}, 412),
        ]
        with srv.conn() as c:
            for headers, status in cases:
                for method in ("GET", "HEAD"):
                    r = c.roundtrip(method, "/static/hello.txt",
                                    headers=headers)
                    check_eq(r.status, status, "%s %r" % (method, headers))
                    check_framing(r, method)
                    if status == 200 and method == "GET":
                        check_eq(r.body, HELLO_TXT, "body for %r" % headers)
            # two If-Match fields are one list
            c.send(b"GET /static/hello.txt HTTP/1.1\r\nHost: x\r\n"
                   b"If-Match: \"a\"\r\nIf-Match: %s\r\n\r\n"
                   % etag.encode())
            check_response(c.read_response(), 200, HELLO_TXT)
            # §13.2.1: no precondition turns what would not be a 2xx
            # into a 412
            for path, status in (("/static/missing.txt", 404),
                                 ("/static/sub", 404)):
                check_response(c.roundtrip("GET", path, headers={
                    "If-Match": '"nope"', "If-Unmodified-Since": earlier}),
                    status)
        still_serving(srv)


@test
def if_none_match_overrides_if_modified_since_and_304_keeps_headers():
    # RFC 9110 §13.1.3: If-Modified-Since MUST be ignored when
    # If-None-Match is present. §15.4.5: a 304 carries the ETag, Date,
    # Cache-Control, Expires, Vary and Content-Location the 200 would.
    with static_server() as srv:
        r = srv.get("/static/hello.txt")
        etag, lm = check_validators(r)
        t = email.utils.parsedate_to_datetime(lm).timestamp()
        earlier = email.utils.formatdate(t - 3600, usegmt=True)
        n = srv.get("/static/hello.txt", headers={
            "If-None-Match": etag, "If-Modified-Since": earlier})
        check_304(n)
        for name in ("ETag", "Cache-Control", "Expires", "Vary",
                     "Content-Location", "Last-Modified"):
            check_eq(n.header(name), r.header(name), "304 " + name)


def time_rfc850(t):
    import time
    return time.strftime("%A, %d-%b-%y %H:%M:%S GMT", time.gmtime(t))


def time_asctime(t):
    import time
    tm = time.gmtime(t)
    return time.strftime("%a %b ", tm) + "%2d" % tm.tm_mday + \
        time.strftime(" %H:%M:%S %Y", tm)


# ------------------------------------------------------------ ranges

def get_range(srv, path, rng, **headers):
    headers["Range"] = rng
    return srv.get(path, headers=headers)


@test
def single_ranges_give_206():
    with static_server() as srv:
        n = len(HELLO_TXT)
        for rng, first, last in (("bytes=0-4", 0, 4), ("bytes=7-", 7, n - 1),
                                 ("bytes=-6", n - 6, n - 1),
                                 ("bytes=3-3", 3, 3),
                                 ("bytes=5-1000", 5, n - 1),
                                 ("bytes=-1000", 0, n - 1),
                                 ("BYTES = 1-2", 1, 2)):
            r = get_range(srv, "/static/hello.txt", rng)
            check_response(r, 206, HELLO_TXT[first:last + 1])
            check_eq(r.header("Content-Range"),
                     "bytes %d-%d/%d" % (first, last, n), "Content-Range")
            check_eq(r.header("Content-Length"), str(last - first + 1),
                     "206 Content-Length")
            check_eq(r.header("Content-Type"), "text/plain; charset=utf-8",
                     "206 type")
            check_validators(r)
        # in a binary file, and across the streaming chunks of a big one
        r = get_range(srv, "/static/data.bin", "bytes=1000-200999")
        check_response(r, 206, DATA[1000:201000])
        first, last = 65536 - 10, 3 * 1024 * 1024 - 1
        r = get_range(srv, "/static/big.bin", "bytes=%d-%d" % (first, last))
        check_eq(r.status, 206, "big range status")
        check(r.body == BIG[first:last + 1], "big range body differs")
        check_eq(r.header("Content-Range"),
                 "bytes %d-%d/%d" % (first, last, len(BIG)),
                 "big Content-Range")
        r = get_range(srv, "/static/big.bin", "bytes=-100")
        check_response(r, 206, BIG[-100:])


@test
def unsatisfiable_range_is_416():
    with static_server() as srv:
        n = len(HELLO_TXT)
        for rng in ("bytes=%d-" % n, "bytes=%d-%d" % (n + 5, n + 9),
                    "bytes=-0", "bytes=99999999999999999999999-"):
            r = get_range(srv, "/static/hello.txt", rng)
            check_response(r, 416)
            check_eq(r.header("Content-Range"), "bytes */%d" % n,
                     "416 Content-Range for %r" % rng)
        r = get_range(srv, "/static/empty.txt", "bytes=0-")
        check_response(r, 416)
        check_eq(r.header("Content-Range"), "bytes */0", "empty 416")
        still_serving(srv)


@test
def other_ranges_get_the_whole_file():
    with static_server() as srv:
        # several ranges: the whole file (allowed); malformed: ignored
        for rng in ("bytes=0-1,3-4", "bytes=0-1, -2", "bytes=5-2",
                    "bytes=a-b", "bytes=", "bytes=-", "items=0-1", "0-1",
                    "bytes=1-2x", "bytes=--1"):
            r = get_range(srv, "/static/hello.txt", rng)
            check_response(r, 200, HELLO_TXT)
            check_eq(r.header("Content-Range"), None,
                     "Content-Range on 200 for %r" % rng)
        # a suffix of an empty file: the (empty) whole
        check_response(get_range(srv, "/static/empty.txt", "bytes=-5"), 200,
                       b"")


@test
def range_only_for_get_and_if_range_only_with_range():
    # RFC 9110 §14.2: a Range on HEAD is ignored (the full length, no
    # Content-Range); §13.1.5: If-Range without Range is ignored.
    with static_server() as srv:
        etag, lm = check_validators(srv.get("/static/hello.txt"))
        r = srv.request("HEAD", "/static/hello.txt",
                        headers={"Range": "bytes=0-4"})
        check_response(r, 200, b"", method="HEAD")
        check_eq(r.header("Content-Length"), str(len(HELLO_TXT)),
                 "HEAD with Range: Content-Length")
        check_eq(r.header("Content-Range"), None, "HEAD Content-Range")
        for if_range in (etag, '"other"'):
            r = srv.get("/static/hello.txt", headers={"If-Range": if_range})
            check_response(r, 200, HELLO_TXT)
            check_eq(r.header("Content-Range"), None,
                     "If-Range %r without Range" % if_range)


@test
def if_range_guards_the_range():
    with static_server() as srv:
        r = srv.get("/static/hello.txt")
        etag, lm = check_validators(r)
        check_response(get_range(srv, "/static/hello.txt", "bytes=0-4",
                                 **{"If-Range": etag}), 206, HELLO_TXT[:5])
        check_response(get_range(srv, "/static/hello.txt", "bytes=0-4",
                                 **{"If-Range": lm}), 206, HELLO_TXT[:5])
        for stale in ('"other"', "W/" + etag,
                      "Sun, 06 Nov 1994 08:49:37 GMT"):
            check_response(get_range(srv, "/static/hello.txt", "bytes=0-4",
                                     **{"If-Range": stale}), 200, HELLO_TXT)


# ------------------------------------------------------------ directories

@test
def directories_are_404_with_index_off():
    with static_server() as srv:
        for path in ("/static", "/static/", "/static/sub", "/static/sub/",
                     "/static/sub/deeper/", "/static/nodir/"):
            r = srv.get(path)
            check_response(r, 404)
            check(b"<title>" not in r.body, "an index was served for %s"
                  % path)
        # but index.html by name is a plain file
        check_response(srv.get("/static/index.html"), 200, INDEX)


@test
def only_get_and_head():
    with static_server() as srv:
        for method in ("POST", "PUT", "DELETE"):
            r = srv.request(method, "/static/hello.txt", body=b"x")
            check_response(r, 405)
            allow = r.header("Allow") or ""
            check("GET" in allow and "HEAD" in allow, "Allow %r" % allow)
        still_serving(srv)


# ------------------------------------------------------------ escapes

ESCAPES = [
    "/static/../secret",
    "/static/../../secret",
    "/static/%2e%2e/secret",
    "/static/%2E%2E/secret",
    "/static/.%2e/secret",
    "/static/%2E%2E%2Fsecret",
    "/static/%2e%2e%2fsecret",
    "/static/..%2fsecret",
    "/static/..%2Fsecret",
    "/static/a/..%2f..%2fsecret",
    "/static/sub/..%2F..%2Fsecret",
    "/static/%2e%2e%2f%2e%2e%2fsecret",
    "/static/%252e%252e/secret",
    "/static/..%5csecret",
    "/static/..\\secret",
    "/static/%2fsecret",
    "/static/%2F..%2Fsecret",
    "/static/%00",
    "/static/secret%00",
    "/static/hello.txt%00.png",
    "/static/link_out",
    "/static/rel_link_out",
    "/static/dir_link/secret",
    "/static/dir_link/",
    "/static/dir_link",
    "/static/dir_link/%2e%2e/secret",
    "/static/sub_link/nested.txt",
    "/static/link_in",
    "/static/fifo",
    "/static//secret",
    "/static/./../secret",
    "/static/sub/../../secret",
]


@test
def nothing_outside_the_root_is_ever_served():
    with static_server() as srv:
        with srv.conn() as keep:  # one connection kept across all of it
            for path in ESCAPES:
                # raw bytes on the wire: no client-side normalization
                with srv.conn() as c:
                    c.send(b"GET " + path.encode("latin-1") +
                           b" HTTP/1.1\r\nHost: x\r\n\r\n")
                    try:
                        r = c.read_response()
                    except Exception as e:  # noqa: B902 - closed is fine
                        check("closed" in str(e), "%s: %r" % (path, e))
                        continue
                check(r.status in (400, 404),
                      "%s: status %d, want 400 or 404" % (path, r.status))
                check(b"SECRET" not in r.body, "%s served the secret" % path)
                check_response(keep.roundtrip("GET", "/static/hello.txt"),
                               200, HELLO_TXT)
            # the same in HEAD, and the fifo did not hang a worker
            for path in ("/static/link_out", "/static/dir_link/secret",
                         "/static/fifo"):
                h = keep.roundtrip("HEAD", path)
                check_eq(h.status, 404, "HEAD " + path)
        # the link targets are fine by their own name outside: proof that
        # the refusals above are about the links, not the files
        check(open(os.path.join(srv.work, "static", "link_out"), "rb")
              .read() == SECRET, "fixture: link_out does not reach secret")
        still_serving(srv)
        check(not any("static" in l and "error" in l.lower()
                      for l in srv.log_lines()
                      if "serving" not in l), "error logged:\n" +
              srv.log_tail())


@test
def swapped_in_symlink_is_not_followed():
    with static_server() as srv:
        root = os.path.join(srv.work, "static")
        # a directory replaced by a link to outside after the server started
        os.rename(os.path.join(root, "nodir"), os.path.join(root, "was"))
        os.symlink(os.path.join(srv.work, "outside"),
                   os.path.join(root, "nodir"))
        check_response(srv.get("/static/nodir/secret"), 404)
        # a file replaced by a link
        os.rename(os.path.join(root, "notes.txt"),
                  os.path.join(root, "notes.old"))
        os.symlink(os.path.join(srv.work, "secret"),
                   os.path.join(root, "notes.txt"))
        r = srv.get("/static/notes.txt")
        check_response(r, 404)
        check(b"SECRET" not in r.body, "served the secret")
        still_serving(srv)


@test
def unreadable_file_is_403():
    if os.geteuid() == 0:
        print("  (skipped: root reads every file)")
        return
    with static_server() as srv:
        path = os.path.join(srv.work, "static", "hello.txt")
        sub = os.path.join(srv.work, "static", "sub")
        os.chmod(path, 0)
        os.chmod(sub, 0)  # not even searchable
        try:
            check_response(srv.get("/static/hello.txt"), 403)
            check_response(srv.get("/static/sub/nested.txt"), 403)
        finally:
            os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
            os.chmod(sub, stat.S_IRWXU)
        still_serving(srv)


@test
def missing_root_refuses_the_plugin_only():
    work = tempfile.mkdtemp(prefix="spoke-it-static-")
    try:
        with static_server(work=work) as srv:
            check(srv.wait_log(r"static.*root .*static.*No such file",
                               timeout=10) is not None,
                  "no log line naming the missing root:\n" + srv.log_tail())
            check(srv.wait_log(r"refused plugin static", timeout=10)
                  is not None, "static.so not refused:\n" + srv.log_tail())
            check_response(srv.get("/static/hello.txt"), 404)
            check_response(srv.get("/hello"), 200, HELLO)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@test
def start_logs_the_resolved_root():
    with static_server() as srv:
        root = os.path.realpath(os.path.join(srv.work, "static"))
        check(srv.wait_log(r"serving %s at /static/ \(index off\)"
                           % root.replace(".", r"\."), timeout=10)
              is not None, "no start line:\n" + srv.log_tail())


# ------------------------------------------------------------ --config

def config_test(fn):
    """A test that needs --config: skipped (and says so) without it."""
    def run():
        if not has_config_flag():
            print("  (skipped: this spoke has no --config)")
            return
        fn()
    run.__name__ = fn.__name__
    return test(run)


@config_test
def config_sets_root_prefix_and_index():
    work = make_tree()
    try:
        conf = conf_file(work, "[plugin static]\n"
                               "root = %s\n"
                               "prefix = /files/\n"
                               "index = on\n"
                               "colour = blue\n"  # unknown: ignored
                               "[plugin other]\n"
                               "prefix = /nope\n"
                         % os.path.join(work, "static", "sub"))
        # another working directory: the root comes from the file
        with static_server(work=tempfile.gettempdir(),
                           args=["--config", conf]) as srv:
            check_response(srv.get("/files/nested.txt"), 200, b"nested\n")
            check_response(srv.get("/files/deeper/leaf.txt"), 200, b"leaf\n")
            check_response(srv.get("/static/hello.txt"), 404)
            check_response(srv.get("/files/hello.txt"), 404)
            r = srv.get("/files/")
            check_response(r, 200, SUB_INDEX)
            check_eq(r.header("Content-Type"), "text/html; charset=utf-8",
                     "index type")
            check_validators(r)
            r = srv.get("/files")
            check_response(r, 301)
            check_eq(r.header("Location"), "/files/", "Location")
            r = srv.get("/files/deeper?x=1")
            check_response(r, 301)
            check_eq(r.header("Location"), "/files/deeper/?x=1", "Location")
            # a directory without index.html is still 404
            check_response(srv.get("/files/deeper/"), 404)
            h = srv.request("HEAD", "/files/")
            check_eq(h.status, 200, "HEAD index")
            check_eq(h.header("Content-Length"), str(len(SUB_INDEX)),
                     "HEAD index length")
            check_response(srv.get("/files/../secret"), 404)
            check_response(srv.get("/files/..%2f..%2fsecret"), 404)
            check_response(srv.get("/hello"), 200, HELLO)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@config_test
def config_index_on_at_the_default_prefix():
    work = make_tree()
    try:
        conf = conf_file(work, "[plugin static]\nindex = on\n")
        with static_server(work=work, args=["--config", conf]) as srv:
            check_response(srv.get("/static/"), 200, INDEX)
            check_response(srv.get("/static/sub/"), 200, SUB_INDEX)
            check_eq(srv.get("/static/sub").header("Location"),
                     "/static/sub/", "Location")
            # never through a link, not even to a directory inside
            check_response(srv.get("/static/sub_link/"), 404)
            check_response(srv.get("/static/dir_link/"), 404)
            check_response(srv.get("/static/nodir/"), 404)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@config_test
def config_prefix_at_the_top():
    work = make_tree()
    try:
        conf = conf_file(work, "[plugin static]\nprefix = /\n")
        with static_server(work=work, plugins=["static.so"],
                           args=["--config", conf]) as srv:
            check_response(srv.get("/hello.txt"), 200, HELLO_TXT)
            check_response(srv.get("/sub/nested.txt"), 200, b"nested\n")
            check_response(srv.get("/"), 404)
            check_response(srv.get("/../secret"), 404)
            check_response(srv.get("/link_out"), 404)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@config_test
def reload_keeps_the_configured_prefix():
    # every loaded version is its own copy of the .so: the new one starts
    # from the default route and its init moves it again
    work = make_tree()
    try:
        conf = conf_file(work, "[plugin static]\nprefix = /files\n")
        with static_server(work=work, args=["--config", conf]) as srv:
            check_response(srv.get("/files/hello.txt"), 200, HELLO_TXT)
            staged = os.path.join(srv.plugins_dir, "static.so.new")
            shutil.copyfile(os.path.join(srv.plugins_dir, "static.so"),
                            staged)
            os.rename(staged, os.path.join(srv.plugins_dir, "static.so"))
            check(srv.wait_log(r"reloaded plugin static", timeout=15)
                  is not None, "no reload:\n" + srv.log_tail())
            check_response(srv.get("/files/hello.txt"), 200, HELLO_TXT)
            check_response(srv.get("/static/hello.txt"), 404)
            check(srv.wait_log(r"unloaded plugin static", timeout=15)
                  is not None, "old version not unloaded")
            check_response(srv.get("/files/sub/nested.txt"), 200,
                           b"nested\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------ the cache

def replace_file(path, data):
    """PATH replaced whole by a rename (a new inode), as a deploy does."""
    write(path + ".tmp", data)
    os.replace(path + ".tmp", path)


@test
def cache_sees_changes_within_cache_valid():
    # The default cache_valid is 1 s: a replaced file is served new, a
    # deleted one becomes 404 and a recreated one comes back, each within
    # it (polled with a deadline, not timed).
    with static_server() as srv:
        path = os.path.join(srv.work, "static", "notes.txt")
        r = srv.get("/static/notes.txt")
        check_response(r, 200, b"notes.txt")
        old_etag = r.header("ETag")
        replace_file(path, b"a new version, longer than the old\n")
        r = wait_get(srv, "/static/notes.txt", 200,
                     b"a new version, longer than the old\n")
        check_eq(r.header("Content-Length"), "35", "new Content-Length")
        check(r.header("ETag") != old_etag, "ETag unchanged")
        os.unlink(path)
        wait_get(srv, "/static/notes.txt", 404)
        write(path, b"back\n")
        wait_get(srv, "/static/notes.txt", 200, b"back\n")
        # a 304 for the new tag, a 200 for the old
        etag = srv.get("/static/notes.txt").header("ETag")
        check_304(srv.get("/static/notes.txt",
                          headers={"If-None-Match": etag}))
        check_response(srv.get("/static/notes.txt",
                               headers={"If-None-Match": old_etag}),
                       200, b"back\n")
        still_serving(srv)


def open_fds_below(pid, root):
    """How many fds process PID holds on files below ROOT."""
    n = 0
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith(
                    root + os.sep):
                n += 1
        except OSError:
            pass
    return n


def wait_fds_at_most(srv, root, n, timeout=10.0):
    """Waits until the server holds at most N fds on files below ROOT (the
    server closes a response's fd once it is sent, just after the client
    has the last byte)."""
    root = os.path.realpath(root)
    deadline = time.monotonic() + timeout
    while True:
        got = open_fds_below(srv.proc.pid, root)
        if got <= n:
            return
        check(time.monotonic() < deadline, "%d fds open below %s, want at "
              "most %d" % (got, root, n))
        srv.wait_log(r"^$", timeout=0.01)  # a short, bounded pause


@config_test
def cache_keeps_files_open_and_pushes_out_one_not_used_lately():
    # cache_valid = 3600: nothing is looked at again during the test, so
    # what the server answers shows what the cache holds. Two entries.
    work = make_tree()
    try:
        conf = conf_file(work, "[plugin static]\ncache_entries = 2\n"
                               "cache_valid = 3600\n")
        with static_server(work=work, args=["--config", conf]) as srv:
            check(srv.wait_log(r"open-file cache: 2 files, each trusted "
                               r"3600 s", timeout=10) is not None,
                  "no cache line:\n" + srv.log_tail())
            root = os.path.join(work, "static")
            for name in ("page.html", "style.css"):
                check_response(srv.get("/static/" + name), 200,
                               name.encode())
                replace_file(os.path.join(root, name), b"new " +
                             name.encode())
            # cached: the open file, as it was, is served (and page.html
            # is marked used; style.css is not, since it was stored)
            check_response(srv.get("/static/page.html"), 200, b"page.html")
            # a third file pushes out one not used lately: style.css;
            # page.html, used, is spared once (its mark cleared)
            check_response(srv.get("/static/app.js"), 200, b"app.js")
            # style.css is opened anew, and pushes out page.html, not
            # used since it was spared
            check_response(srv.get("/static/style.css"), 200,
                           b"new style.css")
            replace_file(os.path.join(root, "style.css"), b"newer")
            check_response(srv.get("/static/style.css"), 200,
                           b"new style.css")
            check_response(srv.get("/static/page.html"), 200,
                           b"new page.html")
            # HEAD and ranges come from the same entry
            replace_file(os.path.join(root, "page.html"), b"newest")
            h = srv.request("HEAD", "/static/page.html")
            check_eq(h.header("Content-Length"), "13", "HEAD length")
            check_response(get_range(srv, "/static/page.html", "bytes=4-7"),
                           206, b"page")
            # a miss is not cached: it is looked for every time
            check_response(srv.get("/static/later.txt"), 404)
            write(os.path.join(root, "later.txt"), b"later\n")
            check_response(srv.get("/static/later.txt"), 200, b"later\n")
            # no fd beyond the two entries stays open once responses end
            wait_fds_at_most(srv, root, 2)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@config_test
def cache_valid_0_turns_the_cache_off():
    work = make_tree()
    try:
        conf = conf_file(work, "[plugin static]\ncache_valid = 0\n")
        with static_server(work=work, args=["--config", conf]) as srv:
            check(srv.wait_log(r"open-file cache off", timeout=10)
                  is not None, "no cache line:\n" + srv.log_tail())
            path = os.path.join(work, "static", "notes.txt")
            check_response(srv.get("/static/notes.txt"), 200, b"notes.txt")
            # seen at once, without waiting
            replace_file(path, b"changed\n")
            check_response(srv.get("/static/notes.txt"), 200, b"changed\n")
            os.unlink(path)
            check_response(srv.get("/static/notes.txt"), 404)
            check_response(srv.get("/static/big.bin"), 200, BIG)
            wait_fds_at_most(srv, os.path.join(work, "static"), 0)
            still_serving(srv)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ------------------------------------------------------------ gzip_static

CSS = b"body { color: #333; }\n" * 200


@config_test
def gzip_static_serves_the_precompressed_sibling():
    work = make_tree()
    try:
        root = os.path.join(work, "static")
        write(os.path.join(root, "site.css"), CSS)
        gz = gzip.compress(CSS)
        write(os.path.join(root, "site.css.gz"), gz)
        st = os.stat(os.path.join(root, "site.css"))
        os.utime(os.path.join(root, "site.css.gz"),
                 ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        # a stale sibling: older than its file
        write(os.path.join(root, "old.css"), CSS)
        write(os.path.join(root, "old.css.gz"), gz)
        st = os.stat(os.path.join(root, "old.css"))
        os.utime(os.path.join(root, "old.css.gz"),
                 ns=(st.st_atime_ns, st.st_mtime_ns - 10**9))
        conf = conf_file(work, "[plugin static]\ngzip_static = on\n")
        with static_server(work=work, args=["--config", conf]) as srv:
            plain = srv.get("/static/site.css")
            check_response(plain, 200, CSS)
            check_eq(plain.header("Content-Encoding"), None, "identity CE")
            check_eq(plain.header("Vary"), "Accept-Encoding", "identity Vary")
            for ae in ("gzip", "gzip, deflate, br", "br;q=1, GZIP;q=0.5",
                       "*", "x-gzip"):
                r = srv.get("/static/site.css",
                            headers={"Accept-Encoding": ae})
                check_response(r, 200, gz)
                check_eq(r.header("Content-Encoding"), "gzip", "CE " + ae)
                check_eq(r.header("Vary"), "Accept-Encoding", "Vary " + ae)
                check_eq(r.header("Content-Type"),
                         "text/css; charset=utf-8", "type of the .gz")
                check_eq(r.header("Content-Length"), str(len(gz)), "length")
            zipped = r
            check(zipped.header("ETag") != plain.header("ETag"),
                  "the .gz has the file's ETag")
            for ae in ("gzip;q=0", "deflate, br", "identity", "*;q=0",
                       "gzip;q=0.000, *"):
                r = srv.get("/static/site.css",
                            headers={"Accept-Encoding": ae})
                check_response(r, 200, CSS)
                check_eq(r.header("Content-Encoding"), None, "CE for " + ae)
            # a stale sibling is not served
            r = srv.get("/static/old.css", headers={"Accept-Encoding": "gzip"})
            check_response(r, 200, CSS)
            check_eq(r.header("Content-Encoding"), None, "stale .gz")
            # ranges count the .gz's bytes; validators are per variant
            r = get_range(srv, "/static/site.css", "bytes=10-19",
                          **{"Accept-Encoding": "gzip"})
            check_response(r, 206, gz[10:20])
            check_eq(r.header("Content-Range"), "bytes 10-19/%d" % len(gz),
                     "gz Content-Range")
            r = get_range(srv, "/static/site.css", "bytes=10-19",
                          **{"Accept-Encoding": "gzip",
                             "If-Range": plain.header("ETag")})
            check_response(r, 200, gz)
            n = srv.get("/static/site.css", headers={
                "Accept-Encoding": "gzip",
                "If-None-Match": zipped.header("ETag")})
            check_304(n)
            check_eq(n.header("Vary"), "Accept-Encoding", "304 Vary")
            check_response(srv.get("/static/site.css", headers={
                "Accept-Encoding": "gzip",
                "If-None-Match": plain.header("ETag")}), 200, gz)
            h = srv.request("HEAD", "/static/site.css",
                            headers={"Accept-Encoding": "gzip"})
            check_eq(h.header("Content-Encoding"), "gzip", "HEAD CE")
            check_eq(h.header("Content-Length"), str(len(gz)), "HEAD length")
            # no sibling: the file, with Vary all the same
            r = srv.get("/static/hello.txt", headers={"Accept-Encoding":
                                                      "gzip"})
            check_response(r, 200, HELLO_TXT)
            check_eq(r.header("Vary"), "Accept-Encoding", "Vary, no .gz")
            # the .gz by its own name is a file like another
            check_response(srv.get("/static/site.css.gz"), 200, gz)
            still_serving(srv)
        # off (the default): no sibling, no Vary
        with static_server(work=work) as srv:
            r = srv.get("/static/site.css", headers={"Accept-Encoding":
                                                     "gzip"})
            check_response(r, 200, CSS)
            check_eq(r.header("Content-Encoding"), None, "CE when off")
            check_eq(r.header("Vary"), None, "Vary when off")
    finally:
        shutil.rmtree(work, ignore_errors=True)


@config_test
def config_mistakes_refuse_the_plugin():
    work = make_tree()
    try:
        for section, want in (("index = maybe\n", r"index = maybe"),
                              ("prefix = static\n", r"prefix = static"),
                              ("prefix = /a/../b\n", r"prefix = /a/\.\./b"),
                              ("prefix = /:id\n", r"prefix = /:id"),
                              ("gzip_static = gz\n",
                               r"gzip_static = gz: want on or off"),
                              ("cache_entries = -1\n",
                               r"cache_entries = -1: want 0 to"),
                              ("cache_entries = 10x\n",
                               r"cache_entries = 10x: want"),
                              ("cache_valid = soon\n",
                               r"cache_valid = soon: want"),
                              ("root = /nonexistent/dir\n",
                               r"root /nonexistent/dir"),
                              ("root = %s\n" % os.path.join(work, "secret"),
                               r"root .*secret: Not a directory")):
            conf = conf_file(work, "[plugin static]\n" + section)
            with static_server(work=work, args=["--config", conf]) as srv:
                check(srv.wait_log(want, timeout=10) is not None,
                      "%r: no log line %r:\n%s"
                      % (section, want, srv.log_tail()))
                check(srv.wait_log(r"refused plugin static", timeout=10)
                      is not None, "%r: not refused" % section)
                check_response(srv.get("/static/hello.txt"), 404)
                check_response(srv.get("/hello"), 200, HELLO)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
