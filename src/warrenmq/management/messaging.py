"""The management API's bindings, publish/get and health-check endpoints (part of ``rabbit_mgmt_dispatcher``).

Theory of operation: every handler here changes or reads the domain through the API AMQP uses, after
the permission checks RabbitMQ's channel makes for the AMQP method the request stands for, so an HTTP
client can do nothing an AMQP client with the same user could not:

* bindings (``/api/bindings/{vhost}/e/{source}/{q|e}/{destination}[/{props}]``): POST is
  ``queue.bind``/``exchange.bind`` (write on the destination, read on the source, the topic
  permission's read pattern on a topic source), answered ``201`` with a ``Location`` relative to the
  request path as RabbitMQ's ``rabbit_web_dispatch_util:relativise`` builds it; DELETE by properties
  key is the unbind.  A binding is addressed by its properties key (:func:`.views.properties_key`),
  parsed as RabbitMQ's ``rabbit_mgmt_wm_binding:unpack`` does: split at ``~``, the routing key
  unquoted, the arguments found among the source-to-destination bindings by their hash.  RabbitMQ
  hashes with ``erlang:phash2``; WarrenMQ's hash differs (see :func:`.views.args_hash`) but has the
  same shape and round-trips between a listing and GET/DELETE by key.
* publish and get (``/api/exchanges/{vhost}/{name}/publish``, ``/api/queues/{vhost}/{name}/get``): as
  RabbitMQ's plugin opens an internal channel per request, each request here makes an
  :class:`HttpChannel`, a domain :class:`~warrenmq.broker.channel.Channel` whose ``send_*`` hooks
  answer the request: a publish goes through ``Channel.publish`` (so ``VHost.publish``, the one publish
  path), mandatory and in confirm mode, and the answer waits for its confirm (for a persisted message,
  the store's); a get is ``Channel.get`` per message then ``Channel.reject`` per ackmode, and closing
  the channel requeues what was got without ack.  Confirms, acks and redeliveries are therefore
  counted wherever AMQP's are.  Errors of these channels are answered as RabbitMQ's
  ``with_channel``/``bad_request_exception`` answer them (``"403 ACCESS_REFUSED - ..."``).
* The bindings' domain errors are answered as RabbitMQ's ``rabbit_mgmt_util:direct_request`` answers them:
  NOT_FOUND ``404 not_found`` with the AMQP explanation, ACCESS_REFUSED ``401 "Access refused."``,
  anything else ``400 bad_request`` with the explanation (:func:`direct`).
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from datetime import datetime
from decimal import Decimal

from aiohttp import web

from ..broker.access import READ, WRITE
from ..broker.channel import Channel
from ..broker.exchanges import _thaw, args_key
from ..protocol.errors import AMQPError
from ..protocol.properties import content_header
from ..protocol.spec import ACCESS_REFUSED, NOT_FOUND, BasicProperties
from . import certificates, views
from .auth import ADMINISTRATOR, MONITORING, require
from .routes import ALARM_RESOURCES, table_error, table_arguments
from .errors import ApiError, access_refused, bad_request, json_response, not_found

log = logging.getLogger("warrenmq.management")

P = None  # a path parameter
CREATED = 201
NO_CONTENT = 204

#: RabbitMQ's default order of a bindings listing (rabbit_mgmt_wm_bindings:to_json)
BINDING_SORT = ("vhost", "source", "destination_type", "destination", "routing_key", "properties_key")

#: the destination types of a binding path
DEST_TYPES = {"q": "queue", "e": "exchange"}


# ------------------------------------------------------------------- errors and permissions
def direct(e: AMQPError) -> ApiError:
    """The answer RabbitMQ's ``direct_request`` gives for an AMQP error of the method it ran."""
    if e.code == NOT_FOUND:
        return ApiError(404, "not_found", e.text)
    if e.code == ACCESS_REFUSED:
        return access_refused()
    return bad_request(e.text)


def may(ctx, vhost: str, kind: str, name: str, perm: str) -> None:
    ctx.broker.check_resource(ctx.user, vhost, kind, name, perm)


def may_bind(ctx, vh, dest_kind: str, dest: str, source: str, key: str) -> None:
    """The checks of ``queue.bind``/``exchange.bind`` and their unbinds, in RabbitMQ's order (the same
    as ``amqp/methods.py``'s ``_may_bind``): write on the destination, then, unless the default exchange
    is involved (the domain refuses that next), read on the source and the topic permission's read
    pattern on a topic source."""
    may(ctx, vh.name, dest_kind, dest, WRITE)
    if source == "" or (dest_kind == "exchange" and dest == ""):
        return
    may(ctx, vh.name, "exchange", source, READ)
    ex = vh.exchanges.get(source)
    if ex is not None and ex.type == "topic":
        ctx.broker.check_topic(ctx.user, vh.name, source, key, READ)


# ------------------------------------------------------------------- bindings
def tokenise(props: str) -> list:
    """RabbitMQ's ``rabbit_mgmt_format:tokenise``: split at ``~``, a trailing empty part dropped."""
    out = []
    while props:
        i = props.find("~")
        if i < 0:
            out.append(props)
            break
        out.append(props[:i])
        props = props[i + 1:]
    return out


def relativise(from_path: str, to_path: str) -> str:
    """RabbitMQ's ``rabbit_web_dispatch_util:relativise``: ``to_path`` relative to ``from_path``."""
    frm = [t for t in from_path.split("/") if t]
    to = [t for t in to_path.split("/") if t]
    while True:
        if len(frm) == 1 and to and to[0] == frm[0]:
            break
        if frm and to and frm[0] == to[0]:
            frm, to = frm[1:], to[1:]
            continue
        if not to:
            to = [".."] * len(frm)
        elif frm:
            to = [".."] * (len(frm) - 1) + to
        break
    return "/".join(to)


def _endpoints(ctx, vhost_name: str, source: str, dtype: str, dest: str, write: bool = False):
    """``(vhost, source exchange name, destination kind, destination name)``; 404 for a path RabbitMQ
    does not route (a destination type other than ``q``/``e``)."""
    kind = DEST_TYPES.get(dtype)
    if kind is None:
        raise not_found()
    vh = ctx.vhost(vhost_name, write)
    if kind == "exchange":
        dest = views.exchange_from_path(dest)
    return vh, views.exchange_from_path(source), kind, dest


def _between(vh, source: str, kind: str, dest: str) -> list:
    """The bindings from exchange ``source`` to the queue or exchange ``dest``, as RabbitMQ lists them
    (``rabbit_binding:list_for_source_and_destination``; the default exchange's implicit one too)."""
    ex = vh.exchanges.get(source)
    target = (vh.exchanges if kind == "exchange" else vh.queues).get(dest)
    if ex is None or target is None:
        return []
    if source == "":
        if kind != "queue":
            return []
        return [{"arguments": {}, "destination": dest, "destination_type": "queue",
                 "properties_key": views.properties_key(dest, {}), "routing_key": dest, "source": "",
                 "vhost": vh.name}]
    return [views.binding(vh.name, source, d, key, ak) for d, key, ak in ex.bindings if d is target]


def _find(vh, source: str, kind: str, dest: str, props: str):
    """``(routing key, arguments)`` of the binding ``props`` names, or ``None`` (RabbitMQ's ``unpack``
    and ``rabbit_binding:exists``)."""
    ex = vh.exchanges.get(source)
    target = (vh.exchanges if kind == "exchange" else vh.queues).get(dest)
    if ex is None or target is None:
        return None
    parts = tokenise(props)
    if len(parts) == 1:
        key, args = views.unquote_plus(parts[0]), ()
    elif len(parts) == 2:
        key = views.unquote_plus(parts[0])
        enc = views.unquote_plus(parts[1])
        for d, _, ak in ex.bindings:
            if d is target and ak and views.args_hash(ak) == enc:
                args = ak
                break
        else:
            return None
    else:
        return None
    if source == "":  # the default exchange's implicit binding: the queue's name, no arguments
        found = kind == "queue" and key == dest and not args
    else:
        found = (target, key, args) in ex.bindings
    return (key, dict(_thaw(args)) if args else {}) if found else None


async def bindings_between(ctx, vhost_name: str, source: str, dtype: str, dest: str):
    kind = DEST_TYPES.get(dtype)
    if kind is None:
        raise not_found()
    if vhost_name not in ctx.broker.vhosts:  # RabbitMQ answers an empty list for a vhost that is not there
        return ctx.list([], BINDING_SORT)
    vh, source, kind, dest = _endpoints(ctx, vhost_name, source, dtype, dest)
    return ctx.list(_between(vh, source, kind, dest), BINDING_SORT)


async def binding_create(ctx, vhost_name: str, source: str, dtype: str, dest: str):
    kind = DEST_TYPES.get(dtype)
    if kind is None:
        raise not_found()
    if vhost_name not in ctx.broker.vhosts:
        raise ApiError(404, "not_found", "vhost_not_found")
    vh, source, kind, dest = _endpoints(ctx, vhost_name, source, dtype, dest, write=True)
    body = await ctx.body()
    key = body.get("routing_key", "")
    if key is None:
        key = ""
    if not isinstance(key, str):
        raise bad_request(f"routing_key must be a string, not {key!r}")
    args = table_arguments(body.get("arguments"))
    try:
        may_bind(ctx, vh, kind, dest, source, key)
        if kind == "queue":
            if source and source not in vh.exchanges:  # RabbitMQ reports the exchange first
                raise vh.not_found_exchange(source)
            vh.bind_queue(vh.get_queue(dest, None), source, key, args)
        else:
            vh.bind_exchange(dest, source, key, args)
    except AMQPError as e:
        raise direct(e) from None
    to = "/".join(("/api/bindings", views.quote_plus(vh.name), "e", views.quote_plus(source), dtype,
                   views.quote_plus(dest), views.quote_plus(views.properties_key(key, args))))
    location = relativise(ctx.request.raw_path.split("?", 1)[0], to)
    return web.Response(status=CREATED, headers={"Location": location})


async def binding_get(ctx, vhost_name: str, source: str, dtype: str, dest: str, props: str):
    vh, source, kind, dest = _endpoints(ctx, vhost_name, source, dtype, dest)
    found = _find(vh, source, kind, dest, props)
    if found is None:
        raise not_found()
    key, args = found
    target = (vh.exchanges if kind == "exchange" else vh.queues)[dest]
    return json_response(views.binding(vh.name, source, target, key, args_key(args)))


async def binding_delete(ctx, vhost_name: str, source: str, dtype: str, dest: str, props: str):
    vh, source, kind, dest = _endpoints(ctx, vhost_name, source, dtype, dest, write=True)
    found = _find(vh, source, kind, dest, props)
    if found is None:
        raise not_found()
    key, args = found
    try:
        may_bind(ctx, vh, kind, dest, source, key)
        if kind == "queue":
            vh.unbind_queue(dest, None, source, key, args)
        else:
            vh.unbind_exchange(dest, source, key, args)
    except AMQPError as e:
        raise direct(e) from None
    return web.Response(status=NO_CONTENT)


# ------------------------------------------------------------------- publish and get
class HttpConnection:
    """What a domain channel's ``owner`` is for a management request: the user (``user_id`` is checked
    against it), no exclusive queues, and no credit flow (a request publishes one message; RabbitMQ's
    direct connection is not throttled either)."""
    __slots__ = ("user",)

    def __init__(self, user):
        self.user = user

    def set_flow(self, on: bool) -> None:
        pass


class HttpChannel(Channel):
    """A domain channel for one request, as RabbitMQ's management plugin opens an internal channel for
    each publish and get: publishes go through :meth:`Channel.publish` (mandatory, in confirm mode),
    gets and settlements through :meth:`Channel.get`, :meth:`Channel.reject`; closing it requeues what
    it still holds."""
    __slots__ = ("returned", "confirmed")

    def __init__(self, ctx, vh):
        super().__init__(ctx.broker, vh, HttpConnection(ctx.user), 1)
        self.returned = False
        self.confirmed: asyncio.Future | None = None

    def send_return(self, msg, code: int, text: str) -> None:
        self.returned = True

    def send_confirm(self, seq: int, multiple: bool, nack: bool) -> None:
        f = self.confirmed
        if f is not None and not f.done():
            f.set_result(not nack)

    def send_deliver(self, consumer, tag: int, entry) -> None:  # it never consumes
        raise AssertionError("a management channel has no consumers")

    def send_reply(self, msg, tag: int) -> None:
        raise AssertionError("a management channel has no reply consumer")

    def timed_out(self, timeout_ms: int) -> None:  # closed when the request ends, long before
        pass


def key_missing(keys: list) -> ApiError:
    """RabbitMQ's 400 for missing body keys, its Erlang term printed as ``~p`` prints it: on one line up to
    78 characters, else one element a line (io_lib's rule, probed on RabbitMQ's Erlang)."""
    items = [f"{{key_missing,{k}}}" for k in keys]
    text = "[" + ",".join(items) + "]"
    if len(text) > 78:
        text = "[" + ",\n ".join(items) + "]"
    return bad_request(text)


async def decode_body(ctx, keys: tuple) -> dict:
    """The JSON body with ``keys`` required (RabbitMQ's ``with_decode``)."""
    raw = await ctx.request.read()
    try:
        body = json.loads(raw) if raw.strip() else {}
    except (ValueError, UnicodeDecodeError):
        raise bad_request("not_json") from None
    if not isinstance(body, dict):
        raise bad_request("not_json")
    missing = [k for k in keys if k not in body]
    if missing:
        raise key_missing(missing)
    return body


def reason_error(*reason) -> ApiError:
    """A 400 whose reason is an Erlang tuple, which RabbitMQ's JSON shows as a list."""
    return ApiError(400, "bad_request", list(reason))


def vhost_for_channel(ctx, vhost_name: str):
    """The vhost a request's internal channel opens on (``is_authorized_vhost``, then the connection):
    a vhost the user may not access 401 ``User not authorised ...``; one that is not there 401
    ``Access refused.`` (the internal connection is refused), as RabbitMQ answers."""
    vh = ctx.broker.vhosts.get(vhost_name)
    if vh is not None and not ctx.broker.user_can_access(ctx.user, vhost_name):
        raise ApiError(401, "not_authorised", "User not authorised to access virtual host")
    return vh


def _need_vhost(vh):
    if vh is None:
        raise access_refused()
    return vh


def channel_error(e: AMQPError) -> ApiError:
    """RabbitMQ's ``bad_request_exception``: ``"CODE NAME - text"``."""
    return bad_request(f"{e.code} {e.reply_text}")


#: the JSON types of the integer properties
_INT_PROPERTIES = ("delivery_mode", "priority", "timestamp")
#: the largest value each of priority (an octet) and timestamp (64 bits) can carry
_INT_PROPERTY_MAX = {"priority": 255, "timestamp": (1 << 64) - 1}


def to_basic_properties(props: dict) -> BasicProperties:
    """RabbitMQ's ``rabbit_mgmt_format:to_basic_properties``: the properties a publish request names
    (others are ignored), integers for delivery_mode/priority/timestamp, a table for headers, strings for
    the rest; the first wrong one is a 400 ``["not_int", name]`` / ``["not_string", name]``."""
    if not isinstance(props, dict):
        raise reason_error("not_a_table", "properties")
    out = BasicProperties()
    for name in BasicProperties.FIELDS:
        if name not in props:
            continue
        v = props[name]
        if name == "headers":
            if not isinstance(v, dict):
                raise reason_error("not_a_table", "headers")
            v = {k: _table_value(x) for k, x in v.items()}
            err = table_error(v)
            if err:  # RabbitMQ 3.10 carries such a header along as an Erlang term
                raise bad_request(f"headers: {err}")
        elif name in _INT_PROPERTIES:
            if not isinstance(v, int) or isinstance(v, bool):
                raise reason_error("not_int", name)
            if name == "delivery_mode":
                if v not in (1, 2):  # rabbit_basic's check, as RabbitMQ's plugin reports it
                    raise bad_request(f"406 PRECONDITION_FAILED - invalid message: {{delivery_mode_unknown,{v}}}")
            elif not 0 <= v <= _INT_PROPERTY_MAX[name]:
                # RabbitMQ 3.10 keeps the Erlang integer; an AMQP content header cannot carry it
                raise bad_request(f"{name} {v} does not fit in its AMQP property "
                                  f"(0 to {_INT_PROPERTY_MAX[name]})")
        elif not isinstance(v, str):
            raise reason_error("not_string", name)
        setattr(out, name, v)
    return out


def _table_value(v):
    """RabbitMQ's ``rabbit_misc:type_val``: objects are tables, lists arrays, strings longstr, integers
    long, other numbers double, booleans bool; null is refused."""
    if v is None:
        raise bad_request("null_not_allowed")
    if isinstance(v, dict):
        return {k: _table_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_table_value(x) for x in v]
    if isinstance(v, float):
        return v
    return v  # str, bool, int


def decode_payload(payload: str, encoding) -> bytes:
    if encoding == "string":
        return payload.encode("utf-8")
    if encoding == "base64":
        try:
            return base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise reason_error("not_base64", payload) from None
    raise reason_error("unsupported_encoding", encoding)


async def exchange_publish(ctx, vhost_name: str, name: str):
    """``POST /api/exchanges/{vhost}/{name}/publish``: one message through :meth:`Channel.publish` (the one
    publish path), mandatory and confirmed, as RabbitMQ's ``rabbit_mgmt_wm_exchange_publish``: ``routed``
    is whether a queue took it."""
    vh = vhost_for_channel(ctx, vhost_name)
    body = await decode_body(ctx, ("routing_key", "properties", "payload", "payload_encoding"))
    payload = body["payload"]
    if not isinstance(payload, str):
        raise bad_request("payload_not_string")
    vh = _need_vhost(vh)
    key = body["routing_key"]
    if not isinstance(key, str):
        raise bad_request(f"routing_key must be a string, not {key!r}")
    props = to_basic_properties(body["properties"])
    data = decode_payload(payload, body["payload_encoding"])
    exchange = views.exchange_from_path(name)
    ch = HttpChannel(ctx, vh)
    try:
        ch.select_confirm()
        ch.confirmed = asyncio.get_running_loop().create_future()
        try:
            may(ctx, vh.name, "exchange", exchange, WRITE)  # the checks of basic.publish (methods._may_publish)
            ex = vh.exchanges.get(exchange)
            if ex is not None and ex.type == "topic" and not ex.internal:
                ctx.broker.check_topic(ctx.user, vh.name, exchange, key, WRITE)
            ch.publish(exchange, key, content_header(props, len(data)), data, True)
        except AMQPError as e:
            raise channel_error(e) from None
        ch.confirms.flush()  # the confirm goes now unless it waits for the store
        acked = await ch.confirmed
    finally:
        ch.close()
    if not acked:
        raise bad_request("rejected Unable to publish message. Check queue limits.")
    return json_response({"routed": not ch.returned})


#: ackmode -> (basic.get no_ack, reject afterwards, requeue when rejecting)
ACKMODES = {
    "ack_requeue_true": (False, False, True),  # not acked: requeued when the channel closes
    "ack_requeue_false": (True, False, False),
    "reject_requeue_true": (False, True, True),
    "reject_requeue_false": (False, True, False),
}


def parse_int(v):
    """RabbitMQ's ``rabbit_mgmt_util:parse_int``: an integer, or a string of one."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            pass
    raise reason_error("not_integer", v)


def _json_str(v) -> str:
    """A decoded AMQP string as JSON text (RabbitMQ's ``utf8_safe``: invalid UTF-8 replaced)."""
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    return v.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _json_value(v):
    """A field-table value as RabbitMQ's ``amqp_table`` shows it."""
    if isinstance(v, (str, bytes, bytearray)):
        return _json_str(v)
    if isinstance(v, dict):
        return {_json_str(k): _json_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, int):
        return int(v)
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return int(v.timestamp())
    return v


def basic_properties(props: BasicProperties):
    """RabbitMQ's ``rabbit_mgmt_format:basic_properties``: the present properties, last field first, as
    RabbitMQ lists them; ``[]`` when none is present (its empty list)."""
    out = {}
    for name in reversed(BasicProperties.FIELDS):
        v = getattr(props, name)
        if v is None:
            continue
        if name == "headers":
            out[name] = _json_value(v)
        elif name == "timestamp":
            out[name] = int(v.timestamp()) if isinstance(v, datetime) else int(v)
        elif isinstance(v, int):
            out[name] = int(v)
        else:
            out[name] = _json_str(v)
    return out or []


def _payload_part(payload: bytes, encoding: str) -> dict:
    if encoding == "auto":
        try:
            return {"payload": payload.decode("utf-8"), "payload_encoding": "string"}
        except UnicodeDecodeError:
            pass
    return {"payload": base64.b64encode(payload).decode(), "payload_encoding": "base64"}


async def queue_get(ctx, vhost_name: str, name: str):
    """``POST /api/queues/{vhost}/{name}/get``: up to ``count`` ``basic.get`` on a channel of its own
    (:meth:`Channel.get`), then, per ``ackmode``, rejects (:meth:`Channel.reject`) or nothing, and the
    channel's close requeues what it still holds, as RabbitMQ's ``rabbit_mgmt_wm_queue_get``."""
    vh = vhost_for_channel(ctx, vhost_name)
    body = await decode_body(ctx, ("ackmode", "count", "encoding"))
    vh = _need_vhost(vh)
    ackmode = body["ackmode"]
    count = parse_int(body["count"])
    encoding = body["encoding"]
    if encoding not in ("auto", "base64"):
        raise bad_request("Unsupported encoding. Please use auto or base64.")
    truncate = body.get("truncate")
    truncate = None if truncate is None else parse_int(truncate)
    if ackmode not in ACKMODES:  # RabbitMQ fails with a 500 here
        raise bad_request(f"Unsupported ackmode {ackmode!r}. Please use one of {', '.join(ACKMODES)}.")
    no_ack, reject, requeue = ACKMODES[ackmode]
    out = []
    ch = HttpChannel(ctx, vh)
    try:
        tags = []
        try:
            while count != 0:  # a negative count gets until the queue is empty, as RabbitMQ's
                may(ctx, vh.name, "queue", name, READ)  # the checks of basic.get
                q = vh.get_queue(name, ch.owner)
                got = ch.get(q, no_ack)
                if got is None:
                    break
                tag, entry = got
                msg = entry.message
                payload = msg.body
                if truncate is not None and len(payload) >= truncate >= 0:
                    payload = payload[:truncate]
                item = {"payload_bytes": len(msg.body), "redelivered": bool(entry.redelivered),
                        "exchange": msg.exchange, "routing_key": msg.routing_key,
                        "message_count": len(q.messages), "properties": basic_properties(msg.properties)}
                item.update(_payload_part(bytes(payload), encoding))
                out.append(item)
                tags.append(tag)
                count -= 1
            if reject:  # after all the gets: a requeued message would be got again
                for tag in tags:
                    ch.reject(tag, False, requeue)
        except AMQPError as e:
            if e.code == NOT_FOUND:
                raise ApiError(404, "not_found", e.reply_text) from None
            if e.code == ACCESS_REFUSED:
                raise ApiError(401, "not_authorised", e.reply_text) from None
            raise channel_error(e) from None
    finally:
        ch.close()
    return json_response(out)


# ------------------------------------------------------------------- health checks and the cluster
def _health_failure(body: dict) -> web.Response:
    return json_response({"status": "failed", **body}, 503)


async def health_virtual_hosts(ctx):
    """Every vhost is running: WarrenMQ's vhosts live in the broker itself (no per-vhost process that could
    be down, unlike RabbitMQ's vhost supervisors), so this is ``ok`` whenever the API answers."""
    return json_response({"status": "ok"})


def _listeners(ctx) -> list:
    """The node's listeners in the order RabbitMQ lists them (HTTP first, then AMQP's)."""
    return list(reversed(ctx.mgmt.listeners()))


async def health_port_listener(ctx, port: str):
    try:
        number = int(port, 10)
    except ValueError:
        raise bad_request("Invalid port") from None
    listeners = _listeners(ctx)
    if any(li["port"] == number for li in listeners):
        return json_response({"status": "ok", "port": number})
    return _health_failure({"reason": "No active listener", "missing": number,
                            "ports": [li["port"] for li in listeners]})


#: RabbitMQ's aliases of protocol names (rabbit_mgmt_wm_health_check_protocol_listener:normalize_protocol)
PROTOCOL_ALIASES = {
    **dict.fromkeys(("amqp091", "amqp0.9.1", "amqp0-9-1", "amqp0_9_1", "amqp10", "amqp1.0", "amqp1-0", "amqp1_0"),
                    "amqp"),
    "amqps": "amqp/ssl",
    **dict.fromkeys(("mqtt3.1", "mqtt3.1.1", "mqtt31", "mqtt311", "mqtt3_1", "mqtt3_1_1"), "mqtt"),
    **dict.fromkeys(("mqtts", "mqtt+tls", "mqtt+ssl"), "mqtt/ssl"),
    **dict.fromkeys(("stomp1.0", "stomp1.1", "stomp1.2", "stomp10", "stomp11", "stomp12", "stomp1_0", "stomp1_1",
                     "stomp1_2"), "stomp"),
    **dict.fromkeys(("stomps", "stomp+tls", "stomp+ssl"), "stomp/ssl"),
    **dict.fromkeys(("http1", "http1.1", "http_api", "management", "management_ui", "ui"), "http"),
    **dict.fromkeys(("cli", "distribution"), "clustering"),
    **dict.fromkeys(("webmqtt", "web-mqtt", "web_mqtt"), "http/web-mqtt"),
    **dict.fromkeys((p + s for p in ("webmqtt", "web-mqtt") for s in ("/tls", "/ssl", "+tls", "+ssl")),
                    "https/web-mqtt"),
    **dict.fromkeys(("webstomp", "web-stomp", "web_stomp"), "http/web-stomp"),
    **dict.fromkeys((p + s for p in ("webstomp", "web-stomp") for s in ("/tls", "/ssl", "+tls", "+ssl")),
                    "https/web-stomp"),
}


async def health_protocol_listener(ctx, protocol: str):
    name = protocol.lower()
    name = PROTOCOL_ALIASES.get(name, name)
    listeners = _listeners(ctx)
    if any(li["protocol"] == name for li in listeners):
        return json_response({"status": "ok", "protocol": name})
    return _health_failure({"reason": "No active listener", "missing": name,
                            "protocols": [li["protocol"] for li in listeners]})


async def health_single_node(ctx):
    """``node-is-quorum-critical`` and ``node-is-mirror-sync-critical``: WarrenMQ is one node, so no queue
    depends on it for a quorum or a synchronised mirror, and RabbitMQ answers a single node so."""
    return json_response({"status": "ok", "reason": "single node cluster"})


#: seconds per unit of the certificate-expiration check (RabbitMQ's: a month is a twelfth of 365 days)
_UNIT_SECONDS = {"days": 86400, "weeks": 86400 * 7, "months": 86400 * 365 / 12, "years": 86400 * 365}


#: the TLS listeners that serve the broker's certificate (tls_certfile, tls_cafile): AMQPS and the plugins'
#: (the management API's HTTPS is not checked)
_BROKER_TLS_LISTENERS = frozenset(("amqp/ssl", "mqtt/ssl", "stomp/ssl", "https/web-mqtt", "https/web-stomp"))


async def health_certificate_expiration(ctx, within: str, unit: str):
    """Whether a TLS listener's certificate or CA file holds a certificate that expires within the period
    (RabbitMQ's ``rabbit_mgmt_wm_health_check_certificate_expiration``): 503 listing those listeners."""
    try:
        amount = int(within, 10)
    except ValueError:
        raise bad_request("Invalid expiration value.") from None
    per = _UNIT_SECONDS.get(unit.lower())
    if per is None:
        raise bad_request("Time unit not recognised. Supported units: days, weeks, months, years.")
    deadline = time.time() + amount * per
    config = ctx.broker.config
    expiring = []
    for li in _listeners(ctx):
        if li["protocol"] not in _BROKER_TLS_LISTENERS:
            continue
        certfile = config.tls_certfile or None
        cafile = config.tls_cafile or None
        cert_expiring = certificates.expiring(certfile, deadline)
        ca_expiring = certificates.expiring(cafile, deadline)
        if cert_expiring or ca_expiring:
            expiring.append({"node": ctx.node, "protocol": li["protocol"], "interface": li["ip_address"],
                             "port": li["port"], "certfile": certfile, "cacertfile": cafile,
                             "certfile_expires_on": cert_expiring, "cacertfile_expires_on": ca_expiring})
    if expiring:
        return _health_failure({"reason": "Certificates expiring", "expired": expiring})
    return json_response({"status": "ok"})


def _alarm_terms(ctx) -> str:
    """The alarms as RabbitMQ's deprecated node health check prints them (an Erlang term)."""
    names = sorted(ALARM_RESOURCES.get(a, a.name.lower()) for a in ctx.broker.alarms)
    return "[" + ",".join(f"{{{{resource_limit,{r},'{ctx.node}'}},[]}}" for r in names) + "]"


async def healthchecks_node(ctx, node: str | None = None):
    """The deprecated ``/api/healthchecks/node[/{node}]``: ``ok`` unless a resource alarm is in effect, as
    RabbitMQ 3.10's ``rabbit_health_check:node`` (its other checks, listing channels and queues and
    cluster partitions, cannot fail on one WarrenMQ node)."""
    if node is not None and node != ctx.node:
        raise not_found()
    if ctx.broker.alarms:
        return _health_failure({"reason": f"resource alarm(s) in effect:{_alarm_terms(ctx)}"})
    return json_response({"status": "ok"})


def cluster_name(broker, node: str) -> str:
    """The cluster's name: the global parameter ``cluster_name`` when set (RabbitMQ keeps it there), else
    the node's name."""
    return broker.cluster_name or node


async def cluster_name_get(ctx):
    return json_response({"name": cluster_name(ctx.broker, ctx.node)})


async def cluster_name_put(ctx):
    """``PUT /api/cluster-name`` ``{"name": ...}`` (administrator): kept as the global parameter
    ``cluster_name``, durable and exported with the definitions, and presented by the overview and by
    new AMQP connections' server properties, as RabbitMQ's ``rabbit_nodes:set_cluster_name``."""
    require(ctx.user, ADMINISTRATOR)
    body = await decode_body(ctx, ("name",))
    name = body["name"]
    if not isinstance(name, str) or not name:
        raise bad_request("name must be a non-empty string")
    ctx.broker.set_global_parameter("cluster_name", name)
    log.info("cluster name set to '%s' by user '%s'", name, ctx.user.name)
    return web.Response(status=NO_CONTENT)


async def extensions(ctx):
    """The web UI's extensions (JavaScript of plugins' UI parts): WarrenMQ serves no web UI, so none."""
    return json_response([])


async def auth_settings(ctx):
    """``/api/auth``, the UI's login settings (answered without credentials): no OAuth 2 (UAA)."""
    return json_response({"enable_uaa": False, "uaa_client_id": "", "uaa_location": ""})


auth_settings.public = True  # the server does not authenticate it (see server.ManagementServer.handle)


async def auth_attempts(ctx, node: str):
    """``/api/auth/attempts/{node}`` (monitoring): login attempts per protocol since start (or the last
    DELETE), as RabbitMQ's ``rabbit_core_metrics:get_auth_attempts``: only protocols with attempts; a
    request without credentials is no attempt."""
    require(ctx.user, MONITORING)
    if node != ctx.node:
        raise not_found()
    return json_response([{"protocol": proto, "auth_attempts": n, "auth_attempts_failed": failed,
                           "auth_attempts_succeeded": n - failed}
                          for proto, (n, failed) in sorted(ctx.broker.auth_attempts.items(), reverse=True)])


async def auth_attempts_reset(ctx, node: str):
    require(ctx.user, MONITORING)
    if node != ctx.node:
        raise not_found()
    ctx.broker.auth_attempts.clear()
    return web.Response(status=NO_CONTENT)


async def auth_attempts_by_source(ctx, node: str):
    """Attempts per source address and user: RabbitMQ tracks them only with ``track_auth_attempt_source``
    (off by default), and WarrenMQ does not, so the list is empty, as RabbitMQ's default answers."""
    require(ctx.user, MONITORING)
    if node != ctx.node:
        raise not_found()
    return json_response([])


# ------------------------------------------------------------------- cluster operations with one node
async def queue_actions(ctx, vhost_name: str, name: str):
    """``POST /api/queues/{vhost}/{name}/actions`` ``{"action": "sync"|"cancel_sync"}`` (administrator):
    classic mirror synchronisation.  WarrenMQ has no mirrors, so both do nothing, as RabbitMQ does for a
    queue without mirrors (204); any other action 400 ``["unknown", action]``."""
    require(ctx.user, ADMINISTRATOR)
    vh = ctx.vhost(vhost_name)
    body = await decode_body(ctx, ("action",))
    if name not in vh.queues:
        raise not_found()
    action = body["action"]
    if action not in ("sync", "cancel_sync"):
        raise reason_error("unknown", action)
    return web.Response(status=NO_CONTENT)


async def rebalance_queues(ctx):
    """``POST /api/rebalance/queues`` (administrator): queue leaders spread over the nodes; one node has
    nothing to move (204, as RabbitMQ on one node)."""
    require(ctx.user, ADMINISTRATOR)
    return web.Response(status=NO_CONTENT)


async def vhost_start(ctx, vhost_name: str, node: str):
    """``POST /api/vhosts/{vhost}/start/{node}`` (administrator): restart a vhost that failed on a node.
    WarrenMQ's vhosts cannot be down, so for an existing vhost on this node it is done (204); another node
    and a missing vhost are RabbitMQ's 400s."""
    require(ctx.user, ADMINISTRATOR)
    if node != ctx.node:
        raise bad_request(f"Request to node {node} failed with nodedown")
    if vhost_name not in ctx.broker.vhosts:
        escaped = vhost_name.replace("\\", "\\\\").replace('"', '\\"')
        raise bad_request(f'Request to node {node} failed with {{no_such_vhost,<<"{escaped}">>}}')
    return web.Response(status=NO_CONTENT)


#: (segments after /api/, {method: handler})
ROUTES = [
    (("bindings", P, "e", P, P, P), {"GET": bindings_between, "POST": binding_create}),
    (("bindings", P, "e", P, P, P, P), {"GET": binding_get, "DELETE": binding_delete}),
    (("exchanges", P, P, "publish"), {"POST": exchange_publish}),
    (("queues", P, P, "get"), {"POST": queue_get}),
    (("health", "checks", "virtual-hosts"), {"GET": health_virtual_hosts}),
    (("health", "checks", "port-listener", P), {"GET": health_port_listener}),
    (("health", "checks", "protocol-listener", P), {"GET": health_protocol_listener}),
    (("health", "checks", "node-is-quorum-critical"), {"GET": health_single_node}),
    (("health", "checks", "node-is-mirror-sync-critical"), {"GET": health_single_node}),
    (("health", "checks", "certificate-expiration", P, P), {"GET": health_certificate_expiration}),
    (("healthchecks", "node"), {"GET": healthchecks_node}),
    (("healthchecks", "node", P), {"GET": healthchecks_node}),
    (("cluster-name",), {"GET": cluster_name_get, "PUT": cluster_name_put}),
    (("extensions",), {"GET": extensions}),
    (("auth",), {"GET": auth_settings}),
    (("auth", "attempts", P), {"GET": auth_attempts, "DELETE": auth_attempts_reset}),
    (("auth", "attempts", P, "source"), {"GET": auth_attempts_by_source, "DELETE": auth_attempts_reset}),
    (("queues", P, P, "actions"), {"POST": queue_actions}),
    (("rebalance", "queues"), {"POST": rebalance_queues}),
    (("vhosts", P, "start", P), {"POST": vhost_start}),
]
