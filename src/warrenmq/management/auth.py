"""HTTP Basic authentication and the user tags that gate the management API.

Theory of operation: every request carries ``Authorization: Basic ...`` with
a broker user's name and password, checked by ``Broker.authenticate`` (the
AMQP login's check, loopback-only users included: the HTTP peer's address is
passed).  Missing or wrong credentials answer 401 with RabbitMQ's
``WWW-Authenticate: Basic realm="RabbitMQ Management"`` (missing: an empty
body; wrong: ``{"error": "not_authorized", "reason": "Login failed"}``); a
user that authenticates but has none of the management tags answers 401
``{"error": "not_authorized", "reason": "Not management user"}``, as RabbitMQ
3.10 does (checked against it).  Each refusal is logged as RabbitMQ logs it:
``HTTP access denied: user 'u' - invalid credentials`` (or ``- Not management user``).

The tags form RabbitMQ's ladder: ``management`` < ``policymaker`` and
``monitoring`` < ``administrator``.  A route asks for a level with
:func:`require`; :func:`sees_all` says whether a user sees every vhost's
objects and every connection (monitoring and administrator) or only what is in
the vhosts it may access and its own connections (management, policymaker).
"""
from __future__ import annotations

import base64
import binascii
import logging

from .errors import not_authorised

log = logging.getLogger("warrenmq.management")

MANAGEMENT = "management"
POLICYMAKER = "policymaker"
MONITORING = "monitoring"
ADMINISTRATOR = "administrator"

#: the tags that grant each level (RabbitMQ's rabbit_mgmt_util:is_authorized_* checks)
LEVELS = {
    MANAGEMENT: frozenset((MANAGEMENT, POLICYMAKER, MONITORING, ADMINISTRATOR)),
    POLICYMAKER: frozenset((POLICYMAKER, ADMINISTRATOR)),
    MONITORING: frozenset((MONITORING, ADMINISTRATOR)),
    ADMINISTRATOR: frozenset((ADMINISTRATOR,)),
}

#: the reason RabbitMQ gives a user without the level a route needs
REFUSED = {
    MANAGEMENT: "Not management user",
    POLICYMAKER: "Not policymaker user",
    MONITORING: "Not monitor user",
    ADMINISTRATOR: "Not administrator user",
}


def credentials(header: str | None):
    """``(username, password)`` from an ``Authorization`` header, or ``None``."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    name, sep, password = decoded.partition(":")
    return (name, password) if sep else None


def authenticate(broker, header: str | None, peer):
    """The broker user for the request's credentials, with at least the management level."""
    creds = credentials(header)
    if creds is None:
        raise not_authorised("Not_Authorized", challenge=True, body=False)
    user = broker.authenticate(creds, peer, "http")
    if user is None:
        # RabbitMQ's words: "user 'u' - invalid credentials"
        log.warning("HTTP access denied: %s", broker.login_refusal(creds, peer), extra={"user": creds[0]})
        raise not_authorised("Login failed", challenge=True)
    require(user, MANAGEMENT)
    return user


def has_level(user, level: str) -> bool:
    return not LEVELS[level].isdisjoint(user.tags)


def require(user, level: str) -> None:
    if not has_level(user, level):
        log.warning("HTTP access denied: user '%s' - %s", user.name, REFUSED[level], extra={"user": user.name})
        raise not_authorised(REFUSED[level])


def sees_all(user) -> bool:
    """Monitoring and administrator users see every vhost's objects and every connection."""
    return has_level(user, MONITORING)


def visible_vhost(broker, user, vhost: str) -> bool:
    return sees_all(user) or broker.user_can_access(user, vhost)
