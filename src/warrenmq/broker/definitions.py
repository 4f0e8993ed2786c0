"""Definitions: the broker's users, vhosts, permissions, policies, parameters, queues, exchanges and
bindings exported and imported as RabbitMQ 3.10's JSON (the file ``rabbitmqctl export_definitions``
and the management UI write).

Theory of operation: :func:`export` reads the domain and builds the document the management API's
``GET /api/definitions`` answers in RabbitMQ 3.10 (``rabbit_mgmt_wm_definitions``): the version keys,
then ``users`` (base64 ``password_hash`` with its ``hashing_algorithm``, ``tags``, ``limits``),
``vhosts`` (with their ``metadata``, which RabbitMQ 3.10's HTTP export leaves out and its
``rabbitmqctl`` export keeps), ``permissions``, ``topic_permissions``, ``parameters`` (vhost limits
are the ``vhost-limits`` component, operator policies ``operator_policy``), ``global_parameters``,
``policies``, ``queues``, ``exchanges`` and ``bindings``.  It leaves out what RabbitMQ leaves out:
exclusive queues (they cannot be restored) and their bindings, the default exchange and the
``amq.*`` exchanges, and the default exchange's implicit bindings.  ``export(broker, vhost)`` is the
per-vhost document (``GET /api/definitions/{vhost}``): ``rabbit_version``, ``parameters``,
``policies``, and ``queues``, ``exchanges`` and ``bindings`` without their ``vhost`` key.

:func:`apply` is RabbitMQ's ``rabbit_definitions:apply_defs``: it applies a document through the
domain's own API (``Broker.add_user``, ``add_vhost``, ``set_permissions``, ``set_policy``,
``VHost.declare_queue``, ...), category by category in RabbitMQ's order (users, vhosts, the vhost
queue-limit check, permissions, topic permissions, exchanges, global parameters, policies,
parameters, queues, bindings).  Users come with a password (hashed here) or a ``password_hash``
imported as it is (SHA-256, SHA-512 and MD5, RabbitMQ's three ``hashing_algorithm`` modules); an
existing queue or exchange is kept as it is; ``amq.*`` queues and exchanges and the default
exchange are skipped with a warning; a binding whose source or destination does not exist is
skipped (RabbitMQ ignores the failure too).  The first invalid object stops the import with a
:class:`DefinitionsError` whose ``reason`` is RabbitMQ's (``["no_such_vhost", "v"]``,
``"Validation failed\\n\\n... (vhost/name)"``, ...; a per-vhost import words it as RabbitMQ's
``format/1``: one string); what was applied before it stays, as in RabbitMQ.  The whole import is
one transaction of the definitions store (``Definitions.batch``), committed even when it fails.
A vhost's default queue type is not given to the queues it creates (RabbitMQ gives it to declares
over a channel only).
"""
from __future__ import annotations

import base64
import binascii
import html
import logging
import struct

from ..protocol.codec import encode_table
from ..protocol.errors import AMQPError
from ..protocol.spec import REPLY_NAMES
from .exchanges import KIND_EXCHANGE, _thaw
from .broker import DEFAULT_HASHING, HASHING, RABBITMQ_COMPAT_VERSION
from .parameters import OPERATOR_POLICY

log = logging.getLogger("warrenmq.definitions")

PRODUCT_NAME = "RabbitMQ"

#: the categories of a whole document, in the order RabbitMQ's export writes them
CATEGORIES = ("users", "vhosts", "permissions", "topic_permissions", "parameters", "global_parameters",
              "policies", "queues", "exchanges", "bindings")
#: the categories of a per-vhost document
VHOST_CATEGORIES = ("parameters", "policies", "queues", "exchanges", "bindings")



class DefinitionsError(ValueError):
    """An import failed; ``reason`` is what RabbitMQ's API answers as the 400's ``reason`` (a string,
    or a list such as ``["no_such_user", "bob"]``)."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        r = self.reason
        if isinstance(r, (list, tuple)):
            return ": ".join(str(x) for x in r if x != "none")
        r = html.unescape(str(r))  # RabbitMQ's HTML escapes
        if r.startswith('<<"') and r.endswith('">>'):  # a per-vhost import's Erlang binary
            r = r[3:-3].replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")
        return r.replace("\n\n", ": ").replace("\n", "").strip()


# =================================================================== export
def export(broker, vhost: str | None = None) -> dict:
    """The definitions of the whole broker, or of ``vhost`` (KeyError if there is no such vhost)."""
    if vhost is not None:
        vh = broker.vhosts.get(vhost)
        if vh is None:
            raise KeyError(f"vhost '{vhost}' not found")
        vhosts = [vh]
        return {
            "rabbit_version": RABBITMQ_COMPAT_VERSION,
            "parameters": _parameters(broker, vhost),
            "policies": broker.list_policies(vhost),
            "queues": [_strip(q) for q in _queues(vhosts)],
            "exchanges": [_strip(x) for x in _exchanges(vhosts)],
            "bindings": [_strip(b) for b in _bindings(vhosts)],
        }
    vhosts = list(broker.vhosts.values())
    return {
        "rabbit_version": RABBITMQ_COMPAT_VERSION,
        "rabbitmq_version": RABBITMQ_COMPAT_VERSION,
        "product_name": PRODUCT_NAME,
        "product_version": RABBITMQ_COMPAT_VERSION,
        "users": [{**u, "limits": broker.user_limits(u["name"])} for u in broker.list_users()],
        "vhosts": [{"name": vh.name, "metadata": _vhost_metadata(broker, vh.name)} for vh in vhosts],
        "permissions": broker.list_permissions(),
        "topic_permissions": broker.list_topic_permissions(),
        "parameters": _parameters(broker, None),
        "global_parameters": _global_parameters(broker),
        "policies": broker.list_policies(),
        "queues": _queues(vhosts),
        "exchanges": _exchanges(vhosts),
        "bindings": _bindings(vhosts),
    }


def _vhost_metadata(broker, name: str) -> dict:
    """RabbitMQ's vhost ``metadata``: description, tags, and the default queue type when there is one."""
    md = broker.vhost_metadata(name)
    if md.get("default_queue_type") is None:
        md.pop("default_queue_type", None)
    return md


def _strip(item: dict) -> dict:
    return {k: v for k, v in item.items() if k != "vhost"}


def _parameters(broker, vhost: str | None) -> list:
    """Vhost-scoped runtime parameters: vhost limits (component ``vhost-limits``), operator policies
    (``operator_policy``) and those of the other components."""
    return broker.list_parameters(vhost=vhost)


def _global_parameters(broker) -> list:
    return [{"name": p["name"], "value": p["value"]} for p in broker.list_global_parameters()]


def _args(arguments) -> dict:
    """Arguments as JSON values (a long string that is not UTF-8 is shown as text)."""
    return {k: _value(v) for k, v in (arguments or {}).items()}


def _value(v):
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, dict):
        return _args(v)
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    return str(v)  # decimals, timestamps


def _queues(vhosts) -> list:
    return [{"name": q.name, "vhost": vh.name, "durable": q.durable, "auto_delete": q.auto_delete,
             "arguments": _args(q.arguments)}
            for vh in vhosts for q in vh.queues.values() if q.exclusive_owner is None]


def _exchanges(vhosts) -> list:
    return [{"name": x.name, "vhost": vh.name, "type": x.type, "durable": x.durable, "auto_delete": x.auto_delete,
             "internal": x.internal, "arguments": _args(x.arguments)}
            for vh in vhosts for x in vh.exchanges.values() if x.name and not x.name.startswith("amq.")]


def _bindings(vhosts) -> list:
    out = []
    for vh in vhosts:
        rows = []
        for x in vh.exchanges.values():
            if not x.name:  # the default exchange's bindings are implicit
                continue
            for dest, key, ak in x.bindings:
                if dest.kind == KIND_EXCHANGE:
                    dtype = "exchange"
                elif dest.exclusive_owner is None:
                    dtype = "queue"
                else:  # an exclusive queue is not exported, nor are its bindings
                    continue
                rows.append({"source": x.name, "vhost": vh.name, "destination": dest.name,
                             "destination_type": dtype, "routing_key": key,
                             "arguments": _args(dict(_thaw(ak)) if ak else {})})
        rows.sort(key=lambda b: (b["source"], b["destination_type"], b["destination"], b["routing_key"],
                                 repr(sorted(b["arguments"].items()))))
        out.extend(rows)
    return out


# =================================================================== import
def apply(broker, defs, vhost: str | None = None) -> None:
    """Apply definitions ``defs`` (a parsed document) to ``broker``, as RabbitMQ's ``apply_defs``; with
    ``vhost``, a per-vhost document: its parameters, policies, queues, exchanges and bindings go into
    ``vhost`` whatever their ``vhost`` keys say (KeyError if there is no such vhost).  Raises
    :class:`DefinitionsError` with RabbitMQ's reason at the first object that cannot be applied."""
    if not isinstance(defs, dict):
        raise DefinitionsError("failed_to_parse_json")
    with broker.defs.batch():  # one transaction of the definitions store for the whole import
        _apply(broker, defs, vhost)


def _apply(broker, defs: dict, vhost: str | None) -> None:
    if vhost is not None:
        if vhost not in broker.vhosts:
            raise KeyError(f"vhost '{vhost}' not found")
        log.debug("importing definitions into vhost '%s'", vhost)
        try:
            _check_queue_limits(broker, defs, vhost)
            _each(defs, "exchanges", lambda x: _add_exchange(broker, x, vhost))
            _each(defs, "parameters", lambda p: _add_parameter(broker, p, vhost))
            _each(defs, "policies", lambda p: _add_policy(broker, p, vhost))
            _each(defs, "queues", lambda q: _add_queue(broker, q, vhost))
            _each(defs, "bindings", lambda b: _add_binding(broker, b, vhost))
        except DefinitionsError as e:
            raise DefinitionsError(_vhost_reason(e.reason)) from None
        return
    version = defs.get("rabbitmq_version", defs.get("rabbit_version"))
    counts = {c: len(defs[c]) for c in CATEGORIES if isinstance(defs.get(c), list) and defs[c]}
    log.debug("importing definitions: %s", ", ".join(f"{n} {c.replace('_', ' ')}" for c, n in counts.items())
             or "nothing")
    _each(defs, "users", lambda u: _put_user(broker, u, version))
    _each(defs, "vhosts", lambda v: _add_vhost(broker, v))
    _check_queue_limits(broker, defs, None)
    _each(defs, "permissions", lambda p: _add_permission(broker, p))
    _each(defs, "topic_permissions", lambda p: _add_topic_permission(broker, p))
    _each(defs, "exchanges", lambda x: _add_exchange(broker, x, None))
    _each(defs, "global_parameters", lambda p: _add_global_parameter(broker, p))
    _each(defs, "policies", lambda p: _add_policy(broker, p, None))
    _each(defs, "parameters", lambda p: _add_parameter(broker, p, None))
    _each(defs, "queues", lambda q: _add_queue(broker, q, None))
    _each(defs, "bindings", lambda b: _add_binding(broker, b, None))


def _vhost_reason(reason) -> str:
    """A reason as RabbitMQ's per-vhost import words it (``rabbit_definitions:format/1``): one string, an
    AMQP error as ``name: text``, anything else printed as an Erlang term."""
    if isinstance(reason, list) and reason:
        if reason[0] == "amqp_error":
            return f"{reason[1]}: {reason[2]}"
        if reason[0] == "no_such_vhost":
            return f'Please create virtual host "{reason[1]}" prior to importing definitions.'
        if reason[0] == "vhost_limit_exceeded":
            return reason[1]
        return "{" + ",".join([str(reason[0])] + [_erl_binary(str(x)) for x in reason[1:]]) + "}"
    return _erl_binary(str(reason))


def _erl_binary(text: str) -> str:
    """``text`` as Erlang's ``~p`` prints a binary: ``<<"a\\nb">>``."""
    return '<<"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '">>'


def _each(defs: dict, category: str, fn) -> None:
    items = defs.get(category)
    if items is None:
        return
    if not isinstance(items, list):
        raise DefinitionsError(f"'{category}' must be a list, not {_json_type(items)}")
    for item in items:
        if isinstance(item, dict):  # RabbitMQ skips what is not an object
            fn(item)


def _json_type(v) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(v), "a number")


def _amqp(e: AMQPError) -> DefinitionsError:
    """An AMQP error of the domain as RabbitMQ's import reports it (``{amqp_error, Name, Text, none}``)."""
    return DefinitionsError(["amqp_error", REPLY_NAMES.get(e.code, "internal_error").lower(), e.text, "none"])


def _escape(text: str) -> str:
    """RabbitMQ escapes HTML in validation errors (``rabbit_misc:escape_html_tags``)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _validation(text: str, *where) -> DefinitionsError:
    return DefinitionsError(_escape(f"Validation failed\n\n{text}\n ({'/'.join(str(w) for w in where)})"))


def _str(item: dict, key: str, what: str, required: bool = True):
    v = item.get(key)
    if v is None and not required:
        return None
    if not isinstance(v, str):
        raise DefinitionsError(f"{what} has {'no' if v is None else 'an invalid'} '{key}': {v!r}")
    return v


def _bool(item: dict, key: str, default: bool, what: str) -> bool:
    v = item.get(key, default)
    if isinstance(v, str) and v in ("true", "false"):
        return v == "true"
    if not isinstance(v, bool):
        raise DefinitionsError(f"{what}: '{key}' must be a boolean, not {v!r}")
    return v


def _arguments(item: dict, what: str) -> dict:
    args = item.get("arguments")
    if args is None or args == []:
        return {}
    if not isinstance(args, dict):
        raise DefinitionsError(f"{what}: 'arguments' must be an object")
    try:
        encode_table(args)  # what the definitions store and AMQP clients will be given
    except (struct.error, OverflowError, TypeError, ValueError) as e:
        raise DefinitionsError(f"{what}: arguments cannot be an AMQP table: {e}") from None
    return args


def _proplist(v):
    """An object that RabbitMQ 3.10's ``rabbitmqctl export_definitions`` wrote as a list of [key, value]
    pairs (an Erlang proplist: operator policy definitions, some parameter values) as a dict."""
    if isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in v):
        return {k: val for k, val in v}
    return v


def _tag_list(v, what: str) -> list:
    if isinstance(v, str):
        return [t.strip() for t in v.split(",") if t.strip()]
    if isinstance(v, list) and all(isinstance(t, str) for t in v):
        return [t for t in v if t]
    raise DefinitionsError(f"{what}: tags must be a list or a comma-separated string, not {v!r}")


# ------------------------------------------------------------------ users
def _put_user(broker, u: dict, version) -> None:
    """RabbitMQ's ``rabbit_auth_backend_internal:put_user``."""
    name = _str(u, "name", "a user")
    if "tags" in u:
        tags = _tag_list(u["tags"], f"user '{name}'")
    elif "administrator" in u:  # definitions older than RabbitMQ 2.x's tags
        tags = ["administrator"] if str(u["administrator"]).lower() == "true" else []
    else:
        raise DefinitionsError("tags_not_present")
    has_password, has_hash = "password" in u, "password_hash" in u
    if has_password and has_hash:
        raise DefinitionsError("both_password_and_password_hash_are_provided")
    limits = u.get("limits")
    if limits is not None:
        limits = _proplist(limits)
        if limits == []:
            limits = {}
        try:
            from .limits import validate
            validate("user", limits if isinstance(limits, dict) else None)
        except (ValueError, TypeError, AttributeError) as e:
            raise DefinitionsError(f"invalid limits of user '{name}': {e}") from None
    exists = name in broker.users
    if has_password:
        password = u["password"]
        if not isinstance(password, str):
            raise DefinitionsError(f"user '{name}': password must be a string")
        broker.add_user(name, password, tags)
    elif has_hash:
        encoded = u["password_hash"]
        try:
            digest = base64.b64decode(encoded if isinstance(encoded, str) else b"?", validate=True)
        except (binascii.Error, ValueError):
            raise DefinitionsError(["not_base64", encoded]) from None
        algorithm = u.get("hashing_algorithm") or _default_hashing(version)
        if algorithm not in HASHING:
            raise DefinitionsError(["unsupported_hashing_algorithm", algorithm])
        broker.add_user(name, None, tags, password_hash=digest, hashing_algorithm=algorithm)
    else:  # no password: it cannot log in with one (RabbitMQ: for x509 or external backends)
        broker.add_user(name, None, tags)
    if limits is not None:
        broker.set_user_limits(name, limits)
    permissions = u.get("permissions")  # pre-configured permissions, for a new user only
    if not exists and isinstance(permissions, dict):
        for vhost, p in permissions.items():
            _add_permission(broker, {"user": name, "vhost": vhost, **(p if isinstance(p, dict) else {})})


def _default_hashing(version) -> str:
    """The hashing algorithm of a user without one: MD5 in definitions from RabbitMQ before 3.6."""
    v = str(version or "")
    if v.startswith(("3.5.", "3.4.", "3.3.", "3.2.", "3.1.", "3.0.")):
        return "rabbit_password_hashing_md5"
    return DEFAULT_HASHING


# ----------------------------------------------------------------- vhosts
def _add_vhost(broker, v: dict) -> None:
    """RabbitMQ's ``add_vhost``: description and tags at the top or in ``metadata``."""
    name = _str(v, "name", "a vhost")
    metadata = v.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    description = v.get("description", metadata.get("description", ""))
    tags = v.get("tags", metadata.get("tags", []))
    tags = _tag_list(tags, f"vhost '{name}'")
    dqt = metadata.get("default_queue_type", v.get("default_queue_type"))
    if dqt == "undefined":
        dqt = None
    broker.add_vhost(name, description=description if isinstance(description, str) else "", tags=tags,
                     default_queue_type=dqt)


def _check_queue_limits(broker, defs: dict, vhost: str | None) -> None:
    """RabbitMQ's ``validate_limits``: the new queues must fit each vhost's ``max-queues`` limit."""
    queues = defs.get("queues")
    if not isinstance(queues, list):
        return
    adding: dict = {}
    for q in queues:
        if not isinstance(q, dict):
            continue
        v = vhost if vhost is not None else q.get("vhost")
        vh = broker.vhosts.get(v) if isinstance(v, str) else None
        if vh is not None and q.get("name") not in vh.queues:
            adding[v] = adding.get(v, 0) + 1
    for v, n in adding.items():
        vh = broker.vhosts[v]
        limit = vh.max_queues
        if limit >= 0 and len(vh.queues) + n > limit:
            raise DefinitionsError(["vhost_limit_exceeded",
                                    f"Adding {n} queue(s) to virtual host \"{v}\" would exceed the limit of "
                                    f"{limit} queue(s).\n\nThis virtual host currently has {len(vh.queues)} "
                                    "queue(s) defined.\n\nImport aborted!"])


# ------------------------------------------------------------ permissions
def _user_and_vhost(broker, p: dict, what: str) -> tuple:
    user = _str(p, "user", what)
    vhost = _str(p, "vhost", what)
    if user not in broker.users:
        raise DefinitionsError(["no_such_user", user])
    if vhost not in broker.vhosts:
        raise DefinitionsError(["no_such_vhost", vhost])
    return user, vhost


def _patterns(p: dict, keys, what: str) -> list:
    out = []
    for k in keys:
        v = p.get(k)
        if not isinstance(v, str):
            raise DefinitionsError(f"{what}: '{k}' must be a string, not {v!r}")
        out.append(v)
    return out


def _add_permission(broker, p: dict) -> None:
    configure, write, read = _patterns(p, ("configure", "write", "read"), "a permission")
    user, vhost = _user_and_vhost(broker, p, "a permission")
    try:
        broker.set_permissions(user, vhost, configure, write, read)
    except ValueError as e:
        raise DefinitionsError(["invalid_regexp", str(e)]) from None


def _add_topic_permission(broker, p: dict) -> None:
    write, read = _patterns(p, ("write", "read"), "a topic permission")
    exchange = _str(p, "exchange", "a topic permission")
    user, vhost = _user_and_vhost(broker, p, "a topic permission")
    try:
        broker.set_topic_permissions(user, vhost, exchange, write, read)
    except ValueError as e:
        raise DefinitionsError(["invalid_regexp", str(e)]) from None


# ----------------------------------------------------- policies, parameters
def _target_vhost(broker, item: dict, vhost: str | None, what: str) -> str:
    v = vhost if vhost is not None else item.get("vhost")
    if not isinstance(v, str):
        raise DefinitionsError(f"{what} has no vhost")
    if v not in broker.vhosts:
        raise DefinitionsError(["no_such_vhost", v])
    return v


def _add_policy(broker, p: dict, vhost: str | None) -> None:
    name = p.get("name")
    v = vhost if vhost is not None else p.get("vhost")
    if name is None:
        raise DefinitionsError(f"policy in virtual host '{v}' has undefined name")
    v = _target_vhost(broker, p, vhost, f"policy '{name}'")
    definition = _proplist(p.get("definition"))
    priority = p.get("priority", 0)
    try:
        broker.set_policy(v, name, p.get("pattern"), definition, 0 if priority is None else priority,
                          p.get("apply-to", "all"))
    except ValueError as e:
        raise _validation(str(e), v, name) from None


def _add_parameter(broker, p: dict, vhost: str | None) -> None:
    component = p.get("component")
    name = p.get("name")
    v = _target_vhost(broker, p, vhost, f"parameter '{name}'")
    value = _proplist(p.get("value"))
    if component == OPERATOR_POLICY and isinstance(value, dict) and "definition" in value:
        value = {**value, "definition": _proplist(value["definition"])}
    if not isinstance(component, str) or not isinstance(name, str):
        raise _validation("a parameter needs a component and a name", v, component, name)
    try:
        broker.set_parameter(component, v, name, value)
    except ValueError as e:
        raise _validation(str(e), v, component, name) from None


def _add_global_parameter(broker, p: dict) -> None:
    name = _str(p, "name", "a global parameter")
    try:
        broker.set_global_parameter(name, _proplist(p.get("value")))
    except ValueError as e:
        raise DefinitionsError(str(e)) from None


# ------------------------------------------------------------- topology
def _add_exchange(broker, x: dict, vhost: str | None) -> None:
    name = _str(x, "name", "an exchange")
    v = _target_vhost(broker, x, vhost, f"exchange '{name}'")
    if name == "":
        log.warning("definitions: not importing the default exchange")
        return
    if name.startswith("amq."):
        log.warning("definitions: skipping exchange '%s' in vhost '%s': names beginning with 'amq.' are "
                    "reserved", name, v)
        return
    vh = broker.vhosts[v]
    if name in vh.exchanges:
        return
    what = f"exchange '{name}'"
    type_ = x.get("type")
    durable = _bool(x, "durable", True, what)
    auto_delete = _bool(x, "auto_delete", False, what)
    internal = _bool(x, "internal", False, what)
    arguments = _arguments(x, what)
    try:
        vh.declare_exchange(name, type_ if isinstance(type_, str) else repr(type_), durable=durable,
                            auto_delete=auto_delete, internal=internal, arguments=arguments)
    except AMQPError as e:
        raise _amqp(e) from None


def _add_queue(broker, q: dict, vhost: str | None) -> None:
    name = _str(q, "name", "a queue")
    v = _target_vhost(broker, q, vhost, f"queue '{name}'")
    if name.startswith("amq.") or name == "":
        log.warning("definitions: skipping queue '%s' in vhost '%s': names beginning with 'amq.' are reserved",
                    name, v)
        return
    vh = broker.vhosts[v]
    if name in vh.queues:
        return
    what = f"queue '{name}'"
    durable = _bool(q, "durable", True, what)
    auto_delete = _bool(q, "auto_delete", False, what)
    arguments = _arguments(q, what)
    try:
        # as RabbitMQ's import: the vhost's default queue type is for declares over a channel only
        vh.declare_queue(name, None, durable=durable, auto_delete=auto_delete, arguments=arguments,
                         default_type=False)
    except AMQPError as e:
        raise _amqp(e) from None


def _add_binding(broker, b: dict, vhost: str | None) -> None:
    v = _target_vhost(broker, b, vhost, "a binding")
    vh = broker.vhosts[v]
    source, dest = b.get("source"), b.get("destination")
    dtype = b.get("destination_type")
    key = b.get("routing_key", "")
    what = f"binding from '{source}' to {dtype} '{dest}'"
    if not isinstance(key, str):
        raise DefinitionsError(f"{what}: routing_key must be a string")
    arguments = _arguments(b, what)
    if dtype not in ("queue", "exchange"):
        raise DefinitionsError(f"{what}: destination_type must be 'queue' or 'exchange'")
    # RabbitMQ ignores a binding that cannot be added (a missing source or destination)
    if not source or source not in vh.exchanges:
        log.warning("definitions: skipping %s in vhost '%s': no such source exchange", what, v)
        return
    try:
        if dtype == "queue":
            q = vh.queues.get(dest)
            if q is None:
                log.warning("definitions: skipping %s in vhost '%s': no such queue", what, v)
                return
            vh.bind_queue(q, source, key, arguments)
        else:
            if dest not in vh.exchanges or not dest:
                log.warning("definitions: skipping %s in vhost '%s': no such exchange", what, v)
                return
            vh.bind_exchange(dest, source, key, arguments)
    except AMQPError as e:
        log.warning("definitions: skipping %s in vhost '%s': %s", what, v, e)
