"""Storage: one message-store interface with two implementations, and the definitions database.

* :class:`~.memory.MemoryStore` keeps nothing across processes (the default for
  the embedded broker and ``--data-dir`` left unset in tests);
* :class:`~.segments.SegmentStore` appends CRC-checked records to segment files
  with group commit (one fsync per batch) and recovers by scanning;
* :class:`~.metadata.Definitions` keeps durable vhosts, users, exchanges,
  queues, bindings and policies in SQLite.

Both message stores pass ``tests/store/test_conformance.py``.
"""
from .base import MessageStore, RecoveredMessage
from .memory import MemoryStore
from .segments import SegmentStore

__all__ = ["MessageStore", "RecoveredMessage", "MemoryStore", "SegmentStore"]
