"""The server side of one AMQP 0-9-1 connection, sans I/O.

Theory of operation (after h11): the transport feeds received bytes to
:meth:`ServerConnection.receive_data`, which splits frames out of one buffer,
enforces the protocol's framing rules, assembles content (a ``basic.publish``
method, its header and its body frames) and returns a list of events.  Every
event is a 4-tuple ``(channel, method, header, body)``: ``method`` is a decoded
method object from :mod:`.spec`; ``header`` (the raw content-header payload:
class, weight, body size, property flags and properties, kept as received so it
can be forwarded verbatim) and ``body`` are ``None`` except for content methods.

Outgoing frames are appended to an internal list by the ``send_*`` calls and
collected with :meth:`data_to_send`; ``on_output`` (if set) is called when the
list goes from empty to non-empty so the transport can schedule exactly one
write per loop turn.  The close-oks this object answers a client's
``channel.close``/``connection.close`` with are held back until
:meth:`data_to_send`, so they follow the caller's replies to the methods that
came before the close in the same batch (a ``basic.cancel`` then a
``channel.close`` in one read get cancel-ok, then close-ok, as from RabbitMQ).

The handshake (header, start/start-ok, tune/tune-ok, open/open-ok), channel
bookkeeping (open, closing, closed) and connection close are tracked here.  The
decisions that need the broker (authentication, vhost access) are surfaced as
events (``ConnectionStartOk``, ``ConnectionOpen``) and answered by the caller
through :meth:`send_tune`, :meth:`send_open_ok` or :meth:`close`.

Framing violations are answered as RabbitMQ answers them: ``connection.close``
with a hard-error code; after that only ``connection.close-ok`` (or a crossing
``connection.close``) is processed.  Nothing in here raises to the caller except
for programming errors; malformed input always becomes a close.
"""
from __future__ import annotations

import struct

from . import spec
from .codec import DecodeError, decode_table, encode_shortstr, encode_table
from .errors import HardError
from .spec import (
    CHANNEL_ERROR, COMMAND_INVALID, FRAME_BODY, FRAME_END, FRAME_ERROR, FRAME_HEADER,
    FRAME_HEARTBEAT, FRAME_METHOD, FRAME_MIN_SIZE, METHODS, PROTOCOL_HEADER, SYNTAX_ERROR,
    UNEXPECTED_FRAME,
)

_FRAME_HDR = struct.Struct(">BHI")
_pack_frame_hdr = _FRAME_HDR.pack
_unpack_frame_hdr = _FRAME_HDR.unpack_from
_unpack_I = struct.Struct(">I").unpack_from
_unpack_H = struct.Struct(">H").unpack_from
_unpack_Q = struct.Struct(">Q").unpack_from
# a content header frame's frame header, class id, weight and body size
_unpack_content_hdr = struct.Struct(">BHIHHQ").unpack_from
_CLASS_BASIC = spec.CLASS_BASIC
_FRAME_END_BYTE = bytes((FRAME_END,))
_pack_end_hdr = struct.Struct(">BBHI").pack  # the end of one frame and the header of the next
_QB = struct.Struct(">QB").pack  # delivery tag and redelivered bit

#: bodies this large are handed to the transport as they are (take_output) rather than joined
LARGE_BODY = 16384

HEARTBEAT_FRAME = _pack_frame_hdr(FRAME_HEARTBEAT, 0, 0) + _FRAME_END_BYTE

# connection states
AWAIT_HEADER, AWAIT_START_OK, AWAIT_TUNE_OK, AWAIT_OPEN, OPEN, CLOSING, CLOSED = range(7)

# channel states kept in ``ServerConnection.channels``
CH_OPEN, CH_CLOSING = 1, 2

_PUBLISH_INDEX = spec.BasicPublish.INDEX
_CHANNEL_OPEN_INDEX = spec.ChannelOpen.INDEX
_CHANNEL_CLOSE_INDEX = spec.ChannelClose.INDEX
_CHANNEL_CLOSE_OK_INDEX = spec.ChannelCloseOk.INDEX
class _Publish(spec.BasicPublish):
    """A basic.publish event that also carries ``ex_rk``: the exchange and routing key as received
    (two short strings), which is exactly the tail of the basic.deliver that will carry the message."""
    __slots__ = ("ex_rk",)


_new_publish = object.__new__
_BasicAck = spec.BasicAck
_ACK_INDEX = spec.BasicAck.INDEX
_unpack_QB = struct.Struct(">QB").unpack_from


def _as_publish_event(m) -> _Publish:
    p = _new_publish(_Publish)
    p.ticket, p.exchange, p.routing_key = m.ticket, m.exchange, m.routing_key
    p.mandatory, p.immediate = m.mandatory, m.immediate
    p.ex_rk = encode_shortstr(m.exchange) + encode_shortstr(m.routing_key)
    return p


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


def content_header(properties, body_size: int) -> bytes:
    """A content-header payload for ``basic`` built from a :class:`spec.BasicProperties`."""
    return struct.pack(">HHQ", spec.CLASS_BASIC, 0, body_size) + properties.encode()


def parse_credentials(mechanism: str, response: bytes):
    """(username, password) from a PLAIN or AMQPLAIN response, or ``None`` if malformed."""
    try:
        if mechanism == "PLAIN":
            parts = bytes(response).split(b"\x00")
            if len(parts) != 3:
                return None
            return parts[1].decode("utf-8"), parts[2].decode("utf-8")
        if mechanism == "AMQPLAIN":
            body = bytes(response)
            table, _ = decode_table(struct.pack(">I", len(body)) + body, 0)
            user, password = table.get("LOGIN"), table.get("PASSWORD")
            if isinstance(user, bytes):
                user = user.decode("utf-8")
            if isinstance(password, bytes):
                password = password.decode("utf-8")
            if not isinstance(user, str) or not isinstance(password, str):
                return None
            return user, password
    except (DecodeError, UnicodeDecodeError, struct.error, IndexError, ValueError, RecursionError):
        return None
    return None


def _reply_text(text: str) -> str:
    """``text`` cut to the 255 bytes a shortstr reply text can hold (at a character boundary)."""
    return text.encode("utf-8", "surrogateescape")[:255].decode("utf-8", "ignore")


class ServerConnection:
    """Protocol state of one server connection; see the module docstring."""

    def __init__(self, server_properties: dict, mechanisms: str = "PLAIN AMQPLAIN",
                 channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 60):
        self.server_properties = server_properties
        self.mechanisms = mechanisms
        self.offer_channel_max = channel_max
        self.offer_frame_max = frame_max
        self.offer_heartbeat = heartbeat
        # negotiated values (valid after tune-ok)
        self.channel_max = channel_max
        self.frame_max = FRAME_MIN_SIZE
        self.heartbeat = 0
        self.client_properties: dict = {}
        self.capabilities: dict = {}
        self.state = AWAIT_HEADER
        self.channels: dict[int, int] = {}
        self.on_output = None  # callable() -> None, called when output becomes pending
        self.should_close = False  # transport closes the socket once output is flushed
        self.close_reason = None  # (code, text) of the close that ended the connection
        self._out: list = []
        self._large_out = False  # a body of LARGE_BODY bytes or more is in _out (see take_output)
        self._held: list = []  # close-oks answered during parsing, sent after the caller's replies
        self._pending: list = []
        self._pending_len = 0
        self._need = 0
        # content being assembled per channel: channel -> [method, header, size, parts, received]
        self._content: dict[int, list] = {}
        # the raw tail of a basic.publish (exchange and routing key short strings, bits) -> its event
        # object, shared by the publishes that carry the same (publishers reuse a few pairs)
        self._publish_cache: dict[bytes, _Publish] = {}

    def _publish_event(self, exchange: bytes, routing_key: bytes, bits: int, key: bytes) -> _Publish:
        """The (cached) event of a basic.publish whose arguments after the ticket are ``key``."""
        method = _new_publish(_Publish)
        method.ticket = 0
        method.exchange = exchange.decode("utf-8", "surrogateescape")
        method.routing_key = routing_key.decode("utf-8", "surrogateescape")
        method.mandatory = bits & 1 == 1
        method.immediate = bits & 2 == 2
        method.ex_rk = key[:-1]
        cache = self._publish_cache
        if len(cache) >= 4096:
            cache.clear()
        cache[key] = method
        return method

    # ------------------------------------------------------------------ output
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

    def send_tune(self) -> None:
        self.state = AWAIT_TUNE_OK
        self.send_method(0, spec.ConnectionTune(self.offer_channel_max, self.offer_frame_max,
                                                self.offer_heartbeat))

    def send_open_ok(self) -> None:
        self.state = OPEN
        self.send_method(0, spec.ConnectionOpenOk(""))

    def close(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Start a server-initiated connection close (hard error or shutdown)."""
        if self.state in (CLOSING, CLOSED):
            return
        if self.state == AWAIT_HEADER:
            self.state = CLOSED
            self.should_close = True
            return
        text = _reply_text(text)
        self._release_held()
        self.close_reason = (code, text)
        self.state = CLOSING
        self.send_method(0, spec.ConnectionClose(code, text, class_id, method_id))

    def abort(self) -> None:
        """Close the socket without a close handshake (e.g. failed login, RabbitMQ-style)."""
        self.state = CLOSED
        self.should_close = True

    def close_channel(self, channel: int, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Server-initiated channel close (soft error): frames on it are dropped until close-ok."""
        if self.channels.get(channel) != CH_OPEN:
            return
        self.channels[channel] = CH_CLOSING
        self._content.pop(channel, None)
        self.send_method(channel, spec.ChannelClose(code, _reply_text(text), class_id, method_id))

    # ------------------------------------------------------------------- input
    def receive_data(self, data: bytes) -> list:
        """Parse ``data``; return the list of complete events.  Never raises on bad input."""
        events: list = []
        if self.state == CLOSED:
            return events
        rest = None
        if self._pending:
            pending = self._pending
            pending.append(data)
            self._pending_len += len(data)
            if self._pending_len < self._need:
                return events
            excess = self._pending_len - self._need
            if excess and self._need > 7 and self.state != AWAIT_HEADER:
                # join only the frame that was waiting (its length is known) and parse the rest of
                # ``data`` where it is: a large frame straddling reads is not copied with its successors
                start = len(data) - excess
                pending[-1] = memoryview(data)[:start]
                rest = data
            buf = b"".join(pending)
            self._pending = []
            self._pending_len = 0
        else:
            buf = data
        try:
            if self.state == AWAIT_HEADER:
                if len(buf) < 8:
                    self._stash(buf, 8)
                    return events
                # RabbitMQ also takes AMQP 0-9's header (1, 1, 0, 9) as 0-9-1 (txAMQP sends it)
                if buf[:8] != PROTOCOL_HEADER and buf[:8] != b"AMQP\x01\x01\x00\x09":
                    return self._bad_header()
                self.state = AWAIT_START_OK
                self.send_method(0, spec.ConnectionStart(0, 9, self.server_properties,
                                                         self.mechanisms.encode(), b"en_US"))
                buf = buf[8:]
            self._parse(buf, events, 0)
            if rest is not None and self.state != CLOSED:
                self._parse(rest, events, start)
        except HardError as e:
            self.close(e.code, e.reply_text, e.class_id, e.method_id)
        return events

    def _stash(self, buf, need: int) -> None:
        self._pending = [bytes(buf)]
        self._pending_len = len(buf)
        self._need = need

    def _bad_header(self) -> list:
        self._emit(PROTOCOL_HEADER)
        self.state = CLOSED
        self.should_close = True
        return []

    def _parse(self, buf: bytes, events: list, off: int) -> None:
        """Parse the frames in ``buf`` from ``off``; keep an incomplete last one for the next read."""
        n = len(buf)
        # RabbitMQ accepts payloads up to frame_max (though its error text names frame_max - 8)
        max_payload = self.frame_max
        channels = self.channels
        content = self._content
        pub_cache = self._publish_cache
        append = events.append
        while n - off >= 7:
            ftype, ch, size = _unpack_frame_hdr(buf, off)
            if size > max_payload:
                raise HardError(FRAME_ERROR, f"type {ftype}, all octets = <<>>: "
                                f"{{frame_too_large,{size},{max_payload - 8}}}")
            end = off + 7 + size
            if end >= n:
                break
            if buf[end] != FRAME_END:
                raise HardError(FRAME_ERROR, f"type {ftype}, all octets = <<>>: {{invalid_frame_end_marker,"
                                f"{buf[end]}}}")
            state = self.state
            if ftype == FRAME_METHOD:
                if ch in content:
                    raise HardError(UNEXPECTED_FRAME, f"expected content header for class "
                                    f"{content[ch][0].CLASS_ID}, got non content header frame instead")
                if size < 4:
                    raise HardError(FRAME_ERROR, "method frame too short")
                index, = _unpack_I(buf, off + 7)
                if index == _PUBLISH_INDEX and state == OPEN and channels.get(ch) == CH_OPEN:
                    # the hot path: parse basic.publish in place, keeping exchange and routing key
                    # as the raw pair of short strings a delivery will carry verbatim
                    p = off + 13  # after the method ids and the ticket
                    rpos = p + 1 + buf[p]
                    bpos = rpos + 1 + buf[rpos] if rpos < end else end
                    if bpos == end - 1:
                        # one immutable event object per (exchange, routing key, bits), shared by
                        # every publish that carries them: no allocation per message
                        key = buf[p:end]
                        method = pub_cache.get(key)
                        if method is None:
                            method = self._publish_event(buf[p + 1:rpos], buf[rpos + 1:bpos], buf[bpos], key)
                        off = end + 1
                        # the frames of a publish usually follow each other in the same read: take
                        # a content header and a single body frame here, when both are complete
                        if n - off >= 26:
                            ftype, ch2, size, class_id, _, body_size = _unpack_content_hdr(buf, off)
                            end = off + 7 + size
                            if (ftype == FRAME_HEADER and ch2 == ch and 14 <= size <= max_payload and end < n
                                    and buf[end] == FRAME_END and class_id == _CLASS_BASIC):
                                header = buf[off + 7:end]
                                off = end + 1
                                if body_size == 0:
                                    append((ch, method, header, b""))
                                    continue
                                if n - off >= 8:
                                    ftype, ch2, size = _unpack_frame_hdr(buf, off)
                                    end = off + 7 + size
                                    if (ftype == FRAME_BODY and ch2 == ch and size == body_size
                                            and size <= max_payload and end < n and buf[end] == FRAME_END):
                                        append((ch, method, header, buf[off + 7:end]))
                                        off = end + 1
                                        continue
                                content[ch] = [method, header, body_size, None, 0]
                                continue
                        content[ch] = [method, None, 0, None, 0]
                        continue
                if index == _ACK_INDEX and state == OPEN and size == 13 and channels.get(ch) == CH_OPEN:
                    # the other hot method: basic.ack parsed in place
                    method = _new_publish(_BasicAck)
                    method.delivery_tag, bits = _unpack_QB(buf, off + 11)
                    method.multiple = bits & 1 == 1
                    append((ch, method, None, None))
                    off = end + 1
                    continue
                cls = METHODS.get(index)
                if cls is None:
                    raise HardError(COMMAND_INVALID, f"unknown method {index >> 16}.{index & 0xFFFF}",
                                    index >> 16, index & 0xFFFF)
                try:
                    method = cls.decode(buf[off + 11:end], 0)
                except (DecodeError, struct.error, IndexError, UnicodeDecodeError, ValueError, RecursionError) as e:
                    raise HardError(SYNTAX_ERROR, f"cannot decode {cls.NAME}: {e}",
                                    cls.CLASS_ID, cls.METHOD_ID) from None
                if ch == 0:
                    self._connection_method(method, events)
                elif state == OPEN:
                    chstate = channels.get(ch)
                    if chstate == CH_OPEN:
                        if index == _PUBLISH_INDEX:  # a publish the fast path above did not take
                            content[ch] = [_as_publish_event(method), None, 0, None, 0]
                        else:
                            if index == _CHANNEL_CLOSE_INDEX:
                                del channels[ch]
                                self._hold(method_frame(ch, spec.ChannelCloseOk()))
                            elif index == _CHANNEL_OPEN_INDEX:
                                raise HardError(CHANNEL_ERROR, "second 'channel.open' seen",
                                                cls.CLASS_ID, cls.METHOD_ID)
                            append((ch, method, None, None))
                    elif chstate == CH_CLOSING:
                        if index == _CHANNEL_CLOSE_OK_INDEX:
                            del channels[ch]
                        elif index == _CHANNEL_CLOSE_INDEX:
                            del channels[ch]
                            self.send_method(ch, spec.ChannelCloseOk())
                        # anything else on a closing channel is discarded
                    elif index == _CHANNEL_OPEN_INDEX:
                        if len(channels) >= self.channel_max:  # a limit on open channels, not numbers
                            raise HardError(spec.NOT_ALLOWED, f"number of channels opened ({len(channels)}) has "
                                            f"reached the negotiated channel_max ({self.channel_max})",
                                            cls.CLASS_ID, cls.METHOD_ID)
                        channels[ch] = CH_OPEN
                        append((ch, method, None, None))
                    else:
                        raise HardError(CHANNEL_ERROR, "expected 'channel.open'", cls.CLASS_ID, cls.METHOD_ID)
                elif state == CLOSING:
                    pass
                else:
                    raise HardError(COMMAND_INVALID, f"{cls.NAME} received before the connection "
                                    "was open", cls.CLASS_ID, cls.METHOD_ID)
            elif ftype == FRAME_HEADER:
                pending = content.get(ch)
                if pending is None or pending[1] is not None:
                    if state == CLOSING or channels.get(ch) == CH_CLOSING:
                        off = end + 1
                        continue
                    if pending is None:
                        raise HardError(UNEXPECTED_FRAME, "expected method frame, got non method frame instead")
                    raise HardError(UNEXPECTED_FRAME, "expected content body, got non content body frame instead")
                if size < 14:
                    raise HardError(FRAME_ERROR, "content header too short")
                class_id, = _unpack_H(buf, off + 7)
                body_size, = _unpack_Q(buf, off + 11)
                if class_id != pending[0].CLASS_ID:
                    raise HardError(UNEXPECTED_FRAME, f"expected content header for class "
                                    f"{pending[0].CLASS_ID}, got one for class {class_id} instead")
                header = buf[off + 7:end]
                if body_size == 0:
                    del content[ch]
                    append((ch, pending[0], header, b""))
                else:
                    pending[1] = header
                    pending[2] = body_size
            elif ftype == FRAME_BODY:
                pending = content.get(ch)
                if pending is None or pending[1] is None:
                    if state == CLOSING or channels.get(ch) == CH_CLOSING:
                        off = end + 1
                        continue
                    if pending is None:
                        raise HardError(UNEXPECTED_FRAME, "expected method frame, got non method frame instead")
                    raise HardError(UNEXPECTED_FRAME, f"expected content header for class "
                                    f"{pending[0].CLASS_ID}, got non content header frame instead")
                got = pending[4] + size
                if got > pending[2]:
                    raise HardError(FRAME_ERROR, f"content body is longer than the {pending[2]} bytes "
                                    "its header announced")
                piece = buf[off + 7:end]
                if got == pending[2]:
                    del content[ch]
                    if pending[3] is None:
                        append((ch, pending[0], pending[1], piece))
                    else:
                        pending[3].append(piece)
                        append((ch, pending[0], pending[1], b"".join(pending[3])))
                else:
                    if pending[3] is None:
                        pending[3] = [piece]
                    else:
                        pending[3].append(piece)
                    pending[4] = got
            elif ftype == FRAME_HEARTBEAT:
                if ch != 0:
                    raise HardError(UNEXPECTED_FRAME, "type 8, all octets = <<>>")
            else:
                raise HardError(FRAME_ERROR, f"type {ftype}, all octets = <<>>: unknown_frame")
            off = end + 1
            if self.state == CLOSED:
                return
        if off < n:
            rest = buf[off:]
            need = 7
            if n - off >= 7:
                need = _unpack_I(buf, off + 3)[0] + 8
            self._stash(rest, need)

    def _connection_method(self, method, events: list) -> None:
        state = self.state
        cls = type(method)
        if state == CLOSING:
            if cls is spec.ConnectionCloseOk:
                self.state = CLOSED
                self.should_close = True
            elif cls is spec.ConnectionClose:
                self.send_method(0, spec.ConnectionCloseOk())
                self.state = CLOSED
                self.should_close = True
            return
        if cls is spec.ConnectionStartOk and state == AWAIT_START_OK:
            self.client_properties = method.client_properties or {}
            caps = self.client_properties.get("capabilities")
            self.capabilities = caps if isinstance(caps, dict) else {}
            if method.mechanism not in self.mechanisms.split():
                raise HardError(COMMAND_INVALID,
                                f"unknown authentication mechanism '{method.mechanism}'",
                                cls.CLASS_ID, cls.METHOD_ID)
            events.append((0, method, None, None))
        elif cls is spec.ConnectionTuneOk and state == AWAIT_TUNE_OK:
            # RabbitMQ's checks and texts; 0 ("no limit") is above any limit the server offered
            frame_max = method.frame_max
            if frame_max == 0 or frame_max > self.offer_frame_max:
                raise HardError(spec.NOT_ALLOWED, f"negotiated frame_max = {frame_max} is higher than the "
                                f"maximum allowed value ({self.offer_frame_max})", cls.CLASS_ID, cls.METHOD_ID)
            if frame_max < FRAME_MIN_SIZE:
                raise HardError(spec.NOT_ALLOWED, f"negotiated frame_max = {frame_max} is lower than the "
                                f"minimum allowed value ({FRAME_MIN_SIZE})", cls.CLASS_ID, cls.METHOD_ID)
            self.frame_max = frame_max
            channel_max = method.channel_max
            if channel_max == 0 or channel_max > self.offer_channel_max:
                no_limit = " (no limit)" if channel_max == 0 else ""
                raise HardError(spec.NOT_ALLOWED, f"negotiated channel_max = {channel_max}{no_limit} is higher "
                                f"than the maximum allowed value ({self.offer_channel_max})",
                                cls.CLASS_ID, cls.METHOD_ID)
            self.channel_max = channel_max
            self.heartbeat = method.heartbeat
            self.state = AWAIT_OPEN
            events.append((0, method, None, None))
        elif cls is spec.ConnectionOpen and state == AWAIT_OPEN:
            events.append((0, method, None, None))
        elif cls is spec.ConnectionClose:
            self.close_reason = (method.reply_code, method.reply_text)
            events.append((0, method, None, None))
            self._hold(method_frame(0, spec.ConnectionCloseOk()))
            self.state = CLOSED
            self.should_close = True
        elif cls in (spec.ConnectionBlocked, spec.ConnectionUnblocked, spec.ConnectionCloseOk):
            # clients may echo these; nothing to do
            pass
        elif cls is spec.ConnectionUpdateSecret and state == OPEN:
            events.append((0, method, None, None))
        elif state == OPEN:
            raise HardError(CHANNEL_ERROR, "unexpected method in connection state running",
                            cls.CLASS_ID, cls.METHOD_ID)
        else:
            raise HardError(COMMAND_INVALID, f"{cls.NAME} not expected during the handshake",
                            cls.CLASS_ID, cls.METHOD_ID)


__all__ = ["ServerConnection", "HEARTBEAT_FRAME", "method_frame", "content_frames", "content_header",
           "parse_credentials", "encode_table"]
