"""One STOMP connection as the domain sees it: frames in, domain calls out, frames back.  No sockets.

Theory of operation: :class:`StompSession` is the connection state machine (AWAIT_CONNECT ->
CONNECTED -> CLOSED).  ``receive_data(bytes)`` feeds the :class:`~.codec.FrameReader` and handles each
frame; output accumulates in ``out`` and ``on_output`` (the transport's flush scheduler) is called when
the first piece of a turn arrives; ``take_output`` hands it over.  A session is one domain
:class:`~warrenmq.broker.channel.Channel` (:class:`StompChannel`), as RabbitMQ's STOMP adapter is one
AMQP channel: SEND publishes through ``Channel.publish`` (the one publish path) and SUBSCRIBE/ACK/NACK
use the channel's consume/settle API.  Any error (a malformed frame, a bad destination, a refused
permission, a domain ``SoftError``) becomes an ERROR frame with RabbitMQ's ``message`` header and body,
after which the session closes (``closing``: the transport writes the output and closes the socket), as
RabbitMQ's STOMP plugin does.

Destinations (:func:`parse_destination`) map onto exchanges and queues as RabbitMQ's plugin maps them:

* ``/queue/<name>``: SEND and SUBSCRIBE declare queue ``<name>`` (durable unless the frame says
  otherwise: :func:`declare_flags`); published to the default exchange.
* ``/amq/queue/<name>``: an existing queue (not declared); deliveries say ``/queue/<name>``.
* ``/topic/<key>``: published to ``amq.topic``; SUBSCRIBE binds a queue ``stomp-subscription-<random>``
  (not durable, auto-delete) or, with ``durable:true`` (``persistent:true``) and an ``id``, a durable
  queue named as RabbitMQ names it (:func:`durable_queue_name`), auto-delete unless ``auto-delete:false``
  (RabbitMQ's recipe for a subscription that outlives the connection).
* ``/exchange/<name>[/<key>]``: published to ``<name>``; SUBSCRIBE binds a subscription queue with key,
  declared as for ``/topic/``.
* ``/temp-queue/<name>``: only in a ``reply-to`` header (SEND and SUBSCRIBE refuse it, as RabbitMQ
  does), a server-named exclusive queue of this connection, subscribed to at once (subscription id
  ``/temp-queue/<name>``); the header is rewritten to ``/reply-queue/<queue>``.
* ``/reply-queue/<queue>``: published to the default exchange with key ``<queue>``.

Headers map to AMQP properties both ways (:func:`properties_from_headers`, :meth:`StompSession.send_message`):
content-type, content-encoding, persistent (delivery mode 2), priority, correlation-id, reply-to,
expiration, amqp-message-id (message_id), timestamp, type, user-id, app-id; any other header is a
string in the AMQP headers table.

Acknowledgement: a subscription's ``ack`` is ``auto`` (no-ack consumer), ``client`` (an ACK settles
that message and every earlier one on the session, AMQP's ``multiple``) or ``client-individual``.
The ack id is ``T_<subscription>@@<session>@@<delivery tag>`` (the ``ack`` header in 1.2, the
``message-id`` in 1.0/1.1).  Transactions (BEGIN/COMMIT/ABORT) are kept here: SEND, ACK and NACK
frames naming one wait in its list until COMMIT.
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import struct
import time

from ..broker.access import CONFIGURE, READ, WRITE
from ..broker.certlogin import peer_cert_auth_name
from ..broker.channel import Channel
from ..protocol.errors import AMQPError
from ..protocol.spec import CLASS_BASIC, REPLY_NAMES, BasicProperties
from .codec import CLIENT_COMMANDS, FrameError, FrameReader, encode_frame, escape

log = logging.getLogger("warrenmq.stomp")

AWAIT_CONNECT, CONNECTED, CLOSED = 0, 1, 2
VERSIONS = ("1.0", "1.1", "1.2")
SERVER = "RabbitMQ/3.10.8"
_HEADER_HEAD = struct.Struct(">HHQ").pack  # a content header's class id, weight and body size
_VALID = "Valid destination types are: /temp-queue, /exchange, /topic, /queue, /amq/queue, /reply-queue/.\n"

#: SEND headers that are not copied into the AMQP headers table
_NOT_CUSTOM = frozenset({"destination", "content-length", "transaction", "content-type", "content-encoding",
                         "persistent", "priority", "correlation-id", "reply-to", "expiration", "amqp-message-id",
                         "timestamp", "type", "user-id", "app-id"})


class StompError(Exception):
    """An ERROR frame: its ``message`` header and its body (the session closes after it)."""

    def __init__(self, message: str, detail: str):
        super().__init__(message, detail)
        self.message = message
        self.detail = detail


def parse_destination(dest: str):
    """``(kind, name, key)`` of a destination; StompError as RabbitMQ words it when it is not one."""
    for prefix, kind in (("/queue/", "queue"), ("/amq/queue/", "amqqueue"), ("/topic/", "topic"),
                         ("/exchange/", "exchange"), ("/temp-queue/", "temp-queue"),
                         ("/reply-queue/", "reply-queue")):
        if dest.startswith(prefix):
            rest = dest[len(prefix):]
            if kind == "exchange":
                name, _, key = rest.partition("/")
                if not name:
                    raise StompError("Invalid destination", f"'{name}' is not a valid exchange destination\n")
                return kind, name, key
            if not rest:
                what = {"amqqueue": "queue", "temp-queue": "temp-queue", "reply-queue": "reply-queue"}.get(kind, kind)
                raise StompError("Invalid destination", f"'' is not a valid {what} destination\n")
            return kind, rest, rest
    if dest in ("/queue", "/topic", "/amq/queue", "/temp-queue", "/reply-queue"):
        what = "queue" if dest == "/amq/queue" else dest[1:]
        raise StompError("Invalid destination", f"'' is not a valid {what} destination\n")
    raise StompError("Unknown destination", f"'{dest}' is not a valid destination.\n{_VALID}")


#: a SEND with no property header (only destination, content-length...): its property bytes, encoded once
_NO_PROPERTIES = BasicProperties().encode()


def properties_from_headers(frame, reply_to=None):
    """The AMQP properties of a SEND frame (see the module docstring), encoded; one pass over the headers,
    and none of the work when the frame names no property (the common SEND)."""
    custom = None
    known = None
    for k, v in reversed(frame.headers):  # RabbitMQ's table has them last first (the first of a name wins)
        if k in _NOT_CUSTOM:
            if k != "destination" and k != "content-length" and k != "transaction":
                if known is None:
                    known = {}
                known[k] = v
        else:
            if custom is None:
                custom = {}
            custom.pop(k, None)
            custom[k] = v
    if known is None and custom is None and reply_to is None:
        return _NO_PROPERTIES
    get = known.get if known is not None else {}.get
    p = BasicProperties()
    p.content_type = get("content-type")
    p.content_encoding = get("content-encoding")
    if get("persistent") == "true":
        p.delivery_mode = 2
    prio = get("priority")
    if prio is not None:
        if not prio.isdigit() or int(prio) > 255:
            raise StompError("Processing error", "Processing error")
        p.priority = int(prio)
    p.correlation_id = get("correlation-id")
    p.reply_to = reply_to if reply_to is not None else get("reply-to")
    p.expiration = get("expiration")
    p.message_id = get("amqp-message-id")
    ts = get("timestamp")
    if ts is not None:
        if not ts.isdigit():
            raise StompError("Processing error", "Processing error")
        p.timestamp = int(ts)
    p.type = get("type")
    p.user_id = get("user-id")
    p.app_id = get("app-id")
    p.headers = custom
    return p.encode()


#: the x-* headers RabbitMQ's STOMP adapter takes as queue arguments where it declares a queue, with their
#: AMQP types (integers for the numeric ones)
QUEUE_ARGUMENTS = {"x-dead-letter-exchange": str, "x-dead-letter-routing-key": str, "x-expires": int,
                   "x-max-length": int, "x-max-length-bytes": int, "x-max-priority": int, "x-message-ttl": int,
                   "x-overflow": str, "x-queue-mode": str, "x-queue-type": str, "x-queue-master-locator": str,
                   "x-single-active-consumer": bool, "x-delivery-limit": int}


def queue_arguments(frame):
    """The queue arguments in ``frame``'s ``x-*`` headers (None when there are none)."""
    args = None
    for k, v in frame.headers:
        t = QUEUE_ARGUMENTS.get(k)
        if t is None or (args is not None and k in args):
            continue
        if t is int:
            try:
                v = int(v)
            except ValueError:
                raise StompError("Invalid header", f"'{k}' must be an integer\n") from None
        elif t is bool:
            v = v == "true"
        if args is None:
            args = {}
        args[k] = v
    return args


def _header_value(v):
    """A custom header's text, or None for AMQP values RabbitMQ does not show (booleans, tables, arrays)."""
    cls = v.__class__
    if cls is str:
        return v
    if cls is bool or isinstance(v, (dict, list)):
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, (int, float)):
        return str(int(v)) if isinstance(v, int) else str(v)
    return None


def destination_of(msg) -> str:
    """The ``destination`` header of a delivery: where the message was published."""
    ex = msg.exchange
    if ex == "":
        return "/queue/" + msg.routing_key
    if ex == "amq.topic":
        return "/topic/" + msg.routing_key
    return f"/exchange/{ex}/{msg.routing_key}"


def _erlang_string(text: str) -> bytes:
    """``text`` as Erlang's term_to_binary encodes the list of its UTF-8 bytes (STRING_EXT, or NIL_EXT
    when empty, or LIST_EXT beyond 65535 bytes)."""
    b = text.encode()
    if not b:
        return b"\x6a"
    if len(b) <= 0xFFFF:
        return b"\x6b" + len(b).to_bytes(2, "big") + b
    return b"\x6c" + len(b).to_bytes(4, "big") + b"".join(b"\x61" + bytes([c]) for c in b) + b"\x6a"


def durable_queue_name(topic: str, sub_id: str) -> str:
    """The queue of a durable topic subscription, named as RabbitMQ's STOMP plugin names it (base64url of
    the md5 of the Erlang term ``{Topic, SubscriptionId}``), so clients moving over find their queues."""
    term = b"\x83\x68\x02" + _erlang_string(topic) + _erlang_string(sub_id)
    return "stomp-subscription-" + base64.urlsafe_b64encode(hashlib.md5(term).digest()).rstrip(b"=").decode()


_BOOLEANS = {"true": True, "True": True, "false": False, "False": False}


def declare_flags(frame, kind: str) -> tuple[bool, bool, bool]:
    """``(durable, auto_delete, exclusive)`` of the queue a SEND or SUBSCRIBE declares, as RabbitMQ's
    STOMP plugin derives them: defaults per destination (``/queue/``: durable; ``/topic/`` and
    ``/exchange/`` subscription queues: auto-delete, not exclusive) overridden by the frame's ``durable``
    (or ``persistent``), ``auto-delete`` and ``exclusive`` headers; a queue that is not durable is
    auto-delete and exclusive unless those are given; an exclusive queue is never durable (as an AMQP
    declare makes it).  A value other than true/false is RabbitMQ's ``Processing error``."""
    params = {"durable": True} if kind == "queue" else {"exclusive": False, "auto_delete": True}
    for header, key in (("persistent", "durable"), ("durable", "durable"), ("auto-delete", "auto_delete"),
                        ("exclusive", "exclusive")):
        v = frame.get(header)
        if v is not None:
            if v not in _BOOLEANS:
                raise StompError("Processing error", "Processing error")
            params[key] = _BOOLEANS[v]
    if params.get("durable", False):
        flags = {"durable": True, "auto_delete": False, "exclusive": False}
    else:
        flags = {"durable": False, "auto_delete": True, "exclusive": True}
    flags.update(params)
    return flags["durable"] and not flags["exclusive"], flags["auto_delete"], flags["exclusive"]


def _new_session_id() -> str:
    return "session-" + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()


class Subscription:
    __slots__ = ("id", "ack", "queue", "consumer", "prefix", "durable", "dest")

    def __init__(self, sub_id, ack, queue, dest, durable):
        self.id = sub_id
        self.ack = ack
        self.queue = queue
        self.consumer = None
        self.prefix = ""
        self.dest = dest
        self.durable = durable


class StompChannel(Channel):
    """The domain channel of a STOMP session; its hooks encode MESSAGE and ERROR frames."""
    __slots__ = ("session", "may_write")

    def __init__(self, session):
        Channel.__init__(self, session.broker, session.vhost, session, 1, session.paused)
        self.session = session
        self.may_write: set = set()

    def send_deliver(self, consumer, tag: int, entry) -> None:
        self.session.send_message(consumer, tag, entry)

    def send_return(self, msg, code: int, text: str) -> None:  # STOMP publishes are never mandatory
        pass

    def send_confirm(self, seq: int, multiple: bool, nack: bool) -> None:
        self.session.confirmed(seq, multiple, nack)

    def send_reply(self, msg, tag: int) -> None:
        pass

    def send_cancel(self, consumer) -> None:
        self.session.subscription_cancelled(consumer)

    def timed_out(self, timeout_ms: int) -> None:
        self.session.fail("Consumer timeout", f"delivery acknowledgement timed out after {timeout_ms} ms\n")


class _Limits:
    """What the management API reads of a connection's protocol object: RabbitMQ shows a STOMP connection
    with one channel, no frame size and the client properties below."""
    __slots__ = ("heartbeat",)
    channel_max = 1
    frame_max = 0
    client_properties = {"product": "STOMP client"}

    def __init__(self):
        self.heartbeat = 0


class StompSession:
    """See the module docstring."""
    connection_type = "direct"  # as RabbitMQ lists its STOMP connections (they are direct AMQP connections there)

    def __init__(self, broker, peer=None, local=None, protocol: str = "STOMP"):
        self.broker = broker
        self.peer = peer
        self.local = local
        cfg = broker.config
        self.reader_ = FrameReader(getattr(cfg, "stomp_max_header_bytes", 65536), 1000,
                                   getattr(cfg, "max_message_size", 128 * 1024 * 1024))
        self.state_ = AWAIT_CONNECT
        self.version = "1.0"
        self.session_id = _new_session_id()
        self.user = None
        self.vhost = None
        self.channel = None
        self.channels: dict = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.transactions: dict[str, list] = {}
        self.pending_receipts: list = []
        self.counted = False  # in the broker's per-vhost/per-user connection counts (limits)  # (publish sequence number, receipt id) of SENDs awaiting confirms
        self.exclusive_queues: list = []
        self.temp_queues: dict[str, str] = {}
        self.declared: dict = {}  # /queue/ names this connection declared (SEND declares them once)
        self.out: list = []
        self.on_output = None  # called when output appears and was empty (the transport's flush)
        self.closing = False  # the output ends in an ERROR (or a DISCONNECT's receipt): close after writing
        self.closed = False
        self.paused = False
        self.blocked = False
        self.reader = None  # the transport (pause_reading/resume_reading, get_extra_info)
        self.reading_paused = 0
        self.flow_count = 0
        self.heartbeat_out = 0  # ms between heart-beats the server sends (0: none)
        self.heartbeat_in = 0  # ms between heart-beats the client promised (0: none)
        self.recv_oct = self.recv_cnt = self.send_oct = self.send_cnt = 0
        self.name = f"{peer[0]}:{peer[1]}" if peer else "embedded"
        self.proto = _Limits()
        self.protocol_name = protocol  # "Web STOMP" over WebSocket: the management API shows "<name> <version>"
        self.protocol = protocol
        self.connected_at = int(time.time() * 1000)
        self.close_logged = False
        self.announced = False

    # ------------------------------------------------------------------ output
    def _write(self, data: bytes) -> None:
        out = self.out
        out.append(data)
        if len(out) == 1 and self.on_output is not None:
            self.on_output()

    def take_output(self) -> bytes:
        out = self.out
        if not out:
            return b""
        data = b"".join(out) if len(out) > 1 else out[0]
        out.clear()
        return data

    def send_frame(self, command: str, headers, body: bytes = b"", content_length: bool = False) -> None:
        self._write(encode_frame(command, headers, body, self.version, content_length) + b"\n")

    def fail(self, message: str, detail: str, receipt: str | None = None) -> None:
        """Send RabbitMQ's ERROR frame and close the session once it is written."""
        if self.closing or self.closed:
            return
        headers = [("message", message), ("content-type", "text/plain"), ("version", ",".join(VERSIONS))]
        if receipt is not None:
            headers.append(("receipt-id", receipt))
        self._write(encode_frame("ERROR", headers, detail.encode(), self.version if self.version != "1.0" else "1.2") + b"\n")
        self.closing = True
        self.release()

    # ------------------------------------------------------------------- input
    def receive_data(self, data: bytes) -> None:
        if self.closing or self.closed:
            return
        try:
            frames = self.reader_.feed(data)
        except FrameError as e:
            self.fail(e.message, e.detail)
            return
        for frame in frames:
            if self.closing:
                break
            try:
                self.handle(frame)
            except StompError as e:
                self.fail(e.message, e.detail, frame.get("receipt"))
            except AMQPError as e:  # the domain's refusal, named as RabbitMQ's STOMP adapter names it
                self.fail(REPLY_NAMES.get(e.code, "internal_error").lower(), e.reply_text, frame.get("receipt"))
            except Exception:
                log.exception("internal error on STOMP connection %s handling %s", self.name, frame.command)
                self.fail("Processing error", "Processing error")
        self.broker.confirms.flush()

    def handle(self, frame) -> None:
        cmd = frame.command
        if self.state_ == AWAIT_CONNECT:
            if cmd in ("CONNECT", "STOMP"):
                self.on_connect(frame)
                return
            if cmd in CLIENT_COMMANDS:
                raise StompError("Illegal command", "You must log in using CONNECT first")
            raise StompError("Bad command", f'Could not interpret command "{cmd}"\n')
        handler = _HANDLERS.get(cmd)
        if handler is None:
            if cmd in ("CONNECT", "STOMP"):  # RabbitMQ 3.10.8 closes the connection without a word
                self.closing = True
                self.release()
                return
            raise StompError("Bad command", f'Could not interpret command "{cmd}"\n')
        tx = frame.get("transaction") if cmd in ("SEND", "ACK", "NACK") else None
        if tx is not None:
            ops = self.transactions.get(tx)
            if ops is None:
                raise StompError("Bad transaction", f'Invalid transaction identifier: "{tx}"\n')
            ops.append(frame)
        elif cmd == "SEND" and frame.get("receipt") is not None:
            # the RECEIPT of a SEND is its publisher confirm, as in RabbitMQ: sent once the message is in
            # its queues and, if persisted, once the store made it durable (send_confirm)
            ch = self.channel
            if ch.confirms is None:
                ch.select_confirm()
            # (noted before publishing: a refusal is confirmed at once, within the publish)
            self.pending_receipts.append((ch.confirms.seq + 1, frame.get("receipt")))
            handler(self, frame)
            return
        else:
            handler(self, frame)
        receipt = frame.get("receipt")
        if receipt is not None and not self.closing:
            self.send_frame("RECEIPT", [("receipt-id", receipt)])
            if cmd == "DISCONNECT":
                self.closing = True

    # ---------------------------------------------------------------- connect
    def on_connect(self, frame) -> None:
        accept = frame.get("accept-version")
        if accept is None:
            version = "1.0"
        else:
            offered = {v.strip() for v in accept.split(",")}
            common = [v for v in VERSIONS if v in offered]
            if not common:
                self.version = "1.2"
                raise StompError("Version mismatch", "Supported versions are " + ",".join(VERSIONS) + "\n")
            version = common[-1]
        self.version = version
        self.reader_.version = version
        self.protocol = f"{self.protocol_name} {version}"
        login = frame.get("login", "guest")
        passcode = frame.get("passcode", "guest" if frame.get("login") is None else "")
        host = frame.get("host") or "/"
        cert_name = self._certificate_name() if frame.get("login") is None else None
        if cert_name is not None:  # no login header: the verified certificate's name (stomp.ssl_cert_login)
            login = cert_name
            user = self.broker.authenticate_certificate(cert_name, self.peer, "stomp")
        else:
            user = self.broker.authenticate((login, passcode), self.peer, "stomp")
        if user is None:
            raise StompError("Bad CONNECT", f"Access refused for user '{login}'\n")
        vhost = self.broker.vhosts.get(host)
        if vhost is None or not self.broker.user_can_access(user, host):
            raise StompError("Bad CONNECT", f"Virtual host '{host}' access denied")
        limits = self.broker.limits
        try:  # the vhost's and the user's max-connections count STOMP connections too (RabbitMQ's words)
            limits.check_connection(host, user.name)
        except AMQPError:
            raise StompError("Bad CONNECT", f"Virtual host '{host}' access denied") from None
        limits.connection_opened(host, user.name)
        self.counted = True
        self.user = user
        self.vhost = vhost
        cx, cy = 0, 0
        hb = frame.get("heart-beat")
        if hb is not None and version != "1.0":
            try:
                a, b = hb.split(",")
                cx, cy = int(a), int(b)
                if cx < 0 or cy < 0:
                    raise ValueError
            except ValueError:
                raise StompError("Invalid heart-beat", f"'{hb}' is not a valid heart-beat header\n") from None
        # RabbitMQ answers with the client's values swapped: it sends as often as the client wants to
        # receive (cy) and expects what the client offers to send (cx)
        self.heartbeat_out = cy
        self.heartbeat_in = cx
        self.proto.heartbeat = max(cx, cy) // 1000
        self.channel = StompChannel(self)
        self.channels = {1: self.channel}
        self.state_ = CONNECTED
        headers = [("server", SERVER), ("session", self.session_id), ("heart-beat", f"{cy},{cx}"),
                   ("version", version)]
        self.send_frame("CONNECTED", headers)
        self.broker.session_opened(self)
        if self.broker.alarms:
            self.set_blocked(True)

    def _certificate_name(self) -> str | None:
        """The user name of the client's verified TLS certificate when ``stomp_ssl_cert_login`` is on
        (:mod:`warrenmq.broker.certlogin`), else ``None``."""
        cfg = self.broker.config
        if not getattr(cfg, "stomp_ssl_cert_login", False) or self.reader is None:
            return None
        return peer_cert_auth_name(self.reader.get_extra_info("peercert"), cfg.ssl_cert_login_from,
                                   cfg.tls_verify_peer)

    # ----------------------------------------------------------------- checks
    def _may(self, kind: str, name: str, perm: str) -> None:
        self.broker.check_resource(self.user, self.vhost.name, kind, name, perm)

    def _may_publish(self, exchange: str, key: str) -> None:
        ch = self.channel
        if exchange in ch.may_write:
            return
        vhost = self.vhost
        self._may("exchange", exchange, WRITE)
        ex = vhost.exchanges.get(exchange)
        if ex is None:
            return
        if (vhost.name, exchange) in self.user.topic_permissions:
            if ex.type == "topic":
                self.broker.check_topic(self.user, vhost.name, exchange, key, WRITE)
            return
        ch.may_write.add(exchange)

    def _declare(self, name: str, durable: bool, auto_delete: bool, exclusive: bool = False, arguments=None):
        """Declare a queue as RabbitMQ's adapter does (configure permission; ``arguments`` from the frame's
        ``x-*`` headers, :func:`queue_arguments`)."""
        self._may("queue", name, CONFIGURE)
        q, created = self.vhost.declare_queue(name, self, False, durable, exclusive, auto_delete, arguments)
        if created and exclusive:
            self.exclusive_queues.append(q)
        return q

    # ------------------------------------------------------------------- send
    def on_send(self, frame) -> None:
        dest = frame.get("destination")
        if dest is None:
            raise StompError("Missing destination", "\"SEND\" must include a 'destination' header\n")
        if frame.get("message-id") is not None:
            raise StompError("Invalid header", "'message-id' is not allowed on 'SEND'.\n")
        kind, name, key = parse_destination(dest)
        if kind == "queue":
            q = self.declared.get(name)
            if q is None or q.deleted:  # declared once per connection, as RabbitMQ's adapter remembers it
                self.declared[name] = self._declare(name, *declare_flags(frame, kind), queue_arguments(frame))
            exchange, key = "", name
        elif kind in ("amqqueue", "reply-queue"):
            exchange, key = "", name
        elif kind == "topic":
            exchange = "amq.topic"
        elif kind == "exchange":
            exchange = name
        else:  # temp-queue: only a reply-to names one
            raise StompError("Invalid destination", f"'{dest}' is not a valid destination for 'SEND'\n")
        reply_to = frame.get("reply-to")
        if reply_to is not None and reply_to.startswith("/temp-queue/"):
            reply_to = "/reply-queue/" + self._temp_queue(reply_to[len("/temp-queue/"):])
        else:
            reply_to = None
        props = properties_from_headers(frame, reply_to)
        body = frame.body
        self._may_publish(exchange, key)
        self.channel.publish(exchange, key, _HEADER_HEAD(CLASS_BASIC, 0, len(body)) + props, body, False)
        if self.blocked:  # a resource alarm is on: stop reading this publisher until it clears
            self._pause(1)

    def _temp_queue(self, name: str) -> str:
        """The server-named queue behind ``/temp-queue/<name>`` (made and subscribed to on first use)."""
        qname = self.temp_queues.get(name)
        if qname is None:
            q, _ = self.vhost.declare_queue("", self, False, False, True, True, None)
            self.exclusive_queues.append(q)
            qname = self.temp_queues[name] = q.name
            sub_id = "/temp-queue/" + name
            self._subscribe(sub_id, "auto", q, "/queue/" + q.name, False, 0)
        return qname

    # -------------------------------------------------------------- subscribe
    def on_subscribe(self, frame) -> None:
        dest = frame.get("destination")
        if dest is None:
            raise StompError("Missing destination", "\"SUBSCRIBE\" must include a 'destination' header\n")
        kind, name, key = parse_destination(dest)
        if kind == "temp-queue":  # only a reply-to names one (its subscription is made then)
            raise StompError("Invalid destination", f"'{dest}' is not a valid destination for 'SUBSCRIBE'\n")
        sub_id = frame.get("id") or dest
        if sub_id in self.subscriptions:  # RabbitMQ names it by its consumer tag
            raise StompError("Duplicated subscription identifier",
                             f"A subscription identified by 'T_{sub_id}' already exists.")
        ack = frame.get("ack", "auto")
        if ack not in ("auto", "client", "client-individual"):
            raise StompError("Processing error", "Processing error")  # RabbitMQ 3.10.8's answer to both
        prefetch = frame.get("prefetch-count")
        prefetch_n = 0
        if prefetch is not None:
            if not prefetch.isdigit():
                raise StompError("Processing error", "Processing error")
            prefetch_n = int(prefetch)
        durable = frame.get("durable", frame.get("persistent")) == "true"
        vhost = self.vhost
        if kind == "queue":
            q = self._declare(name, *declare_flags(frame, kind), queue_arguments(frame))
        elif kind in ("amqqueue", "reply-queue"):
            q = vhost.get_queue(name, self)
        else:
            exchange = "amq.topic" if kind == "topic" else name
            if exchange not in vhost.exchanges:
                raise vhost.not_found_exchange(exchange)
            flags = declare_flags(frame, kind)
            if durable:
                if frame.get("id") is None:
                    raise StompError("Missing Header", "Header 'id' is required for durable subscriptions")
                qname = durable_queue_name(key, sub_id)
            else:
                qname = "stomp-subscription-" + base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
            q = self._declare(qname, *flags, queue_arguments(frame) if durable else None)
            self._may("queue", q.name, WRITE)
            self._may("exchange", exchange, READ)
            if vhost.exchanges[exchange].type == "topic":
                self.broker.check_topic(self.user, vhost.name, exchange, key, READ)
            vhost.bind_queue(q, exchange, key, None)
        self._subscribe(sub_id, ack, q, dest, durable, prefetch_n)

    def _subscribe(self, sub_id: str, ack: str, q, dest: str, durable: bool, prefetch: int) -> None:
        self._may("queue", q.name, READ)
        ch = self.channel
        sub = Subscription(sub_id, ack, q, dest, durable)
        ch.prefetch_count = prefetch
        c = ch.consume(q, "T_" + sub_id, ack == "auto", False, None)
        c.prefix = sub  # the consumer's per-protocol slot: its subscription
        sub.consumer = c
        sub.prefix = escape(sub_id, self.version)
        self.subscriptions[sub_id] = sub
        ch.start(c)

    def on_unsubscribe(self, frame) -> None:
        sub_id = frame.get("id")
        what = f"id='{sub_id}'"
        if sub_id is None:
            sub_id = frame.get("destination")
            what = f"destination='{sub_id}'"
        if sub_id is None:
            raise StompError("Missing destination or id", "UNSUBSCRIBE must include a 'destination' or 'id' header")
        sub = self.subscriptions.pop(sub_id, None)
        if sub is None:
            raise StompError("No subscription found", "UNSUBSCRIBE must refer to an existing subscription.\n"
                             f'Subscription to "{what}" not found.\n')
        self.channel.cancel(sub.consumer.tag)
        if sub.durable and frame.get("durable", frame.get("persistent")) == "true" and not sub.queue.deleted:
            self._may("queue", sub.queue.name, CONFIGURE)
            self.vhost.delete_queue(sub.queue)

    def subscription_cancelled(self, consumer) -> None:
        sub = consumer.prefix
        self.subscriptions.pop(sub.id, None)
        self.fail("Server cancelled subscription", f"Subscription to {sub.dest} was cancelled by the server.\n")

    def confirmed(self, seq: int, multiple: bool, nack: bool) -> None:
        """Publishes up to ``seq`` (or just ``seq``) are confirmed: the RECEIPTs of those SENDs go out.  A
        refused one (a full queue with reject-publish) gets its RECEIPT too, as from RabbitMQ 3.10.8."""
        pending = self.pending_receipts
        if not pending or self.closing:
            return
        keep = []
        for item in pending:
            s = item[0]
            if s == seq or (multiple and s < seq):
                self.send_frame("RECEIPT", [("receipt-id", item[1])])
            else:
                keep.append(item)
        self.pending_receipts = keep

    # ---------------------------------------------------------------- deliver
    def send_message(self, consumer, tag: int, entry) -> None:
        """A MESSAGE frame for ``entry`` to ``consumer``'s subscription (the delivery path)."""
        sub = consumer.prefix
        msg = entry.message
        version = self.version
        mid = f"T_{sub.prefix}@@{self.session_id}@@{tag}"
        parts = ["MESSAGE\nsubscription:", sub.prefix, "\ndestination:", escape(destination_of(msg), version),
                 "\nmessage-id:", mid, "\nredelivered:", "true" if entry.redelivered else "false", "\n"]
        if version == "1.2" and sub.ack != "auto":
            parts.append("ack:")
            parts.append(mid)
            parts.append("\n")
        p = msg.properties
        pairs = []
        h = p.headers
        if h:
            for k, v in h.items():
                v = _header_value(v)
                if v is not None:
                    pairs.append((k, v))
        for name, value in (("app-id", p.app_id), ("user-id", p.user_id), ("type", p.type),
                            ("timestamp", p.timestamp), ("amqp-message-id", p.message_id),
                            ("expiration", p.expiration)):
            if value is not None:
                pairs.append((name, str(value)))
        if p.reply_to is not None:
            rt = p.reply_to
            pairs.append(("reply-to", rt if rt.startswith("/") else "/reply-queue/" + rt))
        if p.correlation_id is not None:
            pairs.append(("correlation-id", p.correlation_id))
        if p.priority is not None:
            pairs.append(("priority", str(p.priority)))
        if p.delivery_mode is not None:
            pairs.append(("persistent", "true" if p.delivery_mode == 2 else "false"))
        if p.content_encoding is not None:
            pairs.append(("content-encoding", p.content_encoding))
        if p.content_type is not None:
            pairs.append(("content-type", p.content_type))
        for k, v in pairs:
            parts.append(escape(k, version))
            parts.append(":")
            parts.append(escape(v, version))
            parts.append("\n")
        body = msg.body
        parts.append(f"content-length:{len(body)}\n\n")
        self._write("".join(parts).encode() + body + b"\0\n")  # RabbitMQ ends each frame with an EOL

    # -------------------------------------------------------------- ack, nack
    def _ack_tag(self, frame, command: str):
        if self.version == "1.2":
            ack_id = frame.get("id")
            what = '"id"'
        else:
            ack_id = frame.get("message-id")
            what = '"message-id"'
        if ack_id is None:
            raise StompError("Missing header", f'"{command}" must include the {what} header\n')
        parts = ack_id.split("@@")
        if len(parts) != 3 or parts[1] != self.session_id or not parts[2].isdigit() or not parts[0].startswith("T_"):
            raise StompError("Invalid header", f'"{command}" must include a valid {what} header\n')
        sub = self.subscriptions.get(parts[0][2:])
        if sub is None:
            raise StompError("Subscription not found", f"Message with id {ack_id} has no subscription\n")
        return int(parts[2]), sub

    def on_ack(self, frame) -> None:
        tag, sub = self._ack_tag(frame, "ACK")
        if sub.ack == "auto":
            return
        if tag in self.channel.unacked:
            self.channel.ack(tag, sub.ack == "client")

    def on_nack(self, frame) -> None:
        tag, sub = self._ack_tag(frame, "NACK")
        if sub.ack == "auto":
            return
        if tag in self.channel.unacked:
            self.channel.reject(tag, sub.ack == "client", frame.get("requeue", "true") != "false")

    # ---------------------------------------------------------- transactions
    def _tx_id(self, frame) -> str:
        tx = frame.get("transaction")
        if tx is None:
            raise StompError("Missing transaction", f"\"{frame.command}\" must include a 'transaction' header\n")
        return tx

    def on_begin(self, frame) -> None:
        tx = self._tx_id(frame)
        if tx not in self.transactions:  # RabbitMQ 3.10.8 answers a second BEGIN of a name with nothing
            self.transactions[tx] = []

    def on_commit(self, frame) -> None:
        tx = self._tx_id(frame)
        ops = self.transactions.pop(tx, None)
        if ops is None:
            raise StompError("Bad transaction", f'Invalid transaction identifier: "{tx}"\n')
        for f in ops:
            _HANDLERS[f.command](self, f)

    def on_abort(self, frame) -> None:
        tx = self._tx_id(frame)
        if self.transactions.pop(tx, None) is None:
            raise StompError("Bad transaction", f'Invalid transaction identifier: "{tx}"\n')

    def on_disconnect(self, frame) -> None:
        if frame.get("receipt") is None:
            self.closing = True
        self.release()

    # ----------------------------------------------------------- lifecycle
    def release(self) -> None:
        """Give back everything the session holds (unacked messages requeued, exclusive queues gone)."""
        if self.closed:
            return
        self.closed = True
        self.state_ = CLOSED
        ch = self.channel
        if ch is not None:
            ch.close()
        self.subscriptions.clear()
        for q in self.exclusive_queues:
            if not q.deleted:
                self.vhost.delete_queue(q)
        self.exclusive_queues.clear()
        if self.counted:
            self.counted = False
            self.broker.limits.connection_closed(self.vhost.name, self.user.name)
        if self.channel is not None:  # it was open: its counts stay in the vhost's totals (churn, octets)
            self.vhost.stats.fold_connection(self)
        self.broker.session_closed(self)

    def connection_lost(self, reason=None) -> None:
        self.release()

    def force_close(self, code: int, text: str) -> None:
        if self.closing:
            return
        # RabbitMQ's STOMP adapter reports the death of its AMQP channel, as an Erlang term
        self.fail("AMQP channel died", "Reason: {shutdown,\n            {connection_closing,"
                  f'{{server_initiated_close,{code},"{text}"}}}}}}')

    # -------------------------------------------------------------- flow
    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        ch = self.channel
        if ch is not None:
            ch.paused = paused
            if not paused:
                ch.dispatch_consumers()

    def set_blocked(self, blocked: bool) -> None:
        """A resource alarm was raised or cleared: as in RabbitMQ a connection that publishes while one is
        on is no longer read (``on_send``) until every alarm is clear."""
        if blocked == self.blocked or self.closed:
            return
        self.blocked = blocked
        if not blocked:
            self._resume(1)

    def _pause(self, bit: int) -> None:
        was = self.reading_paused
        self.reading_paused = was | bit
        if not was and self.reader is not None and not self.closed:
            self.reader.pause_reading()

    def _resume(self, bit: int) -> None:
        if self.reading_paused & bit:
            self.reading_paused &= ~bit
            if not self.reading_paused and self.reader is not None and not self.closed:
                self.reader.resume_reading()

    def set_flow(self, on: bool) -> None:
        if on:
            self.flow_count += 1
            if self.flow_count == 1:
                self._pause(4)
        elif self.flow_count > 0:
            self.flow_count -= 1
            if not self.flow_count:
                self._resume(4)

    @property
    def state(self) -> str:
        if self.closed:
            return "closed"
        if self.vhost is None:
            return "starting"
        if self.blocked:
            return "blocked" if self.reading_paused & 1 else "blocking"
        if self.flow_count:
            return "flow"
        return "running"


_HANDLERS = {
    "SEND": StompSession.on_send,
    "SUBSCRIBE": StompSession.on_subscribe,
    "UNSUBSCRIBE": StompSession.on_unsubscribe,
    "ACK": StompSession.on_ack,
    "NACK": StompSession.on_nack,
    "BEGIN": StompSession.on_begin,
    "COMMIT": StompSession.on_commit,
    "ABORT": StompSession.on_abort,
    "DISCONNECT": StompSession.on_disconnect,
}
