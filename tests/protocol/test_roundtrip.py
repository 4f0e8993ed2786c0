"""Hypothesis round trips: every method and the basic content properties, with random arguments."""
import struct

import amqp_reference as ref
import pytest
from hypothesis import given
from hypothesis import strategies as st

from warrenmq.protocol import spec
from warrenmq.protocol.codec import DecodeError
from warrenmq.protocol.properties import content_header

SPEC = ref.load_spec()
ARGS = {(c["id"] << 16) | m["id"]: args for c, m, args in ref.methods_of(SPEC)}
PROPS = ref.properties_of(SPEC)[1]

ALL_METHODS = sorted(spec.METHODS.values(), key=lambda c: c.INDEX)


@ref.PER_CASE
@pytest.mark.parametrize("cls", ALL_METHODS, ids=lambda c: c.NAME)
@given(data=st.data())
def test_method_round_trip(cls, data):
    args = ARGS[cls.INDEX]
    kwargs = {name: data.draw(ref.TYPED[t], label=name) for name, t in args}
    payload = cls(**kwargs).encode()
    # independent encoder agrees byte for byte
    assert payload == ref.method_payload(cls.CLASS_ID, cls.METHOD_ID, [(t, kwargs[n]) for n, t in args])
    assert int.from_bytes(payload[:4], "big") == cls.INDEX
    decoded = spec.METHODS[cls.INDEX].decode(payload, 4)
    assert type(decoded) is cls
    for name in kwargs:
        assert ref.strict(getattr(decoded, name)) == ref.strict(kwargs[name]), name
    assert decoded.encode() == payload
    # decoding at an offset inside a larger buffer
    assert spec.METHODS[cls.INDEX].decode(b"\xaa" * 3 + payload, 7).encode() == payload
    # any truncation of the arguments is an error, never a silently short method
    if len(payload) > 4:
        cut = data.draw(st.integers(4, len(payload) - 1), label="cut")
        with pytest.raises((DecodeError, struct.error, IndexError)):
            cls.decode(payload[:cut], 4)


def _props_strategy():
    return st.fixed_dictionaries({}, optional={name: ref.TYPED[t] for name, t in PROPS})


@ref.FAST
@given(data=st.data())
def test_basic_properties_round_trip(data):
    values = data.draw(_props_strategy())
    p = spec.BasicProperties(**values)
    enc = p.encode()
    assert enc == ref.properties(PROPS, values)
    d = spec.BasicProperties.decode(enc)
    for name in spec.BasicProperties.FIELDS:
        assert ref.strict(getattr(d, name)) == ref.strict(values.get(name)), name
    assert d.encode() == enc  # (not d == p: a NaN in headers is never equal to itself)
    size = data.draw(st.integers(0, 2**64 - 1))
    header = content_header(p, size)
    assert header == ref.header_payload(size, props=enc)
    assert spec.BasicProperties.decode(header, 12).encode() == enc


def test_basic_properties_flag_continuation_is_rejected():
    with pytest.raises(DecodeError):
        spec.BasicProperties.decode(b"\x00\x01")


def test_basic_properties_truncated():
    with pytest.raises((DecodeError, struct.error, IndexError)):
        spec.BasicProperties.decode(b"\x80\x00\x05ab")  # content-type claims 5 bytes
    with pytest.raises((DecodeError, struct.error, IndexError)):
        spec.BasicProperties.decode(b"\x00\x40\x00\x00")  # timestamp (flag 0x0040) needs 8 bytes
