"""Resource alarms as a type: each has one owner, and one cannot clear another."""
import asyncio

import pytest

from warrenmq.broker.alarms import Alarm, blocked_reason
from warrenmq.broker.broker import Broker
from warrenmq.config import BrokerConfig
from warrenmq.store import memory_storage
from warrenmq.transport.storage import DiskMonitor


@pytest.fixture
def broker():
    b = Broker(BrokerConfig(data_dir=""), memory_storage())
    yield b
    b.close()


def test_the_alarms_and_their_connection_blocked_reasons():
    assert [a.name for a in Alarm] == ["MEMORY", "DISK_FREE", "STORE_FAILED"]
    assert Alarm.MEMORY.reason == "low on memory" and Alarm.DISK_FREE.reason == "low on disk"  # RabbitMQ's
    assert blocked_reason(set()) == ""
    assert blocked_reason({Alarm.DISK_FREE}) == "low on disk"
    assert blocked_reason({Alarm.DISK_FREE, Alarm.MEMORY}) == "low on memory"
    assert blocked_reason({Alarm.STORE_FAILED}) == "message store failed"
    assert blocked_reason({Alarm.STORE_FAILED, Alarm.DISK_FREE}) == "low on disk"


def test_set_alarm_takes_only_the_type(broker):
    with pytest.raises(TypeError):
        broker.set_alarm("disk", True)
    broker.set_alarm(Alarm.DISK_FREE, True)
    broker.set_alarm(Alarm.STORE_FAILED, True)
    broker.set_alarm(Alarm.DISK_FREE, False)
    assert broker.alarms == {Alarm.STORE_FAILED}, "clearing one alarm leaves the others on"
    assert broker.blocked_reason() == "message store failed"


def test_the_memory_monitor_raises_and_clears_only_the_memory_alarm(broker):
    broker.set_alarm(Alarm.STORE_FAILED, True)
    broker.memory.add(broker.memory.high + 1)
    assert broker.alarms == {Alarm.MEMORY, Alarm.STORE_FAILED}
    broker.memory.release(broker.memory.high + 1)
    assert broker.alarms == {Alarm.MEMORY, Alarm.STORE_FAILED}, "only a sample clears it"
    broker.memory.sample(rss=1)
    assert broker.alarms == {Alarm.STORE_FAILED}


def test_the_disk_monitor_cannot_clear_store_failed(broker, tmp_path):
    loop = asyncio.new_event_loop()
    try:
        broker.store_failed(OSError(28, "No space left on device"))
        monitor = DiskMonitor(broker, str(tmp_path), limit=0, loop=loop)  # free space is fine
        monitor.start()
        monitor.stop()
        assert broker.alarms == {Alarm.STORE_FAILED}
        low = DiskMonitor(broker, str(tmp_path), limit=10 ** 18, loop=loop)  # and now it is not
        low.start()
        low.stop()
        assert broker.alarms == {Alarm.STORE_FAILED, Alarm.DISK_FREE}
        monitor.start()
        monitor.stop()
        assert broker.alarms == {Alarm.STORE_FAILED}
        broker.store_recovered()
        assert broker.alarms == set()
    finally:
        loop.close()


# ------------------------------------------------------------------ the memory alarm on RSS (flow.py)
from warrenmq.broker.flow import LOW_FRACTION, MemoryMonitor, RssReader  # noqa: E402
from warrenmq.config import cgroup_memory_limit, parse_bytes, total_memory  # noqa: E402

MB = 1 << 20


def test_samples_raise_the_alarm_above_the_mark_and_clear_it_below_the_low_mark():
    m = MemoryMonitor(100 * MB)
    seen = []
    m.listeners.append(seen.append)
    m.sample(rss=99 * MB)
    assert not m.alarm and seen == []
    m.sample(rss=101 * MB)
    assert m.alarm and seen == [True]
    m.sample(rss=95 * MB)  # below the mark but above the low mark: hysteresis
    assert m.alarm and LOW_FRACTION * 100 * MB < 95 * MB
    m.sample(rss=80 * MB)
    assert not m.alarm and seen == [True, False]
    assert m.peak_rss == 101 * MB


def test_between_samples_bytes_received_and_queued_raise_the_alarm():
    m = MemoryMonitor(100 * MB)
    m.sample(rss=90 * MB)
    m.received(5 * MB)  # e.g. a large message being received
    m.add(4 * MB)  # bodies queued
    assert not m.alarm and m.estimate == 99 * MB
    m.received(2 * MB)
    assert m.alarm, "the estimate (last sample + bytes added since) crossed the mark"
    m.release(50 * MB)
    assert m.alarm, "only a sample clears it"
    m.sample(rss=60 * MB)
    assert not m.alarm and m.estimate == 60 * MB


def test_paging_starts_at_the_paging_ratio_of_the_mark():
    m = MemoryMonitor(100 * MB, paging_ratio=0.5)
    m.sample(rss=49 * MB)
    assert not m.paging
    m.sample(rss=51 * MB)
    assert m.paging and not m.alarm
    m.sample(rss=10 * MB)
    assert not m.paging


def test_rss_is_read_from_proc():
    r = RssReader()
    try:
        rss = r()
    finally:
        r.close()
    assert rss > 10 * MB
    assert RssReader.__call__(r) == 0  # closed


def test_the_watermark_settings():
    assert BrokerConfig().memory_watermark == int(total_memory() * 0.4)
    assert BrokerConfig(vm_memory_high_watermark=0.25).memory_watermark == int(total_memory() * 0.25)
    assert BrokerConfig(vm_memory_high_watermark_absolute=123456789).memory_watermark == 123456789
    assert BrokerConfig(memory_high_watermark=200_000_000).memory_watermark == 200_000_000  # the former key
    cfg = BrokerConfig.load(env={"WARRENMQ_VM_MEMORY_HIGH_WATERMARK_ABSOLUTE": "1GB",
                                 "WARRENMQ_VM_MEMORY_HIGH_WATERMARK_PAGING_RATIO": "0.75"})
    assert cfg.memory_watermark == 10 ** 9 and cfg.vm_memory_high_watermark_paging_ratio == 0.75
    assert BrokerConfig.load(env={"WARRENMQ_VM_MEMORY_HIGH_WATERMARK": "0.5"}).vm_memory_high_watermark == 0.5
    assert [parse_bytes(x) for x in ("1GB", "1GiB", "1G", "512MiB", "100MB", "4096", 7)] == \
        [10 ** 9, 1 << 30, 1 << 30, 512 << 20, 10 ** 8, 4096, 7]
    with pytest.raises(ValueError):
        parse_bytes("1XB")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_a_cgroup_memory_limit_is_respected(tmp_path, version):
    proc = tmp_path / "cgroup"
    if version == "v2":
        proc.write_text("0::/box/inner\n")
        (tmp_path / "box" / "inner").mkdir(parents=True)
        (tmp_path / "box" / "inner" / "memory.max").write_text("max\n")
        (tmp_path / "box" / "memory.max").write_text("536870912\n")
    else:
        proc.write_text("9:name=systemd:/\n4:memory:/box\n1:cpu:/\n")
        (tmp_path / "memory" / "box").mkdir(parents=True)
        (tmp_path / "memory" / "box" / "memory.limit_in_bytes").write_text("268435456\n")
        (tmp_path / "memory" / "memory.limit_in_bytes").write_text("9223372036854771712\n")  # no limit
    want = 536870912 if version == "v2" else 268435456
    assert cgroup_memory_limit(str(tmp_path), str(proc)) == want
    assert cgroup_memory_limit(str(tmp_path / "nothing"), str(proc)) == 0
