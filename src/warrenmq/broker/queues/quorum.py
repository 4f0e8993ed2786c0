"""Quorum queues (``x-queue-type: quorum``) as a single RabbitMQ 3.10 node shows them to clients.

Theory of operation: there is no replication here (one node, one copy); a
:class:`QuorumQueue` is a :class:`~.core.Queue` with the client-visible
differences of RabbitMQ's quorum queues:

* declaring one needs ``durable=true`` and neither ``exclusive`` nor
  ``auto_delete`` (checked in ``VHost.declare_queue``), takes the quorum
  arguments and refuses classic-only ones (``x-max-priority``, ``x-queue-mode``,
  ...; ``args.check_queue_arguments``), and cannot be server-named;
* a message returned before carries the header ``x-delivery-count`` (a long):
  how many times it was returned; basic.get adds it even the first time (0),
  consumers then get the message unchanged.  An entry holds a
  :class:`~..message.CountedMessage` once it needs the header (re-encoded when
  the count changes), so the session's delivery path stays untouched;
* a returned message (reject/nack with requeue, recover, a closed channel) is
  marked redelivered and goes, in the order returned, to the back of the queue;
  but with a delivery limit set, to the front (behind the returned messages
  already waiting there), as RabbitMQ 3.10's quorum queue does;
* with ``x-delivery-limit`` N (argument or policy, the lower wins; read by
  ``args.read_settings`` like every other setting), a message returned more
  than N times is dead-lettered with reason ``delivery_limit`` (or dropped
  without a dead-letter exchange);
* ``x-overflow: reject-publish-dlx`` acts as drop-head (RabbitMQ 3.10 logs that
  it is not supported by quorum queues and uses the default; args.py maps it);
* a consumer on a channel with a global prefetch limit is refused
  (``540 NOT_IMPLEMENTED - queue 'q' in vhost '/' does not support global qos``,
  checked by the session).

What a dead-letter exchange receives is the message as published, without
``x-delivery-count``.
"""
from __future__ import annotations

from ...protocol.codec import INT_TYPES
from ...protocol.properties import content_header
from ...protocol.spec import BasicProperties
from ..deadletter import sorted_table
from ..message import CountedMessage
from .core import Queue

_Long = INT_TYPES["l"]


def counted(msg, n: int) -> CountedMessage:
    """``msg`` (or the message a CountedMessage stands for) as delivered with ``x-delivery-count`` = n."""
    original = msg.original if msg.__class__ is CountedMessage else msg
    props = BasicProperties.decode(original.header, 12)
    headers = dict(props.headers) if props.headers else {}
    headers["x-delivery-count"] = _Long(n)
    props.headers = sorted_table(headers)  # RabbitMQ's add_header sorts the table
    body = msg.body if msg.body is not None else original.body
    c = CountedMessage(original.exchange, original.routing_key, content_header(props, len(body)), body,
                       original.ex_rk)
    c.original = original
    c.store_id = msg.store_id  # the store knows the message by this id, whichever copy the queue holds
    c._props = props
    return c


class QuorumQueue(Queue):
    queue_type = "quorum"  # args.read_settings reads x-delivery-limit into delivery_limit for this type
    __slots__ = ()

    def get(self):
        """basic.get: the message always has x-delivery-count, 0 the first time (RabbitMQ 3.10)."""
        entry = Queue.get(self)
        if entry is not None and entry.message.__class__ is not CountedMessage:
            if entry.message.paged:
                self.page_in(entry.message)
            entry.message = counted(entry.message, 0)
        return entry

    def requeue(self, entries: list) -> None:
        """Returned messages go to the back (to the front with a delivery limit), in the order returned,
        unless over the delivery limit."""
        if self.deleted:
            self.settle_many(entries)
            return
        limit = self.delivery_limit
        msgs = self.messages
        dead = []
        for e in entries:
            e.consumer = None
            n = e.delivery_count  # every delivery so far ended in a return
            if limit is not None and n > limit:
                dead.append(e)
                continue
            e.redelivered = True
            if e.message.paged:
                self.page_in(e.message)
            e.message = counted(e.message, n)
            if limit is None:
                e.seq = self.next_seq
                self.next_seq += 1
                msgs.append(e)
            else:
                msgs.put_back(e)  # behind the returned entries already waiting at the head
        if dead:
            if self.dlx is not None:
                self.dead_letter(dead, "delivery_limit")
            self.settle_many(dead)
        self._after_requeue()
