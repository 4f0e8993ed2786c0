"""The server side of one AMQP 0-9-1 connection, sans I/O.

Theory of operation (after h11): the transport feeds received bytes to
:meth:`ServerConnection.receive_data`, which splits frames out of one buffer,
enforces the protocol's framing rules, assembles content (a ``basic.publish``
method, its header and its body frames) and returns a list of events.  Every
event is a 4-tuple ``(channel, method, header, body)`` (its fields named by
:class:`Event`): ``method`` is a decoded method object from :mod:`.spec`;
``header`` (the raw content-header payload: class, weight, body size, property
flags and properties, kept as received so it can be forwarded verbatim) and
``body`` are ``None`` except for content methods (``basic.publish``).

The whole lifecycle is in the tables below: :data:`CONNECTION_TRANSITIONS`
(the handshake, running, closing, for what the client sends on channel 0 and
for the broker's ``send_tune``/``send_open_ok``/``close``/``abort``) and
:data:`CHANNEL_TRANSITIONS` (open, closing, closed per channel).  The code
consults them; what it adds are the guards (the tune-ok limits, channel_max,
the mechanism) and the bookkeeping.  Decisions that need the broker
(authentication, vhost access) are surfaced as events (``connection.start-ok``,
``connection.open``) and answered through :meth:`~ServerConnection.send_tune`,
:meth:`~ServerConnection.send_open_ok`, :meth:`~ServerConnection.close` or
:meth:`~ServerConnection.abort`.

Outgoing frames are appended to an internal list by the ``send_*`` calls and
collected with :meth:`~ServerConnection.take_output` (what the transport
writes) or :meth:`~ServerConnection.data_to_send` (the same as one
``bytes``); ``on_output`` (if set) is called when the list goes from empty to
non-empty so the transport can schedule exactly one write per loop turn.  The
close-oks this object answers a client's ``channel.close``/``connection.close``
with are held back until the output is taken, so they follow the caller's
replies to the methods that came before the close in the same batch (a
``basic.cancel`` then a ``channel.close`` in one read get cancel-ok, then
close-ok, as from RabbitMQ).

Framing violations are answered as RabbitMQ answers them (its codes and texts:
docs/limits.md): ``connection.close`` with a hard-error code; after that only
``connection.close-ok`` (or a crossing ``connection.close``) is processed.  The
close of an error found while parsing is held like the close-oks, behind the
caller's replies to the events parsed before it (RabbitMQ answers in order, then
closes); if the caller closes the connection itself first (an error about one of
those earlier methods), its close replaces the held one.  Nothing in here raises
to the caller except for programming errors; malformed input always becomes a close (and should a bug raise while parsing, it is logged once
and the connection closes with 541 INTERNAL_ERROR: nothing escapes to the transport).

Input refused at the door: a content header's properties must pass the
structural scan of :func:`.properties.properties_ok` (else 541 INTERNAL_ERROR,
as RabbitMQ), and a body larger than ``max_message_size`` is refused at its
header: the publish event comes with ``body`` ``None`` (the broker closes the
channel, 406) and the body frames that follow are counted and dropped.
:attr:`~ServerConnection.receiving_bytes` is what is buffered of messages being
received.

The hardest part is speed: two fast paths in :meth:`~ServerConnection._parse`
(``basic.publish`` with its header and body in the same read, and
``basic.ack``) skip the general path's table lookups and decoding; each says
which checks it skips and why that is safe.
"""
from __future__ import annotations

import logging
import struct
from enum import IntEnum
from typing import NamedTuple

from . import spec
from .codec import DecodeError
from .errors import HardError
from .events import Event, PublishEvent, as_publish_event  # noqa: F401 (Event: the events' shape, exported)
from .frames import Output, method_frame
from .properties import FIXED_SIZE_FLAGS, FLAGS_OFFSET, PROPERTIES_OFFSET, VALID_PROPERTIES, properties_ok
from .spec import (
    CHANNEL_ERROR, COMMAND_INVALID, FRAME_BODY, FRAME_END, FRAME_ERROR, FRAME_HEADER,
    FRAME_HEARTBEAT, FRAME_METHOD, FRAME_MIN_SIZE, INTERNAL_ERROR, METHODS, NOT_ALLOWED, PROTOCOL_HEADER,
    UNEXPECTED_FRAME,
)


_log = logging.getLogger("warrenmq.protocol")


# ====================================================================== states
class ConnectionState(IntEnum):
    """Where a connection is in its lifecycle.  Ordered: ``state < OPEN`` is "still in the
    handshake", ``state >= CLOSING`` is "closing or closed"."""
    AWAIT_HEADER = 0    # nothing received yet: the 8-byte protocol header comes first
    AWAIT_START_OK = 1  # connection.start sent
    AUTHENTICATING = 2  # start-ok received: the broker decides (send_tune, or close)
    AWAIT_TUNE_OK = 3   # connection.tune sent
    AWAIT_OPEN = 4      # tune-ok received
    OPENING = 5         # connection.open received: the broker checks the vhost (send_open_ok, or close)
    OPEN = 6            # open-ok sent: channels may be used
    CLOSING = 7         # the server sent connection.close: only close-ok (or a crossing close) counts
    CLOSED = 8          # done: nothing more is parsed; should_close tells the transport

AWAIT_HEADER = ConnectionState.AWAIT_HEADER
AWAIT_START_OK = ConnectionState.AWAIT_START_OK
AUTHENTICATING = ConnectionState.AUTHENTICATING
AWAIT_TUNE_OK = ConnectionState.AWAIT_TUNE_OK
AWAIT_OPEN = ConnectionState.AWAIT_OPEN
OPENING = ConnectionState.OPENING
OPEN = ConnectionState.OPEN
CLOSING = ConnectionState.CLOSING
CLOSED = ConnectionState.CLOSED


class ChannelState(IntEnum):
    """A channel's state, the value of ``ServerConnection.channels[number]`` (a channel that is
    not open is not in that dict: :data:`CH_CLOSED` is what ``channels.get`` stands for then)."""
    CLOSED = 0   # never opened, or closed: only channel.open is allowed
    OPEN = 1
    CLOSING = 2  # the server sent channel.close: frames are dropped until close-ok


CH_CLOSED = ChannelState.CLOSED
CH_OPEN = ChannelState.OPEN
CH_CLOSING = ChannelState.CLOSING

# ============================================================ transition tables
# What happens on a transition (besides the state change):
EVENT = "event"                # the method is handed to the broker as an event
IGNORE = "ignore"              # nothing (dropped)
HOLD_CLOSE_OK = "event, close-ok"  # event, and a close-ok queued behind the broker's replies
SEND_CLOSE_OK = "send close-ok"    # a close crossing ours: close-ok at once, no event
CONTENT = "assemble content"   # basic.publish: header and body frames follow, then one event
SEND = "send"                  # a server send: its frame is written
NOTHING = "nothing"            # a server send that writes nothing
ANY = "any other method"       # the row for the methods a state does not list


class Refuse(NamedTuple):
    """The action for a method a state does not allow: the connection is closed with ``code``
    and ``text`` (formatted with ``name``, the method's name)."""
    code: int
    text: str


_HANDSHAKE = (AWAIT_START_OK, AUTHENTICATING, AWAIT_TUNE_OK, AWAIT_OPEN, OPENING)
_ECHOES = (spec.ConnectionBlocked, spec.ConnectionUnblocked, spec.ConnectionCloseOk)

#: ``(state, what arrives or is sent) -> (next state, action)``.  What arrives is a
#: connection-class method (its class) on channel 0; what is sent, the name of a
#: ServerConnection method.  A next state of ``None`` means "unchanged".
CONNECTION_TRANSITIONS: dict = {
    # --- the handshake
    (AWAIT_HEADER, "protocol header"): (AWAIT_START_OK, SEND),   # connection.start (a bad header: ours, CLOSED)
    (AWAIT_START_OK, spec.ConnectionStartOk): (AUTHENTICATING, EVENT),  # the mechanism checked first
    (AUTHENTICATING, "send_tune"): (AWAIT_TUNE_OK, SEND),        # (a refused login: close or abort)
    (AWAIT_TUNE_OK, spec.ConnectionTuneOk): (AWAIT_OPEN, EVENT),  # frame_max/channel_max checked first
    (AWAIT_OPEN, spec.ConnectionOpen): (OPENING, EVENT),
    (OPENING, "send_open_ok"): (OPEN, SEND),                     # (a refused vhost: close)
    # --- running
    (OPEN, spec.ConnectionUpdateSecret): (None, EVENT),
    # --- closing: the client's close is answered (after the replies to what came before it) ...
    **{(s, spec.ConnectionClose): (CLOSED, HOLD_CLOSE_OK) for s in (*_HANDSHAKE, OPEN)},
    # ... the server's close waits for the client's close-ok (or a crossing close)
    (AWAIT_HEADER, "close"): (CLOSED, NOTHING),                  # nothing negotiated: just the socket
    **{(s, "close"): (CLOSING, SEND) for s in (*_HANDSHAKE, OPEN)},
    (CLOSING, spec.ConnectionCloseOk): (CLOSED, IGNORE),
    (CLOSING, spec.ConnectionClose): (CLOSED, SEND_CLOSE_OK),
    (CLOSING, ANY): (None, IGNORE),
    **{(s, "abort"): (CLOSED, NOTHING) for s in ConnectionState},  # the socket, without a close handshake
    # late answers (to a method that came before a close) are written, the state stays
    **{(s, send): (None, SEND) for s in (CLOSING, CLOSED) for send in ("send_tune", "send_open_ok")},
    **{(s, "close"): (None, NOTHING) for s in (CLOSING, CLOSED)},
    # --- clients may echo these at any time; nothing to do
    **{(s, m): (None, IGNORE) for s in (*_HANDSHAKE, OPEN) for m in _ECHOES},
    # --- everything else on channel 0
    **{(s, ANY): (None, Refuse(COMMAND_INVALID, "{name} not expected during the handshake")) for s in _HANDSHAKE},
    (OPEN, ANY): (None, Refuse(CHANNEL_ERROR, "unexpected method in connection state running")),
}

#: ``(channel state, what arrives or is sent) -> (next channel state, action)`` for the frames of
#: channels other than 0 while the connection is OPEN.  (Before OPEN a channel frame is
#: COMMAND_INVALID; while CLOSING it is dropped.)  Content assembly has two sub-states of an open
#: channel, kept in ``ServerConnection._content``: a content header is awaited, then body frames
#: until the announced size has arrived.  Any method frame in between is UNEXPECTED_FRAME.
CHANNEL_TRANSITIONS: dict = {
    (CH_CLOSED, spec.ChannelOpen): (CH_OPEN, EVENT),             # unless channel_max channels are open
    (CH_CLOSED, ANY): (None, Refuse(CHANNEL_ERROR, "expected 'channel.open'")),
    (CH_OPEN, spec.BasicPublish): (None, CONTENT),
    (CH_OPEN, spec.ChannelClose): (CH_CLOSED, HOLD_CLOSE_OK),
    (CH_OPEN, spec.ChannelOpen): (None, Refuse(CHANNEL_ERROR, "second 'channel.open' seen")),
    (CH_OPEN, ANY): (None, EVENT),
    (CH_OPEN, "close_channel"): (CH_CLOSING, SEND),              # a soft error: channel.close
    (CH_CLOSING, spec.ChannelCloseOk): (CH_CLOSED, IGNORE),
    (CH_CLOSING, spec.ChannelClose): (CH_CLOSED, SEND_CLOSE_OK),
    (CH_CLOSING, ANY): (None, IGNORE),                           # the client had not seen our close yet
    **{(s, "close_channel"): (None, NOTHING) for s in (CH_CLOSED, CH_CLOSING)},
}


def _on_receive(table: dict, state, cls):
    """The row for a received method of class ``cls`` in ``state``, or the state's ANY row."""
    row = table.get((state, cls))
    return row if row is not None else table[(state, ANY)]


def _on_send(table: dict, state, name: str):
    """The row for the server send ``name`` in ``state``; a send the table does not allow there
    is a programming error of the caller."""
    row = table.get((state, name))
    if row is None:
        raise RuntimeError(f"{name} is not allowed in state {state.name}")
    return row


# ====================================================================== framing
_FRAME_HDR = struct.Struct(">BHI")
_unpack_frame_hdr = _FRAME_HDR.unpack_from
# a frame header and the first four payload bytes: a method frame's class and method ids
_unpack_frame_hdr_ids = struct.Struct(">BHII").unpack_from
_unpack_I = struct.Struct(">I").unpack_from
_unpack_H = struct.Struct(">H").unpack_from
_unpack_Q = struct.Struct(">Q").unpack_from
# a content header frame's frame header, class id, weight, body size and property flags
_unpack_content_hdr = struct.Struct(">BHIHHQH").unpack_from
_CLASS_BASIC = spec.CLASS_BASIC
_unpack_QB = struct.Struct(">QB").unpack_from

_PUBLISH_INDEX = spec.BasicPublish.INDEX
_ACK_INDEX = spec.BasicAck.INDEX
#: the shortest basic.publish payload: class and method ids, ticket, two empty short strings, bits
_PUBLISH_MIN_SIZE = 4 + 2 + 1 + 1 + 1
_BasicAck = spec.BasicAck
_new_object = object.__new__


#: the default largest body a publisher may send (RabbitMQ's max_message_size, 128 MiB)
MAX_MESSAGE_SIZE = 134217728
# the parts list of a content whose body is counted and dropped (refused at its header)
_DISCARD = ()


def _reply_text(text: str) -> str:
    """``text`` as a shortstr reply text holds it: longer than 255 bytes, cut to 252 (at a character
    boundary) and ``...`` added, as RabbitMQ does."""
    raw = text.encode("utf-8", "surrogateescape")
    if len(raw) <= 255:
        return text
    return raw[:252].decode("utf-8", "ignore") + "..."


def _frame_end_error(ftype: int, payload: bytes, marker: int) -> str:
    """RabbitMQ's text for a frame whose end octet is not 0xCE: the payload's first 16 bytes, and the
    error term as Erlang's pretty printer lays it out (broken after the comma past column 80)."""
    which = "all" if len(payload) <= 16 else "first 16"
    head = f"type {ftype}, {which} octets = "
    indent = len(head) + 2
    col = indent
    parts = [head, "<<"]
    snippet = payload[:16]
    for i, byte in enumerate(snippet):
        piece = f"{byte}," if i < len(snippet) - 1 else f"{byte}>>"
        if col + len(piece) >= 80:
            parts.append("\n" + " " * indent)
            col = indent
        parts.append(piece)
        col += len(piece)
    if not snippet:
        parts.append(">>")
        col += 2
    parts.append(": ")
    col += 2
    term = f"{{invalid_frame_end_marker,{marker}}}"
    if col + len(term) >= 80:
        term = "{invalid_frame_end_marker,\n" + " " * (col + 1) + f"{marker}}}"
    parts.append(term)
    return "".join(parts)


def _erlang_binary(data: bytes) -> str:
    """``data`` as RabbitMQ prints a binary in its "cannot decode" texts (``<<0,50,97>>``); only as
    much as a reply text can hold."""
    return "<<" + ",".join(map(str, data[:100])) + ">>"


class ServerConnection(Output):
    """Protocol state of one server connection; see the module docstring."""

    def __init__(self, server_properties: dict, mechanisms: str = "PLAIN AMQPLAIN",
                 channel_max: int = 2047, frame_max: int = 131072, heartbeat: int = 60,
                 max_message_size: int = MAX_MESSAGE_SIZE):
        Output.__init__(self)
        self.max_message_size = max_message_size
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
        self.channels: dict[int, ChannelState] = {}  # the channels that are OPEN or CLOSING
        self.should_close = False  # transport closes the socket once output is flushed
        self.close_reason = None  # (code, text) of the close that ended the connection
        self._pending: list = []
        self._pending_len = 0
        self._need = 0
        # content being assembled per channel: channel -> [method, header, size, parts, received];
        # header None: the content header is awaited, else body frames until ``size`` bytes came
        # (parts _DISCARD: a content refused at its header, whose body is counted and dropped)
        self._content: dict[int, list] = {}
        # the connection.close of a framing error, held behind the replies to the events before it
        self._deferred_close: bytes | None = None
        self._state_before_close = AWAIT_HEADER
        # the raw tail of a basic.publish (exchange and routing key short strings, bits) -> its event
        # object, shared by the publishes that carry the same (publishers reuse a few pairs)
        self._publish_cache: dict[bytes, PublishEvent] = {}

    def _publish_event(self, exchange: bytes, routing_key: bytes, bits: int, key: bytes) -> PublishEvent:
        """The (cached) event of a basic.publish whose arguments after the ticket are ``key``."""
        method = _new_object(PublishEvent)
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

    # -------------------------------------------------- the broker's state-changing sends
    def _send_transition(self, name: str) -> str:
        next_state, action = _on_send(CONNECTION_TRANSITIONS, self.state, name)
        if next_state is not None:
            self.state = next_state
            if next_state is CLOSED:
                self.should_close = True
        return action

    def send_tune(self) -> None:
        """The broker authenticated the client (after a start-ok event)."""
        if self._send_transition("send_tune") is SEND:
            self.send_method(0, spec.ConnectionTune(self.offer_channel_max, self.offer_frame_max,
                                                    self.offer_heartbeat))

    def send_open_ok(self) -> None:
        """The broker let the client into the vhost (after a connection.open event)."""
        if self._send_transition("send_open_ok") is SEND:
            self.send_method(0, spec.ConnectionOpenOk(""))

    def close(self, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Start a server-initiated connection close (hard error or shutdown)."""
        deferred = self._deferred_close
        if deferred is not None:
            # the parser found a framing error and holds its close behind the replies to the methods
            # before it; the caller's error (about one of those methods) came first, so it is the one sent
            self._deferred_close = None
            self._held.remove(deferred)
            self.state = self._state_before_close
        if self._send_transition("close") is SEND:
            self._content.clear()  # what arrives for it now is dropped
            text = _reply_text(text)
            self._release_held()
            self.close_reason = (code, text)
            self.send_method(0, spec.ConnectionClose(code, text, class_id, method_id))

    def _close_after_replies(self, e: HardError) -> None:
        """A framing error found while parsing: ``connection.close`` now (the state is CLOSING), its
        frame held behind what the caller sends for the events parsed before the error (RabbitMQ
        answers those in order, then closes)."""
        self._state_before_close = self.state
        self._content.clear()
        if self._send_transition("close") is SEND:
            text = _reply_text(e.reply_text)
            self.close_reason = (e.code, text)
            frame = self._deferred_close = method_frame(0, spec.ConnectionClose(e.code, text, e.class_id,
                                                                                   e.method_id))
            self._hold(frame)

    def _release_held(self) -> None:
        self._deferred_close = None
        Output._release_held(self)

    @property
    def receiving_bytes(self) -> int:
        """Bytes of messages being received, buffered now: the body frames of unfinished contents
        and an incomplete frame waiting for the rest of it (for the memory alarm)."""
        return self._pending_len + sum(p[4] for p in self._content.values() if p[3] is not _DISCARD)

    def abort(self) -> None:
        """Close the socket without a close handshake (e.g. failed login, RabbitMQ-style)."""
        self._send_transition("abort")

    def close_channel(self, channel: int, code: int, text: str, class_id: int = 0, method_id: int = 0) -> None:
        """Server-initiated channel close (soft error): frames on it are dropped until close-ok."""
        next_state, action = CHANNEL_TRANSITIONS[(self.channels.get(channel, CH_CLOSED), "close_channel")]
        if action is SEND:
            self.channels[channel] = next_state
            pending = self._content.get(channel)
            # the rest of a content is dropped, but a refused one's body is still due (the framing
            # rules do not depend on when the broker got round to closing the channel)
            if pending is not None and pending[3] is not _DISCARD:
                del self._content[channel]
            self.send_method(channel, spec.ChannelClose(code, _reply_text(text), class_id, method_id))

    # ------------------------------------------------------------------- input
    def receive_data(self, data: bytes) -> list:
        """Parse ``data``; return the list of complete events.  Never raises on bad input."""
        events: list = []
        if self.state is CLOSED:
            return events
        rest = None
        if self._pending:
            pending = self._pending
            pending.append(data)
            self._pending_len += len(data)
            if self._pending_len < self._need:
                return events
            excess = self._pending_len - self._need
            if excess and self._need > 7 and self.state is not AWAIT_HEADER:
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
            if self.state is AWAIT_HEADER:
                if len(buf) < 8:
                    self._stash(buf, 8)
                    return events
                if not self._protocol_header(buf[:8]):
                    return events
                buf = buf[8:]
            self._parse(buf, events, 0)
            if rest is not None and self.state is not CLOSED:
                self._parse(rest, events, start)
        except HardError as e:
            self._close_after_replies(e)
        except Exception:  # a bug in here: logged once, and the connection closes as RabbitMQ's would
            _log.exception("internal error parsing input; closing the connection")
            self._close_after_replies(HardError(INTERNAL_ERROR, ""))
        return events

    def _stash(self, buf, need: int) -> None:
        self._pending = [bytes(buf)]
        self._pending_len = len(buf)
        self._need = need

    def _protocol_header(self, header: bytes) -> bool:
        """Answer the protocol header: connection.start, or for a wrong header ours and the end."""
        # RabbitMQ also takes AMQP 0-9's header (1, 1, 0, 9) as 0-9-1 (txAMQP sends it)
        if header != PROTOCOL_HEADER and header != b"AMQP\x01\x01\x00\x09":
            self._emit(PROTOCOL_HEADER)
            self.state = CLOSED
            self.should_close = True
            return False
        self.state = CONNECTION_TRANSITIONS[(AWAIT_HEADER, "protocol header")][0]
        self.send_method(0, spec.ConnectionStart(0, 9, self.server_properties, self.mechanisms.encode(), b"en_US"))
        return True

    def _parse(self, buf: bytes, events: list, off: int) -> None:
        """Split the frames in ``buf`` from ``off`` and hand each to its handler (the two fast paths
        inline); keep an incomplete last frame for the next read."""
        n = len(buf)
        # RabbitMQ accepts payloads up to frame_max (though its error text names frame_max - 8)
        max_payload = self.frame_max
        channels = self.channels
        content = self._content
        pub_cache = self._publish_cache
        max_message = self.max_message_size
        fixed_size = FIXED_SIZE_FLAGS
        append = events.append
        # Constant during one parse: nothing received makes a connection OPEN (only the broker's
        # send_open_ok, between reads), and a parse that leaves OPEN returns (CLOSED) or raises.
        running = self.state is OPEN
        while True:
            # the frame header (type, channel, payload size) and, in the same unpack when they are in
            # the buffer, the next four bytes: a method frame's class and method ids
            if n - off >= 11:
                ftype, ch, size, index = _unpack_frame_hdr_ids(buf, off)
            elif n - off >= 7:
                ftype, ch, size = _unpack_frame_hdr(buf, off)
                index = -1  # not read: a complete method frame of 4 bytes or more has them in the buffer
            else:
                break
            if size > max_payload:
                raise HardError(FRAME_ERROR, f"type {ftype}, all octets = <<>>: "
                                f"{{frame_too_large,{size},{max_payload - 8}}}")
            end = off + 7 + size
            if end >= n:
                break
            if buf[end] != FRAME_END:
                raise HardError(FRAME_ERROR, _frame_end_error(ftype, buf[off + 7:end], buf[end]))
            if ftype == FRAME_METHOD:
                if (index == _PUBLISH_INDEX and size >= _PUBLISH_MIN_SIZE and running
                        and channels.get(ch) is CH_OPEN and ch not in content):
                    # FAST PATH 1, basic.publish.  It is the general path's (OPEN, CH_OPEN, basic.publish)
                    # row (CONTENT: a header is awaited), taken without decoding: the row's conditions
                    # are the ones tested above, and the frame is whole (size checked against the
                    # shortest publish; the two short strings and the bits must end exactly at the frame
                    # end, else the general path decodes it and reports the error).  Exchange and
                    # routing key stay the raw pair of short strings a delivery carries verbatim.
                    p = off + 13  # after the method ids and the ticket
                    rpos = p + 1 + buf[p]
                    bpos = rpos + 1 + buf[rpos] if rpos < end else end
                    if bpos == end - 1:
                        # one immutable method object per (exchange, routing key, bits), shared by
                        # every publish that carries them: no allocation per message
                        key = buf[p:end]
                        method = pub_cache.get(key)
                        if method is None:
                            method = self._publish_event(buf[p + 1:rpos], buf[rpos + 1:bpos], buf[bpos], key)
                        off = end + 1
                        # The frames of a publish usually follow each other in the same read: take a
                        # content header and a single body frame here, when both are complete.  These
                        # are the checks _content_header and _content_body make on the channel a
                        # publish just opened (type, channel, class, size within frame_max, frame end,
                        # properties that decode, body size within max_message_size, body exactly as
                        # announced); anything else is left to them.  Properties: no flags and nothing
                        # after them, or only fixed-size ones and their size, are checked inline, then
                        # property bytes seen valid before are looked up, the rest is scanned.
                        if n - off >= 26:
                            ftype, ch2, size, class_id, _, body_size, pflags = _unpack_content_hdr(buf, off)
                            end = off + 7 + size
                            if (ftype == FRAME_HEADER and ch2 == ch and PROPERTIES_OFFSET <= size <= max_payload
                                    and end < n and buf[end] == FRAME_END and class_id == _CLASS_BASIC
                                    and body_size <= max_message
                                    and ((not pflags and size == PROPERTIES_OFFSET)
                                         or fixed_size.get(pflags) == size - PROPERTIES_OFFSET
                                         or buf[off + 19:end] in VALID_PROPERTIES
                                         or properties_ok(buf, off + 7 + FLAGS_OFFSET, end))):
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
                elif (index == _ACK_INDEX and size == 13 and running
                        and channels.get(ch) is CH_OPEN and ch not in content):
                    # FAST PATH 2, basic.ack: the general path's (OPEN, CH_OPEN, ANY) row (EVENT), with the
                    # row's conditions tested above; a 13-byte payload is exactly the method ids, the
                    # delivery tag and the bits, so there is nothing the decoder could reject.
                    method = _new_object(_BasicAck)
                    method.delivery_tag, bits = _unpack_QB(buf, off + 11)
                    method.multiple = bits & 1 == 1
                    append((ch, method, None, None))
                    off = end + 1
                    continue
                self._method_frame(buf, off, end, ch, index, events)
                if ch == 0:  # a tune-ok's frame_max holds from the next frame on, in this read too
                    max_payload = self.frame_max
            elif ftype == FRAME_HEADER:
                self._content_header(buf, off, end, ch, size, events)
            elif ftype == FRAME_BODY:
                self._content_body(buf, off, end, ch, size, events)
            elif ftype == FRAME_HEARTBEAT:
                if ch != 0:  # the client's heartbeats only tell us it is alive (the transport's last_recv)
                    raise HardError(UNEXPECTED_FRAME, "type 8, all octets = <<>>")
            else:
                raise HardError(FRAME_ERROR, f"type {ftype}, all octets = <<>>: unknown_frame")
            off = end + 1
            if self.state is CLOSED:
                return
        if off < n:
            rest = buf[off:]
            need = 7
            if n - off >= 7:
                need = _unpack_I(buf, off + 3)[0] + 8
            self._stash(rest, need)

    # ---------------------------------------------------------------- method frames
    def _method_frame(self, buf: bytes, off: int, end: int, ch: int, index: int, events: list) -> None:
        """A method frame the fast paths did not take: decoded, then the tables decide."""
        content = self._content
        if ch in content:
            pending = content[ch]
            _content_expected(pending)
        if end - off - 7 < 4:
            raise HardError(FRAME_ERROR, "method frame too short")
        cls = METHODS.get(index)
        if cls is None:
            raise HardError(COMMAND_INVALID, f"unknown method {index >> 16}.{index & 0xFFFF}",
                            index >> 16, index & 0xFFFF)
        args = buf[off + 11:end]
        try:
            method = cls.decode(args, 0)
        except (DecodeError, struct.error, IndexError, UnicodeDecodeError, ValueError, RecursionError,
                OverflowError, TypeError):
            # RabbitMQ's answer to arguments that do not decode (truncated, a bad table): 501 and the bytes
            raise HardError(FRAME_ERROR, f"cannot decode {_erlang_binary(args)}", cls.CLASS_ID,
                            cls.METHOD_ID) from None
        if ch == 0:
            self._connection_method(method, events)
            return
        state = self.state
        if state is OPEN:
            self._channel_method(ch, method, events)
        elif state is not CLOSING:  # while CLOSING, channel frames are dropped
            raise HardError(COMMAND_INVALID, f"{cls.NAME} received before the connection was open",
                            cls.CLASS_ID, cls.METHOD_ID)

    def _connection_method(self, method, events: list) -> None:
        """A method on channel 0: CONNECTION_TRANSITIONS, with the guards of start-ok and tune-ok."""
        cls = type(method)
        next_state, action = _on_receive(CONNECTION_TRANSITIONS, self.state, cls)
        if action.__class__ is Refuse:
            raise HardError(action.code, action.text.format(name=cls.NAME), cls.CLASS_ID, cls.METHOD_ID)
        if action is EVENT:  # the guards of the handshake's transitions
            if cls is spec.ConnectionStartOk:
                self._start_ok(method)
            elif cls is spec.ConnectionTuneOk:
                self._tune_ok(method)
        elif action is HOLD_CLOSE_OK:
            self.close_reason = (method.reply_code, method.reply_text)
        if next_state is not None:
            self.state = next_state
            if next_state is CLOSED:
                self.should_close = True
        if action is EVENT:
            events.append((0, method, None, None))
        elif action is HOLD_CLOSE_OK:
            events.append((0, method, None, None))
            self._hold(method_frame(0, spec.ConnectionCloseOk()))
        elif action is SEND_CLOSE_OK:
            self.send_method(0, spec.ConnectionCloseOk())

    def _start_ok(self, method) -> None:
        self.client_properties = method.client_properties or {}
        caps = self.client_properties.get("capabilities")
        self.capabilities = caps if isinstance(caps, dict) else {}
        if method.mechanism not in self.mechanisms.split():
            raise HardError(COMMAND_INVALID, f"unknown authentication mechanism '{method.mechanism}'",
                            method.CLASS_ID, method.METHOD_ID)

    def _tune_ok(self, method) -> None:
        """The limits the client chose: RabbitMQ's checks and texts; 0 ("no limit") is above any limit
        the server offered."""
        ids = (method.CLASS_ID, method.METHOD_ID)
        frame_max = method.frame_max
        if frame_max == 0 or frame_max > self.offer_frame_max:
            raise HardError(NOT_ALLOWED, f"negotiated frame_max = {frame_max} is higher than the "
                            f"maximum allowed value ({self.offer_frame_max})", *ids)
        if frame_max < FRAME_MIN_SIZE:
            raise HardError(NOT_ALLOWED, f"negotiated frame_max = {frame_max} is lower than the "
                            f"minimum allowed value ({FRAME_MIN_SIZE})", *ids)
        self.frame_max = frame_max
        channel_max = method.channel_max
        if channel_max == 0 or channel_max > self.offer_channel_max:
            no_limit = " (no limit)" if channel_max == 0 else ""
            raise HardError(NOT_ALLOWED, f"negotiated channel_max = {channel_max}{no_limit} is higher "
                            f"than the maximum allowed value ({self.offer_channel_max})", *ids)
        self.channel_max = channel_max
        self.heartbeat = method.heartbeat

    def _channel_method(self, ch: int, method, events: list) -> None:
        """A method on channel ``ch`` of an OPEN connection: CHANNEL_TRANSITIONS, with the channel_max
        guard of channel.open."""
        channels = self.channels
        cls = type(method)
        next_state, action = _on_receive(CHANNEL_TRANSITIONS, channels.get(ch, CH_CLOSED), cls)
        if action.__class__ is Refuse:
            raise HardError(action.code, action.text.format(name=cls.NAME), cls.CLASS_ID, cls.METHOD_ID)
        if next_state is CH_OPEN and len(channels) >= self.channel_max:  # open channels, not numbers
            raise HardError(NOT_ALLOWED, f"number of channels opened ({len(channels)}) has reached the "
                            f"negotiated channel_max ({self.channel_max})")  # no method ids, as RabbitMQ
        if next_state is CH_CLOSED:
            del channels[ch]
        elif next_state is not None:
            channels[ch] = next_state
        if action is EVENT:
            events.append((ch, method, None, None))
        elif action is CONTENT:  # a publish the fast path did not take
            self._content[ch] = [as_publish_event(method), None, 0, None, 0]
        elif action is HOLD_CLOSE_OK:
            events.append((ch, method, None, None))
            self._hold(method_frame(ch, spec.ChannelCloseOk()))
        elif action is SEND_CLOSE_OK:
            self.send_method(ch, spec.ChannelCloseOk())

    # ---------------------------------------------------------------- content frames
    def _dropped(self, ch: int) -> bool:
        """Content frames nobody waits for are dropped while the connection or their channel closes."""
        return self.state is CLOSING or self.channels.get(ch) is CH_CLOSING

    def _content_header(self, buf: bytes, off: int, end: int, ch: int, size: int, events: list) -> None:
        content = self._content
        pending = content.get(ch)
        if pending is None or pending[1] is not None:
            if self._dropped(ch):
                return
            if pending is None:
                raise HardError(UNEXPECTED_FRAME, "expected method frame, got non method frame instead")
            _content_expected(pending)
        if size < PROPERTIES_OFFSET:
            raise HardError(FRAME_ERROR, f"type 2, all octets = {_erlang_binary(buf[off + 7:end])}: unknown_frame")
        class_id, = _unpack_H(buf, off + 7)
        body_size, = _unpack_Q(buf, off + 11)
        method = pending[0]
        if class_id != method.CLASS_ID:
            raise HardError(UNEXPECTED_FRAME, f"expected content header for class "
                            f"{method.CLASS_ID}, got one for class {class_id} instead", method.CLASS_ID,
                            method.METHOD_ID)
        if not properties_ok(buf, off + 7 + FLAGS_OFFSET, end):
            # RabbitMQ's channel fails to decode them at publish: the connection goes, 541 and no text
            raise HardError(INTERNAL_ERROR, "")
        header = buf[off + 7:end]
        if body_size > self.max_message_size:
            # refused before any of the body is buffered: the event has no body (the broker closes the
            # channel, 406); the body frames that follow are counted and dropped
            events.append((ch, method, header, None))
            pending[1] = header
            pending[2] = body_size
            pending[3] = _DISCARD
            return
        if body_size == 0:
            del content[ch]
            events.append((ch, pending[0], header, b""))
        else:
            pending[1] = header
            pending[2] = body_size

    def _content_body(self, buf: bytes, off: int, end: int, ch: int, size: int, events: list) -> None:
        content = self._content
        pending = content.get(ch)
        if pending is None or pending[1] is None:
            if self._dropped(ch):
                return
            if pending is None:
                raise HardError(UNEXPECTED_FRAME, "expected method frame, got non method frame instead")
            _content_expected(pending)
        got = pending[4] + size
        if got > pending[2]:
            raise HardError(FRAME_ERROR, f"content body is longer than the {pending[2]} bytes its header announced")
        parts = pending[3]
        if parts is _DISCARD:  # refused at its header: counted, dropped
            if got == pending[2]:
                del content[ch]
            else:
                pending[4] = got
            return
        piece = buf[off + 7:end]
        if got == pending[2]:
            del content[ch]
            if pending[3] is None:
                events.append((ch, pending[0], pending[1], piece))
            else:
                pending[3].append(piece)
                events.append((ch, pending[0], pending[1], b"".join(pending[3])))
        else:
            if pending[3] is None:
                pending[3] = [piece]
            else:
                pending[3].append(piece)
            pending[4] = got


def _content_expected(pending: list):
    """The UNEXPECTED_FRAME of a frame other than the one the content ``pending`` waits for (its header
    or body): RabbitMQ's texts, with the ids of the content's method."""
    method = pending[0]
    if pending[1] is None:
        text = f"expected content header for class {method.CLASS_ID}, got non content header frame instead"
    else:
        text = "expected content body, got non content body frame instead"
    raise HardError(UNEXPECTED_FRAME, text, method.CLASS_ID, method.METHOD_ID)


__all__ = ["ServerConnection", "ConnectionState", "ChannelState", "CONNECTION_TRANSITIONS", "CHANNEL_TRANSITIONS",
           "Event", *ConnectionState.__members__,
           "CH_CLOSED", "CH_OPEN", "CH_CLOSING"]
