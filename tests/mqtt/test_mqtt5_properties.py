"""MQTT 5 properties the broker forwards or answers with (docs/mqtt.md): repeated user properties to MQTT
and AMQP and back, response information, authentication methods and AUTH; paho-mqtt, pika and raw
packets over real sockets."""
import socket
import time

import paho.mqtt.client as mqtt
import pika
from paho.mqtt.packettypes import PacketTypes
from hypothesis import given, settings, strategies as st
from paho.mqtt.properties import Properties

from warrenmq.mqtt.codec import CONNACK, DISCONNECT, MQTT5, Auth, Connect, PacketReader, Publish, encode
from warrenmq.mqtt.session import amqp_header, mqtt5_properties
from warrenmq.protocol.spec import BasicProperties
from warrenmq.testing import EmbeddedBroker

from .helpers import Client
from .test_interop import read_packets

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


# ------------------------------------------------------------ request/response information, AUTH
def connack_properties(port, client_id, **props):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(encode(Connect(version=MQTT5, client_id=client_id, clean=True, keepalive=60, properties=props),
                     MQTT5))
    reader = PacketReader(version=MQTT5)
    [connack] = read_packets(s, reader, 1)
    return s, reader, connack


def closed(s) -> bool:
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_response_information_when_asked():
    """3.1.2.11.7 / 3.2.2.3.15: Request Response Information 1 gets Response Information (the
    mqtt_response_information template, a per-client prefix by default); 0 or absent gets none."""
    with EmbeddedBroker(mqtt=True) as b:
        port = b.mqtt_port
        c = Client(port, "rri-client", V5, connect=False)
        props = Properties(PacketTypes.CONNECT)
        props.RequestResponseInformation = 1
        c.properties = props
        _, _, p = c.connect()
        assert p.ResponseInformation == "response/rri-client"
        # a response topic under it works as any topic: a request/response round trip through it
        c.subscribe(p.ResponseInformation + "/#", 1)
        req = Properties(PacketTypes.PUBLISH)
        req.ResponseTopic = p.ResponseInformation + "/1"
        c.publish("rri/service", b"ask", 1, properties=req)
        c.publish(req.ResponseTopic, b"answer", 1)
        assert c.get().topic == "response/rri-client/1"
        c.close()
        for value in (0, None):
            s, _, connack = connack_properties(port, "rri-none", **({} if value is None else
                                                                    {"request_response_information": value}))
            assert connack.code == 0 and "response_information" not in connack.properties
            s.close()
        s, _, connack = connack_properties(port, "rri+wild", request_response_information=1)
        assert connack.code == 0 and "response_information" not in connack.properties  # not a topic prefix
        s.close()
    with EmbeddedBroker(mqtt=True, mqtt_response_information="replies/{vhost}/{username}/{client_id}") as b:
        s, _, connack = connack_properties(b.mqtt_port, "rri-t", request_response_information=1)
        assert connack.properties["response_information"] == "replies///guest/rri-t"
        s.close()
    with EmbeddedBroker(mqtt=True, mqtt_response_information="") as b:  # none at all
        s, _, connack = connack_properties(b.mqtt_port, "rri-off", request_response_information=1)
        assert connack.code == 0 and "response_information" not in connack.properties
        s.close()


def test_an_unsupported_authentication_method_is_refused(mqtt_broker):
    """4.12: a CONNECT with an Authentication Method the server does not support gets CONNACK 0x8C (bad
    authentication method) and the connection closes (MQTT-4.12.0-1); authentication data without a method
    (3.1.2.11.10), a request flag other than 0/1 (3.1.2.11.6/7) and a receive maximum or maximum packet
    size of 0 (3.1.2.11.3/4) are protocol errors (0x82)."""
    port = mqtt_broker.mqtt_port
    cases = [({"authentication_method": "SCRAM-SHA-1", "authentication_data": b"n,,n=user,r=abc"}, 0x8C),
             ({"authentication_method": "GS2-KRB5"}, 0x8C),
             ({"authentication_data": b"x"}, 0x82),
             ({"request_response_information": 2}, 0x82),
             ({"request_problem_information": 7}, 0x82),
             ({"receive_maximum": 0}, 0x82),  # (3.1.2.11.3)
             ({"maximum_packet_size": 0}, 0x82)]  # (3.1.2.11.4)
    for props, code in cases:
        s, _, connack = connack_properties(port, "auth-m", **props)
        assert (connack.type, connack.code, connack.session_present) == (CONNACK, code, False), props
        assert closed(s)
        s.close()
    # paho sees the reason too
    c = Client(port, "auth-paho", V5, connect=False)
    props = Properties(PacketTypes.CONNECT)
    props.AuthenticationMethod = "SCRAM-SHA-256"
    c.properties = props
    _, rc, _ = c.connect(expect_ok=False)
    assert rc.value == 0x8C
    c.c.loop_stop()


def test_auth_without_an_authentication_method_is_a_protocol_error(mqtt_broker):
    """3.15 / 4.12: a client that did not give an Authentication Method in its CONNECT must not send AUTH;
    the server answers one with DISCONNECT 0x82 (protocol error) and closes."""
    s, reader, connack = connack_properties(mqtt_broker.mqtt_port, "auth-late")
    assert connack.code == 0
    for code in (0x18, 0x19):  # continue authentication, re-authenticate
        if code == 0x19:
            s, reader, connack = connack_properties(mqtt_broker.mqtt_port, "auth-late")
        s.sendall(encode(Auth(code, {"authentication_method": "SCRAM-SHA-1"}), MQTT5))
        [d] = read_packets(s, reader, 1)
        assert (d.type, d.code) == (DISCONNECT, 0x82)
        assert closed(s)
        s.close()


# ------------------------------------------------------------ the mapping itself, without sockets
class _Delivered:
    """What :func:`mqtt5_properties` reads of a delivered message: its decoded AMQP properties."""
    def __init__(self, header: bytes):
        self.properties = BasicProperties.decode(header, 12)  # (class id, weight, body size first)


_names = st.sampled_from(["a", "b", "c", "ünï", "x-custom"])
_values = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=5)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_names, _values), min_size=1, max_size=8))
def test_user_properties_survive_the_amqp_header_in_order(users):
    """MQTT 5 -> AMQP header -> MQTT 5 gives back every user property, repeats and order included."""
    header = amqp_header(Publish("t", b"x", 1, properties={"user_property": list(users)}))
    assert mqtt5_properties(_Delivered(header))["user_property"] == list(users)
