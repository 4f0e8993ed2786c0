"""What the Eclipse Paho interoperability suite (paho.mqtt.testing, interoperability/client_test.py and
client_test5.py; docs/mqtt.md says how it is run) checks, as our own tests over real sockets, so CI
guards the behaviour each passing test of that suite relies on (CI cannot fetch the suite)."""
import socket
import time

import paho.mqtt.client as mqtt
import pytest

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from warrenmq.mqtt.codec import (CONNACK, DISCONNECT, MQTT311, MQTT5, PUBACK, PUBLISH, PUBREC,
                                 RECEIVE_MAXIMUM_EXCEEDED, Connect, PacketReader, PubAck, Publish, Subscribe,
                                 Subscription, encode)
from warrenmq.testing import EmbeddedBroker

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


def subscribe5(client, topic, qos, sid=None, **options):
    props = None
    if sid is not None:
        props = Properties(PacketTypes.SUBSCRIBE)
        props.SubscriptionIdentifier = sid
    client.c.subscribe(topic, options=SubscribeOptions(qos=qos, **options), properties=props)
    return client.subacks.get(timeout=5)


def test_no_local_keeps_a_clients_own_publishes_from_it(mqtt_broker):
    """client_test5's subscribe options (noLocal) and request/response."""
    port = mqtt_broker.mqtt_port
    a = Client(port, "nl-a", V5)
    b = Client(port, "nl-b", V5)
    subscribe5(a, "chat/room", 2, noLocal=True)
    subscribe5(b, "chat/room", 2, noLocal=True)
    a.publish("chat/room", b"from a", 1)
    assert b.get().payload == b"from a"
    b.publish("chat/room", b"from b", 1)
    assert a.get().payload == b"from b"
    a.none()
    b.none()
    # nothing is left unacknowledged in a's queue by the message it did not get
    wait(lambda: mqtt_broker.queue("mqtt-subscription-nl-aqos1").messages_unacknowledged == 0)
    a.close()
    b.close()


def test_retain_as_published_and_retain_handling(mqtt_broker):
    """client_test5's subscribe options: the RETAIN flag of a live delivery is kept only with
    retain-as-published; retain handling 1 sends retained messages for a new subscription only, 2 never."""
    port = mqtt_broker.mqtt_port
    c = Client(port, "rap", V5)
    subscribe5(c, "rap/t", 1, retainAsPublished=True)
    c.publish("rap/t", b"not retained", 1)
    c.publish("rap/t", b"retained", 1, retain=True)
    got = [c.get(), c.get()]
    assert [(m.payload, m.retain) for m in got] == [(b"not retained", False), (b"retained", True)]
    plain = Client(port, "no-rap", V5)
    plain.subscribe("rap/+", 1)
    m = plain.get()
    assert (m.payload, m.retain) == (b"retained", True)  # a retained message for a new subscription
    c.publish("rap/t", b"retained again", 1, retain=True)
    m = plain.get()
    assert (m.payload, m.retain) == (b"retained again", False)  # live, without retain-as-published
    for q in (0, 1, 2):
        c.publish(f"rh/{q}", b"r%d" % q, q, retain=True)
    h1 = Client(port, "rh1", V5)
    subscribe5(h1, "rh/+", 2, retainHandling=1)
    assert sorted((m.payload, m.qos) for m in (h1.get(), h1.get(), h1.get())) == [(b"r0", 0), (b"r1", 1), (b"r2", 2)]
    subscribe5(h1, "rh/+", 2, retainHandling=1)  # it exists: none again
    h1.none(0.5)
    subscribe5(h1, "rh/+", 2, retainHandling=0)  # 0: every time
    assert len([h1.get(), h1.get(), h1.get()]) == 3
    h2 = Client(port, "rh2", V5)
    subscribe5(h2, "rh/+", 2, retainHandling=2)
    h2.none(0.5)
    for cl in (c, plain, h1, h2):
        cl.close()


def test_subscription_identifiers_come_back_with_each_matching_subscription(mqtt_broker):
    """client_test5's subscribe identifiers: one delivery carries the identifiers of every matching filter."""
    port = mqtt_broker.mqtt_port
    a = Client(port, "sid-a", V5)
    subscribe5(a, "sid/t", 2, sid=456789)
    b = Client(port, "sid-b", V5)
    subscribe5(b, "sid/t", 2, sid=2)
    subscribe5(b, "sid/t/#", 2, sid=3)
    b.publish("sid/t", b"x", 1)
    assert a.get().properties.SubscriptionIdentifier == [456789]
    assert sorted(b.get().properties.SubscriptionIdentifier) == [2, 3]
    b.none()
    a.close()
    b.close()


def raw5(port, client_id, keepalive=120, **props):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(encode(Connect(version=MQTT5, client_id=client_id, clean=True, keepalive=keepalive,
                                 properties=props), MQTT5))
    reader = PacketReader(version=MQTT5)
    [connack] = read_packets(s, reader, 1)
    return s, reader, connack


def test_the_server_sets_topic_aliases_when_the_client_accepts_them(mqtt_broker):
    """client_test5's server topic alias: the first delivery names the topic and the alias, the next
    ones the alias alone; a client that accepts none gets none."""
    port = mqtt_broker.mqtt_port
    for maximum, expect_alias in ((1, True), (0, False)):
        s, reader, _ = raw5(port, f"alias{maximum}", **({"topic_alias_maximum": maximum} if maximum else {}))
        s.sendall(encode(Subscribe(1, [Subscription("alias/t", 0)]), MQTT5))
        read_packets(s, reader, 1)
        for i in range(3):
            s.sendall(encode(Publish("alias/t", b"%d" % i, 0), MQTT5))
        got = read_packets(s, reader, 3)
        if expect_alias:
            assert [(p.topic, p.properties.get("topic_alias")) for p in got] == [("alias/t", 1), ("", 1), ("", 1)]
        else:
            assert [(p.topic, p.properties.get("topic_alias")) for p in got] == [("alias/t", None)] * 3
        s.close()


def test_receive_maximum_both_ways(mqtt_broker):
    """client_test5's flow control: the client's receive maximum bounds the QoS 1 deliveries it has not
    acknowledged; the server's (in the CONNACK) bounds the client's unacknowledged publishes, and one
    more is DISCONNECT 0x93."""
    port = mqtt_broker.mqtt_port
    s, reader, connack = raw5(port, "fc1", receive_maximum=2)
    assert connack.properties["receive_maximum"] == 1024
    s.sendall(encode(Subscribe(1, [Subscription("fc/t", 1)]), MQTT5))
    read_packets(s, reader, 1)
    for i in range(3):
        s.sendall(encode(Publish("fc/t", b"%d" % i, 1, packet_id=10 + i), MQTT5))
    got = read_packets(s, reader, 5)  # three PUBACKs, two PUBLISHes
    publishes = [p for p in got if p.type == PUBLISH]
    assert [p.payload for p in publishes] == [b"0", b"1"]
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):
        s.recv(100)
    s.settimeout(5)
    s.sendall(encode(PubAck(PUBACK, publishes[0].packet_id), MQTT5))
    [third] = read_packets(s, reader, 1)
    assert third.payload == b"2"
    s.close()
    s, reader, _ = raw5(port, "fc2")
    s.sendall(b"".join(encode(Publish("fc/none", b"m", 2, packet_id=i), MQTT5) for i in range(1, 1026)))
    got = read_packets(s, reader, 1)
    while got[-1].type != DISCONNECT:
        got += read_packets(s, reader, 1)
    assert got[-1].code == RECEIVE_MAXIMUM_EXCEEDED
    assert {p.type for p in got[:-1]} <= {PUBREC}
    s.close()


def test_server_keep_alive():
    """client_test5's server keep alive: with mqtt_server_keepalive set, a client asking for more (or for
    none) is told the server's in the CONNACK and held to it."""
    with EmbeddedBroker(mqtt=True, mqtt_server_keepalive=60) as b:
        s, _, connack = raw5(b.mqtt_port, "ka")  # asks for 120
        assert connack.properties["server_keep_alive"] == 60
        s.close()
        s, _, connack = raw5(b.mqtt_port, "ka", keepalive=30)  # asks for 30: kept
        assert "server_keep_alive" not in connack.properties
        s.close()
    with EmbeddedBroker(mqtt=True) as b:  # by default the client's own
        s, _, connack = raw5(b.mqtt_port, "ka")
        assert "server_keep_alive" not in connack.properties
        s.close()


def test_message_expiry_counts_down_while_the_message_waits(mqtt_broker):
    """client_test5's publication expiry: a message delivered after waiting carries the time it has left;
    one whose time ran out is not delivered."""
    port = mqtt_broker.mqtt_port
    sub = Client(port, "expiring", V5, clean=False, properties=_expiry_props(60))
    sub.subscribe("exp/+", 1)
    sub.close()
    pub = Client(port, "exp-pub", V5)
    for topic, seconds in (("exp/short", 1), ("exp/long", 6)):
        p = Properties(PacketTypes.PUBLISH)
        p.MessageExpiryInterval = seconds
        pub.publish(topic, b"x", 1, properties=p)
    time.sleep(2.2)
    again = Client(port, "expiring", V5, clean=False, properties=_expiry_props(60))
    m = again.get()
    assert m.topic == "exp/long" and m.properties.MessageExpiryInterval in (3, 4)
    again.none(0.5)
    again.close()
    pub.close()


def _expiry_props(seconds):
    p = Properties(PacketTypes.CONNECT)
    p.SessionExpiryInterval = seconds
    return p


def _will_client(port, client_id, delay, expiry):
    c = Client(port, client_id, V5, connect=False, properties=_expiry_props(expiry))
    wp = Properties(PacketTypes.WILLMESSAGE)
    wp.WillDelayInterval = delay
    c.c.will_set("wills/" + client_id, b"gone", 1, properties=wp)
    c.connect()
    return c


@pytest.mark.parametrize("delay, expiry, after", [(2, 5, 2), (5, 0, 0), (5, 1, 1)])
def test_will_delay_is_the_shorter_of_the_delay_and_the_session(mqtt_broker, delay, expiry, after):
    """client_test5's will delay: the will is published once its delay or the session is over,
    whichever comes first."""
    port = mqtt_broker.mqtt_port
    watcher = Client(port, "watcher", V5)
    watcher.subscribe("wills/#", 1)
    dying = _will_client(port, "dying", delay, expiry)
    dying.drop()
    start = time.monotonic()
    m = watcher.get(timeout=after + 3)
    took = time.monotonic() - start
    assert (m.topic, m.payload) == ("wills/dying", b"gone")
    assert after - 0.3 <= took <= after + 0.9, took
    watcher.close()


def test_a_will_with_a_delay_is_not_published_when_the_client_comes_back_in_time(mqtt_broker):
    port = mqtt_broker.mqtt_port
    watcher = Client(port, "watcher", V5)
    watcher.subscribe("wills/#", 1)
    dying = _will_client(port, "flaky", 1, 10)
    dying.drop()
    back = Client(port, "flaky", V5, clean=False, properties=_expiry_props(10))
    watcher.none(1.6)
    back.close()
    watcher.close()


def test_a_disconnect_can_change_the_session_expiry(mqtt_broker):
    """client_test5's session expiry: a DISCONNECT's session expiry interval replaces the CONNECT's;
    0 ends the session with the connection."""
    port = mqtt_broker.mqtt_port
    c = Client(port, "exp-change", V5, properties=_expiry_props(1))
    c.subscribe("sess/t", 1)
    p = Properties(PacketTypes.DISCONNECT)
    p.SessionExpiryInterval = 5
    c.c.disconnect(properties=p)
    c.c.loop_stop()
    time.sleep(1.5)  # past the CONNECT's 1 s, within the DISCONNECT's 5 s
    again = Client(port, "exp-change", V5, clean=False, connect=False, properties=_expiry_props(1))
    flags, _, _ = again.connect()
    assert flags.session_present
    p.SessionExpiryInterval = 0
    again.c.disconnect(properties=p)
    again.c.loop_stop()
    wait(lambda: "mqtt-subscription-exp-changeqos1" not in mqtt_broker.queues())


@pytest.mark.parametrize("version", [mqtt.MQTTv311, V5])
def test_shared_subscriptions_hand_each_message_to_one_member(mqtt_broker, version):
    """client_test5's shared subscriptions: '$share/<group>/<filter>' members share one queue, each
    message goes to one of them (round robin); a plain subscription beside it gets every message."""
    port = mqtt_broker.mqtt_port
    a = Client(port, "share-a", version)
    b = Client(port, "share-b", version)
    for c in (a, b):
        assert [getattr(r, "value", r) for r in c.subscribe("$share/workers/jobs/+", 1)] == [1]
    everyone = Client(port, "share-all", version)
    everyone.subscribe("jobs/+", 0)
    assert "mqtt-shared-workers-jobs/+" in mqtt_broker.queues()
    pub = Client(port, "share-pub", version)
    for i in range(10):
        pub.publish(f"jobs/{i}", b"%d" % i, 1)
    assert sorted(everyone.get().payload for _ in range(10)) == [b"%d" % i for i in range(10)]
    time.sleep(0.3)
    got_a = [m.payload for m in list(a.messages.queue)]
    got_b = [m.payload for m in list(b.messages.queue)]
    assert sorted(got_a + got_b) == [b"%d" % i for i in range(10)]  # each once
    assert len(got_a) == len(got_b) == 5  # round robin
    a.c.unsubscribe("$share/workers/jobs/+")
    time.sleep(0.3)
    pub.publish("jobs/x", b"after", 1)
    wait(lambda: b.messages.qsize() == 6)
    assert b.messages.queue[-1].payload == b"after"
    for c in (a, b, everyone, pub):
        c.close()
    wait(lambda: "mqtt-shared-workers-jobs/+" not in mqtt_broker.queues())  # gone with its last member


def test_a_bad_shared_subscription_filter_is_refused(mqtt_broker):
    s, reader, _ = raw5(mqtt_broker.mqtt_port, "share-bad")
    s.sendall(encode(Subscribe(1, [Subscription("$share/g+/x", 1), Subscription("$share/g", 1),
                                   Subscription("$share/g/ok", 1)]), MQTT5))
    [suback] = read_packets(s, reader, 1)
    assert suback.codes == [0x8F, 0x8F, 1]
    s.close()


def test_a_resumed_persistent_session_keeps_qos2_subscriptions(mqtt_broker):
    """A filter granted QoS 2 is still QoS 2 after a reconnect to the persistent session (its binding
    says so), beside a QoS 1 filter on the same queue; unsubscribing removes the right binding."""
    port = mqtt_broker.mqtt_port
    sub = Client(port, "keeps2", clean=False)
    sub.subscribe("k2/two", 2)
    sub.subscribe("k2/one", 1)
    sub.close()
    again = Client(port, "keeps2", clean=False)
    pub = Client(port, "keeps2-pub")
    pub.publish("k2/two", b"2", 2)
    pub.publish("k2/one", b"1", 2)
    got = sorted((m.topic, m.qos) for m in (again.get(), again.get()))
    assert got == [("k2/one", 1), ("k2/two", 2)]
    again.c.unsubscribe("k2/two")
    time.sleep(0.3)
    pub.publish("k2/two", b"gone", 2)
    again.none(0.5)
    again.subscribe("k2/one", 2)  # upgraded in place: one binding, delivered at QoS 2
    pub.publish("k2/one", b"up", 2)
    m = again.get()
    assert (m.payload, m.qos) == (b"up", 2)
    again.none(0.3)
    again.close()
    pub.close()
    Client(port, "keeps2", clean=True).close()
