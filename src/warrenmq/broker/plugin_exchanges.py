"""The exchange types of two RabbitMQ plugins: ``x-consistent-hash`` and ``x-delayed-message``.

Theory of operation: both are :class:`~.exchanges.Exchange` subclasses
registered in ``EXCHANGE_TYPES`` when this module is imported (the vhost
imports it), so they behave as if ``rabbitmq_consistent_hash_exchange`` and
``rabbitmq_delayed_message_exchange`` were enabled.  Nothing here runs for
messages that go through other exchange types.

Consistent hash (the plugin shipped with RabbitMQ 3.10): every binding's key is
a weight, a positive integer; a binding of weight *w* owns *w* consecutive
buckets, in binding order (removing a binding renumbers the buckets after it).
A message's routing key (or the ``hash-header`` header, or the ``hash-property``
property: ``message_id``, ``correlation_id`` or ``timestamp``) is hashed and the
bucket chosen with jump consistent hashing, as the plugin does, so each
destination gets a share of messages proportional to its weight and adding a
binding moves only the messages that now belong to it.  The hash function
differs (the plugin seeds Erlang's ``rand`` with ``erlang:phash2``; this uses
BLAKE2b and Lamping and Veach's generator), so *which* queue a given key lands
on differs from RabbitMQ; the distribution and stability properties do not.
A message without the header or property hashes as one fixed value (all such
messages go to one bucket), as in the plugin.

Delayed message (the plugin's 3.10-compatible releases): the exchange routes as
its ``x-delayed-type`` would (an inner exchange of that type holds the bindings'
routing structures).  A message whose ``x-delay`` header is an integer (or a
numeric string, or a float, truncated) in 1..2^32-1 ms is held instead: it
routes nowhere *now* (so a mandatory publish gets ``basic.return`` at once and a
confirm comes at once, as with the plugin, which documents that mandatory is
not supported) and is routed through the exchange after the delay, with its
``x-delay`` header replaced by the negated delay (a signed int), exactly as the
plugin re-publishes it.  Held messages are kept in memory, one timer per
exchange for the earliest one; they are dropped if the exchange is deleted.
"""
from __future__ import annotations

import hashlib
import heapq
import re
from bisect import bisect_right
from itertools import count
from time import monotonic

from ..protocol.codec import field_type_name
from ..protocol.errors import SoftError
from ..protocol.properties import HI_HEADERS
from ..protocol.spec import PRECONDITION_FAILED
from .exchanges import EXCHANGE_TYPES, Exchange, exchange_class
from .message import Message
from .timers import Deadline

_ERLANG_INT = re.compile(r"[+-]?[0-9]+\Z")
_MASK64 = (1 << 64) - 1


# ------------------------------------------------------------------- consistent hash
def jump_consistent_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: a bucket in ``range(buckets)`` for a 64-bit ``key``."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & _MASK64
        j = int((b + 1) * (2147483648.0 / ((key >> 33) + 1)))
    return b


def _hash64(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "little")


_UNDEFINED = b"\x00undefined"  # what a missing header or property hashes as (one fixed bucket)
_HASH_PROPERTIES = ("correlation_id", "message_id", "timestamp")


def _erlang_binary(s: str) -> str:
    """How Erlang's ``~p`` prints a binary (RabbitMQ's binding key error text), e.g. ``<<"abc">>``."""
    raw = s.encode("utf-8", "surrogateescape")
    if not raw:
        return "<<>>"
    escapes = {0x0A: b"\\n", 0x0D: b"\\r", 0x09: b"\\t", 0x0B: b"\\v", 0x08: b"\\b", 0x0C: b"\\f",
               0x1B: b"\\e", 0x22: b'\\"', 0x5C: b"\\\\"}
    if all(32 <= c <= 126 or c >= 160 or c in escapes for c in raw):  # printable as latin-1 text
        body = b"".join(escapes.get(c) or bytes((c,)) for c in raw)
        return '<<"' + body.decode("utf-8", "surrogateescape") + '">>'
    return "<<" + ",".join(str(c) for c in raw) + ">>"


class ConsistentHashExchange(Exchange):
    TYPE = "x-consistent-hash"
    __slots__ = ("ring", "ends", "dests", "hash_header", "hash_property")

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.ring: list = []  # [(destination, key, weight)] in binding order
        # binding i owns buckets ends[i-1] .. ends[i]-1 (so a weight costs no memory)
        self.ends: list = []
        self.dests: list = []
        args = self.arguments
        header, prop = args.get("hash-header"), args.get("hash-property")
        self.hash_header = header if isinstance(header, str) else None
        self.hash_property = prop if isinstance(prop, str) and header is None else None

    @classmethod
    def validate(cls, vhost, name: str, arguments: dict) -> None:
        header, prop = arguments.get("hash-header"), arguments.get("hash-property")
        if isinstance(prop, str):
            if header is not None:
                raise SoftError(PRECONDITION_FAILED, "hash-header and hash-property are mutually exclusive")
            if prop not in _HASH_PROPERTIES:
                raise SoftError(PRECONDITION_FAILED, f"Unsupported property: {prop}")

    def validate_binding(self, key: str) -> None:
        if not _ERLANG_INT.match(key):
            raise SoftError(PRECONDITION_FAILED, f"The binding key must be an integer: {_erlang_binary(key)}")
        if int(key) < 1:
            raise SoftError(PRECONDITION_FAILED, "The binding key must be greater than 0")

    def bind(self, dest, key: str, args) -> bool:
        self.validate_binding(key)
        return super().bind(dest, key, args)

    def _add(self, dest, key, args):
        self.ring.append((dest, key, int(key)))
        self._rebuild()

    def _remove(self, dest, key, args):
        for i, (d, k, _) in enumerate(self.ring):
            if d is dest and k == key:
                del self.ring[i]
                break
        self._rebuild()

    def _rebuild(self) -> None:
        ends, total = [], 0
        for _, _, weight in self.ring:
            total += weight
            ends.append(total)
        self.ends = ends
        self.dests = [d for d, _, _ in self.ring]

    def _hash_input(self, msg) -> bytes:
        if self.hash_header is not None:
            headers = msg.properties.headers
            if not headers or self.hash_header not in headers:
                return _UNDEFINED
            v = headers[self.hash_header]
            if isinstance(v, str):
                raw = v.encode("utf-8", "surrogateescape")
            elif isinstance(v, (bytes, bytearray)):
                raw = bytes(v)
            else:
                raw = repr(v).encode()
            return field_type_name(v).encode() + b"\x00" + raw  # the type counts, as in {Type, Value}
        if self.hash_property is not None:
            v = getattr(msg.properties, self.hash_property)
            if v is None:
                return _UNDEFINED
            return str(v).encode("utf-8", "surrogateescape")
        return msg.routing_key.encode("utf-8", "surrogateescape")

    def route(self, msg) -> tuple:
        dests = self.dests
        if not dests:
            return ()
        if len(dests) == 1:
            return (dests[0],)
        ends = self.ends
        bucket = jump_consistent_hash(_hash64(self._hash_input(msg)), ends[-1])
        return (dests[bisect_right(ends, bucket)],)


# -------------------------------------------------------------------- delayed message
#: the longest delay the plugin accepts (an Erlang timer's maximum, in ms); longer ones are not delayed
MAX_DELAY = 4294967295


def message_delay(msg) -> int | None:
    """The delay (ms) of a message published to a delayed-message exchange, or ``None`` for none."""
    if not msg.header[12] & HI_HEADERS:
        return None
    headers = msg.properties.headers
    if not headers or "x-delay" not in headers:
        return None
    v = headers["x-delay"]
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        d = int(v)
    elif isinstance(v, str):  # longstr/shortstr: binary_to_integer
        if not _ERLANG_INT.match(v):
            return None
        d = int(v)
    elif isinstance(v, float):
        d = int(v)  # trunc
    else:
        return None
    return d if 0 < d <= MAX_DELAY else None


def _with_negated_delay(msg, delay: int) -> Message:
    """``msg`` with its ``x-delay`` header set to ``-delay`` (signedint), as the plugin re-publishes it."""
    props = msg.properties
    headers = dict(props.headers)
    headers["x-delay"] = -delay
    fields = {f: getattr(props, f) for f in props.FIELDS}
    fields["headers"] = headers
    header = msg.header[:12] + type(props)(**fields).encode()
    return Message(msg.exchange, msg.routing_key, header, msg.body, msg.ex_rk)


class DelayedMessageExchange(Exchange):
    TYPE = "x-delayed-message"
    __slots__ = ("inner", "held", "_release_at", "_order")

    def __init__(self, name, vhost, durable=False, auto_delete=False, internal=False, arguments=None):
        super().__init__(name, vhost, durable=durable, auto_delete=auto_delete, internal=internal,
                         arguments=arguments)
        inner_cls = EXCHANGE_TYPES[_delayed_type(self.arguments)]
        self.inner = inner_cls(name, vhost, durable=durable, auto_delete=auto_delete, internal=internal,
                               arguments=self.arguments)
        self.inner.bindings = self.bindings  # one authoritative binding set (the inner type's _remove reads it)
        self.held: list = []  # heap of (due, order, message, delay)
        self._release_at = Deadline(vhost.timers, self._release)  # the next held message's due time
        self._order = count()

    @classmethod
    def validate(cls, vhost, name: str, arguments: dict) -> None:
        t = arguments.get("x-delayed-type")
        if isinstance(t, bytes):
            t = t.decode("utf-8", "surrogateescape")
        if not isinstance(t, str):
            raise SoftError(PRECONDITION_FAILED, "Invalid argument, 'x-delayed-type' must be an existing "
                                                 "exchange type")
        if t == cls.TYPE:
            raise SoftError(PRECONDITION_FAILED, "Invalid argument, 'x-delayed-message' can't be used for "
                                                 "'x-delayed-type'")
        inner = exchange_class(t)  # an unknown type: the same connection error as declaring one
        validate = getattr(inner, "validate", None)
        if validate is not None:
            validate(vhost, name, arguments)

    def bind(self, dest, key: str, args) -> bool:
        check = getattr(self.inner, "validate_binding", None)
        if check is not None:
            check(key)
        return super().bind(dest, key, args)

    def _add(self, dest, key, args):
        self.inner._add(dest, key, args)

    def _remove(self, dest, key, args):
        self.inner._remove(dest, key, args)

    def route(self, msg):
        delay = message_delay(msg)
        if delay is None:
            return self.inner.route(msg)
        self.hold(msg, delay)
        return ()

    # ----------------------------------------------------------------- holding
    def hold(self, msg, delay: int) -> None:
        due = monotonic() + delay / 1000.0
        heapq.heappush(self.held, (due, next(self._order), msg, delay))
        self._schedule()

    def _schedule(self) -> None:
        if not self.held:
            return
        self._release_at.arm(self.held[0][0])

    def _release(self) -> None:
        vhost = self.vhost
        if vhost.exchanges.get(self.name) is not self:  # deleted meanwhile: the held messages go with it
            self.held.clear()
            return
        now = monotonic()
        held = self.held
        while held and held[0][0] <= now:
            _, _, msg, delay = heapq.heappop(held)
            # through the one publish path: routed by this exchange's bindings now, persisted as any publish
            self.vhost.publish(self, _with_negated_delay(msg, delay), record=False)
        self._schedule()


def _delayed_type(arguments: dict) -> str:
    t = arguments.get("x-delayed-type")
    return t.decode("utf-8", "surrogateescape") if isinstance(t, bytes) else t


EXCHANGE_TYPES[ConsistentHashExchange.TYPE] = ConsistentHashExchange
EXCHANGE_TYPES[DelayedMessageExchange.TYPE] = DelayedMessageExchange
