"""The federation plugin's management endpoints (rabbitmq_federation_management 3.10's routes):
``/api/federation-links``, ``/api/federation-links/{vhost}``, ``/api/federation-links/state/down``,
``/api/federation-links/{vhost}/state/down`` and ``DELETE
/api/federation-links/vhost/{vhost}/{id}/{node}/restart``.

Theory of operation: the broker's federation service (warrenmq.federation.links) keeps each link's
status; these handlers list it as RabbitMQ does (``node``, ``exchange``/``queue``,
``upstream_exchange``/``upstream_queue``, ``type``, ``vhost``, ``upstream``, ``id``, ``status``,
``error`` or ``local_connection``, ``uri`` without credentials, ``timestamp``), for monitoring users
and administrators only (RabbitMQ's ``is_authorized_monitor``), paginated and sorted like every list;
``state/down`` lists the links neither running nor starting.  A restart closes the link's
connections and starts it again at once (204; 404 for an unknown id, node or vhost).
"""
from __future__ import annotations

from aiohttp import web

from .auth import MONITORING, require
from .errors import not_found
from .routes import Ctx

P = None


def _links(ctx: Ctx, vhost: str | None, down: bool = False) -> list:
    require(ctx.user, MONITORING)
    if vhost is not None:
        ctx.vhost(vhost)
    service = getattr(ctx.broker, "federation", None)
    if service is None:
        return []
    items = service.status(vhost, ctx.node)
    if down:
        items = [i for i in items if i["status"] not in ("running", "starting")]
    return items


async def links(ctx: Ctx):
    return ctx.list(_links(ctx, None), ("vhost", "id"))


async def vhost_links(ctx: Ctx, vhost: str):
    return ctx.list(_links(ctx, vhost), ("vhost", "id"))


async def down_links(ctx: Ctx):
    return ctx.list(_links(ctx, None, down=True), ("vhost", "id"))


async def vhost_down_links(ctx: Ctx, vhost: str):
    return ctx.list(_links(ctx, vhost, down=True), ("vhost", "id"))


async def restart(ctx: Ctx, vhost: str, link_id: str, node: str):
    require(ctx.user, MONITORING)
    ctx.vhost(vhost)
    service = getattr(ctx.broker, "federation", None)
    if service is None or node != ctx.node or not service.restart(vhost, link_id):
        raise not_found()
    return web.Response(status=204)


#: (segments after /api/, {method: handler}); see dispatch.py
ROUTES = [
    (["federation-links"], {"GET": links}),
    (["federation-links", "state", "down"], {"GET": down_links}),
    (["federation-links", P], {"GET": vhost_links}),
    (["federation-links", P, "state", "down"], {"GET": vhost_down_links}),
    (["federation-links", "vhost", P, P, P, "restart"], {"DELETE": restart}),
]
