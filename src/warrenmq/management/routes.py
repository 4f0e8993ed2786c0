"""The management API's endpoints (RabbitMQ's ``rabbit_mgmt_dispatcher``, the part built so far).

Theory of operation: :data:`ROUTES` maps a path pattern (literal segments,
and ``None`` for a parameter) to a handler per HTTP method.  Paths are matched
on the *raw* path split at ``/`` with each segment percent-decoded afterwards,
so a vhost named ``/`` is ``%2F`` and a queue name may contain ``/``
(``%2F``) or ``%`` (``%25``), as RabbitMQ's paths allow.  A path no pattern
matches is 404 before authentication; a matched path with a method it does
not serve is 405; otherwise the request is authenticated (:mod:`.auth`) and
the handler runs on the broker's loop, reading the domain directly.

Changes go through the domain's API, the code path AMQP uses:
``VHost.declare_queue``/``delete_queue``/``declare_exchange``/
``delete_exchange``, ``Queue.purge``, and for the aliveness test
``VHost.publish`` and ``Queue.get``.  The domain's AMQP errors become
RabbitMQ's management answers (:func:`amqp_error`): NOT_FOUND 404,
ACCESS_REFUSED 401 (``not_authorized``), others 400 ``bad_request`` with the
AMQP text (``inequivalent arg ...``, without ``PRECONDITION_FAILED - ``, as
RabbitMQ 3.10 answers); the server's error middleware applies it to any AMQP
error a handler lets through.
"""
from __future__ import annotations

import json

from ..broker.access import CONFIGURE, READ
from ..broker.alarms import Alarm
from ..broker.message import Message
from ..protocol.errors import AMQPError
from ..protocol.properties import content_header
from ..protocol.spec import ACCESS_REFUSED, NOT_FOUND, BasicProperties
from . import channels, views
from .auth import MONITORING, require, sees_all, visible_vhost
from .errors import ApiError, access_refused, bad_request, json_response, not_authorised, not_found
from .listing import respond
from .stats import unacked_entries
from aiohttp import web

NO_CONTENT = 204
CREATED = 201

#: the reply text connections closed by DELETE /api/connections/{name} get (with X-Reason: its reason)
FORCED_TEXT = "CONNECTION_FORCED - Closed via management plugin"

#: the names RabbitMQ's health checks give the alarms
ALARM_RESOURCES = {Alarm.MEMORY: "memory", Alarm.DISK_FREE: "disk", Alarm.STORE_FAILED: "message_store"}


class Ctx:
    """One authenticated request: the broker, the user, the query, the management server."""
    __slots__ = ("mgmt", "broker", "user", "query", "request", "node")

    def __init__(self, mgmt, user, request):
        self.mgmt = mgmt
        self.broker = mgmt.broker
        self.user = user
        self.query = request.query
        self.request = request
        self.node = mgmt.node

    def may(self, vhost: str, kind: str, name: str, perm: str) -> None:
        """401 "Access refused." unless the user has ``perm`` on queue/exchange ``name`` (the permission
        the same operation needs over AMQP: configure to declare or delete, read to purge)."""
        try:
            self.broker.check_resource(self.user, vhost, kind, name, perm)
        except AMQPError:
            raise access_refused() from None

    def vhost(self, name: str, write: bool = False, creating: bool = False):
        """The vhost ``name`` if the user may see it (``write``: act in it); else 404/401 (``creating``: 404
        ``vhost_not_found``, as RabbitMQ answers a PUT of a queue or exchange in a missing vhost)."""
        vh = self.broker.vhosts.get(name)
        if vh is None:
            raise ApiError(404, "not_found", "vhost_not_found") if creating else not_found()
        allowed = (self.broker.user_can_access(self.user, name) if write
                   else visible_vhost(self.broker, self.user, name))
        if not allowed:
            raise not_authorised("User not authorised to access virtual host")
        return vh

    def visible_vhosts(self) -> list:
        b = self.broker
        return [vh for name, vh in b.vhosts.items() if visible_vhost(b, self.user, name)]

    def list(self, items: list, default_sort=("vhost", "name")) -> web.Response:
        return json_response(respond(items, self.query, default_sort))

    async def body(self) -> dict:
        raw = await self.request.read()
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad_request("not_json") from None
        if isinstance(data, str):  # RabbitMQ's with_decode
            raise bad_request("invalid payload: the request body JSON-decoded to a string. "
                              "Is the input doubly-JSON-encoded?")
        if not isinstance(data, dict):
            raise bad_request("not_json")
        return data


def amqp_error(e: AMQPError) -> ApiError:
    if e.code == NOT_FOUND:
        return ApiError(404, "not_found", e.reply_text)
    if e.code == ACCESS_REFUSED:  # RabbitMQ 3.10 does not pass the AMQP text on
        return access_refused()
    return bad_request(e.text)  # RabbitMQ: the AMQP text without the reply code's name


def _flag(query, name: str) -> bool:
    return query.get(name, "").lower() == "true"


def _bool_field(body: dict, key: str, default: bool) -> bool:
    v = body.get(key, default)
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    if not isinstance(v, bool):
        raise ApiError(400, "bad_request", ["not_boolean", v])  # RabbitMQ's rabbit_mgmt_util:parse_bool
    return v


#: the integers an AMQP field table can hold (signed 64-bit, and unsigned 64-bit as ``L``)
_TABLE_INT_MIN, _TABLE_INT_MAX = -(1 << 63), (1 << 64) - 1


def _table_value_error(v) -> str | None:
    if v is None:
        return "null_not_allowed"
    if isinstance(v, dict):
        return table_error(v)
    if isinstance(v, list):
        for x in v:
            err = _table_value_error(x)
            if err:
                return err
    elif isinstance(v, int) and not isinstance(v, bool) and not _TABLE_INT_MIN <= v <= _TABLE_INT_MAX:
        return f"{v} does not fit in an AMQP field table (64-bit integers at most)"
    return None


def table_error(table: dict) -> str | None:
    """Why a JSON object cannot be the AMQP field table of a queue's, exchange's or binding's arguments,
    or None: a null anywhere (RabbitMQ's ``null_not_allowed``), an integer beyond 64 bits or a key longer
    than 255 bytes (RabbitMQ 3.10 keeps those as Erlang terms; WarrenMQ's arguments are AMQP tables, as
    its store and every AMQP client know them, so it refuses them before anything is made)."""
    for k, v in table.items():
        if len(k.encode("utf-8", "surrogateescape")) > 255:
            return f"argument name longer than 255 bytes: {k[:40]}..."
        err = _table_value_error(v)
        if err:
            return err
    return None


def table_arguments(args) -> dict:
    """The ``arguments`` of a request body as an AMQP field table, or a 400 (see :func:`table_error`)."""
    if args is None or args == []:  # RabbitMQ reads an empty list as an empty table
        return {}
    if not isinstance(args, dict):
        raise bad_request("arguments must be an object")
    err = table_error(args)
    if err:
        raise bad_request(err)
    return args


def _arguments(body: dict) -> dict:
    return table_arguments(body.get("arguments"))


# ------------------------------------------------------------------- overview / node
async def overview(ctx: Ctx):
    vhosts = ctx.visible_vhosts()
    queues = exchanges = consumers = ready = unacked = 0
    for vh in vhosts:
        queues += len(vh.queues)
        exchanges += len(vh.exchanges)
        for q in vh.queues.values():
            consumers += len(q.consumers)
            ready += len(q.messages)
            unacked += q.unacked
    sessions = visible_sessions(ctx)
    return json_response(ctx.mgmt.stats.overview(vhosts, {
        "cluster_name": ctx.broker.cluster_name or ctx.node,
        "contexts": [{"description": "RabbitMQ Management", "node": ctx.node, "path": "/",
                      "port": str(ctx.mgmt.port)}],
        "disable_stats": False,
        "enable_queue_totals": False,
        "exchange_types": views.exchange_types(),
        "listeners": ctx.mgmt.listeners(),
        "management_version": views.MANAGEMENT_VERSION,
        "message_stats": {},
        "node": ctx.node,
        "object_totals": {"channels": sum(len(s.channels) for s in sessions), "connections": len(sessions),
                          "consumers": consumers, "exchanges": exchanges, "queues": queues},
        "product_name": "RabbitMQ",
        "product_version": views.MANAGEMENT_VERSION,
        "queue_totals": {"messages": ready + unacked, "messages_ready": ready,
                         "messages_unacknowledged": unacked},
        "rabbitmq_version": views.MANAGEMENT_VERSION,
        "rates_mode": "none",
        "statistics_db_event_queue": 0,
        "warrenmq_version": _version(),
    }))


def _version() -> str:
    from .. import __version__
    return __version__


async def whoami(ctx: Ctx):
    return json_response({"name": ctx.user.name, "tags": list(ctx.user.tags)})


async def nodes(ctx: Ctx):
    require(ctx.user, MONITORING)
    return ctx.list([views.node(ctx.broker, ctx.node)], ("name",))


async def node(ctx: Ctx, name: str):
    require(ctx.user, MONITORING)
    if name != ctx.node:
        raise not_found()
    return json_response(views.node(ctx.broker, ctx.node))


# ------------------------------------------------------------------- queues
async def queues(ctx: Ctx, vhost_name: str | None = None):
    vhs = [ctx.vhost(vhost_name)] if vhost_name is not None else ctx.visible_vhosts()
    node_ = ctx.node
    st = ctx.mgmt.stats
    held = unacked_entries(ctx.broker)  # one pass over the channels for every queue's unacked bytes
    return ctx.list([st.queue(q, views.queue(q, node_), held) for vh in vhs for q in vh.queues.values()])


def _queue(ctx: Ctx, vhost_name: str, name: str, write: bool = False):
    vh = ctx.vhost(vhost_name, write)
    q = vh.queues.get(name)
    if q is None:
        raise not_found()
    return vh, q


async def queue_get(ctx: Ctx, vhost_name: str, name: str):
    _, q = _queue(ctx, vhost_name, name)
    data = ctx.mgmt.stats.queue(q, views.queue(q, ctx.node))
    data["consumer_details"] = [channels.consumer(c, ctx.node) for c in q.consumers]
    data["deliveries"] = data["incoming"] = []  # per-channel breakdowns: RabbitMQ's at its basic rates mode
    return json_response(data)


async def queue_put(ctx: Ctx, vhost_name: str, name: str):
    vh = ctx.vhost(vhost_name, write=True, creating=True)
    ctx.may(vh.name, "queue", name, CONFIGURE)
    body = await ctx.body()
    durable = _bool_field(body, "durable", False)  # RabbitMQ 3.10: AMQP's default
    auto_delete = _bool_field(body, "auto_delete", False)
    _, created = vh.declare_queue(name, None, durable=durable, auto_delete=auto_delete,
                                  arguments=_arguments(body))
    return web.Response(status=CREATED if created else NO_CONTENT)


async def queue_delete(ctx: Ctx, vhost_name: str, name: str):
    vh, q = _queue(ctx, vhost_name, name, write=True)
    ctx.may(vh.name, "queue", q.name, CONFIGURE)
    vh.check_exclusive(q, None)
    if _flag(ctx.query, "if-unused") and q.consumers:
        raise bad_request(f"queue '{name}' in vhost '{vh.name}' in use")
    if _flag(ctx.query, "if-empty") and q.messages:
        raise bad_request(f"queue '{name}' in vhost '{vh.name}' not empty")
    vh.delete_queue(q)
    return web.Response(status=NO_CONTENT)


async def queue_purge(ctx: Ctx, vhost_name: str, name: str):
    vh, q = _queue(ctx, vhost_name, name, write=True)
    ctx.may(vh.name, "queue", q.name, READ)
    vh.check_exclusive(q, None)
    q.purge()
    return web.Response(status=NO_CONTENT)


async def queue_bindings(ctx: Ctx, vhost_name: str, name: str):
    # RabbitMQ 3.10 does not look the queue up: a missing one has the default exchange's binding
    vh = ctx.vhost(vhost_name)
    items = [b for b in views.bindings(vh) if b["destination_type"] == "queue" and b["destination"] == name]
    if name not in vh.queues:
        items.insert(0, views.default_binding(vh.name, name))
    return ctx.list(items, ("source", "routing_key"))


# ------------------------------------------------------------------- exchanges
async def exchanges(ctx: Ctx, vhost_name: str | None = None):
    vhs = [ctx.vhost(vhost_name)] if vhost_name is not None else ctx.visible_vhosts()
    st = ctx.mgmt.stats
    return ctx.list([st.exchange(ex, views.exchange(ex)) for vh in vhs for ex in vh.exchanges.values()])


def _exchange(ctx: Ctx, vhost_name: str, name: str, write: bool = False):
    vh = ctx.vhost(vhost_name, write)
    ex = vh.exchanges.get(views.exchange_from_path(name))
    if ex is None:
        raise not_found()
    return vh, ex


async def exchange_get(ctx: Ctx, vhost_name: str, name: str):
    _, ex = _exchange(ctx, vhost_name, name)
    data = ctx.mgmt.stats.exchange(ex, views.exchange(ex))
    data["incoming"] = data["outgoing"] = []  # per-channel/queue breakdowns, as RabbitMQ's at basic rates mode
    return json_response(data)


async def exchange_put(ctx: Ctx, vhost_name: str, name: str):
    vh = ctx.vhost(vhost_name, write=True, creating=True)
    body = await ctx.body()
    type_ = body.get("type", "direct")  # RabbitMQ 3.10 declares a direct exchange when no type is given
    if not isinstance(type_, str) or not type_:
        raise bad_request("[{key_missing,type}]")
    name = views.exchange_from_path(name)
    ctx.may(vh.name, "exchange", name, CONFIGURE)
    existed = name in vh.exchanges
    vh.declare_exchange(name, type_, durable=_bool_field(body, "durable", False),
                        auto_delete=_bool_field(body, "auto_delete", False),
                        internal=_bool_field(body, "internal", False), arguments=_arguments(body))
    return web.Response(status=NO_CONTENT if existed else CREATED)


async def exchange_delete(ctx: Ctx, vhost_name: str, name: str):
    vh, ex = _exchange(ctx, vhost_name, name, write=True)
    ctx.may(vh.name, "exchange", ex.name, CONFIGURE)
    vh.delete_exchange(ex.name, _flag(ctx.query, "if-unused"))
    return web.Response(status=NO_CONTENT)


# RabbitMQ 3.10 does not look the exchange up: a missing one has no bindings (200, [])
async def exchange_bindings_source(ctx: Ctx, vhost_name: str, name: str):
    vh, name = ctx.vhost(vhost_name), views.exchange_from_path(name)
    return ctx.list([b for b in views.bindings(vh) if b["source"] == name], ("destination", "routing_key"))


async def exchange_bindings_destination(ctx: Ctx, vhost_name: str, name: str):
    vh, name = ctx.vhost(vhost_name), views.exchange_from_path(name)
    return ctx.list([b for b in views.bindings(vh) if b["destination_type"] == "exchange"
                     and b["destination"] == name], ("source", "routing_key"))


# ------------------------------------------------------------------- bindings
async def bindings(ctx: Ctx, vhost_name: str | None = None):
    vhs = [ctx.vhost(vhost_name)] if vhost_name is not None else ctx.visible_vhosts()
    return ctx.list([b for vh in vhs for b in views.bindings(vh)], ("vhost", "source", "destination"))


# ------------------------------------------------------------------- connections
def visible_sessions(ctx: Ctx) -> list:
    sessions = [s for s in ctx.broker.sessions if not s.closed and s.user is not None]
    if sees_all(ctx.user):
        return sessions
    return [s for s in sessions if s.user.name == ctx.user.name]


def _session(ctx: Ctx, name: str):
    for s in visible_sessions(ctx):
        if views.connection_name(s) == name:
            return s
    raise not_found()


async def connections(ctx: Ctx):
    st = ctx.mgmt.stats
    return ctx.list([st.connection(s, views.connection(s, ctx.node)) for s in visible_sessions(ctx)], ("name",))


async def connection_get(ctx: Ctx, name: str):
    s = _session(ctx, name)
    return json_response(ctx.mgmt.stats.connection(s, views.connection(s, ctx.node)))


async def connection_delete(ctx: Ctx, name: str):
    s = _session(ctx, name)
    reason = ctx.request.headers.get("X-Reason")
    text = f"CONNECTION_FORCED - {reason}" if reason else FORCED_TEXT
    ctx.mgmt.close_session(s, text)
    return web.Response(status=NO_CONTENT)


# ------------------------------------------------------------------- health
ALIVENESS_QUEUE = "aliveness-test"
ALIVENESS_BODY = b"test_message"


async def aliveness_test(ctx: Ctx, vhost_name: str):
    """As RabbitMQ's: declare the queue ``aliveness-test``, publish a message to it through the default
    exchange and get it back."""
    vh = ctx.vhost(vhost_name, write=True)
    q, _ = vh.declare_queue(ALIVENESS_QUEUE, None)
    msg = Message("", ALIVENESS_QUEUE, content_header(BasicProperties(), len(ALIVENESS_BODY)), ALIVENESS_BODY)
    vh.publish(vh.exchanges[""], msg)
    entry = q.get()
    if entry is None:
        return json_response({"status": "failed", "reason": "the test message was not routed"}, 503)
    q.n_get_no_ack += 1  # taken with no ack, counted as basic.get no_ack is (broker/stats.py)
    q.settle(entry)
    return json_response({"status": "ok"})


def _alarms(ctx: Ctx, reason: str):
    alarms = sorted(ALARM_RESOURCES.get(a, a.name.lower()) for a in ctx.broker.alarms)
    if not alarms:
        return json_response({"status": "ok"})
    return json_response({"status": "failed", "reason": reason,
                          "alarms": [{"node": ctx.node, "resource": r} for r in alarms]}, 503)


async def health_alarms(ctx: Ctx):
    return _alarms(ctx, "resource alarm(s) in effect in the cluster")


async def health_local_alarms(ctx: Ctx):
    return _alarms(ctx, "resource alarm(s) in effect on the node")


# ------------------------------------------------------------------- the table
P = None  # a path parameter

#: (segments after /api/, {method: handler})
ROUTES = [
    (("overview",), {"GET": overview}),
    (("whoami",), {"GET": whoami}),
    (("nodes",), {"GET": nodes}),
    (("nodes", P), {"GET": node}),
    (("queues",), {"GET": queues}),
    (("queues", P), {"GET": queues}),
    (("queues", P, P), {"GET": queue_get, "PUT": queue_put, "DELETE": queue_delete}),
    (("queues", P, P, "contents"), {"DELETE": queue_purge}),
    (("queues", P, P, "bindings"), {"GET": queue_bindings}),
    (("exchanges",), {"GET": exchanges}),
    (("exchanges", P), {"GET": exchanges}),
    (("exchanges", P, P), {"GET": exchange_get, "PUT": exchange_put, "DELETE": exchange_delete}),
    (("exchanges", P, P, "bindings", "source"), {"GET": exchange_bindings_source}),
    (("exchanges", P, P, "bindings", "destination"), {"GET": exchange_bindings_destination}),
    (("bindings",), {"GET": bindings}),
    (("bindings", P), {"GET": bindings}),
    (("connections",), {"GET": connections}),
    (("connections", P), {"GET": connection_get, "DELETE": connection_delete}),
    (("aliveness-test", P), {"GET": aliveness_test}),
    (("health", "checks", "alarms"), {"GET": health_alarms}),
    (("health", "checks", "local-alarms"), {"GET": health_local_alarms}),
]
