"""The ``shovel`` runtime parameter: RabbitMQ 3.10's validation of it, and its settings as a :class:`ShovelDef`.

Theory of operation: :func:`validate` checks a parameter value the way RabbitMQ's shovel plugin does
(``rabbit_shovel_parameters``, AMQP 0-9-1 on both sides) and raises ValueError with RabbitMQ's text,
several problems joined by newlines; the management API wraps it in ``Validation failed``.  Values
print as Erlang prints the JSON it decoded (``<<"text">>``).  Keys RabbitMQ accepts under their
pre-3.7 names (``prefetch-count``, ``delete-after``, ``add-timestamp-header``,
``dest-add-forward-headers``, ``publish-properties``) are read as their new ones.  :func:`parse`
returns the settings with RabbitMQ's defaults: ack-mode ``on-confirm``, prefetch 1000, reconnect
delay 5 s, delete-after ``never``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..links.uri import LinkURI, erl, parse as parse_uri

ACK_MODES = ("no-ack", "on-publish", "on-confirm")
DEFAULT_PREFETCH = 1000
DEFAULT_RECONNECT_DELAY = 5

_BINARY = ("src-exchange", "src-exchange-key", "src-queue", "dest-exchange", "dest-exchange-key", "dest-queue")
_NUMBER = ("prefetch-count", "src-prefetch-count", "reconnect-delay")
_BOOLEAN = ("add-forward-headers", "add-timestamp-header", "dest-add-forward-headers", "dest-add-timestamp-header")
_DELETE_AFTER = ("delete-after", "src-delete-after")
_PROPERTIES = ("publish-properties", "dest-publish-properties")
KNOWN = frozenset(("src-uri", "dest-uri", "ack-mode", "src-protocol", "dest-protocol", "src-consumer-args")
                  + _BINARY + _NUMBER + _BOOLEAN + _DELETE_AFTER + _PROPERTIES)


@dataclass
class ShovelDef:
    src_uris: list  # of LinkURI
    dest_uris: list
    src_queue: str | None = None
    src_exchange: str | None = None
    src_exchange_key: str = ""
    dest_queue: str | None = None
    dest_exchange: str | None = None
    dest_exchange_key: str | None = None
    ack_mode: str = "on-confirm"
    prefetch: int = DEFAULT_PREFETCH
    delete_after: object = "never"  # "never", "queue-length" or a count
    forward_headers: bool = False
    timestamp_header: bool = False
    reconnect_delay: float = DEFAULT_RECONNECT_DELAY
    publish_properties: dict = field(default_factory=dict)
    consumer_args: dict = field(default_factory=dict)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _uris(v) -> list:
    return [v] if isinstance(v, str) else v


def validate(vhost: str, name: str, value, vhost_refused=None) -> None:
    """Raise ValueError with RabbitMQ's reasons if ``value`` is not a valid shovel definition;
    ``vhost_refused(v)``: why a local URI may not name vhost ``v`` (None: it may)."""
    if not isinstance(value, dict):
        raise ValueError(f"{erl(value)} is not a valid shovel definition")
    errors = []
    src_protocol = value.get("src-protocol", "amqp091")
    dest_protocol = value.get("dest-protocol", "amqp091")
    for key, proto in (("src-protocol", src_protocol), ("dest-protocol", dest_protocol)):
        if proto not in ("amqp091", "amqp10"):
            errors.append(f"{key} should be one of [amqp10,amqp091], actually was {erl(proto)}")
        elif proto == "amqp10":
            errors.append(f"{key} amqp10: WarrenMQ shovels speak AMQP 0-9-1 only")
    if errors:
        raise ValueError("\n".join(errors))
    unknown = [(k, v) for k, v in value.items() if k not in KNOWN]
    if unknown:
        errors.append(f"Unrecognised terms {erl(dict(unknown))} in {name}")
    if "src-queue" not in value and "src-exchange" not in value:
        errors.append("Must specify 'src-exchange' or 'src-queue'")
    elif "src-queue" in value and "src-exchange" in value:
        errors.append("Cannot specify 'src-exchange' and 'src-queue'")
    if "dest-queue" in value and "dest-exchange" in value:
        errors.append("Cannot specify 'dest-exchange' and 'dest-queue'")
    for key in ("dest-uri", "src-uri"):
        if key not in value:
            errors.append(f'Key "{key}" not found in {name}')
    for key in ("src-uri", "dest-uri"):
        if key not in value:
            continue
        v = value[key]
        if not isinstance(v, (str, list)):
            errors.append(f"{key} should be list, actually was {erl(v)}")
            continue
        for u in _uris(v):
            if not isinstance(u, str):
                errors.append(f"{key} should be binary, actually was {erl(u)}")
                continue
            try:
                parsed = parse_uri(u)
            except ValueError as e:
                errors.append(str(e))
                continue
            if parsed.local and vhost_refused is not None:
                why = vhost_refused(parsed.vhost)
                if why:
                    errors.append(why)
    for key in _BINARY:
        if key in value and not isinstance(value[key], str):
            errors.append(f"{key} should be binary, actually was {erl(value[key])}")
    for key in _NUMBER:
        if key in value and not _is_number(value[key]):
            errors.append(f"{key} should be a number, actually was {erl(value[key])}")
    for key in _BOOLEAN:
        if key in value and not isinstance(value[key], bool):
            errors.append(f"{key} should be boolean, actually was {erl(value[key])}")
    for key in _DELETE_AFTER:
        if key in value:
            v = value[key]
            if not (v in ("never", "queue-length") or (isinstance(v, int) and not isinstance(v, bool) and v >= 0)):
                errors.append(f'{key} should be a number greater than or equal to 0, "never" or "queue-length", '
                              f"actually was {erl(v)}")
    if "ack-mode" in value:
        v = value["ack-mode"]
        if not isinstance(v, str):
            errors.append(f"ack-mode should be binary, actually was {erl(v)}")
        elif v not in ACK_MODES:
            errors.append(f"ack-mode should be one of [{','.join(erl(m) for m in ACK_MODES)}], actually was {erl(v)}")
    for key in _PROPERTIES:
        if key in value and not isinstance(value[key], dict):
            errors.append(f"{key} should be a JSON object, actually was {erl(value[key])}")
    if "src-consumer-args" in value and not isinstance(value["src-consumer-args"], dict):
        errors.append(f"src-consumer-args should be a JSON object, actually was {erl(value['src-consumer-args'])}")
    if errors:
        raise ValueError("\n".join(errors))


def parse(value: dict) -> ShovelDef:
    """The settings of a valid definition (call :func:`validate` first)."""
    d = ShovelDef([parse_uri(u) for u in _uris(value["src-uri"])], [parse_uri(u) for u in _uris(value["dest-uri"])])
    d.src_queue = value.get("src-queue")
    d.src_exchange = value.get("src-exchange")
    d.src_exchange_key = value.get("src-exchange-key", "")
    d.dest_queue = value.get("dest-queue")
    d.dest_exchange = value.get("dest-exchange")
    d.dest_exchange_key = value.get("dest-exchange-key")
    d.ack_mode = value.get("ack-mode", "on-confirm")
    prefetch = value.get("src-prefetch-count", value.get("prefetch-count", DEFAULT_PREFETCH))
    d.prefetch = max(0, int(prefetch))
    d.delete_after = value.get("src-delete-after", value.get("delete-after", "never"))
    d.forward_headers = bool(value.get("add-forward-headers", value.get("dest-add-forward-headers", False)))
    d.timestamp_header = bool(value.get("dest-add-timestamp-header", value.get("add-timestamp-header", False)))
    d.reconnect_delay = max(0.0, float(value.get("reconnect-delay", DEFAULT_RECONNECT_DELAY)))
    d.publish_properties = dict(value.get("dest-publish-properties", value.get("publish-properties", {})))
    d.consumer_args = dict(value.get("src-consumer-args", {}))
    return d


def uri_of(u: LinkURI) -> str:
    return u.uri
