"""Storage: the interfaces the broker uses, their implementations, and the factory that opens them.

* :class:`~.memory.MemoryStore` and :class:`~.memory.MemoryDefinitions` keep
  nothing across processes (``data_dir = ""``: ``--in-memory``, and the
  embedded test broker unless given a data directory);
* :class:`~.segments.SegmentStore` appends CRC-checked records to segment files
  with group commit (one fsync per batch) and recovers by scanning; a second
  one, never fsynced and wiped at start, is the page store;
* :class:`~.metadata.SQLiteDefinitions` keeps durable vhosts, users, exchanges,
  queues, bindings and policies in SQLite.

Both message stores pass ``tests/store/test_conformance.py``.

Theory of operation of :func:`open_storage`: the broker never opens files; the
application (``BrokerApp``) calls this factory and hands the
:class:`~.base.Storage` to ``Broker(config, storage)``.  With a data directory
it creates the directory, takes an exclusive ``flock`` on ``<dir>/.lock`` (one
broker per directory; released by ``Storage.close``), opens the definitions
database and the message store (``msg_store/``, created with its first
record), and deletes the page store's directory ``pages/`` left by the previous
run (its bodies are never recovered; the directory is created again when the
first body is paged out).  The concrete stores are imported here, when storage
is opened, so importing the interfaces (``warrenmq.store.base``) loads none of them.
Directories are made 0750 and files 0640 whatever the umask, and a directory
left by an older version is tightened to those modes (:mod:`.files`).
"""
from __future__ import annotations

import os
import shutil

from .base import NO_DEFINITIONS, Definitions, MessageStore, RecoveredMessage, RecoveredQueue, Storage

__all__ = ["MessageStore", "Definitions", "NO_DEFINITIONS", "RecoveredMessage", "RecoveredQueue", "Storage",
           "open_storage", "memory_storage", "MemoryStore", "SegmentStore"]


def memory_storage() -> Storage:
    """Storage that keeps nothing on disk."""
    from .memory import MemoryDefinitions, MemoryStore
    return Storage(MemoryStore(), MemoryDefinitions())


def open_storage(config) -> Storage:
    """The storage ``config`` asks for: in memory when ``config.data_dir`` is empty, else in that
    directory. RuntimeError when another broker holds the directory."""
    data_dir = config.data_dir
    if not data_dir:
        return memory_storage()
    import fcntl

    from .metadata import SQLiteDefinitions
    from .segments import SegmentStore
    from .files import open_file, secure_dir, tighten
    secure_dir(data_dir)
    lock = os.fdopen(open_file(os.path.join(data_dir, ".lock"), os.O_RDWR | os.O_APPEND), "a+")
    try:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise RuntimeError(f"data directory {data_dir} is in use by another broker (it holds the lock "
                           f"{os.path.join(data_dir, '.lock')})") from None
    try:
        tighten(data_dir)  # modes left by an older version, which followed the umask
        defs = SQLiteDefinitions(os.path.join(data_dir, "definitions.sqlite3"))
        try:
            messages = SegmentStore(os.path.join(data_dir, "msg_store"), fsync=config.fsync)
        except BaseException:
            defs.close()
            raise
        pages = os.path.join(data_dir, "pages")
        shutil.rmtree(pages, ignore_errors=True)
        return Storage(messages, defs, SegmentStore(pages, fsync=False, checkpoint=False), durable=True, path=data_dir,
                       release=lock.close)
    except BaseException:
        lock.close()
        raise


def __getattr__(name: str):
    # the concrete message stores by their old names, loaded only when asked for
    if name == "MemoryStore":
        from .memory import MemoryStore
        return MemoryStore
    if name == "SegmentStore":
        from .segments import SegmentStore
        return SegmentStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
