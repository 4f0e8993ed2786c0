"""The message store's group commit and the disk-space alarm, driven by the event loop.

Theory of operation: the store buffers records and calls ``on_pending`` when
its buffer first fills; :class:`StoreCommitter` then schedules one *cycle* for
the end of the loop turn: ``take_pending()`` takes the batch, its write (one
``writev`` of the whole batch) runs on a writer thread and ``sync()`` (one
fsync) on a sync thread, so the loop keeps serving clients meanwhile; then
``broker.store_synced(epoch)`` sends the publisher confirms that waited for
the batches written before that fsync began.  The next batch's write may run
while an fsync is in flight (a two-stage pipeline: with large messages the
disk is kept busy instead of waiting for the copy into the page cache), and
each fsync covers every batch written by the time it starts (group commit).

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
    """Group commit as a two-stage pipeline: the write of batch N+1 (on the writer thread) may overlap
    the fsync of batch N (on the sync thread); confirms wait for an fsync that began after their
    batch's write ended."""

    def __init__(self, broker, loop: asyncio.AbstractEventLoop):
        self.broker = broker
        self.store = broker.store
        self.loop = loop
        self.writing = False
        self.syncing = False
        self.scheduled = False
        self.failed = None
        self._written_epoch = 0  # last epoch whose write is done
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warrenmq-write")
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="warrenmq-fsync")
        self.store.on_pending = self.schedule

    def schedule(self) -> None:
        if not self.writing and not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._cycle)

    def _cycle(self) -> None:
        self.scheduled = False
        store = self.store
        if self.writing or not store.has_pending or self.failed is not None:
            return
        if self.syncing and not store.may_overlap:
            return  # the store is about to switch files: let the fsync in flight finish first
        self.writing = True
        self._idle.clear()
        epoch, batch = store.take_pending()
        fut = self.loop.run_in_executor(self._writer, store.write_batch, batch)
        fut.add_done_callback(lambda f: self._written(epoch, batch, f))

    def _written(self, epoch: int, batch, fut) -> None:
        self.writing = False
        exc = fut.exception()
        if exc is not None:
            self._fail(exc)
            return
        self.store.written(batch)
        self._written_epoch = epoch
        if not self.syncing:
            self._sync()
        if self.store.has_pending:
            self.schedule()

    def _sync(self) -> None:
        self.syncing = True
        epoch = self._written_epoch
        fut = self.loop.run_in_executor(self._syncer, self.store.sync)
        fut.add_done_callback(lambda f: self._synced(epoch, f))

    def _synced(self, epoch: int, fut) -> None:
        self.syncing = False
        exc = fut.exception()
        if exc is not None:
            self._fail(exc)
            return
        self.broker.store_synced(epoch)
        if self._written_epoch > epoch:
            self._sync()  # batches written while this fsync ran
        elif not self.writing:
            if self.store.has_pending:
                self.schedule()
            else:
                self._idle.set()

    def _fail(self, exc: BaseException) -> None:
        # Nothing more can be made durable: stop confirming and block publishers.
        self.writing = self.syncing = False
        self.failed = exc
        self._idle.set()
        log.critical("message store write failed, persistent messages are no longer confirmed: %s", exc)
        self.broker.set_alarm("disk", True)

    async def drain(self) -> None:
        """Wait for the cycle in flight (the broker's close() writes what is left)."""
        await self._idle.wait()

    def close(self) -> None:
        self.store.on_pending = None
        self._writer.shutdown(wait=True)
        self._syncer.shutdown(wait=True)


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
