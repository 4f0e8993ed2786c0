"""What a persistent MQTT session keeps across a reconnect (and a restart of the broker, for what is
stored): its subscriptions' MQTT 5 options and granted QoS, its shared subscriptions, and the incoming
QoS 2 packet ids still awaiting PUBREL (MQTT 5 4.1, 4.3.3).  paho-mqtt and raw packets over real sockets."""
import socket
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from warrenmq.mqtt.codec import (CONNACK, MQTT311, MQTT5, PUBCOMP, PUBLISH, PUBREC, PUBREL, SUBACK, Connect,
                                 PacketReader, PubAck, Publish, Subscribe, Subscription, encode)
from warrenmq.testing import EmbeddedBroker

from .helpers import Client
from .test_interop import read_packets, subscribe5
from .test_mqtt import wait

V5 = mqtt.MQTTv5


def session_props(seconds=3600):
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = seconds
    return props


def subscribe_with_options(c):
    assert [r.value for r in subscribe5(c, "opt/nl", 1, noLocal=True)] == [1]
    assert [r.value for r in subscribe5(c, "opt/rap", 1, retainAsPublished=True)] == [1]
    assert [r.value for r in subscribe5(c, "opt/sid/+", 2, sid=7)] == [2]
    assert [r.value for r in subscribe5(c, "opt/plain", 1)] == [1]
    assert [r.value for r in subscribe5(c, "opt/zero", 0, noLocal=True, sid=9)] == [0]


def check_options(c, pub):
    """The four subscriptions of :func:`subscribe_with_options` behave as subscribed."""
    c.publish("opt/nl", b"own", 1)  # no local: not back to its publisher
    pub.publish("opt/nl", b"other", 1)
    m = c.get()
    assert m.payload == b"other"
    pub.publish("opt/rap", b"kept", 1, retain=True)  # retain as published: RETAIN stays set live
    m = c.get()
    assert (m.payload, m.retain) == (b"kept", True)
    pub.publish("opt/sid/x", b"sid", 2)  # granted QoS 2 and the identifier
    m = c.get()
    assert (m.payload, m.qos, m.properties.SubscriptionIdentifier) == (b"sid", 2, [7])
    pub.publish("opt/plain", b"plain", 2, retain=True)  # no options: QoS 1, RETAIN clear, no identifier
    m = c.get()
    assert (m.payload, m.qos, m.retain) == (b"plain", 1, False)
    assert not hasattr(m.properties, "SubscriptionIdentifier")
    c.publish("opt/zero", b"own", 1)  # a QoS 0 subscription with options
    pub.publish("opt/zero", b"zero", 1)
    m = c.get()
    assert (m.payload, m.qos, m.properties.SubscriptionIdentifier) == (b"zero", 0, [9])
    c.none(0.3)


def test_subscription_options_survive_a_reconnect(mqtt_broker):
    port = mqtt_broker.mqtt_port
    c = Client(port, "opts", V5, clean=True, properties=session_props())
    subscribe_with_options(c)
    c.close()
    again = Client(port, "opts", V5, clean=False, properties=session_props(), connect=False)
    flags, _, _ = again.connect()
    assert flags.session_present
    pub = Client(port, "opts-pub", V5)
    check_options(again, pub)
    # a filter subscribed again with other options has one binding, with the new options
    subscribe5(again, "opt/sid/+", 2, sid=8)
    pub.publish("opt/sid/y", b"once", 2)
    m = again.get()
    assert (m.payload, m.properties.SubscriptionIdentifier) == (b"once", [8])
    again.none(0.3)
    keys = [k for _, k, _ in mqtt_broker.broker.vhosts["/"].queues["mqtt-subscription-optsqos1"].bindings]
    assert sorted(keys) == ["opt.nl", "opt.plain", "opt.rap", "opt.sid.*"]
    again.c.unsubscribe("opt/sid/+")  # its binding (with its options) goes
    wait(lambda: len(mqtt_broker.broker.vhosts["/"].queues["mqtt-subscription-optsqos1"].bindings) == 3)
    pub.publish("opt/sid/z", b"gone", 2)
    again.none(0.3)
    again.close()
    pub.close()
    Client(port, "opts", V5, clean=True).close()


def test_subscription_options_survive_a_restart():
    with EmbeddedBroker(mqtt=True, durable=True) as b:
        c = Client(b.mqtt_port, "opts-r", V5, clean=True, properties=session_props())
        subscribe_with_options(c)
        c.close()
        b.restart()
        again = Client(b.mqtt_port, "opts-r", V5, clean=False, properties=session_props(), connect=False)
        flags, _, _ = again.connect()
        assert flags.session_present
        pub = Client(b.mqtt_port, "opts-r-pub", V5)
        check_options(again, pub)
        again.close()
        pub.close()


# ------------------------------------------------------------------ QoS 2 packet ids awaiting PUBREL
class Reader(PacketReader):
    """A packet reader that also holds what arrived with the CONNACK (``after``)."""
    after: list


def connect_raw(port, client_id, version, clean, expiry=None):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    props = {"session_expiry_interval": expiry} if expiry is not None else {}
    s.sendall(encode(Connect(version=version, client_id=client_id, clean=clean, keepalive=60, properties=props),
                     version))
    reader = Reader(version=version)
    connack, *after = read_packets(s, reader, 1)
    assert connack.type == CONNACK and connack.code == 0
    reader.after = after  # what came with the CONNACK
    return s, reader, connack


@pytest.mark.parametrize("version", [MQTT311, MQTT5])
def test_a_qos2_publish_resent_after_a_reconnect_is_not_routed_again(mqtt_broker, version):
    """A client that lost its connection after PUBREC, before PUBREL, resends the PUBLISH with DUP to its
    session: PUBREC again, not routed twice; PUBREL then completes it.  A clean start forgets the ids."""
    port = mqtt_broker.mqtt_port
    sub = Client(port, "q2-sub")
    sub.subscribe("q2s/t", 2)
    expiry = 300 if version == MQTT5 else None
    s, reader, _ = connect_raw(port, "q2-resender", version, clean=False, expiry=expiry)
    s.sendall(encode(Publish("q2s/t", b"once", 2, packet_id=9), version))
    assert read_packets(s, reader, 1)[0].type == PUBREC
    s.close()  # gone before PUBREL
    assert sub.get().payload == b"once"
    time.sleep(0.2)
    s, reader, connack = connect_raw(port, "q2-resender", version, clean=False, expiry=expiry)
    assert connack.session_present  # the session has the packet id, even without subscriptions
    s.sendall(encode(Publish("q2s/t", b"once", 2, dup=True, packet_id=9), version))
    [rec] = read_packets(s, reader, 1)
    assert (rec.type, rec.packet_id) == (PUBREC, 9)
    s.sendall(encode(PubAck(6, 9), version))  # PUBREL
    [comp] = read_packets(s, reader, 1)
    assert (comp.type, comp.packet_id, comp.code) == (PUBCOMP, 9, 0)
    sub.none(0.5)  # not routed a second time
    # the id is free now: a new publish with it is a new message
    s.sendall(encode(Publish("q2s/t", b"next", 2, packet_id=9), version))
    assert read_packets(s, reader, 1)[0].type == PUBREC
    s.sendall(encode(PubAck(6, 9), version))
    assert read_packets(s, reader, 1)[0].type == PUBCOMP
    assert sub.get().payload == b"next"
    s.sendall(encode(Publish("q2s/t", b"again", 2, packet_id=10), version))
    assert read_packets(s, reader, 1)[0].type == PUBREC
    s.close()
    time.sleep(0.2)
    assert sub.get().payload == b"again"
    # a clean start throws the session away: the same packet id is a new message
    s, reader, connack = connect_raw(port, "q2-resender", version, clean=True)
    assert not connack.session_present
    s.sendall(encode(Publish("q2s/t", b"again", 2, dup=True, packet_id=10), version))
    assert read_packets(s, reader, 1)[0].type == PUBREC
    assert sub.get().payload == b"again"
    s.close()
    sub.close()


@pytest.mark.parametrize("version", [MQTT311, MQTT5])
def test_a_released_delivery_gets_its_pubrel_again_after_a_reconnect(mqtt_broker, version):
    """MQTT 4.4: a session resumed with clean start 0 resends the PUBRELs not yet completed, with their
    packet ids (a client such as paho hands a QoS 2 message to the application at PUBREL: without it
    the message never arrives)."""
    port = mqtt_broker.mqtt_port
    expiry = 300 if version == MQTT5 else None
    s, reader, _ = connect_raw(port, "q2-out", version, clean=False, expiry=expiry)
    s.sendall(encode(Subscribe(1, [Subscription("q2o/t", 2)]), version))
    assert read_packets(s, reader, 1)[0].type == SUBACK
    pub = Client(port, "q2-out-pub")
    pub.publish("q2o/t", b"exactly once", 2)
    [p] = read_packets(s, reader, 1)
    assert (p.type, p.qos, p.payload) == (PUBLISH, 2, b"exactly once")
    s.sendall(encode(PubAck(PUBREC, p.packet_id), version))
    [rel] = read_packets(s, reader, 1)
    assert (rel.type, rel.packet_id) == (PUBREL, p.packet_id)
    s.close()  # gone before PUBCOMP
    time.sleep(0.2)
    s, reader, connack = connect_raw(port, "q2-out", version, clean=False, expiry=expiry)
    assert connack.session_present
    [rel] = reader.after or read_packets(s, reader, 1)
    assert (rel.type, rel.packet_id) == (PUBREL, p.packet_id)  # the same packet id
    s.sendall(encode(PubAck(PUBCOMP, p.packet_id), version))
    pub.publish("q2o/t", b"next", 2)
    [p2] = read_packets(s, reader, 1)
    assert (p2.type, p2.payload, p2.dup) == (PUBLISH, b"next", False)  # not the first one again
    s.sendall(encode(PubAck(PUBREC, p2.packet_id), version))
    assert read_packets(s, reader, 1)[0].type == PUBREL
    s.sendall(encode(PubAck(PUBCOMP, p2.packet_id), version))
    s.close()
    time.sleep(0.2)
    s, reader, connack = connect_raw(port, "q2-out", version, clean=False, expiry=expiry)
    assert connack.session_present and not reader.after
    s.settimeout(0.5)
    with pytest.raises(socket.timeout):  # everything was completed: nothing to resend
        s.recv(1)
    s.close()
    Client(port, "q2-out", clean=True).close()
    pub.close()


def test_qos2_packet_ids_go_with_an_expired_session(mqtt_broker):
    port = mqtt_broker.mqtt_port
    sub = Client(port, "q2e-sub")
    sub.subscribe("q2e/t", 2)
    s, reader, _ = connect_raw(port, "q2-expiring", MQTT5, clean=False, expiry=1)
    s.sendall(encode(Publish("q2e/t", b"m", 2, packet_id=3), MQTT5))
    assert read_packets(s, reader, 1)[0].type == PUBREC
    s.close()
    assert sub.get().payload == b"m"
    time.sleep(1.3)
    s, reader, connack = connect_raw(port, "q2-expiring", MQTT5, clean=False, expiry=1)
    assert not connack.session_present
    s.sendall(encode(Publish("q2e/t", b"m", 2, dup=True, packet_id=3), MQTT5))
    assert read_packets(s, reader, 1)[0].type == PUBREC
    assert sub.get().payload == b"m"  # the session had expired: a new message
    s.close()
    sub.close()


# ------------------------------------------------------------------ shared subscriptions
SHARED_Q = "mqtt-shared-g-sj/+"


@pytest.mark.parametrize("version", [mqtt.MQTTv311, V5])
def test_a_persistent_sessions_shared_subscription_is_resumed(mqtt_broker, version):
    """A member of a shared subscription in a persistent session is still a member after a reconnect: it
    consumes from the group's queue again, and the queue (with what it holds) outlives the connections
    while such a member's session exists; a clean start ends the membership and the queue with it."""
    port = mqtt_broker.mqtt_port
    v5 = version == V5
    kw = {"properties": session_props()} if v5 else {}
    a = Client(port, "sh-a", version, clean=v5, **kw)  # (MQTT 5: persistent by its session expiry)
    if v5:
        assert [r.value for r in subscribe5(a, "$share/g/sj/+", 2, sid=5)] == [2]
    else:
        assert a.subscribe("$share/g/sj/+", 2) == [2]
    b = Client(port, "sh-b", version)  # a clean member
    b.subscribe("$share/g/sj/+", 1)
    a.close()
    pub = Client(port, "sh-pub", version)
    for i in range(3):
        pub.publish(f"sj/{i}", b"b%d" % i, 1)
    assert sorted(b.get().payload for _ in range(3)) == [b"b0", b"b1", b"b2"]  # b alone now
    b.close()
    time.sleep(0.2)
    assert SHARED_Q in mqtt_broker.queues()  # a's session keeps it
    for i in range(3):
        pub.publish(f"sj/{i}", b"a%d" % i, 1)
    mqtt_broker.wait_for_messages(SHARED_Q, 3)
    again = Client(port, "sh-a", version, clean=False, connect=False, **kw)
    flags, _, _ = again.connect()
    assert flags.session_present
    got = [again.get() for _ in range(3)]
    assert sorted(m.payload for m in got) == [b"a0", b"a1", b"a2"]
    pub.publish("sj/live", b"live", 2)
    m = again.get()
    assert (m.payload, m.qos) == (b"live", 2)
    if v5:
        assert m.properties.SubscriptionIdentifier == [5]
    again.none(0.3)
    again.close()
    time.sleep(0.2)
    assert SHARED_Q in mqtt_broker.queues()
    Client(port, "sh-a", version, clean=True).close()  # the session ends: its membership and the queue go
    wait(lambda: SHARED_Q not in mqtt_broker.queues())
    pub.close()


def test_unsubscribing_a_persistent_member_ends_its_membership(mqtt_broker):
    port = mqtt_broker.mqtt_port
    a = Client(port, "sh-u", clean=False)
    a.subscribe("$share/g/sj/+", 1)
    a.c.unsubscribe("$share/g/sj/+")
    wait(lambda: SHARED_Q not in mqtt_broker.queues())
    a.close()
    again = Client(port, "sh-u", clean=False)
    pub = Client(port, "sh-u-pub")
    pub.publish("sj/1", b"x", 1)
    again.none(0.5)
    for c in (again, pub):
        c.close()
    Client(port, "sh-u", clean=True).close()


def test_a_shared_subscription_goes_when_its_members_session_expires(mqtt_broker):
    port = mqtt_broker.mqtt_port
    a = Client(port, "sh-exp", V5, properties=session_props(1))
    subscribe5(a, "$share/g/sj/+", 1)
    a.close()
    time.sleep(0.3)
    assert SHARED_Q in mqtt_broker.queues()
    wait(lambda: SHARED_Q not in mqtt_broker.queues(), timeout=6)  # expired with the session (1 s)
    assert "mqtt-subscription-sh-expqos1" not in mqtt_broker.queues()


def test_a_shared_subscription_of_a_durable_session_survives_a_restart():
    with EmbeddedBroker(mqtt=True, durable=True) as b:
        a = Client(b.mqtt_port, "sh-r", clean=False)
        a.subscribe("$share/g/sj/+", 1)
        a.close()
        pub = Client(b.mqtt_port, "sh-r-pub")
        pub.publish("sj/1", b"kept", 1)
        pub.close()
        b.wait_for_messages(SHARED_Q, 1)
        b.restart()
        again = Client(b.mqtt_port, "sh-r", clean=False, connect=False)
        flags, _, _ = again.connect()
        assert flags.session_present
        assert again.get().payload == b"kept"
        pub = Client(b.mqtt_port, "sh-r-pub")
        pub.publish("sj/2", b"after", 1)
        assert again.get().payload == b"after"
        again.none(0.3)
        again.close()
        pub.close()


# ------------------------------------------------------------------ QoS 0 subscriptions
@pytest.mark.parametrize("version", [mqtt.MQTTv311, V5])
def test_qos0_subscriptions_of_a_persistent_session_are_resumed(mqtt_broker, version):
    """The session's QoS 0 subscriptions are part of it too (MQTT 4.1; RabbitMQ 3.13 keeps them, 3.10
    lost them with its transient QoS 0 queue): their queue is durable and expires with the session, and
    QoS 0 messages published while the client is away wait there."""
    port = mqtt_broker.mqtt_port
    v5 = version == V5
    kw = {"properties": session_props(600)} if v5 else {}
    c = Client(port, "zero", version, clean=v5, **kw)
    c.subscribe("zero/+", 0)
    c.close()
    time.sleep(0.2)
    q = mqtt_broker.queue("mqtt-subscription-zeroqos0")
    assert q.durable and not q.auto_delete
    assert q.arguments == {"x-expires": 600_000 if v5 else 86_400_000}
    pub = Client(port, "zero-pub", version)
    pub.publish("zero/a", b"while away", 0)
    mqtt_broker.wait_for_messages("mqtt-subscription-zeroqos0", 1)
    again = Client(port, "zero", version, clean=False, connect=False, **kw)
    flags, _, _ = again.connect()
    assert flags.session_present
    m = again.get()
    assert (m.topic, m.payload, m.qos) == ("zero/a", b"while away", 0)
    pub.publish("zero/b", b"live", 1)
    m = again.get()
    assert (m.topic, m.payload, m.qos) == ("zero/b", b"live", 0)  # granted 0
    again.close()
    Client(port, "zero", version, clean=True).close()
    wait(lambda: "mqtt-subscription-zeroqos0" not in mqtt_broker.queues())
    pub.close()


def test_a_clean_sessions_qos0_queue_is_transient(mqtt_broker):
    c = Client(mqtt_broker.mqtt_port, "zero-clean")
    c.subscribe("zc", 0)
    q = mqtt_broker.queue("mqtt-subscription-zero-cleanqos0")
    assert not q.durable and q.auto_delete and not q.arguments
    c.close()
    wait(lambda: "mqtt-subscription-zero-cleanqos0" not in mqtt_broker.queues())


def test_a_session_that_ends_with_its_connection_cannot_be_extended_at_disconnect(mqtt_broker):
    """MQTT 5 3.14.2.2.2: after a session expiry interval of 0 at CONNECT, a non-zero one in the DISCONNECT
    is a protocol error: the connection ends as after any protocol error (the will is published) and the
    session with it."""
    port = mqtt_broker.mqtt_port
    watcher = Client(port, "ext-watch", V5)
    watcher.subscribe("ext/will", 1)
    c = Client(port, "ext", V5, will=("ext/will", b"gone", 1), connect=False)
    c.connect()
    c.subscribe("ext/t", 1)
    p = Properties(PacketTypes.DISCONNECT)
    p.SessionExpiryInterval = 60
    c.c.disconnect(properties=p)
    c.c.loop_stop()
    assert watcher.get().payload == b"gone"
    wait(lambda: "mqtt-subscription-extqos1" not in mqtt_broker.queues())
    watcher.close()
