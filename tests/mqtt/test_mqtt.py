"""MQTT 3.1.1 and 5.0 against the embedded broker over real sockets with paho-mqtt, and across to AMQP
with pika: the mapping RabbitMQ's MQTT plugin makes (docs/mqtt.md)."""
import socket
import time

import paho.mqtt.client as mqtt
import pika
import pytest
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from .helpers import Client

V5 = mqtt.MQTTv5


def wait(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met")


@pytest.mark.parametrize("version", [mqtt.MQTTv311, V5])
@pytest.mark.parametrize("qos", [0, 1, 2])
def test_publish_subscribe(mqtt_broker, version, qos):
    sub = Client(mqtt_broker.mqtt_port, "sub", version)
    granted = sub.subscribe("sensors/+/temp", qos)
    assert [int(g.value) if hasattr(g, "value") else g for g in granted] == [qos]
    pub = Client(mqtt_broker.mqtt_port, "pub", version)
    for i in range(5):
        pub.publish(f"sensors/d{i}/temp", f"{i}".encode(), qos)
    got = [sub.get() for _ in range(5)]
    assert [(m.topic, m.payload, m.qos) for m in got] == [(f"sensors/d{i}/temp", f"{i}".encode(), qos)
                                                          for i in range(5)]
    pub.publish("sensors/d1/humidity", b"no", qos)
    sub.none()
    # the subscription is the queue RabbitMQ names, bound to amq.topic with the key swapped
    q = mqtt_broker.queue(f"mqtt-subscription-subqos{1 if qos else 0}")
    assert ("amq.topic", "sensors.*.temp") in q.bindings
    assert q.durable == bool(qos) and q.auto_delete
    wait(lambda: mqtt_broker.queue(q.name).messages == 0)  # every delivery settled (PUBACK / PUBREC)
    sub.close()
    pub.close()


def test_mqtt_to_amqp_and_back(mqtt_broker):
    conn = pika.BlockingConnection(pika.URLParameters(mqtt_broker.url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "home.kitchen.#")
    pub = Client(mqtt_broker.mqtt_port, "pub")
    pub.publish("home/kitchen/v1.2", b"21.5", 1)
    method, props, body = None, None, None
    for _ in range(100):
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method:
            break
        time.sleep(0.05)
    assert body == b"21.5"
    assert method.routing_key == "home.kitchen.v1/2"  # "/" and "." swapped
    assert props.delivery_mode == 2 and props.headers["x-mqtt-publish-qos"] == 1
    sub = Client(mqtt_broker.mqtt_port, "sub")
    sub.subscribe("office/#", 1)
    ch.basic_publish("amq.topic", "office.desk", b"amqp says hi", pika.BasicProperties(delivery_mode=2))
    ch.basic_publish("amq.topic", "office.chair", b"transient")
    m1, m2 = sub.get(), sub.get()
    assert (m1.topic, m1.payload, m1.qos) == ("office/desk", b"amqp says hi", 1)
    assert (m2.topic, m2.payload, m2.qos) == ("office/chair", b"transient", 0)  # not persistent: QoS 0
    conn.close()
    sub.close()
    pub.close()


def test_logins(mqtt_broker):
    b = mqtt_broker.broker
    mqtt_broker.call(b.add_vhost, "devices")
    mqtt_broker.call(lambda: b.add_user("dev", "pw"))
    mqtt_broker.call(b.set_permissions, "dev", "devices", ".*", ".*", ".*")
    port = mqtt_broker.mqtt_port
    for user, pw, v3, v5 in [("guest", "wrong", 4, 0x86), ("nobody", "pw", 4, 0x86),
                             ("dev", "pw", 5, 0x87),  # no permissions in the default vhost
                             ("nosuch:dev", "pw", 4, 0x86)]:  # RabbitMQ 3.10: an unknown vhost is bad credentials
        for version, code in ((mqtt.MQTTv311, v3), (V5, v5)):
            c = Client(port, "x", version, username=user, password=pw, connect=False)
            _, rc, _ = c.connect(expect_ok=False)
            # (paho reports a 3.1.1 return code as the MQTT 5 reason code that means the same)
            assert rc.value == {4: 0x86, 5: 0x87}[v3] if version != V5 else rc.value == code
            c.c.loop_stop()
    ok = Client(port, "devclient", username="devices:dev", password="pw")
    ok.subscribe("t", 1)
    assert mqtt_broker.queue("mqtt-subscription-devclientqos1", vhost="devices").consumers == 1
    ok.close()


def test_persistent_session_keeps_messages_while_offline(mqtt_broker):
    port = mqtt_broker.mqtt_port
    sub = Client(port, "keeper", clean=False)
    sub.subscribe("jobs/#", 1)
    sub.close()
    q = mqtt_broker.queue("mqtt-subscription-keeperqos1")
    assert q.durable and not q.auto_delete and q.arguments == {"x-expires": 86400000}
    pub = Client(port, "pub")
    for i in range(3):
        pub.publish(f"jobs/{i}", b"j%d" % i, 1)
    mqtt_broker.wait_for_messages("mqtt-subscription-keeperqos1", 3)
    again = Client(port, "keeper", clean=False, connect=False)
    flags, _, _ = again.connect()
    assert flags.session_present
    assert sorted(again.get().payload for _ in range(3)) == [b"j0", b"j1", b"j2"]
    again.close()
    clean = Client(port, "keeper", clean=True)  # a clean session throws the old one away
    wait(lambda: "mqtt-subscription-keeperqos1" not in mqtt_broker.queues())
    clean.close()
    pub.close()


def test_clean_session_queue_goes_with_the_connection(mqtt_broker):
    c = Client(mqtt_broker.mqtt_port, "brief")
    c.subscribe("a", 1)
    c.subscribe("b", 0)
    assert {"mqtt-subscription-briefqos1", "mqtt-subscription-briefqos0"} <= set(mqtt_broker.queues())
    c.close()
    wait(lambda: not [n for n in mqtt_broker.queues() if "brief" in n])


def test_client_id_takeover(mqtt_broker):
    first = Client(mqtt_broker.mqtt_port, "same", V5)
    second = Client(mqtt_broker.mqtt_port, "same", V5)
    rc = first.disconnects.get(timeout=5)
    assert rc.value == 0x8E  # session taken over
    second.subscribe("t")
    second.close()


def test_will_message(mqtt_broker):
    watcher = Client(mqtt_broker.mqtt_port, "watcher")
    watcher.subscribe("status/+", 1)
    polite = Client(mqtt_broker.mqtt_port, "polite", will=("status/polite", b"gone", 1))
    polite.close()  # DISCONNECT: no will
    watcher.none()
    rude = Client(mqtt_broker.mqtt_port, "rude", will=("status/rude", b"gone", 1))
    rude.drop()
    m = watcher.get()
    assert (m.topic, m.payload) == ("status/rude", b"gone")
    watcher.close()


def test_retained_messages_reach_wildcard_subscriptions(mqtt_broker):
    pub = Client(mqtt_broker.mqtt_port, "pub")
    pub.publish("cfg/a/mode", b"eco", 1, retain=True)
    pub.publish("cfg/b/mode", b"boost", 1, retain=True)
    pub.publish("cfg/c/mode", b"gone", 1, retain=True)
    pub.publish("cfg/c/mode", b"", 1, retain=True)  # an empty retained message deletes it
    exact = Client(mqtt_broker.mqtt_port, "exact")
    exact.subscribe("cfg/a/mode", 1)
    m = exact.get()
    assert (m.topic, m.payload, m.retain) == ("cfg/a/mode", b"eco", True)
    wild = Client(mqtt_broker.mqtt_port, "wild")
    wild.subscribe("cfg/+/mode", 1)  # RabbitMQ 3.10 sends nothing here; the spec says both
    assert sorted((m.topic, m.payload, m.retain) for m in (wild.get(), wild.get())) == [
        ("cfg/a/mode", b"eco", True), ("cfg/b/mode", b"boost", True)]
    wild.none()
    pub.publish("cfg/a/mode", b"live", 1)
    assert wild.get().retain is False  # a message published while subscribed is not flagged
    for c in (pub, exact, wild):
        c.close()


def test_keepalive_closes_a_silent_client(mqtt_broker):
    s = socket.create_connection(("127.0.0.1", mqtt_broker.mqtt_port))
    # CONNECT, MQTT 3.1.1, clean, keepalive 1 s, client id "k"
    s.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x01\x00\x01k")
    assert s.recv(4) == b"\x20\x02\x00\x00"
    s.settimeout(5)
    start = time.monotonic()
    assert s.recv(10) == b""  # closed after 1.5 x keepalive
    assert 1.2 < time.monotonic() - start < 3
    s.close()


def test_malformed_packet_closes(mqtt_broker):
    s = socket.create_connection(("127.0.0.1", mqtt_broker.mqtt_port))
    s.settimeout(5)
    s.sendall(b"\x30\x03\x00\x01a")  # PUBLISH before CONNECT
    assert s.recv(10) == b""
    s.close()
    s = socket.create_connection(("127.0.0.1", mqtt_broker.mqtt_port))
    s.settimeout(5)
    s.sendall(b"\x10\xff\xff\x7f")  # a 2 MB CONNECT: beyond the 64 KiB allowed before the login
    assert s.recv(10) == b""
    s.close()


def test_permissions(mqtt_broker):
    b = mqtt_broker.broker
    mqtt_broker.call(lambda: b.add_user("limited", "pw"))
    # may use its own subscription queues, read amq.topic, but not write to it
    mqtt_broker.call(b.set_permissions, "limited", "/", "^mqtt-subscription-", "^mqtt-subscription-", ".*")
    mqtt_broker.call(b.set_topic_permissions, "limited", "/", "amq.topic", ".*", "^public\\.")
    c = Client(mqtt_broker.mqtt_port, "lim", username="limited", password="pw")
    assert [r.value for r in c.subscribe("public/news", 1)] == [1]
    assert [r.value for r in c.subscribe("secret/news", 1)] == [0x80]  # topic permission (read) refused
    c.c.publish("public/news", b"x", 1)
    assert c.disconnects.get(timeout=5) is not None  # no write permission on amq.topic: closed
    c.c.loop_stop()
    c5 = Client(mqtt_broker.mqtt_port, "lim5", V5, username="limited", password="pw")
    assert [r.value for r in c5.subscribe("secret/news", 1)] == [0x87]  # MQTT 5: not authorized
    c5.close()


def test_mqtt5_properties_and_topic_alias(mqtt_broker):
    sub = Client(mqtt_broker.mqtt_port, "sub5", V5)
    sub.subscribe("rpc/#", 1)
    conn = pika.BlockingConnection(pika.URLParameters(mqtt_broker.url))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "rpc.#")
    pub = Client(mqtt_broker.mqtt_port, "pub5", V5)
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "application/json"
    props.CorrelationData = b"req-1"
    props.ResponseTopic = "rpc/replies/1"
    props.UserProperty = [("device", "d1")]
    props.MessageExpiryInterval = 60
    pub.publish("rpc/calls", b"{}", 1, properties=props)
    m = sub.get()
    assert m.properties.ContentType == "application/json"
    assert m.properties.CorrelationData == b"req-1"
    assert m.properties.ResponseTopic == "rpc/replies/1"
    assert ("device", "d1") in m.properties.UserProperty
    method, p, body = None, None, None
    for _ in range(100):
        method, p, body = ch.basic_get(q, auto_ack=True)
        if method:
            break
        time.sleep(0.05)
    assert (p.content_type, p.correlation_id, p.reply_to, p.expiration) == (
        "application/json", "req-1", "rpc.replies.1", "60000")
    assert p.headers["device"] == "d1"
    # topic alias: the second publish carries only the alias
    a1 = Properties(PacketTypes.PUBLISH)
    a1.TopicAlias = 3
    pub.publish("rpc/aliased", b"1", 1, properties=a1)
    a2 = Properties(PacketTypes.PUBLISH)
    a2.TopicAlias = 3
    pub.publish("", b"2", 1, properties=a2)
    got = [sub.get(), sub.get()]
    assert [(m.topic, m.payload) for m in got] == [("rpc/aliased", b"1"), ("rpc/aliased", b"2")]
    conn.close()
    sub.close()
    pub.close()


def test_qos2_exactly_once_over_the_wire(mqtt_broker):
    """A QoS 2 PUBLISH sent twice before PUBREL (a resend with DUP) is routed once."""
    sub = Client(mqtt_broker.mqtt_port, "once")
    sub.subscribe("q2", 2)
    s = socket.create_connection(("127.0.0.1", mqtt_broker.mqtt_port))
    s.settimeout(5)
    s.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01r")
    assert s.recv(4) == b"\x20\x02\x00\x00"
    s.sendall(b"\x34\x07\x00\x02q2\x00\x05X")  # QoS 2, packet id 5
    assert s.recv(4) == b"\x50\x02\x00\x05"  # PUBREC
    s.sendall(b"\x3c\x07\x00\x02q2\x00\x05X")  # the same again, DUP
    assert s.recv(4) == b"\x50\x02\x00\x05"
    s.sendall(b"\x62\x02\x00\x05")  # PUBREL
    assert s.recv(4) == b"\x70\x02\x00\x05"  # PUBCOMP
    m = sub.get()
    assert (m.payload, m.qos) == (b"X", 2)
    sub.none()
    s.close()
    sub.close()


def test_retained_messages_survive_a_restart():
    from warrenmq.testing import EmbeddedBroker
    with EmbeddedBroker(mqtt=True, durable=True) as b:
        pub = Client(b.mqtt_port, "pub", V5)
        props = Properties(PacketTypes.PUBLISH)
        props.ContentType = "text/plain"
        pub.publish("state/lamp", b"on", 1, retain=True, properties=props)
        pub.publish("state/fan", b"off", 1, retain=True)
        pub.publish("state/fan", b"", 1, retain=True)  # removed again before it was ever written
        pub.publish("state/door", b"open", 0, retain=True)
        pub.close()
        b.restart()
        sub = Client(b.mqtt_port, "sub", V5)
        sub.subscribe("state/#", 1)
        got = sorted((m.topic, m.payload, m.qos, m.retain) for m in (sub.get(), sub.get()))
        assert got == [("state/door", b"open", 0, True), ("state/lamp", b"on", 1, True)]
        sub.none()
        sub.close()
        # removed after a save: gone after the next restart too
        pub = Client(b.mqtt_port, "pub")
        pub.publish("state/lamp", b"", 1, retain=True)
        pub.close()
        b.restart()
        sub = Client(b.mqtt_port, "sub")
        sub.subscribe("state/#", 1)
        assert sub.get().topic == "state/door"
        sub.none()
        sub.close()


def test_retained_store_writes_changes_in_batches():
    from warrenmq.mqtt.session import RetainedStore
    from warrenmq.mqtt.codec import Publish
    s = RetainedStore()
    for i in range(100):
        s.put(Publish("t/1", b"%d" % i, 1, True))
    s.put(Publish("t/2", b"x", 0, True))
    s.put(Publish("t/2", b"", 0, True))
    changes = s.take_dirty()
    assert [t for t, _ in changes] == ["t/1", "t/2"]  # one write for the hundred publishes
    assert changes[1][1] is None
    fresh = RetainedStore()
    fresh.restore(changes[0][1])
    assert fresh.messages["t/1"].payload == b"99"
    assert s.take_dirty() == []


def test_mqtt5_session_expiry(mqtt_broker):
    """MQTT 5: expiry 0 is a clean session (the queue goes at disconnect); otherwise the queue stays and
    expires after the interval (x-expires), and the session is present on reconnect."""
    short = Client(mqtt_broker.mqtt_port, "short5", V5, clean=False)  # no expiry property: 0
    short.subscribe("s", 1)
    short.close()
    wait(lambda: "mqtt-subscription-short5qos1" not in mqtt_broker.queues())
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 1
    c = Client(mqtt_broker.mqtt_port, "exp5", V5, clean=True, properties=props)
    c.subscribe("e", 1)
    c.close()
    q = mqtt_broker.queue("mqtt-subscription-exp5qos1")
    assert q.arguments == {"x-expires": 1000} and not q.auto_delete
    again = Client(mqtt_broker.mqtt_port, "exp5", V5, clean=False, properties=props, connect=False)
    flags, _, _ = again.connect()
    assert flags.session_present
    again.close()
    wait(lambda: "mqtt-subscription-exp5qos1" not in mqtt_broker.queues(), timeout=5)  # expired


def test_management_api_lists_and_closes_mqtt_connections():
    import base64
    import json
    import urllib.request
    from warrenmq.testing import EmbeddedBroker

    with EmbeddedBroker(mqtt=True, management=True) as b:
        def api(path, method="GET", headers=None):
            req = urllib.request.Request(b.management_url + "/api/" + path, method=method, headers={
                "Authorization": "Basic " + base64.b64encode(b"guest:guest").decode(), **(headers or {})})
            with urllib.request.urlopen(req) as r:
                body = r.read()
                return json.loads(body) if body else None
        c = Client(b.mqtt_port, "listed", keepalive=30)
        c5 = Client(b.mqtt_port, "listed5", V5)
        c.subscribe("l/#", 1)
        conns = {x["client_properties"].get("client_id"): x for x in api("connections")}
        one = conns["listed"]
        # as RabbitMQ 3.10.8 shows an MQTT connection (probed)
        assert (one["protocol"], one["type"], one["channels"], one["channel_max"], one["frame_max"],
                one["user"], one["vhost"], one["timeout"]) == ("MQTT 3.1.1", "direct", 1, 1, 0, "guest", "/", 30)
        assert one["client_properties"] == {"client_id": "listed", "product": "MQTT client"}
        assert conns["listed5"]["protocol"] == "MQTT 5.0"
        chans = [ch for ch in api("channels") if ch["connection_details"]["name"] == one["name"]]
        assert len(chans) == 1 and chans[0]["consumer_count"] == 1
        api("connections/" + urllib.request.quote(conns["listed5"]["name"]), "DELETE", {"X-Reason": "bye"})
        assert c5.disconnects.get(timeout=5).value == 0x98  # administrative action
        c.close()
        wait(lambda: not [x for x in api("connections") if x["protocol"].startswith("MQTT")])


def test_resource_alarm_stops_reading_mqtt_publishers(mqtt_broker):
    from warrenmq.broker.alarms import Alarm
    sub = Client(mqtt_broker.mqtt_port, "asub")
    sub.subscribe("alarm/#", 0)
    pub = Client(mqtt_broker.mqtt_port, "apub")
    mqtt_broker.call(mqtt_broker.broker.set_alarm, Alarm.MEMORY, True)
    time.sleep(0.1)
    pub.c.publish("alarm/x", b"held", 0)
    sub.none(0.5)  # not read while the alarm is on
    mqtt_broker.call(mqtt_broker.broker.set_alarm, Alarm.MEMORY, False)
    assert sub.get().payload == b"held"
    sub.close()
    pub.close()


def test_connection_limits_count_mqtt_connections(mqtt_broker):
    b = mqtt_broker.broker
    mqtt_broker.call(b.set_vhost_limits, "/", {"max-connections": 1})
    first = Client(mqtt_broker.mqtt_port, "lim-a")
    second = Client(mqtt_broker.mqtt_port, "lim-b", connect=False)
    _, rc, _ = second.connect(expect_ok=False)
    assert rc.value == 0x87  # 3.1.1's 5, not authorized
    second.c.loop_stop()
    again = Client(mqtt_broker.mqtt_port, "lim-a")  # a takeover is not refused by the limit
    assert first.disconnects.get(timeout=5) is not None
    again.close()
    wait(lambda: b.limits.vhost_connections.get("/", 0) == 0)
    mqtt_broker.call(b.clear_vhost_limits, "/")


def test_retained_messages_go_with_their_vhost():
    """Deleting a vhost deletes its retained messages, saved or not yet saved, and they do not come back
    with a vhost of the same name or after a restart; other vhosts keep theirs."""
    from warrenmq.testing import EmbeddedBroker
    with EmbeddedBroker(mqtt=True, durable=True) as b:
        broker = b.broker
        for name in ("doomed", "kept"):
            b.call(lambda name=name: (broker.add_vhost(name), broker.set_permissions("guest", name, ".*", ".*", ".*")))
        for vhost in ("doomed", "kept"):
            pub = Client(b.mqtt_port, "pub", username=f"{vhost}:guest", password="guest")
            pub.publish("cfg/saved", vhost.encode(), 1, retain=True)
            pub.close()
        time.sleep(1.5)  # written to the store by the listener's timer
        pub = Client(b.mqtt_port, "pub", username="doomed:guest", password="guest")
        pub.publish("cfg/unsaved", b"doomed", 1, retain=True)
        pub.close()
        b.call(lambda: broker.delete_vhost("doomed"))
        b.call(lambda: (broker.add_vhost("doomed"), broker.set_permissions("guest", "doomed", ".*", ".*", ".*")))
        for restart in (False, True):
            if restart:
                b.restart()
            sub = Client(b.mqtt_port, "sub", username="doomed:guest", password="guest")
            sub.subscribe("cfg/#", 1)
            sub.none(0.5)
            sub.close()
            sub = Client(b.mqtt_port, "sub", username="kept:guest", password="guest")
            sub.subscribe("cfg/#", 1)
            assert sub.get().payload == b"kept"
            sub.close()
