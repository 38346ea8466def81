#!/usr/bin/env python3
"""selftest.py FUZZ_CONN: checks fuzz_conn's response checker itself.

A scripted server on a loopback port answers "GET /case/NAME" with the
canned bytes of case NAME; fuzz_conn runs each case as one input against
it (SPOKE_FUZZ_PORT). Well-formed cases must pass, each broken one must
make fuzz_conn abort with the expected reason. Not run by `make fuzz`:
run it after changing the checker:

    python3 tests/fuzz/selftest.py build-fuzz/tests/fuzz/fuzz_conn
"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

DATE = b"Date: Tue, 24 Nov 2026 09:30:05 GMT\r\n"


def resp(status=b"200 OK", headers=b"", body=b"", date=True, cl=True):
    h = b"HTTP/1.1 " + status + b"\r\n" + (DATE if date else b"") + headers
    if cl:
        h += b"Content-Length: %d\r\n" % len(body)
    return h + b"\r\n" + body


HELLO = resp(body=b"Hello, World!")
CHUNKED = resp(headers=b"Transfer-Encoding: chunked\r\n", cl=False,
               body=b"4\r\none\n\r\nA\r\n0123456789\r\n0\r\n\r\n")

# name: (bytes to send, then "keep" | "close" | "silent" | "linger", expect)
# expect: None when fuzz_conn must pass, else a piece of its reason.
CASES = {
    "ok_length": (HELLO, "keep", None),
    "ok_chunked": (CHUNKED, "keep", None),
    "ok_continue": (b"HTTP/1.1 100 Continue\r\n\r\n" + HELLO, "keep", None),
    "ok_head": (resp(headers=b"Content-Length: 13\r\n", cl=False), "keep", None),
    "ok_204": (resp(b"204 No Content", cl=False), "keep", None),
    "ok_close_delimited": (resp(headers=b"Connection: close\r\n", cl=False,
                                body=b"streamed to EOF"), "close", None),
    "ok_close": (resp(headers=b"Connection: close\r\n", body=b"bye"), "close",
                 None),
    "no_date": (resp(date=False, body=b"x"), "keep", "without a Date"),
    "two_dates": (resp(headers=DATE, body=b"x"), "keep", "two Date"),
    "bad_date": (resp(date=False, headers=b"Date: yesterday\r\n", body=b"x"),
                 "keep", "malformed Date"),
    "two_lengths": (resp(headers=b"Content-Length: 1\r\n", body=b"x"), "keep",
                    "two Content-Length"),
    "length_and_chunked": (resp(headers=b"Transfer-Encoding: chunked\r\n",
                                body=b"0\r\n\r\n"), "keep",
                           "both Content-Length and Transfer-Encoding"),
    "status_99": (b"HTTP/1.1 099 Low\r\n" + DATE + b"\r\n", "keep", "100..599"),
    "status_600": (resp(b"600 High", body=b"x"), "keep", "100..599"),
    "http10_status": (b"HTTP/1.0 200 OK\r\n" + DATE +
                      b"Content-Length: 0\r\n\r\n", "keep", "status line"),
    "garbage": (b"hello there\r\n\r\n", "keep", "status line"),
    "bare_lf_header": (b"HTTP/1.1 200 OK\r\n" + DATE +
                       b"X-A: b\nContent-Length: 0\r\n\r\n", "keep",
                       "control byte"),
    "space_in_name": (resp(headers=b"X A: b\r\n"), "keep", "not followed by"),
    "ctl_in_value": (resp(headers=b"X-A: b\x01\r\n"), "keep", "control byte"),
    "short_body": (resp(headers=b"Content-Length: 10\r\n", cl=False,
                        body=b"abc"), "close", "body shorter than Content-Length"),
    "bad_chunk": (resp(headers=b"Transfer-Encoding: chunked\r\n", cl=False,
                       body=b"zz\r\n"), "keep", "chunk size is not hex"),
    "interim_101": (b"HTTP/1.1 101 Switching\r\n\r\n" + HELLO, "keep",
                    "interim"),
    "two_answers": (HELLO + HELLO, "keep", "beyond the complete requests"),
    "after_close": (resp(headers=b"Connection: close\r\n", body=b"x") + HELLO,
                    "close", "after a Connection: close"),
    "close_delimited_no_close": (resp(cl=False, body=b"x"), "close",
                                 "no Content-Length, no chunked"),
    "closes_silently": (b"", "close", "closed the connection without"),
    "never_answers": (b"", "linger", "stopped answering"),
    "ignores_eof": (HELLO, "silent", "did not close after"),
}


def serve(sock):
    while True:
        conn, _ = sock.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def handle(conn):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            target = head.split(b" ")[1].decode()
            name = target.rsplit("/", 1)[-1]
            out, then, _ = CASES.get(name, (HELLO, "keep", None))
            conn.sendall(out)
            if then == "close":
                return
            if then in ("silent", "linger"):
                time.sleep(3)
                return
    except OSError:
        return
    finally:
        conn.close()


def main():
    fuzz_conn = os.path.abspath(sys.argv[1])
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    threading.Thread(target=serve, args=(sock,), daemon=True).start()
    env = dict(os.environ, SPOKE_FUZZ_PORT=str(sock.getsockname()[1]),
               SPOKE_FUZZ_STALL_MS="700")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for name, (_, _, expect) in CASES.items():
            method = b"HEAD" if name == "ok_head" else b"GET"
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(method + b" /case/" + name.encode() +
                        b" HTTP/1.1\r\nHost: a\r\n\r\n")
            p = subprocess.run([fuzz_conn, path], env=env, cwd=tmp,
                               capture_output=True, text=True,
                               errors="replace", timeout=60)
            broke = "INVARIANT BROKEN" in p.stderr
            if expect is None:
                ok = p.returncode == 0 and not broke
            else:
                ok = p.returncode != 0 and broke and expect in p.stderr
            print("%-26s %s" % (name, "ok" if ok else "FAILED"))
            if not ok:
                failures += 1
                print(p.stderr[-2000:])
    print("selftest: %d of %d cases failed" % (failures, len(CASES)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
