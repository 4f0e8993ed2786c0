"""Memory flow control: RabbitMQ's memory alarm, for queued message bodies.

Theory of operation: every queue adds a message's body size to
``MemoryMonitor.used`` when it takes the message and subtracts it when the
message leaves for good (acked, delivered without ack, dropped, purged, queue
deleted).  Crossing ``high`` raises the alarm: every listener (the broker) is
told, and blocks publishing connections; the alarm clears when usage falls
below ``low``.  The checks are one comparison on the publish and settle paths.
"""
from __future__ import annotations


class MemoryMonitor:
    __slots__ = ("used", "high", "low", "alarm", "listeners")

    def __init__(self, high: int):
        self.used = 0
        self.high = high
        self.low = int(high * 0.8)
        self.alarm = False
        self.listeners: list = []

    def add(self, n: int) -> None:
        self.used += n
        if self.used > self.high and not self.alarm:
            self.alarm = True
            for cb in self.listeners:
                cb(True)

    def release(self, n: int) -> None:
        self.used -= n
        if self.alarm and self.used < self.low:
            self.alarm = False
            for cb in self.listeners:
                cb(False)
