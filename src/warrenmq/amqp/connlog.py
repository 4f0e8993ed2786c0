"""The log lines of a connection's life, in RabbitMQ 3.10's words (docs/logging.md).

Theory of operation: a connection logs when it is accepted, when its client
names itself (``connection_name``), when its user is let into a vhost, when a
login is refused (and why), when the broker closes it or one of its channels
with an error, when the broker forces it closed (a deleted user or vhost, the
management API, shutdown) and when it is gone (``closing AMQP connection``: a
warning with the reason when the client vanished without closing).  The texts
are RabbitMQ's, probed on a 3.10 node, so what operators grep for in
RabbitMQ's log finds the same lines here; each line carries the connection's
fields as ``extra`` (``connection`` ``<0.N.0>``, N being WarrenMQ's connection
number, ``connection_name``, ``peer_host``, ``peer_port``, ``user``,
``vhost``, ``client_name``), which :mod:`warrenmq.logs`' JSON format writes.

These run once per connection or per error, never per message.
"""
from __future__ import annotations

import itertools
import logging

from ..protocol.spec import REPLY_NAMES

log = logging.getLogger("warrenmq.connection")

_numbers = itertools.count(1)


def next_id() -> str:
    """A new connection's id in the shape of RabbitMQ's (an Erlang pid): ``<0.N.0>``."""
    return f"<0.{next(_numbers)}.0>"


def _addr(address) -> str:
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def connection_name(session) -> str:
    """``peer_host:peer_port -> host:port`` (RabbitMQ's connection name)."""
    peer, local = session.peer, getattr(session, "local", None)
    if peer and local:
        return f"{_addr(peer)} -> {_addr(local)}"
    return _addr(peer) if peer else "embedded"


def client_name(session):
    """The ``connection_name`` the client gave in its client properties, or None."""
    name = session.proto.client_properties.get("connection_name")
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return name if isinstance(name, str) and name else None


def _label(session, with_client_name: bool = True) -> str:
    name = connection_name(session)
    given = client_name(session) if with_client_name else None
    return f"{name} - {given}" if given else name


def _who(session) -> str:
    """``, vhost: '/', user: 'guest'`` as far as they are known (RabbitMQ's 'none' for a refused vhost)."""
    user = session.user
    if user is None:
        return ""
    vhost = session.vhost.name if session.vhost is not None else "none"
    return f", vhost: '{vhost}', user: '{user.name}'"


def fields(session) -> dict:
    """The connection's fields for the JSON log (``extra``)."""
    peer = session.peer or (None, None)
    out = {"connection": session.conn_id, "connection_name": connection_name(session),
           "peer_host": peer[0], "peer_port": peer[1]}
    if session.user is not None:
        out["user"] = session.user.name
    if session.vhost is not None:
        out["vhost"] = session.vhost.name
    given = client_name(session)
    if given:
        out["client_name"] = given
    return out


def _state(session) -> str:
    if session.vhost is not None:
        return "running"
    return "opening" if session.user is not None else "starting"


def _exception(code: int) -> str:
    return REPLY_NAMES.get(code, "internal_error").lower()


def _text(reply_text: str) -> str:
    """The reason without the ``NAME - `` of a reply text."""
    name, sep, rest = reply_text.partition(" - ")
    return rest if sep and name.isupper() else reply_text


def accepted(session) -> None:
    log.info("accepting AMQP connection %s (%s)", session.conn_id, connection_name(session),
             extra=fields(session))


def client_named(session) -> None:
    """After start-ok: the client-provided name, if it gave one."""
    given = client_name(session)
    if given:
        log.info("connection %s (%s) has a client-provided name: %s", session.conn_id,
                 connection_name(session), given, extra=fields(session))


def authenticated(session) -> None:
    log.info("connection %s (%s): user '%s' authenticated and granted access to vhost '%s'", session.conn_id,
             _label(session), session.user.name, session.vhost.name, extra=fields(session))


def login_refused(session, mechanism: str, reason: str) -> None:
    """A refused login: ``reason`` as RabbitMQ words it (``user 'u' - invalid credentials``)."""
    log.error("Error on AMQP connection %s (%s, state: starting):\n%s login refused: %s", session.conn_id,
              _label(session), mechanism, reason, extra=fields(session))


def connection_error(session, code: int, reply_text: str, method_name: str | None, channel: int = 0) -> None:
    """The broker closes the connection with an error (``connection.close`` with ``code``)."""
    state = _state(session)
    if state == "running":
        who = _who(session)
    else:  # RabbitMQ names the user only, before the vhost is open
        who = f", user: '{session.user.name}'" if session.user is not None else ""
    head = f"Error on AMQP connection {session.conn_id} ({_label(session)}{who}, state: {state})"
    if state == "running":
        op = method_name or "none"
        log.error('%s, channel %d:\n operation %s caused a connection exception %s: "%s"', head, channel, op,
                  _exception(code), _text(reply_text), extra=fields(session))
    else:
        log.error("%s:\n%s", head, _text(reply_text), extra=fields(session))


def channel_error(session, channel: int, code: int, reply_text: str, method_name: str) -> None:
    """The broker closes a channel with an error (a soft error)."""
    log.error("Channel error on connection %s (%s%s), channel %d:\noperation %s caused a channel exception "
              "%s: %s", session.conn_id, connection_name(session), _who(session), channel, method_name,
              _exception(code), _text(reply_text), extra=fields(session))


def forced(session, code: int, reason: str) -> None:
    """The broker forces the connection closed (``reason``, with or without the reply-code name)."""
    connection_error(session, code, reason, None)
    log.info('Closing connection %s because "%s"', session.conn_id, _text(reason), extra=fields(session))


def closed(session, reason: str | None = None) -> None:
    """The connection is gone: info after a close handshake, a warning with ``reason`` otherwise."""
    head = f"closing AMQP connection {session.conn_id} ({_label(session)}{_who(session)})"
    if reason is None:
        log.info("%s", head, extra=fields(session))
    else:
        log.warning("%s:\n%s", head, reason, extra=fields(session))
