"""Domain objects as RabbitMQ's management JSON.

Theory of operation: one function per kind of object turns a live domain
object (queue, exchange, binding, vhost, connection, the node) into the dict
RabbitMQ 3.10's HTTP API returns for it, with the keys RabbitMQ has and values
from what the domain already counts (a queue's ready and unacknowledged
messages and consumers).  There is no statistics collector yet: the keys of
RabbitMQ's ``message_stats`` and rates are absent, as RabbitMQ leaves them out
of an object nothing was published to.  Nothing here changes the domain.

Names: the node is ``warrenmq@<host>``, the ``cluster_name`` the AMQP
connection's server properties announce; the default exchange is ``""`` in
JSON and ``amq.default`` in paths (:func:`exchange_from_path`).
"""
from __future__ import annotations

import base64
import hashlib
import os
import platform
import shutil
import time

from ..amqp.session import server_properties
from . import certificates
from ..broker.alarms import Alarm
from ..broker.broker import RABBITMQ_COMPAT_VERSION
from ..broker.exchanges import EXCHANGE_TYPES, KIND_EXCHANGE, _thaw, args_key

#: the management API version reported (the RabbitMQ release WarrenMQ reproduces)
MANAGEMENT_VERSION = RABBITMQ_COMPAT_VERSION

_STARTED = time.time()


def node_name() -> str:
    return server_properties()["cluster_name"]


def exchange_from_path(name: str) -> str:
    """The default exchange is ``amq.default`` in management paths (RabbitMQ's rabbit_mgmt_util:id)."""
    return "" if name == "amq.default" else name


def queue(q, node: str) -> dict:
    ready = len(q.messages)
    unacked = q.unacked
    policy = q.policy
    out = {
        "arguments": q.arguments,
        "auto_delete": q.auto_delete,
        "consumers": len(q.consumers),
        "durable": q.durable,
        "effective_policy_definition": dict(policy.definition) if policy is not None else {},
        "exclusive": q.exclusive_owner is not None,
        "exclusive_consumer_tag": None,
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "name": q.name,
        "node": node,
        "operator_policy": getattr(policy, "operator_policy", None),  # a MergedPolicy (policy.py) has one
        "policy": policy.name if policy is not None else None,
        "state": "running",
        "type": q.queue_type,
        "vhost": q.vhost.name,
    }
    if policy is not None and "ha-mode" in policy.definition:
        # a classic mirroring policy: RabbitMQ lists the (here always absent) mirrors; nothing is mirrored
        out["slave_nodes"] = []
        out["synchronised_slave_nodes"] = []
    return out


def exchange(ex) -> dict:
    policy = ex.policy
    out = {
        "arguments": ex.arguments,
        "auto_delete": ex.auto_delete,
        "durable": ex.durable,
        "internal": ex.internal,
        "name": ex.name,
        "type": ex.type,
        "user_who_performed_action": "rmq-internal",
        "vhost": ex.vhost.name,
    }
    if policy is not None:  # RabbitMQ shows the key only when a policy applies
        out["policy"] = policy.name
    return out


#: the characters RabbitMQ's ``rabbit_http_util:quote_plus`` leaves alone (``~`` too; ``quote_binding`` escapes it)
_QS_SAFE = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-~_")


def quote_plus(text: str) -> str:
    """RabbitMQ's ``rabbit_http_util:quote_plus``: UTF-8 bytes, space as ``+``, the rest ``%XX`` (upper case)."""
    out = []
    for b in text.encode("utf-8"):
        if b in _QS_SAFE:
            out.append(chr(b))
        elif b == 0x20:
            out.append("+")
        else:
            out.append(f"%{b:02X}")
    return "".join(out)


def unquote_plus(text: str) -> str:
    """RabbitMQ's ``rabbit_http_util:unquote``: ``+`` is a space, ``%XX`` a byte (a bad escape stays)."""
    raw = text.encode("utf-8")
    out = bytearray()
    i = 0
    while i < len(raw):
        c = raw[i]
        if c == 0x2B:
            out.append(0x20)
        elif c == 0x25 and i + 2 < len(raw) and _is_hex(raw[i + 1:i + 3]):
            out.append(int(raw[i + 1:i + 3], 16))
            i += 2
        else:
            out.append(c)
        i += 1
    return out.decode("utf-8", "replace")


def _is_hex(two: bytes) -> bool:
    return len(two) == 2 and all(chr(c) in "0123456789abcdefABCDEF" for c in two)


def quote_binding(text: str) -> str:
    """RabbitMQ's ``rabbit_mgmt_format:quote_binding``: :func:`quote_plus`, then ``~`` as ``%7E``."""
    return quote_plus(text).replace("~", "%7E")


def args_hash(arguments: dict) -> str:
    """Six characters naming a binding's arguments in its properties key, shaped like RabbitMQ's
    (``base64url`` of a 32-bit hash, no padding).  RabbitMQ hashes the Erlang term with ``erlang:phash2``,
    which is not reproduced here: WarrenMQ hashes the arguments' canonical form (``args_key``: sorted
    keys, typed values) with BLAKE2b.  The key is stable across restarts and round-trips between a
    listing and GET/DELETE by key, but differs from the one RabbitMQ prints for the same arguments."""
    frozen = arguments if isinstance(arguments, tuple) else args_key(arguments)  # a dict or its args_key
    digest = hashlib.blake2b(repr(frozen).encode(), digest_size=4).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def properties_key(key: str, arguments: dict) -> str:
    """RabbitMQ's binding ``properties_key`` (``rabbit_mgmt_format:pack_binding_props``): ``~`` for an
    empty key without arguments, the quoted key, and ``~`` + :func:`args_hash` when there are arguments;
    it addresses one binding in ``/api/bindings/{vhost}/e/{source}/{q|e}/{destination}/{props}``."""
    if not arguments:
        return quote_binding(key) if key else "~"
    return f"{quote_binding(key)}~{args_hash(arguments)}"


def binding(vhost: str, source: str, dest, key: str, args) -> dict:
    arguments = dict(_thaw(args)) if args else {}
    return {
        "arguments": arguments,
        "destination": dest.name,
        "destination_type": "exchange" if dest.kind == KIND_EXCHANGE else "queue",
        "properties_key": properties_key(key, arguments),
        "routing_key": key,
        "source": source,
        "vhost": vhost,
    }


def default_binding(vhost: str, queue: str) -> dict:
    """The default exchange's implicit binding to a queue."""
    return {"arguments": {}, "destination": queue, "destination_type": "queue",
            "properties_key": properties_key(queue, {}), "routing_key": queue, "source": "", "vhost": vhost}


def bindings(vh) -> list:
    """Every binding of a vhost, the default exchange's implicit one to each queue first, as RabbitMQ."""
    out = [default_binding(vh.name, name) for name in vh.queues]
    for ex in vh.exchanges.values():
        if ex.name == "":
            continue
        for dest, key, args in ex.bindings:
            out.append(binding(vh.name, ex.name, dest, key, args))
    return out


def vhost_totals(vh) -> tuple[int, int]:
    ready = unacked = 0
    for q in vh.queues.values():
        ready += len(q.messages)
        unacked += q.unacked
    return ready, unacked


def vhost(vh, node: str) -> dict:
    ready, unacked = vhost_totals(vh)
    return {
        "cluster_state": {node: "running"},
        "default_queue_type": "classic",
        "description": "",
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "metadata": {"description": "", "tags": []},
        "name": vh.name,
        "tags": [],
        "tracing": False,
    }


def connection_name(session) -> str:
    """RabbitMQ's connection name: ``peer_host:peer_port -> host:port``."""
    peer = session.peer
    transport = session.reader
    local = transport.get_extra_info("sockname") if transport is not None else None
    if peer and local:
        return f"{peer[0]}:{peer[1]} -> {local[0]}:{local[1]}"
    return session.name


_NO_TLS = dict.fromkeys(certificates.TLS_KEYS)


def connection(session, node: str) -> dict:
    proto = session.proto
    transport = session.reader
    local = transport.get_extra_info("sockname") if transport is not None else None
    tls = transport is not None and transport.get_extra_info("ssl_object") is not None
    peer = session.peer or (None, None)
    user = session.user
    vh = session.vhost
    client_properties = getattr(proto, "client_properties", {}) or {}
    out = {
        "auth_mechanism": "PLAIN",
        "channel_max": proto.channel_max,
        "channels": len(session.channels),
        "client_properties": client_properties,
        "connected_at": getattr(session, "connected_at", None),
        "frame_max": proto.frame_max,
        "host": local[0] if local else None,
        "name": connection_name(session),
        "node": node,
        "peer_host": peer[0],
        "peer_port": peer[1],
        "port": local[1] if local else None,
        "protocol": getattr(session, "protocol", "AMQP 0-9-1"),  # other adapters name theirs (STOMP 1.2)
        "ssl": tls,
        "state": session.state,
        "timeout": proto.heartbeat,
        "type": getattr(session, "connection_type", "network"),
        "user": user.name if user is not None else None,
        "user_who_performed_action": user.name if user is not None else None,
        "vhost": vh.name if vh is not None else None,
    }
    if tls:  # RabbitMQ's ssl_* and peer_cert_* keys (null without TLS)
        out.update(certificates.tls_facts(transport))
    else:
        out.update(_NO_TLS)
    provided = client_properties.get("connection_name")
    if provided is not None:  # RabbitMQ shows the name a client gave its connection
        out["user_provided_name"] = provided
    return out


def exchange_types() -> list:
    return [{"description": "", "enabled": True, "name": name} for name in EXCHANGE_TYPES]


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _disk_free(broker):
    """Free bytes on the data directory's file system (the disk alarm's measure), or ``None``."""
    path = getattr(broker.storage, "path", "") or broker.config.data_dir
    while path:
        try:
            return shutil.disk_usage(path).free
        except OSError:
            parent = os.path.dirname(path.rstrip("/"))
            if parent == path:
                return None
            path = parent
    return None


def _fds():
    """``(used, limit)`` of the process's file descriptors, or ``(None, None)`` (no /proc)."""
    try:
        import resource
        used = len(os.listdir("/proc/self/fd"))
        return used, resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return None, None


def node(broker, node_name_: str) -> dict:
    alarms = broker.alarms
    fd_used, fd_total = _fds()
    return {
        "disk_free": _disk_free(broker),
        "fd_total": fd_total,
        "fd_used": fd_used,
        "being_drained": False,
        "disk_free_alarm": Alarm.DISK_FREE in alarms,
        "disk_free_limit": broker.config.disk_free_limit,
        "mem_alarm": Alarm.MEMORY in alarms,
        "mem_limit": broker.memory.watermark,
        "mem_used": rss_bytes(),
        "name": node_name_,
        "os_pid": str(os.getpid()),
        "partitions": [],
        "processors": os.cpu_count() or 1,
        "rates_mode": "none",
        "running": True,
        "type": "disc",
        "uptime": int((time.time() - _STARTED) * 1000),
        "os": f"{platform.system()} {platform.release()}",
        "python_version": platform.python_version(),
    }
