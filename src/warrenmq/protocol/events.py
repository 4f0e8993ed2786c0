"""The events :meth:`~.connection.ServerConnection.receive_data` returns.

Theory of operation: an event is a plain 4-tuple ``(channel, method, header, body)`` whose fields
:class:`Event` names: ``method`` is a decoded method object from :mod:`.spec`; ``header`` (the raw
content-header payload, kept as received so it can be forwarded verbatim) and ``body`` are ``None``
except for content methods (``basic.publish``).  A publish's method is a :class:`PublishEvent`,
which also carries the exchange and routing key as received (``ex_rk``), the tail of the
``basic.deliver`` that will carry the message; the parser shares one such object between the
publishes that carry the same exchange, routing key and flags.
"""
from __future__ import annotations

from typing import NamedTuple

from . import spec
from .codec import encode_shortstr


class Event(NamedTuple):
    """The shape of every event :meth:`ServerConnection.receive_data` returns.

    The events themselves are plain 4-tuples ``(channel, method, header, body)``: unpack them
    (``for ch, method, header, body in events``), or view one by name with ``Event(*e)``.  Two
    kinds: a method without content (``header`` and ``body`` are ``None``), and a content method,
    ``basic.publish``, with its raw content-header payload and its whole body (``bytes``), or with
    ``body`` ``None`` when the message was refused at its content header (larger than
    ``max_message_size``: the handler closes the channel with 406 PRECONDITION_FAILED).
    Why not an object of this class per event: even the cheapest typed object CPython offers, a
    tuple subclass called with a tuple (``Content((ch, m, h, b))``), made ``receive_data`` 12%
    slower on pipelined publishes and acks (bench/receive.py), and unpacking one costs
    another 20 ns in the broker's loop.
    """
    channel: int
    method: object
    header: bytes | None
    body: bytes | None


class PublishEvent(spec.BasicPublish):
    """A basic.publish event that also carries ``ex_rk``: the exchange and routing key as received
    (two short strings), which is exactly the tail of the basic.deliver that will carry the message."""
    __slots__ = ("ex_rk",)


def as_publish_event(m) -> PublishEvent:
    """A decoded basic.publish as the parser's event (the general path; the fast path builds its own)."""
    p = object.__new__(PublishEvent)
    p.ticket, p.exchange, p.routing_key = m.ticket, m.exchange, m.routing_key
    p.mandatory, p.immediate = m.mandatory, m.immediate
    p.ex_rk = encode_shortstr(m.exchange) + encode_shortstr(m.routing_key)
    return p
