"""The message store's group commit and the disk-space alarm, driven by the event loop.

Theory of operation: the store buffers records and calls ``on_pending`` when
its buffer first fills; :class:`StoreCommitter` then schedules one *cycle* for
the end of the loop turn: ``write_pending()`` (one ``write`` of the whole
batch), ``sync()`` (one fsync) on a dedicated worker thread so the loop keeps
serving clients meanwhile, and ``broker.store_synced(epoch)``, which sends the
publisher confirms that waited for that batch.  Records arriving during a sync
form the next batch, so under load each fsync covers everything that came in
while the previous one ran (group commit).

:class:`DiskMonitor` checks the free space of the data directory once a second
and raises the broker's "disk" alarm below ``disk_free_limit`` (publishers are
blocked as with the memory alarm), clearing it when space comes back.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger("warrenmq.store")


class StoreCommitter:
    def __init__(self, broker, loop: asyncio.AbstractEventLoop):
        self.broker = broker
        self.store = broker.store
        self.loop = loop
        self.busy = False
        self.scheduled = False
        self.failed = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warrenmq-fsync")
        self.store.on_pending = self.schedule

    def schedule(self) -> None:
        if not self.busy and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._cycle)

    def _cycle(self) -> None:
        self.scheduled = False
        store = self.store
        if self.busy or not store.has_pending or self.failed is not None:
            return
        self.busy = True
        self._idle.clear()
        try:
            epoch = store.write_pending()
        except OSError as e:
            self._fail(e)
            return
        fut = self.loop.run_in_executor(self._executor, store.sync)
        fut.add_done_callback(lambda f: self._synced(epoch, f))

    def _synced(self, epoch: int, fut) -> None:
        self.busy = False
        exc = fut.exception()
        if exc is not None:
            self._fail(exc)
            return
        self.broker.store_synced(epoch)
        if self.store.has_pending:
            self.schedule()
        else:
            self._idle.set()

    def _fail(self, exc: BaseException) -> None:
        # Nothing more can be made durable: stop confirming and block publishers.
        self.busy = False
        self.failed = exc
        self._idle.set()
        log.critical("message store write failed, persistent messages are no longer confirmed: %s", exc)
        self.broker.set_alarm("disk", True)

    async def drain(self) -> None:
        """Wait for the cycle in flight (the broker's close() writes what is left)."""
        await self._idle.wait()

    def close(self) -> None:
        self.store.on_pending = None
        self._executor.shutdown(wait=True)


class PageFlusher:
    """Writes the page store's buffered bodies at the end of the loop turn (no fsync: never recovered)."""

    def __init__(self, store, loop: asyncio.AbstractEventLoop):
        self.store = store
        self.loop = loop
        self.scheduled = False
        store.on_pending = self.schedule

    def schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.scheduled = False
        try:
            epoch = self.store.write_pending()
        except OSError as e:
            log.error("page store write failed: %s", e)
            return
        self.store.synced(epoch)

    def close(self) -> None:
        self.store.on_pending = None


class DiskMonitor:
    def __init__(self, broker, path: str, limit: int, loop: asyncio.AbstractEventLoop, interval: float = 1.0):
        self.broker = broker
        self.path = path
        self.limit = limit
        self.loop = loop
        self.interval = interval
        self._handle = None

    def start(self) -> None:
        self._check()

    def _check(self) -> None:
        try:
            free = shutil.disk_usage(self.path).free
        except OSError:
            free = None
        if free is not None:
            low = free < self.limit
            if low != ("disk" in self.broker.alarms):
                if low:
                    log.warning("free disk space %d below the limit %d: blocking publishers", free, self.limit)
                else:
                    log.info("free disk space %d back above the limit %d", free, self.limit)
                self.broker.set_alarm("disk", low)
        self._handle = self.loop.call_later(self.interval, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
