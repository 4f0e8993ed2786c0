"""A real WarrenMQ broker inside the test process.

Theory of operation: :class:`EmbeddedBroker` runs a :class:`~warrenmq.app.BrokerApp`
on its own event loop in a daemon thread, listening on 127.0.0.1 and an
ephemeral port, for synchronous code (pika's BlockingConnection, kombu, Celery):
``with EmbeddedBroker() as b: pika.URLParameters(b.url)``.
:class:`AsyncEmbeddedBroker` runs on the caller's running loop for asyncio code:
``async with AsyncEmbeddedBroker() as b: await aio_pika.connect(b.url)``.
Either can be started many times in one process; each has its own broker.
``broker`` is the live domain object, for assertions (read it from the broker's
own thread or after stopping when using the threaded variant).

The management HTTP API is off unless asked for: ``EmbeddedBroker(management=True)``
(an ephemeral port) or ``EmbeddedBroker(management_port=N)``;
``management_url`` is then ``http://127.0.0.1:<port>`` (credentials
guest/guest).  aiohttp is imported only then.  Prometheus metrics likewise:
``EmbeddedBroker(prometheus=True)`` (or ``prometheus_port=N``) gives
``prometheus_url`` (append ``/metrics``).

Both carry the back door of :mod:`.backdoor` (``queues``, ``messages``,
``publish``, ``enqueue``, ``wait_for_messages``, ``wait_for_consumers``,
``wait_until_acked``, ``record``, ``reset``): assertions and injection without
AMQP, run on the broker's loop (the threaded variant forwards each call to its
thread).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import shutil
import tempfile
import threading
import weakref

from ..app import BrokerApp
from ..config import BrokerConfig
from .backdoor import AsyncBackdoor, SyncBackdoor


def _config(config: BrokerConfig | None, overrides: dict, durable: bool = False) -> BrokerConfig:
    if durable and "data_dir" in overrides:
        raise ValueError("durable=True makes a temporary data_dir; pass data_dir without durable=True instead")
    if config is None:
        overrides.setdefault("host", "127.0.0.1")
        overrides.setdefault("port", 0)
        overrides.setdefault("data_dir", "")  # in memory unless asked otherwise
        if durable:
            overrides.setdefault("fsync", False)  # surviving a restart of the process needs no fsync
        config = BrokerConfig(**overrides)
    return config


def _management(config_given: bool, overrides: dict, management: bool | None) -> bool:
    """Whether the embedded broker serves the management API: when asked (``management=True``, or a
    ``management_port`` given), on an ephemeral port unless one is given."""
    if management is None:
        management = "management_port" in overrides
    if management and not config_given:
        overrides.setdefault("management_port", 0)
    return management


def _prometheus(config_given: bool, overrides: dict, prometheus: bool | None) -> bool:
    """Whether the embedded broker serves Prometheus metrics: when asked (``prometheus=True``, or a
    ``prometheus_port`` given), on an ephemeral port unless one is given."""
    if prometheus is None:
        prometheus = "prometheus_port" in overrides
    if prometheus and not config_given:
        overrides.setdefault("prometheus_port", 0)
    return prometheus


def _mqtt(config_given: bool, overrides: dict, mqtt: bool | None) -> bool:
    """Whether the embedded broker serves MQTT: when asked (``mqtt=True`` or an ``mqtt_port``), on an
    ephemeral port unless one is given (``broker.mqtt_port``)."""
    if mqtt is None:
        mqtt = "mqtt_port" in overrides
    if mqtt and not config_given:
        overrides.setdefault("mqtt_port", 0)
        overrides.setdefault("mqtts_port", 0)  # (served only with tls_certfile and tls_keyfile)
    return mqtt


def _own_data_dir(owner, durable: bool) -> None:
    """``durable=True``: a fresh temporary data directory, removed with the embedded broker."""
    owner.owns_data_dir = durable
    owner._remove_data_dir = None
    if durable:
        path = tempfile.mkdtemp(prefix="warrenmq-embedded-")
        owner.config = dataclasses.replace(owner.config, data_dir=path)
        owner._remove_data_dir = weakref.finalize(owner, shutil.rmtree, path, True)


#: the listeners a restart keeps on their ports (the app's ``<name>`` property and config field alike)
_PORTS = ("port", "tls_port", "management_port", "prometheus_port", "stomp_port", "web_stomp_port",
          "web_mqtt_port", "mqtt_port", "mqtts_port", "stomps_port", "web_stomps_port", "web_mqtts_port")


def _same_ports(config: BrokerConfig, app) -> BrokerConfig:
    """``config`` listening where ``app`` listened (a restart keeps the URL valid)."""
    changes = {name: getattr(app, name) for name in _PORTS if getattr(app, name) is not None}
    return dataclasses.replace(config, **changes)


class _URLMixin:
    host: str
    port: int

    def _listening(self, name: str, off: str) -> int:
        """The app's ``name`` port; RuntimeError ``off`` (how to turn it on) when it does not listen."""
        port = getattr(self.app, name) if self.app is not None else None
        if port is None:
            raise RuntimeError(off)
        return port

    @property
    def url(self) -> str:
        """An ``amqp://`` URL for the default user and vhost."""
        return f"amqp://guest:guest@{self.host}:{self.port}/%2F"

    @property
    def mqtt_port(self) -> int:
        """The MQTT listener's port (``mqtt=True``)."""
        return self._listening("mqtt_port", "MQTT is off: EmbeddedBroker(mqtt=True) serves it")

    @property
    def mqtts_port(self) -> int:
        """The MQTT-over-TLS listener's port (``mqtt=True`` with ``tls_certfile``/``tls_keyfile``)."""
        return self._listening("mqtts_port",
                               "MQTT over TLS is off: EmbeddedBroker(mqtt=True, tls_certfile=..., tls_keyfile=...)")

    @property
    def stomps_port(self) -> int:
        """The STOMP-over-TLS listener's port (``stomp=True`` with ``tls_certfile``/``tls_keyfile``)."""
        return self._listening("stomps_port",
                               "STOMP over TLS is off: EmbeddedBroker(stomp=True, tls_certfile=..., tls_keyfile=...)")

    @property
    def management_url(self) -> str:
        """``http://host:port`` of the management API (``management=True``; ``https://`` with
        ``management_tls_certfile`` and ``management_tls_keyfile``); append ``/api/...``."""
        port = self._listening("management_port",
                               "the management API is off: EmbeddedBroker(management=True) serves it")
        return f"{self.app.management.scheme}://{self.host}:{port}"

    @property
    def prometheus_url(self) -> str:
        """``http://host:port`` of the Prometheus metrics (``prometheus=True``); append ``/metrics``."""
        port = self._listening("prometheus_port",
                               "Prometheus metrics are off: EmbeddedBroker(prometheus=True) serves them")
        return f"http://{self.host}:{port}"

    @property
    def stomp_port(self) -> int:
        """The STOMP listener's port (``stomp=True``)."""
        return self._listening("stomp_port", "STOMP is off: EmbeddedBroker(stomp=True) serves it")

    @property
    def web_mqtt_url(self) -> str:
        """``ws://host:port/ws`` of Web MQTT (``web_mqtt=True``)."""
        port = self._listening("web_mqtt_port", "Web MQTT is off: EmbeddedBroker(web_mqtt=True) serves it")
        return f"ws://{self.host}:{port}/ws"

    @property
    def web_stomp_url(self) -> str:
        """``ws://host:port/ws`` of Web STOMP (``web_stomp=True``)."""
        port = self._listening("web_stomp_port", "Web STOMP is off: EmbeddedBroker(web_stomp=True) serves it")
        return f"ws://{self.host}:{port}/ws"

    @property
    def web_mqtts_url(self) -> str:
        """``wss://host:port/ws`` of Web MQTT over TLS (``web_mqtt=True`` with ``tls_certfile``/``tls_keyfile``)."""
        port = self._listening("web_mqtts_port", "Web MQTT over TLS is off: "
                               "EmbeddedBroker(web_mqtt=True, tls_certfile=..., tls_keyfile=...) serves it")
        return f"wss://{self.host}:{port}/ws"

    @property
    def web_stomps_url(self) -> str:
        """``wss://host:port/ws`` of Web STOMP over TLS (``web_stomp=True`` with ``tls_certfile``/``tls_keyfile``)."""
        port = self._listening("web_stomps_port", "Web STOMP over TLS is off: "
                               "EmbeddedBroker(web_stomp=True, tls_certfile=..., tls_keyfile=...) serves it")
        return f"wss://{self.host}:{port}/ws"


class EmbeddedBroker(_URLMixin, SyncBackdoor):
    """A broker on a background thread; use as a context manager or call start()/stop().

    ``durable=True`` keeps durable definitions and persistent messages in a
    temporary data directory of its own (``config.data_dir``), so ``restart()``
    recovers them as a real restart would; the directory is removed on leaving
    the ``with`` block (or when the object is garbage collected).
    """

    def __init__(self, config: BrokerConfig | None = None, *, durable: bool = False,
                 management: bool | None = None, prometheus: bool | None = None, stomp: bool = False,
                 mqtt: bool | None = None, web_stomp: bool = False, web_mqtt: bool = False, **overrides):
        self.management = _management(config is not None, overrides, management)
        self.prometheus = _prometheus(config is not None, overrides, prometheus)
        self.stomp = stomp
        self.web_stomp = web_stomp
        if stomp and config is None:
            overrides.setdefault("stomp_port", 0)
            overrides.setdefault("stomps_port", 0)  # (served only with tls_certfile and tls_keyfile)
        if web_stomp and config is None:
            overrides.setdefault("web_stomp_port", 0)
            overrides.setdefault("web_stomps_port", 0)  # (served only with tls_certfile and tls_keyfile)
        self.mqtt = _mqtt(config is not None, overrides, True if web_mqtt else mqtt)
        self.web_mqtt = web_mqtt
        if web_mqtt and config is None:
            overrides.setdefault("web_mqtt_port", 0)
            overrides.setdefault("web_mqtts_port", 0)  # (served only with tls_certfile and tls_keyfile)
        self.config = _config(config, overrides, durable)
        _own_data_dir(self, durable)
        self.host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        self.port = 0
        self.app: BrokerApp | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def broker(self):
        return self.app.broker

    def start(self) -> "EmbeddedBroker":
        started: concurrent.futures.Future = concurrent.futures.Future()

        def target():
            loop = asyncio.new_event_loop()
            self.loop = loop
            asyncio.set_event_loop(loop)
            try:
                self.app = BrokerApp(self.config, management=self.management, prometheus=self.prometheus,
                                     stomp=self.stomp, mqtt=self.mqtt,
                             web_stomp=self.web_stomp, web_mqtt=self.web_mqtt)
                loop.run_until_complete(self.app.start())
            except BaseException as e:  # report bind errors (and bad TLS files) to the caller
                started.set_exception(e)
                loop.close()
                return
            started.set_result(self.app.port)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=target, name="warrenmq-embedded", daemon=True)
        self._thread.start()
        self.port = started.result(timeout=10)
        return self

    def call(self, fn, *args):
        """Run ``fn(*args)`` on the broker's loop and return its result (for inspection)."""
        async def wrapper():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop).result(timeout=10)

    def stop(self, timeout: float = 2.0) -> None:
        if self.loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self.app.stop(timeout), self.loop)
        try:
            fut.result(timeout=timeout + 5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            self._thread = None

    def restart(self, timeout: float = 2.0) -> "EmbeddedBroker":
        """Stop and start again on the same port (and data directory): clients see the broker restart."""
        if self.app is not None:
            self.config = _same_ports(self.config, self.app)
        self.stop(timeout)
        return self.start()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        try:
            self.stop()
        finally:
            if self._remove_data_dir is not None:
                self._remove_data_dir()


class AsyncEmbeddedBroker(_URLMixin, AsyncBackdoor):
    """A broker on the running event loop; ``async with AsyncEmbeddedBroker() as b``."""

    def __init__(self, config: BrokerConfig | None = None, *, durable: bool = False,
                 management: bool | None = None, prometheus: bool | None = None, stomp: bool = False,
                 mqtt: bool | None = None, web_stomp: bool = False, web_mqtt: bool = False, **overrides):
        self.management = _management(config is not None, overrides, management)
        self.prometheus = _prometheus(config is not None, overrides, prometheus)
        self.stomp = stomp
        self.web_stomp = web_stomp
        if stomp and config is None:
            overrides.setdefault("stomp_port", 0)
            overrides.setdefault("stomps_port", 0)  # (served only with tls_certfile and tls_keyfile)
        if web_stomp and config is None:
            overrides.setdefault("web_stomp_port", 0)
            overrides.setdefault("web_stomps_port", 0)  # (served only with tls_certfile and tls_keyfile)
        self.mqtt = _mqtt(config is not None, overrides, True if web_mqtt else mqtt)
        self.web_mqtt = web_mqtt
        if web_mqtt and config is None:
            overrides.setdefault("web_mqtt_port", 0)
            overrides.setdefault("web_mqtts_port", 0)  # (served only with tls_certfile and tls_keyfile)
        self.config = _config(config, overrides, durable)
        _own_data_dir(self, durable)
        self.host = "127.0.0.1" if self.config.host in ("0.0.0.0", "") else self.config.host
        self.port = 0
        self.app = BrokerApp(self.config, management=self.management, prometheus=self.prometheus,
                             stomp=self.stomp, mqtt=self.mqtt,
                             web_stomp=self.web_stomp, web_mqtt=self.web_mqtt)

    @property
    def broker(self):
        return self.app.broker

    async def start(self) -> "AsyncEmbeddedBroker":
        await self.app.start()
        self.port = self.app.port
        return self

    async def stop(self, timeout: float = 2.0) -> None:
        await self.app.stop(timeout)

    async def restart(self, timeout: float = 2.0) -> "AsyncEmbeddedBroker":
        """Stop and start a new app on the same port (and data directory)."""
        self.config = _same_ports(self.config, self.app)
        await self.stop(timeout)
        self.app = BrokerApp(self.config, management=self.management, prometheus=self.prometheus,
                             stomp=self.stomp, mqtt=self.mqtt,
                             web_stomp=self.web_stomp, web_mqtt=self.web_mqtt)
        return await self.start()

    async def __aenter__(self) -> "AsyncEmbeddedBroker":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        try:
            await self.stop()
        finally:
            if self._remove_data_dir is not None:
                self._remove_data_dir()
