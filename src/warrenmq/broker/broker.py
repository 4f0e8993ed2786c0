"""The broker: vhosts, users, sessions and global flow control.

Theory of operation: :class:`Broker` is the root of the domain model.  It owns
the vhosts and users, creates one :class:`~.session.Session` per connection
(the transport calls :meth:`Broker.new_session`), authenticates logins, and
implements RabbitMQ's memory alarm: while the bytes of queued message bodies
exceed the high watermark, connections that publish are blocked
(``connection.blocked`` to clients that support it, and the transport stops
reading from them) until the queues drain.
"""
from __future__ import annotations

import hmac
import platform
from dataclasses import dataclass, field

from .. import __version__
from ..config import BrokerConfig, physical_memory
from ..protocol.connection import ServerConnection
from .flow import MemoryMonitor
from .session import Session
from .timers import Timers
from .vhost import VHost

#: the RabbitMQ release whose behaviour WarrenMQ reproduces (and reports as ``version``)
RABBITMQ_COMPAT_VERSION = "3.10.8"

#: only what works is advertised
CAPABILITIES = {
    "publisher_confirms": True,
    "exchange_exchange_bindings": True,
    "basic.nack": True,
    "consumer_cancel_notify": True,
    "connection.blocked": True,
    "authentication_failure_close": True,
    "per_consumer_qos": True,
}


@dataclass
class User:
    name: str
    password: str
    tags: list = field(default_factory=list)
    vhosts: set = field(default_factory=set)


class Broker:
    def __init__(self, config: BrokerConfig | None = None):
        self.config = config or BrokerConfig()
        self.vhosts: dict[str, VHost] = {}
        self.users: dict[str, User] = {}
        self.sessions: set[Session] = set()
        self.messages_published = 0
        self.memory = MemoryMonitor(self.config.memory_high_watermark or int(physical_memory() * 0.4))
        self.memory.listeners.append(self._on_memory_alarm)
        self.timers = Timers()  # BrokerApp plugs its event loop in (timers.loop_call_later)
        self.add_vhost(self.config.default_vhost)
        self.add_user(self.config.default_user, self.config.default_pass, tags=["administrator"],
                      vhosts={self.config.default_vhost})

    # ------------------------------------------------------------ definitions
    def add_vhost(self, name: str) -> VHost:
        vh = self.vhosts.get(name)
        if vh is None:
            vh = self.vhosts[name] = VHost(name, self.memory)
            vh.timers = self.timers
        return vh

    def add_user(self, name: str, password: str, tags=None, vhosts=None) -> User:
        user = User(name, password, list(tags or []), set(vhosts or ()))
        self.users[name] = user
        return user

    def server_properties(self) -> dict:
        return {
            # Clients switch behaviour on product/version (kombu and Celery choose their prefetch
            # semantics this way), so WarrenMQ presents itself as the RabbitMQ version it emulates
            # and names itself in platform/information. See docs/compatibility.md.
            "product": "RabbitMQ",
            "version": RABBITMQ_COMPAT_VERSION,
            "platform": f"WarrenMQ {__version__} on Python {platform.python_version()}",
            "copyright": "Copyright (c) the WarrenMQ developers",
            "information": f"WarrenMQ {__version__}, an AMQP 0-9-1 broker in Python compatible with RabbitMQ "
                           f"{RABBITMQ_COMPAT_VERSION}. Licensed under the MIT License.",
            "cluster_name": f"warrenmq@{platform.node()}",
            "capabilities": dict(CAPABILITIES),
        }

    # -------------------------------------------------------------- sessions
    def new_protocol(self) -> ServerConnection:
        c = self.config
        return ServerConnection(self.server_properties(), "PLAIN AMQPLAIN", c.channel_max, c.frame_max,
                                c.heartbeat)

    def new_session(self, proto: ServerConnection, peer=None) -> Session:
        return Session(self, proto, peer)

    def session_opened(self, session: Session) -> None:
        self.sessions.add(session)

    def session_closed(self, session: Session) -> None:
        self.sessions.discard(session)

    def _on_memory_alarm(self, alarm: bool) -> None:
        for s in list(self.sessions):
            s.set_blocked(alarm)

    def authenticate(self, creds, peer):
        """The :class:`User` for ``(username, password)``, or ``None``."""
        if creds is None:
            return None
        name, password = creds
        user = self.users.get(name)
        if user is None or not hmac.compare_digest(user.password.encode(), password.encode()):
            return None
        if name in self.config.loopback_users and peer is not None and not _is_loopback(peer[0]):
            return None
        return user

    def user_can_access(self, user: User, vhost: str) -> bool:
        return vhost in user.vhosts

    def discard(self, entries) -> None:
        """Messages rejected without requeue (dead lettering hooks in here)."""
        for e in entries:
            e.queue.memory.release(len(e.message.body))

    # ----------------------------------------------------------------- stats
    def queued_bytes(self) -> int:
        return sum(len(e.message.body) for vh in self.vhosts.values() for q in vh.queues.values()
                   for e in q.messages)


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")
