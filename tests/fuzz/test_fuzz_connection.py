"""Fuzzing the sans-I/O ServerConnection (issue 13): generated frame sequences, mutated valid frames
and split writes (cases.py), answered by a minimal broker (Responder).  Asserts: nothing raises out
of receive_data; every connection.close carries a hard-error code from the spec and a text RabbitMQ
would format; nothing but a close-ok follows a connection.close; feeding the bytes in pieces gives
the same output as feeding them at once, up to the first close.

Deterministic (hypothesis derandomized, no example database) and bounded: about 20 s in CI.  More
examples: WARRENMQ_HYPOTHESIS_SCALE=10; the same cases over real sockets: test_soak.py (``-m slow``).
"""
from __future__ import annotations

import os

import amqp_reference as ref
from cases import cases, chunks
from hypothesis import HealthCheck, given, settings

from warrenmq.protocol import spec
from warrenmq.protocol.connection import CLOSED, CLOSING, ServerConnection

SCALE = max(1, int(os.environ.get("WARRENMQ_HYPOTHESIS_SCALE", "1")))
FUZZ = settings(max_examples=1500 * SCALE, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
MAX_MESSAGE_SIZE = 1024  # small, so that the refusal path is exercised


class Responder:
    """What the broker does with the events, reduced to what moves the state machine: logs in,
    opens the vhost and channels, refuses oversized messages (406 on the channel), nothing else."""

    def __init__(self, conn: ServerConnection):
        self.conn = conn

    def handle(self, events: list) -> None:
        conn = self.conn
        for ch, method, header, body in events:
            assert isinstance(method, spec.Method)
            if isinstance(method, spec.BasicPublish):
                assert isinstance(header, bytes)
                if body is None:  # refused at its header
                    assert int.from_bytes(header[4:12], "big") > MAX_MESSAGE_SIZE
                    conn.close_channel(ch, spec.PRECONDITION_FAILED, "PRECONDITION_FAILED - too large", 60, 40)
                    continue
                assert int.from_bytes(header[4:12], "big") == len(body) <= MAX_MESSAGE_SIZE
            else:
                assert header is None and body is None
            if isinstance(method, spec.ConnectionStartOk):
                conn.send_tune()
            elif isinstance(method, spec.ConnectionOpen):
                conn.send_open_ok()
            elif isinstance(method, spec.ChannelOpen):
                conn.send_method(ch, spec.ChannelOpenOk(b""))


def new_connection(prefix: str) -> ServerConnection:
    conn = ServerConnection({"product": "fuzz"}, max_message_size=MAX_MESSAGE_SIZE)
    if prefix == "open":
        ref.handshake(conn, frame_max=4096, channels=(1,))
    return conn


def run(prefix: str, pieces: list) -> tuple:
    conn = new_connection(prefix)
    responder = Responder(conn)
    out = b""
    for piece in pieces:
        responder.handle(conn.receive_data(piece))  # must never raise
        out += conn.data_to_send()
        if conn.should_close:
            break
    return conn, out


def check(conn: ServerConnection, out: bytes, prefix: str) -> list:
    """The invariants of the output; returns its frames as ``(channel, method ids or None)``."""
    if out == ref.PROTOCOL_HEADER:  # a wrong protocol header: ours, and the socket closes
        assert prefix == "start" and conn.should_close
        return []
    if prefix == "start" and out:
        assert out.startswith(b"\x01\x00\x00")  # connection.start
    frames = ref.split_frames(out)  # asserts the framing of everything written
    ids = [(ch, ref.method_id_of(p) if t == 1 else None) for t, ch, p in frames]
    close_at = [i for i, f in enumerate(ids) if f == (0, (10, 50))]
    assert len(close_at) <= 1, "two connection.close written"
    if close_at:
        code, text, _cid, _mid = ref.decode_close(frames[close_at[0]][2])
        assert code in spec.HARD_ERRORS, (code, text)
        assert text == spec.REPLY_NAMES[code].encode() or text.startswith(spec.REPLY_NAMES[code].encode() + b" - ")
        assert len(text) <= 255
        assert all(f == (0, (10, 51)) for f in ids[close_at[0] + 1:]), "a frame after connection.close"
        assert conn.state in (CLOSING, CLOSED)
    for t, ch, p in frames:
        if t == 1 and ref.method_id_of(p) == (20, 40):
            assert ref.decode_close(p)[0] in spec.SOFT_ERRORS
    if conn.state == CLOSING:
        assert close_at
    assert conn.should_close == (conn.state == CLOSED)
    return ids


@FUZZ
@given(cases())
def test_no_exception_escapes_and_every_close_is_well_formed(case):
    prefix, data, sizes = case
    conn, out = run(prefix, chunks(data, sizes))
    check(conn, out, prefix)


@FUZZ
@given(cases())
def test_split_writes_give_the_output_of_one_write(case):
    prefix, data, sizes = case
    whole_conn, whole = run(prefix, [data])
    whole_ids = check(whole_conn, whole, prefix)
    conn, out = run(prefix, chunks(data, sizes or [1]))
    ids = check(conn, out, prefix)
    if (0, (10, 50)) not in whole_ids:
        # (a client connection.close is answered in either case, and ends both the same way)
        assert out == whole
        assert conn.state == whole_conn.state and conn.channels == whole_conn.channels
        assert conn.receiving_bytes == whole_conn.receiving_bytes
    else:  # the same replies and the same close; later pieces are read in the closing state
        n = whole_ids.index((0, (10, 50))) + 1
        assert ids[:n] == whole_ids[:n]
        assert ref.split_frames(out)[:n] == ref.split_frames(whole)[:n]
