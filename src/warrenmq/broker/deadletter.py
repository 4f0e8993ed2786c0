"""Dead lettering, as RabbitMQ 3.10 does it (``rabbit_dead_letter``, at-most-once).

Theory of operation: a queue with a dead-letter exchange (``Queue.dlx``, from
``x-dead-letter-exchange``) republishes the messages it loses to that exchange
instead of dropping them, with a reason:

* ``rejected``: basic.reject/basic.nack with requeue=false (``broker.channel.discard``);
* ``expired``: the TTL ran out at the head of the queue (``Queue.expired``);
* ``maxlen``: dropped from the head by ``x-overflow`` drop-head, or refused by
  reject-publish-dlx (``Queue._drop_head``, ``Queue._admit``);
* ``delivery_limit``: returned more than ``x-delivery-limit`` times (quorum queues).

A dead-lettered message is a *new* message: its properties are decoded and
re-encoded (the codec keeps integer widths), with

* the ``expiration`` property removed (kept as ``original-expiration`` in the
  death record);
* the ``x-death`` header updated: an array of tables, most recent first, one per
  (queue, reason) with ``count`` (long), ``reason``, ``queue``, ``time``
  (timestamp, seconds), ``exchange``, ``routing-keys`` (the first routing key,
  then the CC and BCC ones); a second death in the same queue for the same
  reason increments ``count`` and moves that table to the front (its other
  fields stay from the first time);
* on the first death only, ``x-first-death-reason``, ``x-first-death-queue``
  and ``x-first-death-exchange``.  (RabbitMQ 3.10 has no ``x-last-death-*``.)

RabbitMQ sorts a header table by key whenever it sets a value, so the headers
of a dead-lettered message come out sorted, and so does every ``x-death``
table except the very first one written (count, reason, queue, time,
exchange, routing-keys, original-expiration: RabbitMQ's own order).

The new message is published (``VHost.publish``, the one publish path: persisted when it is
persistent and a durable queue takes it) to the dead-letter exchange with the
dead-letter routing key (``x-dead-letter-routing-key``; the ``CC`` header is
then removed) or else with the message's own routing keys (CC and BCC
included), through ordinary routing (alternate exchanges and
exchange-to-exchange bindings apply).  A missing exchange drops the message.

Cycles: unless the reason is ``rejected``, a queue the message already died in
is skipped if no death since then (that one included) was a rejection, so a
message that expires round a loop of queues is dropped when it comes back
rather than circulating for ever.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

from ..protocol.codec import INT_TYPES
from ..protocol.properties import content_header
from ..protocol.spec import BasicProperties
from .message import CountedMessage, Message, RoutedMessage
from .sender_selected import header_routes

_Long = INT_TYPES["l"]


def _key(item) -> bytes:
    return item[0].encode("utf-8", "surrogateescape")


def sorted_table(table: dict) -> dict:
    """``table`` with its keys in RabbitMQ's order (Erlang's ``lists:keysort`` on the key bytes)."""
    return dict(sorted(table.items(), key=_key))


def dead_letter(queue, messages, reason: str) -> None:
    """Republish ``messages`` (which ``queue`` lost for ``reason``) to the queue's dead-letter exchange."""
    dlx = queue.dlx
    if dlx is None:
        return
    vhost = queue.vhost
    ex = vhost.exchanges.get(dlx)
    if ex is None:  # RabbitMQ drops the message (and logs)
        return
    for msg in messages:
        if msg.__class__ is CountedMessage:
            msg = msg.original
        dl = make_dead_letter(msg, reason, queue.name, dlx, queue.dlrk)
        keep = None
        if reason != "rejected":
            deaths = dl.properties.headers["x-death"]
            keep = lambda q, deaths=deaths: not is_cycle(q.name, deaths)  # noqa: E731
        vhost.publish(ex, dl, keep)  # persisted as any publish; nobody waits for a confirm


def make_dead_letter(msg, reason: str, queue_name: str, dlx: str, dlrk) -> Message:
    """The message ``msg`` becomes when ``queue_name`` dead-letters it to ``dlx``."""
    props = BasicProperties.decode(msg.header, 12)  # a private copy
    headers = dict(props.headers) if props.headers else {}
    info = {
        "reason": reason,
        "queue": queue_name,
        "time": datetime.fromtimestamp(int(time.time()), timezone.utc),
        "exchange": msg.exchange,
        "routing-keys": [msg.routing_key] + header_routes_lenient(headers),
    }
    if props.expiration is not None:
        info["original-expiration"] = props.expiration
    headers = update_x_death(headers, info)
    if dlrk is not None:
        headers.pop("CC", None)
        routing_key, extra = dlrk, None
    else:
        routing_key, extra = msg.routing_key, msg.extra_keys
    props.headers = headers
    props.expiration = None
    header = content_header(props, len(msg.body))
    if extra:
        new = RoutedMessage(dlx, routing_key, header, msg.body)
        new.extra_keys = extra
    else:
        new = Message(dlx, routing_key, header, msg.body)
    new._props = props
    return new


def header_routes_lenient(headers) -> list:
    try:
        return header_routes(headers)
    except ValueError:  # cannot happen for a published message: it was checked on publish
        return []


def _text(v):
    """A table value as Erlang compares binaries: longstr and byte arrays alike."""
    return v.encode("utf-8", "surrogateescape") if v.__class__ is str else v


def _queue_reason(table) -> tuple:
    return _text(table.get("queue")), _text(table.get("reason"))


def update_x_death(headers: dict, info: dict) -> dict:
    """``headers`` with the death ``info`` recorded in ``x-death`` as RabbitMQ 3.10 records it."""
    if "x-death" not in headers:
        headers["x-first-death-reason"] = info["reason"]
        headers["x-first-death-queue"] = info["queue"]
        headers["x-first-death-exchange"] = info["exchange"]
        headers["x-death"] = [{"count": _Long(1), **info}]
        return sorted_table(headers)
    deaths = headers["x-death"]
    if not isinstance(deaths, list):  # a client re-published it with x-death mangled: RabbitMQ starts afresh
        headers["x-death"] = [{"count": _Long(1), **info}]
        return sorted_table(headers)
    key = (_text(info["queue"]), _text(info["reason"]))
    match, others = None, []
    for t in _group_by_queue_and_reason(deaths):
        if match is None and isinstance(t, dict) and _queue_reason(t) == key:
            match = t
        else:
            others.append(t)
    if match is None:
        entry = {"count": _Long(1), **info}
    else:
        entry = dict(match)
        n = entry.get("count")
        if n is None:
            entry = {"count": _Long(1), **entry}
        else:
            entry["count"] = _Long(n + 1 if isinstance(n, int) and not isinstance(n, bool) else 1)
    headers["x-death"] = [sorted_table(entry)] + others
    return sorted_table(headers)


def _group_by_queue_and_reason(tables: list) -> list:
    """Merge x-death tables for the same (queue, reason), as RabbitMQ does for pre-3.x headers: the first
    of each group is kept, with the group's size as its count if it has none."""
    if len(tables) <= 1:
        return list(tables)
    seen = set()
    out = []
    for t in tables:
        if not isinstance(t, dict):
            out.append(t)
            continue
        key = _queue_reason(t)
        if key in seen:
            continue
        seen.add(key)
        if "count" not in t:
            n = sum(1 for x in tables if isinstance(x, dict) and _queue_reason(x) == key)
            t = {"count": _Long(n), **t}
        out.append(t)
    return out


def is_cycle(queue_name: str, deaths: list) -> bool:
    """Whether dead-lettering to ``queue_name`` would close a loop with no rejection in it."""
    for i, d in enumerate(deaths):
        # (a str equals only a longstr: RabbitMQ matches {longstr, Name} exactly)
        if isinstance(d, dict) and d.get("queue") == queue_name:
            # anything but a table in the way means a client touched the header: not "fully automatic"
            return all(isinstance(x, dict) and x.get("reason") != "rejected" for x in deaths[:i + 1])
    return False
