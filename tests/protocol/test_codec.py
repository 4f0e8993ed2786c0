"""Field tables and strings: hand-written tag semantics and hypothesis round trips for every tag."""
import struct
from datetime import datetime, timezone
from decimal import Decimal
from enum import IntEnum

import amqp_reference as ref
import pytest
from amqp_reference import u8, u32, u64
from hypothesis import given
from hypothesis import strategies as st

from warrenmq.protocol.codec import (
    DecodeError, decode_array, decode_longstr, decode_shortstr, decode_table, decode_value,
    encode_longstr, encode_shortstr, encode_table, encode_value, field_type_name,
)

MALFORMED = (DecodeError, struct.error, IndexError)
H = bytes.fromhex


# ------------------------------------------------------- tag semantics, by hand
@pytest.mark.parametrize("raw, expected", [
    (b"t\x00", False),
    (b"t\x01", True),
    (b"t\x02", True),
    (b"b\xff", -1),
    (b"b\x7f", 127),
    (b"B\xff", 255),
    (b"s\xff\xfe", -2),                       # RabbitMQ: s = signed 16
    (b"u\xff\xfe", 65534),                    # RabbitMQ: u = unsigned 16
    (b"I\xff\xff\xff\xfe", -2),               # signed 32
    (b"i\xff\xff\xff\xfe", 4294967294),       # unsigned 32
    (b"l" + b"\xff" * 8, -1),                 # RabbitMQ: l = signed 64
    (b"L" + b"\xff" * 8, 2**64 - 1),          # unsigned 64
    (b"f" + H("3fc00000"), 1.5),
    (b"d" + H("bff8000000000000"), -1.5),
    (b"D" + H("02 0000013b"), Decimal("3.15")),
    (b"D" + H("01 fffffff1"), Decimal("-1.5")),
    (b"D" + H("00 00000007"), Decimal("7")),
    (b"S" + H("00000002 c3a9"), "\u00e9"),
    (b"S" + H("00000001 ff"), "\udcff"),      # invalid UTF-8 survives as a surrogate escape
    (b"x" + H("00000002 00ff"), b"\x00\xff"),
    (b"T" + u64(1600000000), datetime(2020, 9, 13, 12, 26, 40, tzinfo=timezone.utc)),
    (b"V", None),
    (b"A" + u32(8) + b"I\x00\x00\x00\x01" + b"V" + b"t\x01", [1, None, True]),
    (b"A" + u32(0), []),
    (b"F" + u32(7) + b"\x01kI\x00\x00\x00\x09", {"k": 9}),
    (b"F" + u32(0), {}),
])
def test_decode_each_tag(raw, expected):
    value, off = decode_value(b"junk" + raw + b"trailer", 4)
    assert off == 4 + len(raw)
    assert ref.strict(value) == ref.strict(expected)


def test_decoded_value_types_are_plain_python():
    assert type(decode_value(b"t\x01", 0)[0]) is bool
    assert type(decode_value(b"I\x00\x00\x00\x01", 0)[0]) is int
    short = decode_value(b"s\x00\x01", 0)[0]
    # narrower/wider integers are ints that remember their wire width
    assert isinstance(short, int) and short == 1 and str(short) == "1"
    assert field_type_name(short) == "short"
    assert encode_value(short) == b"s\x00\x01"
    assert type(decode_value(b"f" + H("3f800000"), 0)[0]) is float
    assert type(decode_value(b"x" + u32(0), 0)[0]) is bytes
    assert type(decode_value(b"S" + u32(0), 0)[0]) is str


@pytest.mark.parametrize("value, expected", [
    (True, b"t\x01"),
    (False, b"t\x00"),
    (0, b"I" + H("00000000")),
    (2**31 - 1, b"I" + H("7fffffff")),
    (-(2**31), b"I" + H("80000000")),
    (2**31, b"l" + H("0000000080000000")),
    (-(2**31) - 1, b"l" + H("ffffffff7fffffff")),
    (2**63 - 1, b"l" + H("7fffffffffffffff")),
    (-(2**63), b"l" + H("8000000000000000")),
    (2**63, b"L" + H("8000000000000000")),
    (2**64 - 1, b"L" + H("ffffffffffffffff")),
    (0.25, b"d" + H("3fd0000000000000")),
    ("h\u00e9", b"S" + H("00000003 68c3a9")),
    ("\udcff", b"S" + H("00000001 ff")),
    (b"\x00\xff", b"x" + H("00000002 00ff")),
    (bytearray(b"ab"), b"x" + H("00000002 6162")),
    (None, b"V"),
    (Decimal("-31.415"), b"D" + H("03 ffff8549")),
    (Decimal("1E+2"), b"D" + H("00 00000064")),
    (datetime(2020, 9, 13, 12, 26, 40, tzinfo=timezone.utc), b"T" + u64(1600000000)),
    (datetime(2020, 9, 13, 12, 26, 40), b"T" + u64(1600000000)),  # naive = UTC
    ([1, "a"], b"A" + u32(11) + b"I" + u32(1) + b"S" + u32(1) + b"a"),
    ((1,), b"A" + u32(5) + b"I" + u32(1)),
    ({"k": None}, b"F" + u32(3) + b"\x01kV"),
])
def test_encode_value_picks_the_documented_tag(value, expected):
    assert encode_value(value) == expected


def test_encode_value_subclasses():
    class Color(IntEnum):
        RED = 3

    class Name(str):
        pass

    assert encode_value(Color.RED) == b"I" + u32(3)
    assert encode_value(Name("n")) == b"S" + u32(1) + b"n"


@pytest.mark.parametrize("value", [object(), {1, 2}, 1j])
def test_encode_value_rejects_unknown_types(value):
    with pytest.raises(ValueError):
        encode_value(value)


def test_strings():
    assert encode_shortstr("") == b"\x00"
    assert encode_shortstr("\u00e9") == b"\x02\xc3\xa9"
    assert encode_shortstr(b"\xff") == b"\x01\xff"
    assert encode_shortstr("a" * 255) == b"\xff" + b"a" * 255
    with pytest.raises(ValueError):
        encode_shortstr("a" * 256)
    with pytest.raises(ValueError):
        encode_shortstr("\u00e9" * 128)  # 256 bytes
    assert encode_longstr(b"\x00") == b"\x00\x00\x00\x01\x00"
    assert encode_longstr("\u00e9") == b"\x00\x00\x00\x02\xc3\xa9"
    assert decode_shortstr(b"xx\x02\xc3\xa9yy", 2) == ("\u00e9", 5)
    assert decode_longstr(b"\x00\x00\x00\x02\x00\xffz", 0) == (b"\x00\xff", 6)
    with pytest.raises(DecodeError):
        decode_shortstr(b"\x05abc", 0)
    with pytest.raises(DecodeError):
        decode_longstr(b"\x00\x00\x00\x05abc", 0)


def test_table_key_longer_than_255_bytes_is_rejected():
    with pytest.raises(ValueError):
        encode_table({"k" * 256: 1})
    assert encode_table({"k" * 255: None}) == u32(257) + b"\xff" + b"k" * 255 + b"V"
    assert encode_table(None) == encode_table({}) == b"\x00\x00\x00\x00"


@pytest.mark.parametrize("raw", [
    b"Z",                                        # unknown tag
    b"T" + b"\xff" * 8,                          # timestamp out of range
    b"F" + u32(3) + b"\x01kI\x00\x00\x00\x01",   # entry runs past the declared length
    b"F" + u32(2) + b"\x01k",                    # key without a value
    b"F" + u32(10) + b"\x01kV",                  # table runs past the buffer
    b"A" + u32(3) + b"I\x00\x00\x00\x01",        # array element runs past the declared length
    b"A" + u32(1) + b"Z",                        # unknown tag in an array
    b"S" + u32(5) + b"ab",
    b"x" + u32(5) + b"ab",
    b"I\x00",
    b"D\x01",
])
def test_malformed_values_raise_documented_errors(raw):
    with pytest.raises(MALFORMED):
        decode_value(raw, 0)


def test_table_with_duplicate_keys_keeps_the_last_value():
    raw = u32(14) + b"\x01kI" + u32(1) + b"\x01kI" + u32(2)
    assert decode_table(raw, 0) == ({"k": 2}, 18)


# ------------------------------------------------------------- raw strategies
def _fixed(tag, n):
    return st.binary(min_size=n, max_size=n).map(lambda b: tag + b)


def _lstr(tag):
    return st.binary(max_size=40).map(lambda b: tag + u32(len(b)) + b)


RAW_SCALAR_BY_TAG = {
    **{tag: _fixed(tag.encode(), n) for tag, n in
       (("t", 1), ("b", 1), ("B", 1), ("s", 2), ("u", 2), ("I", 4), ("i", 4), ("l", 8), ("L", 8),
        ("f", 4), ("d", 8), ("D", 5))},
    "S": _lstr(b"S"),
    "x": _lstr(b"x"),
    "T": st.integers(0, 253402300799).map(lambda t: b"T" + u64(t)),  # up to 9999-12-31T23:59:59Z
    "V": st.just(b"V"),
}
RAW_SCALARS = st.one_of(*RAW_SCALAR_BY_TAG.values())
RAW_KEYS = st.binary(max_size=12).map(lambda k: u8(len(k)) + k)


def _raw_array(items):
    inner = b"".join(items)
    return b"A" + u32(len(inner)) + inner


def _raw_table_body(entries):
    inner = b"".join(k + v for k, v in entries)
    return u32(len(inner)) + inner


RAW_VALUES = st.recursive(
    RAW_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=5).map(_raw_array),
        st.lists(st.tuples(RAW_KEYS, inner), max_size=5).map(lambda e: b"F" + _raw_table_body(e)),
    ),
    max_leaves=12,
)
RAW_TABLES = st.lists(st.tuples(RAW_KEYS, RAW_VALUES), max_size=5).map(_raw_table_body)


@ref.FAST
@given(RAW_VALUES)
def test_raw_value_decode_encode_decode(raw):
    v1, off = decode_value(raw, 0)
    assert off == len(raw)
    enc = encode_value(v1)
    v2, off2 = decode_value(enc, 0)
    assert off2 == len(enc)
    assert ref.strict(v1) == ref.strict(v2)


RAW_BY_TAG = {
    **RAW_SCALAR_BY_TAG,
    "A": st.lists(RAW_SCALARS, max_size=3).map(_raw_array),
    "F": st.lists(st.tuples(RAW_KEYS, RAW_SCALARS), max_size=3).map(lambda e: b"F" + _raw_table_body(e)),
}


def test_every_tag_has_a_raw_strategy():
    assert sorted(RAW_BY_TAG) == sorted("t b B s u I i l L f d D S x A T F V".split())


@ref.PER_CASE
@pytest.mark.parametrize("tag", sorted(RAW_BY_TAG))
@given(data=st.data())
def test_every_tag_round_trips(tag, data):
    # RAW_VALUES might under-sample a tag; this draws each tag explicitly
    raw = data.draw(RAW_BY_TAG[tag])
    assert raw[0] == ord(tag)
    v1, off = decode_value(raw, 0)
    assert off == len(raw)
    v2, _ = decode_value(encode_value(v1), 0)
    assert ref.strict(v1) == ref.strict(v2)
    # and as a table entry and an array element
    t1, _ = decode_table(_raw_table_body([(b"\x03key", raw)]), 0)
    t2, _ = decode_table(encode_table(t1), 0)
    assert ref.strict(t1) == ref.strict(t2) == ref.strict({"key": v1})
    a1, _ = decode_array(u32(len(raw)) + raw, 0)
    assert ref.strict(a1) == ref.strict([v1])


@ref.FAST
@given(RAW_TABLES)
def test_raw_table_decode_encode_decode(raw):
    t1, off = decode_table(raw, 0)
    assert off == len(raw)
    enc = encode_table(t1)
    t2, _ = decode_table(enc, 0)
    assert ref.strict(t1) == ref.strict(t2)
    # the encoding of a decoded table is a fixed point
    assert encode_table(t2) == enc


@ref.FAST
@given(RAW_TABLES, st.data())
def test_truncated_tables_always_raise(raw, data):
    cut = data.draw(st.integers(0, len(raw) - 1))
    with pytest.raises(MALFORMED):
        decode_table(raw[:cut], 0)


@ref.FAST
@given(ref.VALUES)
def test_python_value_round_trip_matches_reference(value):
    enc = encode_value(value)
    assert enc == ref.field_value(value)
    dec, off = decode_value(enc, 0)
    assert off == len(enc)
    assert ref.strict(dec) == ref.strict(value)


@ref.FAST
@given(ref.TABLES)
def test_python_table_round_trip_matches_reference(table):
    enc = encode_table(table)
    assert enc == ref.table(table)
    dec, off = decode_table(b"\x00" + enc, 1)
    assert off == len(enc) + 1
    assert ref.strict(dec) == ref.strict(table)


# tables whose values all have a canonical encoding re-encode to exactly the same bytes
# (integers remember their wire width; see the codec's docstring)
RAW_CANONICAL_SCALARS = st.one_of(
    *(RAW_SCALAR_BY_TAG[t] for t in "bBsuIilLSxTVD"), st.sampled_from([b"t\x00", b"t\x01"]))
RAW_CANONICAL = st.recursive(
    RAW_CANONICAL_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(_raw_array),
        st.lists(st.tuples(RAW_KEYS, inner), max_size=4, unique_by=lambda e: e[0]).map(
            lambda e: b"F" + _raw_table_body(e)),
    ),
    max_leaves=15,
)


@ref.FAST
@given(RAW_CANONICAL)
def test_canonical_values_re_encode_to_the_same_bytes(raw):
    value, off = decode_value(raw, 0)
    assert off == len(raw)
    assert encode_value(value) == raw
