"""The MQTT codec and connection state machine: bytes in, bytes out (no sockets, no broker)."""
import pytest
from hypothesis import given, settings, strategies as st

from warrenmq.mqtt import codec as c
from warrenmq.mqtt.codec import MQTTError, PacketReader, decode_varint, encode, encode_varint
from warrenmq.mqtt.connection import CONNECTED, ServerConnection


def test_varint_known_values():
    # the spec's table 1.1 boundaries
    for n, b in [(0, b"\x00"), (127, b"\x7f"), (128, b"\x80\x01"), (16383, b"\xff\x7f"),
                 (16384, b"\x80\x80\x01"), (2097151, b"\xff\xff\x7f"), (2097152, b"\x80\x80\x80\x01"),
                 (268435455, b"\xff\xff\xff\x7f")]:
        assert encode_varint(n) == b
        assert decode_varint(b, 0, len(b)) == (n, len(b))
    with pytest.raises(MQTTError) as e:
        decode_varint(b"\xff\xff\xff\xff\x01", 0, 5)
    assert e.value.code == c.MALFORMED_PACKET


@given(st.integers(0, c.MAX_VARINT))
def test_varint_roundtrip(n):
    b = encode_varint(n)
    assert decode_varint(b, 0, len(b)) == (n, len(b))


def test_connect_311_bytes():
    # CONNECT from the MQTT 3.1.1 spec's example shape: client id "c1", user "u", password "p", keepalive 60
    raw = (b"\x10\x15\x00\x04MQTT\x04\xc2\x00\x3c\x00\x02c1\x00\x01u\x00\x01p")
    raw = raw[:1] + bytes((len(raw) - 2,)) + raw[2:]
    [pkt] = PacketReader().feed(raw)
    assert pkt == c.Connect(4, "c1", True, 60, "u", b"p")
    assert encode(pkt, 4) == raw


def test_connack_codes_per_version():
    assert encode(c.Connack(False, c.BAD_USER_NAME_OR_PASSWORD), 4) == b"\x20\x02\x00\x04"
    assert encode(c.Connack(True, c.SUCCESS), 4) == b"\x20\x02\x01\x00"
    assert encode(c.Connack(False, c.BAD_USER_NAME_OR_PASSWORD), 5) == b"\x20\x03\x00\x86\x00"


def test_byte_at_a_time_and_coalesced():
    pkts = [c.Connect(5, "x", properties={"session_expiry_interval": 10}),
            c.Publish("a/b", b"hello", 1, packet_id=7, properties={"user_property": [("k", "v")]}),
            c.PingReq(), c.Disconnect(0x04)]
    data = b"".join(encode(p, 5) for p in pkts)
    r = PacketReader()
    got = []
    for i in range(len(data)):
        got += r.feed(data[i:i + 1])
    assert got == pkts
    assert PacketReader().feed(data) == pkts


def test_packet_too_large_is_refused_before_buffering():
    r = PacketReader(max_packet_size=1000)
    r.feed(encode(c.Connect(4, "x"), 4))
    with pytest.raises(MQTTError) as e:
        r.feed(b"\x30\xff\xff\xff\x7f")  # announces 268 MB
    assert e.value.code == c.PACKET_TOO_LARGE


@pytest.mark.parametrize("raw,code", [
    (b"\x30\x03\x00\x01a", c.PROTOCOL_ERROR),  # first packet not CONNECT
    (b"\x10\x0c\x00\x04MQTT\x04\x03\x00\x3c\x00\x00", c.MALFORMED_PACKET),  # reserved flag
    (b"\x10\x0c\x00\x04MQTT\x04\x12\x00\x3c\x00\x00", c.MALFORMED_PACKET),  # will QoS without will flag
    (b"\x10\x0c\x00\x04MQTT\x07\x02\x00\x3c\x00\x00", c.UNSUPPORTED_PROTOCOL_VERSION),
    (b"\x10\x0c\x00\x04MQTX\x04\x02\x00\x3c\x00\x00", c.PROTOCOL_ERROR),
    (b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x05", c.MALFORMED_PACKET),  # client id beyond the packet
    (b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01\xff", c.MALFORMED_PACKET),  # not UTF-8
    (b"\x10\xff\xff\xff\xff\x01", c.MALFORMED_PACKET),  # five-byte remaining length
])
def test_malformed(raw, code):
    with pytest.raises(MQTTError) as e:
        PacketReader().feed(raw)
    assert e.value.code == code


def test_bad_flags_after_connect():
    r = PacketReader()
    r.feed(encode(c.Connect(4, "x"), 4))
    for raw in (b"\x80\x05\x00\x01\x00\x01a",  # SUBSCRIBE with flags 0
                b"\x36\x05\x00\x01a\x00\x01",  # PUBLISH QoS 3
                b"\x38\x03\x00\x01a",  # DUP on QoS 0
                b"\xc0\x01\x00"):  # PINGREQ with a body
        with pytest.raises(MQTTError):
            PacketReader(version=4).feed(raw)


props = st.fixed_dictionaries({}, optional={
    "payload_format_indicator": st.integers(0, 1), "message_expiry_interval": st.integers(0, 2**32 - 1),
    "content_type": st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                            max_size=20),
    "correlation_data": st.binary(max_size=20), "topic_alias": st.integers(1, 65535),
    "user_property": st.lists(st.tuples(st.text(max_size=5).filter(lambda s: "\x00" not in s),
                                        st.text(max_size=5).filter(lambda s: "\x00" not in s)), min_size=1,
                              max_size=3),
    "subscription_identifier": st.lists(st.integers(1, c.MAX_VARINT), min_size=1, max_size=2),
})
topic = st.text(alphabet="ab/+#$é", min_size=1, max_size=30)


@settings(max_examples=200)
@given(version=st.sampled_from([4, 5]), t=topic, payload=st.binary(max_size=300), qos=st.integers(0, 2),
       retain=st.booleans(), pid=st.integers(1, 65535), p=props)
def test_publish_roundtrip(version, t, payload, qos, retain, pid, p):
    pkt = c.Publish(t, payload, qos, retain, qos > 0 and retain, pid if qos else None, p if version == 5 else {})
    assert PacketReader(version=version).feed(encode(pkt, version)) == [pkt]


@given(version=st.sampled_from([3, 4, 5]), cid=st.text(max_size=23).filter(lambda s: "\x00" not in s),
       clean=st.booleans(), keepalive=st.integers(0, 65535), user=st.none() | st.text(max_size=10).filter(
           lambda s: "\x00" not in s), password=st.none() | st.binary(max_size=10), will_qos=st.none() | st.integers(0, 2))
def test_connect_roundtrip(version, cid, clean, keepalive, user, password, will_qos):
    if password is not None and user is None and version != 5:
        user = "u"
    will = None if will_qos is None else c.Will("w/t", b"bye", will_qos, True,
                                                 {"will_delay_interval": 3} if version == 5 else {})
    pkt = c.Connect(version, cid, clean, keepalive, user, password, will,
                    {"session_expiry_interval": 5} if version == 5 else {})
    assert PacketReader().feed(encode(pkt, version)) == [pkt]


@pytest.mark.parametrize("version", [4, 5])
def test_other_packets_roundtrip(version):
    v5 = version == 5
    pkts = [c.Subscribe(3, [c.Subscription("a/+", 1, v5, v5, 2 if v5 else 0), c.Subscription("#", 2)],
                        {"subscription_identifier": [9]} if v5 else {}),
            c.Suback(3, [1, 0x80]), c.Unsubscribe(4, ["a/+", "b"]), c.Unsuback(4, [0, 0x11] if v5 else []),
            c.PubAck(c.PUBACK, 5, 0x10 if v5 else 0), c.PubAck(c.PUBREC, 6), c.PubAck(c.PUBREL, 6),
            c.PubAck(c.PUBCOMP, 6), c.PingReq(), c.PingResp(), c.Connack(True, 0)]
    if v5:
        pkts += [c.Disconnect(0x8E, {"reason_string": "taken over"}), c.Auth(0x18, {"authentication_method": "x"})]
    for pkt in pkts:
        assert PacketReader(version=version).feed(encode(pkt, version)) == [pkt], pkt


# ------------------------------------------------------------- state machine
def connected(version=4):
    conn = ServerConnection()
    [pkt] = conn.receive_data(encode(c.Connect(version, "cid", keepalive=10), version))
    assert pkt.client_id == "cid" and conn.keepalive_timeout == 15
    conn.accept(False)
    assert conn.take_output() == encode(c.Connack(False, 0), version) and conn.state == CONNECTED
    return conn


def test_ping_is_answered_by_the_connection():
    conn = connected()
    assert conn.receive_data(b"\xc0\x00") == []
    assert conn.take_output() == b"\xd0\x00"


def test_second_connect_is_a_protocol_error():
    conn = connected()
    with pytest.raises(MQTTError) as e:
        conn.receive_data(encode(c.Connect(4, "cid"), 4))
    assert e.value.code == c.PROTOCOL_ERROR


def test_incoming_qos2_routes_once():
    conn = connected()
    pub = c.Publish("t", b"x", 2, packet_id=9)
    assert conn.receive_data(encode(pub, 4)) == [pub]
    dup = c.Publish("t", b"x", 2, dup=True, packet_id=9)
    assert conn.receive_data(encode(dup, 4)) == []  # resend before PUBREL: not routed again
    assert conn.take_output() == b"\x50\x02\x00\x09"  # PUBREC
    assert conn.receive_data(b"\x62\x02\x00\x09") == []  # PUBREL
    assert conn.take_output() == b"\x70\x02\x00\x09"  # PUBCOMP
    assert conn.receive_data(encode(pub, 4)) == [pub]  # the id is free again: a new message


def test_outgoing_qos2_and_qos1():
    conn = connected()
    pid = conn.send_publish(c.Publish("t", b"x", 2))
    pid1 = conn.send_publish(c.Publish("t", b"y", 1))
    assert (pid, pid1) == (1, 2)
    conn.take_output()
    [rec] = conn.receive_data(bytes((0x50, 2, 0, pid)))
    assert rec.type == c.PUBREC
    assert conn.take_output() == bytes((0x62, 2, 0, pid))  # PUBREL
    assert conn.receive_data(bytes((0x70, 2, 0, pid))) == []  # PUBCOMP frees it
    assert conn.receive_data(bytes((0x40, 2, 0, pid1)))[0].packet_id == pid1
    assert conn.receive_data(bytes((0x40, 2, 0, pid1))) == []  # a second PUBACK of it is ignored
    assert conn.inflight == {}


def test_topic_alias():
    conn = connected(5)
    first = c.Publish("a/b", b"1", properties={"topic_alias": 2})
    assert conn.receive_data(encode(first, 5))[0].topic == "a/b"
    [second] = conn.receive_data(encode(c.Publish("", b"2", properties={"topic_alias": 2}), 5))
    assert second.topic == "a/b"
    with pytest.raises(MQTTError) as e:
        conn.receive_data(encode(c.Publish("", b"3", properties={"topic_alias": 3}), 5))
    assert e.value.code == c.TOPIC_ALIAS_INVALID


def test_unsupported_version_gets_connack():
    conn = ServerConnection()
    with pytest.raises(MQTTError) as e:
        conn.receive_data(b"\x10\x0c\x00\x04MQTT\x07\x02\x00\x3c\x00\x00")
    conn.error_output(e.value)
    assert conn.take_output() == b"\x20\x02\x00\x01"  # 3.1.1's "unacceptable protocol version"


def test_codec_and_connection_are_sans_io():
    import ast
    from pathlib import Path
    import warrenmq.mqtt
    base = Path(warrenmq.mqtt.__file__).parent
    for name in ("codec.py", "connection.py"):
        tree = ast.parse((base / name).read_text())
        mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
            a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert mods <= {"__future__", "struct", "codec"}, (name, mods)


@settings(max_examples=300)
@given(st.sampled_from([c.MQTT31, c.MQTT311, c.MQTT5]), st.binary(max_size=40), st.binary(max_size=300),
       st.integers(0, 15), st.integers(0, 65535))
def test_fast_paths_decode_as_the_decoder_does(version, topic, payload, flags, pid):
    """The reader's fast paths (QoS 0/1 PUBLISH of MQTT 3.x, PUBACK) give what decode_packet gives, or
    leave the packet to it: the same packet or the same error for any topic bytes, flags and packet id."""
    first = 0x30 | flags
    body = len(topic).to_bytes(2, "big") + topic + (pid.to_bytes(2, "big") if flags & 0x06 else b"")
    body += (b"\x00" if version == c.MQTT5 else b"") + payload
    for raw_first, raw_body in ((first, body), (0x40, pid.to_bytes(2, "big"))):
        raw = bytes([raw_first]) + encode_varint(len(raw_body)) + raw_body
        reader = PacketReader(version=version)
        try:
            want = c.decode_packet(raw_first, memoryview(raw_body), version)
        except MQTTError as e:
            with pytest.raises(MQTTError) as got:
                reader.feed(raw)
            assert got.value.code == e.code
            continue
        [got] = reader.feed(raw)
        assert type(got) is type(want)
        assert {k: getattr(got, k) for k in got.__slots__} == {k: getattr(want, k) for k in want.__slots__}


@given(st.sampled_from([c.MQTT311, c.MQTT5]), st.text(min_size=1, max_size=40), st.binary(max_size=300),
       st.integers(0, 2), st.booleans())
def test_plain_publish_bytes_are_the_encoders(version, topic, payload, qos, dup):
    """send_plain_publish (deliveries without properties) writes the bytes send_publish writes."""
    a, b = ServerConnection(), ServerConnection()
    for conn in (a, b):
        conn.version = version
    dup = dup and qos > 0
    pa = a.send_publish(c.Publish(topic, payload, qos, False, dup))
    pb = b.send_plain_publish(c.encode_string(topic), payload, qos, dup)
    assert pa == pb and a.inflight == b.inflight
    assert a.take_output() == b.take_output()


def test_acks_bytes_are_the_encoders():
    for version in (c.MQTT311, c.MQTT5):
        for ptype in (c.PUBACK, c.PUBREC, c.PUBREL, c.PUBCOMP):
            for code in (c.SUCCESS, c.UNSPECIFIED_ERROR):
                conn = ServerConnection()
                conn.version = version
                conn.send_ack(ptype, 513, code if version == c.MQTT5 else 0)
                assert conn.take_output() == encode(c.PubAck(ptype, 513, code if version == c.MQTT5 else 0), version)
