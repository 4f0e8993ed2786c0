"""The fuzz cases (hypothesis strategies), shared by the sans-I/O fuzz tests and the socket soak.

A case is ``(prefix, data, sizes)``: where the client starts (``"start"``: nothing sent yet, the
bytes begin with the protocol header; ``"open"``: after a completed handshake, with channel 1 open),
the bytes it sends, and how they are cut into writes (``sizes`` cycled; empty: one write).  The
bytes are a sequence of frames from a vocabulary of valid ones (channel, queue and basic methods,
publishes with valid or broken properties, in one or several body frames, heartbeats, closes), then
possibly mutated (bytes replaced, inserted, deleted, the tail cut off), or plain random bytes.
"""
from __future__ import annotations

import struct

import amqp_reference as ref
from hypothesis import strategies as st

from warrenmq.protocol import spec

CHANNELS = st.sampled_from([1, 1, 1, 2, 3, 0, 7, 65535])
SHORT_NAMES = st.sampled_from(["", "q", "amq.direct", "x" * 255])


def _tbl(entries: bytes) -> bytes:
    return struct.pack(">I", len(entries)) + entries


PROPERTIES = st.one_of(
    st.just(b"\x00\x00"),
    st.just(b"\x10\x00\x02"),                                       # delivery-mode 2
    st.builds(lambda ct, h: spec.BasicProperties(content_type=ct, headers=h).encode(),
              st.sampled_from([None, "text/plain"]),
              st.one_of(st.none(), st.dictionaries(st.sampled_from(["a", "b"]), st.integers(-5, 5), max_size=2))),
    st.just(bytes.fromhex("3000") + bytes.fromhex("00000007016B5A0000000002")),  # issue 13's
    st.just(b"\x20\x00" + _tbl(b"\x01kd\x7f\xf8" + b"\x00" * 6)),  # NaN
    st.binary(max_size=24).map(lambda b: b"\xff\xfc" + b),          # every flag, random bytes
)


@st.composite
def publish(draw):
    ch = draw(CHANNELS)
    body = draw(st.binary(max_size=40))
    announced = draw(st.one_of(st.just(len(body)), st.just(len(body)), st.integers(0, 64),
                               st.just(200 * 1024 * 1024)))
    cut = draw(st.integers(0, len(body)))
    parts = [p for p in (body[:cut], body[cut:]) if p]
    return (ref.basic_publish(ch, routing_key=draw(SHORT_NAMES)) + ref.content_header_frame(
        ch, announced, props=draw(PROPERTIES)) + b"".join(ref.body_frame(ch, p) for p in parts))


@st.composite
def method(draw):
    ch = draw(CHANNELS)
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return ref.channel_open(ch)
    if kind == 1:
        return ref.channel_close(ch)
    if kind == 2:
        return ref.channel_close_ok(ch)
    if kind == 3:
        return ref.queue_declare(ch, draw(SHORT_NAMES))
    if kind == 4:  # basic.ack (the parser's second fast path)
        return ref.frame(1, ch, struct.pack(">HHQB", 60, 80, draw(st.integers(0, 5)), draw(st.integers(0, 3))))
    if kind == 5:  # basic.qos
        return ref.frame(1, ch, struct.pack(">HHIHB", 60, 10, 0, draw(st.integers(0, 10)), 0))
    if kind == 6:  # an unknown or argument-less method
        return ref.frame(1, ch, struct.pack(">HH", draw(st.sampled_from([60, 50, 20, 10, 99])),
                                            draw(st.integers(0, 130))))
    if kind == 7:
        return ref.HEARTBEAT
    if kind == 8:
        return ref.connection_close()
    return ref.CONNECTION_CLOSE_OK


FRAMES = st.lists(st.one_of(method(), publish(), publish()), max_size=10).map(b"".join)


@st.composite
def mutated(draw, data):
    data = bytearray(data)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.integers(0, 3))
        i = draw(st.integers(0, len(data)))
        if op == 0 and i < len(data):
            data[i] = draw(st.integers(0, 255))
        elif op == 1:
            data[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == 2:
            del data[i:i + draw(st.integers(1, 8))]
        else:
            del data[i:]
    return bytes(data)


@st.composite
def cases(draw):
    prefix = draw(st.sampled_from(["open", "open", "open", "start"]))
    if draw(st.integers(0, 9)) == 0:
        data = draw(st.binary(max_size=200))
    else:
        data = draw(FRAMES)
        if prefix == "start":
            data = (ref.PROTOCOL_HEADER + ref.start_ok()) + data
        if draw(st.booleans()):
            data = draw(mutated(data))
    sizes = draw(st.one_of(st.just([]), st.lists(st.integers(1, 64), min_size=1, max_size=4)))
    return prefix, data, sizes


def chunks(data: bytes, sizes: list) -> list:
    if not sizes:
        return [data]
    out, off, i = [], 0, 0
    while off < len(data):
        n = sizes[i % len(sizes)]
        out.append(data[off:off + n])
        off += n
        i += 1
    return out
