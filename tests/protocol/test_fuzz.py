"""Fuzzing ServerConnection.receive_data: it never raises, whatever it is fed, however it is chunked.

After any input the connection has either kept going (no close written) or
written exactly one ``connection.close`` with a hard-error code (or answered a
client's close / a bad protocol header and set ``should_close``).  Feeding the
same bytes in random chunks behaves like feeding them at once.
"""
import amqp_reference as ref
import pytest
from hypothesis import given
from hypothesis import strategies as st

from warrenmq.protocol import spec
from warrenmq.protocol.connection import CLOSED, CLOSING, ServerConnection

SPEC = ref.load_spec()
ARGS = {(c["id"] << 16) | m["id"]: args for c, m, args in ref.methods_of(SPEC)}
METHOD_INDEXES = sorted(spec.METHODS)


# ---------------------------------------------------------------- prefixes
def _fresh():
    return ServerConnection({"product": "fuzz"})


def _after_tune(conn):
    conn.receive_data(ref.PROTOCOL_HEADER + ref.start_ok())
    conn.send_tune()
    return conn


def _open_mid_content(conn):
    ref.handshake(conn, frame_max=4096, channels=(1, 2))
    conn.receive_data(ref.basic_publish(1) + ref.content_header_frame(1, 10) + ref.body_frame(1, b"abc"))
    return conn


def _closing_channel(conn):
    ref.handshake(conn, channels=(1, 2))
    conn.close_channel(1, spec.NOT_FOUND, "NOT_FOUND - fuzz")
    return conn


def _server_closing(conn):
    ref.handshake(conn, channels=(1,))
    conn.close(spec.CONNECTION_FORCED, "CONNECTION_FORCED - fuzz")
    return conn


PREFIXES = {
    "start": lambda c: c,
    "after-header": lambda c: (c.receive_data(ref.PROTOCOL_HEADER), c)[1],
    "after-start-ok": lambda c: (c.receive_data(ref.PROTOCOL_HEADER + ref.start_ok()), c)[1],
    "after-tune": _after_tune,
    "open": lambda c: ref.handshake(c, frame_max=4096, channels=(1, 2)),
    "open-mid-content": _open_mid_content,
    "closing-channel": _closing_channel,
    "server-closing": _server_closing,
}


def prepared(prefix):
    conn = PREFIXES[prefix](_fresh())
    already_closing = conn.state in (CLOSING, CLOSED)
    conn.data_to_send()
    return conn, already_closing


# -------------------------------------------------------------- strategies
CHANNELS = st.one_of(st.sampled_from([0, 1, 2, 3]), st.integers(0, 0xFFFF))


@st.composite
def method_payloads(draw):
    index = draw(st.sampled_from(METHOD_INDEXES))
    args = ARGS.get(index)
    if args is None or draw(st.integers(0, 4)) == 0:
        return index.to_bytes(4, "big") + draw(st.binary(max_size=40))
    values = [(t, draw(ref.TYPED[t])) for _, t in args]
    return ref.method_payload(index >> 16, index & 0xFFFF, values)


@st.composite
def header_payloads(draw):
    class_id = draw(st.sampled_from([60, 60, 60, 50, 0]))
    size = draw(st.one_of(st.integers(0, 20), st.integers(0, 2**64 - 1)))
    props = draw(st.one_of(st.just(b"\x00\x00"), st.binary(max_size=20)))
    return ref.header_payload(size, class_id, props)


@st.composite
def frames(draw):
    ftype = draw(st.one_of(st.sampled_from([1, 1, 1, 2, 3, 8]), st.integers(0, 255)))
    payload = draw({1: method_payloads(), 2: header_payloads()}.get(ftype, st.binary(max_size=30)))
    ch = draw(CHANNELS)
    data = ref.frame(ftype, ch, payload)
    if draw(st.integers(0, 15)) == 0:  # occasionally break the frame end or the size
        data = data[:-1] + draw(st.binary(min_size=1, max_size=1))
    if draw(st.integers(0, 15)) == 0:
        data = data[:3] + draw(st.binary(min_size=4, max_size=4)) + data[7:]
    return data


@st.composite
def publishes(draw, valid=False):
    """publish + header + body frames; unless ``valid``, the announced size may be wrong."""
    ch = draw(st.sampled_from([1, 2]))
    body = draw(st.binary(max_size=50))
    announced = len(body) if valid else draw(st.one_of(st.just(len(body)), st.integers(0, 60)))
    pieces = draw(st.lists(st.integers(0, 50), max_size=3))
    cuts = sorted(min(p, len(body)) for p in pieces)
    parts = [body[a:b] for a, b in zip([0] + cuts, cuts + [len(body)])]
    return (ref.basic_publish(ch) + ref.content_header_frame(ch, announced)
            + b"".join(ref.body_frame(ch, p) for p in parts if p))


STRUCTURED = st.lists(
    st.one_of(frames(), publishes(), st.sampled_from([
        ref.PROTOCOL_HEADER, ref.start_ok(), ref.tune_ok(), ref.connection_open(), ref.channel_open(1),
        ref.channel_open(2), ref.channel_close(1), ref.channel_close_ok(1), ref.HEARTBEAT,
        ref.connection_close(), ref.CONNECTION_CLOSE_OK, ref.queue_declare(1)]),
        st.binary(max_size=12)),
    max_size=12,
).map(b"".join)

ANY_BYTES = st.one_of(st.binary(max_size=400), STRUCTURED)


def chunked(data, sizes):
    out, off, i = [], 0, 0
    while off < len(data):
        n = sizes[i % len(sizes)] if sizes else len(data)
        out.append(data[off:off + n])
        off += n
        i += 1
    return out


# --------------------------------------------------------------- invariants
def run(prefix, pieces):
    conn, already_closing = prepared(prefix)
    events, out = [], b""
    for piece in pieces:
        got = conn.receive_data(piece)  # must never raise
        assert isinstance(got, list)
        events += got
        out += conn.data_to_send()
    check(conn, events, out, prefix, already_closing)
    return conn, events, out


def check(conn, events, out, prefix, already_closing):
    for ev in events:
        ch, method, header, body = ev
        assert isinstance(ch, int) and 0 <= ch <= 0xFFFF
        assert isinstance(method, spec.Method)
        if isinstance(method, spec.BasicPublish):
            assert isinstance(header, bytes) and isinstance(body, bytes)
            assert int.from_bytes(header[4:12], "big") == len(body)
        else:
            assert header is None and body is None
    if out == ref.PROTOCOL_HEADER and prefix == "start":
        assert conn.should_close and conn.state == CLOSED  # bad protocol header
        return
    frames = ref.split_frames(out)
    ids = [(t, ch, ref.method_id_of(p) if t == 1 else None) for t, ch, p in frames]
    closes = [i for i, (t, ch, mid) in enumerate(ids) if (t, ch, mid) == (1, 0, (10, 50))]
    assert len(closes) <= 1, "more than one connection.close written"
    if closes:
        code, text, _cid, _mid = ref.decode_close(frames[closes[0]][2])
        assert code in spec.HARD_ERRORS, (code, text)
        assert text.startswith(spec.REPLY_NAMES[code].encode() + b" - ")
        # after the close only a close-ok (to a crossing client close) may follow
        assert all(mid == (10, 51) for _t, _ch, mid in ids[closes[0] + 1:])
        assert conn.state in (CLOSING, CLOSED)
    if conn.state == CLOSING:
        assert closes or already_closing, "CLOSING without a connection.close written"
    if conn.should_close:
        assert conn.state == CLOSED
    if conn.state == CLOSED:
        assert conn.should_close
    if conn.state not in (CLOSING, CLOSED):
        assert not closes


def same_until_first_close(prefix, data, sizes):
    """Chunked feeding == feeding at once, up to the first hard error: after it the rest of that
    buffer is discarded, while later chunks are still read (in the closing state)."""
    whole_conn, whole_events, whole_out = run(prefix, [data])
    conn, events, out = run(prefix, chunked(data, sizes))
    if whole_conn.state not in (CLOSING, CLOSED):
        assert repr(events) == repr(whole_events)
        assert out == whole_out
        assert conn.state == whole_conn.state
        assert conn.channels == whole_conn.channels
        return
    assert repr(events[:len(whole_events)]) == repr(whole_events)
    if whole_out == ref.PROTOCOL_HEADER:  # bad protocol header: nothing else is ever written
        assert out == whole_out and conn.state == CLOSED
        return
    whole_frames, frames = ref.split_frames(whole_out), ref.split_frames(out)
    ends = [i for i, (t, ch, p) in enumerate(whole_frames)
            if (t, ch) == (1, 0) and ref.method_id_of(p) in ((10, 50), (10, 51))]
    n = ends[0] + 1 if ends else len(whole_frames)
    assert frames[:n] == whole_frames[:n]


# -------------------------------------------------------------------- tests
@ref.FUZZ
@given(ANY_BYTES)
def test_fuzz_at_start(data):
    run("start", [data])


@ref.FUZZ
@given(st.binary(min_size=1, max_size=300))
def test_fuzz_after_a_valid_header(data):
    run("after-header", [data])


@ref.PER_CASE
@pytest.mark.parametrize("prefix", sorted(PREFIXES))
@given(data=ANY_BYTES, sizes=st.lists(st.integers(1, 40), max_size=8))
def test_fuzz_after_a_valid_prefix_in_random_chunks(prefix, data, sizes):
    same_until_first_close(prefix, data, sizes)


@ref.FUZZ
@given(data=STRUCTURED, sizes=st.lists(st.integers(1, 40), max_size=8))
def test_fuzz_open_connection_structured_frames(data, sizes):
    same_until_first_close("open", data, sizes)


@ref.FAST
@given(st.data())
def test_valid_publishes_in_random_chunks_give_the_same_events(data):
    conn_whole, _ = prepared("open")
    stream = data.draw(st.lists(publishes(valid=True), min_size=1, max_size=5).map(b"".join))
    sizes = data.draw(st.lists(st.integers(1, 17), min_size=1, max_size=6))
    whole = conn_whole.receive_data(stream)
    out_whole = conn_whole.data_to_send()
    conn, _ = prepared("open")
    events = []
    for piece in chunked(stream, sizes):
        events += conn.receive_data(piece)
    assert len(whole) == stream.count(ref.basic_publish(1)) + stream.count(ref.basic_publish(2))
    assert all(isinstance(e[1], spec.BasicPublish) for e in whole)
    assert repr(events) == repr(whole)
    assert conn.data_to_send() == out_whole == b""
    assert conn.state == conn_whole.state
