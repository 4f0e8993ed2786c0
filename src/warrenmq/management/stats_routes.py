"""The management API's channel and consumer endpoints (RabbitMQ's ``rabbit_mgmt_wm_channel*`` and
``rabbit_mgmt_wm_consumers``).

Theory of operation: a user sees the channels and consumers of the connections
it may see (:func:`.routes.visible_sessions`: its own, or every one with the
monitoring or administrator tag), as RabbitMQ shows them; a vhost's listing
also needs access to the vhost (:meth:`.routes.Ctx.vhost`).  Each item is
built by :mod:`.channels` and given its ``message_stats`` by
:class:`.stats.Stats`; lists go through the shared list helper (sort, filter,
paginate, columns).
"""
from __future__ import annotations

from . import channels as views
from .errors import json_response, not_found
from .routes import P, Ctx, _session, visible_sessions


def _channels(ctx: Ctx, sessions) -> list:
    node, st = ctx.node, ctx.mgmt.stats
    return [st.channel(ch, views.channel(ch, node)) for s in sessions
            for ch in list(getattr(s, "channels", {}).values())]


async def channels(ctx: Ctx):
    return ctx.list(_channels(ctx, visible_sessions(ctx)), ("name",))


async def channel_get(ctx: Ctx, name: str):
    for s in visible_sessions(ctx):
        for ch in getattr(s, "channels", {}).values():
            if views.channel_name(s, ch.number) == name:
                data = ctx.mgmt.stats.channel(ch, views.channel(ch, ctx.node))
                data["consumer_details"] = [views.consumer(c, ctx.node) for c in ch.consumers.values()]
                data["deliveries"] = []
                data["publishes"] = []
                return json_response(data)
    raise not_found()


async def connection_channels(ctx: Ctx, name: str):
    return ctx.list(_channels(ctx, [_session(ctx, name)]), ("name",))


async def vhost_channels(ctx: Ctx, vhost_name: str):
    vh = ctx.vhost(vhost_name)
    return ctx.list(_channels(ctx, [s for s in visible_sessions(ctx) if s.vhost is vh]), ("name",))


async def consumers(ctx: Ctx, vhost_name: str | None = None):
    vh = ctx.vhost(vhost_name) if vhost_name is not None else None
    node = ctx.node
    items = []
    for s in visible_sessions(ctx):
        if vh is not None and s.vhost is not vh:
            continue
        for ch in list(getattr(s, "channels", {}).values()):
            items.extend(views.consumer(c, node) for c in ch.consumers.values())
    return ctx.list(items, ("consumer_tag",))


ROUTES = [
    (("channels",), {"GET": channels}),
    (("channels", P), {"GET": channel_get}),
    (("connections", P, "channels"), {"GET": connection_channels}),
    (("vhosts", P, "channels"), {"GET": vhost_channels}),
    (("consumers",), {"GET": consumers}),
    (("consumers", P), {"GET": consumers}),
]
