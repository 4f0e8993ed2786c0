"""What the Eclipse Paho interoperability suite (paho.mqtt.testing, interoperability/client_test.py and
client_test5.py; docs/mqtt.md says how it is run) checks, as our own tests over real sockets, so CI
guards the behaviour each passing test of that suite relies on (CI cannot fetch the suite)."""
import socket
import time

import paho.mqtt.client as mqtt
import pytest

from warrenmq.mqtt.codec import (CONNACK, MQTT311, Connect, PacketReader, Subscribe, Subscription,
                                 encode)

from .helpers import Client
from .test_mqtt import wait

V5 = mqtt.MQTTv5


def raw_connect(port, client_id, clean):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(encode(Connect(client_id=client_id, clean=clean, keepalive=60, version=MQTT311), MQTT311))
    return s


def read_packets(s, reader, n):
    got = []
    while len(got) < n:
        data = s.recv(65536)
        assert data, f"closed after {got}"
        got += reader.feed(data)
    return got


def test_connack_comes_before_the_messages_a_resumed_session_kept(mqtt_broker):
    """client_test's offline message queueing and redelivery on reconnect: the suite's client reads
    the first packet after CONNECT as the CONNACK."""
    port = mqtt_broker.mqtt_port
    sub = Client(port, "resumer", clean=False)
    sub.subscribe("offline/+", 2)
    sub.close()
    pub = Client(port, "pub")
    for i in range(5):
        pub.publish(f"offline/{i}", b"m%d" % i, 1)
    pub.close()
    mqtt_broker.wait_for_messages("mqtt-subscription-resumerqos1", 5)
    for _ in range(3):  # (the race was a matter of luck: try more than once)
        s = raw_connect(port, "resumer", clean=False)
        packets = read_packets(s, PacketReader(version=MQTT311), 6)
        assert packets[0].type == CONNACK and packets[0].session_present
        assert sorted(p.payload for p in packets[1:]) == [b"m%d" % i for i in range(5)]
        s.close()  # not acknowledged: redelivered on the next connect
        time.sleep(0.1)


@pytest.mark.parametrize("version", [mqtt.MQTTv311, V5])
def test_dollar_topics_are_not_matched_by_filters_starting_with_a_wildcard(mqtt_broker, version):
    """client_test's $ topics (MQTT-4.7.2-1): '+/+' and '#' do not match '$TopicA/B'; '$TopicA/+' does."""
    port = mqtt_broker.mqtt_port
    wild = Client(port, "wild", version)
    wild.subscribe("+/+", 1)
    wild.subscribe("#", 0)
    explicit = Client(port, "explicit", version)
    explicit.subscribe("$TopicA/+", 1)
    wild.publish("$TopicA/B", b"dollar", 1)
    assert explicit.get().payload == b"dollar"
    wild.none(0.5)
    wild.publish("TopicA/B", b"plain", 1)
    assert sorted(wild.get().payload for _ in range(2)) == [b"plain", b"plain"]
    explicit.none()
    # the one dropped from the QoS 1 queue was acked, not left unacknowledged
    wait(lambda: mqtt_broker.queue("mqtt-subscription-wildqos1").messages_unacknowledged == 0)
    assert mqtt_broker.queue("mqtt-subscription-wildqos1").messages_ready == 0
    wild.close()
    explicit.close()
