"""An AMQP channel: the domain channel plus the frames it sends.

Theory of operation: :class:`AMQPChannel` is a :class:`~warrenmq.broker.channel.Channel` whose
``send_*`` hooks encode for the wire.  A delivery is built from pieces encoded once: the consumer's
``prefix`` (``basic.deliver``'s method ids and consumer tag, set when it consumes), the message's
``ex_rk`` (exchange and routing key as received) and its content header as published; the
protocol object packs them into frames without joining (the hot path).  Returns, direct replies
and confirms are encoded the same way, by hand for the content methods and through the generated
method classes otherwise.
"""
from __future__ import annotations

import struct

from ..broker import acktimeout
from ..broker.channel import Channel
from ..protocol import spec
from ..protocol.codec import encode_shortstr
from ..protocol.spec import PRECONDITION_FAILED
from . import connlog


DELIVER_HEAD = struct.pack(">HH", spec.BasicDeliver.CLASS_ID, spec.BasicDeliver.METHOD_ID)
_RETURN_HEAD = struct.pack(">HH", spec.BasicReturn.CLASS_ID, spec.BasicReturn.METHOD_ID)
_H = struct.Struct(">H").pack
_QB = struct.Struct(">QB").pack


def deliver_prefix(consumer_tag: str) -> bytes:
    """The head of every ``basic.deliver`` to one consumer: method ids and its tag."""
    return DELIVER_HEAD + encode_shortstr(consumer_tag)


class AMQPChannel(Channel):
    __slots__ = ("proto", "last_queue", "may_write")

    def __init__(self, session, number: int):
        Channel.__init__(self, session.broker, session.vhost, session, number, session.paused)
        self.proto = session.proto
        self.last_queue = None  # the queue name an empty queue name means (the last declared)
        # exchanges this channel's user was allowed to publish to (write permission, no topic permission
        # to check per routing key): basic.publish checks them once (RabbitMQ's channel caches its checks
        # too); the broker clears it when the user's permissions change
        self.may_write: set = set()

    def send_deliver(self, consumer, tag: int, entry) -> None:
        msg = entry.message
        self.proto.send_delivery(self.number, consumer.prefix, tag, entry.redelivered, msg.ex_rk, msg.header,
                                 msg.body)

    def send_return(self, msg, code: int, text: str) -> None:
        self.proto.send_content(self.number, _RETURN_HEAD + _H(code) + encode_shortstr(text) + msg.ex_rk,
                                msg.header, msg.body)

    def send_confirm(self, seq: int, multiple: bool, nack: bool) -> None:
        # a nack says requeue=true, as RabbitMQ's do
        self.proto.send_method(self.number, spec.BasicNack(seq, multiple, True) if nack
                               else spec.BasicAck(seq, multiple))

    def send_cancel(self, consumer) -> None:
        if self.proto.capabilities.get("consumer_cancel_notify"):
            self.proto.send_method(self.number, spec.BasicCancel(consumer.tag, True))

    def send_reply(self, msg, tag: int) -> None:
        rc = self.reply_consumer
        if rc.prefix is None:
            rc.prefix = deliver_prefix(rc.tag)
        self.proto.send_content(self.number, rc.prefix + _QB(tag, 0) + msg.ex_rk, msg.header, msg.body)

    def timed_out(self, timeout_ms: int) -> None:
        """Close the channel as RabbitMQ does when a delivery waited longer than the consumer timeout."""
        session = self.owner
        if session.channels.get(self.number) is not self or session.closed:
            return
        del session.channels[self.number]
        text = "PRECONDITION_FAILED - " + acktimeout.timeout_text(self.number, timeout_ms)
        connlog.channel_error(session, self.number, PRECONDITION_FAILED, text, "none")  # RabbitMQ's line
        self.close()
        self.proto.close_channel(self.number, PRECONDITION_FAILED, text, 0, 0)
