"""MQTT 3.1, 3.1.1 and 5.0 control packets: bytes <-> packet objects, with no I/O.

Theory of operation: a packet is a fixed header (type in the high nibble of the first byte, flags in
the low one, then the *remaining length* as a variable byte integer of at most four bytes), a
variable header and a payload.  :class:`PacketReader` is fed bytes as they arrive and returns the
packets complete in its buffer; it reads the remaining length first and refuses a packet larger than
its ``max_packet_size`` before buffering it, so no input grows memory without bound (a partial
packet is held as a list of chunks until its announced size has arrived).  Decoding depends on the
protocol version, which the reader learns from the CONNECT packet (the first packet a server
reads): MQTT 5 adds properties to most packets and reason codes to the acknowledgements.

Anything malformed raises :class:`MQTTError` with the MQTT 5 reason code that names it
(``MALFORMED_PACKET``, ``PROTOCOL_ERROR``, ``PACKET_TOO_LARGE``, ...); for a bad CONNECT it also
carries the CONNACK return code to answer with (3.1.1's 1 for an unacceptable protocol version and
2 for a rejected client identifier have MQTT 5 equivalents).  :func:`encode` turns a packet object
back into bytes for a given version.  The packet classes are plain slotted objects.
"""
from __future__ import annotations

import struct

# packet types (the fixed header's high nibble)
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = 8, 9, 10, 11, 12, 13, 14, 15
PACKET_NAMES = {1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL",
                7: "PUBCOMP", 8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ",
                13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH"}

# protocol levels
MQTT31, MQTT311, MQTT5 = 3, 4, 5

# MQTT 5 reason codes used by the codec and the session (spec 2.4)
SUCCESS = 0x00
GRANTED_QOS_1, GRANTED_QOS_2 = 0x01, 0x02
DISCONNECT_WITH_WILL = 0x04
NO_MATCHING_SUBSCRIBERS = 0x10
NO_SUBSCRIPTION_EXISTED = 0x11
UNSPECIFIED_ERROR = 0x80
MALFORMED_PACKET = 0x81
PROTOCOL_ERROR = 0x82
IMPLEMENTATION_SPECIFIC_ERROR = 0x83
UNSUPPORTED_PROTOCOL_VERSION = 0x84
CLIENT_IDENTIFIER_NOT_VALID = 0x85
BAD_USER_NAME_OR_PASSWORD = 0x86
NOT_AUTHORIZED = 0x87
SERVER_UNAVAILABLE = 0x88
SERVER_BUSY = 0x89
SERVER_SHUTTING_DOWN = 0x8B
ADMINISTRATIVE_ACTION = 0x98
BAD_AUTHENTICATION_METHOD = 0x8C
KEEP_ALIVE_TIMEOUT = 0x8D
SESSION_TAKEN_OVER = 0x8E
TOPIC_FILTER_INVALID = 0x8F
TOPIC_NAME_INVALID = 0x90
PACKET_IDENTIFIER_IN_USE = 0x91
PACKET_IDENTIFIER_NOT_FOUND = 0x92
RECEIVE_MAXIMUM_EXCEEDED = 0x93
TOPIC_ALIAS_INVALID = 0x94
PACKET_TOO_LARGE = 0x95
QUOTA_EXCEEDED = 0x97
PAYLOAD_FORMAT_INVALID = 0x99
RETAIN_NOT_SUPPORTED = 0x9A
QOS_NOT_SUPPORTED = 0x9B
SHARED_SUBSCRIPTIONS_NOT_SUPPORTED = 0x9E
SUBSCRIPTION_IDENTIFIERS_NOT_SUPPORTED = 0xA1
WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED = 0xA2

# MQTT 3.1.1 CONNACK return codes
V3_ACCEPTED = 0
V3_UNACCEPTABLE_PROTOCOL_VERSION = 1
V3_IDENTIFIER_REJECTED = 2
V3_SERVER_UNAVAILABLE = 3
V3_BAD_USERNAME_OR_PASSWORD = 4
V3_NOT_AUTHORIZED = 5
# an MQTT 5 CONNACK reason code -> the 3.1.1 return code that says the same
V5_TO_V3_CONNACK = {SUCCESS: V3_ACCEPTED, UNSUPPORTED_PROTOCOL_VERSION: V3_UNACCEPTABLE_PROTOCOL_VERSION,
                    CLIENT_IDENTIFIER_NOT_VALID: V3_IDENTIFIER_REJECTED, SERVER_UNAVAILABLE: V3_SERVER_UNAVAILABLE,
                    BAD_USER_NAME_OR_PASSWORD: V3_BAD_USERNAME_OR_PASSWORD, NOT_AUTHORIZED: V3_NOT_AUTHORIZED}

SUBACK_FAILURE = 0x80  # 3.1.1's failure return code in a SUBACK (and MQTT 5's unspecified error)

DEFAULT_MAX_PACKET_SIZE = 256 * 1024 * 1024  # the largest the 4-byte remaining length can say, about
MAX_VARINT = 268_435_455


class MQTTError(Exception):
    """A protocol violation: ``code`` is the MQTT 5 reason code, ``connack`` (for a bad CONNECT) the
    MQTT 5 CONNACK reason code to answer with before closing, or None to close without answering."""

    def __init__(self, code: int, text: str, connack: int | None = None):
        super().__init__(text)
        self.code = code
        self.text = text
        self.connack = connack


# ------------------------------------------------------------------ properties
# property id -> (name, kind); kinds: b byte, h two-byte int, i four-byte int, v varint, s string,
# d binary data, p string pair (user property)
_PROPS = {
    0x01: ("payload_format_indicator", "b"), 0x02: ("message_expiry_interval", "i"),
    0x03: ("content_type", "s"), 0x08: ("response_topic", "s"), 0x09: ("correlation_data", "d"),
    0x0B: ("subscription_identifier", "v"), 0x11: ("session_expiry_interval", "i"),
    0x12: ("assigned_client_identifier", "s"), 0x13: ("server_keep_alive", "h"),
    0x15: ("authentication_method", "s"), 0x16: ("authentication_data", "d"),
    0x17: ("request_problem_information", "b"), 0x18: ("will_delay_interval", "i"),
    0x19: ("request_response_information", "b"), 0x1A: ("response_information", "s"),
    0x1C: ("server_reference", "s"), 0x1F: ("reason_string", "s"), 0x21: ("receive_maximum", "h"),
    0x22: ("topic_alias_maximum", "h"), 0x23: ("topic_alias", "h"), 0x24: ("maximum_qos", "b"),
    0x25: ("retain_available", "b"), 0x26: ("user_property", "p"), 0x27: ("maximum_packet_size", "i"),
    0x28: ("wildcard_subscription_available", "b"), 0x29: ("subscription_identifier_available", "b"),
    0x2A: ("shared_subscription_available", "b"),
}
PROPERTY_IDS = {name: (pid, kind) for pid, (name, kind) in _PROPS.items()}
# properties that may occur more than once: their value is a list
_REPEATABLE = {"user_property", "subscription_identifier"}


def encode_varint(n: int) -> bytes:
    """A variable byte integer (at most four bytes: 0..268,435,455)."""
    if n < 128:
        return bytes((n,))
    if not 0 <= n <= MAX_VARINT:
        raise ValueError(f"variable byte integer out of range: {n}")
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        if n:
            out.append(digit | 0x80)
        else:
            out.append(digit)
            return bytes(out)


def decode_varint(buf, pos: int, end: int) -> tuple[int, int]:
    """(value, position after it); MALFORMED_PACKET past ``end`` or beyond four bytes."""
    value = 0
    shift = 0
    for _ in range(4):
        if pos >= end:
            raise MQTTError(MALFORMED_PACKET, "truncated variable byte integer")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
    raise MQTTError(MALFORMED_PACKET, "variable byte integer longer than four bytes")


def _utf8(s: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 65535:
        raise ValueError("string longer than 65535 bytes")
    return struct.pack("!H", len(b)) + b


#: a UTF-8 string as MQTT encodes it (two length bytes first)
encode_string = _utf8


def _bin(b: bytes) -> bytes:
    if len(b) > 65535:
        raise ValueError("binary data longer than 65535 bytes")
    return struct.pack("!H", len(b)) + bytes(b)


def encode_properties(props: dict | None) -> bytes:
    """An MQTT 5 property block (its length first); ``props`` maps property names to values."""
    if not props:
        return b"\x00"
    out = bytearray()
    for name, value in props.items():
        pid, kind = PROPERTY_IDS[name]
        values = value if name in _REPEATABLE else (value,)
        for v in values:
            out.append(pid)
            if kind == "b":
                out.append(v)
            elif kind == "h":
                out += struct.pack("!H", v)
            elif kind == "i":
                out += struct.pack("!I", v)
            elif kind == "v":
                out += encode_varint(v)
            elif kind == "s":
                out += _utf8(v)
            elif kind == "d":
                out += _bin(v)
            else:  # p
                out += _utf8(v[0]) + _utf8(v[1])
    return encode_varint(len(out)) + bytes(out)


class _Decoder:
    """Reads the fields of one packet body; every read checks the bounds (MALFORMED_PACKET)."""
    __slots__ = ("buf", "pos", "end")

    def __init__(self, buf, pos: int = 0, end: int | None = None):
        self.buf = buf
        self.pos = pos
        self.end = len(buf) if end is None else end

    def remaining(self) -> int:
        return self.end - self.pos

    def byte(self) -> int:
        if self.pos >= self.end:
            raise MQTTError(MALFORMED_PACKET, "packet too short")
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def u16(self) -> int:
        p = self.pos
        if p + 2 > self.end:
            raise MQTTError(MALFORMED_PACKET, "packet too short")
        self.pos = p + 2
        return (self.buf[p] << 8) | self.buf[p + 1]

    def u32(self) -> int:
        p = self.pos
        if p + 4 > self.end:
            raise MQTTError(MALFORMED_PACKET, "packet too short")
        self.pos = p + 4
        return struct.unpack_from("!I", self.buf, p)[0]

    def varint(self) -> int:
        v, self.pos = decode_varint(self.buf, self.pos, self.end)
        return v

    def binary(self) -> bytes:
        n = self.u16()
        p = self.pos
        if p + n > self.end:
            raise MQTTError(MALFORMED_PACKET, "string or binary data longer than the packet")
        self.pos = p + n
        return bytes(self.buf[p:p + n])

    def string(self) -> str:
        raw = self.binary()
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise MQTTError(MALFORMED_PACKET, "string is not well-formed UTF-8") from None
        if "\x00" in s:
            raise MQTTError(MALFORMED_PACKET, "string contains U+0000")
        return s

    def rest(self) -> bytes:
        b = bytes(self.buf[self.pos:self.end])
        self.pos = self.end
        return b

    def properties(self) -> dict:
        n = self.varint()
        end = self.pos + n
        if end > self.end:
            raise MQTTError(MALFORMED_PACKET, "property length beyond the packet")
        props: dict = {}
        outer_end, self.end = self.end, end
        try:
            while self.pos < end:
                pid = self.varint()
                spec = _PROPS.get(pid)
                if spec is None:
                    raise MQTTError(MALFORMED_PACKET, f"unknown property identifier 0x{pid:02x}")
                name, kind = spec
                if kind == "b":
                    v = self.byte()
                elif kind == "h":
                    v = self.u16()
                elif kind == "i":
                    v = self.u32()
                elif kind == "v":
                    v = self.varint()
                elif kind == "s":
                    v = self.string()
                elif kind == "d":
                    v = self.binary()
                else:
                    v = (self.string(), self.string())
                if name in _REPEATABLE:
                    props.setdefault(name, []).append(v)
                elif name in props:
                    raise MQTTError(PROTOCOL_ERROR, f"property {name} included more than once")
                else:
                    props[name] = v
        finally:
            self.end = outer_end
        return props


# ------------------------------------------------------------------- packets
class Packet:
    __slots__ = ()
    type = 0

    def __eq__(self, other):
        return type(self) is type(other) and all(getattr(self, s) == getattr(other, s) for s in self.__slots__)

    def __repr__(self):
        fields = ", ".join(f"{s}={getattr(self, s)!r}" for s in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Will(Packet):
    __slots__ = ("topic", "payload", "qos", "retain", "properties")

    def __init__(self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False,
                 properties: dict | None = None):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.properties = properties or {}


class Connect(Packet):
    __slots__ = ("version", "client_id", "clean", "keepalive", "username", "password", "will", "properties")
    type = CONNECT

    def __init__(self, version: int = MQTT311, client_id: str = "", clean: bool = True, keepalive: int = 60,
                 username: str | None = None, password: bytes | None = None, will: Will | None = None,
                 properties: dict | None = None):
        self.version = version
        self.client_id = client_id
        self.clean = clean
        self.keepalive = keepalive
        self.username = username
        self.password = password
        self.will = will
        self.properties = properties or {}


class Connack(Packet):
    __slots__ = ("session_present", "code", "properties")
    type = CONNACK

    def __init__(self, session_present: bool = False, code: int = SUCCESS, properties: dict | None = None):
        self.session_present = session_present
        self.code = code  # the MQTT 5 reason code; encoded as the 3.1.1 return code for older versions
        self.properties = properties or {}


class Publish(Packet):
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "packet_id", "properties")
    type = PUBLISH

    def __init__(self, topic: str, payload: bytes = b"", qos: int = 0, retain: bool = False, dup: bool = False,
                 packet_id: int | None = None, properties: dict | None = None):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.packet_id = packet_id
        self.properties = properties or {}


class PubAck(Packet):
    """PUBACK, PUBREC, PUBREL and PUBCOMP: a packet identifier, in MQTT 5 a reason code and properties."""
    __slots__ = ("type", "packet_id", "code", "properties")

    def __init__(self, type: int, packet_id: int, code: int = SUCCESS, properties: dict | None = None):
        self.type = type
        self.packet_id = packet_id
        self.code = code
        self.properties = properties or {}


class Subscription(Packet):
    """One topic filter of a SUBSCRIBE with its options (MQTT 5's no local, retain as published and
    retain handling are 0 for older versions)."""
    __slots__ = ("topic_filter", "qos", "no_local", "retain_as_published", "retain_handling")

    def __init__(self, topic_filter: str, qos: int = 0, no_local: bool = False, retain_as_published: bool = False,
                 retain_handling: int = 0):
        self.topic_filter = topic_filter
        self.qos = qos
        self.no_local = no_local
        self.retain_as_published = retain_as_published
        self.retain_handling = retain_handling


class Subscribe(Packet):
    __slots__ = ("packet_id", "subscriptions", "properties")
    type = SUBSCRIBE

    def __init__(self, packet_id: int, subscriptions: list, properties: dict | None = None):
        self.packet_id = packet_id
        self.subscriptions = subscriptions
        self.properties = properties or {}


class Suback(Packet):
    __slots__ = ("packet_id", "codes", "properties")
    type = SUBACK

    def __init__(self, packet_id: int, codes: list, properties: dict | None = None):
        self.packet_id = packet_id
        self.codes = codes
        self.properties = properties or {}


class Unsubscribe(Packet):
    __slots__ = ("packet_id", "topic_filters", "properties")
    type = UNSUBSCRIBE

    def __init__(self, packet_id: int, topic_filters: list, properties: dict | None = None):
        self.packet_id = packet_id
        self.topic_filters = topic_filters
        self.properties = properties or {}


class Unsuback(Packet):
    __slots__ = ("packet_id", "codes", "properties")
    type = UNSUBACK

    def __init__(self, packet_id: int, codes: list | None = None, properties: dict | None = None):
        self.packet_id = packet_id
        self.codes = codes or []  # MQTT 5 only
        self.properties = properties or {}


class PingReq(Packet):
    __slots__ = ()
    type = PINGREQ


class PingResp(Packet):
    __slots__ = ()
    type = PINGRESP


class Disconnect(Packet):
    __slots__ = ("code", "properties")
    type = DISCONNECT

    def __init__(self, code: int = SUCCESS, properties: dict | None = None):
        self.code = code
        self.properties = properties or {}


class Auth(Packet):
    __slots__ = ("code", "properties")
    type = AUTH

    def __init__(self, code: int = SUCCESS, properties: dict | None = None):
        self.code = code
        self.properties = properties or {}


# ------------------------------------------------------------------ decoding
# the fixed header flags each type must carry (PUBLISH's are its own)
_REQUIRED_FLAGS = {PUBREL: 2, SUBSCRIBE: 2, UNSUBSCRIBE: 2}


def _decode_connect(d: _Decoder) -> Connect:
    name = d.binary()
    level = d.byte()
    if (name, level) not in ((b"MQTT", MQTT311), (b"MQTT", MQTT5), (b"MQIsdp", MQTT31)):
        if name not in (b"MQTT", b"MQIsdp"):
            raise MQTTError(PROTOCOL_ERROR, f"unknown protocol name {name!r}")
        raise MQTTError(UNSUPPORTED_PROTOCOL_VERSION, f"unsupported protocol level {level}",
                        connack=UNSUPPORTED_PROTOCOL_VERSION)
    flags = d.byte()
    if flags & 0x01:
        raise MQTTError(MALFORMED_PACKET, "CONNECT reserved flag set")
    will_flag = flags & 0x04
    will_qos = (flags >> 3) & 0x03
    will_retain = bool(flags & 0x20)
    if not will_flag and (will_qos or will_retain):
        raise MQTTError(MALFORMED_PACKET, "will QoS or retain set without the will flag")
    if will_qos == 3:
        raise MQTTError(MALFORMED_PACKET, "will QoS 3")
    has_user = flags & 0x80
    has_password = flags & 0x40
    if has_password and not has_user and level != MQTT5:
        raise MQTTError(MALFORMED_PACKET, "password flag without user name flag")
    keepalive = d.u16()
    props = d.properties() if level == MQTT5 else {}
    client_id = d.string()
    will = None
    if will_flag:
        will_props = d.properties() if level == MQTT5 else {}
        topic = d.string()
        payload = d.binary()
        will = Will(topic, payload, will_qos, will_retain, will_props)
    username = d.string() if has_user else None
    password = d.binary() if has_password else None
    if d.remaining():
        raise MQTTError(MALFORMED_PACKET, "bytes after the CONNECT payload")
    return Connect(level, client_id, bool(flags & 0x02), keepalive, username, password, will, props)


def decode_packet(first: int, body, version: int) -> Packet:
    """One packet from its first byte and its body (the bytes after the remaining length)."""
    ptype = first >> 4
    flags = first & 0x0F
    d = _Decoder(body)
    v5 = version == MQTT5
    if ptype == PUBLISH:
        qos = (flags >> 1) & 0x03
        if qos == 3:
            raise MQTTError(MALFORMED_PACKET, "PUBLISH with QoS 3")
        dup = bool(flags & 0x08)
        if dup and qos == 0:
            raise MQTTError(MALFORMED_PACKET, "DUP set on a QoS 0 PUBLISH")
        topic = d.string()
        packet_id = None
        if qos:
            packet_id = d.u16()
            if packet_id == 0:
                raise MQTTError(MALFORMED_PACKET, "packet identifier 0")
        props = d.properties() if v5 else {}
        return Publish(topic, d.rest(), qos, bool(flags & 0x01), dup, packet_id, props)
    required = _REQUIRED_FLAGS.get(ptype, 0)
    if flags != required:
        raise MQTTError(MALFORMED_PACKET, f"{PACKET_NAMES.get(ptype, ptype)} with fixed header flags {flags}")
    if PUBACK <= ptype <= PUBCOMP:
        packet_id = d.u16()
        code = SUCCESS
        props = {}
        if v5 and d.remaining():
            code = d.byte()
            if d.remaining():
                props = d.properties()
        if d.remaining():
            raise MQTTError(MALFORMED_PACKET, "bytes after the acknowledgement")
        return PubAck(ptype, packet_id, code, props)
    if ptype == CONNECT:
        return _decode_connect(d)
    if ptype == SUBSCRIBE:
        packet_id = d.u16()
        if packet_id == 0:
            raise MQTTError(MALFORMED_PACKET, "packet identifier 0")
        props = d.properties() if v5 else {}
        subs = []
        while d.remaining():
            topic_filter = d.string()
            opts = d.byte()
            if v5:
                if opts & 0xC0 or (opts >> 4) & 0x03 == 3:
                    raise MQTTError(MALFORMED_PACKET, "reserved subscription option bits set")
            elif opts & 0xFC:
                raise MQTTError(MALFORMED_PACKET, "reserved subscription option bits set")
            qos = opts & 0x03
            if qos == 3:
                raise MQTTError(MALFORMED_PACKET, "subscription QoS 3")
            subs.append(Subscription(topic_filter, qos, bool(opts & 0x04), bool(opts & 0x08), (opts >> 4) & 0x03))
        if not subs:
            raise MQTTError(PROTOCOL_ERROR, "SUBSCRIBE without a topic filter")
        return Subscribe(packet_id, subs, props)
    if ptype == UNSUBSCRIBE:
        packet_id = d.u16()
        if packet_id == 0:
            raise MQTTError(MALFORMED_PACKET, "packet identifier 0")
        props = d.properties() if v5 else {}
        filters = []
        while d.remaining():
            filters.append(d.string())
        if not filters:
            raise MQTTError(PROTOCOL_ERROR, "UNSUBSCRIBE without a topic filter")
        return Unsubscribe(packet_id, filters, props)
    if ptype == PINGREQ or ptype == PINGRESP:
        if d.remaining():
            raise MQTTError(MALFORMED_PACKET, "bytes in a PING packet")
        return PingReq() if ptype == PINGREQ else PingResp()
    if ptype == DISCONNECT or ptype == AUTH:
        code = SUCCESS
        props = {}
        if d.remaining():
            if not v5:
                raise MQTTError(MALFORMED_PACKET, "bytes in a DISCONNECT packet")
            code = d.byte()
            if d.remaining():
                props = d.properties()
        if d.remaining():
            raise MQTTError(MALFORMED_PACKET, "bytes after the properties")
        if ptype == AUTH and not v5:
            raise MQTTError(MALFORMED_PACKET, "AUTH before MQTT 5")
        return Disconnect(code, props) if ptype == DISCONNECT else Auth(code, props)
    if ptype == CONNACK:
        ack = d.byte()
        if ack & 0xFE:
            raise MQTTError(MALFORMED_PACKET, "CONNACK reserved flags set")
        code = d.byte()
        if not v5:
            code = {v: k for k, v in V5_TO_V3_CONNACK.items()}.get(code, UNSPECIFIED_ERROR)
        props = d.properties() if v5 else {}
        return Connack(bool(ack & 1), code, props)
    if ptype == SUBACK or ptype == UNSUBACK:
        packet_id = d.u16()
        props = d.properties() if v5 else {}
        codes = list(d.rest())
        return Suback(packet_id, codes, props) if ptype == SUBACK else Unsuback(packet_id, codes, props)
    raise MQTTError(MALFORMED_PACKET, f"reserved packet type {ptype}")


def _plain_publish(first: int, data: bytes, p: int, end: int):
    """An MQTT 3.1/3.1.1 PUBLISH of QoS 0 or 1 without DUP (``first`` & 0xFC == 0x30) from ``data[p:end]``,
    as :func:`decode_packet` would make it; None when it is not well formed (the decoder then says why)."""
    t_end = p + 2 + ((data[p] << 8) | data[p + 1])
    qos = (first >> 1) & 1
    body = t_end + 2 * qos
    if body > end:
        return None
    try:
        topic = str(data[p + 2:t_end], "utf-8")
    except UnicodeDecodeError:
        return None
    if "\x00" in topic:
        return None
    pid = None
    if qos:
        pid = (data[t_end] << 8) | data[t_end + 1]
        if not pid:
            return None
    return Publish(topic, bytes(data[body:end]), qos, bool(first & 0x01), False, pid, None)


class PacketReader:
    """Splits a byte stream into packets.  ``version`` is None until a CONNECT has been read (then
    the CONNECT's protocol level), or set by the caller (a client knows what it speaks)."""
    __slots__ = ("chunks", "size", "need", "max_packet_size", "version")

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, version: int | None = None):
        self.chunks: list = []
        self.size = 0  # bytes held in chunks
        self.need = 0  # bytes the held partial packet needs in all (0: not known yet)
        self.max_packet_size = max_packet_size
        self.version = version

    def feed(self, data) -> list:
        """The packets complete after ``data``; raises :class:`MQTTError` on malformed input (the
        stream is then unusable: the caller closes the connection)."""
        if self.chunks:
            self.chunks.append(data)
            self.size += len(data)
            if self.size < self.need:  # a large packet arriving in pieces is joined once
                return []
            data = b"".join(self.chunks)
            self.chunks = []
        out = []
        pos = 0
        n = len(data)
        self.need = 0
        mv = memoryview(data)
        try:
            while pos < n:
                if n - pos < 2:
                    break
                first = data[pos]
                # remaining length: read only as many bytes as are here
                length = 0
                shift = 0
                p = pos + 1
                complete = False
                for _ in range(4):
                    if p >= n:
                        break
                    b = data[p]
                    p += 1
                    length |= (b & 0x7F) << shift
                    if not b & 0x80:
                        complete = True
                        break
                    shift += 7
                else:
                    if not complete:
                        raise MQTTError(MALFORMED_PACKET, "remaining length longer than four bytes")
                if not complete:
                    break
                total = p - pos + length
                if total > self.max_packet_size:
                    raise MQTTError(PACKET_TOO_LARGE, f"packet of {total} bytes exceeds the maximum of "
                                    f"{self.max_packet_size}")
                if p + length > n:
                    self.need = total
                    break
                version = self.version
                if version is None:
                    if first >> 4 != CONNECT:
                        raise MQTTError(PROTOCOL_ERROR, "the first packet must be CONNECT")
                    pkt = decode_packet(first, mv[p:p + length], MQTT311)
                    self.version = pkt.version
                else:
                    pkt = None
                    if first & 0xFC == 0x30 and version != MQTT5 and length > 2:
                        pkt = _plain_publish(first, data, p, p + length)  # the hot path: QoS 0 and 1
                    elif first == 0x40 and length == 2:
                        pkt = PubAck(PUBACK, (data[p] << 8) | data[p + 1]) if data[p] or data[p + 1] else None
                    if pkt is None:  # anything else, and anything the fast paths leave to the full decoder
                        pkt = decode_packet(first, mv[p:p + length], version)
                out.append(pkt)
                pos = p + length
        finally:
            mv.release()
        if pos < n:
            rest = data[pos:]
            self.chunks.append(rest)
            self.size = len(rest)
            if self.size >= self.need:  # the header is not complete yet
                self.need = 0
        else:
            self.size = self.need = 0
        return out


# ------------------------------------------------------------------ encoding
def _frame(first: int, body: bytes) -> bytes:
    return bytes((first,)) + encode_varint(len(body)) + body


def encode(pkt: Packet, version: int = MQTT311) -> bytes:
    """The bytes of ``pkt`` for protocol level ``version``."""
    v5 = version == MQTT5
    t = pkt.type
    if t == PUBLISH:
        first = 0x30 | (pkt.qos << 1) | (0x08 if pkt.dup else 0) | (0x01 if pkt.retain else 0)
        body = _utf8(pkt.topic)
        if pkt.qos:
            body += struct.pack("!H", pkt.packet_id)
        if v5:
            body += encode_properties(pkt.properties)
        return _frame(first, body + bytes(pkt.payload))
    if PUBACK <= t <= PUBCOMP:
        body = struct.pack("!H", pkt.packet_id)
        if v5 and (pkt.code or pkt.properties):
            body += bytes((pkt.code,))
            if pkt.properties:
                body += encode_properties(pkt.properties)
        return _frame((t << 4) | (2 if t == PUBREL else 0), body)
    if t == CONNACK:
        code = pkt.code if v5 else V5_TO_V3_CONNACK.get(pkt.code, V3_SERVER_UNAVAILABLE)
        body = bytes((1 if pkt.session_present else 0, code))
        if v5:
            body += encode_properties(pkt.properties)
        return _frame(0x20, body)
    if t == SUBACK or t == UNSUBACK:
        body = struct.pack("!H", pkt.packet_id)
        if v5:
            body += encode_properties(pkt.properties)
        if v5 or t == SUBACK:
            body += bytes(pkt.codes)
        return _frame(t << 4, body)
    if t == PINGREQ or t == PINGRESP:
        return bytes((t << 4, 0))
    if t == DISCONNECT or t == AUTH:
        body = b""
        if v5 and (pkt.code or pkt.properties):
            body = bytes((pkt.code,)) + (encode_properties(pkt.properties) if pkt.properties else b"")
        return _frame(t << 4, body)
    if t == SUBSCRIBE:
        body = struct.pack("!H", pkt.packet_id)
        if v5:
            body += encode_properties(pkt.properties)
        for s in pkt.subscriptions:
            opts = s.qos
            if v5:
                opts |= (0x04 if s.no_local else 0) | (0x08 if s.retain_as_published else 0) | (s.retain_handling << 4)
            body += _utf8(s.topic_filter) + bytes((opts,))
        return _frame(0x82, body)
    if t == UNSUBSCRIBE:
        body = struct.pack("!H", pkt.packet_id)
        if v5:
            body += encode_properties(pkt.properties)
        for f in pkt.topic_filters:
            body += _utf8(f)
        return _frame(0xA2, body)
    if t == CONNECT:
        version = pkt.version
        name = b"MQIsdp" if version == MQTT31 else b"MQTT"
        flags = 0x02 if pkt.clean else 0
        w = pkt.will
        if w is not None:
            flags |= 0x04 | (w.qos << 3) | (0x20 if w.retain else 0)
        if pkt.username is not None:
            flags |= 0x80
        if pkt.password is not None:
            flags |= 0x40
        body = _bin(name) + bytes((version, flags)) + struct.pack("!H", pkt.keepalive)
        if version == MQTT5:
            body += encode_properties(pkt.properties)
        body += _utf8(pkt.client_id)
        if w is not None:
            if version == MQTT5:
                body += encode_properties(w.properties)
            body += _utf8(w.topic) + _bin(w.payload)
        if pkt.username is not None:
            body += _utf8(pkt.username)
        if pkt.password is not None:
            body += _bin(pkt.password)
        return _frame(0x10, body)
    raise ValueError(f"cannot encode {pkt!r}")
