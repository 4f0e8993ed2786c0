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
