"""Outgoing links: AMQP 0-9-1 connections this broker opens as a *client*, for shovels and federation.

Theory of operation: a shovel or a federation link needs the same few things of each broker it
talks to, whether that broker is this one or another: declare (or find) queues and exchanges, bind,
consume with a prefetch and settle what it consumed, and publish with or without confirms.  A
:class:`~.base.Link` is those operations over one connection with one channel; :func:`open_link`
returns the right kind for a URI (links/uri.py):

* a remote URI (``amqp://host...``, ``amqps://...``): :class:`~.remote.RemoteLink`, an aiormq
  connection on the broker's own event loop (aiormq is the connection layer under aio-pika: well
  kept, asyncio-native, TLS and heartbeats done).  What aiormq does per message that a link must not
  do (add a ``message_id`` to every publish, await every confirm in its own task) is bypassed for
  publishing only: the frames are encoded by our protocol layer (content header bytes as received,
  never re-encoded) and handed to aiormq's writer, and confirms are numbered and settled by the link
  (remote.py says exactly which of aiormq's internals it relies on).
* a local URI (``amqp://``, ``amqp:///vhost``): :class:`~.local.LocalLink`, no socket at all: a
  session object of the broker (listed in ``/api/connections`` as a direct connection, as RabbitMQ
  lists its shovels' direct connections) whose channel is a domain :class:`~..broker.channel.Channel`,
  so publishing goes through the one publish path and consuming through consume/settle.

Both carry the client-provided connection name the caller gives (``Shovel <name>``,
``Federation link (upstream: <name>, policy: ...)``), so an operator finds and closes them; closing
one (or the peer dying) resolves :attr:`Link.closed` with the reason, and the owner restarts.

How federation uses it: a federation link opens one Link to the upstream (``open_link(broker,
upstream_uri, name)``), declares its upstream exchange and queue there (``declare_exchange``,
``declare_queue``, ``bind``), consumes that queue (``consume`` with the upstream's prefetch and
ack mode) and republishes each delivery into the *local* exchange or queue through a LocalLink (or
directly through the domain: the local side is this broker), acking the upstream after the local
confirm (``publish(..., on_confirm=...)``) exactly as a shovel does on-confirm.  Deliveries arrive as
``on_delivery(tag, exchange, routing_key, redelivered, header, body)`` with ``header`` the AMQP
content-header payload (class, weight, body size, property flags and properties: the format the
domain's Message keeps), so ``x-received-from`` and the like are added with
:func:`~.base.with_headers` and nothing else is re-encoded.
"""
from __future__ import annotations

from .base import Link, LinkClosed, with_headers  # noqa: F401
from .uri import LinkURI, parse, redact  # noqa: F401


async def open_link(broker, uri: LinkURI | str, connection_name: str, *, confirms: bool = False,
                    heartbeat: int | None = None) -> Link:
    """A connected :class:`Link` for ``uri``; raises :class:`LinkClosed` (or OSError) when it cannot
    connect.  ``confirms``: the channel is put in confirm mode (``publish`` then takes ``on_confirm``)."""
    if isinstance(uri, str):
        uri = parse(uri)
    if uri.local:
        from .local import LocalLink
        return LocalLink.open(broker, uri, connection_name, confirms)
    from .remote import RemoteLink
    return await RemoteLink.open(uri, connection_name, confirms, heartbeat)
