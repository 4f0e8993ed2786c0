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
* The domain's errors are answered as RabbitMQ's ``rabbit_mgmt_util:direct_request`` answers them:
  NOT_FOUND ``404 not_found`` with the AMQP explanation, ACCESS_REFUSED ``401 "Access refused."``,
  anything else ``400 bad_request`` with the explanation (:func:`direct`).
"""
from __future__ import annotations

from aiohttp import web

from ..broker.access import READ, WRITE
from ..broker.exchanges import _thaw, args_key
from ..protocol.errors import AMQPError
from ..protocol.spec import ACCESS_REFUSED, NOT_FOUND
from . import views
from .errors import ApiError, access_refused, bad_request, json_response, not_found

P = None  # a path parameter
CREATED = 201
NO_CONTENT = 204

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
        return ctx.list([], ("source", "routing_key"))
    vh, source, kind, dest = _endpoints(ctx, vhost_name, source, dtype, dest)
    return ctx.list(_between(vh, source, kind, dest), ("source", "routing_key"))


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
    args = body.get("arguments") or {}
    if not isinstance(args, dict):
        raise bad_request("arguments must be an object")
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


#: (segments after /api/, {method: handler})
ROUTES = [
    (("bindings", P, "e", P, P, P), {"GET": bindings_between, "POST": binding_create}),
    (("bindings", P, "e", P, P, P, P), {"GET": binding_get, "DELETE": binding_delete}),
]
