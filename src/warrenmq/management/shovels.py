"""The shovel plugin's management routes (rabbitmq_shovel_management in RabbitMQ 3.10).

Theory of operation: ``GET /api/shovels`` and ``GET /api/shovels/{vhost}`` list the status of the
dynamic shovels (shovel/manager.py), as RabbitMQ's JSON (``node``,
``timestamp``, ``name``, ``vhost``, ``type``, ``state``, and the URIs and queues or exchanges while
running, ``reason`` when terminated); ``DELETE /api/shovels/vhost/{vhost}/{name}/restart`` stops a
shovel and starts it afresh (204; 404 when there is none).  All three need the monitoring tag (or
administrator), as RabbitMQ's plugin checks (401 ``Not monitor user``; checked on the probe).  The shovels themselves are managed as
``shovel`` runtime parameters (``/api/parameters/shovel/...``).  Without a shovel manager (the app
not started yet) these paths are 404, as on a RabbitMQ without the plugin.
"""
from __future__ import annotations

from aiohttp import web

from .auth import MONITORING, require
from .errors import json_response, not_found
from .routes import Ctx

P = None


def _manager(ctx: Ctx):
    require(ctx.user, MONITORING)  # RabbitMQ's shovel management: is_authorized_monitor ("Not monitor user")
    m = getattr(ctx.mgmt.app, "shovels", None)
    if m is None:
        raise not_found()
    return m


async def shovels(ctx: Ctx):
    return json_response(_manager(ctx).status())


async def shovels_in_vhost(ctx: Ctx, vhost: str):
    m = _manager(ctx)
    ctx.vhost(vhost)
    return json_response(m.status(vhost))


async def shovel_restart(ctx: Ctx, vhost: str, name: str):
    m = _manager(ctx)
    ctx.vhost(vhost)
    if not m.restart(vhost, name):
        raise not_found()
    return web.Response(status=204)


#: (segments after /api/, {method: handler}); see dispatch.py
ROUTES = [
    (("shovels",), {"GET": shovels}),
    (("shovels", P), {"GET": shovels_in_vhost}),
    (("shovels", "vhost", P, P, "restart"), {"DELETE": shovel_restart}),
]
