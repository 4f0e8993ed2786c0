"""send_delivery (the hot path) produces exactly the frames of the general content encoder."""
import struct

import pytest

from warrenmq.protocol import spec
from warrenmq.protocol.codec import encode_shortstr
from warrenmq.protocol.connection import ServerConnection
from warrenmq.protocol.frames import content_frames
from warrenmq.protocol.properties import content_header


@pytest.mark.parametrize("size", [0, 1, 4096 - 9, 4096 - 8, 4096 - 7, 10000])
@pytest.mark.parametrize("redelivered", [False, True])
def test_send_delivery_matches_the_general_encoder(size, redelivered):
    conn = ServerConnection({})
    conn.frame_max = 4096
    prefix = struct.pack(">HH", 60, 60) + encode_shortstr("ctag")
    ex_rk = encode_shortstr("ex") + encode_shortstr("rk")
    header = content_header(spec.BasicProperties(content_type="text/plain"), size)
    body = bytes(range(256)) * (size // 256) + bytes(size % 256)
    woken = []
    conn.on_output = lambda: woken.append(1)
    conn.send_delivery(7, prefix, 99, redelivered, ex_rk, header, body)
    expected = content_frames(7, prefix + struct.pack(">QB", 99, redelivered) + ex_rk, header, body, 4096)
    assert conn.data_to_send() == b"".join(expected)
    assert woken == [1]
    # the method frame decodes as the basic.deliver it claims to be
    frame = b"".join(expected)
    ftype, ch, n = struct.unpack_from(">BHI", frame)
    assert (ftype, ch) == (1, 7)
    m = spec.BasicDeliver.decode(frame[11:7 + n], 0)
    assert m == spec.BasicDeliver("ctag", 99, redelivered, "ex", "rk")
    if size == 0:  # no body frame for an empty body, as RabbitMQ
        assert b"".join(expected).count(b"\x03\x00\x07") == 0
