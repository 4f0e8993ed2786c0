"""The shovel plugin: the ``shovel`` parameter component and the running shovels.

Theory of operation: :meth:`ShovelManager.attach` registers the ``shovel`` component with the broker's
runtime parameters (broker/parameters.py), so ``PUT /api/parameters/shovel/...``, ``warrenmq ctl
set_parameter shovel ...`` and a definitions import all validate through :func:`.params.validate` and
start a :class:`~.worker.Shovel` through ``on_set``; clearing the parameter stops it.  Parameters
recovered from the definitions store at boot are handed to ``on_set`` when the component registers,
so shovels restart with the broker.  The app attaches the manager as soon as the broker exists (before
a definitions file is imported: it may define shovels) and stops every shovel first on shutdown.  Status
(``/api/shovels``, ``warrenmq ctl shovel_status``) is read from the shovels when asked.
"""
from __future__ import annotations

import asyncio
import logging

from ..amqp.session import server_properties
from .params import parse, validate
from .worker import Shovel

COMPONENT = "shovel"
log = logging.getLogger("warrenmq.shovel")


class ShovelManager:
    def __init__(self, broker):
        self.broker = broker
        self.shovels: dict = {}  # (vhost, name) -> Shovel
        self.node = server_properties()["cluster_name"]
        self.stopping: set = set()  # tasks stopping replaced or cleared shovels

    def attach(self) -> None:
        self.broker.register_parameter_component(COMPONENT, self.validate, self.on_set, self.on_clear, takes_user=True)

    # ------------------------------------------------------------ the component
    def validate(self, vhost: str, name: str, value, user=None) -> None:
        """RabbitMQ's checks; a local URI's vhost must exist and, when the setter is known, be one it may
        open (RabbitMQ's ``user "u" may not connect to vhost "v"``)."""
        b = self.broker
        if user is None:
            validate(vhost, name, value, vhost_refused=lambda v: f'vhost "{v}" does not exist' if v not in b.vhosts
                     else None)
        else:
            validate(vhost, name, value, vhost_refused=lambda v: None if v in b.vhosts and b.user_can_access(user, v)
                     else f'user "{user.name}" may not connect to vhost "{v}"')

    def on_set(self, vhost: str, name: str, value) -> None:
        self._stop((vhost, name))
        try:
            s = Shovel(self, vhost, name, parse(value))
            s.start()
        except Exception:  # noqa: BLE001 - a stored parameter must not fail the request or the boot that set it
            log.exception("shovel '%s' in vhost '%s' could not start", name, vhost)
            return
        self.shovels[(vhost, name)] = s

    def on_clear(self, vhost: str, name: str) -> None:
        self._stop((vhost, name))

    def _stop(self, key) -> None:
        old = self.shovels.pop(key, None)
        if old is not None:
            old.stopped = True
            t = asyncio.get_running_loop().create_task(old.stop())
            self.stopping.add(t)
            t.add_done_callback(self.stopping.discard)

    def completed(self, shovel: Shovel) -> None:
        """``src-delete-after`` reached: the shovel deletes itself (its parameter), as RabbitMQ's does."""
        if self.shovels.get((shovel.vhost, shovel.name)) is shovel:
            try:
                self.broker.clear_parameter(COMPONENT, shovel.vhost, shovel.name)
            except KeyError:
                self.shovels.pop((shovel.vhost, shovel.name), None)

    def restart(self, vhost: str, name: str) -> bool:
        """Stop the shovel and start it afresh (``DELETE /api/shovels/vhost/V/N/restart``); False if none."""
        s = self.shovels.get((vhost, name))
        if s is None:
            return False
        value = self.broker.parameters.get((COMPONENT, vhost, name))
        if value is None:
            return False
        self.on_set(vhost, name, value)
        return True

    # ------------------------------------------------------------ status
    def status(self, vhost: str | None = None) -> list:
        return [s.status(self.node) for (v, n), s in sorted(self.shovels.items(), key=lambda kv: (kv[0][1], kv[0][0]))
                if vhost is None or v == vhost]

    async def stop(self) -> None:
        shovels = list(self.shovels.values())
        self.shovels.clear()
        self.broker.components.unregister(COMPONENT)
        await asyncio.gather(*(s.stop() for s in shovels), return_exceptions=True)
        if self.stopping:
            await asyncio.gather(*list(self.stopping), return_exceptions=True)
