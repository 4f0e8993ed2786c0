"""The dashboard's web server: static files and the page's configuration, on aiohttp.

It serves static/ (index.html, app.js, style.css and the vendored MQTT.js) and
``/config.json``: where the broker's Web MQTT endpoint is, the vhost and the
devices to show.  It holds no credentials and relays no messages: the page logs
in to the broker itself, over Web MQTT, with the user's name and password, and
the broker decides what that user may read.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "static"


def make_app(web_mqtt_url: str, vhost: str, devices: list[str]) -> web.Application:
    config = {"web_mqtt": web_mqtt_url, "vhost": vhost, "devices": devices}

    async def index(request):
        return web.FileResponse(STATIC / "index.html")

    async def config_json(request):
        return web.json_response(config)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/config.json", config_json)
    app.router.add_static("/static/", STATIC)
    return app


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve ``app``; returns the runner (``await runner.cleanup()`` stops it) and the port (``port`` 0: any)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner, runner.addresses[0][1]
