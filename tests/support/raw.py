"""A minimal blocking AMQP client over a raw socket, for tests that need to misbehave.

It builds frames with WarrenMQ's generated method classes and reads frames back
with a plain parser written here (not the server's), so broker replies are
checked byte by byte, independently of the server's frame reader.
"""
import socket
import struct

from warrenmq.protocol import spec
from warrenmq.protocol.frames import method_frame


class RawClient:
    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_method(self, channel: int, method) -> None:
        self.send(method_frame(channel, method))

    def read_frame(self):
        """(type, channel, payload) of the next frame, or None when the socket closed."""
        while len(self.buf) < 7 or len(self.buf) < 8 + struct.unpack_from(">I", self.buf, 3)[0]:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        ftype, ch, size = struct.unpack_from(">BHI", self.buf)
        payload = self.buf[7:7 + size]
        assert self.buf[7 + size] == 0xCE, "bad frame end from server"
        self.buf = self.buf[8 + size:]
        return ftype, ch, payload

    def read_method(self):
        """The next method frame as (channel, method), skipping heartbeats; None on close."""
        while True:
            frame = self.read_frame()
            if frame is None:
                return None
            ftype, ch, payload = frame
            if ftype == spec.FRAME_METHOD:
                index = struct.unpack_from(">I", payload)[0]
                return ch, spec.METHODS[index].decode(payload[4:], 0)

    def handshake(self, heartbeat: int = 0, user: str = "guest", password: str = "guest",
                  capabilities: dict | None = None) -> None:
        self.send(spec.PROTOCOL_HEADER)
        ch, start = self.read_method()
        assert isinstance(start, spec.ConnectionStart)
        props = {"capabilities": capabilities or {}}
        self.send_method(0, spec.ConnectionStartOk(props, "PLAIN", f"\0{user}\0{password}".encode(), "en_US"))
        ch, tune = self.read_method()
        assert isinstance(tune, spec.ConnectionTune), tune
        self.send_method(0, spec.ConnectionTuneOk(tune.channel_max, tune.frame_max, heartbeat))
        self.send_method(0, spec.ConnectionOpen("/", "", False))
        ch, ok = self.read_method()
        assert isinstance(ok, spec.ConnectionOpenOk), ok

    def open_channel(self, channel: int = 1) -> None:
        self.send_method(channel, spec.ChannelOpen(""))
        _, ok = self.read_method()
        assert isinstance(ok, spec.ChannelOpenOk), ok

    def closed_by_peer(self, timeout: float) -> bool:
        """True if the server closes the socket within ``timeout`` seconds (data read meanwhile is dropped)."""
        self.sock.settimeout(timeout)
        try:
            while self.sock.recv(65536):
                pass
            return True
        except (socket.timeout, TimeoutError):
            return False
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()
