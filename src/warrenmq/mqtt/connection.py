"""The server side of one MQTT connection as a state machine: bytes in, packets out, no sockets.

Theory of operation: :meth:`ServerConnection.receive_data` feeds the :class:`~.codec.PacketReader`
and returns the packets the session (the domain adapter) must act on; what the protocol alone
decides is done here and never reaches the session:

==================  ===========================================================================
state               what is accepted
==================  ===========================================================================
AWAIT_CONNECT       CONNECT only (anything else: PROTOCOL_ERROR, close)
CONNECTING          nothing yet: the session answers the CONNECT with :meth:`accept`/:meth:`refuse`
CONNECTED           every client packet but CONNECT (a second CONNECT: PROTOCOL_ERROR, close)
CLOSED              nothing; input is ignored
==================  ===========================================================================

Handled here: PINGREQ (answered with PINGRESP), MQTT 5 topic aliases on incoming PUBLISH (an alias
is resolved to its topic; an unknown or out-of-range alias is TOPIC_ALIAS_INVALID), the incoming
QoS 2 handshake (a PUBLISH whose packet identifier still waits for its PUBREL is a resend: answered
with PUBREC and not returned again, so the message is routed exactly once; PUBREL is answered with
PUBCOMP), and the outgoing one (a PUBREC from the client is answered with PUBREL and returned so the
session can settle the message; PUBCOMP frees the packet identifier).  Outgoing packet identifiers
come from :meth:`next_packet_id`, which skips identifiers still in flight.  Output is a list of
encoded packets taken once per loop turn (:meth:`take_output`).  The keepalive rule (a client silent
for 1.5 times its keepalive is disconnected) is the adapter's timer reading :attr:`keepalive`.
"""
from __future__ import annotations

import struct

from .codec import (encode_varint, CONNECT, DISCONNECT, MQTT5, PINGREQ, PUBACK, PUBCOMP, PUBLISH, PUBREC, PUBREL,
                    PROTOCOL_ERROR, TOPIC_ALIAS_INVALID, Connack, Disconnect, MQTTError, PacketReader,
                    PubAck, SUCCESS, encode, DEFAULT_MAX_PACKET_SIZE, PACKET_IDENTIFIER_NOT_FOUND)

AWAIT_CONNECT, CONNECTING, CONNECTED, CLOSED = "await_connect", "connecting", "connected", "closed"

_PID = struct.Struct(">H").pack
_ACK_HEAD = {PUBACK: b"\x40\x02", PUBREC: b"\x50\x02", PUBCOMP: b"\x70\x02"}


class ServerConnection:
    """One client's protocol state (see the module docstring)."""
    __slots__ = ("reader", "state", "version", "output", "keepalive", "topic_alias_maximum", "aliases",
                 "awaiting_rel", "inflight", "last_packet_id", "client_max_packet_size")

    def __init__(self, max_packet_size: int = DEFAULT_MAX_PACKET_SIZE, topic_alias_maximum: int = 16):
        self.reader = PacketReader(max_packet_size)
        self.state = AWAIT_CONNECT
        self.version = 4
        self.output: list[bytes] = []
        self.keepalive = 0
        self.topic_alias_maximum = topic_alias_maximum  # what the server accepts from the client (MQTT 5)
        self.aliases: dict[int, str] = {}  # incoming topic aliases
        self.awaiting_rel: set[int] = set()  # incoming QoS 2 packet ids published, waiting for PUBREL
        self.inflight: dict[int, int] = {}  # outgoing packet id -> the acknowledgement expected next
        self.last_packet_id = 0
        self.client_max_packet_size = 0  # MQTT 5: the largest packet the client accepts (0: no limit)

    # ------------------------------------------------------------------ input
    def receive_data(self, data) -> list:
        """The packets the session acts on; raises :class:`MQTTError` for a protocol violation (the
        caller sends what :meth:`error_output` gives and closes)."""
        if self.state == CLOSED:
            return []
        packets = self.reader.feed(data)
        if not packets:
            return packets
        out = []
        for pkt in packets:
            t = pkt.type
            state = self.state
            if state != CONNECTED:
                if state == AWAIT_CONNECT and t == CONNECT:
                    self.state = CONNECTING
                    self.version = pkt.version
                    self.keepalive = pkt.keepalive
                    if pkt.version == MQTT5:
                        self.client_max_packet_size = pkt.properties.get("maximum_packet_size", 0)
                    out.append(pkt)
                    continue
                if state == CLOSED:
                    break
                if state == CONNECTING:  # pipelined after CONNECT: kept in order for the session
                    out.append(pkt)
                    continue
                raise MQTTError(PROTOCOL_ERROR, "the first packet must be CONNECT")
            if t == PUBLISH:
                if self.version == MQTT5 and pkt.properties:
                    self._resolve_alias(pkt)
                if pkt.qos == 2:
                    pid = pkt.packet_id
                    if pid in self.awaiting_rel:  # a resend before PUBREL: routed once already
                        self.output.append(encode(PubAck(PUBREC, pid), self.version))
                        continue
                    self.awaiting_rel.add(pid)
                out.append(pkt)
            elif t == PINGREQ:
                self.output.append(b"\xd0\x00")
            elif t == PUBREL:
                pid = pkt.packet_id
                code = SUCCESS
                if pid in self.awaiting_rel:
                    self.awaiting_rel.discard(pid)
                else:
                    code = PACKET_IDENTIFIER_NOT_FOUND
                self.output.append(encode(PubAck(PUBCOMP, pid, code), self.version))
            elif t == PUBACK:
                if self.inflight.pop(pkt.packet_id, None) is not None:
                    out.append(pkt)
            elif t == PUBREC:
                pid = pkt.packet_id
                if self.inflight.get(pid) == PUBREC:
                    self.inflight[pid] = PUBCOMP
                    self.output.append(encode(PubAck(PUBREL, pid), self.version))
                    out.append(pkt)
                else:
                    self.output.append(encode(PubAck(PUBREL, pid, PACKET_IDENTIFIER_NOT_FOUND), self.version))
            elif t == PUBCOMP:
                if self.inflight.get(pkt.packet_id) == PUBCOMP:
                    del self.inflight[pkt.packet_id]
            elif t == CONNECT:
                raise MQTTError(PROTOCOL_ERROR, "second CONNECT")
            else:
                out.append(pkt)
                if t == DISCONNECT:
                    self.state = CLOSED
                    break
        return out

    def _resolve_alias(self, pkt) -> None:
        alias = pkt.properties.get("topic_alias")
        if alias is None:
            return
        if not 0 < alias <= self.topic_alias_maximum:
            raise MQTTError(TOPIC_ALIAS_INVALID, f"topic alias {alias} out of range")
        if pkt.topic:
            self.aliases[alias] = pkt.topic
        else:
            topic = self.aliases.get(alias)
            if topic is None:
                raise MQTTError(TOPIC_ALIAS_INVALID, f"unknown topic alias {alias}")
            pkt.topic = topic

    # ----------------------------------------------------------------- output
    def accept(self, session_present: bool, properties: dict | None = None) -> None:
        self.output.append(encode(Connack(session_present, SUCCESS, properties), self.version))
        self.state = CONNECTED

    def refuse(self, code: int, properties: dict | None = None) -> None:
        """Answer the CONNECT with the (MQTT 5) reason ``code``; the caller closes."""
        self.output.append(encode(Connack(False, code, properties), self.version))
        self.state = CLOSED

    def error_output(self, err: MQTTError) -> None:
        """What a protocol error sends before the close: a refused CONNACK for a bad CONNECT, a
        DISCONNECT with the reason code in MQTT 5, nothing in 3.1.1."""
        if err.connack is not None and self.state in (AWAIT_CONNECT, CONNECTING):
            self.refuse(err.connack)
        elif self.version == MQTT5 and self.state == CONNECTED:
            self.disconnect(err.code)
        self.state = CLOSED

    def disconnect(self, code: int, properties: dict | None = None) -> None:
        """A server DISCONNECT (MQTT 5 only: 3.1.1 has none, the server just closes)."""
        if self.version == MQTT5 and self.state == CONNECTED:
            self.output.append(encode(Disconnect(code, properties), MQTT5))
        self.state = CLOSED

    def send(self, pkt) -> None:
        self.output.append(encode(pkt, self.version))

    def next_packet_id(self) -> int:
        """An outgoing packet identifier not in flight (1..65535)."""
        inflight = self.inflight
        pid = self.last_packet_id
        for _ in range(65535):
            pid = pid + 1 if pid < 65535 else 1
            if pid not in inflight:
                self.last_packet_id = pid
                return pid
        raise MQTTError(PROTOCOL_ERROR, "no free packet identifier")

    def send_publish(self, pkt) -> int | None:
        """Send a PUBLISH; a QoS 1 or 2 one takes a packet identifier, which is returned.  A packet
        larger than the client's MQTT 5 maximum packet size is not sent (the spec says discard): None."""
        if pkt.qos:
            pid = pkt.packet_id = self.next_packet_id()
        else:
            pid = 0
        data = encode(pkt, self.version)
        if self.client_max_packet_size and len(data) > self.client_max_packet_size:
            return None
        if pid:
            self.inflight[pid] = PUBACK if pkt.qos == 1 else PUBREC
        self.output.append(data)
        return pid

    def send_plain_publish(self, topic: bytes, payload: bytes, qos: int, dup: bool) -> int | None:
        """:meth:`send_publish` of a PUBLISH without properties, not retained, its topic already encoded
        (length first, :func:`~.codec.encode_string`): the packet's bytes made in one expression."""
        v5 = self.version == MQTT5
        if qos:
            pid = self.next_packet_id()
            mid = _PID(pid) + b"\x00" if v5 else _PID(pid)
        else:
            pid = 0
            mid = b"\x00" if v5 else b""
        n = len(topic) + len(mid) + len(payload)
        first = 0x30 | (qos << 1) | (0x08 if dup else 0)
        data = (bytes((first, n)) if n < 128 else bytes((first,)) + encode_varint(n)) + topic + mid + payload
        if self.client_max_packet_size and len(data) > self.client_max_packet_size:
            return None
        if pid:
            self.inflight[pid] = PUBACK if qos == 1 else PUBREC
        self.output.append(data)
        return pid

    def send_ack(self, ptype: int, packet_id: int, code: int = SUCCESS) -> None:
        if code == SUCCESS and ptype != PUBREL:  # (MQTT 5 omits a success code without properties)
            self.output.append(_ACK_HEAD[ptype] + _PID(packet_id))
        else:
            self.output.append(encode(PubAck(ptype, packet_id, code), self.version))

    def take_output(self) -> bytes:
        out = self.output
        if not out:
            return b""
        self.output = []
        return b"".join(out)

    @property
    def keepalive_timeout(self) -> float:
        """Seconds of silence after which the client is gone (1.5 x keepalive; 0: never)."""
        return self.keepalive * 1.5
