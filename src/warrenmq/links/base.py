"""The interface every outgoing link offers (links/__init__.py says what it is for).

A :class:`Link` is one connection with one channel.  Declares, binds and consume are coroutines
(a remote broker answers them over the network); ``publish``, ``ack`` and ``nack`` are plain calls
that never wait: a remote link queues the frames and writes them once per loop turn, a local one
acts at once.  Deliveries come to the ``on_delivery`` callback given to :meth:`Link.consume`, in
order.  :attr:`Link.closed` is a future resolved with a one-line reason when the link dies (closed by
the peer or an operator, a channel error, the socket lost); after that nothing it does has effect,
and whatever it consumed without settling goes back to its queue (the peer requeues it).
"""
from __future__ import annotations

import asyncio

from ..protocol.properties import content_header
from ..protocol.spec import BasicProperties


class LinkClosed(Exception):
    """An operation failed because the link (or its channel) is closed; ``str()`` is the reason."""


class Link:
    """See the module docstring; :class:`~.local.LocalLink` and :class:`~.remote.RemoteLink` implement it."""
    uri = None  # the LinkURI it was opened for
    closed: asyncio.Future

    # -- topology ---------------------------------------------------------
    async def declare_queue(self, name: str, *, passive: bool = False, durable: bool = True,
                            exclusive: bool = False, auto_delete: bool = False, arguments=None) -> tuple:
        """``(queue name, ready message count)``; a passive declare of a missing queue raises
        :class:`LinkClosed` (404) and the link is closed, as over AMQP."""
        raise NotImplementedError

    async def ensure_queue(self, name: str) -> int:
        """The queue's message count, declaring it durable first if it does not exist (what RabbitMQ's
        shovel does with its source and destination queues)."""
        raise NotImplementedError

    async def declare_exchange(self, name: str, type_: str, *, passive: bool = False, durable: bool = True,
                               auto_delete: bool = False, internal: bool = False, arguments=None) -> None:
        raise NotImplementedError

    async def bind(self, queue: str, exchange: str, routing_key: str, arguments=None) -> None:
        raise NotImplementedError

    async def unbind(self, queue: str, exchange: str, routing_key: str, arguments=None) -> None:
        raise NotImplementedError

    async def delete_queue(self, name: str) -> None:
        raise NotImplementedError

    async def bind_exchange(self, destination: str, source: str, routing_key: str, arguments=None) -> None:
        """Exchange-to-exchange binding (federation binds its upstream helper exchange so)."""
        raise NotImplementedError

    async def unbind_exchange(self, destination: str, source: str, routing_key: str, arguments=None) -> None:
        raise NotImplementedError

    async def delete_exchange(self, name: str) -> None:
        raise NotImplementedError

    async def cancel(self, consumer_tag: str) -> None:
        """Stop the consumer ``consumer_tag`` (deliveries already sent still come, and are settled as usual)."""
        raise NotImplementedError

    @property
    def cluster_name(self) -> str | None:
        """The ``cluster_name`` server property of the broker at the other end (None if it sent none)."""
        raise NotImplementedError

    # -- consuming --------------------------------------------------------
    async def consume(self, queue: str, on_delivery, *, prefetch: int = 0, no_ack: bool = False,
                      exclusive: bool = False, arguments=None, consumer_tag: str | None = None) -> str:
        """Start consuming ``queue``: ``on_delivery(tag, exchange, routing_key, redelivered, header, body)``
        for each message; returns the consumer tag (``consumer_tag`` if given)."""
        raise NotImplementedError

    def ack(self, tag: int, multiple: bool = False) -> None:
        raise NotImplementedError

    def nack(self, tag: int, multiple: bool = False, requeue: bool = True) -> None:
        raise NotImplementedError

    # -- publishing -------------------------------------------------------
    def publish(self, exchange: str, routing_key: str, header: bytes, body: bytes, on_confirm=None) -> None:
        """Publish; ``header`` is a content-header payload.  On a link opened with confirms,
        ``on_confirm(ok)`` is called once the broker acks (True) or nacks (False) it; when the link dies
        first it is never called (the caller treats everything unconfirmed as not delivered)."""
        raise NotImplementedError

    def set_flow_listener(self, listener) -> None:
        """``listener(on)``: this link asks its publisher to stop (True) / resume (False) publishing.  A
        local link passes on the broker's credit flow (the destination queue's consumers are behind); a
        remote link says so when its output not yet written passes :data:`~.remote.HIGH_WATER` bytes
        (the peer or the network is slower than the source) and again once it is written."""

    def pause(self, on: bool) -> None:
        """Stop (True) / resume (False) handing deliveries to ``on_delivery``.  A local link stops its
        consumers' dispatch (the messages stay ready in their queue); a remote link ignores it (its
        prefetch bounds what can be in flight)."""

    async def close(self) -> None:
        raise NotImplementedError


def with_headers(header: bytes, updates: dict, prepend: dict | None = None) -> bytes:
    """``header`` (a content-header payload) with ``updates`` set in its headers table and, for each
    ``name: table`` of ``prepend``, ``table`` put first in the array header ``name`` (RabbitMQ's
    prepend_table_header).  Only the properties are decoded and encoded again; the body size stays."""
    props = BasicProperties.decode(header, 12)
    headers = dict(props.headers or {})
    headers.update(updates)
    if prepend:
        for name, table in prepend.items():
            old = headers.get(name)
            headers[name] = [table] + (list(old) if isinstance(old, list) else [])
    props.headers = headers
    return content_header(props, int.from_bytes(header[4:12], "big"))
