"""Further routes RabbitMQ 3.10's management plugin serves and tools call: a user's connections
(``/api/connections/username/{user}``), the node's memory breakdown (``/api/nodes/{node}/memory`` and
``.../relative``), feature flags (``/api/feature-flags``, ``/api/feature-flags/{name}/enable``) and
``/api/all-configuration`` (the definitions' old name).

Theory of operation: each handler reads the domain as it is when asked, nothing is kept.

* A user's connections are the open sessions of that user, listed as RabbitMQ lists its tracked
  connections (``name``, ``node``, ``user``, ``vhost``; paginated like every list); DELETE closes each
  one with 320 ``CONNECTION_FORCED`` (``X-Reason`` replaces the text after ``CONNECTION_FORCED - ``),
  the way ``DELETE /api/connections/{name}`` does, and answers 204 even when there was none.
  Monitoring and administrator users may name anybody (RabbitMQ 3.10 answers other users with a
  500); others see and close only their own (401 ``User not authorised to access object`` otherwise).
* The memory breakdown has RabbitMQ's keys (so its UI and tools find them) with what WarrenMQ can
  attribute: ``binary`` the message bodies queues hold in memory (the memory monitor's count),
  ``queue_procs``/``quorum_queue_procs`` the queues' structures (the estimate of each queue's
  ``memory``), and ``other_system`` the rest of the process's resident set (the interpreter, its code,
  connections, the store's index); keys of Erlang things WarrenMQ does not have are 0.  ``total`` is
  ``{"rss", "allocated", "erlang"}``, all the resident set size (strategy ``rss``, as RabbitMQ's
  default); ``/relative`` gives each key as a whole percentage of it.
* Feature flags: the ones RabbitMQ 3.10 lists, with ``enabled`` for the behaviours WarrenMQ has and
  ``stream_queue`` ``disabled`` (no stream queues, and enabling it is refused ``unsupported``, the
  answer RabbitMQ gives a flag it does not know).
"""
from __future__ import annotations

from aiohttp import web

from . import views
from .auth import ADMINISTRATOR, MONITORING, require, sees_all
from .definitions import get_all as definitions_get, post_all as definitions_post
from .errors import bad_request, json_response, not_authorised, not_found
from .routes import FORCED_TEXT, Ctx
from .stats import _ENTRY_SIZE, _QUEUE_BASE

P = None
NO_CONTENT = 204
OBJECT_REFUSED = "User not authorised to access object"


# ------------------------------------------------------------------- connections of a user
def _user_sessions(ctx: Ctx, user: str) -> list:
    if user != ctx.user.name and not sees_all(ctx.user):
        raise not_authorised(OBJECT_REFUSED)
    return [s for s in ctx.broker.sessions
            if not s.closed and s.user is not None and s.user.name == user]


async def user_connections(ctx: Ctx, user: str):
    items = [{"name": views.connection_name(s), "node": ctx.node, "user": user,
              "vhost": s.vhost.name if s.vhost is not None else None} for s in _user_sessions(ctx, user)]
    return ctx.list(items, ("name",))


async def user_connections_delete(ctx: Ctx, user: str):
    if user != ctx.user.name:
        require(ctx.user, ADMINISTRATOR)
    sessions = _user_sessions(ctx, user)
    reason = ctx.request.headers.get("X-Reason")
    text = f"CONNECTION_FORCED - {reason}" if reason else FORCED_TEXT
    for s in sessions:
        ctx.mgmt.close_session(s, text)
    return web.Response(status=NO_CONTENT)


# ------------------------------------------------------------------- node memory
#: RabbitMQ 3.10's memory breakdown keys, in its order
MEMORY_KEYS = ("connection_readers", "connection_writers", "connection_channels", "connection_other",
               "queue_procs", "queue_slave_procs", "quorum_queue_procs", "quorum_queue_dlx_procs",
               "stream_queue_procs", "stream_queue_replica_reader_procs", "stream_queue_coordinator_procs",
               "plugins", "other_proc", "metrics", "mgmt_db", "mnesia", "quorum_ets", "other_ets", "binary",
               "msg_index", "code", "atom", "other_system", "allocated_unused", "reserved_unallocated")


def memory_breakdown(broker) -> dict:
    """The breakdown (see the module docstring), in bytes."""
    out = dict.fromkeys(MEMORY_KEYS, 0)
    classic = quorum = 0
    for vh in broker.vhosts.values():
        for q in vh.queues.values():
            size = _QUEUE_BASE + (len(q.messages) + q.unacked) * _ENTRY_SIZE
            if q.queue_type == "quorum":
                quorum += size
            else:
                classic += size
    rss = views.rss_bytes()
    out["queue_procs"] = classic
    out["quorum_queue_procs"] = quorum
    out["binary"] = broker.memory.used
    attributed = sum(out.values())
    out["other_system"] = max(rss - attributed, 0)
    total = max(rss, attributed)
    out["strategy"] = "rss"
    out["total"] = {"erlang": total, "rss": total, "allocated": total}
    return out


def _node(ctx: Ctx, name: str) -> None:
    require(ctx.user, MONITORING)
    if name != ctx.node:
        raise not_found()


async def node_memory(ctx: Ctx, name: str):
    _node(ctx, name)
    return json_response({"memory": memory_breakdown(ctx.broker)})


async def node_memory_relative(ctx: Ctx, name: str):
    _node(ctx, name)
    absolute = memory_breakdown(ctx.broker)
    total = absolute["total"]["rss"] or 1
    rel = {"total": 100}
    for k in MEMORY_KEYS:
        v = absolute[k]
        rel[k] = 0 if not v else max(round(100 * v / total), 1)  # RabbitMQ shows a present part as at least 1
    return json_response({"memory": rel})


# ------------------------------------------------------------------- feature flags
#: (name, description, provided_by, state): RabbitMQ 3.10.8's list, as a one-node WarrenMQ has them
FEATURE_FLAGS = (
    ("classic_mirrored_queue_version", "Support setting version for classic mirrored queues", "rabbit",
     "enabled"),
    ("drop_unroutable_metric", "Count unroutable publishes to be dropped in stats", "rabbitmq_management_agent",
     "enabled"),
    ("empty_basic_get_metric", "Count AMQP `basic.get` on empty queues in stats", "rabbitmq_management_agent",
     "enabled"),
    ("implicit_default_bindings", "Default bindings are now implicit, instead of being stored in the database",
     "rabbit", "enabled"),
    ("maintenance_mode_status", "Maintenance mode status", "rabbit", "enabled"),
    ("quorum_queue", "Support queues of type `quorum`", "rabbit", "enabled"),
    ("stream_queue", "Support queues of type `stream`", "rabbit", "disabled"),
    ("user_limits", "Configure connection and channel limits for a user", "rabbit", "enabled"),
    ("virtual_host_metadata", "Virtual host metadata (description, tags, etc)", "rabbit", "enabled"),
)


async def feature_flags(ctx: Ctx):
    require(ctx.user, ADMINISTRATOR)
    items = [{"name": n, "desc": d, "doc_url": "", "state": st, "stability": "stable", "provided_by": by}
             for n, d, by, st in FEATURE_FLAGS]
    return ctx.list(items, ("name",))


async def feature_flag_enable(ctx: Ctx, name: str):
    require(ctx.user, ADMINISTRATOR)
    for n, _, _, state in FEATURE_FLAGS:
        if n == name and state == "enabled":
            return web.Response(status=NO_CONTENT)
    raise bad_request("unsupported")


#: (segments after /api/, {method: handler}); see dispatch.py
ROUTES = [
    (("connections", "username", P), {"GET": user_connections, "DELETE": user_connections_delete}),
    (("nodes", P, "memory"), {"GET": node_memory}),
    (("nodes", P, "memory", "relative"), {"GET": node_memory_relative}),
    (("feature-flags",), {"GET": feature_flags}),
    (("feature-flags", P, "enable"), {"PUT": feature_flag_enable}),
    (("all-configuration",), {"GET": definitions_get, "POST": definitions_post}),
]
