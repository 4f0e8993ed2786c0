"""An asyncio MQTT client, aiomqtt, against the embedded broker over real sockets: QoS 0, 1 and 2 with
MQTT 3.1.1 and 5, MQTT 5 properties across to AMQP (pika) and back, and a will (docs/mqtt.md).  Its
WebSocket transport is paho's, which tests/mqtt/test_web_mqtt.py drives on Web MQTT."""
import asyncio
import time

import pika
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

aiomqtt = pytest.importorskip("aiomqtt", reason="aiomqtt is in the test extra: pip install -e '.[test]'")

V311, V5 = aiomqtt.ProtocolVersion.V311, aiomqtt.ProtocolVersion.V5


async def next_message(client, timeout=5.0):
    return await asyncio.wait_for(client.messages.__anext__(), timeout)


async def no_message(client, timeout=0.3):
    try:
        m = await asyncio.wait_for(client.messages.__anext__(), timeout)
    except asyncio.TimeoutError:
        return
    raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")


def wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met")


@pytest.mark.parametrize("version", [V311, V5], ids=["3.1.1", "5"])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe_at_each_qos(mqtt_broker, version, qos):
    port = mqtt_broker.mqtt_port

    async def main():
        async with aiomqtt.Client("127.0.0.1", port, identifier="aio-sub", protocol=version) as sub, \
                aiomqtt.Client("127.0.0.1", port, identifier="aio-pub", protocol=version) as pub:
            granted = await sub.subscribe("plant/+/temp", qos)
            assert [int(getattr(g, "value", g)) for g in granted] == [qos]
            for i in range(5):
                await pub.publish(f"plant/m{i}/temp", f"{i}".encode(), qos)
            got = [await next_message(sub) for _ in range(5)]
            assert [(m.topic.value, m.payload, m.qos) for m in got] == \
                [(f"plant/m{i}/temp", f"{i}".encode(), qos) for i in range(5)]
            assert all(m.topic.matches("plant/+/temp") for m in got)
            await pub.publish("plant/m1/humidity", b"not subscribed", qos)
            await no_message(sub)
            # the subscription is RabbitMQ's queue, and every delivery was settled by aiomqtt's
            # PUBACK (QoS 1) or PUBREC (QoS 2), or needed none (QoS 0)
            name = f"mqtt-subscription-aio-subqos{1 if qos else 0}"
            await asyncio.to_thread(wait, lambda: mqtt_broker.queue(name).messages == 0)
            assert ("amq.topic", "plant.*.temp") in mqtt_broker.queue(name).bindings

    asyncio.run(main())


def test_qos2_publish_is_routed_once(mqtt_broker):
    """aiomqtt's QoS 2 publish completes the four-packet handshake (its publish returns after
    PUBCOMP) and the message reaches an AMQP queue exactly once."""
    conn = pika.BlockingConnection(pika.URLParameters(mqtt_broker.url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "once.#")

    async def main():
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.mqtt_port, identifier="aio-once") as pub:
            for i in range(3):
                await pub.publish("once/x", f"m{i}".encode(), 2, timeout=5)

    asyncio.run(main())
    bodies = []
    for _ in range(100):
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method:
            bodies.append(body)
            assert props.headers["x-mqtt-publish-qos"] == 2
            assert method.routing_key == "once.x"
        elif len(bodies) == 3:
            break
        else:
            time.sleep(0.02)
    assert bodies == [b"m0", b"m1", b"m2"]
    conn.close()


def test_mqtt5_properties_to_amqp_and_back(mqtt_broker):
    conn = pika.BlockingConnection(pika.URLParameters(mqtt_broker.url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "rpc.request")

    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.CorrelationData = b"corr-42"
    props.ResponseTopic = "rpc/reply"
    props.UserProperty = [("site", "north"), ("unit", "C")]
    props.MessageExpiryInterval = 60
    props.PayloadFormatIndicator = 1

    async def mqtt_side():
        async with aiomqtt.Client("127.0.0.1", mqtt_broker.mqtt_port, identifier="aio-props", protocol=V5) as c:
            await c.subscribe("rpc/reply", 1)
            await c.subscribe("rpc/request", 1)
            await c.publish("rpc/request", b'{"t": 21.5}', 1, properties=props)
            # an MQTT 5 subscriber gets the properties back
            m = await next_message(c)
            assert (m.topic.value, m.payload) == ("rpc/request", b'{"t": 21.5}')
            p = m.properties
            assert p.ContentType == "application/json"
            assert p.CorrelationData == b"corr-42"
            assert p.ResponseTopic == "rpc/reply"
            assert ("site", "north") in p.UserProperty and ("unit", "C") in p.UserProperty
            assert p.PayloadFormatIndicator == 1
            # the AMQP side sees them as properties and answers on reply_to
            method, amqp_props, body = await asyncio.to_thread(get_one, ch, q)
            assert body == b'{"t": 21.5}'
            assert amqp_props.content_type == "application/json"
            assert amqp_props.correlation_id == "corr-42"
            assert amqp_props.reply_to == "rpc.reply"
            assert amqp_props.expiration == "60000"
            assert amqp_props.headers["site"] == "north" and amqp_props.headers["unit"] == "C"
            await asyncio.to_thread(
                ch.basic_publish, "amq.topic", amqp_props.reply_to, b"ok",
                pika.BasicProperties(content_type="text/plain", correlation_id=amqp_props.correlation_id,
                                     headers={"worker": "w1"}))
            r = await next_message(c)
            assert (r.topic.value, r.payload) == ("rpc/reply", b"ok")
            assert r.properties.ContentType == "text/plain"
            assert r.properties.CorrelationData == b"corr-42"
            assert ("worker", "w1") in r.properties.UserProperty

    asyncio.run(mqtt_side())
    conn.close()


def get_one(ch, q):
    for _ in range(250):
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method:
            return method, props, body
        time.sleep(0.02)
    raise AssertionError("no message reached the AMQP queue")


def test_will_message_of_an_asyncio_client(mqtt_broker):
    port = mqtt_broker.mqtt_port

    async def main():
        async with aiomqtt.Client("127.0.0.1", port, identifier="aio-watcher") as watcher:
            await watcher.subscribe("status/#", 1)
            dying = aiomqtt.Client("127.0.0.1", port, identifier="aio-dying", keepalive=1,
                                   will=aiomqtt.Will("status/aio-dying", b"offline", 1))
            await dying.__aenter__()
            # lose the socket without DISCONNECT: the broker publishes the will
            dying._client.socket().close()
            m = await next_message(watcher, timeout=10)
            assert (m.topic.value, m.payload, m.qos) == ("status/aio-dying", b"offline", 1)
            try:
                await dying.__aexit__(None, None, None)
            except aiomqtt.MqttError:
                pass

    asyncio.run(main())
