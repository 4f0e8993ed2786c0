"""Wiring: a broker, its listeners, and a process that serves until told to stop.

Theory of operation: :class:`BrokerApp` couples one
:class:`~warrenmq.broker.broker.Broker` to its AMQP listener
(:class:`~warrenmq.transport.server.Server`).  :func:`run` is what the
``warrenmq`` command calls: it installs uvloop when available, starts the app,
and on SIGINT/SIGTERM closes every client connection with CONNECTION_FORCED
before exiting, as RabbitMQ does on shutdown.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from .broker.broker import Broker
from .config import BrokerConfig
from .transport.server import Server

log = logging.getLogger("warrenmq")


class BrokerApp:
    def __init__(self, config: BrokerConfig | None = None, broker: Broker | None = None):
        self.config = config or BrokerConfig()
        self.broker = broker or Broker(self.config)
        self.server = Server(self.broker, self.config.host, self.config.port)

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        await self.server.start()

    async def stop(self, timeout: float = 2.0) -> None:
        await self.server.stop(timeout)


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def serve(config: BrokerConfig, ready=None) -> None:
    app = BrokerApp(config)
    await app.start()
    log.info("WarrenMQ listening on %s:%s", config.host, app.port)
    if ready is not None:
        ready(app)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-main thread / Windows
            pass
    await stop.wait()
    log.info("shutting down: closing %d connections", len(app.server.connections))
    await app.stop()


def run(config: BrokerConfig | None = None) -> None:
    config = config or BrokerConfig.load()
    if config.use_uvloop:
        install_uvloop()
    asyncio.run(serve(config))
