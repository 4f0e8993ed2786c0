"""The ``x-federation-upstream`` exchange type: what a federation downstream declares on its upstream.

Theory of operation: a RabbitMQ (or WarrenMQ) node that federates an exchange
from this broker declares here, for each link, an internal, auto-delete
exchange of this type, bound from the federated exchange with the downstream's
bindings, and a queue bound to it that the link consumes.  The type routes as
``fanout`` does, except that it drops a message the downstream must not get
again (RabbitMQ's ``rabbit_federation_upstream_exchange`` and
``rabbit_federation_util:should_forward``): one whose ``x-received-from``
header (an array of tables, one per federation hop already crossed) holds
``x-max-hops`` entries or more, or holds an entry whose ``cluster-name`` and
``vhost`` are the downstream's (``x-downstream-name``, ``x-downstream-vhost``
arguments: the message came from there).  A message without that header is
routed without decoding anything beyond its headers.

Declaring it needs ``x-max-hops`` as a 64-bit integer ("long", AMQP tag ``l``;
a JSON number through the management API is one too), else
PRECONDITION_FAILED with RabbitMQ's texts (see ``_is_long`` on JSON numbers); a redeclare compares ``x-max-hops``
(and ``alternate-exchange``) as RabbitMQ does.  Registered in
``EXCHANGE_TYPES`` when imported (the vhost imports it), as if the
``rabbitmq_federation`` plugin were enabled.
"""
from __future__ import annotations

from ..protocol.codec import field_type_name
from ..protocol.errors import SoftError
from ..protocol.spec import PRECONDITION_FAILED
from .exchanges import EXCHANGE_TYPES, FanoutExchange

#: argument and header names (rabbit_federation.hrl)
MAX_HOPS_ARG = "x-max-hops"
DOWNSTREAM_NAME_ARG = "x-downstream-name"
DOWNSTREAM_VHOST_ARG = "x-downstream-vhost"
ROUTING_HEADER = "x-received-from"
BINDING_HEADER = "x-bound-from"
TYPE_NAME = "x-federation-upstream"


def _is_long(v) -> bool:
    """A field of RabbitMQ's type ``long`` (tag ``l``, or an int too wide for 32 bits).  A JSON number
    from the management API is a plain int, as an AMQP ``I`` is: a small one is refused there, where
    RabbitMQ's management plugin would make it a ``long`` (federation links declare over AMQP)."""
    return isinstance(v, int) and not isinstance(v, bool) and field_type_name(v) == "long"


def already_seen(name, vhost, hops) -> bool:
    """Whether the ``x-received-from`` array ``hops`` holds an entry from cluster ``name``, vhost ``vhost``."""
    for t in hops:
        if isinstance(t, dict) and t.get("cluster-name") == name and t.get("vhost") == vhost \
                and name is not None and vhost is not None:
            return True
    return False


def should_forward(headers, max_hops: int, name, vhost) -> bool:
    """rabbit_federation_util:should_forward: may a message with ``headers`` go to downstream
    ``name``/``vhost`` over a link of ``max_hops``?"""
    if not headers:
        return True
    hops = headers.get(ROUTING_HEADER)
    if not isinstance(hops, (list, tuple)):
        return True
    return len(hops) < max_hops and not already_seen(name, vhost, hops)


class FederationUpstreamExchange(FanoutExchange):
    TYPE = TYPE_NAME
    EQUIVALENCE_ARGS = (MAX_HOPS_ARG,)
    __slots__ = ("max_hops", "downstream_name", "downstream_vhost")

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        args = self.arguments
        self.max_hops = int(args.get(MAX_HOPS_ARG, 1))
        n, v = args.get(DOWNSTREAM_NAME_ARG), args.get(DOWNSTREAM_VHOST_ARG)
        self.downstream_name = n if isinstance(n, str) else None  # "unknown" (pre-3.3.0 downstreams)
        self.downstream_vhost = v if isinstance(v, str) else None

    @classmethod
    def validate(cls, vhost, name: str, arguments: dict) -> None:
        v = arguments.get(MAX_HOPS_ARG)
        if v is None:
            raise SoftError(PRECONDITION_FAILED, f"Argument {MAX_HOPS_ARG} missing")
        if not _is_long(v):
            raise SoftError(PRECONDITION_FAILED, f"Argument {MAX_HOPS_ARG} must be of type long")

    def route(self, msg) -> list:
        headers = msg.properties.headers
        if headers and not should_forward(headers, self.max_hops, self.downstream_name, self.downstream_vhost):
            return ()
        return self.dests


EXCHANGE_TYPES[TYPE_NAME] = FederationUpstreamExchange
