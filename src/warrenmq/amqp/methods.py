"""The handlers of the exchange, queue, basic, confirm and tx classes' methods.

Theory of operation: :class:`ChannelMethods` is mixed into the session; each handler is named after
its method (``on_basic_publish`` for ``basic.publish``), takes the channel and the decoded method
(plus header and body for content), calls the domain (the vhost's topology operations, the
channel's publish/consume/settle API) and sends the reply.  Validation is the domain's: its
``SoftError``/``HardError`` carry RabbitMQ's codes and texts, and the session turns them into
``channel.close``/``connection.close``.  The order of replies matters to clients and is RabbitMQ's
(consume-ok before the first delivery, queue.delete-ok before the cancels of the deleting
channel's own consumers, recover-ok before the redeliveries).
"""
from __future__ import annotations

import struct

from ..broker.direct_reply import REPLY_QUEUE
from ..broker.vhost import generated_name
from ..protocol import spec
from ..protocol.errors import HardError, SoftError
from ..protocol.spec import NOT_FOUND, NOT_IMPLEMENTED, PRECONDITION_FAILED
from .channel import deliver_prefix

_I = struct.Struct(">I").pack
_GET_OK_HEAD = struct.Struct(">HHQB").pack


class ChannelMethods:
    """The exchange, queue, basic, confirm and tx handlers (mixed into :class:`~.session.Session`)."""

    # ---------------------------------------------------------------- exchange class
    def on_exchange_declare(self, channel, m) -> None:
        self.vhost.declare_exchange(m.exchange, m.type, m.passive, m.durable, m.auto_delete, m.internal,
                                    m.arguments)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ExchangeDeclareOk())

    def on_exchange_delete(self, channel, m) -> None:
        self.vhost.delete_exchange(m.exchange, m.if_unused)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ExchangeDeleteOk())

    def on_exchange_bind(self, channel, m) -> None:
        self.vhost.bind_exchange(m.destination, m.source, m.routing_key, m.arguments)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ExchangeBindOk())

    def on_exchange_unbind(self, channel, m) -> None:
        self.vhost.unbind_exchange(m.destination, m.source, m.routing_key, m.arguments)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ExchangeUnbindOk())

    # ---------------------------------------------------------------- queue class
    @staticmethod
    def _queue_name(channel, name: str) -> str:
        if name == "":
            if channel.last_queue is None:
                raise SoftError(NOT_FOUND, "no previously declared queue")
            return channel.last_queue
        return name

    def on_queue_declare(self, channel, m) -> None:
        if m.queue.startswith(REPLY_QUEUE):  # the direct reply-to pseudo-queue (see direct_reply)
            if not self.broker.direct_reply.exists(m.queue):
                raise self.vhost.not_found_queue(m.queue)
            channel.last_queue = m.queue
            if not m.nowait:
                self.proto.send_method(channel.number, spec.QueueDeclareOk(m.queue, 0, 1))
            return
        q, created = self.vhost.declare_queue(m.queue, self, m.passive, m.durable, m.exclusive, m.auto_delete,
                                              m.arguments)
        if created and q.exclusive:
            self.exclusive_queues.append(q)
        channel.last_queue = q.name
        if not m.nowait:
            self.proto.send_method(channel.number, spec.QueueDeclareOk(q.name, len(q.messages), len(q.consumers)))

    def on_queue_bind(self, channel, m) -> None:
        name = self._queue_name(channel, m.queue)
        if m.exchange and m.exchange not in self.vhost.exchanges:  # RabbitMQ reports the exchange first
            raise self.vhost.not_found_exchange(m.exchange)
        q = self.vhost.get_queue(name, self)
        key = m.routing_key
        if not m.queue and not key:  # RabbitMQ: both empty binds with the queue's name as the key
            key = q.name
        self.vhost.bind_queue(q, m.exchange, key, m.arguments)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.QueueBindOk())

    def on_queue_unbind(self, channel, m) -> None:
        self.vhost.unbind_queue(self._queue_name(channel, m.queue), self, m.exchange, m.routing_key, m.arguments)
        self.proto.send_method(channel.number, spec.QueueUnbindOk())

    def on_queue_purge(self, channel, m) -> None:
        q = self.vhost.get_queue(self._queue_name(channel, m.queue), self)
        n = q.purge()
        if not m.nowait:
            self.proto.send_method(channel.number, spec.QueuePurgeOk(n))

    def on_queue_delete(self, channel, m) -> None:
        name = self._queue_name(channel, m.queue)
        vhost = self.vhost
        q = vhost.queues.get(name)
        if q is None:
            # RabbitMQ: deleting a missing queue succeeds with a count of zero
            if not m.nowait:
                self.proto.send_method(channel.number, spec.QueueDeleteOk(0))
            return
        vhost.check_exclusive(q, self)
        if m.if_unused and q.consumers:
            raise SoftError(PRECONDITION_FAILED, f"queue '{name}' in vhost '{vhost.name}' in use")
        if m.if_empty and q.messages:
            raise SoftError(PRECONDITION_FAILED, f"queue '{name}' in vhost '{vhost.name}' not empty")
        # RabbitMQ cancels the deleting channel's own consumers after its queue.delete-ok
        # (kombu raises ConsumerCancelled if the basic.cancel comes first)
        own = [c for c in q.consumers if c.channel is channel]
        for c in own:
            channel.consumers.pop(c.tag, None)
        n = vhost.delete_queue(q)
        if q in self.exclusive_queues:
            self.exclusive_queues.remove(q)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.QueueDeleteOk(n))
        for c in own:
            channel.send_cancel(c)

    # ---------------------------------------------------------------- basic class
    def on_basic_qos(self, channel, m) -> None:
        if m.prefetch_size:
            raise HardError(NOT_IMPLEMENTED, f"prefetch_size!=0 ({m.prefetch_size})")
        channel.set_qos(m.prefetch_count, m.global_)
        self.proto.send_method(channel.number, spec.BasicQosOk())

    def on_basic_consume(self, channel, m) -> None:
        if m.queue == REPLY_QUEUE:
            tag = self.broker.direct_reply.consume(channel, m.consumer_tag, m.no_ack)
            if not m.nowait:
                self.proto.send_method(channel.number, spec.BasicConsumeOk(tag))
            return
        q = self.vhost.get_queue(self._queue_name(channel, m.queue), self)
        tag = m.consumer_tag or generated_name("amq.ctag-")
        c = channel.consume(q, tag, m.no_ack, m.exclusive, m.arguments)
        c.prefix = deliver_prefix(tag)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.BasicConsumeOk(tag))
        channel.start(c)

    def on_basic_cancel(self, channel, m) -> None:
        rc = channel.reply_consumer
        if rc is not None and rc.tag == m.consumer_tag:
            self.broker.direct_reply.cancel(channel)
            if not m.nowait:
                self.proto.send_method(channel.number, spec.BasicCancelOk(m.consumer_tag))
            return
        c = channel.consumers.get(m.consumer_tag)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.BasicCancelOk(m.consumer_tag))
        if c is not None:
            channel.cancel(m.consumer_tag)

    def on_basic_publish(self, channel, m, header, body) -> None:
        if body is None:  # refused by the parser at its content header: larger than max_message_size
            raise SoftError(PRECONDITION_FAILED, f"message size {int.from_bytes(header[4:12], 'big')} is larger "
                            f"than configured max size {self.proto.max_message_size}")
        if m.immediate:  # RabbitMQ 3 dropped immediate: a connection error, checked first
            raise HardError(NOT_IMPLEMENTED, "immediate=true")
        channel.publish(m.exchange, m.routing_key, header, body, m.mandatory, m.ex_rk)
        self.published = True
        if self.blocked:
            self.pause_reading()

    def on_basic_get(self, channel, m) -> None:
        q = self.vhost.get_queue(self._queue_name(channel, m.queue), self)
        got = channel.get(q, m.no_ack)
        if got is None:
            self.proto.send_method(channel.number, spec.BasicGetEmpty(""))
            return
        tag, entry = got
        msg = entry.message
        self.proto.send_content(channel.number, _GET_OK_HEAD(spec.CLASS_BASIC, spec.BasicGetOk.METHOD_ID, tag,
                                                             entry.redelivered) + msg.ex_rk + _I(len(q.messages)),
                                msg.header, msg.body)

    def on_basic_ack(self, channel, m) -> None:
        channel.ack(m.delivery_tag, m.multiple)

    def on_basic_reject(self, channel, m) -> None:
        channel.reject(m.delivery_tag, False, m.requeue)

    def on_basic_nack(self, channel, m) -> None:
        channel.reject(m.delivery_tag, m.multiple, m.requeue)

    def on_basic_recover(self, channel, m) -> None:
        if not m.requeue:
            raise HardError(NOT_IMPLEMENTED, "requeue=false")
        # as RabbitMQ: recover-ok first, then the redeliveries
        self.proto.send_method(channel.number, spec.BasicRecoverOk())
        channel.requeue_all()

    def on_basic_recover_async(self, channel, m) -> None:
        if not m.requeue:
            raise HardError(NOT_IMPLEMENTED, "requeue=false")
        channel.requeue_all()

    # ---------------------------------------------------------------- confirm and tx
    def on_confirm_select(self, channel, m) -> None:
        channel.select_confirm()
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ConfirmSelectOk())

    def on_tx_select(self, channel, m) -> None:
        channel.select_tx()
        self.proto.send_method(channel.number, spec.TxSelectOk())

    def on_tx_commit(self, channel, m) -> None:
        channel.commit()
        self.proto.send_method(channel.number, spec.TxCommitOk())

    def on_tx_rollback(self, channel, m) -> None:
        channel.rollback()
        self.proto.send_method(channel.number, spec.TxRollbackOk())
