"""Access control as RabbitMQ's internal backend does it: permissions, topic permissions, refusals.

Theory of operation: a user has, per vhost, a :class:`Permission` (three regular
expressions, *configure*, *write* and *read*, matched with ``re.search`` against a
resource name as RabbitMQ matches them with ``re:run``; an empty pattern means
``^$``: nothing) and, per (vhost, exchange), optionally a :class:`TopicPermission`
(*write* and *read* patterns matched against routing keys on topic exchanges, with
``{username}`` and ``{vhost}`` replaced first).  Having a :class:`Permission` for a
vhost is what gives access to it (``connection.open``).  No topic permission for an
exchange means every routing key is allowed, as in RabbitMQ.

The broker (:mod:`.broker`) keeps them on its :class:`~.broker.User` objects and
persists them; :meth:`~.broker.Broker.check_resource` and
:meth:`~.broker.Broker.check_topic` raise the ``ACCESS_REFUSED`` channel errors
built here, with RabbitMQ's texts.  Which AMQP method needs which permission is the
AMQP adapter's business (``amqp/methods.py``), following RabbitMQ's table.  The
default exchange is checked under the name ``amq.default`` (RabbitMQ's
``rabbit_access_control`` does the same).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..protocol.errors import SoftError
from ..protocol.spec import ACCESS_REFUSED

CONFIGURE, WRITE, READ = "configure", "write", "read"

#: user tags RabbitMQ knows (other tags are kept and shown, and mean nothing)
KNOWN_TAGS = ("administrator", "monitoring", "policymaker", "management", "impersonator")


def compile_pattern(pattern: str) -> re.Pattern:
    """A permission pattern as RabbitMQ reads it ("" is "^$"); ValueError if it is not a regular expression."""
    if not isinstance(pattern, str):
        raise ValueError(f"permission pattern must be a string, not {type(pattern).__name__}")
    try:
        return re.compile(pattern or "^$")
    except re.error as e:
        raise ValueError(f"invalid regular expression '{pattern}': {e}") from None


@dataclass
class Permission:
    """Configure, write and read patterns of one user in one vhost."""
    configure: str
    write: str
    read: str
    _compiled: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        self._compiled = {CONFIGURE: compile_pattern(self.configure), WRITE: compile_pattern(self.write),
                          READ: compile_pattern(self.read)}

    def allows(self, perm: str, name: str) -> bool:
        return self._compiled[perm].search(name) is not None


@dataclass
class TopicPermission:
    """Write and read patterns for routing keys on one topic exchange (``{username}``, ``{vhost}`` expanded)."""
    exchange: str
    write: str
    read: str

    def __post_init__(self):
        compile_pattern(self.write)
        compile_pattern(self.read)

    def allows(self, perm: str, routing_key: str, username: str, vhost: str) -> bool:
        pattern = (self.write if perm == WRITE else self.read) or "^$"
        pattern = pattern.replace("{username}", username).replace("{vhost}", vhost)
        try:
            return re.search(pattern, routing_key) is not None
        except re.error:  # a username that breaks the pattern matches nothing
            return False


def resource_name(kind: str, name: str) -> str:
    """The name a resource is checked under: the default exchange is ``amq.default``."""
    return "amq.default" if kind == "exchange" and name == "" else name


def refused(kind: str, name: str, vhost: str, user: str) -> SoftError:
    """RabbitMQ's refusal: ``ACCESS_REFUSED - access to queue 'q' in vhost '/' refused for user 'u'``."""
    return SoftError(ACCESS_REFUSED, f"access to {kind} '{resource_name(kind, name)}' in vhost '{vhost}' refused "
                                     f"for user '{user}'")


def topic_refused(routing_key: str, exchange: str, vhost: str, user: str) -> SoftError:
    """RabbitMQ's refusal of a routing key by a topic permission."""
    return SoftError(ACCESS_REFUSED, f"access to topic '{routing_key}' in exchange '{exchange}' in vhost "
                                     f"'{vhost}' refused for user '{user}'")
