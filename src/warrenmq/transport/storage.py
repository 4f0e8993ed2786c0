"""The message store's group commit, its failure and retry, and the disk-space alarm, on the event loop.

Theory of operation: the store buffers records and calls ``on_pending`` when
its buffer first fills; :class:`StoreCommitter` then schedules one *cycle* for
the end of the loop turn: ``take_pending()`` takes the batch, its write (one
``pwritev`` of the whole batch) runs on a writer thread and ``sync()`` (one
fsync) on a sync thread, so the loop keeps serving clients meanwhile; then
``broker.store_synced(epoch)`` sends the publisher confirms that waited for
the batches written before that fsync began.  The next batch's write may run
while an fsync is in flight (a two-stage pipeline: with large messages the
disk is kept busy instead of waiting for the copy into the page cache), and
each fsync covers every batch written by the time it starts (group commit).

A failed write or fsync makes the store *failed*: the broker raises
``STORE_FAILED`` (publishers stay blocked) and nacks every confirm waiting for
the store (:meth:`Broker.store_failed`); it is logged once.  While failed, each
cycle only takes the new records aside (in order, behind the failed batch) and
has the broker nack the confirms that began waiting.  Every
``retry_interval`` seconds ``store.retry`` writes the failed batches, and the
batches written since the last good fsync, again where they belong and fsyncs;
when that succeeds the records are all on disk, the alarm clears
(:meth:`Broker.store_recovered`) and cycles go on as before.

:class:`DiskMonitor` checks the free space of the data directory once a second
and raises or clears the broker's ``DISK_FREE`` alarm at ``disk_free_limit``
(publishers are blocked as with the memory alarm). It owns only that alarm: it
cannot clear ``STORE_FAILED``, however much space there is.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
from concurrent.futures import ThreadPoolExecutor

from ..broker.alarms import Alarm

log = logging.getLogger("warrenmq.store")


class StoreCommitter:
    """Group commit as a two-stage pipeline: the write of batch N+1 (on the writer thread) may overlap
    the fsync of batch N (on the sync thread); confirms wait for an fsync that began after their
    batch's write ended."""

    def __init__(self, broker, loop: asyncio.AbstractEventLoop, retry_interval: float = 1.0):
        self.broker = broker
        self.store = broker.store
        self.loop = loop
        self.retry_interval = retry_interval
        self.writing = False  # a write (or a retry) is in flight
        self.syncing = False
        self.scheduled = False
        self.failed = None  # the error that made the store fail, until a retry succeeds
        self._failed_batches: list = []  # (epoch, batch) taken but not written, in order
        self._retry_handle = None
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
        if self.failed is not None:
            # nothing is written until a retry succeeds: set the new records aside (so the next one calls
            # on_pending again) and nack the confirms that began waiting
            if not self.writing and store.has_pending:
                self._failed_batches.append(store.take_pending())
            self.broker.store_failed(self.failed)
            return
        if self.writing or not store.has_pending:
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
            self._failed_batches.append((epoch, batch))
            self._fail(exc)
            return
        self.store.written(batch)
        self._written_epoch = epoch
        if self.failed is not None:  # an fsync failed meanwhile: the retry writes this batch again too
            if not self.syncing:
                self._idle.set()
            return
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
        if self.failed is not None:  # a write failed meanwhile
            if not self.writing:
                self._idle.set()
            return
        if self._written_epoch > epoch:
            self._sync()  # batches written while this fsync ran
        elif not self.writing:
            if self.store.has_pending:
                self.schedule()
            else:
                self._idle.set()

    def _fail(self, exc: BaseException) -> None:
        """A write or fsync failed: block publishers, nack waiting confirms, retry until it works."""
        if self.failed is None:
            log.critical("message store write failed: publishers are blocked and persistent messages are "
                         "nacked until a write succeeds again (retried every %gs): %s", self.retry_interval, exc)
        self.failed = exc
        self.broker.store_failed(exc)
        if self._retry_handle is None:
            self._retry_handle = self.loop.call_later(self.retry_interval, self._retry)
        if not self.writing and not self.syncing:
            self._idle.set()

    def _retry(self) -> None:
        self._retry_handle = None
        if self.writing or self.syncing:  # the other stage is still busy: after it
            self._retry_handle = self.loop.call_later(self.retry_interval, self._retry)
            return
        store = self.store
        if store.has_pending:
            self._failed_batches.append(store.take_pending())
        batches = list(self._failed_batches)
        epoch = max(store.epoch, self._written_epoch)
        self.writing = True
        self._idle.clear()
        fut = self.loop.run_in_executor(self._writer, store.retry, [b for _, b in batches])
        fut.add_done_callback(lambda f: self._retried(batches, epoch, f))

    def _retried(self, batches: list, epoch: int, fut) -> None:
        self.writing = False
        exc = fut.exception()
        if exc is not None:
            log.debug("message store retry failed: %s", exc)
            self.failed = exc
            self.broker.store_failed(exc)
            self._retry_handle = self.loop.call_later(self.retry_interval, self._retry)
            self._idle.set()
            return
        store = self.store
        for _, batch in batches:
            store.written(batch)
        del self._failed_batches[:len(batches)]
        self._written_epoch = epoch
        self.failed = None
        log.warning("message store writes work again: publishers are unblocked")
        self.broker.store_synced(epoch)
        self.broker.store_recovered()
        if store.has_pending:
            self.schedule()
        else:
            self._idle.set()

    async def drain(self) -> None:
        """Wait for the cycle in flight (the broker's close() writes what is left)."""
        await self._idle.wait()

    def close(self) -> None:
        self.store.on_pending = None
        if self._retry_handle is not None:
            self._retry_handle.cancel()
            self._retry_handle = None
        self._writer.shutdown(wait=True)
        self._syncer.shutdown(wait=True)
        if self.failed is not None:  # a last try, so that close() writes what follows after these
            try:
                self.store.retry([b for _, b in self._failed_batches])
            except OSError as e:
                log.error("message store still failing at shutdown; %d batches not written: %s",
                          len(self._failed_batches), e)
                return
            for _, batch in self._failed_batches:
                self.store.written(batch)
            self._failed_batches.clear()
            self.failed = None


class PageFlusher:
    """Writes the page store's buffered bodies at the end of the loop turn (no fsync: never recovered).

    A failed write keeps its batch (the bodies stay in memory until it is written) and is tried again,
    before anything newer, a second later; it is logged once per failure."""

    def __init__(self, store, loop: asyncio.AbstractEventLoop, retry_interval: float = 1.0):
        self.store = store
        self.loop = loop
        self.retry_interval = retry_interval
        self.scheduled = False
        self.failed: list = []  # (epoch, batch) taken and not written yet, in order
        self.failing = False
        store.on_pending = self.schedule

    def schedule(self) -> None:
        if not self.scheduled:
            self.scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.scheduled = False
        store = self.store
        failed = self.failed
        if store.has_pending:
            failed.append(store.take_pending())
        if not failed:
            return
        try:
            if len(failed) == 1:
                store.write_batch(failed[0][1])
            else:
                store.retry([b for _, b in failed])
        except OSError as e:
            if not self.failing:
                self.failing = True
                log.error("page store write failed (paged bodies stay in memory until it works): %s", e)
                self.loop.call_later(self.retry_interval, self._retry)
            return
        if self.failing:
            self.failing = False
            log.warning("page store writes work again")
        for _, batch in failed:
            store.written(batch)
        store.synced(failed[-1][0])
        failed.clear()

    def _retry(self) -> None:
        if self.failing:
            self._flush()
            if self.failing:
                self.loop.call_later(self.retry_interval, self._retry)

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
            if low != (Alarm.DISK_FREE in self.broker.alarms):
                if low:
                    log.warning("free disk space %d below the limit %d: blocking publishers", free, self.limit)
                else:
                    log.info("free disk space %d back above the limit %d", free, self.limit)
                self.broker.set_alarm(Alarm.DISK_FREE, low)
        self._handle = self.loop.call_later(self.interval, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
