"""cdp.py: a minimal Chrome DevTools Protocol client, standard library only.

Chromium started with --remote-debugging-port=0 prints
"DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" on stderr;
Browser.connect(that_url) opens the WebSocket (RFC 6455: the HTTP upgrade
handshake, masked client frames, unmasked server frames, fragments, ping and
close) and call() sends one JSON-RPC command and returns its result, keeping
the events that arrive meanwhile. Commands for a page go through a flat
session: attach() to a page target gives a sessionId that call() passes on.

Only what tests/integration/test_browser_demo.py needs: one connection, one
command at a time, text frames.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import time
import urllib.parse

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class CDPError(Exception):
    pass


class WebSocket:
    """A client WebSocket connection: send_text(), recv_text(), close()."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "ws":
            raise CDPError("not a ws:// URL: %r" % url)
        self.sock = socket.create_connection((u.hostname, u.port or 80),
                                             timeout=timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        self.sock.sendall((
            "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
            % (path, u.hostname, u.port or 80, key)).encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not lines[0].startswith("HTTP/1.1 101"):
            raise CDPError("WebSocket upgrade refused: %r" % head[:300])
        headers = dict(l.split(":", 1) for l in lines[1:] if ":" in l)
        headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
        want = base64.b64encode(hashlib.sha1(
            (key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise CDPError("bad Sec-WebSocket-Accept in %r" % head[:300])

    def _fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise CDPError("DevTools connection closed")
        self.buf += data

    def _read(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        # XOR the payload with the mask, as one big integer at a time.
        m = (mask * (n // 4 + 1))[:n]
        masked = (int.from_bytes(payload, "big") ^
                  int.from_bytes(m, "big")).to_bytes(n, "big")
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self._send_frame(0x1, text.encode("utf-8"))

    def recv_text(self):
        """The next whole text message (fragments joined); answers pings."""
        parts = []
        while True:
            b0, b1 = self._read(2)
            opcode, fin = b0 & 0x0F, b0 & 0x80
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            if opcode == 0x8:
                raise CDPError("DevTools closed the WebSocket: %r" % payload)
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x1, 0x0):
                parts.append(payload)
                if fin:
                    return b"".join(parts).decode("utf-8")
            # pong and anything else: ignored

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass


class Browser:
    """A DevTools connection to the browser endpoint."""

    def __init__(self, ws_url, timeout=30.0):
        self.timeout = timeout
        self.ws = WebSocket(ws_url, timeout)
        self.next_id = 0
        self.events = []      # every event received, as {"method", "params"}

    def call(self, method, params=None, session=None, timeout=None):
        """Sends METHOD and returns its result; raises CDPError on an
        error answer, or when none comes within TIMEOUT seconds."""
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        self.ws.send_text(json.dumps(msg))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("no answer to %s" % method)
            self.ws.sock.settimeout(left)
            try:
                reply = json.loads(self.ws.recv_text())
            except socket.timeout:
                raise CDPError("no answer to %s within %.0fs"
                               % (method, timeout or self.timeout))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise CDPError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def attach(self, url="about:blank"):
        """Opens a new page at URL; returns its flat sessionId."""
        target = self.call("Target.createTarget", {"url": url})["targetId"]
        return self.call("Target.attachToTarget",
                         {"targetId": target, "flatten": True})["sessionId"]

    def evaluate(self, session, expression):
        """The value of a JavaScript EXPRESSION in the page, as JSON
        (promises awaited); raises CDPError if it threw."""
        r = self.call("Runtime.evaluate",
                      {"expression": expression, "returnByValue": True,
                       "awaitPromise": True}, session=session)
        if "exceptionDetails" in r:
            raise CDPError("%s threw: %s" % (expression, r["exceptionDetails"]))
        return r["result"].get("value")

    def close(self):
        self.ws.close()
