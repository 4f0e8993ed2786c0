"""Issue 13, input refused at the door: the parser's max_message_size, the properties scan, the
order of replies before a framing error, receiving_bytes.  Bytes in, bytes out, as test_connection."""
import math
import struct

import amqp_reference as ref
import pytest
from hypothesis import given
from hypothesis import strategies as st

from warrenmq.protocol import spec
from warrenmq.protocol.codec import encode_table
from warrenmq.protocol.connection import CH_CLOSING, CH_OPEN, CLOSING, OPEN, ServerConnection
from warrenmq.protocol.properties import MAX_NESTING, PROPERTIES_OFFSET, properties_ok

ISSUE_FLAGS, ISSUE_PROPS = 0x3000, bytes.fromhex("00000007016B5A0000000002")


def opened(channels=(1,), frame_max=131072, **kw):
    conn = ref.handshake(ServerConnection({"product": "t"}, **kw), frame_max=frame_max, channels=channels)
    assert conn.state == OPEN
    return conn


def closes(out: bytes) -> list:
    return [ref.decode_close(p) for t, ch, p in ref.split_frames(out) if ch == 0 and ref.method_id_of(p) == (10, 50)]


def publish(ch, size, props=b"\x00\x00", body=None):
    data = ref.basic_publish(ch) + ref.content_header_frame(ch, size, props=props)
    return data + (ref.body_frame(ch, body) if body is not None else b"")


# ------------------------------------------------------------------ order of replies
def test_replies_to_the_methods_before_a_framing_error_go_out_before_the_close():
    """Issue 13 item 5: 2,100 channel.open in one read (channel_max 2047): the broker's 2,046
    open-oks (channel 1 is open), then the 530 close; the close used to come first."""
    conn = opened()
    events = conn.receive_data(b"".join(ref.channel_open(ch) for ch in range(2, 2102)))
    assert conn.state == CLOSING
    assert len(events) == 2046
    for ch, method, _h, _b in events:  # what the session does for each
        conn.send_method(ch, spec.ChannelOpenOk(b""))
    frames = ref.split_frames(conn.data_to_send())
    assert [ref.method_id_of(p) for _t, _ch, p in frames] == [(20, 11)] * 2046 + [(10, 50)]
    assert ref.decode_close(frames[-1][2]) == (
        530, b"NOT_ALLOWED - number of channels opened (2047) has reached the negotiated channel_max (2047)", 0, 0)


def test_a_broker_error_on_a_method_before_the_framing_error_is_the_close_sent():
    """The broker's close (for a method that came first) replaces the parser's held one: one close."""
    conn = opened()
    events = conn.receive_data(ref.queue_declare(1) + ref.channel_open(2)[:-1] + b"\x00")
    assert [e[1].NAME for e in events] == ["queue.declare"]
    conn.close(spec.NOT_ALLOWED, "NOT_ALLOWED - no", 50, 10)
    assert closes(conn.data_to_send()) == [(530, b"NOT_ALLOWED - no", 50, 10)]
    assert conn.state == CLOSING and conn.close_reason == (530, "NOT_ALLOWED - no")
    assert conn.receive_data(ref.CONNECTION_CLOSE_OK) == [] and conn.should_close


def test_a_framing_error_close_held_behind_close_oks_of_the_same_read():
    conn = opened(channels=(1, 2))
    events = conn.receive_data(ref.channel_close(1) + ref.frame(9, 0, b""))
    assert [e[1].NAME for e in events] == ["channel.close"]
    frames = ref.split_frames(conn.data_to_send())
    assert [(ch, ref.method_id_of(p)) for _t, ch, p in frames] == [(1, (20, 41)), (0, (10, 50))]
    assert conn.data_to_send() == b""
    conn.close(spec.CONNECTION_FORCED, "CONNECTION_FORCED - late")  # already closing: nothing more
    assert conn.data_to_send() == b""


# ------------------------------------------------------------------ max_message_size
@pytest.mark.parametrize("split", [None, 1, 20, 40])
def test_a_message_larger_than_max_message_size_is_refused_at_its_header(split):
    """Issue 13 item 1: the event has no body (the session closes the channel, 406), the body frames
    are counted and dropped, nothing of them is buffered."""
    conn = opened(max_message_size=100)
    data = publish(1, 150, body=b"x" * 100) + ref.body_frame(1, b"y" * 50) + ref.queue_declare(1)
    events = []
    pieces = [data] if split is None else [data[i:i + split] for i in range(0, len(data), split)]
    receiving = []
    for piece in pieces:
        events += conn.receive_data(piece)
        receiving.append(conn.receiving_bytes)
    (ch, method, header, body), declare = events
    assert (ch, method.NAME, body, int.from_bytes(header[4:12], "big")) == (1, "basic.publish", None, 150)
    assert declare[1].NAME == "queue.declare"  # the channel goes on when nobody closes it
    # never the body: at most one incomplete frame waits for the rest of it
    assert max(receiving) <= len(ref.body_frame(1, b"x" * 100)) and receiving[-1] == 0
    assert conn.data_to_send() == b"" and conn.state == OPEN


def test_the_body_of_a_refused_message_is_dropped_after_the_session_closes_the_channel():
    conn = opened(max_message_size=100)
    events = conn.receive_data(publish(1, 1000))
    assert events[0][3] is None
    conn.close_channel(1, spec.PRECONDITION_FAILED, "PRECONDITION_FAILED - too big", 60, 40)
    assert conn.channels[1] is CH_CLOSING
    assert conn.receive_data(ref.body_frame(1, b"x" * 1000) + ref.channel_close_ok(1) + ref.channel_open(1)) != []
    assert conn.channels[1] is CH_OPEN and conn.receiving_bytes == 0


def test_max_message_size_itself_is_accepted():
    conn = opened(max_message_size=100)
    (ch, method, header, body), = conn.receive_data(publish(1, 100, body=b"x" * 100))
    assert body == b"x" * 100


def test_receiving_bytes_counts_the_body_of_an_unfinished_message():
    conn = opened(frame_max=4096)
    conn.receive_data(publish(1, 10000, body=b"x" * 4000))
    assert conn.receiving_bytes == 4000
    conn.receive_data(ref.body_frame(1, b"x" * 4000)[:100])
    assert conn.receiving_bytes == 4100
    conn.receive_data(ref.body_frame(1, b"x" * 4000)[100:] + ref.body_frame(1, b"x" * 2000))
    assert conn.receiving_bytes == 0


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize("split", [False, True])
def test_the_issues_properties_that_do_not_decode_close_the_connection_541(split):
    """Issue 13 item 3: a headers table holding 'Z', then delivery-mode 2: RabbitMQ closes with a bare
    INTERNAL_ERROR; WarrenMQ stored the message."""
    conn = opened()
    data = publish(1, 1, props=struct.pack(">H", ISSUE_FLAGS) + ISSUE_PROPS, body=b"x")
    if split:  # the general path
        assert conn.receive_data(data[:25]) == []
        data = data[25:]
    assert conn.receive_data(data) == []
    assert closes(conn.data_to_send()) == [(541, b"INTERNAL_ERROR", 0, 0)]


def u32(n):
    return struct.pack(">I", n)


@pytest.mark.parametrize("flags, props, ok", [
    (0, b"", True),
    (0x0002, b"", True),                          # a bit that names no property: ignored, as RabbitMQ
    (0x0001, b"", False),                         # a continuation flag word: not decoded
    (0x8000, b"", False),
    (0x8000, b"\x00", True),
    (0x8000, b"\x01", False),
    (0x1000, b"\x02\x00", False),                 # a byte after the last property
    (0x0040, b"\x00" * 8, True),
    (0x2000, u32(0), True),
    (0x2000, u32(5) + b"\x01kV", False),          # the table runs past the properties
    (0x2000, u32(3) + b"\x01kV", True),
    (0x2000, u32(3) + b"\x01kZ", False),
    (0x2000, u32(2) + b"\x02k", False),           # a key past the table
    (0x2000, u32(6) + b"\x01kI\x00\x00", False),  # a value past the table
    (0x2000, u32(11) + b"\x01kd\x7f\xf0" + b"\x00" * 6, False),  # infinity
    (0x2000, u32(11) + b"\x01kd\x7f\xe0" + b"\x00" * 6, True),   # the largest finite double
    (0x2000, u32(7) + b"\x01kf\xff\x80\x00\x00", False),          # -infinity
    (0x2000, u32(8) + b"\x01kA" + u32(1) + b"V", True),
    (0x2000, u32(8) + b"\x01kA" + u32(1) + b"?", False),
    (0x2000, u32(11) + b"\x01kT" + (253402300799).to_bytes(8, "big"), True),
    (0x2000, u32(11) + b"\x01kT" + (253402300800).to_bytes(8, "big"), False),  # past year 9999
])
def test_properties_ok(flags, props, ok):
    header = ref.header_payload(0, 60, struct.pack(">H", flags) + props)
    assert properties_ok(header, 12, len(header)) is ok
    # in a larger buffer the scan stops at ``end``
    assert properties_ok(header + b"\x00\x00\x00\x00", 12, len(header)) is ok


def _nested(depth):
    value = b"V"
    for _ in range(depth):
        inner = b"\x01k" + value
        value = b"F" + u32(len(inner)) + inner
    return b"\x01k" + value


@pytest.mark.parametrize("depth, ok", [(MAX_NESTING, True), (MAX_NESTING + 1, False), (5000, False)])
def test_nesting_is_bounded(depth, ok):
    table = _nested(depth)
    header = ref.header_payload(0, 60, struct.pack(">H", 0x2000) + u32(len(table)) + table)
    assert properties_ok(header, 12, len(header)) is ok


FINITE = st.recursive(
    st.one_of(st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=False, allow_infinity=False),
              ref.TEXT, st.binary(max_size=20), st.none()),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(ref.KEYS, inner, max_size=3)),
    max_leaves=8)
SHORT = st.one_of(st.none(), ref.SHORTSTR)


@ref.FAST
@given(st.fixed_dictionaries({
    "content_type": SHORT, "content_encoding": SHORT,
    "headers": st.one_of(st.none(), st.dictionaries(ref.KEYS, FINITE, max_size=4)),
    "delivery_mode": st.one_of(st.none(), st.integers(0, 255)), "priority": st.one_of(st.none(), st.integers(0, 255)),
    "correlation_id": SHORT, "reply_to": SHORT, "expiration": SHORT, "message_id": SHORT,
    "timestamp": st.one_of(st.none(), st.integers(0, 2**63 - 1)), "type": SHORT, "user_id": SHORT,
    "app_id": SHORT, "cluster_id": SHORT}))
def test_every_encoded_basic_properties_passes_the_scan(values):
    props = spec.BasicProperties(**values)
    header = ref.header_payload(0, 60, props.encode())
    assert properties_ok(header, 12, len(header))


@ref.FUZZ
@given(st.binary(max_size=60), st.integers(0, 0xFFFF))
def test_whatever_passes_the_scan_decodes(props, flags):
    """No malformed properties reach the store: what the scan lets through, the decoder (and the
    features that read single properties) can read, and its NaN-free floats."""
    header = ref.header_payload(0, 60, struct.pack(">H", flags) + props)
    if not properties_ok(header, 12, len(header)):
        return
    decoded = spec.BasicProperties.decode(header, 12)
    assert spec.BasicProperties.decode(ref.header_payload(0, 60, decoded.encode()), 12) is not None


@ref.FUZZ
@given(st.dictionaries(ref.KEYS, FINITE, min_size=1, max_size=4), st.data())
def test_a_mutated_headers_table_passes_the_scan_only_if_it_decodes(headers, data):
    table = bytearray(encode_table(headers))
    i = data.draw(st.integers(0, len(table) - 1))
    table[i] = data.draw(st.integers(0, 255))
    header = ref.header_payload(0, 60, struct.pack(">H", 0x2000) + bytes(table))
    try:
        decoded = spec.BasicProperties.decode(header, 12)
        decodes = not any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(decoded.headers))
    except Exception:
        decodes = False
    if properties_ok(header, 12, len(header)):
        assert decodes


def _leaves(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, list):
        for x in v:
            yield from _leaves(x)
    else:
        yield v


def test_the_scan_is_what_the_fast_path_uses_too():
    """A publish with its header and body in one read takes the fast path: same refusal there."""
    for props in (b"\x80\x00\x05ab", b"\x00\x01", b"\x10\x00\x02\x00", b"\x10\x00", b"\x18\x40" + bytes(9),
                  struct.pack(">H", ISSUE_FLAGS) + ISSUE_PROPS):
        conn = opened()
        assert conn.receive_data(publish(1, 1, props=props, body=b"x")) == []
        assert closes(conn.data_to_send()) == [(541, b"INTERNAL_ERROR", 0, 0)]
    for props in (b"\x10\x00\x02", b"\x18\x40" + bytes(10), b"\x20\x00" + u32(3) + b"\x01kV"):
        for _ in range(2):  # the second time, from the remembered valid property bytes
            conn = opened()
            (_, _, header, body), = conn.receive_data(publish(1, 1, props=props, body=b"x"))
            assert header[PROPERTIES_OFFSET - 2:] == props and body == b"x"


def test_a_bug_while_parsing_closes_541_instead_of_escaping(monkeypatch, caplog):
    conn = opened()

    def broken(*args):
        raise KeyError("a bug")
    monkeypatch.setattr(conn, "_channel_method", broken)
    events = conn.receive_data(ref.channel_open(2))
    assert events == [] and conn.state == CLOSING
    assert closes(conn.data_to_send()) == [(541, b"INTERNAL_ERROR", 0, 0)]
    assert "internal error parsing input" in caplog.text
