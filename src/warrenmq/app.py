"""Wiring: a broker, its listeners, and a process that serves until told to stop.

Theory of operation: :class:`BrokerApp` opens the storage the config asks for
(:func:`warrenmq.store.open_storage`: in memory, or the data directory with its
lock), hands it to one :class:`~warrenmq.broker.broker.Broker`, and couples
the broker to its AMQP listener
(:class:`~warrenmq.transport.server.Server`), plus a second, TLS listener when
the config names a certificate and key (RabbitMQ's AMQPS listener on 5671), and
plugs the running event loop into the broker's timers and the memory alarm's
RSS sampler (:class:`~warrenmq.broker.flow.MemorySampler`: while the alarm is
on it has the queues page bodies out and trims the heap); with durable storage it
also runs the store's group commit, the page store's flushes and the disk
monitor (:mod:`warrenmq.transport.storage`).  :func:`run` is what the
``warrenmq`` command calls: it installs uvloop when available, starts the app,
and on SIGINT/SIGTERM closes every client connection with CONNECTION_FORCED
before exiting, as RabbitMQ does on shutdown.

Management: an app made with ``management=True`` (what :func:`serve` does when
``management_enabled``, the default) also serves the management HTTP API
(:class:`~warrenmq.management.server.ManagementServer`, aiohttp, imported only
then) on the same event loop, bound with the AMQP listeners and stopped first.  Likewise ``prometheus=True``
(``prometheus_enabled``, the default for :func:`serve`) serves RabbitMQ's
Prometheus endpoints (:class:`~warrenmq.prometheus.server.PrometheusServer`).

Start-up order: :meth:`BrokerApp.start` binds every listener first (without
accepting), and only then, for an app made with ``defer_storage=True`` (what
:func:`serve` does), opens the storage: a taken port fails before anything is
created on disk, and a locked data directory releases the bound ports.
Connections are accepted once the broker has recovered, and once the definitions
file the config names (``definitions_file``, RabbitMQ's ``load_definitions``) is
imported (:func:`load_definitions`): a file that cannot be read or applied stops
the start with :class:`DefinitionsFileError`, and the storage is closed again.

Garbage collection: a broker holds millions of small, acyclic objects (a
``Message`` and a ``QueueEntry`` per queued message), freed by reference
counting. CPython's cyclic collector still walks all of them in every full
(generation 2) collection, which it starts whenever the old generation has
grown by a quarter: with a growing queue, a large share of the broker's CPU
time (docs/perf.md has the measurements). The process the ``warrenmq``
command runs therefore keeps the collector off while it recovers the store,
freezes what exists once it is serving (``gc.freeze``: start-up objects and
recovered messages are never scanned again; freed ones still go by refcount),
and makes full collections rare (:data:`GC_THRESHOLDS`). Generations 0 and 1
keep their default rhythm, so the pauses stay short. An embedded broker leaves
its host process's collector alone.

Memory allocator: bodies and socket reads of tens to hundreds of KiB are
allocated and freed all the time.  glibc gives the top of its heap back to the
system whenever 128 KiB or more of it is free, so with large messages every few
reads grow the heap again and fault fresh, zeroed pages in.  The ``warrenmq``
process keeps up to :data:`MALLOC_TRIM_THRESHOLD` of free heap for reuse and
serves allocations below :data:`MALLOC_MMAP_THRESHOLD` from the heap
(:func:`tune_malloc`; not with another C library, and not when the user set
glibc's ``MALLOC_*`` variables or ``GLIBC_TUNABLES``).
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal

from .broker import definitions
from .broker.broker import Broker
from .broker.flow import MemorySampler, RssReader, malloc_trim
from .config import BrokerConfig
from .store import open_storage
from .transport.server import Server
from .transport.storage import DiskMonitor, PageFlusher, StoreCommitter

log = logging.getLogger("warrenmq")

#: gc.set_threshold() for the broker process: CPython's defaults for generations 0 and 1, and a full
#: collection after 1,000 generation-1 collections (CPython: 10) -- about 7 million allocations
GC_THRESHOLDS = (700, 10, 1000)

#: glibc mallopt() for the broker process (see the module docstring): free heap kept for reuse, and the
#: size from which an allocation gets its own mapping (above uvloop's 256 KiB reads and a 128 KiB frame)
MALLOC_TRIM_THRESHOLD = 16 << 20
MALLOC_MMAP_THRESHOLD = 1 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's <malloc.h>
_MALLOC_ENV = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def tune_malloc() -> bool:
    """Apply the broker process's glibc malloc settings; False where they do not apply."""
    if any(os.environ.get(k) for k in _MALLOC_ENV):
        return False  # the user's own settings win
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: musl has no mallopt with these parameters
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    # the mmap threshold first: setting either one turns off glibc's own adjustment of both
    return bool(mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD))


class BrokerApp:
    def __init__(self, config: BrokerConfig | None = None, broker: Broker | None = None, *,
                 defer_storage: bool = False, management: bool = False, prometheus: bool = False,
                 stomp: bool = False, mqtt: bool = False, web_stomp: bool = False, web_mqtt: bool = False):
        self.config = config or BrokerConfig()
        if broker is None and not defer_storage:
            broker = Broker(self.config, open_storage(self.config))
        self.broker = broker  # None until start() when defer_storage
        self.server = Server(self.broker, self.config.host, self.config.port, config=self.config)
        tls = self.config.tls_context()
        self.tls_server = (Server(self.broker, self.config.host, self.config.tls_port, ssl=tls, config=self.config)
                           if tls else None)
        self.management = None
        if management:
            try:
                from .management.server import ManagementServer
            except ImportError as e:  # aiohttp missing: a core-only install
                raise RuntimeError(f"the management API needs aiohttp ({e}); install it or set "
                                   "management_enabled = false") from e
            self.management = ManagementServer(self, self.config.management_host or self.config.host,
                                               self.config.management_port,
                                               ssl=self.config.management_tls_context())
        self.prometheus = None
        if prometheus:
            try:
                from .prometheus.server import PrometheusServer
            except ImportError as e:  # aiohttp or prometheus_client missing: a core-only install
                raise RuntimeError(f"Prometheus metrics need aiohttp and prometheus_client ({e}); install them "
                                   "or set prometheus_enabled = false") from e
            cfg = self.config
            self.prometheus = PrometheusServer(self, cfg.prometheus_host or cfg.management_host or cfg.host,
                                               cfg.prometheus_port)
        self.stomp = None
        if stomp:
            from .transport.stomp import StompServer
            self.stomp = StompServer(self.broker, self.config.stomp_host or self.config.host, self.config.stomp_port,
                                     config=self.config, tls=tls, tls_port=self.config.stomps_port)
        self.web_stomp = None
        if web_stomp:
            from .transport.web_stomp import WebStompServer
            self.web_stomp = WebStompServer(self, self.config.web_stomp_host or self.config.host,
                                            self.config.web_stomp_port, tls=tls, tls_port=self.config.web_stomps_port)
        self.mqtt = None
        if mqtt:
            from .transport.mqtt import MQTTServer
            self.mqtt = MQTTServer(self, self.config.mqtt_host or self.config.host, self.config.mqtt_port,
                                   tls=tls, tls_port=self.config.mqtts_port)
        self.web_mqtt = None
        if web_mqtt and self.mqtt is not None:  # (it shares the MQTT listener's client ids and retained messages)
            from .transport.web_mqtt import WebMQTTServer
            self.web_mqtt = WebMQTTServer(self, self.mqtt, self.config.web_mqtt_host or self.config.host,
                                          self.config.web_mqtt_port, tls=tls, tls_port=self.config.web_mqtts_port)
        self.committer: StoreCommitter | None = None
        self.disk_monitor: DiskMonitor | None = None
        self.page_flusher: PageFlusher | None = None
        self.memory_sampler: MemorySampler | None = None
        self._trim = None
        self._last_trim = 0.0
        self.shovels = None  # the shovel plugin (shovel/manager.py), attached when the broker exists
        self.federation = None  # the federation links (federation/links.py), started when the broker exists

    def _relieve_memory(self, excess: int) -> int:
        """Memory pressure (flow.py): queues move their backlog to disk; with the alarm on, about once a
        second free heap goes back to the system."""
        freed = self.broker.relieve_memory(excess)
        if self.broker.memory.alarm and self._trim is not None:
            now = asyncio.get_running_loop().time()
            if now - self._last_trim >= 1.0:
                self._last_trim = now
                self._trim()
        return freed

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def tls_port(self) -> int | None:
        """The TLS listener's port (the bound one once started), or ``None`` without TLS."""
        return self.tls_server.port if self.tls_server is not None else None

    @property
    def mqtts_port(self) -> int | None:
        """The MQTT-over-TLS listener's port (the bound one once started), or ``None`` without it."""
        return self.mqtt.tls_port if self.mqtt is not None and self.mqtt.tls is not None else None

    @property
    def stomps_port(self) -> int | None:
        """The STOMP-over-TLS listener's port (the bound one once started), or ``None`` without it."""
        return self.stomp.tls_port if self.stomp is not None and self.stomp.tls is not None else None

    @property
    def management_port(self) -> int | None:
        """The management API's port (the bound one once started), or ``None`` without it."""
        return self.management.port if self.management is not None else None

    @property
    def prometheus_port(self) -> int | None:
        """The Prometheus listener's port (the bound one once started), or ``None`` without it."""
        return self.prometheus.port if self.prometheus is not None else None

    @property
    def stomp_port(self) -> int | None:
        """The STOMP listener's port (the bound one once started), or ``None`` without it."""
        return self.stomp.port if self.stomp is not None else None

    @property
    def web_stomp_port(self) -> int | None:
        """The Web STOMP listener's port (the bound one once started), or ``None`` without it."""
        return self.web_stomp.port if self.web_stomp is not None else None

    @property
    def web_mqtt_port(self) -> int | None:
        """The Web MQTT listener's port (the bound one once started), or ``None`` without it."""
        return self.web_mqtt.port if self.web_mqtt is not None else None

    @property
    def web_stomps_port(self) -> int | None:
        """The Web STOMP over TLS port (the bound one once started), or ``None`` without it."""
        return self.web_stomp.tls_port if self.web_stomp is not None else None

    @property
    def web_mqtts_port(self) -> int | None:
        """The Web MQTT over TLS port (the bound one once started), or ``None`` without it."""
        return self.web_mqtt.tls_port if self.web_mqtt is not None else None

    @property
    def mqtt_port(self) -> int | None:
        """The MQTT listener's port (the bound one once started), or ``None`` without it."""
        return self.mqtt.port if self.mqtt is not None else None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        listeners = [s for s in (self.server, self.tls_server, self.stomp, self.mqtt) if s is not None]
        try:
            for s in listeners:  # every port first: a taken one fails before storage is touched
                await s.bind()
            if self.web_stomp is not None:
                self.web_stomp.bind()
            if self.web_mqtt is not None:
                self.web_mqtt.bind()
            if self.management is not None:
                self.management.bind()
            if self.prometheus is not None:
                self.prometheus.bind()
            if self.broker is None:
                self.broker = Broker(self.config, open_storage(self.config))
                for s in listeners:
                    s.broker = self.broker
            # the shovel plugin's parameter component, before a definitions file may name shovels; shovels
            # stored as parameters start now (one naming this broker's own port retries until it listens)
            from .shovel import ShovelManager
            self.shovels = ShovelManager(self.broker)
            self.shovels.attach()
            # federation: its parameter components and policy keys, before a definitions file may use them
            from .federation.links import FederationService
            self.federation = FederationService(self.broker)
            self.federation.start()
            if self.config.definitions_file:
                try:
                    load_definitions(self.broker, self.config.definitions_file)
                except DefinitionsFileError:
                    self.broker.close()
                    raise
        except BaseException:
            if self.shovels is not None:
                await self.shovels.stop()
                self.shovels = None
            if self.federation is not None:
                await self.federation.stop()
                self.federation = None
            for s in listeners:
                await s.stop(0)
            if self.management is not None:
                await self.management.stop()
            if self.prometheus is not None:
                await self.prometheus.stop()
            raise
        self.broker.timers.loop_call_later = loop.call_later
        self.broker.memory.read_rss = RssReader()  # the memory alarm samples the process's RSS
        self._trim = malloc_trim()
        self.memory_sampler = MemorySampler(self.broker.memory, loop.call_later, self._relieve_memory)
        self.memory_sampler.start()
        storage = self.broker.storage
        if storage.durable:
            self.committer = StoreCommitter(self.broker, loop)
            self.disk_monitor = DiskMonitor(self.broker, storage.path, self.config.disk_free_limit, loop)
            self.disk_monitor.start()
            if storage.pages is not None:
                self.page_flusher = PageFlusher(storage.pages, loop)
            if self.broker.store.has_pending:  # records written during recovery
                self.committer.schedule()
        for s in listeners:
            await s.start()
        if self.management is not None:
            await self.management.start()
        if self.web_stomp is not None:
            await self.web_stomp.start()
        if self.web_mqtt is not None:
            await self.web_mqtt.start()
        if self.prometheus is not None:
            await self.prometheus.start()

    async def stop(self, timeout: float = 2.0) -> None:
        if self.shovels is not None:
            await self.shovels.stop()
            self.shovels = None
        if self.federation is not None:
            await self.federation.stop()
            self.federation = None
        if self.prometheus is not None:
            await self.prometheus.stop()
        if self.management is not None:
            await self.management.stop()
        if self.stomp is not None:
            await self.stomp.stop()
        if self.web_stomp is not None:
            await self.web_stomp.stop()
        if self.web_mqtt is not None:
            await self.web_mqtt.stop()
        if self.mqtt is not None:
            await self.mqtt.stop(timeout)
        if self.tls_server is not None:
            await asyncio.gather(self.server.stop(timeout), self.tls_server.stop(timeout))
        else:
            await self.server.stop(timeout)
        self.broker.timers.loop_call_later = None
        if self.memory_sampler is not None:
            self.memory_sampler.stop()
            self.memory_sampler = None
            reader, self.broker.memory.read_rss = self.broker.memory.read_rss, None
            reader.close()
        if self.committer is not None:
            self.disk_monitor.stop()
            await self.committer.drain()
            self.committer.close()
            self.committer = None
        if self.page_flusher is not None:
            self.page_flusher.close()
            self.page_flusher = None
        try:
            self.broker.close()
        except OSError as e:  # a failing disk: what could not be written was nacked (docs/durability.md)
            log.error("closing storage failed: %s", e)


class DefinitionsFileError(Exception):
    """The definitions file cannot be read, parsed or applied; ``str()`` is one line saying why."""


def load_definitions(broker: Broker, path: str) -> None:
    """Import the definitions file ``path`` (a directory: every ``*.json`` in it, in name order) into
    ``broker``, as RabbitMQ's ``load_definitions`` does at boot."""
    if os.path.isdir(path):
        files = [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.endswith(".json")]
    else:
        files = [path]
    for f in files:
        try:
            with open(f, "rb") as fh:
                doc = json.loads(fh.read())
        except OSError as e:
            raise DefinitionsFileError(f"cannot read definitions file {f}: {e.strerror or e}") from None
        except (ValueError, UnicodeDecodeError) as e:
            raise DefinitionsFileError(f"definitions file {f} is not JSON: {e}") from None
        try:
            definitions.apply(broker, doc)
        except definitions.DefinitionsError as e:
            raise DefinitionsFileError(f"cannot import definitions file {f}: {e}") from None
        log.info("imported definitions from %s", f)


def install_uvloop() -> bool:
    try:
        import uvloop
    except ImportError:
        return False
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return True


async def serve(config: BrokerConfig, ready=None, *, manage_gc: bool = False) -> None:
    """Run a broker until SIGINT/SIGTERM. ``manage_gc``: tune the process's garbage collector for it
    (see the module docstring); for a process that is only a broker."""
    if manage_gc:
        gc.disable()  # recovery allocates an object or two per stored message, none of them cyclic
    try:
        app = BrokerApp(config, defer_storage=True, management=config.management_enabled,
                        prometheus=config.prometheus_enabled, stomp=config.stomp_enabled,
                        mqtt=config.mqtt_enabled, web_stomp=config.stomp_enabled and config.web_stomp_enabled,
                        web_mqtt=config.mqtt_enabled and config.web_mqtt_enabled)
        await app.start()
    finally:
        if manage_gc:
            gc.enable()
    if manage_gc:
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    log.info("WarrenMQ listening on %s:%s", config.host, app.port)
    if app.tls_server is not None:
        log.info("WarrenMQ listening for TLS (AMQPS) on %s:%s", config.host, app.tls_port)
    if app.mqtt is not None:
        log.info("WarrenMQ MQTT on %s:%s", app.mqtt.host, app.mqtt_port)
        if app.mqtts_port is not None:
            log.info("WarrenMQ MQTT over TLS on %s:%s", app.mqtt.host, app.mqtts_port)
    if app.management is not None:
        log.info("WarrenMQ management API on %s://%s:%s/api/", app.management.scheme, app.management.host,
                 app.management_port)
    if app.prometheus is not None:
        log.info("WarrenMQ Prometheus metrics on http://%s:%s/metrics", app.prometheus.host, app.prometheus_port)
    if app.stomp is not None:
        log.info("WarrenMQ STOMP listening on %s:%s", app.stomp.host, app.stomp_port)
        if app.stomps_port is not None:
            log.info("WarrenMQ STOMP over TLS on %s:%s", app.stomp.host, app.stomps_port)
    if app.web_mqtt is not None:
        log.info("WarrenMQ Web MQTT on ws://%s:%s/ws", app.web_mqtt.host or "0.0.0.0", app.web_mqtt_port)
        if app.web_mqtts_port is not None:
            log.info("WarrenMQ Web MQTT over TLS on wss://%s:%s/ws", app.web_mqtt.host or "0.0.0.0",
                     app.web_mqtts_port)
    if app.web_stomp is not None:
        log.info("WarrenMQ Web STOMP on ws://%s:%s/ws", app.web_stomp.host or "0.0.0.0", app.web_stomp_port)
        if app.web_stomps_port is not None:
            log.info("WarrenMQ Web STOMP over TLS on wss://%s:%s/ws", app.web_stomp.host or "0.0.0.0",
                     app.web_stomps_port)
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
    n = len(app.server.connections) + (len(app.tls_server.connections) if app.tls_server is not None else 0)
    log.info("shutting down: closing %d connections", n)
    await app.stop()


def run(config: BrokerConfig | None = None) -> None:
    config = config or BrokerConfig.load()
    if config.use_uvloop:
        install_uvloop()
    tune_malloc()
    asyncio.run(serve(config, manage_gc=True))
