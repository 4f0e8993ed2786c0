"""The handlers of the exchange, queue, basic, confirm and tx classes' methods.

Theory of operation: :class:`ChannelMethods` is mixed into the session; each handler is named after
its method (``on_basic_publish`` for ``basic.publish``), takes the channel and the decoded method
(plus header and body for content), calls the domain (the vhost's topology operations, the
channel's publish/consume/settle API) and sends the reply.  Validation is the domain's: its
``SoftError``/``HardError`` carry RabbitMQ's codes and texts, and the session turns them into
``channel.close``/``connection.close``.  The order of replies matters to clients and is RabbitMQ's
(consume-ok before the first delivery, queue.delete-ok before the cancels of the deleting
channel's own consumers, recover-ok before the redeliveries).

Access control (:mod:`warrenmq.broker.access`): before the domain sees a method, its handler checks
the permissions RabbitMQ's channel checks for it, in RabbitMQ's order, so a refusal comes before any
other error RabbitMQ would report later: configure on the queue or exchange for a declare (not a
passive one) or delete; read on the queue and write on the dead-letter exchange when a new queue names
one, read on the exchange and write on the alternate exchange when a new exchange names one; write on
the destination and read on the source (and the topic permission's read pattern on a topic source)
for bind and unbind; read on the queue for consume, get and purge; write on the exchange (and the
topic permission's write pattern on a topic exchange) for publish.  Publish is the hot path: a
channel remembers the exchanges it was allowed to write to (``may_write``, cleared by the broker when
the user's permissions change), so a publish costs one set lookup.
"""
from __future__ import annotations

import struct

from ..broker.access import CONFIGURE, READ, WRITE
from ..broker.direct_reply import REPLY_QUEUE
from ..broker.exchanges import exchange_class
from ..broker.queues import queue_type_of
from ..broker.vhost import generated_name
from ..protocol import spec
from ..protocol.errors import HardError, SoftError
from ..protocol.spec import NOT_FOUND, NOT_IMPLEMENTED, PRECONDITION_FAILED
from .channel import deliver_prefix

_I = struct.Struct(">I").pack
_GET_OK_HEAD = struct.Struct(">HHQB").pack


class ChannelMethods:
    """The exchange, queue, basic, confirm and tx handlers (mixed into :class:`~.session.Session`)."""

    # ---------------------------------------------------------------- access control
    def _may(self, kind: str, name: str, perm: str) -> None:
        """ACCESS_REFUSED unless this connection's user has ``perm`` on queue/exchange ``name``."""
        self.broker.check_resource(self.user, self.vhost.name, kind, name, perm)

    def _may_bind(self, dest_kind: str, dest: str, source: str, key: str) -> None:
        """RabbitMQ's checks of a bind or unbind: write on the destination, then (unless the default
        exchange is involved, which the vhost refuses next) read on the source and, on a topic source,
        the topic permission's read pattern against the binding key."""
        self._may(dest_kind, dest, WRITE)
        if source == "" or (dest_kind == "exchange" and dest == ""):
            return
        self._may("exchange", source, READ)
        ex = self.vhost.exchanges.get(source)
        if ex is not None and ex.type == "topic":
            self.broker.check_topic(self.user, self.vhost.name, source, key, READ)

    def _may_publish(self, channel, exchange: str, routing_key: str) -> None:
        """Write on ``exchange`` (and its topic permission on ``routing_key``); remembered per channel
        when no topic permission applies, so the next publish to it is not checked again."""
        vhost = self.vhost
        user = self.user
        self.broker.check_resource(user, vhost.name, "exchange", exchange, WRITE)
        ex = vhost.exchanges.get(exchange)
        if ex is None or ex.internal:
            return  # the channel refuses it next (not found, internal): nothing to remember
        if (vhost.name, exchange) in user.topic_permissions:
            if ex.type == "topic":
                self.broker.check_topic(user, vhost.name, exchange, routing_key, WRITE)
            return  # checked on every publish: the routing key decides
        channel.may_write.add(exchange)

    # ---------------------------------------------------------------- exchange class
    def on_exchange_declare(self, channel, m) -> None:
        if not m.passive and m.exchange:  # RabbitMQ checks the type first, then configure
            exchange_class(m.type)
            self._may("exchange", m.exchange, CONFIGURE)
            ae = m.arguments.get("alternate-exchange") if m.arguments else None
            if ae.__class__ is str and m.exchange not in self.vhost.exchanges and not m.exchange.startswith("amq."):
                self._may("exchange", m.exchange, READ)
                self._may("exchange", ae, WRITE)
        self.vhost.declare_exchange(m.exchange, m.type, m.passive, m.durable, m.auto_delete, m.internal,
                                    m.arguments)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ExchangeDeclareOk())

    def on_exchange_delete(self, channel, m) -> None:
        if m.exchange and not m.exchange.startswith("amq."):  # those two are refused first
            self._may("exchange", m.exchange, CONFIGURE)
        self.vhost.delete_exchange(m.exchange, m.if_unused)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ExchangeDeleteOk())

    def on_exchange_bind(self, channel, m) -> None:
        self._may_bind("exchange", m.destination, m.source, m.routing_key)
        self.vhost.bind_exchange(m.destination, m.source, m.routing_key, m.arguments)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ExchangeBindOk())

    def on_exchange_unbind(self, channel, m) -> None:
        self._may_bind("exchange", m.destination, m.source, m.routing_key)
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
        if not m.passive:  # a passive declare needs no permission
            self._may_declare_queue(m.queue, m.arguments)
        q, created = self.vhost.declare_queue(m.queue, self, m.passive, m.durable, m.exclusive, m.auto_delete,
                                              m.arguments)
        if created and q.exclusive:
            self.exclusive_queues.append(q)
        channel.last_queue = q.name
        if not m.nowait:
            self.proto.send_method(channel.number, spec.QueueDeclareOk(q.name, len(q.messages), len(q.consumers)))

    def _may_declare_queue(self, name: str, arguments) -> None:
        """Configure on the queue; for a new queue naming a dead-letter exchange, read on the queue and
        write on that exchange.  A server-named queue is checked under a name like the one it gets."""
        if name == "":
            if queue_type_of(arguments) != "classic":
                return  # refused by the vhost: no server-named queues of that type
            name = generated_name("amq.gen-")
        elif name.startswith("amq."):
            return  # reserved prefix: the vhost's error comes first
        self._may("queue", name, CONFIGURE)
        dlx = arguments.get("x-dead-letter-exchange") if arguments else None
        if dlx.__class__ is str and name not in self.vhost.queues:
            self._may("queue", name, READ)
            self._may("exchange", dlx, WRITE)

    def on_queue_bind(self, channel, m) -> None:
        name = self._queue_name(channel, m.queue)
        key = m.routing_key or (name if not m.queue else "")
        self._may_bind("queue", name, m.exchange, key)
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
        name = self._queue_name(channel, m.queue)
        self._may_bind("queue", name, m.exchange, m.routing_key)
        self.vhost.unbind_queue(name, self, m.exchange, m.routing_key, m.arguments)
        self.proto.send_method(channel.number, spec.QueueUnbindOk())

    def on_queue_purge(self, channel, m) -> None:
        name = self._queue_name(channel, m.queue)
        self._may("queue", name, READ)
        q = self.vhost.get_queue(name, self)
        n = q.purge()
        if not m.nowait:
            self.proto.send_method(channel.number, spec.QueuePurgeOk(n))

    def on_queue_delete(self, channel, m) -> None:
        name = self._queue_name(channel, m.queue)
        self._may("queue", name, CONFIGURE)
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
        name = self._queue_name(channel, m.queue)
        self._may("queue", name, READ)
        q = self.vhost.get_queue(name, self)
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
        if m.exchange not in channel.may_write:  # checked once per channel and exchange (see above)
            self._may_publish(channel, m.exchange, m.routing_key)
        channel.publish(m.exchange, m.routing_key, header, body, m.mandatory, m.ex_rk)
        self.published = True
        if self.blocked:
            self.pause_reading()

    def on_basic_get(self, channel, m) -> None:
        name = self._queue_name(channel, m.queue)
        self._may("queue", name, READ)
        q = self.vhost.get_queue(name, self)
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
