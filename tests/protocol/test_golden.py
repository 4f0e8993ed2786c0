"""Golden frames: every generated method, the content properties and a few hand-written frames.

The expected bytes are built by ``amqp_reference`` straight from the JSON spec's
field types (it never imports warrenmq), and the literal hex frames at the end
were written out by hand from the AMQP 0-9-1 grammar.
"""
from datetime import datetime
from decimal import Decimal

import amqp_reference as ref
import pytest

from warrenmq.protocol import spec
from warrenmq.protocol.connection import ServerConnection
from warrenmq.protocol.frames import HEARTBEAT_FRAME, content_frames, method_frame
from warrenmq.protocol.properties import content_header

SPEC = ref.load_spec()
JSON_METHODS = {(_cls["id"], _m["id"]): (_cls, _m, _args) for _cls, _m, _args in ref.methods_of(SPEC)}

ALL_METHODS = sorted(spec.METHODS.values(), key=lambda c: c.INDEX)


# ------------------------------------------------------------- sample values
def sample_table(tag: str) -> dict:
    return {
        "name": tag,
        "uni": "h\u00e9llo \u2713",
        "small": -5,
        "int32-max": 2**31 - 1,
        "big": 2**40 + 3,
        "negbig": -(2**40),
        "u64": 2**64 - 1,
        "yes": True,
        "no": False,
        "float": -1.5,
        "void": None,
        "bin": b"\x00\x01\xfe\xff",
        "dec": Decimal("-31.415"),
        "when": datetime(2021, 3, 4, 5, 6, 7, tzinfo=ref.UTC),
        "list": [1, "two", [3.25, None], {"k": b"v"}],
        "nested": {"deeper": {"x": 2**33}},
    }


def sample_value(t: str, name: str, i: int):
    """A non-default value per type; distinct per position so swapped fields are caught."""
    if t == "octet":
        return 0xA1 + i
    if t == "short":
        return 0xB005 | (i << 4)
    if t == "long":
        return 0xC0DE0042 + (i << 8)
    if t in ("longlong", "timestamp"):
        return 0xF1E2D3C4B5A69788 - i
    if t == "shortstr":
        return f"{name}-\u00e9\u2713-{i}"
    if t == "longstr":
        return b"\x00\xff" + name.encode() + bytes([i])
    if t == "table":
        return sample_table(name)
    raise AssertionError(t)


def variants():
    """(method class, variant): 'all' sets every bit; 'only-<bit>' sets exactly one (bit order)."""
    out = []
    for cls in ALL_METHODS:
        out.append(pytest.param(cls, "all", id=f"{cls.NAME}[all]"))
        entry = JSON_METHODS.get((cls.CLASS_ID, cls.METHOD_ID))
        if entry is not None:
            for name, t in entry[2]:
                if t == "bit":
                    out.append(pytest.param(cls, name, id=f"{cls.NAME}[only-{name}]"))
    return out


def build(cls, variant):
    _c, _m, args = JSON_METHODS[(cls.CLASS_ID, cls.METHOD_ID)]
    kwargs, typed = {}, []
    for i, (name, t) in enumerate(args):
        v = (variant == "all" or variant == name) if t == "bit" else sample_value(t, name, i)
        kwargs[name] = v
        typed.append((t, v))
    return kwargs, typed


# ------------------------------------------------------------------- methods
def test_methods_table_matches_the_json_spec():
    assert set(spec.METHODS) == {(c << 16) | m for c, m in JSON_METHODS}
    assert len(spec.METHODS) == len(JSON_METHODS)
    for (cid, mid), (c, m, args) in JSON_METHODS.items():
        cls = spec.METHODS[(cid << 16) | mid]
        assert (cls.CLASS_ID, cls.METHOD_ID, cls.INDEX) == (cid, mid, (cid << 16) | mid)
        assert cls.NAME == f"{c['name']}.{m['name']}"
        assert cls.SYNCHRONOUS is bool(m.get("synchronous", False)), cls.NAME
        assert cls.CONTENT is bool(m.get("content", False)), cls.NAME
        assert cls.__slots__ == tuple(n for n, _ in args), cls.NAME


@pytest.mark.parametrize("cls, variant", variants())
def test_method_golden(cls, variant):
    kwargs, typed = build(cls, variant)
    method = cls(**kwargs)
    if variant == "all":
        default = cls()
        for name, value in kwargs.items():
            assert getattr(default, name) != value, f"{cls.NAME}.{name} sample equals the default"
    expected = ref.method_payload(cls.CLASS_ID, cls.METHOD_ID, typed)
    assert method.encode() == expected
    # the frame around it, on a channel number whose two bytes differ
    channel = 0 if cls.CLASS_ID == spec.CLASS_CONNECTION else 0x1234
    assert method_frame(channel, method) == ref.frame(1, channel, expected)
    # and the reference bytes decode back to the same arguments
    decoded = spec.METHODS[cls.INDEX].decode(expected, 4)
    assert type(decoded) is cls
    for name, value in kwargs.items():
        assert ref.strict(getattr(decoded, name)) == ref.strict(value), name


def test_constants_match_the_json_spec():
    for c in SPEC["constants"]:
        assert getattr(spec, c["name"].replace("-", "_")) == c["value"], c["name"]
    hard = {c["value"] for c in SPEC["constants"] if c.get("class") == "hard-error"}
    soft = {c["value"] for c in SPEC["constants"] if c.get("class") == "soft-error"}
    assert spec.HARD_ERRORS == hard and spec.SOFT_ERRORS == soft
    for c in SPEC["classes"]:
        assert getattr(spec, "CLASS_" + c["name"].upper()) == c["id"]
    assert spec.PROTOCOL_HEADER == b"AMQP\x00" + bytes(
        (SPEC["major-version"], SPEC["minor-version"], SPEC["revision"]))


# --------------------------------------------------------------- properties
def sample_properties(props):
    values = {}
    for i, (name, t) in enumerate(props):
        values[name] = sample_value(t, name, i)
    return values


def test_basic_properties_all_present_golden():
    _cls, props = ref.properties_of(SPEC)
    assert spec.BasicProperties.FIELDS == tuple(n for n, _ in props)
    values = sample_properties(props)
    p = spec.BasicProperties(**values)
    expected = ref.properties(props, values)
    assert expected[:2] == b"\xff\xfc"  # 14 properties -> the top 14 flag bits
    assert p.encode() == expected
    assert spec.BasicProperties.decode(expected) == p


@pytest.mark.parametrize("index", range(14))
def test_basic_properties_single_golden(index):
    _cls, props = ref.properties_of(SPEC)
    name, t = props[index]
    values = {name: sample_value(t, name, index)}
    p = spec.BasicProperties(**values)
    expected = ref.properties(props, values)
    assert expected[:2] == (1 << (15 - index)).to_bytes(2, "big")
    assert p.encode() == expected
    assert spec.BasicProperties.decode(expected) == p
    header = content_header(p, 0x0102030405)
    assert header == b"\x00\x3c\x00\x00" + (0x0102030405).to_bytes(8, "big") + expected


def test_basic_properties_empty():
    assert spec.BasicProperties().encode() == b"\x00\x00"
    assert spec.BasicProperties.decode(b"\x00\x00") == spec.BasicProperties()


# -------------------------------------------------- literal hand-written hex
H = bytes.fromhex

START_OK_PLAIN = H(
    "01 0000 00000035"                      # method frame, channel 0, 53-byte payload
    "000a 000b"                             # connection.start-ok
    "00000011 07 70726f64756374 53 00000004 70696b61"   # {"product": S"pika"}
    "05 504c41494e"                         # mechanism "PLAIN"
    "0000000c 00 6775657374 00 6775657374"  # response "\0guest\0guest"
    "05 656e5f5553"                         # locale "en_US"
    "ce")


def test_literal_connection_start_ok_plain():
    m = spec.ConnectionStartOk({"product": "pika"}, "PLAIN", b"\x00guest\x00guest", "en_US")
    assert method_frame(0, m) == START_OK_PLAIN
    d = spec.ConnectionStartOk.decode(START_OK_PLAIN[7:-1], 4)
    assert (d.client_properties, d.mechanism, d.response, d.locale) == (
        {"product": "pika"}, "PLAIN", b"\x00guest\x00guest", "en_US")


PUBLISH = H(
    "01 0001 0000000d"
    "003c 0028"        # basic.publish
    "0000"             # ticket
    "02 6578"          # exchange "ex"
    "02 726b"          # routing key "rk"
    "01"               # mandatory=1, immediate=0
    "ce")
PUBLISH_HEADER_PAYLOAD = H(
    "003c 0000 0000000000000005"   # class basic, weight 0, body size 5
    "9000"                         # content-type + delivery-mode present
    "0a 746578742f706c61696e"      # "text/plain"
    "02")                          # delivery-mode 2
PUBLISH_HEADER = H("02 0001 0000001a") + PUBLISH_HEADER_PAYLOAD + H("ce")
PUBLISH_BODY = H("03 0001 00000005 68656c6c6f ce")  # "hello"


def test_literal_basic_publish():
    assert method_frame(1, spec.BasicPublish(0, "ex", "rk", True, False)) == PUBLISH
    props = spec.BasicProperties(content_type="text/plain", delivery_mode=2)
    assert content_header(props, 5) == PUBLISH_HEADER_PAYLOAD
    assert spec.BasicProperties.decode(PUBLISH_HEADER_PAYLOAD, 12) == props


def test_literal_basic_publish_is_received_as_one_event():
    conn = ref.handshake(ServerConnection({}), channels=(1,))
    events = conn.receive_data(PUBLISH + PUBLISH_HEADER + PUBLISH_BODY)
    assert len(events) == 1
    ch, method, header, body = events[0]
    assert (ch, method, header, body) == (1, spec.BasicPublish(0, "ex", "rk", True, False),
                                          PUBLISH_HEADER_PAYLOAD, b"hello")
    assert conn.data_to_send() == b""


DELIVER = H(
    "01 0001 00000015"
    "003c 003c"            # basic.deliver
    "04 63746167"          # consumer tag "ctag"
    "0000000000000001"     # delivery tag 1
    "01"                   # redelivered
    "00"                   # exchange ""
    "01 71"                # routing key "q"
    "ce")
DELIVER_HEADER = H("02 0001 0000000e 003c 0000 0000000000000005 0000 ce")


def test_literal_basic_deliver():
    m = spec.BasicDeliver("ctag", 1, True, "", "q")
    assert method_frame(1, m) == DELIVER
    header = content_header(spec.BasicProperties(), 5)
    parts = content_frames(1, m.encode(), header, b"hello", 131072)
    assert b"".join(parts) == DELIVER + DELIVER_HEADER + PUBLISH_BODY


def test_content_frames_split_body_at_frame_max():
    body = bytes(range(256)) * 40  # 10240 bytes, frame_max 4096 -> 4088 + 4088 + 2064
    header = content_header(spec.BasicProperties(), len(body))
    data = b"".join(content_frames(7, b"\x00\x3c\x00\x3cXYZ", header, body, 4096))
    frames = ref.split_frames(data)
    assert [(t, ch, len(p)) for t, ch, p in frames] == [
        (1, 7, 7), (2, 7, 14), (3, 7, 4088), (3, 7, 4088), (3, 7, 2064)]
    assert b"".join(p for t, _, p in frames if t == 3) == body
    # exactly frame_max - 8 fits in one body frame; an empty body sends no body frame
    one = ref.split_frames(b"".join(content_frames(1, b"m", header, body[:4088], 4096)))
    assert [t for t, _, _ in one] == [1, 2, 3]
    none = ref.split_frames(b"".join(content_frames(1, b"m", header, b"", 4096)))
    assert [t for t, _, _ in none] == [1, 2]


QUEUE_DECLARE = H(
    "01 0001 00000020"
    "0032 000a"                 # queue.declare
    "0000"                      # ticket
    "02 7131"                   # queue "q1"
    "0a"                        # durable (bit 1) + auto-delete (bit 3)
    "00000012 0c 782d6d61782d6c656e677468 49 0000000a"  # {"x-max-length": I 10}
    "ce")


def test_literal_queue_declare():
    m = spec.QueueDeclare(0, "q1", passive=False, durable=True, exclusive=False, auto_delete=True,
                          nowait=False, arguments={"x-max-length": 10})
    assert method_frame(1, m) == QUEUE_DECLARE
    assert spec.QueueDeclare.decode(QUEUE_DECLARE[7:-1], 4) == m


def test_literal_server_handshake_frames():
    conn = ServerConnection({"product": "X"})
    conn.receive_data(b"AMQP\x00\x00\x09\x01")
    assert conn.data_to_send() == H(
        "01 0000 00000033 000a 000a 00 09"
        "0000000e 07 70726f64756374 53 00000001 58"         # {"product": "X"}
        "0000000e 504c41494e20414d51504c41494e"            # "PLAIN AMQPLAIN"
        "00000005 656e5f5553"                              # "en_US"
        "ce")
    conn.receive_data(ref.start_ok())  # a tune only answers a start-ok
    conn.send_tune()
    assert conn.data_to_send() == H("01 0000 0000000c 000a 001e 07ff 00020000 003c ce")
    conn.receive_data(ref.tune_ok() + ref.connection_open())  # open-ok only answers a connection.open
    conn.send_open_ok()
    assert conn.data_to_send() == H("01 0000 00000005 000a 0029 00 ce")
    conn.send_heartbeat()
    assert conn.data_to_send() == HEARTBEAT_FRAME == H("08 0000 00000000 ce")


def test_literal_field_table_tags():
    from warrenmq.protocol.codec import encode_table
    table = {"a": True, "b": 2**31, "c": "\u00e9", "d": b"\x01", "e": None, "f": 0.5,
             "g": Decimal("1.5"), "h": datetime(1970, 1, 1, 0, 1, 40, tzinfo=ref.UTC), "i": [-1], "j": {}}
    assert encode_table(table) == H(
        "00000054"
        "01 61 74 01"
        "01 62 6c 0000000080000000"
        "01 63 53 00000002 c3a9"
        "01 64 78 00000001 01"
        "01 65 56"
        "01 66 64 3fe0000000000000"
        "01 67 44 01 0000000f"
        "01 68 54 0000000000000064"
        "01 69 41 00000005 49 ffffffff"
        "01 6a 46 00000000")
