"""Input refused at the door (issue 13): malformed frames, properties that do not decode, messages
larger than max_message_size.  Raw sockets (rawamqp.RawClient) send what no client library would;
what the broker answers (reply codes and texts of the closes, the replies before them) is compared
with RabbitMQ 3.10's, recorded in golden/test_malformed.json."""
from __future__ import annotations

import struct

import pytest

from .rawamqp import (
    RawClient, basic_publish, body, channel_open, content_header, frame, method, queue_declare, shortstr,
)

def tbl(entries: bytes) -> bytes:
    return struct.pack(">I", len(entries)) + entries


def raw(env) -> RawClient:
    c = RawClient(env.target.url)
    c.send(channel_open(1))
    assert c.replies(2, until=lambda r: r[1] == "channel.open-ok")[-1][1] == "channel.open-ok"
    return c


def message_count(env, q: str) -> int:
    return env.channel().queue_declare(q, passive=True).method.message_count


def replies_to(env, label: str, data: bytes, timeout: float = 3.0, summary=lambda got: got, **kw) -> list:
    """Send ``data`` on a fresh raw connection (channel 1 open); record ``summary(replies)``."""
    c = raw(env)
    try:
        c.send(data)
        got = c.replies(timeout, **kw)
    finally:
        c.close()
    env.record(label, summary(got))
    return got


def opens_then_close(got: list) -> dict:
    return {"open-oks": [r[1] for r in got[:-1]].count("channel.open-ok"), "replies": len(got), "last": got[-1]}


# ------------------------------------------------------------------ framing
def test_malformed_method_frames(differ):
    def scenario(env):
        # issue 13 item 4: a basic.publish without argument bytes (last bytes of the read)
        replies_to(env, "bare publish", bytes.fromhex("01 0001 00000004 003c0028 ce"))
        # item 6: truncated arguments are 501 (WarrenMQ said 502)
        replies_to(env, "truncated queue.declare", method(1, 50, 10, b"\x00\x00\x05abc"))
        replies_to(env, "extra argument bytes", method(1, 50, 10, b"\x00\x00" + shortstr("") + b"\x08" + tbl(b"")
                                                       + b"\x00"))
        # a reply text longer than 255 bytes is cut, not an encoding error
        replies_to(env, "long undecodable arguments", method(1, 50, 10, bytes(range(256)) * 2))
        replies_to(env, "content header too short", basic_publish(1) + frame(2, 1, b"\x00\x3c\x00"))
        replies_to(env, "bad frame end", queue_declare(1, "")[:-1] + b"\x00")
        replies_to(env, "bad frame end, longer frame", queue_declare(1, "x" * 20)[:-1] + b"\x01")
    differ(scenario)


def test_content_frames_out_of_order(differ):
    def scenario(env):
        declare = method(1, 50, 10, b"\x00\x00" + shortstr("") + b"\x08" + tbl(b""))
        # item 6: a missing body frame (the header, then a method)
        replies_to(env, "missing body", basic_publish(1) + content_header(1, 5) + declare)
        replies_to(env, "missing rest of body", basic_publish(1) + content_header(1, 5) + body(1, b"ab") + declare)
        replies_to(env, "missing header", basic_publish(1) + declare)
        replies_to(env, "header of another class",
                   basic_publish(1) + frame(2, 1, struct.pack(">HHQH", 50, 0, 3, 0)))
        replies_to(env, "header without publish", content_header(1, 3))
        replies_to(env, "body without publish", body(1, b"abc"))
    differ(scenario)


def test_replies_before_a_framing_error_go_out_first(differ):
    """Issue 13 item 5: one read with 2,000 channel.open and then a bad frame end: every open-ok,
    then connection.close (WarrenMQ sent the close first)."""
    def scenario(env):
        data = b"".join(channel_open(ch) for ch in range(2, 2002)) + channel_open(2002)[:-1] + b"\x00"
        replies_to(env, "opens then a bad frame end", data, timeout=5.0, summary=opens_then_close)
        # past channel_max (2047, with channel 1 open): the open-oks of the 2,046 that fit, then 530
        data = b"".join(channel_open(ch) for ch in range(2, 2102))
        replies_to(env, "2,100 opens", data, timeout=5.0, summary=opens_then_close)
    differ(scenario)


# ------------------------------------------------------------------ properties
BAD_PROPERTIES = {
    # issue 13 item 3: a headers table holding an unknown field type 'Z', then delivery-mode 2
    "issue example": (0x3000, bytes.fromhex("00000007016B5A0000000002")),
    "unknown tag U": (0x2000, tbl(b"\x01kU" + b"\x00" * 8)),
    "array holding Z": (0x2000, tbl(b"\x01kA" + struct.pack(">I", 1) + b"Z")),
    "table longer than the properties": (0x2000, struct.pack(">I", 10) + b"\x01kV"),
    "nested table with Z": (0x2000, tbl(b"\x01kF" + tbl(b"\x01jZ"))),
    "NaN double": (0x2000, tbl(b"\x01kd\x7f\xf8" + b"\x00" * 6)),
    "infinite float": (0x2000, tbl(b"\x01kf\x7f\x80\x00\x00")),
    "truncated short string": (0x8000, b"\x05ab"),
    "bytes after the last property": (0x1000, b"\x02\x00"),
    "flags without the properties": (0x9000, b""),
}

GOOD_PROPERTIES = {
    "unsigned long L": (0x2000, tbl(b"\x01kL" + b"\x00" * 8)),
    "nested table and array": (0x2000, tbl(b"\x01kF" + tbl(b"\x01jA" + tbl(b"I\x00\x00\x00\x01V")))),
    "every simple tag": (0x2000, tbl(b"".join(b"\x01" + t + t + v for t, v in [
        (b"t", b"\x01"), (b"b", b"\xff"), (b"B", b"\xff"), (b"s", b"\x00\x01"), (b"u", b"\x00\x01"),
        (b"I", b"\x00" * 4), (b"i", b"\x00" * 4), (b"l", b"\x00" * 8), (b"f", b"\x3f\x80\x00\x00"),
        (b"d", b"\x3f\xf0" + b"\x00" * 6), (b"D", b"\x02\x00\x00\x00\x05"), (b"T", b"\x00" * 8), (b"V", b""),
        (b"S", b"\x00\x00\x00\x01a"), (b"x", b"\x00\x00\x00\x00")]))),
    "invalid UTF-8 in a short string": (0x8000, b"\x02\xff\xfe"),
    "empty header key": (0x2000, tbl(b"\x00V")),
}


@pytest.mark.parametrize("case", sorted(BAD_PROPERTIES))
def test_properties_that_do_not_decode_are_refused_and_not_stored(differ, case):
    flags, props = BAD_PROPERTIES[case]

    def scenario(env):
        q = env.queue("props")
        env.channel().queue_declare(q)
        # (RabbitMQ's channel fails asynchronously: only the close is compared)
        replies_to(env, "publish", basic_publish(1, "", q) + content_header(1, 1, flags, props) + body(1, b"x"),
                   summary=lambda got: [r for r in got if r[1] != "channel.open-ok"])
        env.record("stored", message_count(env, q))
    differ(scenario)


@pytest.mark.parametrize("case", sorted(GOOD_PROPERTIES))
def test_unusual_properties_that_decode_are_stored(differ, case):
    flags, props = GOOD_PROPERTIES[case]

    def scenario(env):
        q = env.queue("props")
        env.channel().queue_declare(q)
        # confirmed, so that RabbitMQ's queue has it when the passive declare counts
        replies_to(env, "publish", method(1, 85, 10, b"\x00") + basic_publish(1, "", q)
                   + content_header(1, 1, flags, props) + body(1, b"x"),
                   until=lambda r: r[1] in ("basic.ack", "basic.nack"))
        env.record("stored", message_count(env, q))
    differ(scenario)


# ------------------------------------------------------------------ message size
MAX = 134217728  # the default max_message_size of both brokers (128 MiB)


def _body_frames(n: int) -> bytes:
    chunk = b"x" * 131064
    return b"".join(body(1, chunk) for _ in range(n // 131064)) + body(1, b"x" * (n % 131064))


def test_message_larger_than_max_message_size_closes_the_channel(differ):
    """Issue 13 item 1: 129 MiB are refused with 406 (RabbitMQ after the body, WarrenMQ at the header),
    the channel is closed, the connection stays, nothing is stored."""
    def scenario(env):
        q = env.queue("big")
        env.channel().queue_declare(q)
        c = raw(env)
        try:
            n = 135266304
            c.send(basic_publish(1, "", q) + content_header(1, n))
            c.send(_body_frames(n))
            c.send(channel_open(2))
            env.record("129 MiB", c.replies(20, until=lambda r: r[1] == "channel.open-ok"))
        finally:
            c.close()
        env.record("stored", message_count(env, q))
    differ(scenario)
