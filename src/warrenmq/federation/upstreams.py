"""Federation upstreams: the ``federation-upstream`` and ``federation-upstream-set`` runtime parameters,
the policy keys that apply them, and which upstreams a federated exchange or queue has.

Theory of operation: this is the domain half of federation (no I/O).  The two parameter components
validate their values with the texts of RabbitMQ's ``rabbit_parameter_validation`` (each error on a
line, the unrecognised terms first, then the known keys in reverse order, as its fold leaves them);
the policy keys ``federation-upstream`` (one upstream by name), ``federation-upstream-set`` (a set's
name; ``all`` is every upstream of the vhost) and ``federation-upstream-pattern`` (upstreams whose
name matches a regex) are checked together, at most one of them per policy.

:func:`upstreams_for` turns an exchange's or queue's policy into :class:`Upstream` objects with
RabbitMQ's defaults (prefetch 1000, reconnect delay 5 s, max-hops 1, ack-mode on-confirm, no expiry or
TTL, the upstream exchange or queue named as the downstream one), a set element's own keys
overriding the upstream parameter's.  links.py runs one link per (object, upstream).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..broker.policy import _erl, register_policy_keys

UPSTREAM = "federation-upstream"
UPSTREAM_SET = "federation-upstream-set"
POLICY_UPSTREAM = "federation-upstream"
POLICY_SET = "federation-upstream-set"
POLICY_PATTERN = "federation-upstream-pattern"

ACK_MODES = ("no-ack", "on-publish", "on-confirm")
CLEANUP_MODES = ("default", "never")
CHANNEL_USE_MODES = ("multiple", "single")


def _number(key, v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return None
    return f"{key} should be a number, actually was {_erl(v)}"


def _binary(key, v):
    return None if isinstance(v, str) else f"{key} should be binary, actually was {_erl(v)}"


def _boolean(key, v):
    return None if isinstance(v, bool) else f"{key} should be boolean, actually was {_erl(v)}"


def _enum(values):
    def check(key, v):
        if v in values:
            return None
        allowed = "[" + ",".join(_erl(x) for x in values) + "]"
        return f"{key} should be one of {allowed}, actually was {_erl(v)}"
    return check


def _uri(key, v):
    from ..links.uri import parse  # the outgoing links' URI reader: RabbitMQ's amqp_uri texts
    if isinstance(v, str):
        try:
            parse(v)
        except ValueError as e:
            return str(e)
        return None
    if not isinstance(v, list):
        return f"{key} should be list, actually was {_erl(v)}"
    for u in v:
        err = _uri(key, u)
        if err:
            return err
    return None


#: rabbit_federation_parameters:shared_validation, in its order
SHARED = [
    ("exchange", _binary), ("queue", _binary), ("consumer-tag", _binary), ("prefetch-count", _number),
    ("reconnect-delay", _number), ("max-hops", _number), ("expires", _number), ("message-ttl", _number),
    ("trust-user-id", _boolean), ("ack-mode", _enum(ACK_MODES)), ("resource-cleanup-mode", _enum(CLEANUP_MODES)),
    ("ha-policy", _binary), ("bind-nowait", _boolean), ("channel-use-mode", _enum(CHANNEL_USE_MODES)),
]


def _proplist(name: str, constraints, term) -> list[str]:
    """rabbit_parameter_validation:proplist: the errors, in the order RabbitMQ prints them."""
    if isinstance(term, list):  # a JSON array is no proplist: every element is an unrecognised term
        rest = term
        found = {}
    elif isinstance(term, dict):
        found, rest = term, None
    else:
        raise ValueError(f"{name} not a list {_erl(term)}")
    results = []
    for key, check, mandatory in constraints:
        if key in found:
            err = check(key, found[key])
            if err:
                results.append(err)
        elif mandatory:
            results.append(f'Key "{key}" not found in {name}')
    results.reverse()
    if rest is None:
        rest = [{k: v} for k, v in found.items() if k not in {c[0] for c in constraints}]
        if rest:
            terms = ",".join(f"{{{_erl(k)},{_erl(v)}}}" for d in rest for k, v in d.items())
            results.insert(0, f"Unrecognised terms [{terms}] in {name}")
    elif rest:
        results.insert(0, f"Unrecognised terms {_erl(rest)} in {name}")
    return results


def validate_upstream(vhost: str, name: str, value) -> None:
    errors = _proplist(name, [("uri", _uri, True)] + [(k, f, False) for k, f in SHARED], value)
    if errors:
        raise ValueError("\n".join(errors))


def validate_upstream_set(vhost: str, name: str, value) -> None:
    if not isinstance(value, list):
        raise ValueError(f"{name} not a list {_erl(value)}")
    errors = []
    for element in value:
        if not isinstance(element, dict):
            raise ValueError(f"{name} not a list {_erl(element)}")
        errors += _proplist(name, [("upstream", _binary, True)] + [(k, f, False) for k, f in SHARED], element)
    if errors:
        raise ValueError("\n".join(errors))


def check_policy(found: dict) -> str | None:
    """rabbit_federation_parameters:validate_policy on the federation keys of one definition."""
    if len(found) >= 2:
        return "cannot specify federation-upstream, federation-upstream-set or federation-upstream-pattern together"
    (key, v), = found.items()
    if key == POLICY_SET and not isinstance(v, str):
        return f"{_erl(v)} is not a valid federation upstream set name"
    if key == POLICY_UPSTREAM and not isinstance(v, str):
        return f"{_erl(v)} is not a valid federation upstream name"
    if key == POLICY_PATTERN:
        if not isinstance(v, str):
            return f"{_erl(v)} is not a valid federation upstream pattern name"
        try:
            re.compile(v)
        except re.error as e:
            return f"could not compile pattern {v} to a regular expression. Error: {e}"
    return None


register_policy_keys((POLICY_UPSTREAM, POLICY_SET, POLICY_PATTERN), check_policy)


@dataclass(frozen=True)
class Upstream:
    """One upstream as a link uses it (rabbit_federation_upstream's #upstream record)."""
    name: str
    uris: tuple
    exchange: str
    queue: str
    consumer_tag: str
    prefetch_count: int = 1000
    reconnect_delay: float = 5
    max_hops: int = 1
    expires: int | None = None
    message_ttl: int | None = None
    trust_user_id: bool = False
    ack_mode: str = "on-confirm"
    resource_cleanup_mode: str = "default"


def _set_elements(broker, vhost: str, definition: dict) -> list[dict]:
    params = broker.parameters
    if POLICY_UPSTREAM in definition:
        return [{"upstream": definition[POLICY_UPSTREAM]}]
    if POLICY_SET in definition:
        set_name = definition[POLICY_SET]
        if set_name == "all":
            return [{"upstream": n} for (c, v, n) in params if c == UPSTREAM and v == vhost]
        value = params.get((UPSTREAM_SET, vhost, set_name))
        return [e for e in value if isinstance(e, dict)] if isinstance(value, list) else []
    if POLICY_PATTERN in definition:
        try:
            rx = re.compile(definition[POLICY_PATTERN])
        except (re.error, TypeError):
            return []
        return [{"upstream": n} for (c, v, n) in params if c == UPSTREAM and v == vhost and rx.search(n)]
    return []


def upstreams_for(broker, vhost: str, obj_name: str, definition: dict | None) -> list[Upstream]:
    """The upstreams the policy ``definition`` gives an exchange or queue named ``obj_name``."""
    if not definition:
        return []
    out = []
    for element in _set_elements(broker, vhost, definition):
        name = element.get("upstream")
        value = broker.parameters.get((UPSTREAM, vhost, name))
        if not isinstance(value, dict):
            continue

        def get(key, default):
            v = element.get(key)
            if v is None:
                v = value.get(key)
            return default if v is None else v
        uri = get("uri", [])
        uris = (uri,) if isinstance(uri, str) else tuple(uri)
        if not uris:
            continue
        out.append(Upstream(
            name=name, uris=uris, exchange=get("exchange", obj_name), queue=get("queue", obj_name),
            consumer_tag=get("consumer-tag", f"federation-link-{name}"),
            prefetch_count=int(get("prefetch-count", 1000)), reconnect_delay=get("reconnect-delay", 5),
            max_hops=int(get("max-hops", 1)), expires=get("expires", None), message_ttl=get("message-ttl", None),
            trust_user_id=bool(get("trust-user-id", False)), ack_mode=get("ack-mode", "on-confirm"),
            resource_cleanup_mode=get("resource-cleanup-mode", "default")))
    return out


def has_federation_keys(definition: dict) -> bool:
    return POLICY_UPSTREAM in definition or POLICY_SET in definition or POLICY_PATTERN in definition


def has_vhost(uri: str) -> bool:
    """Whether an AMQP URI names a vhost (a path after the host); RabbitMQ's federation uses the
    downstream's vhost when it does not."""
    rest = uri.split("://", 1)[-1].split("?", 1)[0]
    return "/" in rest


def redact(uri: str) -> str:
    """The URI without its credentials, as RabbitMQ shows upstream URIs (amqp_uri:remove_credentials)."""
    from ..links.uri import redact as _redact
    return _redact(uri)


def policy_definition(obj) -> dict | None:
    """The federation keys of the policy in force for ``obj`` (an exchange or queue), or None."""
    policy = obj.policy
    if policy is None:
        return None
    d = policy.definition
    if POLICY_UPSTREAM in d or POLICY_SET in d or POLICY_PATTERN in d:
        return d
    return None


def register(broker, on_change) -> None:
    """Register the two parameter components with ``broker``; ``on_change()`` follows every change."""
    broker.register_parameter_component(UPSTREAM, validate_upstream, lambda v, n, x: on_change(),
                                        lambda v, n: on_change())
    broker.register_parameter_component(UPSTREAM_SET, validate_upstream_set, lambda v, n, x: on_change(),
                                        lambda v, n: on_change())
