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
