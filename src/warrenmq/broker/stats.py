"""Message statistics in the domain: plain integer counters on the objects the hot path touches.

Theory of operation: RabbitMQ's management ``message_stats`` are counts of
events (publish, deliver, ack, ...).  Every count here is an integer slot,
incremented in place where the event already happens, on an object that code
already holds: no lookup, no call, no allocation, no branch of its own, so
counting costs a few nanoseconds per event and is always on (switching
statistics off, ``statistics_enabled = false``, stops the management API's
sampler, :mod:`warrenmq.management.stats`, which is the only reader).

Where each count lives (slot names are ``n_`` + RabbitMQ's key):

* :data:`CHANNEL_COUNTERS` on :class:`~.channel.Channel`: what its client
  published (``publish``; ``return_unroutable``/``drop_unroutable`` for a
  message no queue took, mandatory or not) and received (``deliver`` and
  ``deliver_no_ack`` to consumers, ``get``/``get_no_ack``/``get_empty``,
  ``ack`` per message acknowledged, ``redeliver``).  ``confirm`` is not
  counted: it is read from the confirm tracker (publishes confirmed minus those
  nacked, :func:`channel_counts`).
* :data:`QUEUE_COUNTERS` on :class:`~.queues.Queue`: the same consumer-side
  events, counted where the channel counts them.  Three come from counts the
  queue already kept, so the common path pays no extra increment for them
  (:func:`queue_counts`): ``publish`` is ``stats_published`` (every message
  enqueued, whatever sent it), ``deliver`` is ``stats_delivered`` (every
  message handed out) less the no-ack deliveries and the gets, ``ack`` is
  ``stats_acked`` (every message acknowledged; a no-ack delivery or get is
  settled without touching it, so the no-ack paths pay one increment each).
  Whatever takes messages from a queue without a channel (the aliveness test)
  counts its get as a channel would.
* :data:`EXCHANGE_COUNTERS` on :class:`~.exchanges.Exchange`, counted by the
  one publish path (:meth:`~.vhost.VHost.publish`): ``publish_in`` per
  message published to it, ``publish_out`` per queue it went to; the latter is
  derived (:func:`exchange_counts`) from the messages that went nowhere and the
  queues beyond the first, so a message routed to one queue, the common case,
  pays one increment.
* Connections count octets and socket reads/writes where the transport reads
  and writes (``recv_oct``, ``recv_cnt``, ``send_oct``, ``send_cnt``).

Channels and connections come and go, but a vhost's and the node's totals must
not drop when they do: :class:`VHostTotals` (``vhost.stats``) keeps what
closed channels and connections of that vhost counted (:meth:`fold_channel`,
:meth:`fold_connection`, called once when one closes).  A vhost's
``message_stats`` is then its totals plus its open channels', summed by the
sampler on its timer; the node's (``/api/overview``) is the sum of the vhosts'.
Nothing is counted twice.

Churn (the overview's ``churn_rates``): a vhost's totals also count the queues
declared (every non-passive ``queue.declare`` that succeeded), created and
deleted, and the channels and connections that closed (in the fold calls);
what was created of the latter is what closed plus what is open
(:data:`CHURN_COUNTERS`).  These happen per declare or connection, never per
message.

Node totals: :class:`NodeTotals` (``broker.totals``, shared by every vhost
as ``vhost.totals``) keeps what would otherwise vanish from node-wide sums
(the Prometheus ``rabbitmq_global_*`` counters and churn counters, which must
never go down): the counts of deleted queues (per queue type), the channel
counts and churn of deleted vhosts, and the messages closed channels received
in confirm mode.  Each is folded in once, when the queue, vhost or channel
goes.
"""
from __future__ import annotations

#: the per-channel counts, RabbitMQ's ``message_stats`` keys, in ``channel_counts`` order
CHANNEL_COUNTERS = ("publish", "confirm", "return_unroutable", "drop_unroutable", "deliver", "deliver_no_ack",
                    "get", "get_no_ack", "get_empty", "ack", "redeliver")

#: the slots on a channel (``confirm`` is read from its confirm tracker instead)
CHANNEL_SLOTS = tuple("n_" + k for k in CHANNEL_COUNTERS if k != "confirm")

#: the per-queue consumer-side counts (``publish`` is ``Queue.stats_published``)
QUEUE_COUNTERS = ("publish", "deliver", "deliver_no_ack", "get", "get_no_ack", "get_empty", "ack", "redeliver")
#: the slots a queue adds for them (the others are derived, see queue_counts)
QUEUE_SLOTS = ("n_deliver_no_ack", "n_get", "n_get_no_ack", "n_get_empty", "n_redeliver")

#: the per-exchange counts
EXCHANGE_COUNTERS = ("publish_in", "publish_out")
#: messages published to it, those no queue took, queues beyond the first that took one
EXCHANGE_SLOTS = ("n_publish_in", "n_unroutable", "n_fanout")

#: the per-connection counts (attributes of the session, named as RabbitMQ's keys)
CONNECTION_COUNTERS = ("recv_oct", "recv_cnt", "send_oct", "send_cnt")


def zero(obj, slots) -> None:
    """Start ``obj``'s counters at 0 (from its ``__init__``)."""
    for s in slots:
        setattr(obj, s, 0)


def channel_counts(ch) -> list:
    """``ch``'s counts in :data:`CHANNEL_COUNTERS` order."""
    confirms = ch.confirms
    return [ch.n_publish, confirms.acked - confirms.nacked if confirms is not None else 0,
            ch.n_return_unroutable, ch.n_drop_unroutable, ch.n_deliver, ch.n_deliver_no_ack, ch.n_get,
            ch.n_get_no_ack, ch.n_get_empty, ch.n_ack, ch.n_redeliver]


def exchange_counts(ex) -> tuple:
    """``ex``'s counts in :data:`EXCHANGE_COUNTERS` order."""
    n = ex.n_publish_in
    return (n, n - ex.n_unroutable + ex.n_fanout)


def queue_counts(q) -> tuple:
    """``q``'s counts in :data:`QUEUE_COUNTERS` order."""
    no_ack, get, get_no_ack = q.n_deliver_no_ack, q.n_get, q.n_get_no_ack
    return (q.stats_published, q.stats_delivered - no_ack - get - get_no_ack, no_ack, get, get_no_ack,
            q.n_get_empty, q.stats_acked, q.n_redeliver)


#: RabbitMQ's ``churn_rates`` keys, in the order the management sampler sums them
CHURN_COUNTERS = ("connection_created", "connection_closed", "channel_created", "channel_closed",
                  "queue_declared", "queue_created", "queue_deleted")


class VHostTotals:
    """What a vhost's closed channels and connections counted, and its churn (see the module docstring)."""
    __slots__ = ("channels", "recv_oct", "send_oct", "channel_closed", "connection_closed", "queue_declared",
                 "queue_created", "queue_deleted")

    def __init__(self):
        self.channels = [0] * len(CHANNEL_COUNTERS)
        self.recv_oct = 0
        self.send_oct = 0
        self.channel_closed = 0
        self.connection_closed = 0
        self.queue_declared = 0
        self.queue_created = 0
        self.queue_deleted = 0

    def fold_channel(self, ch) -> None:
        """``ch`` closes: keep its counts."""
        totals = self.channels
        for i, n in enumerate(channel_counts(ch)):
            totals[i] += n
        self.channel_closed += 1

    def fold_connection(self, session) -> None:
        """A connection of this vhost closes: keep its octet counts."""
        self.recv_oct += session.recv_oct
        self.send_oct += session.send_oct
        self.connection_closed += 1

    def churn(self, open_connections: int, open_channels: int) -> list:
        """The vhost's counts in :data:`CHURN_COUNTERS` order, given what is open now."""
        return [self.connection_closed + open_connections, self.connection_closed,
                self.channel_closed + open_channels, self.channel_closed,
                self.queue_declared, self.queue_created, self.queue_deleted]


class NodeTotals:
    """What deleted queues and vhosts and closed channels leave behind (see the module docstring)."""
    __slots__ = ("queues", "channels", "churn", "received_confirm")

    def __init__(self):
        self.queues: dict = {}  # queue type -> counts of its deleted queues, in QUEUE_COUNTERS order
        self.channels = [0] * len(CHANNEL_COUNTERS)  # what the channels of deleted vhosts counted
        self.churn = [0] * len(CHURN_COUNTERS)  # the churn of deleted vhosts
        self.received_confirm = 0  # messages published in confirm mode on channels now closed

    def fold_queue(self, q) -> None:
        """``q`` is deleted: keep its counts."""
        totals = self.queues.get(q.queue_type)
        if totals is None:
            totals = self.queues[q.queue_type] = [0] * len(QUEUE_COUNTERS)
        for i, n in enumerate(queue_counts(q)):
            totals[i] += n

    def fold_channel(self, ch) -> None:
        """``ch`` closes: keep what it published in confirm mode."""
        if ch.confirms is not None:
            self.received_confirm += ch.confirms.seq

    def fold_vhost(self, vh) -> None:
        """``vh`` is deleted (its connections already closed): keep its channels' counts and its churn."""
        for totals, counts in ((self.channels, vh.stats.channels), (self.churn, vh.stats.churn(0, 0))):
            for i, n in enumerate(counts):
                totals[i] += n
