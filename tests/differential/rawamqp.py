"""A raw-socket AMQP 0-9-1 client for the differential scenarios that send bytes no client library
would: malformed frames, property bytes that do not decode, content headers announcing huge bodies.

``RawClient(url)`` does the handshake (PLAIN, channel_max 2047, frame_max 131072, no heartbeats),
then ``send(bytes)`` and ``replies(timeout)`` return what the broker answered as a list of
``(channel, method name, detail)`` with the reply code and text of closes, until the connection is
closed by the broker, it sends a connection.close, or ``timeout`` passes.
"""
from __future__ import annotations

import socket
import struct
import time
import urllib.parse

PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_NAMES = {(10, 10): "connection.start", (10, 30): "connection.tune", (10, 41): "connection.open-ok",
          (10, 50): "connection.close", (10, 51): "connection.close-ok", (20, 11): "channel.open-ok",
          (20, 40): "channel.close", (20, 41): "channel.close-ok", (60, 60): "basic.deliver",
          (50, 11): "queue.declare-ok", (60, 50): "basic.return", (40, 11): "exchange.declare-ok",
          (85, 11): "confirm.select-ok", (60, 80): "basic.ack", (60, 120): "basic.nack"}


def frame(ftype: int, ch: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", ftype, ch, len(payload)) + payload + b"\xce"


def shortstr(s: bytes | str) -> bytes:
    s = s.encode() if isinstance(s, str) else s
    return bytes((len(s),)) + s


def longstr(s: bytes) -> bytes:
    return struct.pack(">I", len(s)) + s


def method(ch: int, class_id: int, method_id: int, args: bytes = b"") -> bytes:
    return frame(1, ch, struct.pack(">HH", class_id, method_id) + args)


def channel_open(ch: int) -> bytes:
    return method(ch, 20, 10, shortstr(b""))


def basic_publish(ch: int, exchange: str = "", routing_key: str = "", bits: int = 0) -> bytes:
    return method(ch, 60, 40, b"\x00\x00" + shortstr(exchange) + shortstr(routing_key) + bytes((bits,)))


def content_header(ch: int, body_size: int, flags: int = 0, props: bytes = b"") -> bytes:
    return frame(2, ch, struct.pack(">HHQH", 60, 0, body_size, flags) + props)


def body(ch: int, data: bytes) -> bytes:
    return frame(3, ch, data)


def queue_declare(ch: int, queue: str, exclusive: bool = False, passive: bool = False) -> bytes:
    bits = (0x04 if exclusive else 0) | (0x01 if passive else 0)
    return method(ch, 50, 10, b"\x00\x00" + shortstr(queue) + bytes((bits,)) + struct.pack(">I", 0))


def queue_delete(ch: int, queue: str) -> bytes:
    return method(ch, 50, 40, b"\x00\x00" + shortstr(queue) + b"\x00")


def basic_get(ch: int, queue: str) -> bytes:
    return method(ch, 60, 70, b"\x00\x00" + shortstr(queue) + b"\x01")


def split_frames(data: bytes):
    """The complete frames at the start of ``data`` and the number of bytes they take."""
    out, off = [], 0
    while len(data) - off >= 8:
        ftype, ch, size = struct.unpack_from(">BHI", data, off)
        if len(data) - off < size + 8:
            break
        out.append((ftype, ch, data[off + 7:off + 7 + size]))
        off += size + 8
    return out, off


def describe(ftype: int, ch: int, payload: bytes):
    if ftype != 1:
        return (ch, {2: "content-header", 3: "content-body", 8: "heartbeat"}.get(ftype, f"type {ftype}"), None)
    ids = struct.unpack_from(">HH", payload)
    name = _NAMES.get(ids, f"{ids[0]}.{ids[1]}")
    detail = None
    if ids in ((10, 50), (20, 40)):
        code, = struct.unpack_from(">H", payload, 4)
        n = payload[6]
        text = payload[7:7 + n].decode("utf-8", "replace")
        cid, mid = struct.unpack_from(">HH", payload, 7 + n)
        detail = [code, text, cid, mid]
    elif ids == (50, 11):
        n = payload[4]
        detail = list(struct.unpack_from(">II", payload, 5 + n))  # message count, consumer count
    return (ch, name, detail)


class RawClient:
    def __init__(self, url: str, timeout: float = 5.0):
        u = urllib.parse.urlparse(url)
        self.vhost = urllib.parse.unquote(u.path[1:]) if len(u.path) > 1 else "/"
        self.sock = socket.create_connection((u.hostname or "127.0.0.1", u.port or 5672), timeout=timeout)
        self.user, self.password = urllib.parse.unquote(u.username or "guest"), urllib.parse.unquote(
            u.password or "guest")
        self.buf = b""
        self.closed = False
        self.handshake()

    def handshake(self) -> None:
        self.sock.sendall(PROTOCOL_HEADER)
        self._expect("connection.start")
        resp = b"\x00" + self.user.encode() + b"\x00" + self.password.encode()
        self.sock.sendall(method(0, 10, 11, struct.pack(">I", 0) + shortstr("PLAIN") + longstr(resp)
                                 + shortstr("en_US")))
        self._expect("connection.tune")
        self.sock.sendall(method(0, 10, 31, struct.pack(">HIH", 2047, 131072, 0))
                          + method(0, 10, 40, shortstr(self.vhost) + shortstr("") + b"\x00"))
        self._expect("connection.open-ok")

    def _expect(self, name: str) -> None:
        got = self.replies(5.0, until=lambda r: r[1] == name)
        assert got and got[-1][1] == name, got

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def replies(self, timeout: float = 2.0, until=None, count: int | None = None) -> list:
        """Frames received (described) until ``until(frame)`` is true for one, ``count`` frames came,
        the broker sent connection.close or closed the socket, or ``timeout`` seconds passed."""
        out = []
        end = time.monotonic() + timeout
        while True:
            frames, used = split_frames(self.buf)
            self.buf = self.buf[used:]
            for f in frames:
                d = describe(*f)
                out.append(d)
                if d[1] == "connection.close":
                    self.sock.sendall(method(0, 10, 51))
                    self.closed = True
                    return out
                if until is not None and until(d):
                    return out
                if count is not None and len(out) >= count:
                    return out
            left = end - time.monotonic()
            if left <= 0 or self.closed:
                return out
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except socket.timeout:
                return out
            except OSError:
                self.closed = True
                return out
            if not data:
                self.closed = True
                out.append((0, "socket closed", None))
                return out
            self.buf += data

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
