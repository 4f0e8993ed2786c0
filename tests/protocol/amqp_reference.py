"""An independent, deliberately slow reference for the protocol tests.

Nothing here imports :mod:`warrenmq`: the encoders are written from the AMQP
0-9-1 grammar (and RabbitMQ's field-table tags) with ``int.to_bytes``, so a test
that compares the broker's output with these bytes compares two independent
implementations, not the code with itself.  It also holds the small helpers the
state-machine and fuzz tests share (frame splitting, a handshake driver).
"""
from __future__ import annotations

import json
import keyword
import math
import os
import struct
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
# RabbitMQ's machine-readable spec, kept in the repository beside its generator (tools/gen_spec.py)
SPEC_PATH = REPO / "tools" / "amqp-rabbitmq-0.9.1.json"

FRAME_END = 0xCE

# hypothesis budgets: the whole protocol suite must stay well under ~30 s.  For a longer
# bug hunt multiply them, e.g. WARRENMQ_HYPOTHESIS_SCALE=50 pytest tests/protocol
_SCALE = max(1, int(os.environ.get("WARRENMQ_HYPOTHESIS_SCALE", "1")))
_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large]
FAST = settings(max_examples=100 * _SCALE, deadline=None, suppress_health_check=_HEALTH)
PER_CASE = settings(max_examples=40 * _SCALE, deadline=None, suppress_health_check=_HEALTH)
FUZZ = settings(max_examples=300 * _SCALE, deadline=None, suppress_health_check=_HEALTH)


def load_spec() -> dict:
    """The JSON spec as a dict.  A missing file is an error (the test modules fail to
    collect), never a reason to skip: the spec is part of the repository."""
    if not SPEC_PATH.exists():
        raise FileNotFoundError(f"AMQP JSON spec not found at {SPEC_PATH}; it belongs in the repository")
    return json.loads(SPEC_PATH.read_text())


def arg_type(arg: dict, domains: dict) -> str:
    """The primitive type of a method argument or property (domains resolved)."""
    t = arg.get("type") or arg["domain"]
    seen = set()
    while t in domains and domains[t] != t and t not in seen:
        seen.add(t)
        t = domains[t]
    return t


def py_name(name: str) -> str:
    n = name.replace("-", "_")
    return n + "_" if keyword.iskeyword(n) else n


def methods_of(spec: dict):
    """``[(class, method, [(py_name, type), ...]), ...]`` for every method of the spec."""
    domains = {d[0]: d[1] for d in spec["domains"]}
    out = []
    for cls in spec["classes"]:
        for m in cls["methods"]:
            out.append((cls, m, [(py_name(a["name"]), arg_type(a, domains)) for a in m["arguments"]]))
    return out


def properties_of(spec: dict):
    domains = {d[0]: d[1] for d in spec["domains"]}
    for cls in spec["classes"]:
        if cls.get("properties"):
            return cls, [(py_name(p["name"]), arg_type(p, domains)) for p in cls["properties"]]
    raise AssertionError("no class with content properties in the spec")


# ------------------------------------------------------------------ primitives
def u8(v):
    return v.to_bytes(1, "big")


def u16(v):
    return v.to_bytes(2, "big")


def u32(v):
    return v.to_bytes(4, "big")


def u64(v):
    return v.to_bytes(8, "big")


def _raw(s):
    return s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)


def shortstr(s):
    b = _raw(s)
    assert len(b) <= 255
    return u8(len(b)) + b


def longstr(s):
    b = _raw(s)
    return u32(len(b)) + b


def field_value(v) -> bytes:
    """A tagged field value, narrowest RabbitMQ tag (the codec's documented policy)."""
    if isinstance(v, bool):
        return b"t" + (b"\x01" if v else b"\x00")
    if isinstance(v, int):
        if -(1 << 31) <= v < (1 << 31):
            return b"I" + v.to_bytes(4, "big", signed=True)
        if -(1 << 63) <= v < (1 << 63):
            return b"l" + v.to_bytes(8, "big", signed=True)
        return b"L" + v.to_bytes(8, "big")
    if isinstance(v, float):
        return b"d" + struct.pack(">d", v)
    if isinstance(v, str):
        return b"S" + longstr(v)
    if isinstance(v, (bytes, bytearray)):
        return b"x" + longstr(bytes(v))
    if v is None:
        return b"V"
    if isinstance(v, Decimal):
        sign, digits, exp = v.as_tuple()
        scale = -exp if exp < 0 else 0
        unscaled = int("".join(map(str, digits)) or "0") * (10 ** exp if exp > 0 else 1)
        if sign:
            unscaled = -unscaled
        return b"D" + u8(scale) + unscaled.to_bytes(4, "big", signed=True)
    if isinstance(v, datetime):
        return b"T" + u64(int(v.timestamp()))
    if isinstance(v, dict):
        return b"F" + table(v)
    if isinstance(v, (list, tuple)):
        inner = b"".join(field_value(x) for x in v)
        return b"A" + u32(len(inner)) + inner
    raise TypeError(v)


def table(d) -> bytes:
    inner = b"".join(shortstr(k) + field_value(v) for k, v in (d or {}).items())
    return u32(len(inner)) + inner


def encode_typed(values) -> bytes:
    """Encode ``[(type, value), ...]`` as method arguments: runs of bits share octets, LSB first."""
    out = bytearray()
    bits, nbits = 0, 0

    def flush():
        nonlocal bits, nbits
        if nbits:
            out.append(bits)
            bits, nbits = 0, 0

    for t, v in values:
        if t == "bit":
            if nbits == 8:
                flush()
            if v:
                bits |= 1 << nbits
            nbits += 1
            continue
        flush()
        if t == "octet":
            out += u8(v)
        elif t == "short":
            out += u16(v)
        elif t == "long":
            out += u32(v)
        elif t in ("longlong", "timestamp"):
            out += u64(v)
        elif t == "shortstr":
            out += shortstr(v)
        elif t == "longstr":
            out += longstr(v)
        elif t == "table":
            out += table(v)
        else:
            raise AssertionError(f"unknown AMQP type {t}")
    flush()
    return bytes(out)


def method_payload(class_id: int, method_id: int, values) -> bytes:
    return u16(class_id) + u16(method_id) + encode_typed(values)


def frame(ftype: int, channel: int, payload: bytes) -> bytes:
    return u8(ftype) + u16(channel) + u32(len(payload)) + payload + u8(FRAME_END)


def properties(props, values: dict) -> bytes:
    """Property flags + present properties; ``props`` is ``[(name, type), ...]`` in spec order."""
    flags = 0
    parts = []
    for i, (name, t) in enumerate(props):
        if values.get(name) is not None:
            flags |= 1 << (15 - i)
            parts.append(encode_typed([(t, values[name])]))
    return u16(flags) + b"".join(parts)


# ----------------------------------------------------------- output splitting
def split_frames(data: bytes):
    """``[(type, channel, payload), ...]``; asserts the framing of what the server wrote."""
    frames = []
    off = 0
    while off < len(data):
        assert len(data) - off >= 8, f"truncated frame at {off}: {data[off:]!r}"
        ftype = data[off]
        ch = int.from_bytes(data[off + 1:off + 3], "big")
        size = int.from_bytes(data[off + 3:off + 7], "big")
        end = off + 7 + size
        assert end < len(data), "frame runs past the output"
        assert data[end] == FRAME_END, f"bad frame end {data[end]:#x}"
        frames.append((ftype, ch, data[off + 7:end]))
        off = end + 1
    return frames


def method_id_of(payload: bytes):
    return int.from_bytes(payload[0:2], "big"), int.from_bytes(payload[2:4], "big")


def decode_close(payload: bytes):
    """(reply_code, reply_text bytes, class_id, method_id) of a connection.close/channel.close."""
    code = int.from_bytes(payload[4:6], "big")
    n = payload[6]
    text = payload[7:7 + n]
    rest = payload[7 + n:]
    assert len(rest) == 4, "close method has trailing or missing bytes"
    return code, text, int.from_bytes(rest[0:2], "big"), int.from_bytes(rest[2:4], "big")


# --------------------------------------------------------------- comparisons
def strict(v):
    """A type-strict, NaN-safe comparable form of a decoded field value (``True != 1`` here)."""
    if isinstance(v, bool):
        return ("bool", v)
    if isinstance(v, int):
        return ("int", v)
    if isinstance(v, float):
        return ("float", "nan") if math.isnan(v) else ("float", v, math.copysign(1.0, v))
    if isinstance(v, str):
        return ("str", v)
    if isinstance(v, (bytes, bytearray)):
        return ("bytes", bytes(v))
    if v is None:
        return ("void",)
    if isinstance(v, Decimal):
        return ("decimal", v.as_tuple())
    if isinstance(v, datetime):
        return ("datetime", v.timestamp(), v.utcoffset())
    if isinstance(v, dict):
        return ("table", tuple((k, strict(x)) for k, x in v.items()))
    if isinstance(v, list):
        return ("array", tuple(strict(x) for x in v))
    raise TypeError(f"unexpected decoded value {v!r}")


UTC = timezone.utc


# ------------------------------------------------- frames a client would send
def start_ok(mechanism="PLAIN", response=b"\x00guest\x00guest", client_properties=None, locale="en_US"):
    return frame(1, 0, method_payload(10, 11, [("table", client_properties or {"product": "ref"}),
                                               ("shortstr", mechanism), ("longstr", response),
                                               ("shortstr", locale)]))


def tune_ok(channel_max=2047, frame_max=131072, heartbeat=0):
    return frame(1, 0, method_payload(10, 31, [("short", channel_max), ("long", frame_max),
                                               ("short", heartbeat)]))


def connection_open(vhost="/"):
    return frame(1, 0, method_payload(10, 40, [("shortstr", vhost), ("shortstr", ""), ("bit", False)]))


def connection_close(code=200, text="bye", class_id=0, method_id=0):
    return frame(1, 0, method_payload(10, 50, [("short", code), ("shortstr", text), ("short", class_id),
                                               ("short", method_id)]))


CONNECTION_CLOSE_OK = frame(1, 0, method_payload(10, 51, []))


def channel_open(ch):
    return frame(1, ch, method_payload(20, 10, [("shortstr", "")]))


def channel_close(ch, code=200, text="bye", class_id=0, method_id=0):
    return frame(1, ch, method_payload(20, 40, [("short", code), ("shortstr", text), ("short", class_id),
                                                ("short", method_id)]))


def channel_close_ok(ch):
    return frame(1, ch, method_payload(20, 41, []))


def basic_publish(ch, exchange="", routing_key="rk", mandatory=False):
    return frame(1, ch, method_payload(60, 40, [("short", 0), ("shortstr", exchange), ("shortstr", routing_key),
                                                ("bit", mandatory), ("bit", False)]))


def queue_declare(ch, queue="q", arguments=None):
    return frame(1, ch, method_payload(50, 10, [("short", 0), ("shortstr", queue)] + [("bit", False)] * 5
                                       + [("table", arguments or {})]))


def header_payload(body_size, class_id=60, props=b"\x00\x00"):
    return u16(class_id) + u16(0) + u64(body_size) + props


def content_header_frame(ch, body_size, class_id=60, props=b"\x00\x00"):
    return frame(2, ch, header_payload(body_size, class_id, props))


def body_frame(ch, data):
    return frame(3, ch, data)


HEARTBEAT = frame(8, 0, b"")
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"


def handshake(conn, frame_max=131072, channel_max=2047, channels=()):
    """Drive ``conn`` to OPEN as a client and the broker would (the test plays both sides)."""
    conn.receive_data(PROTOCOL_HEADER)
    conn.receive_data(start_ok())
    conn.send_tune()
    conn.receive_data(tune_ok(channel_max, frame_max))
    conn.receive_data(connection_open())
    conn.send_open_ok()
    for ch in channels:
        conn.receive_data(channel_open(ch))
    conn.data_to_send()
    return conn


# ----------------------------------------------------- python-value strategies
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=30)
KEYS = TEXT.filter(lambda k: len(k.encode()) <= 255)
SCALARS = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**64 - 1),
    st.integers(-(2**31) - 2, 2**31 + 2),
    st.floats(),
    TEXT,
    st.binary(max_size=30),
    st.none(),
    st.builds(lambda v, s: Decimal(v).scaleb(-s), st.integers(-(2**31), 2**31 - 1), st.integers(0, 255)),
    st.integers(0, 253402300799).map(lambda t: datetime.fromtimestamp(t, UTC)),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=10,
)
TABLES = st.dictionaries(KEYS, VALUES, max_size=5)

SHORTSTR = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80).filter(
        lambda s: len(s.encode()) <= 255),
    # arbitrary bytes (not UTF-8) come back as surrogate escapes
    st.binary(max_size=255).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
TYPED = {
    "bit": st.booleans(),
    "octet": st.integers(0, 2**8 - 1),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**64 - 1),
    "timestamp": st.integers(0, 2**64 - 1),
    "shortstr": SHORTSTR,
    "longstr": st.binary(max_size=300),
    "table": TABLES,
}
