"""Sender-selected distribution: the ``CC`` and ``BCC`` headers, as RabbitMQ 3.10 implements them.

Theory of operation: a published message's ``CC`` and ``BCC`` headers, when
present, must be arrays (anything else closes the channel with
``406 PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,"CC",longstr}``);
their ``longstr`` elements become extra routing keys (other elements are
ignored).  The message is routed by its routing key and every extra key, which
only matters to exchanges that route by key (direct, topic, the default
exchange); fanout and headers exchanges route it once.  ``BCC`` is removed from
the headers before anything else sees the message (queues, returns, dead
letters); ``CC`` stays.  Such a message is a :class:`~.message.RoutedMessage`
whose ``extra_keys`` are the ``CC`` keys then the ``BCC`` keys.

Only publishes whose raw header bytes contain ``CC`` (so also ``BCC``) get
here: the session looks for those two bytes first (one substring search, and
only when the message has headers), so other messages are never decoded for
this feature.
"""
from __future__ import annotations

from ..protocol.codec import field_type_name
from ..protocol.properties import content_header
from ..protocol.spec import BasicProperties
from .message import Message, RoutedMessage

ROUTING_HEADERS = ("CC", "BCC")


def header_routes(headers) -> list:
    """The extra routing keys in ``headers`` (CC then BCC); ValueError with RabbitMQ's reason if malformed."""
    if not headers:
        return []
    keys = []
    for name in ROUTING_HEADERS:
        if name not in headers:
            continue
        v = headers[name]
        if not isinstance(v, list):
            raise ValueError(f'{{unacceptable_type_in_header,"{name}",{field_type_name(v)}}}')
        keys.extend(k for k in v if k.__class__ is str)
    return keys


def with_routing_headers(msg: Message) -> Message:
    """``msg`` with its CC/BCC keys as ``extra_keys`` and without its BCC header (``msg`` itself if it
    has neither).  Raises ValueError (see :func:`header_routes`)."""
    headers = msg.properties.headers
    if not headers or ("CC" not in headers and "BCC" not in headers):
        return msg
    keys = header_routes(headers)
    header = msg.header
    if "BCC" in headers:
        props = BasicProperties.decode(header, 12)  # a private copy: msg.properties may be shared
        del props.headers["BCC"]
        header = content_header(props, len(msg.body))
    if not keys:
        return msg if header is msg.header else Message(msg.exchange, msg.routing_key, header, msg.body, msg.ex_rk)
    new = RoutedMessage(msg.exchange, msg.routing_key, header, msg.body, msg.ex_rk)
    new.extra_keys = tuple(keys)
    return new
