"""Resource alarms: the reasons publishers are blocked, as a type.

Theory of operation: each alarm has one owner that raises and clears it, and
no one else touches it, so one condition going away can never clear another:

* ``MEMORY``: queued message bodies above the memory high watermark
  (:class:`~.flow.MemoryMonitor`, cleared below 80% of it);
* ``DISK_FREE``: the data directory's file system has less free space than
  ``disk_free_limit`` (the transport's disk monitor, cleared when space is back);
* ``STORE_FAILED``: a write or fsync of the message store failed; only a
  later write and fsync that succeed clear it (the store committer), however
  much free space the disk monitor sees.

``Broker.alarms`` is the set of alarms on; while it is not empty, connections
that publish are blocked (``connection.blocked`` with :attr:`Alarm.reason`).
"""
from __future__ import annotations

import enum


class Alarm(enum.Enum):
    # in order of precedence for the connection.blocked reason when several are on
    MEMORY = "low on memory"
    DISK_FREE = "low on disk"
    STORE_FAILED = "message store failed"

    @property
    def reason(self) -> str:
        """The text of ``connection.blocked`` (RabbitMQ's for memory and disk)."""
        return self.value


def blocked_reason(alarms) -> str:
    """The ``connection.blocked`` reason for a set of alarms that are on (the first in precedence)."""
    for a in Alarm:
        if a in alarms:
            return a.reason
    return ""
