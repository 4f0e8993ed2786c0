"""MQTT 5 properties the broker forwards or answers with (docs/mqtt.md): repeated user properties, and
to AMQP and back, with paho-mqtt and pika over real sockets."""
import time

import paho.mqtt.client as mqtt
import pika
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from .helpers import Client

V5 = mqtt.MQTTv5


def amqp_get(ch, q):
    for _ in range(100):
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method:
            return props, body
        time.sleep(0.05)
    raise AssertionError("nothing arrived")


def test_repeated_user_properties_are_all_forwarded_in_order(mqtt_broker):
    """MQTT 5 3.3.2.3.7: a name may occur more than once, and the server keeps their order
    (MQTT-3.3.2-18). To an MQTT subscriber all come back in order; an AMQP consumer gets a repeated
    name as an array of its values (and the order of the names in x-mqtt-user-property-order when
    repeated names are interleaved)."""
    conn = pika.BlockingConnection(pika.URLParameters(mqtt_broker.url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "up.#")
    port = mqtt_broker.mqtt_port
    sub5 = Client(port, "up-sub5", V5)
    sub5.subscribe("up/#", 1)
    pub = Client(port, "up-pub", V5)
    cases = [
        [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")],  # interleaved
        [("k", "x"), ("k", "y"), ("k", "x"), ("z", "")],  # grouped, a value twice
        [("one", "1"), ("two", "2")],  # no repeats
    ]
    amqp = []
    for i, users in enumerate(cases):
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = users
        pub.publish(f"up/{i}", b"m%d" % i, 1, properties=props)
        m = sub5.get()
        assert (m.payload, m.properties.UserProperty) == (b"m%d" % i, users)
        amqp.append(amqp_get(ch, q)[0].headers)
    assert amqp[0]["a"] == ["1", "3"] and amqp[0]["b"] == "2" and amqp[0]["c"] == "4"
    assert amqp[0]["x-mqtt-user-property-order"] == ["a", "b", "a", "c"]
    assert amqp[1]["k"] == ["x", "y", "x"] and amqp[1]["z"] == ""
    assert "x-mqtt-user-property-order" not in amqp[1]
    assert (amqp[2]["one"], amqp[2]["two"]) == ("1", "2") and "x-mqtt-user-property-order" not in amqp[2]
    # an AMQP array header reaches an MQTT 5 subscriber as one user property per element
    ch.basic_publish("amq.topic", "up.amqp", b"from amqp",
                     pika.BasicProperties(headers={"tags": ["red", "blue"], "n": 5}))
    m = sub5.get()
    assert m.properties.UserProperty == [("tags", "red"), ("tags", "blue"), ("n", "5")]
    sub5.none(0.3)
    for c in (sub5, pub):
        c.close()
    conn.close()
