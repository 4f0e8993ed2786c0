"""Frames out: encoding AMQP frames, and the output buffer of a connection.

Theory of operation: a frame is a 7-byte header (type, channel, payload size), the payload and the
frame-end octet.  What a connection sends is kept as a list of byte strings and written by the
transport once per loop turn (:meth:`Output.take_output`); ``on_output`` tells it, once, when the
list stops being empty.  The hard part is the delivery hot path, :meth:`Output.send_delivery`: a
``basic.deliver`` is packed from pieces encoded once (the consumer's prefix, the message's exchange
and routing key and its content header as received) with two struct packs, and the body is never
copied: bodies of :data:`LARGE_BODY` bytes or more are handed to the transport as they are
(``writelines``) instead of being joined to the rest.
"""
from __future__ import annotations

import struct

from .spec import FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD

_pack_frame_hdr = struct.Struct(">BHI").pack
_FRAME_END_BYTE = bytes((FRAME_END,))
_pack_end_hdr = struct.Struct(">BBHI").pack  # the end of one frame and the header of the next
_QB = struct.Struct(">QB").pack  # delivery tag and redelivered bit

#: bodies this large are handed to the transport as they are (take_output) rather than joined
LARGE_BODY = 16384

HEARTBEAT_FRAME = _pack_frame_hdr(FRAME_HEARTBEAT, 0, 0) + _FRAME_END_BYTE


def method_frame(channel: int, method) -> bytes:
    payload = method.encode()
    return _pack_frame_hdr(FRAME_METHOD, channel, len(payload)) + payload + _FRAME_END_BYTE


def content_frames(channel: int, method_payload: bytes, header: bytes, body: bytes, frame_max: int) -> list:
    """The frames of one content method (deliver, get-ok, return) as a list of byte strings."""
    parts = [_pack_frame_hdr(FRAME_METHOD, channel, len(method_payload)), method_payload, _FRAME_END_BYTE,
             _pack_frame_hdr(FRAME_HEADER, channel, len(header)), header, _FRAME_END_BYTE]
    n = len(body)
    if n:
        chunk = frame_max - 8
        if n <= chunk:
            parts += (_pack_frame_hdr(FRAME_BODY, channel, n), body, _FRAME_END_BYTE)
        else:
            for i in range(0, n, chunk):
                piece = body[i:i + chunk]
                parts += (_pack_frame_hdr(FRAME_BODY, channel, len(piece)), piece, _FRAME_END_BYTE)
    return parts


class Output:
    """The output side of a connection: pending frames, written by the transport once per turn.

    ``_held`` keeps frames (close-oks) that must follow the caller's replies to what was parsed
    before them; they join the output when it is taken or when the connection closes."""

    def __init__(self):
        self.on_output = None  # callable() -> None, called when output becomes pending
        self.frame_max = 4096  # the negotiated maximum (the connection sets it)
        self._out: list = []
        self._large_out = False  # a body of LARGE_BODY bytes or more is in _out (see take_output)
        self._held: list = []  # close-oks answered during parsing, sent after the caller's replies

    def _emit(self, data) -> None:
        if not self._out:
            cb = self.on_output
            if cb is not None:
                cb()
        self._out.append(data)

    def _emit_parts(self, parts) -> None:
        if not self._out:
            cb = self.on_output
            if cb is not None:
                cb()
        self._out.extend(parts)

    def _hold(self, data) -> None:
        """Queue ``data`` behind whatever the caller sends for the events parsed so far."""
        if not self._out and not self._held:
            cb = self.on_output
            if cb is not None:
                cb()
        self._held.append(data)

    def _release_held(self) -> None:
        if self._held:
            self._out.extend(self._held)
            self._held.clear()

    @property
    def has_output(self) -> bool:
        return bool(self._out or self._held)

    def data_to_send(self) -> bytes:
        """All pending output as one ``bytes`` (tests and simple callers; the transport uses
        :meth:`take_output`, which does not copy large bodies)."""
        self._release_held()
        self._large_out = False
        out = self._out
        if not out:
            return b""
        data = b"".join(out)
        out.clear()
        return data

    def take_output(self):
        """What the transport writes: :meth:`data_to_send`'s bytes, or, when large bodies are among the
        output, a list of buffers for ``writelines`` (the small pieces between bodies joined, the bodies
        themselves not copied again)."""
        if not self._large_out:
            return self.data_to_send()
        self._large_out = False
        self._release_held()
        chunks: list = []
        run: list = []
        for part in self._out:
            if len(part) >= LARGE_BODY:
                if run:
                    chunks.append(b"".join(run))
                    run = []
                chunks.append(part)
            else:
                run.append(part)
        if run:
            chunks.append(b"".join(run))
        self._out.clear()
        return chunks

    def send_method(self, channel: int, method) -> None:
        self._emit(method_frame(channel, method))

    def send_content(self, channel: int, method_payload: bytes, header: bytes, body: bytes) -> None:
        if len(body) >= LARGE_BODY:
            self._large_out = True
        self._emit_parts(content_frames(channel, method_payload, header, body, self.frame_max))

    def send_delivery(self, channel: int, prefix: bytes, tag: int, redelivered: bool, ex_rk: bytes,
                      header: bytes, body: bytes) -> None:
        """The frames of a basic.deliver, from the consumer's encoded prefix (method ids and consumer tag),
        the delivery tag, and the message's exchange/routing key, content header and body as received.

        The hot path: one call, frames packed with two structs, no intermediate joins."""
        out = self._out
        if not out:
            cb = self.on_output
            if cb is not None:
                cb()
        n = len(body)
        if n >= LARGE_BODY:
            self._large_out = True
        if n > self.frame_max - 8:
            out.extend(content_frames(channel, prefix + _QB(tag, redelivered) + ex_rk, header, body,
                                      self.frame_max))
        elif n:
            out += (_pack_frame_hdr(FRAME_METHOD, channel, len(prefix) + 9 + len(ex_rk)), prefix,
                    _QB(tag, redelivered), ex_rk, _pack_end_hdr(FRAME_END, FRAME_HEADER, channel, len(header)),
                    header, _pack_end_hdr(FRAME_END, FRAME_BODY, channel, n), body, _FRAME_END_BYTE)
        else:  # an empty body is sent as method and header only, as RabbitMQ does
            out += (_pack_frame_hdr(FRAME_METHOD, channel, len(prefix) + 9 + len(ex_rk)), prefix,
                    _QB(tag, redelivered), ex_rk, _pack_end_hdr(FRAME_END, FRAME_HEADER, channel, len(header)),
                    header, _FRAME_END_BYTE)

    def send_heartbeat(self) -> None:
        self._emit(HEARTBEAT_FRAME)
