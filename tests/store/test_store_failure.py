"""A message store whose writes fail: the store-failed alarm, nacks, and recovery once writes work again.

The fault is real and at the file level: the file descriptor the store appends
to is pointed at ``/dev/full`` (``dup2``), so the store's own ``write`` fails
with ENOSPC exactly as on a full disk, while free space (what the disk monitor
looks at) stays fine.  Removing the fault points the descriptor back at the
segment file.  The client is a raw AMQP client that does not wait for confirms,
so the test sees every ``basic.ack``/``basic.nack`` and ``connection.blocked``
frame as it comes.
"""
from __future__ import annotations

import os
import socket
import struct
import time

import pytest

from support.raw import RawClient
from warrenmq.protocol import spec
from warrenmq.protocol.frames import method_frame
from warrenmq.protocol.spec import BasicProperties
from warrenmq.testing import EmbeddedBroker

pytestmark = [pytest.mark.timeout(60),
              pytest.mark.skipif(not os.path.exists("/proc/self/fd") or not os.path.exists("/dev/full"),
                                 reason="needs /proc/self/fd and /dev/full (Linux)")]

PERSISTENT = BasicProperties(delivery_mode=2).encode()


def publish(c: RawClient, body: bytes) -> None:
    header = struct.pack(">HHQ", spec.CLASS_BASIC, 0, len(body)) + PERSISTENT
    c.send(method_frame(1, spec.BasicPublish(0, "", "q", False, False))
           + struct.pack(">BHI", spec.FRAME_HEADER, 1, len(header)) + header + b"\xce"
           + struct.pack(">BHI", spec.FRAME_BODY, 1, len(body)) + body + b"\xce")


def methods(c: RawClient, seconds: float) -> list:
    """Every method the broker sends within ``seconds``."""
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        c.sock.settimeout(left)
        try:
            got = c.read_method()
        except (socket.timeout, TimeoutError):
            break
        assert got is not None, "the broker closed the connection"
        out.append(got[1])
    return out


def until(c: RawClient, done, timeout: float = 10.0) -> list:
    """Methods from the broker until ``done(methods so far)``."""
    out = []
    deadline = time.monotonic() + timeout
    while not done(out):
        assert time.monotonic() < deadline, f"timed out; got {out}"
        out += methods(c, 0.1)
    return out


def store_writer_fd(data_dir: str) -> int:
    """The descriptor the message store writes its active segment through."""
    found = []
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
            with open(f"/proc/self/fdinfo/{name}") as f:
                flags = int(f.read().split("flags:")[1].split()[0], 8)
        except (OSError, IndexError):
            continue
        if target.startswith(os.path.join(data_dir, "msg_store")) and target.endswith(".seg") \
                and flags & os.O_ACCMODE == os.O_WRONLY:
            found.append(int(name))
    assert len(found) == 1, found
    return found[0]


class DiskFull:
    """While active, writes through ``fd`` fail with ENOSPC."""

    def __init__(self, fd: int):
        self.fd = fd
        self.saved = os.dup(fd)
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, fd)
        os.close(full)

    def remove(self) -> None:
        os.dup2(self.saved, self.fd)
        os.close(self.saved)


def acks_and_nacks(ms) -> list:
    return [(type(m).__name__[5:], m.delivery_tag) for m in ms if isinstance(m, (spec.BasicAck, spec.BasicNack))]


def test_a_failed_write_nacks_blocks_publishers_until_the_store_works_again(tmp_path, caplog):
    data = str(tmp_path / "data")
    with EmbeddedBroker(data_dir=data) as b:
        c = RawClient(b.port)
        c.handshake(capabilities={"connection.blocked": True})
        c.open_channel()
        c.send_method(1, spec.ConfirmSelect(False))
        assert isinstance(c.read_method()[1], spec.ConfirmSelectOk)
        c.send_method(1, spec.QueueDeclare(0, "q", False, True, False, False, False, {}))
        assert isinstance(c.read_method()[1], spec.QueueDeclareOk)
        publish(c, b"one")
        assert acks_and_nacks(until(c, lambda ms: acks_and_nacks(ms))) == [("Ack", 1)]

        fault = DiskFull(store_writer_fd(data))
        try:
            with caplog.at_level("INFO", logger="warrenmq"):
                publish(c, b"two")  # its write fails: nacked, publishers blocked
                got = until(c, lambda ms: ("Nack", 2) in acks_and_nacks(ms))
                assert acks_and_nacks(got) == [("Nack", 2)]
                assert b.call(lambda: sorted(a.name for a in b.broker.alarms)) == ["STORE_FAILED"]
                publish(c, b"three")  # read (the first publish under an alarm), nacked, then not read
                publish(c, b"four")
                got = until(c, lambda ms: ("Nack", 3) in acks_and_nacks(ms))
                assert any(isinstance(m, spec.ConnectionBlocked) for m in got), got
                # the disk monitor runs every second and free space is fine: the alarm stays
                got = methods(c, 2.5)
                assert acks_and_nacks(got) == [] and not any(isinstance(m, spec.ConnectionUnblocked) for m in got)
                assert b.call(lambda: sorted(a.name for a in b.broker.alarms)) == ["STORE_FAILED"]
                failures = [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
                assert len(failures) == 1, [r.getMessage() for r in failures]  # said once, not per message
        finally:
            fault.remove()
        # the committer retries: the write and fsync succeed, the alarm clears, "four" is read and confirmed
        got = until(c, lambda ms: ("Ack", 4) in acks_and_nacks(ms))
        assert any(isinstance(m, spec.ConnectionUnblocked) for m in got), got
        assert acks_and_nacks(got) == [("Ack", 4)]
        assert b.call(lambda: sorted(b.broker.alarms)) == []
        publish(c, b"five")
        assert acks_and_nacks(until(c, lambda ms: acks_and_nacks(ms))) == [("Ack", 5)]
        c.close()
    # what the queue held when the store failed was written once it worked again: nothing is lost
    with EmbeddedBroker(data_dir=data) as b:
        c = RawClient(b.port)
        c.handshake()
        c.open_channel()
        bodies = []
        for _ in range(5):
            c.send_method(1, spec.BasicGet(0, "q", True))
            m = c.read_method()[1]
            if isinstance(m, spec.BasicGetEmpty):
                break
            c.read_frame()
            bodies.append(c.read_frame()[2])
        assert bodies == [b"one", b"two", b"three", b"four", b"five"]
        c.close()


def test_a_failed_page_store_write_keeps_the_bodies_and_is_retried(tmp_path, monkeypatch, caplog):
    import asyncio
    import errno

    from support.store import message
    from warrenmq.store import SegmentStore
    from warrenmq.transport.storage import PageFlusher

    def no_space(fd, bufs, off):
        raise OSError(errno.ENOSPC, "No space left on device")

    loop = asyncio.new_event_loop()
    store = SegmentStore(str(tmp_path / "pages"), fsync=False)
    flusher = PageFlusher(store, loop, retry_interval=0.05)
    msgs = [message(i, size=3000) for i in range(4)]
    bodies = [m.body for m in msgs]
    ids = []

    def page_out(m):
        ids.append(store.stash(m))
        m.paged = True
        store.page_out(m)
    try:
        page_out(msgs[0])
        loop.run_until_complete(asyncio.sleep(0.01))
        assert msgs[0].body is None and store.read_body(ids[0]) == bodies[0]
        monkeypatch.setattr(os, "pwritev", no_space)
        with caplog.at_level("INFO", logger="warrenmq"):
            page_out(msgs[1])
            loop.run_until_complete(asyncio.sleep(0.01))
            page_out(msgs[2])
            loop.run_until_complete(asyncio.sleep(0.2))  # a few retries
            assert msgs[1].body == bodies[1] and msgs[2].body == bodies[2], "kept in memory meanwhile"
            monkeypatch.undo()
            page_out(msgs[3])
            loop.run_until_complete(asyncio.sleep(0.2))
        assert [m.body for m in msgs] == [None] * 4
        assert [store.read_body(i) for i in ids] == bodies
        assert [r.levelname for r in caplog.records] == ["ERROR", "WARNING"], caplog.text
    finally:
        flusher.close()
        store.close()
        loop.close()


def test_a_broker_stopping_while_its_store_fails_says_so_and_releases_the_directory(tmp_path, caplog):
    data = str(tmp_path / "data")
    b = EmbeddedBroker(data_dir=data).start()
    c = RawClient(b.port)
    c.handshake()
    c.open_channel()
    c.send_method(1, spec.ConfirmSelect(False))
    c.read_method()
    c.send_method(1, spec.QueueDeclare(0, "q", False, True, False, False, False, {}))
    c.read_method()
    publish(c, b"one")
    until(c, lambda ms: acks_and_nacks(ms))
    fault = DiskFull(store_writer_fd(data))
    try:
        publish(c, b"two")
        assert acks_and_nacks(until(c, lambda ms: acks_and_nacks(ms))) == [("Nack", 2)]
        c.close()
        with caplog.at_level("ERROR", logger="warrenmq"):
            b.stop()
        assert "still failing at shutdown" in caplog.text
    finally:
        os.close(fault.saved)  # the store closed its descriptor: nothing to point back
    with EmbeddedBroker(data_dir=data) as b2:  # the lock went with the broker; "one" was stored
        c = RawClient(b2.port)
        c.handshake()
        c.open_channel()
        c.send_method(1, spec.BasicGet(0, "q", True))
        assert isinstance(c.read_method()[1], spec.BasicGetOk)
        c.read_frame()
        assert c.read_frame()[2] == b"one"
        c.close()
