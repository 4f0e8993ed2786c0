"""The basic class's property flags, by name, and reads of single properties from raw header bytes.

Theory of operation: the broker keeps a message's content-header payload exactly as the
publisher sent it (class id, weight, body size, then the property flags and the present
properties) and forwards it verbatim.  Most features need one property at most, so they test
a flag bit and, where they need the value, skip the properties that come before it instead of
decoding them all (:class:`~.spec.BasicProperties` does the full decode).

The flags are a 16-bit field at :data:`FLAGS_OFFSET` of the header payload; the hot path tests
single bytes of it, so each property has a 16-bit flag (``FLAG_*``) and the bit in its byte:
``HI_*`` in ``header[FLAGS_OFFSET]`` (the first eight properties), ``LO_*`` in
``header[FLAGS_OFFSET + 1]`` (the other six).
"""
from __future__ import annotations

import struct

from .spec import CLASS_BASIC

_HEADER_HEAD = struct.Struct(">HHQ").pack  # class id, weight, body size

#: where the property flags start in a content-header payload (class, weight, body size before them)
FLAGS_OFFSET = 12
#: where the properties themselves start
PROPERTIES_OFFSET = 14

FLAG_CONTENT_TYPE = 0x8000
FLAG_CONTENT_ENCODING = 0x4000
FLAG_HEADERS = 0x2000
FLAG_DELIVERY_MODE = 0x1000
FLAG_PRIORITY = 0x0800
FLAG_CORRELATION_ID = 0x0400
FLAG_REPLY_TO = 0x0200
FLAG_EXPIRATION = 0x0100
FLAG_MESSAGE_ID = 0x0080
FLAG_TIMESTAMP = 0x0040
FLAG_TYPE = 0x0020
FLAG_USER_ID = 0x0010
FLAG_APP_ID = 0x0008
FLAG_CLUSTER_ID = 0x0004

# the same bits as they appear in the first flag byte (header[FLAGS_OFFSET]) ...
HI_CONTENT_TYPE = FLAG_CONTENT_TYPE >> 8
HI_CONTENT_ENCODING = FLAG_CONTENT_ENCODING >> 8
HI_HEADERS = FLAG_HEADERS >> 8
HI_DELIVERY_MODE = FLAG_DELIVERY_MODE >> 8
HI_PRIORITY = FLAG_PRIORITY >> 8
HI_CORRELATION_ID = FLAG_CORRELATION_ID >> 8
HI_REPLY_TO = FLAG_REPLY_TO >> 8
HI_EXPIRATION = FLAG_EXPIRATION >> 8
# ... and in the second (header[FLAGS_OFFSET + 1])
LO_MESSAGE_ID = FLAG_MESSAGE_ID
LO_TIMESTAMP = FLAG_TIMESTAMP
LO_TYPE = FLAG_TYPE
LO_USER_ID = FLAG_USER_ID
LO_APP_ID = FLAG_APP_ID
LO_CLUSTER_ID = FLAG_CLUSTER_ID

#: delivery-mode 2: persistent
PERSISTENT = 2


def flags(header) -> int:
    """The 16-bit property flags of a content-header payload."""
    return (header[FLAGS_OFFSET] << 8) | header[FLAGS_OFFSET + 1]


def offset_of(header, flag: int) -> int:
    """Where the property ``flag`` (one of the first seven: content-type to reply-to) starts in
    ``header``, whether or not it is present: the sizes of the present properties before it are
    skipped.  Raises IndexError on truncated bytes."""
    hi = header[FLAGS_OFFSET]
    bit = flag >> 8
    pos = PROPERTIES_OFFSET
    if bit < HI_CONTENT_TYPE and hi & HI_CONTENT_TYPE:
        pos += 1 + header[pos]
    if bit < HI_CONTENT_ENCODING and hi & HI_CONTENT_ENCODING:
        pos += 1 + header[pos]
    if bit < HI_HEADERS and hi & HI_HEADERS:
        pos += 4 + int.from_bytes(header[pos:pos + 4], "big")
        if pos > len(header):
            raise IndexError("headers table runs past the end of the properties")
    if bit < HI_DELIVERY_MODE and hi & HI_DELIVERY_MODE:
        pos += 1
    if bit < HI_PRIORITY and hi & HI_PRIORITY:
        pos += 1
    if bit < HI_CORRELATION_ID and hi & HI_CORRELATION_ID:
        pos += 1 + header[pos]
    if bit < HI_REPLY_TO:
        raise ValueError("offset_of reads content-type to reply-to only")
    return pos


def content_header(properties, body_size: int) -> bytes:
    """A basic content-header payload (as a message keeps it) from a :class:`~.spec.BasicProperties`."""
    return _HEADER_HEAD(CLASS_BASIC, 0, body_size) + properties.encode()


# ------------------------------------------------------------ the structural scan at publish
# RabbitMQ decodes a message's properties when it is published and closes the connection with
# 541 INTERNAL_ERROR when they do not decode.  WarrenMQ keeps the raw bytes and decodes them only
# when a feature needs them, so the parser checks their structure instead (properties_ok): every
# length within the payload, every field-table value with a tag RabbitMQ knows, floats that are
# numbers (RabbitMQ's decoder refuses NaN and infinities), table timestamps that are dates (before
# the year 10000), tables nested at most MAX_NESTING deep, nothing after the last property.  No
# dict or string is built; for the usual properties (none, or a few short ones) it is a handful of
# index operations.  Publishers mostly send the same property bytes again and again (a delivery mode,
# a content type, the same headers), so property bytes found valid are remembered (VALID_PROPERTIES,
# bounded) and the parser's fast path looks them up before it scans.

_SHORT, _TABLE = -1, -2
# the basic class's fourteen properties, in wire order: a short string, a table, or a fixed size
_KINDS = ((FLAG_CONTENT_TYPE, _SHORT), (FLAG_CONTENT_ENCODING, _SHORT), (FLAG_HEADERS, _TABLE),
          (FLAG_DELIVERY_MODE, 1), (FLAG_PRIORITY, 1), (FLAG_CORRELATION_ID, _SHORT), (FLAG_REPLY_TO, _SHORT),
          (FLAG_EXPIRATION, _SHORT), (FLAG_MESSAGE_ID, _SHORT), (FLAG_TIMESTAMP, 8), (FLAG_TYPE, _SHORT),
          (FLAG_USER_ID, _SHORT), (FLAG_APP_ID, _SHORT), (FLAG_CLUSTER_ID, _SHORT))
#: the two low flag bits name no property; RabbitMQ ignores them.  The lowest (0x0001) announces a
#: further flag word, which spec.BasicProperties does not decode: the scan refuses it
_PROPERTY_BITS = 0xFFFC
_plans: dict = {}  # flags -> the kinds of the properties present, in order (filled lazily, <= 16384 keys)
#: flags naming only fixed-size properties (delivery mode, priority, timestamp) -> their total size: for
#: those, the length of the properties is all there is to check
FIXED_SIZE_FLAGS = {f | unused: (f & FLAG_DELIVERY_MODE and 1) + (f & FLAG_PRIORITY and 1) + (f & FLAG_TIMESTAMP and 8)
                    for f in range(0x10000) if f and not f & ~(FLAG_DELIVERY_MODE | FLAG_PRIORITY | FLAG_TIMESTAMP)
                    for unused in (0, 2)}
#: property bytes (flags and properties) that passed the scan; shared by every connection (validity is
#: a function of the bytes alone), at most VALID_PROPERTIES_MAX entries of VALID_PROPERTIES_MAX_LEN bytes
VALID_PROPERTIES: set = set()
VALID_PROPERTIES_MAX = 4096
VALID_PROPERTIES_MAX_LEN = 512

#: field value tags RabbitMQ 3.10 decodes, and their sizes: >= 0 fixed, -1 a long string, -2 a table,
#: -3 an array, -4 a float (4 bytes), -5 a double (8 bytes), -6 a timestamp (8 bytes)
_FIELD_SIZES = {ord("t"): 1, ord("b"): 1, ord("B"): 1, ord("s"): 2, ord("u"): 2, ord("I"): 4, ord("i"): 4,
                ord("l"): 8, ord("L"): 8, ord("T"): -6, ord("D"): 5, ord("V"): 0,
                ord("S"): -1, ord("x"): -1, ord("F"): -2, ord("A"): -3, ord("f"): -4, ord("d"): -5}
#: the last second of year 9999: a timestamp in a table past it is refused (unlike RabbitMQ, which takes
#: any 64-bit value) because neither our decoder nor the clients' (pika's datetime) can read it
MAX_TABLE_TIMESTAMP = 253402300799
#: how deep tables and arrays may nest: the decoders (ours and the clients') recurse
MAX_NESTING = 100


def _plan(flags: int) -> tuple:
    plan = _plans[flags] = tuple(kind for bit, kind in _KINDS if flags & bit)
    return plan


def _value_ok(buf, pos: int, end: int, tag: int, depth: int) -> int:
    """The end of one field value with ``tag`` at ``pos``, or -1 when it does not decode."""
    size = _FIELD_SIZES.get(tag)
    if size is None:
        return -1
    if size >= 0:
        return pos + size
    if pos + 4 > end:
        return -1
    if size == -4:  # float: exponent all ones is NaN or an infinity
        return -1 if buf[pos] & 0x7F == 0x7F and buf[pos + 1] & 0x80 else pos + 4
    if size <= -5:
        if pos + 8 > end:
            return -1
        if size == -6:
            return -1 if int.from_bytes(buf[pos:pos + 8], "big") > MAX_TABLE_TIMESTAMP else pos + 8
        return -1 if buf[pos] & 0x7F == 0x7F and buf[pos + 1] & 0xF0 == 0xF0 else pos + 8
    n = pos + 4 + int.from_bytes(buf[pos:pos + 4], "big")
    if n > end:
        return -1
    if size == -1:
        return n
    if depth >= MAX_NESTING:
        return -1
    if size == -2:
        return n if _table_ok(buf, pos + 4, n, depth + 1) else -1
    return n if _array_ok(buf, pos + 4, n, depth + 1) else -1


def _table_ok(buf, pos: int, end: int, depth: int = 0) -> bool:
    """Whether ``buf[pos:end]`` is a field table's entries (short-string key, tag, value)."""
    while pos < end:
        pos += 1 + buf[pos]  # the key
        if pos >= end:
            return False
        pos = _value_ok(buf, pos + 1, end, buf[pos], depth)
        if pos < 0 or pos > end:
            return False
    return True


def _array_ok(buf, pos: int, end: int, depth: int) -> bool:
    while pos < end:
        pos = _value_ok(buf, pos + 1, end, buf[pos], depth)
        if pos < 0 or pos > end:
            return False
    return True


def properties_ok(buf, pos: int, end: int) -> bool:
    """Whether the property flags at ``buf[pos]`` and the properties after them, up to ``end``, decode.

    ``buf`` is a content-header payload (``pos`` = :data:`FLAGS_OFFSET`) or a whole read with the
    frame in it (no slice is made).  A structural scan, as described above; it never raises.  What
    passes is added to :data:`VALID_PROPERTIES`."""
    if _scan(buf, pos, end):
        if end - pos <= VALID_PROPERTIES_MAX_LEN:
            if len(VALID_PROPERTIES) >= VALID_PROPERTIES_MAX:
                VALID_PROPERTIES.clear()
            VALID_PROPERTIES.add(bytes(buf[pos:end]))
        return True
    return False


def _scan(buf, pos: int, end: int) -> bool:
    flags = (buf[pos] << 8) | buf[pos + 1]
    pos += 2
    if not flags & _PROPERTY_BITS:
        return pos == end and not flags & 1
    if flags & 1:  # a continuation flag word: not decoded (spec.BasicProperties refuses it too)
        return False
    flags &= _PROPERTY_BITS
    plan = _plans.get(flags)
    if plan is None:
        plan = _plan(flags)
    try:
        for kind in plan:
            if kind == _SHORT:
                pos += 1 + buf[pos]
            elif kind == _TABLE:
                start = pos + 4
                pos = start + int.from_bytes(buf[pos:start], "big")
                if pos > end or not _table_ok(buf, start, pos):
                    return False
            else:
                pos += kind
    except IndexError:  # a length byte past the end of the buffer
        return False
    return pos == end
