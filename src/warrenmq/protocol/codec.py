"""AMQP 0-9-1 primitive codecs: short/long strings and field tables.

Theory of operation: every decoder takes ``(buf, off)`` over an immutable
``bytes`` object and returns ``(value, new_off)`` so that whole frames are parsed
in place, without slicing a payload first.  Field tables use RabbitMQ's type
tags (which differ from the 0-9-1 text for ``s``/``u``/``l``), all of them:
``t b B s u I i l L f d D S x A T F V``.

Decoded values are plain Python values (``str`` for ``S`` and short strings,
``bytes`` for ``x``, ``int``, ``float``, ``Decimal``, ``datetime`` for ``T``,
``dict`` for ``F``, ``list`` for ``A``, ``None`` for ``V``).  Integers with a
tag other than ``I`` decode to ``int`` subclasses (:data:`INT_TYPES`) that
remember their width, so a table re-encodes to the same bytes.  Strings decode with
``surrogateescape`` so that arbitrary bytes survive a decode/encode round trip.
Encoding picks the narrowest RabbitMQ-compatible tag for a Python value (``I``
for ints that fit 32 bits, else ``l``; ``d`` for floats).

Malformed input raises :class:`DecodeError` (or ``struct.error``/``IndexError``
from the primitives); the connection layer turns any of those into an AMQP
``SYNTAX_ERROR``/``FRAME_ERROR`` close, never a crash.
"""
from __future__ import annotations

import struct
from datetime import datetime, timezone
from decimal import Decimal

__all__ = [
    "DecodeError", "decode_shortstr", "decode_longstr", "decode_table", "decode_value",
    "encode_shortstr", "encode_longstr", "encode_table", "encode_value", "decode_array",
    "INT_TYPES", "field_type_name",
]


class DecodeError(ValueError):
    """Bytes that do not form a valid AMQP value."""


_B = struct.Struct(">B")
_b = struct.Struct(">b")
_h = struct.Struct(">h")
_H = struct.Struct(">H")
_i = struct.Struct(">i")
_I = struct.Struct(">I")
_q = struct.Struct(">q")
_Q = struct.Struct(">Q")
_f = struct.Struct(">f")
_d = struct.Struct(">d")
_Bi = struct.Struct(">Bi")

_unpack_I = _I.unpack_from


def decode_shortstr(buf, off):
    n = buf[off]
    off += 1
    end = off + n
    if end > len(buf):
        raise DecodeError("short string runs past the end of the frame")
    return buf[off:end].decode("utf-8", "surrogateescape"), end


def decode_longstr(buf, off):
    """A long string as ``bytes`` (method arguments such as SASL responses are binary)."""
    n, = _unpack_I(buf, off)
    off += 4
    end = off + n
    if end > len(buf):
        raise DecodeError("long string runs past the end of the frame")
    return buf[off:end], end


def encode_shortstr(s) -> bytes:
    if s.__class__ is str:
        b = s.encode("utf-8", "surrogateescape")
    else:
        b = bytes(s)
    if len(b) > 255:
        raise ValueError("short string longer than 255 bytes")
    return _B.pack(len(b)) + b


def encode_longstr(s) -> bytes:
    if s.__class__ is str:
        b = s.encode("utf-8", "surrogateescape")
    else:
        b = bytes(s)
    return _I.pack(len(b)) + b


def _fixed(st: struct.Struct):
    size = st.size
    unpack = st.unpack_from

    def dec(buf, off):
        return unpack(buf, off)[0], off + size
    return dec


class _WireInt(int):
    """Base of the int subclasses that remember a non-default integer width (see ``INT_TYPES``)."""
    __slots__ = ()
    TAG = b"I"
    TYPE_NAME = "signedint"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"

    __str__ = int.__repr__


def _wire_int(name: str, tag: str, type_name: str, st: struct.Struct):
    return type(name, (_WireInt,), {"__slots__": (), "TAG": tag.encode(), "TYPE_NAME": type_name, "STRUCT": st})


#: integers decoded from a table with a tag other than ``I`` keep it, so that a table re-encodes to the
#: same bytes and errors can name the wire type as RabbitMQ does (``of type 'short'``)
INT_TYPES = {
    "b": _wire_int("Byte", "b", "byte", _b),
    "B": _wire_int("UnsignedByte", "B", "unsignedbyte", _B),
    "s": _wire_int("Short", "s", "short", _h),
    "u": _wire_int("UnsignedShort", "u", "unsignedshort", _H),
    "i": _wire_int("UnsignedInt", "i", "unsignedint", _I),
    "l": _wire_int("Long", "l", "long", _q),
    "L": _wire_int("UnsignedLong", "L", "unsignedlong", _Q),
}


def _typed(cls):
    st = cls.STRUCT
    size = st.size
    unpack = st.unpack_from

    def dec(buf, off):
        return cls(unpack(buf, off)[0]), off + size
    return dec


def field_type_name(value) -> str:
    """RabbitMQ's name for the field type ``value`` has (or would be encoded with)."""
    if isinstance(value, _WireInt):
        return value.TYPE_NAME
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "signedint" if -0x80000000 <= value <= 0x7FFFFFFF else "long"
    if isinstance(value, str):
        return "longstr"
    if isinstance(value, float):
        return "double"
    if isinstance(value, Decimal):
        return "decimal"
    if isinstance(value, datetime):
        return "timestamp"
    if isinstance(value, dict):
        return "table"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "binary"
    return "void" if value is None else type(value).__name__


def _dec_bool(buf, off):
    return buf[off] != 0, off + 1


def _dec_decimal(buf, off):
    scale, value = _Bi.unpack_from(buf, off)
    return Decimal(value).scaleb(-scale), off + 5


def _dec_S(buf, off):
    n, = _unpack_I(buf, off)
    off += 4
    end = off + n
    if end > len(buf):
        raise DecodeError("long string runs past the end of the table")
    return buf[off:end].decode("utf-8", "surrogateescape"), end


def _dec_x(buf, off):
    return decode_longstr(buf, off)


def _dec_T(buf, off):
    ts, = _Q.unpack_from(buf, off)
    try:
        return datetime.fromtimestamp(ts, timezone.utc), off + 8
    except (OverflowError, OSError, ValueError):
        raise DecodeError("timestamp out of range") from None


def _dec_void(buf, off):
    return None, off


def decode_table(buf, off):
    n, = _unpack_I(buf, off)
    off += 4
    end = off + n
    if end > len(buf):
        raise DecodeError("field table runs past the end of the frame")
    result = {}
    while off < end:
        klen = buf[off]
        off += 1
        key = buf[off:off + klen].decode("utf-8", "surrogateescape")
        off += klen
        if off >= end:
            raise DecodeError("field table entry truncated")
        try:
            dec = _DECODERS[buf[off]]
        except KeyError:
            raise DecodeError(f"unknown field type {chr(buf[off])!r}") from None
        result[key], off = dec(buf, off + 1)
    if off != end:
        raise DecodeError("field table length mismatch")
    return result, off


def decode_array(buf, off):
    n, = _unpack_I(buf, off)
    off += 4
    end = off + n
    if end > len(buf):
        raise DecodeError("field array runs past the end of the frame")
    result = []
    append = result.append
    while off < end:
        try:
            dec = _DECODERS[buf[off]]
        except KeyError:
            raise DecodeError(f"unknown field type {chr(buf[off])!r}") from None
        value, off = dec(buf, off + 1)
        append(value)
    if off != end:
        raise DecodeError("field array length mismatch")
    return result, off


def decode_value(buf, off):
    """One tagged field value (as found in tables and arrays)."""
    try:
        dec = _DECODERS[buf[off]]
    except KeyError:
        raise DecodeError(f"unknown field type {chr(buf[off])!r}") from None
    return dec(buf, off + 1)


_DECODERS = {
    ord("t"): _dec_bool,
    ord("b"): _typed(INT_TYPES["b"]),
    ord("B"): _typed(INT_TYPES["B"]),
    ord("s"): _typed(INT_TYPES["s"]),
    ord("u"): _typed(INT_TYPES["u"]),
    ord("I"): _fixed(_i),
    ord("i"): _typed(INT_TYPES["i"]),
    ord("l"): _typed(INT_TYPES["l"]),
    ord("L"): _typed(INT_TYPES["L"]),
    ord("f"): _fixed(_f),
    ord("d"): _fixed(_d),
    ord("D"): _dec_decimal,
    ord("S"): _dec_S,
    ord("x"): _dec_x,
    ord("A"): decode_array,
    ord("T"): _dec_T,
    ord("F"): decode_table,
    ord("V"): _dec_void,
}


def encode_value(value) -> bytes:
    """A tagged field value."""
    cls = value.__class__
    if cls is str:
        b = value.encode("utf-8", "surrogateescape")
        return b"S" + _I.pack(len(b)) + b
    if cls is bool:
        return b"t\x01" if value else b"t\x00"
    if cls is int:
        if -0x80000000 <= value <= 0x7FFFFFFF:
            return b"I" + _i.pack(value)
        if -0x8000000000000000 <= value <= 0x7FFFFFFFFFFFFFFF:
            return b"l" + _q.pack(value)
        return b"L" + _Q.pack(value)
    if value is None:
        return b"V"
    if isinstance(value, dict):
        return b"F" + encode_table(value)
    if isinstance(value, (list, tuple)):
        inner = b"".join([encode_value(v) for v in value])
        return b"A" + _I.pack(len(inner)) + inner
    if isinstance(value, (bytes, bytearray, memoryview)):
        return b"x" + _I.pack(len(value)) + bytes(value)
    if isinstance(value, float):
        return b"d" + _d.pack(value)
    if isinstance(value, Decimal):
        sign, digits, exponent = value.as_tuple()
        if not isinstance(exponent, int):
            raise ValueError(f"cannot encode {value!r} in a field table")
        scale = max(0, -exponent)
        return b"D" + _Bi.pack(scale, int(value.scaleb(scale)))
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return b"T" + _Q.pack(int(value.timestamp()))
    if isinstance(value, _WireInt):
        try:
            return value.TAG + value.STRUCT.pack(value)
        except struct.error:  # out of range for its width: fall back to the default choice
            return encode_value(int(value))
    if isinstance(value, int):  # other int subclasses (e.g. IntEnum)
        return encode_value(int(value))
    if isinstance(value, str):
        return encode_value(str(value))
    raise ValueError(f"cannot encode {type(value).__name__} in a field table")


def encode_table(table) -> bytes:
    if not table:
        return b"\x00\x00\x00\x00"
    parts = []
    for key, value in table.items():
        k = key.encode("utf-8", "surrogateescape") if key.__class__ is str else bytes(key)
        if len(k) > 255:
            raise ValueError("field table key longer than 255 bytes")
        parts.append(_B.pack(len(k)) + k)
        parts.append(encode_value(value))
    inner = b"".join(parts)
    return _I.pack(len(inner)) + inner
