"""ServerConnection state machine: bytes in, bytes out (no sockets, no broker).

The test plays both the client (frames built by ``amqp_reference``) and the
broker (calling ``send_tune``/``send_open_ok``/``close_channel`` as it would).
"""
import amqp_reference as ref
import pytest
from amqp_reference import u32

from warrenmq.protocol import spec
from warrenmq.protocol.connection import (
    ANY, AUTHENTICATING, AWAIT_HEADER, AWAIT_OPEN, AWAIT_START_OK, AWAIT_TUNE_OK, CH_CLOSED, CH_CLOSING, CH_OPEN,
    CHANNEL_TRANSITIONS, CLOSED, CLOSING, CONNECTION_TRANSITIONS, OPEN, OPENING, ChannelState, ConnectionState,
    Event, ServerConnection,
)
from warrenmq.protocol.sasl import parse_credentials
from warrenmq.protocol.spec import REPLY_NAMES

SERVER_PROPS = {"product": "WarrenMQ", "capabilities": {"publisher_confirms": True}}
START = ref.frame(1, 0, ref.method_payload(10, 10, [
    ("octet", 0), ("octet", 9), ("table", SERVER_PROPS), ("longstr", b"PLAIN AMQPLAIN"), ("longstr", b"en_US")]))
TUNE = ref.frame(1, 0, ref.method_payload(10, 30, [("short", 2047), ("long", 131072), ("short", 60)]))
OPEN_OK = ref.frame(1, 0, ref.method_payload(10, 41, [("shortstr", "")]))
CLOSE_OK = ref.CONNECTION_CLOSE_OK


def new():
    return ServerConnection(dict(SERVER_PROPS))


def opened(frame_max=131072, channel_max=2047, channels=(1,)):
    conn = ref.handshake(new(), frame_max=frame_max, channel_max=channel_max, channels=channels)
    assert conn.state == OPEN
    return conn


def expect_hard_close(conn, code, class_id=0, method_id=0, text=None):
    """Exactly one connection.close with ``code`` was written; then finish the close handshake."""
    frames = ref.split_frames(conn.data_to_send())
    assert len(frames) == 1, frames
    ftype, ch, payload = frames[0]
    assert (ftype, ch, ref.method_id_of(payload)) == (1, 0, (10, 50))
    rc, reply, cid, mid = ref.decode_close(payload)
    assert (rc, cid, mid) == (code, class_id, method_id), reply
    assert code in spec.HARD_ERRORS
    assert reply.startswith(REPLY_NAMES[code].encode() + b" - ")
    if text is not None:
        assert reply == text.encode()
    assert conn.state == CLOSING and not conn.should_close
    assert conn.close_reason[0] == code
    # anything but close-ok is ignored now; close-ok ends it
    assert conn.receive_data(ref.HEARTBEAT + ref.queue_declare(1)) == []
    assert conn.data_to_send() == b"" and conn.state == CLOSING
    assert conn.receive_data(CLOSE_OK) == []
    assert conn.should_close and conn.state == CLOSED
    assert conn.data_to_send() == b""
    return reply


def publish_frames(ch, body, frame_max=131072, props=b"\x00\x00", routing_key="rk"):
    chunk = frame_max - 8
    bodies = b"".join(ref.body_frame(ch, body[i:i + chunk]) for i in range(0, len(body), chunk))
    return (ref.basic_publish(ch, routing_key=routing_key) + ref.content_header_frame(ch, len(body), props=props)
            + bodies)


# ------------------------------------------------------------------ header
def test_protocol_header_gets_connection_start():
    conn = new()
    assert conn.receive_data(ref.PROTOCOL_HEADER) == []
    assert conn.data_to_send() == START
    assert conn.state == AWAIT_START_OK and not conn.should_close


def test_protocol_header_byte_by_byte():
    conn = new()
    for b in ref.PROTOCOL_HEADER[:-1]:
        assert conn.receive_data(bytes([b])) == []
        assert conn.data_to_send() == b""
    assert conn.receive_data(ref.PROTOCOL_HEADER[-1:]) == []
    assert conn.data_to_send() == START


def test_protocol_header_pipelined_with_start_ok():
    conn = new()
    events = conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok())
    assert [type(e[1]) for e in events] == [spec.ConnectionStartOk]
    assert conn.data_to_send() == START


def test_amqp_0_9_header_is_taken_as_0_9_1():
    """RabbitMQ 3.10 answers AMQP 0-9's header (1, 1, 0, 9) with its 0-9-1 connection.start (txAMQP sends it)."""
    conn = new()
    assert conn.receive_data(b"AMQP\x01\x01\x00\x09") == []
    assert conn.data_to_send() == START


# (AMQP 0-9's header "AMQP\x01\x01\x00\x09" is accepted as 0-9-1, as RabbitMQ 3.10 does: txAMQP sends it)
@pytest.mark.parametrize("header", [
    b"AMQP\x00\x00\x09\x00",
    b"AMQP\x00\x00\x08\x00",
    b"AMQP\x01\x01\x08\x00",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x0b\xce",   # a frame instead of the header
])
@pytest.mark.parametrize("split", [None, 3])
def test_wrong_protocol_header_gets_ours_and_close(header, split):
    conn = new()
    if split:
        assert conn.receive_data(header[:split]) == []
        assert conn.data_to_send() == b""
        header = header[split:]
    assert conn.receive_data(header) == []
    assert conn.data_to_send() == b"AMQP\x00\x00\x09\x01"
    assert conn.should_close and conn.state == CLOSED
    # nothing more is parsed or written
    assert conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok()) == []
    assert conn.data_to_send() == b""


# --------------------------------------------------------------- handshake
def test_full_handshake():
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER)
    assert conn.data_to_send() == START

    client_props = {"product": "pika", "capabilities": {"consumer_cancel_notify": True}}
    events = conn.receive_data(ref.start_ok("PLAIN", b"\x00guest\x00secret", client_props))
    assert len(events) == 1
    ch, m, header, body = events[0]
    assert (ch, header, body) == (0, None, None)
    assert m == spec.ConnectionStartOk(client_props, "PLAIN", b"\x00guest\x00secret", "en_US")
    assert conn.client_properties == client_props
    assert conn.capabilities == {"consumer_cancel_notify": True}
    assert conn.data_to_send() == b""  # authentication is the broker's decision
    assert conn.state == AUTHENTICATING

    conn.send_tune()
    assert conn.data_to_send() == TUNE
    assert conn.state == AWAIT_TUNE_OK

    events = conn.receive_data(ref.tune_ok(100, 65536, 30))
    assert events == [(0, spec.ConnectionTuneOk(100, 65536, 30), None, None)]
    assert (conn.channel_max, conn.frame_max, conn.heartbeat) == (100, 65536, 30)
    assert conn.data_to_send() == b""
    assert conn.state == AWAIT_OPEN

    events = conn.receive_data(ref.connection_open("/vh"))
    assert events == [(0, spec.ConnectionOpen("/vh", "", False), None, None)]
    assert conn.data_to_send() == b"" and conn.state == OPENING  # vhost access: broker's decision

    conn.send_open_ok()
    assert conn.data_to_send() == OPEN_OK
    assert conn.state == OPEN

    events = conn.receive_data(ref.channel_open(1))
    assert events == [(1, spec.ChannelOpen(""), None, None)]
    assert conn.channels == {1: CH_OPEN}
    assert conn.data_to_send() == b""  # channel.open-ok comes from the broker


@pytest.mark.parametrize("channel_max, frame_max, text", [
    (10, 4095, "NOT_ALLOWED - negotiated frame_max = 4095 is lower than the minimum allowed value (4096)"),
    (10, 1, "NOT_ALLOWED - negotiated frame_max = 1 is lower than the minimum allowed value (4096)"),
    (10, 131073, "NOT_ALLOWED - negotiated frame_max = 131073 is higher than the maximum allowed value (131072)"),
    # 0 means "no limit", which is above the limit the server offered (RabbitMQ's texts)
    (10, 0, "NOT_ALLOWED - negotiated frame_max = 0 is higher than the maximum allowed value (131072)"),
    (2048, 4096, "NOT_ALLOWED - negotiated channel_max = 2048 is higher than the maximum allowed value (2047)"),
    (0, 4096, "NOT_ALLOWED - negotiated channel_max = 0 (no limit) is higher than the maximum allowed value (2047)"),
])
def test_bad_tune_ok_closes_530(channel_max, frame_max, text):
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok())
    conn.send_tune()
    conn.data_to_send()
    assert conn.receive_data(ref.tune_ok(channel_max, frame_max)) == []
    expect_hard_close(conn, spec.NOT_ALLOWED, 10, 31, text)


def test_tune_ok_frame_max_4096_is_accepted():
    conn = opened(frame_max=4096, channel_max=1)
    assert (conn.frame_max, conn.channel_max) == (4096, 1)


def test_unknown_mechanism_closes_503():
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER)
    conn.data_to_send()
    assert conn.receive_data(ref.start_ok("CRAM-MD5")) == []
    expect_hard_close(conn, spec.COMMAND_INVALID, 10, 11,
                      "COMMAND_INVALID - unknown authentication mechanism 'CRAM-MD5'")


def test_huge_mechanism_name_closes_with_a_truncated_reply_text():
    # the reply text would be > 255 bytes: it must be cut, not raise out of receive_data
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER)
    conn.data_to_send()
    assert conn.receive_data(ref.start_ok("\u00e9" * 127)) == []
    reply = expect_hard_close(conn, spec.COMMAND_INVALID, 10, 11)
    assert len(reply) <= 255
    assert reply.decode("utf-8").startswith("COMMAND_INVALID - unknown authentication mechanism '\u00e9\u00e9")


def test_methods_before_open_are_command_invalid():
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok())
    conn.send_tune()
    conn.receive_data(ref.tune_ok())
    conn.data_to_send()
    assert conn.receive_data(ref.channel_open(1)) == []  # before open-ok
    expect_hard_close(conn, spec.COMMAND_INVALID, 20, 10,
                      "COMMAND_INVALID - channel.open received before the connection was open")


def test_tune_ok_out_of_order_is_command_invalid():
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER)
    conn.data_to_send()
    assert conn.receive_data(ref.tune_ok()) == []  # before start-ok / tune
    expect_hard_close(conn, spec.COMMAND_INVALID, 10, 31,
                      "COMMAND_INVALID - connection.tune-ok not expected during the handshake")


def test_channel_method_on_channel_zero_is_channel_error():
    conn = opened()
    assert conn.receive_data(ref.queue_declare(0)) == []
    expect_hard_close(conn, spec.CHANNEL_ERROR, 50, 10,
                      "CHANNEL_ERROR - unexpected method in connection state running")


# ----------------------------------------------------------------- framing
# RabbitMQ (observed on 3.10, and rabbit_reader's FRAME_SIZE_FUDGE) accepts payloads up to
# frame_max bytes, although its error text names frame_max - 8 as the limit.
def test_frame_larger_than_frame_max_is_501_as_soon_as_its_header_arrives():
    conn = opened(frame_max=4096)
    # only the 7-byte frame header of a 4097-byte payload is sent
    assert conn.receive_data(b"\x01\x00\x01" + u32(4097)) == []
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0,
                      "FRAME_ERROR - type 1, all octets = <<>>: {frame_too_large,4097,4088}")


def test_payload_of_frame_max_is_accepted_one_more_is_not():
    conn = opened(frame_max=4096)
    body = bytes(range(256)) * 16  # 4096 bytes in one body frame
    events = conn.receive_data(ref.basic_publish(1) + ref.content_header_frame(1, 4096) + ref.body_frame(1, body))
    assert [e[3] for e in events] == [body]
    assert conn.data_to_send() == b""
    big = bytes(4097)
    conn.receive_data(ref.basic_publish(1) + ref.content_header_frame(1, 4097) + ref.body_frame(1, big))
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0,
                      "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}")


def test_frame_max_before_tune_is_4096():
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER)
    conn.data_to_send()
    props = {"pad": "x" * 4070}
    frame = ref.start_ok(client_properties=props)
    assert len(frame) - 8 > 4096
    assert conn.receive_data(frame) == []
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0,
                      f"FRAME_ERROR - type 1, all octets = <<>>: {{frame_too_large,{len(frame) - 8},4088}}")


def test_the_negotiated_frame_max_holds_from_the_frame_after_tune_ok_in_the_same_read():
    # found by test_fuzz: the header of a frame larger than 4096 right behind the tune-ok was
    # measured against the pre-tune limit when both came in one read (and against the new one
    # when they came in two)
    big_frame_header = b"\x01\x00\x00" + u32(5000)
    for reads in ([ref.tune_ok(frame_max=8192) + big_frame_header], [ref.tune_ok(frame_max=8192), big_frame_header]):
        conn = new()
        conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok())
        conn.send_tune()
        conn.data_to_send()
        events = [e for data in reads for e in conn.receive_data(data)]
        assert [type(e[1]) for e in events] == [spec.ConnectionTuneOk]
        assert conn.frame_max == 8192 and conn.state == AWAIT_OPEN and conn.data_to_send() == b""


def test_frame_max_after_tune_is_the_negotiated_one():
    conn = opened(frame_max=131072)
    body = bytes(131072)
    data = ref.basic_publish(1) + ref.content_header_frame(1, len(body)) + ref.body_frame(1, body)
    assert [e[3] for e in conn.receive_data(data)] == [body]
    conn.receive_data(b"\x03\x00\x01" + u32(131073))
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0,
                      "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,131073,131064}")


@pytest.mark.parametrize("frame, text", [
    (ref.channel_open(1)[:-1] + b"\x00",
     "FRAME_ERROR - type 1, all octets = <<0,20,0,10,0>>: {invalid_frame_end_marker,0}"),
    # RabbitMQ 3.10's text, line break included
    (ref.queue_declare(1, "")[:-1] + b"\x00", "FRAME_ERROR - type 1, all octets = <<0,50,0,10,0,0,0,0,0,0,0,0>>: "
     "{invalid_frame_end_marker,\n" + " " * 53 + "0}"),
    (ref.HEARTBEAT[:-1] + b"\xcf", "FRAME_ERROR - type 8, all octets = <<>>: {invalid_frame_end_marker,207}"),
])
def test_bad_frame_end_is_501(frame, text):
    conn = opened()
    assert conn.receive_data(frame) == []
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0, text)


def test_unknown_frame_type_is_501():
    conn = opened()
    assert conn.receive_data(ref.frame(4, 1, b"abc")) == []
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0, "FRAME_ERROR - type 4, all octets = <<>>: unknown_frame")


def test_method_frame_shorter_than_its_ids_is_501():
    conn = opened()
    assert conn.receive_data(ref.frame(1, 1, b"\x00\x32\x00")) == []
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0, "FRAME_ERROR - method frame too short")


def test_unknown_method_is_503():
    conn = opened()
    assert conn.receive_data(ref.frame(1, 1, b"\x00\x32\x00\x63")) == []
    expect_hard_close(conn, spec.COMMAND_INVALID, 50, 99, "COMMAND_INVALID - unknown method 50.99")


def test_undecodable_method_is_501_with_its_argument_bytes_as_rabbitmq():
    """Issue 13: truncated method arguments were 502 SYNTAX_ERROR; RabbitMQ says 501 and shows them."""
    conn = opened()
    truncated = ref.queue_declare(1, "q")
    payload = truncated[7:-1][:-2]  # cut into the arguments table
    assert conn.receive_data(ref.frame(1, 1, payload)) == []
    expect_hard_close(conn, spec.FRAME_ERROR, 50, 10, "FRAME_ERROR - cannot decode <<0,0,1,113,0,0,0>>")


def test_cannot_decode_text_of_long_arguments_is_cut_like_rabbitmq():
    conn = opened()
    assert conn.receive_data(ref.frame(1, 1, b"\x00\x32\x00\x0a" + bytes(range(256)) * 2)) == []
    reply = expect_hard_close(conn, spec.FRAME_ERROR, 50, 10)
    # RabbitMQ 3.10's text, exactly (255 bytes, the last three "...")
    assert reply == ("FRAME_ERROR - cannot decode <<" + ",".join(map(str, range(77))) + ",7...").encode()
    assert len(reply) == 255


def test_deeply_nested_table_is_501_not_a_recursion_crash():
    conn = opened()
    value = b"V"
    for _ in range(5000):  # 5 bytes a level, well inside frame_max, far past the recursion limit
        value = b"A" + u32(len(value)) + value
    table = b"\x01k" + value
    payload = ref.method_payload(50, 10, [("short", 0), ("shortstr", "q")] + [("bit", False)] * 5)
    frame = ref.frame(1, 1, payload + u32(len(table)) + table)
    assert len(frame) < 131072
    assert conn.receive_data(frame) == []
    reply = expect_hard_close(conn, spec.FRAME_ERROR, 50, 10)
    assert reply.startswith(b"FRAME_ERROR - cannot decode <<0,0,1,113,0,")


def test_heartbeat_is_ignored():
    conn = opened()
    assert conn.receive_data(ref.HEARTBEAT * 3) == []
    assert conn.data_to_send() == b""
    assert conn.state == OPEN and not conn.should_close
    # also during the handshake
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER + ref.HEARTBEAT + ref.start_ok() + ref.HEARTBEAT)
    assert conn.data_to_send() == START and conn.state == AUTHENTICATING
    conn.send_tune()
    assert conn.receive_data(ref.HEARTBEAT) == []
    assert conn.data_to_send() == TUNE and conn.state == AWAIT_TUNE_OK


def test_heartbeat_on_non_zero_channel_closes_the_connection():
    # RabbitMQ (rabbit_reader: heartbeat -> unexpected_frame) answers 505, not 501
    conn = opened()
    assert conn.receive_data(ref.frame(8, 1, b"")) == []
    expect_hard_close(conn, spec.UNEXPECTED_FRAME, 0, 0, "UNEXPECTED_FRAME - type 8, all octets = <<>>")


# ---------------------------------------------------------------- channels
def test_method_on_unopened_channel_is_504():
    conn = opened(channels=(1,))
    assert conn.receive_data(ref.queue_declare(2)) == []
    expect_hard_close(conn, spec.CHANNEL_ERROR, 50, 10, "CHANNEL_ERROR - expected 'channel.open'")


def test_second_channel_open_is_504():
    conn = opened(channels=(1,))
    assert conn.receive_data(ref.channel_open(1)) == []
    expect_hard_close(conn, spec.CHANNEL_ERROR, 20, 10, "CHANNEL_ERROR - second 'channel.open' seen")


def test_channel_max_limits_the_number_of_open_channels():
    # RabbitMQ 3.10: channel_max counts open channels (channel numbers above it are fine)
    conn = opened(channel_max=3, channels=())
    events = conn.receive_data(ref.channel_open(1) + ref.channel_open(700) + ref.channel_open(65535))
    assert [e[0] for e in events] == [1, 700, 65535]
    # a closed channel frees its slot; a closing one does not
    conn.receive_data(ref.channel_close(700))
    assert conn.data_to_send() == ref.channel_close_ok(700)
    conn.close_channel(1, spec.NOT_FOUND, "NOT_FOUND - x")
    conn.data_to_send()
    assert [e[0] for e in conn.receive_data(ref.channel_open(5))] == [5]
    assert conn.receive_data(ref.channel_open(6)) == []
    expect_hard_close(conn, spec.NOT_ALLOWED, 0, 0,
                      "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)")


def test_client_channel_close_gets_close_ok():
    conn = opened(channels=(1, 2))
    events = conn.receive_data(ref.channel_close(1, 200, "bye"))
    assert events == [(1, spec.ChannelClose(200, "bye", 0, 0), None, None)]
    assert conn.data_to_send() == ref.channel_close_ok(1)
    assert conn.channels == {2: CH_OPEN}
    # the channel number can be reused
    assert [e[0] for e in conn.receive_data(ref.channel_open(1))] == [1]


def test_frames_on_a_closing_channel_are_dropped_until_close_ok():
    conn = opened(channels=(1, 2))
    conn.close_channel(1, spec.NOT_FOUND, "NOT_FOUND - no queue 'q' in vhost '/'", 50, 10)
    assert conn.data_to_send() == ref.frame(1, 1, ref.method_payload(20, 40, [
        ("short", 404), ("shortstr", "NOT_FOUND - no queue 'q' in vhost '/'"), ("short", 50), ("short", 10)]))
    assert conn.channels[1] == CH_CLOSING
    # the client had not seen the close yet: all of this on channel 1 is discarded
    late = (publish_frames(1, b"abcdef") + ref.queue_declare(1) + ref.channel_open(1)
            + ref.content_header_frame(1, 3) + ref.body_frame(1, b"xyz"))
    events = conn.receive_data(late + ref.queue_declare(2, "other"))
    assert [(e[0], type(e[1])) for e in events] == [(2, spec.QueueDeclare)]
    assert conn.data_to_send() == b""
    assert conn.state == OPEN
    # close-ok frees the channel: no event, nothing written
    assert conn.receive_data(ref.channel_close_ok(1)) == []
    assert conn.data_to_send() == b""
    assert 1 not in conn.channels
    assert [e[0] for e in conn.receive_data(ref.channel_open(1))] == [1]


def test_closing_a_channel_mid_content_drops_the_rest_of_it():
    conn = opened(channels=(1,))
    assert conn.receive_data(ref.basic_publish(1) + ref.content_header_frame(1, 6) + ref.body_frame(1, b"abc")) == []
    conn.close_channel(1, spec.PRECONDITION_FAILED, "PRECONDITION_FAILED - nope")
    conn.data_to_send()
    assert conn.receive_data(ref.body_frame(1, b"def")) == []
    assert conn.data_to_send() == b"" and conn.state == OPEN


def test_a_late_channel_open_on_a_closing_channel_is_dropped_even_at_channel_max():
    conn = opened(channel_max=1, channels=(1,))
    conn.close_channel(1, spec.NOT_FOUND, "NOT_FOUND - x")
    conn.data_to_send()
    assert conn.receive_data(ref.channel_open(1)) == []
    assert conn.data_to_send() == b"" and conn.state == OPEN and conn.channels == {1: CH_CLOSING}


def test_crossing_channel_close_on_a_closing_channel():
    conn = opened(channels=(1,))
    conn.close_channel(1, spec.NOT_FOUND, "NOT_FOUND - x")
    conn.data_to_send()
    assert conn.receive_data(ref.channel_close(1)) == []
    assert conn.data_to_send() == ref.channel_close_ok(1)
    assert conn.channels == {}


def test_close_channel_truncates_a_long_reply_text():
    conn = opened(channels=(1,))
    text = "NOT_FOUND - no queue '" + "q" * 255 + "' in vhost '/'"
    conn.close_channel(1, spec.NOT_FOUND, text, 50, 10)
    (ftype, ch, payload), = ref.split_frames(conn.data_to_send())
    assert (ftype, ch, ref.method_id_of(payload)) == (1, 1, (20, 40))
    code, reply, cid, mid = ref.decode_close(payload)
    assert (code, cid, mid) == (404, 50, 10)
    assert reply == text.encode()[:252] + b"..."  # RabbitMQ's cut


def test_close_channel_on_a_channel_that_is_not_open_does_nothing():
    conn = opened(channels=(1,))
    conn.close_channel(5, spec.NOT_FOUND, "x")
    assert conn.data_to_send() == b"" and conn.channels == {1: CH_OPEN}


# ----------------------------------------------------------------- content
def test_content_header_without_publish_is_505():
    conn = opened()
    assert conn.receive_data(ref.content_header_frame(1, 5)) == []
    expect_hard_close(conn, spec.UNEXPECTED_FRAME, 0, 0,
                      "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


def test_body_without_publish_is_505():
    conn = opened()
    assert conn.receive_data(ref.body_frame(1, b"x")) == []
    expect_hard_close(conn, spec.UNEXPECTED_FRAME, 0, 0,
                      "UNEXPECTED_FRAME - expected method frame, got non method frame instead")


@pytest.mark.parametrize("after_publish, text", [
    (ref.queue_declare(1), "expected content header for class 60, got non content header frame instead"),
    (ref.body_frame(1, b"x"), "expected content header for class 60, got non content header frame instead"),
    (ref.content_header_frame(1, 5, class_id=50), "expected content header for class 60, got one for class 50 instead"),
])
def test_wrong_frame_when_a_content_header_was_expected_is_505(after_publish, text):
    conn = opened()
    assert conn.receive_data(ref.basic_publish(1) + after_publish) == []
    expect_hard_close(conn, spec.UNEXPECTED_FRAME, 60, 40, "UNEXPECTED_FRAME - " + text)


@pytest.mark.parametrize("body", [b"", b"ab"])
@pytest.mark.parametrize("after_header", [ref.queue_declare(1), ref.content_header_frame(1, 5)])
@pytest.mark.parametrize("split", [False, True])
def test_wrong_frame_when_a_body_was_expected_is_505_with_rabbitmqs_text(after_header, body, split):
    """Issue 13: a missing body frame was reported as "expected content header"."""
    conn = opened()
    data = (ref.basic_publish(1) + ref.content_header_frame(1, 5) + (ref.body_frame(1, body) if body else b"")
            + after_header)
    if split:  # not on the publish fast path
        assert conn.receive_data(data[:20]) == []
        data = data[20:]
    assert conn.receive_data(data) == []
    expect_hard_close(conn, spec.UNEXPECTED_FRAME, 60, 40,
                      "UNEXPECTED_FRAME - expected content body, got non content body frame instead")


@pytest.mark.parametrize("bodies", [[b"abcdef"], [b"abc", b"def"], [b"ab", b"", b"cdef"]])
def test_body_longer_than_announced_closes(bodies):
    conn = opened()
    data = ref.basic_publish(1) + ref.content_header_frame(1, 5) + b"".join(ref.body_frame(1, b) for b in bodies)
    assert conn.receive_data(data) == []
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0,
                      "FRAME_ERROR - content body is longer than the 5 bytes its header announced")


def test_publish_with_empty_body_completes_on_the_header():
    conn = opened()
    props = ref.properties([("content_type", "shortstr")], {"content_type": "a/b"})
    events = conn.receive_data(ref.basic_publish(1, "ex", "rk", True) + ref.content_header_frame(1, 0, props=props))
    assert events == [(1, spec.BasicPublish(0, "ex", "rk", True, False), ref.header_payload(0, props=props), b"")]


def test_multi_frame_publish_in_tiny_chunks_assembles_one_event():
    conn = opened(frame_max=4096)
    body = bytes((i * 7 + 3) % 256 for i in range(10000))  # 4088 + 4088 + 1824
    props = (ref.u16(0x9000) + ref.shortstr("application/octet-stream") + ref.u8(2))
    data = publish_frames(1, body, frame_max=4096, props=props, routing_key="tiny")
    assert [(t, len(p)) for t, _, p in ref.split_frames(data)][2:] == [(3, 4088), (3, 4088), (3, 1824)]
    sizes = [1, 2, 3, 5, 7, 11, 1, 1]
    events, off, i = [], 0, 0
    while off < len(data):
        n = sizes[i % len(sizes)]
        got = conn.receive_data(data[off:off + n])
        off += n
        i += 1
        if off < len(data):
            assert got == [], f"event before the last byte (at {off})"
        events += got
    assert len(events) == 1
    ch, method, header, got_body = events[0]
    assert ch == 1
    assert method == spec.BasicPublish(0, "", "tiny", False, False)
    assert header == ref.header_payload(10000, props=props)
    assert type(got_body) is bytes and got_body == body
    assert conn.data_to_send() == b""
    assert conn.state == OPEN


def test_publishes_in_one_read_each_become_one_event_with_their_own_arguments():
    # the fast path takes method, header and body of a publish together and shares one event object
    # between publishes with the same exchange, routing key and bits
    conn = opened(channels=(1, 2))
    data = b"".join([
        ref.basic_publish(1, "ex", "a") + ref.content_header_frame(1, 3) + ref.body_frame(1, b"one"),
        ref.basic_publish(1, "ex", "a", True) + ref.content_header_frame(1, 3) + ref.body_frame(1, b"two"),
        ref.basic_publish(2, "ex", "a") + ref.content_header_frame(2, 0),
        ref.basic_publish(1, "ex", "a") + ref.content_header_frame(1, 5) + ref.body_frame(1, b"fo")
        + ref.body_frame(1, b"ur!"),
        ref.basic_publish(1, "", "b\u00e9") + ref.content_header_frame(1, 1) + ref.body_frame(1, b"5"),
    ])
    events = conn.receive_data(data)
    assert [(ch, m, h, b) for ch, m, h, b in events] == [
        (1, spec.BasicPublish(0, "ex", "a", False, False), ref.header_payload(3), b"one"),
        (1, spec.BasicPublish(0, "ex", "a", True, False), ref.header_payload(3), b"two"),
        (2, spec.BasicPublish(0, "ex", "a", False, False), ref.header_payload(0), b""),
        (1, spec.BasicPublish(0, "ex", "a", False, False), ref.header_payload(5), b"four!"),
        (1, spec.BasicPublish(0, "", "b\u00e9", False, False), ref.header_payload(1), b"5"),
    ]
    assert events[0][1] is events[2][1] is events[3][1] and events[1][1] is not events[0][1]
    assert events[4][1].ex_rk == b"\x00\x03b\xc3\xa9"
    assert all(type(b) is bytes for _, _, _, b in events)


def test_a_publish_cut_anywhere_gives_the_same_event():
    data = ref.basic_publish(1, "ex", "rk") + ref.content_header_frame(1, 4) + ref.body_frame(1, b"abcd")
    expected = [(1, spec.BasicPublish(0, "ex", "rk", False, False), ref.header_payload(4), b"abcd")]
    for cut in range(1, len(data)):
        conn = opened()
        events = conn.receive_data(data[:cut]) + conn.receive_data(data[cut:])
        assert events == expected, cut
        assert conn.data_to_send() == b"" and conn.state == OPEN


def test_an_oversized_content_header_right_after_a_publish_closes():
    conn = opened(frame_max=4096)
    header = ref.content_header_frame(1, 1, props=b"\x20\x00" + u32(5000) + b"x" * 5000)
    assert conn.receive_data(ref.basic_publish(1) + header + ref.body_frame(1, b"x")) == []
    expect_hard_close(conn, spec.FRAME_ERROR, 0, 0,
                      "FRAME_ERROR - type 2, all octets = <<>>: {frame_too_large,5018,4088}")


def test_content_on_two_channels_may_interleave():
    conn = opened(channels=(1, 2))
    data = (ref.basic_publish(1, routing_key="a") + ref.basic_publish(2, routing_key="b")
            + ref.content_header_frame(2, 2) + ref.content_header_frame(1, 3)
            + ref.body_frame(1, b"11") + ref.body_frame(2, b"22") + ref.body_frame(1, b"1"))
    events = conn.receive_data(data)
    assert [(e[0], e[1].routing_key, e[3]) for e in events] == [(2, "b", b"22"), (1, "a", b"111")]


def test_a_publish_without_arguments_is_501_also_as_the_last_bytes_of_a_read():
    """Issue 13: a basic.publish frame with only its method ids, last in a read, made the publish
    fast path index past the buffer (IndexError out of receive_data); RabbitMQ's answer is 501."""
    bare = bytes.fromhex("01 0001 00000004 003c0028 ce")
    for data in (bare, bare + ref.HEARTBEAT, ref.channel_open(2) + bare):
        conn = opened()
        events = conn.receive_data(data)
        if events:  # the channel.open before it is answered first
            assert [e[1].NAME for e in events] == ["channel.open"]
            conn.send_method(2, spec.ChannelOpenOk(b""))
            frames = ref.split_frames(conn.data_to_send())
            assert [(ch, ref.method_id_of(p)) for _t, ch, p in frames] == [(2, (20, 11)), (0, (10, 50))]
            assert ref.decode_close(frames[1][2]) == (501, b"FRAME_ERROR - cannot decode <<>>", 60, 40)
            continue
        expect_hard_close(conn, spec.FRAME_ERROR, 60, 40, "FRAME_ERROR - cannot decode <<>>")


# ------------------------------------------------------------ connection close
def test_client_connection_close_gets_close_ok():
    conn = opened()
    events = conn.receive_data(ref.connection_close(320, "shutdown", 0, 0))
    assert events == [(0, spec.ConnectionClose(320, "shutdown", 0, 0), None, None)]
    assert conn.data_to_send() == CLOSE_OK
    assert conn.should_close and conn.state == CLOSED
    assert conn.close_reason == (320, "shutdown")
    # the connection is over: nothing is parsed or written any more
    assert conn.receive_data(ref.queue_declare(1) + ref.connection_close()) == []
    assert conn.data_to_send() == b""


def test_client_connection_close_during_handshake():
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER)
    conn.data_to_send()
    conn.receive_data(ref.connection_close(200, "never mind"))
    assert conn.data_to_send() == CLOSE_OK
    assert conn.should_close


def test_server_close_then_crossing_client_close():
    conn = opened()
    conn.close(spec.CONNECTION_FORCED, "CONNECTION_FORCED - broker shutdown")
    (ftype, ch, payload), = ref.split_frames(conn.data_to_send())
    assert ref.decode_close(payload) == (320, b"CONNECTION_FORCED - broker shutdown", 0, 0)
    assert conn.state == CLOSING and not conn.should_close
    assert conn.receive_data(ref.connection_close(200, "client bye")) == []
    assert conn.data_to_send() == CLOSE_OK
    assert conn.should_close and conn.state == CLOSED


def test_server_close_is_sent_once():
    conn = opened()
    conn.close(spec.CONNECTION_FORCED, "CONNECTION_FORCED - a")
    conn.close(spec.INTERNAL_ERROR, "INTERNAL_ERROR - b")
    assert len(ref.split_frames(conn.data_to_send())) == 1
    assert conn.close_reason == (320, "CONNECTION_FORCED - a")


def test_server_close_truncates_a_long_reply_text():
    conn = opened()
    text = "NOT_ALLOWED - vhost " + "\u00e9" * 200 + " not found"
    conn.close(spec.NOT_ALLOWED, text, 10, 40)
    (ftype, ch, payload), = ref.split_frames(conn.data_to_send())
    code, reply, cid, mid = ref.decode_close(payload)
    assert (code, cid, mid) == (530, 10, 40)
    assert len(reply) == 255  # 252 bytes and "...", as RabbitMQ
    assert reply.decode("utf-8") == text.encode()[:252].decode() + "..."
    conn = opened()
    conn.close(spec.NOT_ALLOWED, "x" + text, 10, 40)  # 252 bytes would split a two-byte character
    code, reply, cid, mid = ref.decode_close(ref.split_frames(conn.data_to_send())[0][2])
    assert reply.decode("utf-8") == ("x" + text).encode()[:251].decode() + "..." and len(reply) == 254


def test_close_before_the_header_just_closes_the_socket():
    conn = new()
    conn.close(spec.CONNECTION_FORCED, "CONNECTION_FORCED - x")
    assert conn.data_to_send() == b"" and conn.should_close and conn.state == CLOSED


def test_abort_closes_without_a_close_method():
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok())
    conn.data_to_send()
    conn.abort()
    assert conn.should_close and conn.state == CLOSED and conn.data_to_send() == b""
    assert conn.receive_data(ref.tune_ok()) == []


def test_on_output_fires_once_per_empty_to_pending_transition():
    conn = new()
    calls = []
    conn.on_output = lambda: calls.append(conn.has_output)
    conn.receive_data(ref.PROTOCOL_HEADER)
    assert calls == [False] and conn.has_output
    conn.send_heartbeat()
    assert calls == [False]  # output was already pending
    conn.data_to_send()
    assert not conn.has_output
    conn.receive_data(ref.start_ok())
    conn.send_tune()
    assert calls == [False, False]


# ------------------------------------------------------------- credentials
AMQPLAIN = (b"\x05LOGIN" + b"S" + u32(5) + b"guest" + b"\x08PASSWORD" + b"S" + u32(6) + b"s3cr\xc3\xa9")


@pytest.mark.parametrize("mechanism, response, expected", [
    ("PLAIN", b"\x00guest\x00guest", ("guest", "guest")),
    ("PLAIN", b"admin\x00user\x00pa ss", ("user", "pa ss")),
    ("PLAIN", b"\x00\xc3\xa9\x00", ("\u00e9", "")),
    ("PLAIN", bytearray(b"\x00a\x00b"), ("a", "b")),
    ("PLAIN", b"", None),
    ("PLAIN", b"guest", None),
    ("PLAIN", b"\x00guest", None),
    ("PLAIN", b"\x00a\x00b\x00c", None),
    ("PLAIN", b"\x00\xff\x00x", None),
    ("AMQPLAIN", AMQPLAIN, ("guest", "s3cr\u00e9")),
    ("AMQPLAIN", b"\x05LOGINx" + u32(1) + b"u" + b"\x08PASSWORDx" + u32(1) + b"p", ("u", "p")),
    ("AMQPLAIN", b"\x05LOGINS" + u32(1) + b"u", None),                       # no password
    ("AMQPLAIN", b"\x05LOGINI" + u32(1) + b"\x08PASSWORDS" + u32(0), None),  # login not a string
    ("AMQPLAIN", b"\x05LOGINx" + u32(1) + b"\xff" + b"\x08PASSWORDS" + u32(0), None),
    ("AMQPLAIN", b"\x05LOGINS" + u32(50) + b"u", None),
    ("AMQPLAIN", b"\x05LOGINZ", None),
    ("AMQPLAIN", b"\x00guest\x00guest", None),
    ("AMQPLAIN", b"", None),
    ("EXTERNAL", b"\x00guest\x00guest", None),
    ("plain", b"\x00guest\x00guest", None),
])
def test_parse_credentials(mechanism, response, expected):
    assert parse_credentials(mechanism, response) == expected


def test_parse_credentials_deeply_nested_amqplain_is_none():
    value = b"V"
    for _ in range(5000):
        value = b"A" + u32(len(value)) + value
    assert parse_credentials("AMQPLAIN", b"\x05LOGIN" + value) is None


# ------------------------------------------------------------ the transition tables
def test_states_are_ordered_and_exported_by_name():
    assert list(ConnectionState) == [AWAIT_HEADER, AWAIT_START_OK, AUTHENTICATING, AWAIT_TUNE_OK, AWAIT_OPEN,
                                     OPENING, OPEN, CLOSING, CLOSED]
    assert AWAIT_HEADER < AWAIT_START_OK < AUTHENTICATING < AWAIT_TUNE_OK < AWAIT_OPEN < OPENING < OPEN < CLOSING \
        < CLOSED
    assert list(ChannelState) == [CH_CLOSED, CH_OPEN, CH_CLOSING]


def test_every_state_that_parses_methods_says_what_any_other_method_does():
    for state in ConnectionState:
        if state not in (AWAIT_HEADER, CLOSED):  # no frames are parsed in these two
            assert (state, ANY) in CONNECTION_TRANSITIONS, state
    for state in ChannelState:
        assert (state, ANY) in CHANNEL_TRANSITIONS, state
    for table, states in ((CONNECTION_TRANSITIONS, ConnectionState), (CHANNEL_TRANSITIONS, ChannelState)):
        for (state, _), (next_state, _) in table.items():
            assert state in states and (next_state is None or next_state in states)


@pytest.mark.parametrize("send", ["send_tune", "send_open_ok"])
def test_a_handshake_send_out_of_its_state_is_a_programming_error(send):
    conn = opened()
    with pytest.raises(RuntimeError, match=f"{send} is not allowed in state OPEN"):
        getattr(conn, send)()
    assert conn.state == OPEN and conn.data_to_send() == b""


def test_a_late_send_tune_does_not_take_a_closing_connection_back_into_the_handshake():
    # start-ok and a bad frame in one read: the connection is closing when the broker answers start-ok
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER)
    conn.data_to_send()
    events = conn.receive_data(ref.start_ok() + ref.frame(4, 0, b""))
    assert [type(e[1]) for e in events] == [spec.ConnectionStartOk]
    assert conn.state == CLOSING
    conn.send_tune()  # the broker's answer to the start-ok event
    assert conn.state == CLOSING
    conn.data_to_send()
    assert conn.receive_data(CLOSE_OK) == []
    assert conn.state == CLOSED and conn.should_close


def test_events_are_4_tuples_whose_fields_event_names():
    conn = opened()
    data = ref.basic_publish(1, "ex", "rk") + ref.content_header_frame(1, 2) + ref.body_frame(1, b"hi")
    (e,) = conn.receive_data(data)
    ch, method, header, body = e
    view = Event(*e)
    assert (view.channel, view.method, view.header, view.body) == (ch, method, header, body) == (
        1, spec.BasicPublish(0, "ex", "rk", False, False), ref.header_payload(2), b"hi")


def test_a_second_start_ok_or_open_while_the_broker_decides_is_refused():
    """The broker answers start-ok (tune) and connection.open (open-ok) after its own checks; a client
    that sends either again meanwhile breaks the handshake (and must not make the broker answer twice)."""
    conn = new()
    events = conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok() + ref.start_ok())
    assert len(events) == 1 and conn.state == CLOSING
    assert b"connection.start-ok not expected during the handshake" in conn.data_to_send()
    conn = new()
    conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok())
    conn.send_tune()
    events = conn.receive_data(ref.tune_ok(100, 65536, 30) + ref.connection_open("/") + ref.connection_open("/"))
    assert len(events) == 2 and conn.state == CLOSING
