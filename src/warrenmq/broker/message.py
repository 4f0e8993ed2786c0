"""Messages as the broker holds them.

Theory of operation: a :class:`Message` is created once per publish and shared
by every queue the message is routed to.  It keeps the content header payload
exactly as the publisher sent it (``header``: class, weight, body size, flags and
property bytes) and forwards it verbatim on delivery; properties are decoded
only when a feature needs them (:attr:`Message.properties`).  ``ex_rk`` is the
exchange and routing key already encoded as two short strings, the tail of a
``basic.deliver``/``basic.get-ok`` method, so deliveries never re-encode them.

Memory per queued message (what the memory alarm's docs quote): a Message
(10 slots, 112 bytes with its GC header), a QueueEntry (7 slots, 96), the body
(a bytes object: 33 bytes + its length, rounded up to 16) and the entry's place
in the queue's deque (8) and its sequence number (an int object, 32, above 256).
The content header is shared: messages whose header bytes are the same (same
properties and body size, up to :data:`SHARED_HEADER_MAX` bytes) point to one
bytes object, kept in a bounded cache, so a stream of like messages pays for
its header once.  The exchange and routing-key strings and ``ex_rk`` are shared
already (the protocol keeps one publish method per exchange and routing key).

A :class:`QueueEntry` is one message's place in one queue: its sequence number
(requeued messages go back to their original place), redelivery flag and
delivery count.  Unacked deliveries keep their entry until settled.
"""
from __future__ import annotations

from ..protocol.codec import encode_shortstr
from ..protocol.properties import (
    FLAGS_OFFSET, HI_CONTENT_ENCODING, HI_CONTENT_TYPE, HI_DELIVERY_MODE, HI_EXPIRATION, HI_HEADERS, HI_PRIORITY,
    PERSISTENT, PROPERTIES_OFFSET,
)
from ..protocol.spec import BasicProperties


#: content headers up to this long are shared between messages that carry the same bytes (see Message)
SHARED_HEADER_MAX = 64
#: at most this many distinct shared headers are remembered (then the cache starts afresh)
SHARED_HEADERS_CACHE = 4096
_shared_headers: dict = {}


class Message:
    __slots__ = ("exchange", "routing_key", "header", "body", "ex_rk", "_props", "store_id", "paged", "page_id",
                 "pageable")
    #: the routing keys after the first (CC and BCC headers, see :class:`RoutedMessage`); a class-level
    #: ``None`` so that a plain message pays nothing for the feature
    extra_keys = None

    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes, ex_rk: bytes | None = None):
        self.exchange = exchange
        self.routing_key = routing_key
        if len(header) <= SHARED_HEADER_MAX:  # one bytes object for every message with this header
            shared = _shared_headers.get(header)
            if shared is None:
                if len(_shared_headers) >= SHARED_HEADERS_CACHE:
                    _shared_headers.clear()
                shared = _shared_headers[header] = header
            header = shared
        self.header = header
        self.body = body
        self.ex_rk = ex_rk if ex_rk is not None else encode_shortstr(exchange) + encode_shortstr(routing_key)
        self._props = None
        self.store_id = 0  # the message store's id once persisted (0: not persisted)
        # paging: ``paged`` while the body lives on disk only (``body`` is None once written there);
        # ``page_id`` is its id in the transient page store when it is not in the message store
        self.paged = False
        self.page_id = 0
        self.pageable = False  # set at routing when every queue holding it can page it alone

    @property
    def properties(self) -> BasicProperties:
        p = self._props
        if p is None:
            p = self._props = BasicProperties.decode(self.header, 12)
        return p

    @property
    def body_size(self) -> int:
        return len(self.body)

    @property
    def persistent(self) -> bool:
        """delivery-mode is 2, read straight from the header bytes (no property decoding)."""
        header = self.header
        hi = header[FLAGS_OFFSET]
        if not hi & HI_DELIVERY_MODE:
            return False
        off = PROPERTIES_OFFSET  # the properties before delivery-mode (properties.offset_of, inlined: hot)
        if hi & HI_CONTENT_TYPE:
            off += 1 + header[off]
        if hi & HI_CONTENT_ENCODING:
            off += 1 + header[off]
        if hi & HI_HEADERS:
            off += 4 + int.from_bytes(header[off:off + 4], "big")
        return header[off] == PERSISTENT

    @property
    def priority(self) -> int:
        """The ``priority`` property, 0 when absent (as RabbitMQ treats it)."""
        header = self.header
        if not header[FLAGS_OFFSET] & HI_PRIORITY:
            return 0
        return self.properties.priority or 0

    @property
    def expiration(self):
        """The raw ``expiration`` property (a string), or ``None`` when absent."""
        header = self.header
        if not header[FLAGS_OFFSET] & HI_EXPIRATION:
            return None
        return self.properties.expiration

    @property
    def ttl(self):
        """The per-message TTL in milliseconds from ``expiration``, or ``None``."""
        exp = self.expiration
        if exp is None:
            return None
        try:
            return parse_expiration(exp)
        except ValueError:  # validated at publish; treat anything else as no TTL
            return None

    def __repr__(self) -> str:
        return f"Message({self.exchange!r}, {self.routing_key!r}, {len(self.body)} bytes)"


def parse_expiration(value) -> int:
    """The TTL in ms of an ``expiration`` property, as RabbitMQ parses it.

    Raises ``ValueError`` whose text is RabbitMQ's reason term (``no_integer``,
    ``{leftover_string,"x"}``, ``{value_negative,-5}``), for the
    ``invalid expiration '...': <reason>`` channel error.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    # Erlang's string:to_integer/1: optional sign, then digits; the rest is left over
    i = 1 if value[:1] in ("+", "-") else 0
    j = i
    while j < len(value) and "0" <= value[j] <= "9":
        j += 1
    if j == i:
        raise ValueError("no_integer")
    n = int(value[:j])
    if j < len(value):
        raise ValueError('{leftover_string,"%s"}' % value[j:].replace("\\", "\\\\").replace('"', '\\"'))
    if n < 0:
        raise ValueError(f"{{value_negative,{n}}}")
    return n


class RoutedMessage(Message):
    """A message routed by more than one routing key: the ``CC`` and ``BCC`` headers' keys (RabbitMQ's
    ``routing_keys`` after the first), also kept for dead lettering without a dead-letter routing key."""
    __slots__ = ("extra_keys",)


class CountedMessage(Message):
    """A quorum queue's copy of a message whose headers carry ``x-delivery-count`` (what consumers get);
    ``original`` is the message as published (what is dead-lettered)."""
    __slots__ = ("original",)


class QueueEntry:
    __slots__ = ("message", "seq", "redelivered", "queue", "consumer", "delivery_count", "expires")

    def __init__(self, message: Message, seq: int, queue):
        self.message, self.seq, self.queue = message, seq, queue
        self.redelivered = False
        self.consumer = None
        self.delivery_count = 0
        self.expires = 0.0  # time.monotonic() deadline while ready in a queue with a TTL; 0.0 = never
