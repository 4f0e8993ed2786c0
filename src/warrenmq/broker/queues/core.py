"""The queue: enqueue, round-robin dispatch with prefetch credit, basic.get, requeue, settle.

Theory of operation: a :class:`Queue` keeps its ready entries in ``messages``
(a ready container, containers.py), in sequence order.  ``publish`` appends an
entry and, when consumers exist, runs ``dispatch``: while messages are ready it
asks the consumers, round robin, for one that may take a message (credit under
its prefetch, channel not paused by flow or by a full socket) and hands the entry
to that consumer's channel (``channel.deliver(consumer, entry)``, which the
session implements: nothing here knows about frames).  Unacked entries live in
their channel's map until the channel acks, rejects or closes; requeued entries
go back to their original position (by sequence number, as RabbitMQ does) marked
redelivered; ``settle`` releases what a message held (memory, its store record)
once it left for good.

The other concerns are mixins, each in its module with its own state
(``_SLOTS``): TTL and queue expiry (ttl.py), length limits (limits.py), paging and
the lazy tail (lazy.py), consumer priorities and single active consumer
(consumers.py), throttling publishers while consumers fall behind (credit.py).  Every setting that comes from an argument or a policy is read by
``args.read_settings``, on creation and on every policy change.  The hot path
(``publish`` of a message no consumer can take yet, ``dispatch``, ``settle``)
looks only at plain attributes: ``limit``, ``page_limit``, ``message_ttl``,
``has_ttl`` and ``_pick`` are None/0/False unless their feature is in use.
"""
from __future__ import annotations

from collections import deque
from time import monotonic

from ...protocol.properties import HI_EXPIRATION
from ..deadletter import dead_letter
from ..message import QueueEntry
from ..policy import KIND_QUEUE, PolicyTarget
from ..stats import QUEUE_SLOTS, zero
from .args import read_settings
from .consumers import ConsumerChoice
from .credit import CreditFlow
from .lazy import Paging
from .limits import Limits
from .ttl import Expiry

#: deliveries one dispatch call hands out before yielding to the event loop (see Queue.dispatch)
DISPATCH_BATCH = 256


def _seq(entry: QueueEntry) -> int:
    return entry.seq


class Queue(PolicyTarget, ConsumerChoice, CreditFlow, Expiry, Limits, Paging):
    kind = KIND_QUEUE
    queue_type = "classic"
    __slots__ = ("exclusive_owner", "messages", "next_seq", "unacked", "deleted", "_dispatching",
                 "stats_published", "stats_delivered", "stats_acked", "memory", "dlx", "dlrk", "delivery_limit",
                 "_append", "_popleft") + QUEUE_SLOTS \
        + ConsumerChoice._SLOTS + CreditFlow._SLOTS + Expiry._SLOTS + Limits._SLOTS + Paging._SLOTS

    def __init__(self, name: str, vhost, durable=False, exclusive_owner=None, auto_delete=False, arguments=None):
        # bindings: (exchange, key, args_key) where this queue is the destination; the policy in force
        # (policy.py): policy-able settings are read through self.effective(arg)
        PolicyTarget.__init__(self, KIND_QUEUE, name, vhost, durable, auto_delete, arguments)
        self.exclusive_owner = exclusive_owner
        self.next_seq = 0
        self.unacked = 0
        self.deleted = False
        self._dispatching = False
        self.stats_published = 0
        self.stats_delivered = 0
        self.stats_acked = 0  # messages acknowledged (no-ack deliveries and gets: n_*_no_ack, broker/stats.py)
        zero(self, QUEUE_SLOTS)  # message statistics (stats.py), counted by the channels
        self.memory = vhost.memory
        # consumers (consumers.py); which consumer dispatch picks: None = plain round robin
        self.consumers: deque = deque()
        self.had_consumer = False
        self.exclusive_consumer = None
        self.active_consumer = None
        self.consumer_levels = None  # [(priority, deque of consumers)], highest first, while priorities are used
        # TTL and queue expiry (ttl.py)
        self.has_ttl = False  # entries may carry deadlines
        self._expiry = None  # the head expiry's timer (timers.Deadline), made when first needed
        self.expires = None
        self._expires_timer = None
        # paging (lazy.py)
        self.store = vhost.store
        self.page_store = vhost.page_store
        self.page_limit = vhost.page_limit if vhost.page_store is not None else 0
        # credit flow (credit.py): flow_high, flow_low, the publishers this queue throttles
        self.init_flow(vhost)
        self.store_id = 0  # the message store's queue id when durable and stored (0: not stored)
        # message_ttl, expires, dlx, dlrk, delivery_limit, limit, messages, single_active (args.py)
        self.limit = None
        self.delivery_limit = None
        read_settings(self, creating=True)
        self._pick = self._pick_single_active if self.single_active else None

    def set_ready(self, container) -> None:
        """Make ``container`` the ready container (the only way ``messages`` changes).  The queue calls
        its ``append``/``popleft`` through bound methods kept here: CPython 3.11 specialises a method
        call on a deque, but not on a deque subclass (Fifo), so ``self._append(entry)`` is as fast as
        ``deque.append`` and ``messages.append(entry)`` would not be."""
        self.messages = container
        self._append = container.append
        self._popleft = container.popleft

    @property
    def exclusive(self) -> bool:
        return self.exclusive_owner is not None

    @property
    def message_count(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"<Queue {self.name!r} ready={len(self.messages)} unacked={self.unacked}>"

    # ------------------------------------------------------------------ policies
    def apply_policy(self, policy) -> None:
        """``policy`` (or None) is now the one in force: re-read every setting a policy can change, as
        RabbitMQ's queue does on a policy change (x-max-priority is fixed at creation)."""
        self.policy = policy
        read_settings(self)

    # ----------------------------------------------------------- enqueue/deliver
    def publish(self, msg):
        """Enqueue ``msg`` (and dispatch).  Returns False, and nothing else, when the queue refuses it
        (a length limit with x-overflow reject-publish*): the publisher's confirm is then a nack."""
        limit = self.limit
        if limit is not None and limit.rejects and not self._admit(msg, limit):
            return False
        seq = self.next_seq
        self.next_seq = seq + 1
        self.stats_published += 1
        mem = self.memory
        mem.used += len(msg.body)
        if mem.used > mem.high and not mem.alarm:
            mem.add(0)
        entry = QueueEntry(msg, seq, self)
        append = self._append  # (a slot read, then a specialised call: see set_ready)
        append(entry)
        messages = self.messages
        if self.page_limit and len(messages) > self.page_limit:
            if msg.pageable:
                self.page_out(msg)
            self._go_lazy()
        ttl = self.message_ttl
        if msg.header[12] & HI_EXPIRATION:  # the expiration property is present
            mttl = msg.ttl
            if mttl is not None and (ttl is None or mttl < ttl):
                ttl = mttl
        if ttl is None:
            # After every dispatch either the queue is empty or no consumer can take a message, and
            # consumers only regain credit through calls that dispatch (ack, qos, consume, resumed
            # writing, requeue). So with a backlog already waiting, a new message cannot be delivered now.
            # (A queue with a consumer picker, for priorities or single active consumer, may deliberately
            # wait for the next publish, so it always dispatches.)
            if self.consumers and (len(self.messages) == 1 or self._pick is not None):
                self.dispatch()
            if limit is not None:
                self._drop_head()
            return
        self.has_ttl = True
        deadline = monotonic() + ttl / 1000.0
        if self.consumers:
            self.dispatch()
            if entry.delivery_count:  # a consumer took it at once: it never expires
                return
        entry.expires = deadline
        self._schedule_expiry()
        if limit is not None:
            self._drop_head()

    def dispatch(self) -> None:
        """Hand ready messages to consumers with credit, round robin (or as ``_pick`` chooses)."""
        if self._dispatching:
            return
        messages = self.messages
        popleft = self._popleft
        consumers = self.consumers
        self._dispatching = True
        has_ttl = self.has_ttl
        pick = self._pick
        # Deliveries leave only when the loop turn ends: hand out at most a batch per call and let the
        # loop write it (a consumer whose socket is full is then paused) before continuing.
        batch = DISPATCH_BATCH if self.vhost.timers.loop_call_later is not None else 0
        sent = 0
        try:
            while messages and consumers:
                if has_ttl and messages[0].expires and not self._drop_expired():
                    return
                if pick is not None:  # consumer priorities or single active consumer
                    c = pick()
                    if c is None:
                        return
                else:
                    # find the next consumer (in round-robin order) that may take a message
                    for _ in range(len(consumers)):
                        c = consumers[0]
                        consumers.rotate(-1)
                        if c.ready():
                            break
                    else:
                        return
                entry = popleft()
                self.stats_delivered += 1
                c.channel.deliver(c, entry)
                sent += 1
                if sent == batch and messages:
                    self.vhost.timers.call_later(0, self.dispatch)
                    return
        finally:
            self._dispatching = False
            if has_ttl:
                self._schedule_expiry()
            if self.throttled is not None and len(messages) < self.flow_low:
                self.release_flow()

    def get(self):
        """Pop the head entry for basic.get, or ``None``."""
        if self.expires:
            self.reset_expires()
        if self.has_ttl:
            self._drop_expired()
            if self.messages:
                self.stats_delivered += 1
                entry = self._popleft()
                self._schedule_expiry()
                return entry
            return None
        if self.messages:
            self.stats_delivered += 1
            entry = self._popleft()
            if self.throttled is not None:
                self.check_flow()
            return entry
        return None

    def requeue(self, entries: list) -> None:
        """Put delivered entries back in their original places, marked redelivered."""
        if self.deleted:
            self.settle_many(entries)
            return
        for e in entries:
            e.redelivered = True
            e.consumer = None
        entries.sort(key=_seq)
        self.messages.requeue(entries)
        self._after_requeue()

    def _after_requeue(self) -> None:
        if self.limit is not None:  # as RabbitMQ: requeued messages count, drop-head drops them first
            self._drop_head()
        if self.consumers:
            self.dispatch()
        elif self.has_ttl:
            self._schedule_expiry()

    def restore(self, msg, store_id: int, delivered: bool) -> None:
        """Append a message recovered from the store (at start, before any client connects).

        ``msg.body`` is None when the store left it on disk.  Beyond the paging limit it stays there
        (even if the store read it: the lazy tail keeps such a message as its id only, so its body must
        not count as memory)."""
        msg.store_id = store_id
        msg.pageable = True
        if self.page_limit and len(self.messages) >= self.page_limit:
            msg.body = None
            msg.paged = True
        elif msg.body is None:
            msg.body = self.store.read_body(store_id) or b""
        if not msg.paged:
            self.memory.used += len(msg.body)
        entry = QueueEntry(msg, self.next_seq, self)
        self.next_seq += 1
        entry.redelivered = delivered
        msgs = self.messages
        msgs.restore(entry)
        if self.page_limit and len(msgs) > self.page_limit:
            self._go_lazy()

    # ------------------------------------------------------------------ settling
    def settle(self, entry) -> None:
        """``entry`` left this queue for good (acked, auto-acked, dropped): release what it held."""
        msg = entry.message
        if msg.paged:  # dropped (purge, expiry) without ever being read back
            self._forget_paged(msg)
        else:
            self.memory.release(len(msg.body))
        if msg.store_id and self.store_id:
            self.store.remove(self.store_id, msg.store_id)

    def settle_many(self, entries) -> None:
        if not entries:
            return
        size = 0
        for e in entries:
            msg = e.message
            if msg.paged:
                self._forget_paged(msg)
            else:
                size += len(msg.body)
        self.memory.release(size)
        if self.store_id:
            qid = self.store_id
            remove = self.store.remove
            for e in entries:
                sid = e.message.store_id
                if sid:
                    remove(qid, sid)

    def purge(self) -> int:
        """Drop every ready message; return how many went."""
        n = len(self.messages)
        if n:
            entries, sids = self.messages.take_all()  # sids: the store ids of a lazy tail's entries
            self.settle_many(entries)
            if sids and self.store_id:
                qid, remove = self.store_id, self.store.remove
                for sid in sids:
                    remove(qid, sid)
        if self.throttled is not None:
            self.release_flow()
        return n

    def dead_letter(self, entries: list, reason: str) -> None:
        """Republish the messages of ``entries`` to the dead-letter exchange (before they are settled)."""
        messages = []
        for e in entries:
            msg = e.message
            if msg.paged:
                self.page_in(msg)
            messages.append(msg)
        dead_letter(self, messages, reason)
