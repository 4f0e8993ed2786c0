"""gmqtt, an asyncio MQTT client with a packet codec of its own (not paho's, which paho-mqtt and
aiomqtt share), against the embedded broker over real sockets: QoS 0, 1 and 2 with MQTT 3.1.1 and
5, MQTT 5 publish properties and topic aliases, and a persistent session across a reconnect."""
import asyncio
import time

import pytest

gmqtt = pytest.importorskip("gmqtt", reason="gmqtt is in the test extra: pip install -e '.[test]'")
from gmqtt.mqtt.constants import MQTTv311, MQTTv50  # noqa: E402


def wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met")


class Receiver:
    """A gmqtt client whose messages land in an asyncio queue."""

    def __init__(self, client_id, **kw):
        self.client = gmqtt.Client(client_id, **kw)
        self.got: asyncio.Queue = asyncio.Queue()
        self.subacks: asyncio.Queue = asyncio.Queue()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda c, mid, qos, props: self.subacks.put_nowait(qos)

    def _on_message(self, client, topic, payload, qos, properties):
        self.got.put_nowait((topic, payload, qos, properties))
        return 0  # PUBACK / PUBREC reason: success

    async def get(self, timeout=5.0):
        return await asyncio.wait_for(self.got.get(), timeout)

    async def none(self, timeout=0.3):
        try:
            m = await asyncio.wait_for(self.got.get(), timeout)
        except asyncio.TimeoutError:
            return
        raise AssertionError(f"unexpected message {m!r}")

    async def subscribe(self, topic, qos):
        self.client.subscribe(topic, qos=qos)
        return await asyncio.wait_for(self.subacks.get(), 5)


@pytest.mark.parametrize("version", [MQTTv311, MQTTv50], ids=["3.1.1", "5"])
def test_each_qos_both_ways(mqtt_broker, version):
    port = mqtt_broker.mqtt_port

    async def main():
        sub, pub = Receiver("g-sub"), Receiver("g-pub")
        await sub.client.connect("127.0.0.1", port, version=version)
        await pub.client.connect("127.0.0.1", port, version=version)
        for qos in (0, 1, 2):
            assert list(await sub.subscribe(f"g/{qos}/+", qos)) == [qos]
        for qos in (0, 1, 2):
            for i in range(3):
                pub.client.publish(f"g/{qos}/{i}", f"{qos}.{i}".encode(), qos=qos)
        got = [await sub.get() for _ in range(9)]
        assert sorted((t, p, q) for t, p, q, _ in got) == \
            sorted((f"g/{qos}/{i}", f"{qos}.{i}".encode(), qos) for qos in (0, 1, 2) for i in range(3))
        # per QoS the order is the publisher's
        for qos in (0, 1, 2):
            assert [p for t, p, q, _ in got if q == qos] == [f"{qos}.{i}".encode() for i in range(3)]
        pub.client.publish("g/3/x", b"no subscription", qos=1)
        await sub.none()
        # every QoS 1 and 2 delivery was settled by gmqtt's PUBACK or PUBREC
        await asyncio.to_thread(wait, lambda: mqtt_broker.queue("mqtt-subscription-g-subqos1").messages == 0)
        await pub.client.disconnect()
        await sub.client.disconnect()

    asyncio.run(main())
    # the clean session's queues go with the connection
    wait(lambda: not [n for n in mqtt_broker.queues() if n.startswith("mqtt-subscription-g-sub")])


def test_mqtt5_properties_and_topic_alias(mqtt_broker):
    port = mqtt_broker.mqtt_port

    async def main():
        sub, pub = Receiver("g5-sub"), Receiver("g5-pub")
        await sub.client.connect("127.0.0.1", port, version=MQTTv50)
        await pub.client.connect("127.0.0.1", port, version=MQTTv50)
        await sub.subscribe("dev/+/out", 1)
        pub.client.publish("dev/7/out", b'{"v": 1}', qos=1, content_type="application/json",
                           correlation_data=b"\x00\x01", response_topic="dev/7/in",
                           user_property=[("site", "north"), ("unit", "C")])
        topic, payload, qos, props = await sub.get()
        assert (topic, payload, qos) == ("dev/7/out", b'{"v": 1}', 1)
        assert props["content_type"] == ["application/json"]
        assert props["correlation_data"] == [b"\x00\x01"]
        assert props["response_topic"] == ["dev/7/in"]
        assert sorted(props["user_property"]) == [("site", "north"), ("unit", "C")]
        # a topic alias set by one PUBLISH and used alone by the next
        pub.client.publish("dev/8/out", b"first", qos=1, topic_alias=2)
        pub.client.publish("", b"second", qos=1, topic_alias=2)
        assert [(t, p) for t, p, _, _ in [await sub.get(), await sub.get()]] == \
            [("dev/8/out", b"first"), ("dev/8/out", b"second")]
        await pub.client.disconnect()
        await sub.client.disconnect()

    asyncio.run(main())


def test_persistent_session_keeps_qos1_and_qos2_messages(mqtt_broker):
    port = mqtt_broker.mqtt_port

    async def main():
        sub = Receiver("g-keep", clean_session=False, session_expiry_interval=300)
        await sub.client.connect("127.0.0.1", port, version=MQTTv50)
        await sub.subscribe("keep/#", 1)
        await sub.client.disconnect()
        pub = Receiver("g-keep-pub")
        await pub.client.connect("127.0.0.1", port, version=MQTTv50)
        pub.client.publish("keep/a", b"while away 1", qos=1)
        pub.client.publish("keep/b", b"while away 2", qos=2)
        await asyncio.sleep(0.3)
        back = Receiver("g-keep", clean_session=False, session_expiry_interval=300)
        await back.client.connect("127.0.0.1", port, version=MQTTv50)
        got = [await back.get(), await back.get()]
        assert [(t, p, q) for t, p, q, _ in got] == [("keep/a", b"while away 1", 1), ("keep/b", b"while away 2", 1)]
        await back.none()
        await pub.client.disconnect()
        await back.client.disconnect()

    asyncio.run(main())
