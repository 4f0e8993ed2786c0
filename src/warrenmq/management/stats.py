"""The statistics the management API shows: counts from the domain, rates sampled on a timer.

Theory of operation: the domain counts events in integer slots
(:mod:`warrenmq.broker.stats`); nothing on the hot path computes a rate.
:class:`Stats` runs a sampler every ``statistics_interval_ms`` (default 1000
ms; RabbitMQ's ``collect_statistics_interval`` is 5000): it reads every
queue's, exchange's, channel's and connection's counts (and each queue's
depth) into a tuple and keeps, per object, ``(counts, rates)`` where a rate is
the change since the previous sample divided by the time between them, per
second.  An object whose counts did not change and whose rates were already 0
keeps its previous pair (no new tuple), so idle objects cost one tuple
comparison per tick.  Vhost and node totals are summed from the channels (and
what closed channels folded into ``vhost.stats``) on the same tick.

A response takes the *current* counts from the objects and the rates from the
last sample, shaped as RabbitMQ 3.10 shapes them: ``message_stats`` holds
``KEY`` and ``KEY_details: {"rate": r}`` for each group of keys an object has
seen an event of (a queue nothing was published to has no ``message_stats``);
queues and vhosts have ``messages_details`` and the other depth rates.

``statistics_enabled = false`` (``--no-statistics``): no sampler runs and the
API leaves out ``message_stats`` and every ``*_details`` (the depths, listings
and octet counts still answer), as a RabbitMQ whose metrics collector is
disabled does; the domain's counters keep counting, which costs next to
nothing.

Estimates where RabbitMQ measures an Erlang process: a queue's ``memory`` is
the queue object and its entries (not the message bodies, which queues share);
``consumer_utilisation`` is the share of samples in which the queue's
consumers could take what it had (no message waiting, or a consumer with
credit), averaged over the last few samples.
"""
from __future__ import annotations

import sys
from datetime import datetime, timezone
from time import monotonic, time

from ..broker.message import QueueEntry
from ..broker.queues.lazy import PAGE_BIT, LazyMessages
from ..broker.stats import (
    CHANNEL_COUNTERS, CHURN_COUNTERS, QUEUE_COUNTERS, channel_counts, exchange_counts, queue_counts,
)

#: RabbitMQ's collect_statistics_interval is 5000 ms; WarrenMQ samples every second by default
DEFAULT_INTERVAL_MS = 1000

_QUEUE_KEYS = QUEUE_COUNTERS + ("messages_ready", "messages_unacknowledged")
_queue_counts = queue_counts
_exchange_counts = exchange_counts
_DELIVER_GET = ("deliver", "deliver_no_ack", "get", "get_no_ack")
#: the channel keys of the publishing side and of the receiving side (RabbitMQ shows each group once it
#: has an event; deliver_get is derived)
_PUBLISH_GROUP = ("publish", "confirm", "return_unroutable", "drop_unroutable")
_DELIVER_GROUP = ("ack", "deliver", "deliver_no_ack", "get", "get_empty", "get_no_ack", "redeliver")
_CH_INDEX = {k: i for i, k in enumerate(CHANNEL_COUNTERS)}
_Q_INDEX = {k: i for i, k in enumerate(_QUEUE_KEYS)}

_ZERO_Q = (0.0,) * len(_QUEUE_KEYS)
_ZERO_X = (0.0, 0.0)
_ZERO_CH = (0.0,) * len(CHANNEL_COUNTERS)
_ZERO_CONN = (0.0, 0.0)
#: zero rates of an object whose counts did change (a change too small to show as a rate): not the
#: _ZERO_* object itself, so that the next unchanged sample still goes through the idle bookkeeping
_ACTIVE_ZERO_Q, _ACTIVE_ZERO_CH, _ACTIVE_ZERO_CONN = (tuple([0.0] * len(z)) for z in (_ZERO_Q, _ZERO_CH, _ZERO_CONN))

_QUEUE_BASE = sys.getsizeof(object()) * 8 + 1024  # the queue object, its containers and settings
_ENTRY_SIZE = 72  # a QueueEntry (slots) and its place in a container
try:
    _ENTRY_SIZE = QueueEntry.__basicsize__ + 8
except AttributeError:  # pragma: no cover
    pass


#: the details of a rate of 0, shared by every object that has one (responses only serialise it)
_ZERO_DETAILS = {"rate": 0.0}


def _rate(r: float) -> dict:
    return {"rate": r} if r else _ZERO_DETAILS


def _rates(prev, counts, dt: float, zero):
    if dt <= 0:
        return zero
    out = tuple(round((c - p) / dt, 1) for c, p in zip(counts, prev))
    return zero if not any(out) else out


def _group(out: dict, keys, counts, index: dict, rates) -> None:
    for k in keys:
        i = index[k]
        out[k] = counts[i]
        out[k + "_details"] = _rate(rates[i])


def _sessions(broker):
    return [s for s in broker.sessions if not getattr(s, "closed", False)]


def unacked_entries(broker, queue=None) -> dict:
    """queue -> the entries its consumers and getters hold unacknowledged, from every open channel (or
    only ``queue``'s): one pass over the channels' unacked maps, which prefetch keeps small."""
    out: dict = {}
    for s in _sessions(broker):
        for ch in list(getattr(s, "channels", {}).values()):
            for e in getattr(ch, "unacked", {}).values():
                q = e.queue
                if queue is None or q is queue:
                    out.setdefault(q, []).append(e)
    return out


def _count_entries(entries, acc: list) -> None:
    """Add ``entries``' counts to ``acc``: [messages, bytes, in RAM, bytes in RAM, persistent, persistent
    bytes] (a message's size from its content header, so a paged-out body counts too; persistent: written
    to the store, i.e. a persistent message in a durable queue, as RabbitMQ counts it)."""
    n = size = ram = ram_size = pers = pers_size = 0
    from_bytes = int.from_bytes
    for e in entries:
        msg = e.message
        b = from_bytes(msg.header[4:12], "big")
        n += 1
        size += b
        if not msg.paged:
            ram += 1
            ram_size += b
        if msg.store_id:
            pers += 1
            pers_size += b
    acc[0] += n
    acc[1] += size
    acc[2] += ram
    acc[3] += ram_size
    acc[4] += pers
    acc[5] += pers_size


_NO_BYTES = dict.fromkeys(("message_bytes", "message_bytes_ready", "message_bytes_unacknowledged",
                           "message_bytes_ram", "message_bytes_persistent", "message_bytes_paged_out",
                           "messages_ram", "messages_ready_ram", "messages_unacknowledged_ram",
                           "messages_persistent", "messages_paged_out"), 0)


def _iso(t: float) -> str:
    """RabbitMQ 3.10's timestamp format: ``2026-12-05T19:17:18.613+00:00``."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds")


def message_bytes(q, unacked: list, d: dict) -> None:
    """RabbitMQ's ``message_bytes*`` and ``messages_{ram,persistent,paged_out}`` of queue ``q``, counted when
    asked (nothing is counted per message for them): its ready entries and ``unacked`` (see
    :func:`unacked_entries`).  The tail of a lazy queue that is only store ids is paged out, and its bytes
    are not known without reading it back: it counts in ``messages_paged_out`` and not in the bytes."""
    msgs = q.messages
    if not msgs and not unacked:
        d.update(_NO_BYTES)
        return
    ready = [0] * 6
    tail = 0
    if isinstance(msgs, LazyMessages):
        _count_entries(msgs.head, ready)
        _count_entries(msgs.side.values(), ready)
        tail = len(msgs) - ready[0]
        # the ids of the tail: the store's (persistent messages), the page store's (transient ones), 0 (in side)
        side = msgs.side
        ready[4] += sum(1 for i, seq in zip(msgs.ids[msgs.pos:], msgs.seqs[msgs.pos:])
                        if i and not i & PAGE_BIT and seq not in side)
    else:
        _count_entries(msgs, ready)
    held = [0] * 6
    _count_entries(unacked, held)
    d["message_bytes"] = ready[1] + held[1]
    d["message_bytes_ready"] = ready[1]
    d["message_bytes_unacknowledged"] = held[1]
    d["message_bytes_ram"] = ready[3] + held[3]
    d["message_bytes_persistent"] = ready[5] + held[5]
    d["message_bytes_paged_out"] = (ready[1] - ready[3]) + (held[1] - held[3])
    d["messages_ram"] = ready[2] + held[2]
    d["messages_ready_ram"] = ready[2]
    d["messages_unacknowledged_ram"] = held[2]
    d["messages_persistent"] = ready[4] + held[4]
    d["messages_paged_out"] = (ready[0] - ready[2]) + tail + (held[0] - held[2])


class Stats:
    """``Stats(broker, enabled, interval_ms)``; :meth:`start` on the broker's loop, :meth:`stop`."""

    def __init__(self, broker, enabled: bool = True, interval_ms: int = DEFAULT_INTERVAL_MS):
        self.broker = broker
        self.enabled = enabled
        self.interval = max(interval_ms, 10) / 1000.0
        self.samples: dict = {}  # object -> (counts, rates) at the last sample
        self.util: dict = {}  # queue -> consumer utilisation (0.0 .. 1.0)
        self.vhost_samples: dict = {}  # vhost name -> (counts, rates), channels' counts + octets
        self._sampled = False
        self.last = monotonic()
        self.last_wall = _iso(time())
        # queue, channel or connection -> since when (RabbitMQ's format) its counts have not changed; an object
        # that changed in the last interval is not in it (RabbitMQ shows idle_since only while idle)
        self.idle: dict = {}
        self._ticks = 0
        self._handle = None
        self._loop = None

    # ------------------------------------------------------------------ the timer
    def start(self, loop) -> None:
        if self.enabled and self._handle is None:
            self._loop = loop
            self.last = monotonic()
            self._handle = loop.call_later(self.interval, self._tick)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        try:
            self.sample()
        finally:
            self._handle = self._loop.call_later(self.interval, self._tick)

    def sample(self) -> None:
        """Read every object's counts and turn the change since the last sample into rates; sum each
        vhost's channels and connections in the same pass."""
        now = monotonic()
        dt = now - self.last
        self.last = now
        wall = _iso(time())  # idle_since as shown, formatted once per sample
        before = self.last_wall  # the previous sample: what went idle since was last seen active then
        self.last_wall = wall
        idle = self.idle
        old = self.samples
        # an object made since the last sample counted from 0 then; on the first sample everything is
        # as old as the broker, so its counts are no rate
        first = not self._sampled
        self._sampled = True
        fresh_q = None if first else ((0,) * len(_QUEUE_KEYS), None)
        fresh_x = None if first else ((0, 0), None)
        fresh_conn = None if first else ((0, 0), None)
        fresh_ch = None if first else ((0,) * len(CHANNEL_COUNTERS), None)
        new: dict = {}
        util = self.util
        new_util: dict = {}
        broker = self.broker
        sums: dict = {}  # vhost -> its counts (vhost_counts' order)
        for vh in broker.vhosts.values():
            ready_total = unacked_total = 0
            for q in vh.queues.values():
                ready = len(q.messages)
                unacked = q.unacked
                ready_total += ready
                unacked_total += unacked
                counts = _queue_counts(q) + (ready, unacked)
                prev = old.get(q, fresh_q)
                if prev is None:
                    new[q] = (counts, _ZERO_Q)
                    idle[q] = wall
                elif prev[0] == counts and prev[1] is _ZERO_Q:
                    new[q] = prev
                else:
                    new[q] = (counts, _rates(prev[0], counts, dt, _ZERO_Q))
                    if prev[0] != counts:
                        idle.pop(q, None)
                        if new[q][1] is _ZERO_Q:  # a change too small for a rate: still, not idle yet
                            new[q] = (counts, _ACTIVE_ZERO_Q)
                    elif q not in idle:
                        idle[q] = wall if q not in old else before
                if q.consumers:
                    able = 1.0 if not ready or any(c.ready() for c in q.consumers) else 0.0
                    u = util.get(q)
                    new_util[q] = able if u is None else round(0.5 * u + 0.5 * able, 4)
            for ex in vh.exchanges.values():
                counts = _exchange_counts(ex)
                prev = old.get(ex, fresh_x)
                if prev is None:
                    new[ex] = (counts, _ZERO_X)
                elif prev[0] == counts and prev[1] is _ZERO_X:
                    new[ex] = prev
                else:
                    new[ex] = (counts, _rates(prev[0], counts, dt, _ZERO_X))
            totals = vh.stats
            sums[vh] = totals.channels + [totals.recv_oct, totals.send_oct, ready_total, unacked_total] \
                + totals.churn(0, 0)
        n = len(CHANNEL_COUNTERS)
        m = n + 4  # where the churn counts start (CHURN_COUNTERS order)
        for s in _sessions(broker):
            counts = (getattr(s, "recv_oct", 0), getattr(s, "send_oct", 0))
            prev = old.get(s, fresh_conn)
            if prev is None:
                new[s] = (counts, _ZERO_CONN)
                idle[s] = wall
            elif prev[0] == counts and prev[1] is _ZERO_CONN:
                new[s] = prev
            else:
                new[s] = (counts, _rates(prev[0], counts, dt, _ZERO_CONN))
                if prev[0] != counts:
                    idle.pop(s, None)
                    if new[s][1] is _ZERO_CONN:  # a change too small for a rate: still, not idle yet
                        new[s] = (counts, _ACTIVE_ZERO_CONN)
                elif s not in idle:
                    idle[s] = wall if s not in old else before
            total = sums.get(getattr(s, "vhost", None))
            if total is not None:
                total[n] += counts[0]
                total[n + 1] += counts[1]
                total[m] += 1  # connection_created: the closed ones and this open one
                total[m + 2] += len(getattr(s, "channels", ()))  # channel_created likewise
            for ch in getattr(s, "channels", {}).values():
                counts = tuple(channel_counts(ch))
                prev = old.get(ch, fresh_ch)
                if prev is None:
                    new[ch] = (counts, _ZERO_CH)
                    idle[ch] = wall
                elif prev[0] == counts and prev[1] is _ZERO_CH:
                    new[ch] = prev
                else:
                    new[ch] = (counts, _rates(prev[0], counts, dt, _ZERO_CH))
                    if prev[0] != counts:
                        idle.pop(ch, None)
                        if new[ch][1] is _ZERO_CH:  # a change too small for a rate: still, not idle yet
                            new[ch] = (counts, _ACTIVE_ZERO_CH)
                    elif ch not in idle:
                        idle[ch] = wall if ch not in old else before
                if total is not None and any(counts):
                    for i, c in enumerate(counts):
                        total[i] += c
        self.samples = new
        self.util = new_util
        self._ticks += 1
        if self._ticks % 10 == 0:  # forget deleted objects (not every tick: idle ones cost nothing meanwhile)
            self.idle = {k: v for k, v in idle.items() if k in new}
        old_vh = self.vhost_samples
        new_vh = {}
        for vh, counts in sums.items():
            counts = tuple(counts)
            zero = (0.0,) * len(counts)
            prev = old_vh.get(vh.name, None if first else ((0,) * len(counts), None))
            new_vh[vh.name] = (counts, zero if prev is None else _rates(prev[0], counts, dt, zero))
        self.vhost_samples = new_vh

    # ------------------------------------------------------------------ totals
    def vhost_counts(self, vh) -> list:
        """A vhost's channel counts (CHANNEL_COUNTERS order), then recv_oct, send_oct, ready, unacked:
        what its closed channels and connections left plus its open ones; then its churn
        (CHURN_COUNTERS order)."""
        totals = vh.stats
        out = list(totals.channels)
        recv, send = totals.recv_oct, totals.send_oct
        conns = chans = 0
        for s in _sessions(self.broker):
            if getattr(s, "vhost", None) is not vh:
                continue
            recv += getattr(s, "recv_oct", 0)
            send += getattr(s, "send_oct", 0)
            conns += 1
            for ch in getattr(s, "channels", {}).values():
                chans += 1
                for i, n in enumerate(channel_counts(ch)):
                    out[i] += n
        ready = unacked = 0
        for q in vh.queues.values():
            ready += len(q.messages)
            unacked += q.unacked
        out += [recv, send, ready, unacked]
        out += totals.churn(conns, chans)
        return out

    # ------------------------------------------------------------------ JSON
    def idle_since(self, obj, d: dict) -> None:
        """RabbitMQ's ``idle_since`` (``2026-12-05T19:17:18.613+00:00``) when ``obj``'s counts have not
        changed since the sample before last; absent while it is active or without statistics."""
        t = self.idle.get(obj)
        if t is not None:
            d["idle_since"] = t

    def queue(self, q, d: dict, unacked: dict | None = None) -> dict:
        """Add a queue's statistics to its JSON ``d``; ``unacked``: :func:`unacked_entries` for a listing
        (else the channels are searched for this queue's)."""
        ready = d["messages_ready"]
        unacked_n = d["messages_unacknowledged"]
        d["memory"] = _QUEUE_BASE + (ready + unacked_n) * _ENTRY_SIZE
        if unacked is None:
            unacked = unacked_entries(self.broker, q) if unacked_n else {}
        message_bytes(q, unacked.get(q, ()), d)
        if not self.enabled:
            return d
        sample = self.samples.get(q)
        rates = sample[1] if sample is not None else _ZERO_Q
        counts = _queue_counts(q)
        if rates is _ZERO_Q:
            d["messages_details"] = d["messages_ready_details"] = d["messages_unacknowledged_details"] = \
                _ZERO_DETAILS
        else:
            r_ready, r_unacked = rates[-2], rates[-1]
            d["messages_details"] = {"rate": round(r_ready + r_unacked, 1)}
            d["messages_ready_details"] = _rate(r_ready)
            d["messages_unacknowledged_details"] = _rate(r_unacked)
        d["consumer_utilisation"] = d["consumer_capacity"] = self.util.get(q, 1.0) if q.consumers else 0
        self.idle_since(q, d)
        if any(counts):
            ms = {}
            if counts[0]:
                _group(ms, ("publish",), counts, _Q_INDEX, rates)
            if any(counts[1:]):
                _group(ms, _DELIVER_GROUP, counts, _Q_INDEX, rates)
                ms["deliver_get"] = sum(counts[_Q_INDEX[k]] for k in _DELIVER_GET)
                ms["deliver_get_details"] = _rate(round(sum(rates[_Q_INDEX[k]] for k in _DELIVER_GET), 1))
            d["message_stats"] = ms
        return d

    def exchange(self, ex, d: dict) -> dict:
        if not self.enabled:
            return d
        counts = _exchange_counts(ex)
        if counts[0] or counts[1]:
            sample = self.samples.get(ex)
            rates = sample[1] if sample is not None else _ZERO_X
            d["message_stats"] = {"publish_in": counts[0], "publish_in_details": _rate(rates[0]),
                                  "publish_out": counts[1], "publish_out_details": _rate(rates[1])}
        return d

    def channel_message_stats(self, counts, rates) -> dict | None:
        ms: dict = {}
        pub = [_CH_INDEX[k] for k in _PUBLISH_GROUP]
        if any(counts[i] for i in pub):
            _group(ms, _PUBLISH_GROUP, counts, _CH_INDEX, rates)
        if any(counts[_CH_INDEX[k]] for k in _DELIVER_GROUP):
            _group(ms, _DELIVER_GROUP, counts, _CH_INDEX, rates)
            ms["deliver_get"] = sum(counts[_CH_INDEX[k]] for k in _DELIVER_GET)
            ms["deliver_get_details"] = _rate(round(sum(rates[_CH_INDEX[k]] for k in _DELIVER_GET), 1))
        return ms

    def channel(self, ch, d: dict) -> dict:
        if not self.enabled:
            return d
        sample = self.samples.get(ch)
        rates = sample[1] if sample is not None else _ZERO_CH
        ms = self.channel_message_stats(channel_counts(ch), rates)
        if ms:
            d["message_stats"] = ms
        self.idle_since(ch, d)
        return d

    def connection(self, session, d: dict) -> dict:
        d["recv_oct"] = getattr(session, "recv_oct", 0)
        d["recv_cnt"] = getattr(session, "recv_cnt", 0)
        d["send_oct"] = getattr(session, "send_oct", 0)
        d["send_cnt"] = getattr(session, "send_cnt", 0)
        d["send_pend"] = 0
        if self.enabled:
            sample = self.samples.get(session)
            rates = sample[1] if sample is not None else _ZERO_CONN
            d["recv_oct_details"] = _rate(rates[0])
            d["send_oct_details"] = _rate(rates[1])
            self.idle_since(session, d)
        return d

    def _totals(self, d: dict, counts, rates, queue_totals: dict) -> None:
        n = len(CHANNEL_COUNTERS)
        if self.enabled:
            ms = self.channel_message_stats(counts[:n], rates[:n])
            d["message_stats"] = ms
        ready, unacked = counts[n + 2], counts[n + 3]
        queue_totals["messages"] = ready + unacked
        queue_totals["messages_ready"] = ready
        queue_totals["messages_unacknowledged"] = unacked
        if self.enabled:
            queue_totals["messages_details"] = _rate(round(rates[n + 2] + rates[n + 3], 1))
            queue_totals["messages_ready_details"] = _rate(rates[n + 2])
            queue_totals["messages_unacknowledged_details"] = _rate(rates[n + 3])

    def vhost(self, vh, d: dict) -> dict:
        counts = self.vhost_counts(vh)
        sample = self.vhost_samples.get(vh.name)
        rates = sample[1] if sample is not None else (0.0,) * len(counts)
        n = len(CHANNEL_COUNTERS)
        self._totals(d, counts, rates, d)
        if self.enabled and not d.get("message_stats"):
            d.pop("message_stats", None)
        d["recv_oct"] = counts[n]
        d["send_oct"] = counts[n + 1]
        if self.enabled:
            d["recv_oct_details"] = _rate(rates[n])
            d["send_oct_details"] = _rate(rates[n + 1])
        return d

    def overview(self, vhosts: list, d: dict) -> dict:
        """``message_stats`` and ``queue_totals`` of the overview over ``vhosts`` (the ones the user sees)."""
        counts = None
        rates = None
        for vh in vhosts:
            c = self.vhost_counts(vh)
            sample = self.vhost_samples.get(vh.name)
            r = sample[1] if sample is not None else (0.0,) * len(c)
            counts = c if counts is None else [a + b for a, b in zip(counts, c)]
            rates = list(r) if rates is None else [round(a + b, 1) for a, b in zip(rates, r)]
        qt: dict = {}
        d.pop("message_stats", None)
        if counts is None:
            if self.enabled:
                d["message_stats"] = {}
            qt = {"messages": 0, "messages_ready": 0, "messages_unacknowledged": 0}
        else:
            self._totals(d, counts, rates, qt)
        d["queue_totals"] = qt
        m = len(CHANNEL_COUNTERS) + 4
        churn: dict = {}
        for i, k in enumerate(CHURN_COUNTERS):
            churn[k] = counts[m + i] if counts is not None else 0
            if self.enabled:
                churn[k + "_details"] = _rate(rates[m + i] if counts is not None else 0.0)
        d["churn_rates"] = churn
        # RabbitMQ lists the ages (s) of the samples it keeps for charts; WarrenMQ keeps only the last
        # interval's rates, so there is no history to ask for (lengths_age)
        d["sample_retention_policies"] = {"global": [], "basic": [], "detailed": []}
        d["rates_mode"] = "basic" if self.enabled else "none"
        d["disable_stats"] = not self.enabled
        d["statistics_interval"] = int(self.interval * 1000)
        return d
