"""Sessions and channels: protocol events in, domain calls out.

Theory of operation: one :class:`Session` per client connection owns the
protocol object (:class:`~warrenmq.protocol.connection.ServerConnection`) and a
:class:`Channel` per open channel.  ``handle_events`` dispatches each event to a
handler named after its AMQP method (``on_basic_publish``), looked up once per
method class in a table.  Handlers raise :class:`SoftError` (the channel is
closed with that code and text) or :class:`HardError` (the connection is
closed); an unexpected exception closes only that connection with
INTERNAL_ERROR and is logged, so one bad connection never takes the broker down.

A channel owns its delivery-tag counter, the unacked map (tag -> queue entry),
its consumers, QoS settings, and confirm/tx mode.  Publisher confirms are
coalesced: every publish in a batch of received frames is acked with one
``basic.ack(multiple=True)`` at the end of the batch (``end_of_batch``).
"""
from __future__ import annotations

import logging
from collections import deque
import struct

from ..protocol import spec
from ..protocol.codec import encode_shortstr
from ..protocol.connection import CLOSING, parse_credentials
from ..protocol.errors import AMQPError, HardError, SoftError
from ..protocol.spec import (
    ACCESS_REFUSED, CHANNEL_ERROR, COMMAND_INVALID, INTERNAL_ERROR, NOT_ALLOWED, NOT_FOUND,
    NOT_IMPLEMENTED, NO_ROUTE, PRECONDITION_FAILED, REPLY_SUCCESS,
)
from . import acktimeout
from .direct_reply import REPLY_PREFIX, REPLY_QUEUE, REPLY_QUEUE_SHORTSTR
from .message import Message, parse_expiration
from .sender_selected import with_routing_headers
from .queue import Consumer, check_consumer_priority
from .vhost import generated_name

log = logging.getLogger("warrenmq.session")

_I = struct.Struct(">I").pack
_GET_OK_HEAD = struct.Struct(">HHQB").pack
_DELIVER_HEAD = struct.pack(">HH", spec.BasicDeliver.CLASS_ID, spec.BasicDeliver.METHOD_ID)
_RETURN_HEAD = struct.pack(">HH", spec.BasicReturn.CLASS_ID, spec.BasicReturn.METHOD_ID)
_H = struct.Struct(">H").pack
_CHANNEL_OPEN = spec.ChannelOpen.INDEX


class Channel:
    __slots__ = ("session", "number", "proto", "consumers", "unacked", "next_tag", "prefetch_count",
                 "reply_consumer", "global_prefetch", "unacked_count", "paused", "confirm", "publish_seq", "confirm_acked",
                 "tx", "last_queue", "closed", "waiting", "ack_timer", "ack_marks", "tx_settled")

    def __init__(self, session: "Session", number: int):
        self.session = session
        self.number = number
        self.proto = session.proto
        self.consumers: dict[str, Consumer] = {}
        self.unacked: dict = {}
        self.next_tag = 1
        self.prefetch_count = 0
        self.global_prefetch = 0
        self.unacked_count = 0
        self.paused = session.paused
        self.confirm = False
        self.publish_seq = 0  # last publish sequence number in confirm mode
        self.confirm_acked = 0  # last sequence number confirmed to the client
        self.tx = None  # list of pending operations in tx mode
        self.tx_settled = None  # delivery tags acked/rejected in the open transaction (RabbitMQ takes them at once)
        self.last_queue = None
        self.reply_consumer = None  # direct reply-to (direct_reply.ReplyConsumer)
        self.closed = False
        # confirms waiting for the store: (seq, epoch, is_nack), in seq order; None until first needed
        self.waiting = None
        # consumer timeout (see acktimeout): None = not checking yet, a timer while armed, False = off
        self.ack_timer = None if session.broker.config.consumer_timeout_ms > 0 else False
        self.ack_marks = None

    # ------------------------------------------------------------ deliveries
    def deliver(self, consumer: Consumer, entry) -> None:
        tag = self.next_tag
        self.next_tag = tag + 1
        entry.delivery_count += 1
        msg = entry.message
        if msg.paged:
            entry.queue.page_in(msg)
        if consumer.no_ack:
            q = entry.queue
            q.stats_acked += 1
            q.settle(entry)
        else:
            entry.consumer = consumer
            self.unacked[tag] = entry
            consumer.unacked += 1
            self.unacked_count += 1
            q = entry.queue
            q.unacked += 1
            if entry.message.store_id and q.store_id and not entry.redelivered:
                q.store.delivered(q.store_id, entry.message.store_id)  # redelivered after a crash
            if self.ack_timer is None:
                acktimeout.arm(self)
        self.proto.send_delivery(self.number, consumer.prefix, tag, entry.redelivered, msg.ex_rk, msg.header,
                                 msg.body)

    def consumer_cancelled_by_broker(self, consumer: Consumer) -> None:
        """The queue went away: drop the consumer and tell the client if it listens."""
        if self.consumers.pop(consumer.tag, None) is None:
            return
        if self.session.proto.capabilities.get("consumer_cancel_notify") and not self.closed:
            self.proto.send_method(self.number, spec.BasicCancel(consumer.tag, True))

    # ------------------------------------------------------------- settling
    def _take(self, tag: int, multiple: bool) -> list:
        unacked = self.unacked
        if multiple:
            if tag == 0:
                taken = list(unacked.values())
                unacked.clear()
                return taken
            keys = []
            for k in unacked:
                if k > tag:
                    break
                keys.append(k)
            if tag not in unacked:  # RabbitMQ: the tag itself must be outstanding, even with multiple
                raise SoftError(PRECONDITION_FAILED, f"unknown delivery tag {tag}")
            return [unacked.pop(k) for k in keys]
        entry = unacked.pop(tag, None)
        if entry is None:
            raise SoftError(PRECONDITION_FAILED, f"unknown delivery tag {tag}")
        return [entry]

    def _release(self, entries: list) -> set:
        """Account for settled entries; return the queues that may dispatch again."""
        queues = set()
        for e in entries:
            c = e.consumer
            if c is not None:
                c.unacked -= 1
                e.consumer = None
            self.unacked_count -= 1
            q = e.queue
            q.unacked -= 1
            queues.add(q)
        if self.global_prefetch:
            for c in self.consumers.values():
                queues.add(c.queue)
        return queues

    def ack(self, tag: int, multiple: bool) -> None:
        entries = self._take(tag, multiple)
        if len(entries) == 1 and not self.global_prefetch:
            e = entries[0]
            c = e.consumer
            if c is not None:
                c.unacked -= 1
                e.consumer = None
            self.unacked_count -= 1
            q = e.queue
            q.unacked -= 1
            q.stats_acked += 1
            q.settle(e)
            if q.messages and q.consumers:
                q.dispatch()
            return
        for q in self._release(entries):
            if q.messages and q.consumers:
                q.dispatch()
        for e in entries:
            q = e.queue
            q.stats_acked += 1
            q.settle(e)

    def reject(self, tag: int, multiple: bool, requeue: bool) -> None:
        entries = self._take(tag, multiple)
        queues = self._release(entries)
        if requeue:
            by_queue: dict = {}
            for e in entries:
                by_queue.setdefault(e.queue, []).append(e)
            for q, es in by_queue.items():
                q.requeue(es)
        else:
            self.session.broker.discard(entries)
        for q in queues:
            if q.messages and q.consumers:
                q.dispatch()

    def requeue_all(self) -> None:
        if not self.unacked:
            return
        entries = list(self.unacked.values())
        self.unacked.clear()
        queues = self._release(entries)
        by_queue: dict = {}
        for e in entries:
            by_queue.setdefault(e.queue, []).append(e)
        for q, es in by_queue.items():
            q.requeue(es)
        for q in queues:
            if q.messages and q.consumers:
                q.dispatch()

    # --------------------------------------------------------------- confirms
    def confirm_nack(self, seq: int) -> None:
        w = self.waiting
        if w:  # confirms go out in order: this nack waits behind messages still being written
            w.append((seq, w[-1][1], True))
            return
        self.flush_confirms(seq - 1)
        self.proto.send_method(self.number, spec.BasicNack(seq, False, True))  # requeue=true, as RabbitMQ
        self.confirm_acked = seq

    def wait_for_store(self, epoch: int) -> None:
        """The message just published (``publish_seq``) is confirmed only once ``epoch`` is on disk."""
        w = self.waiting
        if w is None:
            w = self.waiting = deque()
        w.append((self.publish_seq, epoch, False))
        self.session.broker.waiting_channels.add(self)

    def confirmable(self) -> int:
        """The highest publish sequence number that may be confirmed now."""
        w = self.waiting
        return w[0][0] - 1 if w else self.publish_seq

    def store_synced(self, epoch: int) -> bool:
        """Confirm what ``epoch`` made durable; return True while more is still waiting."""
        w = self.waiting
        if self.closed:
            w.clear()
            return False
        while w and w[0][1] <= epoch:
            seq, _, nack = w.popleft()
            if nack:
                self.flush_confirms(seq - 1)
                self.proto.send_method(self.number, spec.BasicNack(seq, False, True))
                self.confirm_acked = seq
        self.flush_confirms(self.confirmable())
        return bool(w)

    def store_failed(self) -> None:
        """The store cannot make what waits for it durable: nack every waiting confirm, in order."""
        w = self.waiting
        if not w:
            return
        if self.closed:
            w.clear()
            return
        while w:
            seq = w.popleft()[0]
            self.flush_confirms(seq - 1)
            self.proto.send_method(self.number, spec.BasicNack(seq, False, True))
            self.confirm_acked = seq
        self.flush_confirms(self.confirmable())

    def flush_confirms(self, upto: int) -> None:
        done = self.confirm_acked
        if upto > done:
            self.proto.send_method(self.number, spec.BasicAck(upto, upto - done > 1))
            self.confirm_acked = upto

    # ---------------------------------------------------------------- closing
    def cleanup(self) -> None:
        """Release everything the channel holds (on channel or connection close)."""
        if self.closed:
            return
        self.closed = True
        session = self.session
        if self.ack_timer:
            acktimeout.disarm(self)
        if self.reply_consumer is not None:
            session.broker.direct_reply.cancel(self)
        consumers = list(self.consumers.values())
        for c in consumers:
            session.remove_consumer(c)
        self.consumers.clear()
        self.tx = None
        self.requeue_all()
        for c in consumers:  # a single-active-consumer queue may have a new active consumer
            q = c.queue
            if q.single_active and q.messages and q.consumers and not q.deleted:
                q.dispatch()


class Session:
    """One client connection's broker-side state."""

    def __init__(self, broker, proto, peer=None):
        self.broker = broker
        self.proto = proto
        self.peer = peer
        self.vhost = None
        self.user = None
        self.channels: dict[int, Channel] = {}
        self.exclusive_queues: list = []
        self.paused = False
        self.blocked = False  # a resource alarm is on (connection.blocked was sent)
        self.published = False
        self.reader = None  # the transport: pause_reading()/resume_reading() while blocked
        self.reading_paused = False
        self.closed = False
        self._confirming: set = set()
        self.name = f"{peer[0]}:{peer[1]}" if peer else "embedded"

    # ---------------------------------------------------------------- events
    def handle_events(self, events: list) -> None:
        handlers = HANDLERS
        channels = self.channels
        for ch, method, header, body in events:
            try:
                if ch:
                    channel = channels.get(ch)
                    if channel is None:
                        # channel.open, or leftovers of a channel closed earlier in this batch
                        if method.INDEX == _CHANNEL_OPEN:
                            self.open_channel(ch)
                        continue
                    handler = handlers.get(method.INDEX)
                    if handler is None:
                        raise HardError(COMMAND_INVALID, "unimplemented method")
                    if header is None:
                        handler(self, channel, method)
                    else:
                        handler(self, channel, method, header, body)
                else:
                    handler = CONNECTION_HANDLERS.get(method.INDEX)
                    if handler is not None:
                        handler(self, method)
            except SoftError as e:
                self.channel_error(ch, e, method)
            except HardError as e:
                self.proto.close(e.code, e.reply_text, e.class_id or method.CLASS_ID,
                                 e.method_id or method.METHOD_ID)
                break
            except Exception:
                log.exception("internal error on connection %s handling %s", self.name, method.NAME)
                self.proto.close(INTERNAL_ERROR, "INTERNAL_ERROR", method.CLASS_ID, method.METHOD_ID)
                break
        self.end_of_batch()
        if self.proto.state >= CLOSING:
            self.connection_lost()

    def end_of_batch(self) -> None:
        if self._confirming:
            for channel in self._confirming:
                if not channel.closed:
                    channel.flush_confirms(channel.confirmable())
            self._confirming.clear()

    def ack_timed_out(self, channel: Channel, timeout_ms: int) -> None:
        """A delivery waited longer than the consumer timeout: close its channel as RabbitMQ does."""
        if self.channels.get(channel.number) is not channel or self.closed:
            return
        del self.channels[channel.number]
        log.warning("consumer timeout on connection %s channel %d: no acknowledgement within %d ms",
                    self.name, channel.number, timeout_ms)
        channel.cleanup()
        self.proto.close_channel(channel.number, PRECONDITION_FAILED, "PRECONDITION_FAILED - "
                                 + acktimeout.timeout_text(channel.number, timeout_ms), 0, 0)

    def channel_error(self, ch: int, e: AMQPError, method) -> None:
        channel = self.channels.pop(ch, None)
        if channel is not None:
            channel.cleanup()
        self.proto.close_channel(ch, e.code, e.reply_text, e.class_id or method.CLASS_ID,
                                 e.method_id or method.METHOD_ID)

    # ---------------------------------------------------------------- lifecycle
    def connection_lost(self) -> None:
        """The connection is gone (socket closed or close handshake done): release everything."""
        if self.closed:
            return
        self.closed = True
        for channel in list(self.channels.values()):
            channel.cleanup()
        self.channels.clear()
        vhost = self.vhost
        for q in self.exclusive_queues:
            if not q.deleted:
                vhost.delete_queue(q)
        self.exclusive_queues.clear()
        self.broker.session_closed(self)

    def set_paused(self, paused: bool) -> None:
        """Write back-pressure from the transport: stop or resume deliveries to this connection."""
        if paused == self.paused:
            return
        self.paused = paused
        for channel in self.channels.values():
            channel.paused = paused
        if not paused:
            for channel in list(self.channels.values()):
                for c in list(channel.consumers.values()):
                    q = c.queue
                    if q.messages:
                        q.dispatch()

    def set_blocked(self, blocked: bool) -> None:
        """A resource alarm was raised or cleared.

        As in RabbitMQ, a connection is only *blocked* (no longer read, ``connection.blocked`` sent)
        when it publishes while an alarm is on; clearing the alarm resumes it (``connection.unblocked``).
        """
        if blocked == self.blocked or self.closed:
            return
        self.blocked = blocked
        if not blocked and self.reading_paused:
            self.reading_paused = False
            if self.reader is not None:
                self.reader.resume_reading()
            if self.proto.capabilities.get("connection.blocked"):
                self.proto.send_method(0, spec.ConnectionUnblocked())

    def _pause_reading(self) -> None:
        """Called on a publish while an alarm is on: stop reading from this connection."""
        if self.reading_paused:
            return
        self.reading_paused = True
        if self.reader is not None:
            self.reader.pause_reading()
        if self.proto.capabilities.get("connection.blocked"):
            self.proto.send_method(0, spec.ConnectionBlocked(self.broker.blocked_reason()))

    def remove_consumer(self, c: Consumer) -> None:
        q = c.queue
        q.remove_consumer(c)
        if q.auto_delete and not q.consumers and q.had_consumer and not q.deleted:
            q.vhost.delete_queue(q)

    # ---------------------------------------------------------------- connection class
    def on_connection_start_ok(self, m) -> None:
        creds = parse_credentials(m.mechanism, m.response)
        user = self.broker.authenticate(creds, self.peer)
        if user is None:
            if self.proto.capabilities.get("authentication_failure_close"):
                self.proto.close(ACCESS_REFUSED, f"ACCESS_REFUSED - Login was refused using authentication "
                                 f"mechanism {m.mechanism}. For details see the broker logfile.")
            else:
                self.proto.abort()
            log.warning("login refused for %r from %s", creds[0] if creds else None, self.name)
            return
        self.user = user
        self.proto.send_tune()

    def on_connection_tune_ok(self, m) -> None:
        pass

    def on_connection_open(self, m) -> None:
        vhost = self.broker.vhosts.get(m.virtual_host)
        if vhost is None:
            raise HardError(NOT_ALLOWED, f"vhost {m.virtual_host} not found")
        if not self.broker.user_can_access(self.user, m.virtual_host):
            raise HardError(NOT_ALLOWED, f"access to vhost '{m.virtual_host}' refused for user '{self.user.name}'")
        self.vhost = vhost
        self.proto.send_open_ok()
        self.broker.session_opened(self)
        if self.broker.alarms:
            self.set_blocked(True)

    def on_connection_close(self, m) -> None:
        self.connection_lost()

    def on_connection_update_secret(self, m) -> None:
        self.proto.send_method(0, spec.ConnectionUpdateSecretOk())

    # ---------------------------------------------------------------- channel class
    def open_channel(self, number: int) -> None:
        self.channels[number] = Channel(self, number)
        self.proto.send_method(number, spec.ChannelOpenOk(b""))

    def on_channel_close(self, channel, m) -> None:
        self.channels.pop(channel.number, None)
        channel.cleanup()

    def on_channel_close_ok(self, channel, m) -> None:
        pass

    def on_channel_flow(self, channel, m) -> None:
        if not m.active:
            raise HardError(NOT_IMPLEMENTED, "active=false")
        self.proto.send_method(channel.number, spec.ChannelFlowOk(True))

    def on_channel_flow_ok(self, channel, m) -> None:
        pass

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
    def _queue_name(self, channel: Channel, name: str) -> str:
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
        if own and self.proto.capabilities.get("consumer_cancel_notify"):
            for c in own:
                self.proto.send_method(channel.number, spec.BasicCancel(c.tag, True))

    # ---------------------------------------------------------------- basic class
    def on_basic_qos(self, channel, m) -> None:
        if m.prefetch_size:
            raise HardError(NOT_IMPLEMENTED, f"prefetch_size!=0 ({m.prefetch_size})")
        if m.global_:
            channel.global_prefetch = m.prefetch_count
            for c in list(channel.consumers.values()):
                if c.queue.messages:
                    c.queue.dispatch()
        else:
            # RabbitMQ 3.x: a per-consumer qos also lifts any channel-wide limit
            channel.prefetch_count = m.prefetch_count
            lifted = channel.global_prefetch
            channel.global_prefetch = 0
            if lifted:
                for c in list(channel.consumers.values()):
                    if c.queue.messages:
                        c.queue.dispatch()
        self.proto.send_method(channel.number, spec.BasicQosOk())

    def on_basic_consume(self, channel, m) -> None:
        if m.queue == REPLY_QUEUE:
            tag = self.broker.direct_reply.consume(channel, m)
            if not m.nowait:
                self.proto.send_method(channel.number, spec.BasicConsumeOk(tag))
            return
        vhost = self.vhost
        q = vhost.get_queue(self._queue_name(channel, m.queue), self)
        tag = m.consumer_tag or generated_name("amq.ctag-")
        if tag in channel.consumers:
            raise HardError(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
        priority = check_consumer_priority(q.name, vhost.name, m.arguments) if m.arguments else 0
        if channel.global_prefetch and q.queue_type == "quorum":
            raise HardError(NOT_IMPLEMENTED, f"queue '{q.name}' in vhost '{vhost.name}' does not support global qos")
        if q.exclusive_consumer is not None or (m.exclusive and (q.consumers or q.single_active)):
            raise SoftError(ACCESS_REFUSED, f"queue '{q.name}' in vhost '{vhost.name}' in exclusive use")
        c = Consumer(tag, q, channel, m.no_ack, m.exclusive, channel.prefetch_count, m.arguments)
        c.prefix = _DELIVER_HEAD + encode_shortstr(tag)
        c.priority = priority
        channel.consumers[tag] = c
        if not m.nowait:
            self.proto.send_method(channel.number, spec.BasicConsumeOk(tag))
        q.add_consumer(c)

    def on_basic_cancel(self, channel, m) -> None:
        rc = channel.reply_consumer
        if rc is not None and rc.tag == m.consumer_tag:
            self.broker.direct_reply.cancel(channel)
            if not m.nowait:
                self.proto.send_method(channel.number, spec.BasicCancelOk(m.consumer_tag))
            return
        c = channel.consumers.pop(m.consumer_tag, None)
        if not m.nowait:
            self.proto.send_method(channel.number, spec.BasicCancelOk(m.consumer_tag))
        if c is not None:
            # a single active consumer's successor gets ready messages at the queue's next dispatch (a
            # publish, an ack, the old channel's close requeueing its unacked ones first), as in RabbitMQ
            self.remove_consumer(c)

    def on_basic_publish(self, channel, m, header, body) -> None:
        if m.immediate:  # RabbitMQ 3 dropped immediate: a connection error, checked first
            raise HardError(NOT_IMPLEMENTED, "immediate=true")
        vhost = self.vhost
        ex = vhost.exchanges.get(m.exchange)
        if ex is None:
            raise vhost.not_found_exchange(m.exchange)
        if ex.internal:
            raise SoftError(ACCESS_REFUSED, f"cannot publish to internal exchange '{m.exchange}' in vhost "
                            f"'{vhost.name}'")
        if header[12] & 0x02 and REPLY_QUEUE_SHORTSTR in header:  # reply_to may be amq.rabbitmq.reply-to
            header = self.broker.direct_reply.rewrite_reply_to(channel, header)
        msg = Message(m.exchange, m.routing_key, header, body, m.ex_rk)
        flags = header[12]
        if flags & 0x01 or header[13] & 0x10 or (flags & 0x20 and b"CC" in header):
            msg = self._check_properties(msg)  # expiration, user_id, maybe CC/BCC (one search finds both)
        self.published = True
        if self.blocked:
            self._pause_reading()
        if channel.confirm:
            channel.publish_seq += 1
            self._confirming.add(channel)
        if not m.exchange and m.routing_key.startswith(REPLY_PREFIX):  # a direct reply: delivered at once
            self.broker.direct_reply.deliver(m.routing_key, msg)
        if channel.tx is not None:
            channel.tx.append((0, ex, msg, m.mandatory))
            return
        self.route_and_enqueue(channel, ex, msg, m.mandatory)

    def _check_properties(self, msg):
        """RabbitMQ's checks of a published message's properties, in its order: user_id, expiration, then
        the CC/BCC headers (which make the message a RoutedMessage without its BCC header)."""
        header = msg.header
        if header[13] & 0x10:  # user_id must be the connection's user (unless it is an impersonator)
            uid = msg.properties.user_id
            user = self.user
            if uid != user.name and "impersonator" not in user.tags:
                raise SoftError(PRECONDITION_FAILED, f"user_id property set to '{uid}' but authenticated user "
                                f"was '{user.name}'")
        if header[12] & 0x01:  # expiration
            exp = msg.expiration
            if exp is not None:
                try:
                    parse_expiration(exp)
                except ValueError as e:
                    raise SoftError(PRECONDITION_FAILED, f"invalid expiration '{exp}': {e}") from None
        if header[12] & 0x20 and b"CC" in header:  # maybe a CC or BCC header (else a CC in some other bytes)
            try:
                msg = with_routing_headers(msg)
            except ValueError as e:
                raise SoftError(PRECONDITION_FAILED, f"invalid message: {e}") from None
        return msg

    def route_and_enqueue(self, channel, ex, msg, mandatory) -> None:
        vhost = self.vhost
        if vhost.recorder is not None:  # warrenmq.testing is recording publishes (unused: this one check)
            vhost.recorder(ex, msg)
        queues = vhost.route(ex, msg)
        if queues:
            if vhost.defs is not None:
                if msg.persistent:
                    qids = [q.store_id for q in queues if q.store_id]
                    if qids:
                        epoch = vhost.store.persist(msg, qids)
                        if channel.confirm and epoch > vhost.store.synced_epoch:
                            channel.wait_for_store(epoch)
                        # its body can wait on disk if every queue holding it keeps it in the store
                        msg.pageable = len(qids) == len(queues)
                    else:
                        msg.pageable = len(queues) == 1
                else:
                    msg.pageable = len(queues) == 1
            rejected = False
            for q in queues:
                if q.publish(msg) is False:  # a full queue with x-overflow reject-publish(-dlx)
                    rejected = True
            if rejected and channel.confirm:
                channel.confirm_nack(channel.publish_seq)
        elif mandatory:
            self.proto.send_content(channel.number, _RETURN_HEAD + _H(NO_ROUTE) + encode_shortstr("NO_ROUTE")
                                    + msg.ex_rk, msg.header, msg.body)

    def on_basic_get(self, channel, m) -> None:
        q = self.vhost.get_queue(self._queue_name(channel, m.queue), self)
        entry = q.get()
        if entry is None:
            self.proto.send_method(channel.number, spec.BasicGetEmpty(""))
            return
        tag = channel.next_tag
        channel.next_tag = tag + 1
        entry.delivery_count += 1
        if entry.message.paged:
            q.page_in(entry.message)
        if m.no_ack:
            q.stats_acked += 1
            q.settle(entry)
        else:
            channel.unacked[tag] = entry
            channel.unacked_count += 1
            q.unacked += 1
            if entry.message.store_id and q.store_id and not entry.redelivered:
                q.store.delivered(q.store_id, entry.message.store_id)
            if channel.ack_timer is None:
                acktimeout.arm(channel)
        msg = entry.message
        self.proto.send_content(channel.number, _GET_OK_HEAD(spec.CLASS_BASIC, spec.BasicGetOk.METHOD_ID, tag,
                                                             entry.redelivered) + msg.ex_rk + _I(len(q.messages)),
                                msg.header, msg.body)

    def on_basic_ack(self, channel, m) -> None:
        if channel.tx is not None:
            self._tx_check_tag(channel, m.delivery_tag, m.multiple)
            channel.tx.append((1, m.delivery_tag, m.multiple, False))
            return
        channel.ack(m.delivery_tag, m.multiple)

    def on_basic_reject(self, channel, m) -> None:
        if channel.tx is not None:
            self._tx_check_tag(channel, m.delivery_tag, False)
            channel.tx.append((2, m.delivery_tag, False, m.requeue))
            return
        channel.reject(m.delivery_tag, False, m.requeue)

    def on_basic_nack(self, channel, m) -> None:
        if channel.tx is not None:
            self._tx_check_tag(channel, m.delivery_tag, m.multiple)
            channel.tx.append((2, m.delivery_tag, m.multiple, m.requeue))
            return
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
        if channel.tx is not None:
            raise SoftError(PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
        channel.confirm = True
        if not m.nowait:
            self.proto.send_method(channel.number, spec.ConfirmSelectOk())

    def on_tx_select(self, channel, m) -> None:
        if channel.confirm:
            raise SoftError(PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
        if channel.tx is None:
            channel.tx = []
        self.proto.send_method(channel.number, spec.TxSelectOk())

    def _tx_check_tag(self, channel, tag, multiple) -> None:
        """As RabbitMQ, an ack/reject in a transaction takes its tags at once (settled at commit, given
        back at rollback): a tag already taken in this transaction is unknown."""
        settled = channel.tx_settled
        if settled is None:
            settled = channel.tx_settled = set()
        if multiple and tag == 0:
            settled.update(channel.unacked)
            return
        if tag not in channel.unacked or tag in settled:
            raise SoftError(PRECONDITION_FAILED, f"unknown delivery tag {tag}")
        if multiple:
            settled.update(k for k in channel.unacked if k <= tag)
        else:
            settled.add(tag)

    def on_tx_commit(self, channel, m) -> None:
        if channel.tx is None:
            raise SoftError(PRECONDITION_FAILED, "channel is not transactional")
        ops, channel.tx = channel.tx, []
        channel.tx_settled = None
        for op in ops:
            if op[0] == 0:
                _, ex, msg, mandatory = op
                self.route_and_enqueue(channel, ex, msg, mandatory)
            elif op[0] == 1:
                channel.ack(op[1], op[2])
            else:
                channel.reject(op[1], op[2], op[3])
        self.proto.send_method(channel.number, spec.TxCommitOk())

    def on_tx_rollback(self, channel, m) -> None:
        if channel.tx is None:
            raise SoftError(PRECONDITION_FAILED, "channel is not transactional")
        channel.tx = []
        channel.tx_settled = None
        self.proto.send_method(channel.number, spec.TxRollbackOk())


def _camel_to_handler(cls) -> str:
    return "on_" + cls.NAME.replace(".", "_").replace("-", "_")


def _build_tables():
    handlers, conn = {}, {}
    for index, cls in spec.METHODS.items():
        fn = getattr(Session, _camel_to_handler(cls), None)
        if fn is None:
            continue
        if cls.CLASS_ID == spec.CLASS_CONNECTION:
            conn[index] = fn
        else:
            handlers[index] = fn
    return handlers, conn


HANDLERS, CONNECTION_HANDLERS = _build_tables()

__all__ = ["Session", "Channel", "HANDLERS", "CONNECTION_HANDLERS", "REPLY_SUCCESS", "CHANNEL_ERROR"]
