"""Direct reply-to: RabbitMQ's ``amq.rabbitmq.reply-to`` pseudo-queue for RPC replies.

Theory of operation (as RabbitMQ 3.10 does it, checked against 3.10.8):

* A client consumes from ``amq.rabbitmq.reply-to`` with ``no_ack=True``; no queue
  is created.  The channel gets a *reply consumer*: its tag and a fresh opaque
  suffix (two base64 parts joined by ``.``), registered broker-wide.  Consuming
  with acks is ``PRECONDITION_FAILED - reply consumer cannot acknowledge``; a
  second reply consumer on the channel is ``... reply consumer already set``.
* A publish on that channel with ``reply_to = "amq.rabbitmq.reply-to"`` has the
  property rewritten to ``amq.rabbitmq.reply-to.<suffix>`` (only those bytes of
  the content header change); without a reply consumer the channel is closed
  with ``PRECONDITION_FAILED - fast reply consumer does not exist``.
* A publish to the default exchange whose routing key is such an address is
  delivered at once (even inside an uncommitted transaction, as in RabbitMQ)
  straight to that channel as a ``basic.deliver`` with the channel's next
  delivery tag, which is not consumed (the consumer never acks).  Unknown or
  stale addresses (channel closed, consumer cancelled) drop the reply.  The
  publish itself still routes to no queue, so ``mandatory`` replies come back
  with ``NO_ROUTE`` even when delivered, exactly as RabbitMQ does.
* ``queue.declare`` of any name starting with ``amq.rabbitmq.reply-to`` (passive
  or not, flags and arguments ignored) answers ``declare-ok(name, 0, 1)`` for the
  bare pseudo-queue or a live address, and ``NOT_FOUND`` otherwise.
"""
from __future__ import annotations

import base64
import secrets

from ..protocol.codec import encode_shortstr
from ..protocol.errors import HardError, SoftError
from ..protocol.properties import FLAG_REPLY_TO, offset_of
from ..protocol.spec import NOT_ALLOWED, PRECONDITION_FAILED

REPLY_QUEUE = "amq.rabbitmq.reply-to"
REPLY_PREFIX = REPLY_QUEUE + "."
#: the reply-to property as encoded in a content header (a short string)
REPLY_QUEUE_SHORTSTR = encode_shortstr(REPLY_QUEUE)


class ReplyConsumer:
    __slots__ = ("tag", "suffix", "prefix")

    def __init__(self, tag: str, suffix: str):
        self.tag = tag
        self.suffix = suffix
        self.prefix = None  # the adapter's cached encoding of its deliveries' head


def _b64(n: int) -> str:
    return base64.b64encode(secrets.token_bytes(n)).decode()


class DirectReplyTo:
    """The broker's reply consumers, by address suffix."""

    def __init__(self):
        self.channels: dict = {}  # suffix -> Channel

    # ------------------------------------------------------------ consumers
    def consume(self, channel, consumer_tag: str, no_ack: bool) -> str:
        """basic.consume on the pseudo-queue: returns the consumer tag."""
        if consumer_tag in channel.consumers:
            raise HardError(NOT_ALLOWED, f"attempt to reuse consumer tag '{consumer_tag}'")
        if not no_ack:
            raise SoftError(PRECONDITION_FAILED, "reply consumer cannot acknowledge")
        if channel.reply_consumer is not None:
            raise SoftError(PRECONDITION_FAILED, "reply consumer already set")
        tag = consumer_tag or "amq.ctag-" + base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()
        rc = ReplyConsumer(tag, f"{_b64(12)}.{_b64(16)}")
        channel.reply_consumer = rc
        self.channels[rc.suffix] = channel
        return tag

    def cancel(self, channel) -> None:
        rc = channel.reply_consumer
        if rc is not None:
            channel.reply_consumer = None
            self.channels.pop(rc.suffix, None)

    def exists(self, name: str) -> bool:
        """For queue.declare: is ``name`` the pseudo-queue or a live reply address?"""
        if name == REPLY_QUEUE:
            return True
        return name.startswith(REPLY_PREFIX) and name[len(REPLY_PREFIX):] in self.channels

    # ------------------------------------------------------------ publishing
    def rewrite_reply_to(self, channel, header: bytes) -> bytes:
        """``header`` with a ``reply_to`` of the bare pseudo-queue replaced by the channel's address.

        Splices the property bytes, so every other property keeps its exact encoding.
        """
        try:
            pos = offset_of(header, FLAG_REPLY_TO)
            end = pos + 1 + header[pos]
        except IndexError:  # truncated properties: nothing to rewrite
            return header
        if header[pos:end] != REPLY_QUEUE_SHORTSTR:
            return header
        rc = channel.reply_consumer
        if rc is None:
            raise SoftError(PRECONDITION_FAILED, "fast reply consumer does not exist")
        return header[:pos] + encode_shortstr(REPLY_PREFIX + rc.suffix) + header[end:]

    def deliver(self, routing_key: str, msg) -> None:
        """A publish to the default exchange with a reply address as its routing key: delivered to the
        reply consumer with the channel's next delivery tag, which it does not take (never acked)."""
        channel = self.channels.get(routing_key[len(REPLY_PREFIX):])
        if channel is None or channel.closed:
            return
        channel.send_reply(msg, channel.next_tag)
