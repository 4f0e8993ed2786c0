"""A channel as the domain sees it: publishing, consuming and settling, with no protocol in it.

Theory of operation: every protocol adapter (AMQP today) gives each of its channels (an MQTT or
STOMP session is one channel) a :class:`Channel` subclass that implements the ``send_*`` hooks,
which encode what the domain hands it for the wire.  The domain calls the hooks; the adapter calls
the rest:

* publishing: :meth:`Channel.publish` checks the exchange and the properties as RabbitMQ does,
  numbers the publish for confirms, delivers a direct reply at once, and hands the message to the
  one publish path, :meth:`~.vhost.VHost.publish` (in a transaction: at commit).  What the vhost
  reports back becomes a ``basic.return`` (unroutable and mandatory), a nack (refused by a full
  queue) or a confirm that waits for the store (persisted).  The channel's ``owner`` goes along as
  the publisher: a queue whose consumers are behind throttles it (``owner.set_flow``, credit flow:
  queues/credit.py), so every adapter's connection implements ``set_flow(on)``.
* consuming: :meth:`consume` registers a :class:`~.queue.Consumer` with its queue; the queue calls
  :meth:`deliver` whenever it hands the consumer a message.  ``deliver`` takes the next delivery
  tag, keeps the entry in the unacked map (tag -> entry, in tag order) unless the consumer does
  not ack, records the delivery in the store (so a crash redelivers it flagged), and calls
  ``send_deliver``.
* credit: a consumer may take a message while its unacked count is under its prefetch and the
  channel's under the channel-wide (global) prefetch; ``paused`` is set while the connection's
  socket is full.  Every call that gives credit back (ack, reject, qos, resume) dispatches the
  queues concerned again: a queue never polls.
* settling: :meth:`ack`, :meth:`reject` and :meth:`requeue_all` take entries out of the unacked
  map and hand them back to their queues (settled, dead-lettered or requeued in place).
* confirms: a :class:`~.confirms.ConfirmTracker` once the channel is in confirm mode.  Waiting for
  the store is the tracker's: the publish path returns the store epoch a persisted message needs,
  and the tracker holds its confirm until the broker's registry hears that the epoch is durable.
* transactions: a :class:`Transaction` keeps the publishes and settlements of the open transaction
  and applies them in order at commit; as in RabbitMQ an ack in a transaction takes its tags at
  once (a second ack of the same tag is an error), and a rollback gives them back.
"""
from __future__ import annotations

from ..protocol.errors import HardError, SoftError
from ..protocol.properties import FLAGS_OFFSET, HI_EXPIRATION, HI_HEADERS, HI_REPLY_TO, LO_USER_ID
from ..protocol.spec import ACCESS_REFUSED, NOT_ALLOWED, NOT_IMPLEMENTED, NO_ROUTE, PRECONDITION_FAILED
from . import acktimeout
from .stats import CHANNEL_SLOTS, zero
from .direct_reply import REPLY_PREFIX, REPLY_QUEUE_SHORTSTR
from .message import Message, parse_expiration
from .queues import Consumer, check_consumer_priority
from .sender_selected import with_routing_headers
from .vhost import REJECTED, UNROUTABLE


class Transaction:
    """The open transaction of a channel in tx mode: what commit will do, in order."""
    __slots__ = ("ops", "settled")

    def __init__(self):
        self.ops: list = []  # ("publish", exchange, msg, mandatory) / ("ack", tag, multiple) / ("reject", ...)
        self.settled = None  # delivery tags taken by acks/rejects of this transaction (None: none yet)

    def take_tags(self, unacked: dict, tag: int, multiple: bool) -> None:
        """Take the tags an ack/reject names now (RabbitMQ does): unknown or already taken is an error."""
        settled = self.settled
        if settled is None:
            settled = self.settled = set()
        if multiple and tag == 0:
            settled.update(unacked)
            return
        if tag not in unacked or tag in settled:
            raise SoftError(PRECONDITION_FAILED, f"unknown delivery tag {tag}")
        if multiple:
            settled.update(k for k in unacked if k <= tag)
        else:
            settled.add(tag)

    def take(self) -> list:
        """Commit: the operations to apply; the transaction starts afresh."""
        ops, self.ops = self.ops, []
        self.settled = None
        return ops

    def rollback(self) -> None:
        self.ops = []
        self.settled = None


class Channel:
    """The domain state of one channel; see the module docstring.  Subclasses implement ``send_*``."""
    __slots__ = ("broker", "vhost", "owner", "number", "consumers", "unacked", "next_tag", "prefetch_count",
                 "global_prefetch", "unacked_count", "paused", "confirms", "tx", "closed", "reply_consumer",
                 "ack_timer", "ack_marks") + CHANNEL_SLOTS

    def __init__(self, broker, vhost, owner, number: int, paused: bool = False):
        self.broker = broker
        self.vhost = vhost
        self.owner = owner  # the connection it belongs to: exclusive queues are owned by it
        self.number = number
        self.consumers: dict[str, Consumer] = {}
        self.unacked: dict = {}  # delivery tag -> queue entry, in tag order
        self.next_tag = 1
        self.prefetch_count = 0  # for consumers created from now on
        self.global_prefetch = 0  # channel-wide limit on unacked deliveries (0: none)
        self.unacked_count = 0
        self.paused = paused  # the connection cannot take more output now
        self.confirms = None  # a ConfirmTracker in confirm mode
        self.tx = None  # a Transaction in tx mode
        self.closed = False
        self.reply_consumer = None  # direct reply-to (direct_reply.ReplyConsumer)
        # consumer timeout (see acktimeout): None = not checking yet, a timer while armed, False = off
        self.ack_timer = None if broker.config.consumer_timeout_ms > 0 else False
        self.ack_marks = None
        zero(self, CHANNEL_SLOTS)  # message statistics (stats.py)

    # ----------------------------------------------------------- adapter hooks
    def send_deliver(self, consumer: Consumer, tag: int, entry) -> None:
        """Send a delivery of ``entry.message`` to ``consumer`` with delivery tag ``tag``."""
        raise NotImplementedError

    def send_return(self, msg, code: int, text: str) -> None:
        """Return an unroutable mandatory message to its publisher."""
        raise NotImplementedError

    def send_confirm(self, seq: int, multiple: bool, nack: bool) -> None:
        raise NotImplementedError

    def send_cancel(self, consumer: Consumer) -> None:
        """The broker cancelled ``consumer`` (its queue was deleted)."""

    def send_reply(self, msg, tag: int) -> None:
        """A direct reply-to message for this channel's reply consumer."""
        raise NotImplementedError

    def timed_out(self, timeout_ms: int) -> None:
        """A delivery waited longer than the consumer timeout: the adapter closes the channel."""
        raise NotImplementedError

    # --------------------------------------------------------------- publishing
    def publish(self, exchange_name: str, routing_key: str, header: bytes, body: bytes, mandatory: bool,
                ex_rk: bytes | None = None) -> None:
        """A message published on this channel (``header``: the content-header payload as received)."""
        vhost = self.vhost
        ex = vhost.exchanges.get(exchange_name)
        if ex is None:
            raise vhost.not_found_exchange(exchange_name)
        if ex.internal:
            raise SoftError(ACCESS_REFUSED, f"cannot publish to internal exchange '{exchange_name}' in vhost "
                            f"'{vhost.name}'")
        hi = header[FLAGS_OFFSET]
        if hi & HI_REPLY_TO and REPLY_QUEUE_SHORTSTR in header:  # reply_to may be amq.rabbitmq.reply-to
            header = self.broker.direct_reply.rewrite_reply_to(self, header)
        msg = Message(exchange_name, routing_key, header, body, ex_rk)
        if hi & HI_EXPIRATION or header[FLAGS_OFFSET + 1] & LO_USER_ID or (hi & HI_HEADERS and b"CC" in header):
            msg = self._check_properties(msg)  # expiration, user_id, maybe CC/BCC (one search finds both)
        self.n_publish += 1
        confirms = self.confirms
        if confirms is not None:
            confirms.published()
        if not exchange_name and routing_key.startswith(REPLY_PREFIX):  # a direct reply: delivered at once
            self.broker.direct_reply.deliver(routing_key, msg)
        if self.tx is not None:
            self.tx.ops.append(("publish", ex, msg, mandatory))
            return
        outcome = vhost.publish(ex, msg, None, True, self.owner)
        if outcome:  # (ROUTED is 0: the common case pays one test)
            self._outcome(outcome, msg, mandatory)

    def _outcome(self, outcome: int, msg, mandatory: bool) -> None:
        """Act on what :meth:`~.vhost.VHost.publish` reported besides ROUTED."""
        if outcome > 0:  # persisted: its confirm waits for the store batch ``outcome``
            if self.confirms is not None:
                self.confirms.wait_for(outcome)
        elif outcome == UNROUTABLE:
            if mandatory:
                self.n_return_unroutable += 1
                self.send_return(msg, NO_ROUTE, "NO_ROUTE")
            else:
                self.n_drop_unroutable += 1
        elif outcome == REJECTED and self.confirms is not None:
            self.confirms.nack()

    def _check_properties(self, msg):
        """RabbitMQ's checks of a published message's properties, in its order: user_id, expiration, then
        the CC/BCC headers (which make the message a RoutedMessage without its BCC header)."""
        header = msg.header
        if header[FLAGS_OFFSET + 1] & LO_USER_ID:  # must be the connection's user, unless an impersonator
            uid = msg.properties.user_id
            user = self.owner.user
            if uid != user.name and "impersonator" not in user.tags:
                raise SoftError(PRECONDITION_FAILED, f"user_id property set to '{uid}' but authenticated user "
                                f"was '{user.name}'")
        if header[FLAGS_OFFSET] & HI_EXPIRATION:
            exp = msg.expiration
            if exp is not None:
                try:
                    parse_expiration(exp)
                except ValueError as e:
                    raise SoftError(PRECONDITION_FAILED, f"invalid expiration '{exp}': {e}") from None
        if header[FLAGS_OFFSET] & HI_HEADERS and b"CC" in header:  # maybe a CC or BCC header
            try:
                msg = with_routing_headers(msg)
            except ValueError as e:
                raise SoftError(PRECONDITION_FAILED, f"invalid message: {e}") from None
        return msg

    def select_confirm(self) -> None:
        if self.tx is not None:
            raise SoftError(PRECONDITION_FAILED, "cannot switch from tx to confirm mode")
        if self.confirms is None:
            self.confirms = self.broker.confirms.tracker(self.send_confirm)

    # ------------------------------------------------------------ transactions
    def select_tx(self) -> None:
        if self.confirms is not None:
            raise SoftError(PRECONDITION_FAILED, "cannot switch from confirm to tx mode")
        if self.tx is None:
            self.tx = Transaction()

    def _need_tx(self) -> Transaction:
        if self.tx is None:
            raise SoftError(PRECONDITION_FAILED, "channel is not transactional")
        return self.tx

    def commit(self) -> None:
        for op in self._need_tx().take():
            kind = op[0]
            if kind == "publish":
                outcome = self.vhost.publish(op[1], op[2], None, True, self.owner)
                if outcome:
                    self._outcome(outcome, op[2], op[3])
            elif kind == "ack":
                self._ack(op[1], op[2])
            else:
                self._reject(op[1], op[2], op[3])

    def rollback(self) -> None:
        self._need_tx().rollback()

    # ---------------------------------------------------------------- consuming
    def set_qos(self, prefetch_count: int, global_: bool) -> None:
        if global_:
            self.global_prefetch = prefetch_count
            self.dispatch_consumers()
        else:
            # RabbitMQ 3.x: a per-consumer qos also lifts any channel-wide limit
            self.prefetch_count = prefetch_count
            lifted = self.global_prefetch
            self.global_prefetch = 0
            if lifted:
                self.dispatch_consumers()

    def dispatch_consumers(self) -> None:
        """Credit came back (or the connection can take output again): let the consumers' queues deliver."""
        for c in list(self.consumers.values()):
            if c.queue.messages:
                c.queue.dispatch()

    def consume(self, q, tag: str, no_ack: bool, exclusive: bool, arguments) -> Consumer:
        """Register a consumer on ``q`` (the caller announces it, then calls :meth:`start`)."""
        if tag in self.consumers:
            raise HardError(NOT_ALLOWED, f"attempt to reuse consumer tag '{tag}'")
        vhost_name = self.vhost.name
        priority = check_consumer_priority(q.name, vhost_name, arguments) if arguments else 0
        if self.global_prefetch and q.queue_type == "quorum":
            raise HardError(NOT_IMPLEMENTED, f"queue '{q.name}' in vhost '{vhost_name}' does not support global qos")
        if q.exclusive_consumer is not None or (exclusive and (q.consumers or q.single_active)):
            raise SoftError(ACCESS_REFUSED, f"queue '{q.name}' in vhost '{vhost_name}' in exclusive use")
        c = Consumer(tag, q, self, no_ack, exclusive, self.prefetch_count, arguments)
        c.priority = priority
        self.consumers[tag] = c
        return c

    @staticmethod
    def start(consumer: Consumer) -> None:
        """Let a registered consumer receive (after the adapter announced it: consume-ok first)."""
        consumer.queue.add_consumer(consumer)

    def cancel(self, tag: str):
        """Cancel a consumer; returns it (None if unknown).  Its successor as single active consumer gets
        ready messages at the queue's next dispatch, as in RabbitMQ."""
        c = self.consumers.pop(tag, None)
        if c is not None:
            self._remove_consumer(c)
        return c

    def _remove_consumer(self, c: Consumer) -> None:
        q = c.queue
        q.remove_consumer(c)
        if q.auto_delete and not q.consumers and q.had_consumer and not q.deleted:
            q.vhost.delete_queue(q)

    def consumer_cancelled_by_broker(self, consumer: Consumer) -> None:
        """The queue went away: drop the consumer and tell the client."""
        if self.consumers.pop(consumer.tag, None) is not None and not self.closed:
            self.send_cancel(consumer)

    def deliver(self, consumer: Consumer, entry) -> None:
        """The queue hands ``consumer`` a message (the hot path)."""
        tag = self.next_tag
        self.next_tag = tag + 1
        entry.delivery_count += 1
        q = entry.queue
        if entry.message.paged:
            q.page_in(entry.message)
        if entry.redelivered:
            self.n_redeliver += 1
            q.n_redeliver += 1
        if consumer.no_ack:
            self.n_deliver_no_ack += 1
            q.n_deliver_no_ack += 1  # (settled at once: not in stats_acked, which counts acks)
            q.settle(entry)
        else:
            self.n_deliver += 1  # (the queue's is derived: broker/stats.py)
            entry.consumer = consumer
            self.unacked[tag] = entry
            consumer.unacked += 1
            self.unacked_count += 1
            self._track(q, entry)
        self.send_deliver(consumer, tag, entry)

    def _track(self, q, entry) -> None:
        """``entry`` is now unacked on this channel."""
        q.unacked += 1
        if entry.message.store_id and q.store_id and not entry.redelivered:
            q.store.delivered(q.store_id, entry.message.store_id)  # redelivered after a crash
        if self.ack_timer is None:
            acktimeout.arm(self)

    def get(self, q, no_ack: bool):
        """basic.get: ``(delivery tag, entry)`` of the head message, or None when the queue is empty."""
        entry = q.get()
        if entry is None:
            self.n_get_empty += 1
            q.n_get_empty += 1
            return None
        tag = self.next_tag
        self.next_tag = tag + 1
        entry.delivery_count += 1
        if entry.message.paged:
            q.page_in(entry.message)
        if entry.redelivered:
            self.n_redeliver += 1
            q.n_redeliver += 1
        if no_ack:
            self.n_get_no_ack += 1
            q.n_get_no_ack += 1
            q.settle(entry)
        else:
            self.n_get += 1
            q.n_get += 1
            self.unacked[tag] = entry
            self.unacked_count += 1
            self._track(q, entry)
        return tag, entry

    # ---------------------------------------------------------------- settling
    def ack(self, tag: int, multiple: bool) -> None:
        tx = self.tx
        if tx is not None:
            tx.take_tags(self.unacked, tag, multiple)
            tx.ops.append(("ack", tag, multiple))
            return
        self._ack(tag, multiple)

    def reject(self, tag: int, multiple: bool, requeue: bool) -> None:
        tx = self.tx
        if tx is not None:
            tx.take_tags(self.unacked, tag, multiple)
            tx.ops.append(("reject", tag, multiple, requeue))
            return
        self._reject(tag, multiple, requeue)

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

    def _release_one(self, e):
        """Account for one settled entry (its consumer and channel get the credit back); its queue."""
        c = e.consumer
        if c is not None:
            c.unacked -= 1
            e.consumer = None
        self.unacked_count -= 1
        q = e.queue
        q.unacked -= 1
        return q

    def _release(self, entries: list) -> set:
        """Account for settled entries; return the queues that may dispatch again."""
        release = self._release_one
        queues = {release(e) for e in entries}
        if self.global_prefetch:
            for c in self.consumers.values():
                queues.add(c.queue)
        return queues

    def _ack(self, tag: int, multiple: bool) -> None:
        entries = self._take(tag, multiple)
        if len(entries) == 1 and not self.global_prefetch:  # the common case, without the sets
            q = self._release_one(entries[0])
            q.stats_acked += 1
            self.n_ack += 1
            q.settle(entries[0])
            if q.messages and q.consumers:
                q.dispatch()
            return
        for q in self._release(entries):
            if q.messages and q.consumers:
                q.dispatch()
        self.n_ack += len(entries)
        for e in entries:
            q = e.queue
            q.stats_acked += 1
            q.settle(e)

    def _reject(self, tag: int, multiple: bool, requeue: bool) -> None:
        entries = self._take(tag, multiple)
        queues = self._release(entries)
        if requeue:
            _requeue(entries)
        else:
            discard(entries)
        for q in queues:
            if q.messages and q.consumers:
                q.dispatch()

    def requeue_all(self) -> None:
        """basic.recover, and a closing channel: every unacked message goes back to its queue."""
        if not self.unacked:
            return
        entries = list(self.unacked.values())
        self.unacked.clear()
        queues = self._release(entries)
        _requeue(entries)
        for q in queues:
            if q.messages and q.consumers:
                q.dispatch()

    # ----------------------------------------------------------------- closing
    def close(self) -> None:
        """Release everything the channel holds (on channel or connection close)."""
        if self.closed:
            return
        self.closed = True
        if self.ack_timer:
            acktimeout.disarm(self)
        if self.reply_consumer is not None:
            self.broker.direct_reply.cancel(self)
        if self.confirms is not None:
            self.confirms.close()
        consumers = list(self.consumers.values())
        for c in consumers:
            self._remove_consumer(c)
        self.consumers.clear()
        self.tx = None
        self.requeue_all()
        for c in consumers:  # a single-active-consumer queue may have a new active consumer
            q = c.queue
            if q.single_active and q.messages and q.consumers and not q.deleted:
                q.dispatch()
        self.vhost.stats.fold_channel(self)  # its counts stay in the vhost's totals
        self.vhost.totals.fold_channel(self)


def _requeue(entries: list) -> None:
    by_queue: dict = {}
    for e in entries:
        by_queue.setdefault(e.queue, []).append(e)
    for q, es in by_queue.items():
        q.requeue(es)


def discard(entries) -> None:
    """Messages rejected without requeue: dead-lettered (reason rejected) if their queue has a
    dead-letter exchange and still exists, then gone."""
    for e in entries:
        q = e.queue
        if q.dlx is not None and not q.deleted:
            q.dead_letter([e], "rejected")
        q.settle(e)
