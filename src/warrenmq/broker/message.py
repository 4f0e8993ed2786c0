"""Messages as the broker holds them.

Theory of operation: a :class:`Message` is created once per publish and shared
by every queue the message is routed to.  It keeps the content header payload
exactly as the publisher sent it (``header``: class, weight, body size, flags and
property bytes) and forwards it verbatim on delivery; properties are decoded
only when a feature needs them (:attr:`Message.properties`).  ``ex_rk`` is the
exchange and routing key already encoded as two short strings, the tail of a
``basic.deliver``/``basic.get-ok`` method, so deliveries never re-encode them.

A :class:`QueueEntry` is one message's place in one queue: its sequence number
(requeued messages go back to their original place), redelivery flag and
delivery count.  Unacked deliveries keep their entry until settled.
"""
from __future__ import annotations

from ..protocol.codec import encode_shortstr
from ..protocol.spec import BasicProperties

# bit of the property flags that says delivery-mode is present, and its offset
_FLAG_DELIVERY_MODE = 0x1000


class Message:
    __slots__ = ("exchange", "routing_key", "header", "body", "ex_rk", "_props")

    def __init__(self, exchange: str, routing_key: str, header: bytes, body: bytes, ex_rk: bytes | None = None):
        self.exchange = exchange
        self.routing_key = routing_key
        self.header = header
        self.body = body
        self.ex_rk = ex_rk if ex_rk is not None else encode_shortstr(exchange) + encode_shortstr(routing_key)
        self._props = None

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
        header = self.header
        flags = (header[12] << 8) | header[13]
        if not flags & _FLAG_DELIVERY_MODE:
            return False
        return self.properties.delivery_mode == 2

    def __repr__(self) -> str:
        return f"Message({self.exchange!r}, {self.routing_key!r}, {len(self.body)} bytes)"


class QueueEntry:
    __slots__ = ("message", "seq", "redelivered", "queue", "consumer", "delivery_count")

    def __init__(self, message: Message, seq: int, queue):
        self.message = message
        self.seq = seq
        self.queue = queue
        self.redelivered = False
        self.consumer = None
        self.delivery_count = 0
