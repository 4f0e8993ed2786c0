"""Channels and consumers as RabbitMQ 3.10's management JSON.

Theory of operation: like :mod:`.views`, one function per kind of object turns
a live domain object into the dict RabbitMQ returns for it: an AMQP channel
(:func:`channel`, named ``<connection name> (<number>)`` as RabbitMQ names
it) and a consumer (:func:`consumer`, with the ``channel_details`` and
``queue`` RabbitMQ nests in it).  Values are read from what the domain already
keeps (prefetch, unacked counts, confirm and tx state); ``message_stats`` is
added by :class:`.stats.Stats`.  Nothing here changes the domain.
"""
from __future__ import annotations

from .views import connection_name


def channel_name(session, number: int) -> str:
    return f"{connection_name(session)} ({number})"


def channel_details(ch, node: str) -> dict:
    """The ``channel_details`` RabbitMQ nests in a consumer."""
    session = ch.owner
    peer = session.peer or (None, None)
    user = session.user
    return {"connection_name": connection_name(session), "name": channel_name(session, ch.number), "node": node,
            "number": ch.number, "peer_host": peer[0], "peer_port": peer[1],
            "user": user.name if user is not None else None}


def consumer(c, node: str) -> dict:
    q = c.queue
    if q.single_active:
        active = q.active_consumer is c
        status = "single_active" if active else "waiting"
    else:
        active, status = True, "up"
    return {
        "ack_required": not c.no_ack,
        "active": active,
        "activity_status": status,
        "arguments": c.arguments or {},
        "channel_details": channel_details(c.channel, node),
        "consumer_tag": c.tag,
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch,
        "queue": {"name": q.name, "vhost": q.vhost.name},
    }


def channel(ch, node: str) -> dict:
    session = ch.owner
    peer = session.peer or (None, None)
    user = session.user
    confirms = ch.confirms
    tx = ch.tx
    uncommitted = acks_uncommitted = 0
    if tx is not None:
        for op in tx.ops:
            if op[0] == "publish":
                uncommitted += 1
            else:
                acks_uncommitted += 1
    return {
        "acks_uncommitted": acks_uncommitted,
        "confirm": confirms is not None,
        "connection_details": {"name": connection_name(session), "peer_host": peer[0], "peer_port": peer[1]},
        "consumer_count": len(ch.consumers),
        "global_prefetch_count": ch.global_prefetch,
        "messages_unacknowledged": len(ch.unacked),
        "messages_uncommitted": uncommitted,
        "messages_unconfirmed": confirms.seq - confirms.acked if confirms is not None else 0,
        "name": channel_name(session, ch.number),
        "node": node,
        "number": ch.number,
        "pending_raft_commands": 0,
        "prefetch_count": ch.prefetch_count,
        "state": "closing" if ch.closed else "running",
        "transactional": tx is not None,
        "user": user.name if user is not None else None,
        "user_who_performed_action": user.name if user is not None else None,
        "vhost": ch.vhost.name,
    }
