"""Vhost and user limits, as RabbitMQ's ``rabbitmqctl set_vhost_limits`` / ``set_user_limits``.

Theory of operation: :class:`Limits` holds, per vhost, ``max-connections`` and
``max-queues``, and per user, ``max-connections`` and ``max-channels``; a
negative value (or no value) means no limit, 0 refuses every connection,
queue or channel (RabbitMQ's meaning).  It also counts the open connections
per vhost and per user (the session tells it when a connection opens and
closes), so a check is a dict lookup and a comparison; channels per user are
counted only when that user has a ``max-channels`` limit (summing the
channels of the user's connections), since channel opens are frequent and
the limit rare.  The queue limit lives on the :class:`~.vhost.VHost`
(``max_queues``), which checks it where a queue is created.

The checks raise :class:`~warrenmq.protocol.errors.HardError` /
``SoftError`` with RabbitMQ 3.10's codes and texts (probed on the reference
broker, see docs/limits.md).  Limits are durable definitions: the broker
writes them through ``defs.limits_set`` and reads them back at start.
"""
from __future__ import annotations

from ..protocol.errors import HardError
from ..protocol.spec import NOT_ALLOWED

VHOST_LIMITS = ("max-connections", "max-queues")
USER_LIMITS = ("max-connections", "max-channels")


def validate(kind: str, limits: dict) -> dict:
    """``limits`` checked (known keys, integer values); ValueError otherwise."""
    known = VHOST_LIMITS if kind == "vhost" else USER_LIMITS
    out = {}
    for key, value in limits.items():
        if key not in known:
            raise ValueError(f"unrecognised {kind} limit '{key}' (valid: {', '.join(known)})")
        if value.__class__ is not int:
            raise ValueError(f"{kind} limit '{key}' must be an integer, got {value!r}")
        out[key] = value
    return out


class Limits:
    def __init__(self):
        self.vhost: dict[str, dict] = {}  # vhost name -> {limit: value}
        self.user: dict[str, dict] = {}  # user name -> {limit: value}
        self.vhost_connections: dict[str, int] = {}
        self.user_connections: dict[str, int] = {}

    # ------------------------------------------------------------ counting
    def connection_opened(self, vhost: str, user: str) -> None:
        self.vhost_connections[vhost] = self.vhost_connections.get(vhost, 0) + 1
        self.user_connections[user] = self.user_connections.get(user, 0) + 1

    def connection_closed(self, vhost: str, user: str) -> None:
        for counts, key in ((self.vhost_connections, vhost), (self.user_connections, user)):
            n = counts.get(key, 0) - 1
            if n > 0:
                counts[key] = n
            else:
                counts.pop(key, None)

    # ------------------------------------------------------------ checks
    def check_connection(self, vhost: str, user: str) -> None:
        """Before connection.open-ok: the vhost's and the user's max-connections (RabbitMQ's order)."""
        limit = self.vhost.get(vhost, {}).get("max-connections", -1)
        if limit >= 0 and self.vhost_connections.get(vhost, 0) >= limit:
            raise HardError(NOT_ALLOWED, f"access to vhost '{vhost}' refused for user '{user}': "
                            f"connection limit ({limit}) is reached")
        limit = self.user.get(user, {}).get("max-connections", -1)
        if limit >= 0 and self.user_connections.get(user, 0) >= limit:
            raise HardError(NOT_ALLOWED, f"connection refused for user '{user}': "
                            f"user connection limit ({limit}) is reached")

    def max_channels(self, user: str) -> int:
        """The user's max-channels, or -1."""
        limits = self.user.get(user)
        return limits.get("max-channels", -1) if limits else -1

    @staticmethod
    def channel_limit_error(user: str, limit: int) -> HardError:
        return HardError(NOT_ALLOWED, f"number of channels opened for user '{user}' has reached the "
                         f"maximum allowed user limit of ({limit})")
