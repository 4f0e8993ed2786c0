"""Memory flow control: RabbitMQ's memory alarm (``vm_memory_high_watermark``), on the process's memory.

Theory of operation: the alarm watches the broker process's resident memory
(RSS), not a count of its own: everything counts (message and entry objects,
bodies, socket buffers, a message still being received).  Two inputs:

* *Samples*: :meth:`MemoryMonitor.sample` reads RSS from ``/proc/self/statm``
  (one ``pread`` of an open file: a few microseconds); :class:`MemorySampler`
  calls it every :data:`SAMPLE_INTERVAL` seconds on the event loop (RabbitMQ
  polls too).  A sample raises the alarm above the watermark (``watermark``)
  and is the only thing that clears it: below ``low`` (:data:`LOW_FRACTION` of
  the watermark: hysteresis, so the alarm does not flap at the mark).
* *An estimate between samples*, so a fast flood cannot overshoot by much: RSS
  at the last sample plus the bytes added since.  ``used`` is a running count of
  queued body bytes (the queues add and release it as before, one integer
  addition on the hot path) and :meth:`received` adds the bytes read from
  client sockets (a large message being received counts as it arrives).  To keep
  the hot-path check one comparison (``used > high``), ``high`` is kept in
  ``used``'s terms: the value of ``used`` at which the estimate crosses the
  watermark (``high = used_at_sample + watermark - rss_at_sample``, lowered by
  every byte received).  The estimate over-counts a published body (read, then
  queued) and under-counts per-message overhead; the next sample corrects both.

Paging starts before the alarm, as RabbitMQ's does: from ``paging_ratio`` of
the watermark (``vm_memory_high_watermark_paging_ratio``, 0.5) on, ``paging``
is set and the sampler asks the queues to move what they hold to disk
(:meth:`~.queues.lazy.Paging.page_out_ready`: a classic queue past its paging
limit becomes a lazy tail, transient messages included, and large bodies at its
head are paged out), one slice per loop turn with a fresh sample in between,
until a sample is below that level or nothing more can go.  While the alarm is
on, the listeners (the broker) also block publishing connections
(``connection.blocked``, no longer read; consumers keep draining), and the
sampler gives freed heap back to the system (glibc ``malloc_trim``) about once a
second, until a sample is below ``low``.
"""
from __future__ import annotations

import os

#: seconds between two RSS samples
SAMPLE_INTERVAL = 0.2
#: the alarm clears when a sample is below this fraction of the watermark
LOW_FRACTION = 0.9
#: RabbitMQ's default vm_memory_high_watermark.relative
DEFAULT_RELATIVE = 0.4
#: RabbitMQ's default vm_memory_high_watermark_paging_ratio: queues page to disk from this share of the mark
DEFAULT_PAGING_RATIO = 0.5

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


class RssReader:
    """The process's resident set size in bytes, read from ``/proc/self/statm`` (0 where there is none)."""
    __slots__ = ("fd",)

    def __init__(self):
        try:
            self.fd = os.open("/proc/self/statm", os.O_RDONLY)
        except OSError:  # not Linux: no samples, the estimate alone (queued bytes) drives the alarm
            self.fd = -1

    def __call__(self) -> int:
        if self.fd < 0:
            return 0
        try:
            return int(os.pread(self.fd, 128, 0).split()[1]) * _PAGE_SIZE
        except (OSError, ValueError, IndexError):  # pragma: no cover
            return 0

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class MemoryMonitor:
    __slots__ = ("used", "high", "watermark", "low", "alarm", "listeners", "rss", "peak_rss", "read_rss",
                 "page_above", "paging")

    def __init__(self, watermark: int, read_rss=None, paging_ratio: float = DEFAULT_PAGING_RATIO):
        self.watermark = watermark
        self.low = int(watermark * LOW_FRACTION)
        self.page_above = int(watermark * min(paging_ratio, 1.0))  # queues page to disk above this
        self.paging = False  # a sample was above page_above, or the alarm is on
        self.used = 0  # queued body bytes in memory (the queues keep it)
        self.rss = 0  # the last sample (0: none yet)
        self.peak_rss = 0
        self.high = watermark  # until the first sample: the estimate is the queued bytes alone
        self.alarm = False
        self.listeners: list = []
        self.read_rss = read_rss  # a callable returning RSS in bytes; None: samples come from outside

    @property
    def estimate(self) -> int:
        """The process's memory as estimated now: the last sample plus what was added since."""
        return self.watermark - (self.high - self.used)

    def add(self, n: int) -> None:
        self.used += n
        if self.used > self.high and not self.alarm:
            self._set(True)

    def release(self, n: int) -> None:
        self.used -= n  # clearing waits for a sample: freed objects do not always give RSS back at once

    def received(self, n: int) -> None:
        """``n`` bytes were read from a client socket (kept in memory until handled)."""
        high = self.high = self.high - n
        if self.used > high and not self.alarm:
            self._set(True)

    def sample(self, rss: int | None = None) -> int:
        """Take a sample of the process's RSS (or use ``rss``), raise or clear the alarm; returns it."""
        if rss is None:
            rss = self.read_rss() if self.read_rss is not None else 0
        if rss <= 0:  # no way to read RSS: fall back to counting queued bytes
            self.high = self.watermark
            if self.alarm and self.used < self.low:
                self._set(False)
            elif not self.alarm and self.used > self.high:
                self._set(True)
            self.paging = self.alarm or self.used > self.page_above
            return 0
        self.rss = rss
        if rss > self.peak_rss:
            self.peak_rss = rss
        self.high = self.used + (self.watermark - rss)
        if self.alarm:
            if rss < self.low:
                self._set(False)
        elif rss > self.watermark:
            self._set(True)
        self.paging = self.alarm or rss > self.page_above
        return rss

    def _set(self, on: bool) -> None:
        self.alarm = on
        if on:
            self.paging = True
        for cb in self.listeners:
            cb(on)


class MemorySampler:
    """Samples ``monitor`` every :data:`SAMPLE_INTERVAL` seconds through ``call_later`` (the event loop's);
    while ``monitor.paging``, calls ``relieve(bytes above the paging level)`` after each sample, which
    returns the bytes it freed: while that is not 0 the next sample comes at the next loop turn."""

    def __init__(self, monitor: MemoryMonitor, call_later, relieve=None, interval: float = SAMPLE_INTERVAL):
        self.monitor = monitor
        self.call_later = call_later
        self.relieve = relieve
        self.interval = interval
        self._handle = None

    def start(self) -> None:
        self._tick()

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _tick(self) -> None:
        m = self.monitor
        rss = m.sample()
        delay = self.interval
        if m.paging and self.relieve is not None:
            excess = (rss if rss else m.used) - m.page_above
            if m.alarm:
                excess = max(excess, (rss if rss else m.used) - m.low)
            if excess > 0 and self.relieve(excess):
                delay = 0  # more may go: again at the next loop turn, after a fresh sample
        self._handle = self.call_later(delay, self._tick)


def malloc_trim():
    """glibc's ``malloc_trim(0)`` (give free heap pages back to the system), or None elsewhere."""
    try:
        import ctypes
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    return lambda: trim(0)
