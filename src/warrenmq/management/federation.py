"""The federation plugin's management endpoints: ``/api/federation-links`` and ``/api/federation-links/{vhost}``.

Theory of operation: the broker's federation service (warrenmq.federation.links) keeps each link's
status; these handlers list it as RabbitMQ's rabbitmq_federation_management does (``node``,
``exchange``/``queue``, ``upstream_exchange``/``upstream_queue``, ``type``, ``vhost``, ``upstream``,
``id``, ``status``, ``error`` or ``local_connection``, ``uri`` without credentials, ``timestamp``),
for monitoring users (all vhosts) and management users (the vhosts they may see), paginated and
sorted like every list.
"""
from __future__ import annotations

from .auth import sees_all, visible_vhost
from .routes import Ctx

P = None


def _links(ctx: Ctx, vhost: str | None) -> list:
    service = getattr(ctx.broker, "federation", None)
    if service is None:
        return []
    items = service.status(vhost, ctx.node)
    if not sees_all(ctx.user):
        items = [i for i in items if visible_vhost(ctx.broker, ctx.user, i["vhost"])]
    return items


async def links(ctx: Ctx):
    return ctx.list(_links(ctx, None), ("vhost", "id"))


async def vhost_links(ctx: Ctx, vhost: str):
    ctx.vhost(vhost)
    return ctx.list(_links(ctx, vhost), ("vhost", "id"))


ROUTES = [
    (["federation-links"], {"GET": links}),
    (["federation-links", P], {"GET": vhost_links}),
]

