"""The MQTT adapter: an MQTT connection's packets as calls on the domain, as RabbitMQ's MQTT plugin maps them.

Theory of operation: an :class:`MQTTSession` per connection owns a
:class:`~.connection.ServerConnection` (the protocol state) and, once connected, one domain channel
(:class:`MQTTChannel`, a :class:`~warrenmq.broker.channel.Channel`) in confirm mode.  The mapping
(docs/mqtt.md has the table):

* CONNECT: the user name is ``vhost:user`` or ``user`` (then the ``mqtt_vhost``); no user name is
  the anonymous login (``mqtt_default_user``/``mqtt_default_pass``) when ``mqtt_allow_anonymous``,
  unless ``mqtt_ssl_cert_login`` and a verified client certificate name the user (broker/certlogin.py).
  Bad credentials: return code 4 (MQTT 5: 0x86); no access to the vhost: 5 (0x87).  A client id
  already connected in the vhost is taken over: the older connection is closed (MQTT 5: DISCONNECT
  0x8E first).  A clean session deletes the client's queues first; a persistent one resumes them.
* PUBLISH: topic ``a/b.c`` becomes routing key ``a.b/c`` (``/`` and ``.`` swapped) on the
  ``mqtt_exchange`` (amq.topic), through ``Channel.publish`` and so the one publish path; QoS 0 is
  delivery mode 1, QoS 1 and 2 delivery mode 2, with RabbitMQ's ``x-mqtt-publish-qos`` and
  ``x-mqtt-dup`` headers.  The PUBACK (QoS 1) or PUBREC (QoS 2) is the publish's confirm, so it
  waits for the store when the message was persisted.  Write permission on the exchange and the
  topic permission for the routing key are checked as RabbitMQ does.
* SUBSCRIBE: QoS 0 filters bind ``mqtt-subscription-<client id>qos0`` (not durable), QoS 1 and 2
  ``...qos1`` (durable), both auto-deleted when the session is clean; ``+`` and ``#`` become ``*``
  and ``#``.  Each queue has one consumer (QoS 0's without acks, prefetch ``mqtt_prefetch`` for the
  other).  Retained messages matching the filter, wildcards included, are sent after the SUBACK.
* Delivery: QoS is the lower of the message's (its x-mqtt-publish-qos, or delivery mode 2 = 1) and
  the subscription's; a QoS 1 delivery is settled by its PUBACK, a QoS 2 one by its PUBREC; a
  message delivered at QoS 0 from the QoS 1 queue is acked at once (after the dispatch).
* Will: published when the connection ends without DISCONNECT (MQTT 5: or with reason 0x04).
* Persistent sessions live in the client's queues: a subscription is a binding, whose arguments
  carry its granted QoS 2 and MQTT 5 options (:func:`_bind_args`), so a resumed session (a reconnect,
  or a restart for the durable QoS 1 queue) reads its filters back from the bindings.  The incoming
  QoS 2 packet ids awaiting PUBREL, and the outgoing ones awaiting PUBCOMP, of a client that went are
  kept by the listener until it returns (then the PUBRELs are sent again, after the CONNACK).
  A persistent session's membership of a shared subscription is a binding of the group's queue
  (:func:`_shared_member`), so it consumes from it again when it returns; the queue goes when no member
  session is left (:func:`release_shared_queue`).
* Retained messages: per vhost in :class:`RetainedStore` (topic -> the PUBLISH), replaced by a newer
  retained publish to the topic and removed by an empty one.

No per-message logging, exceptions or dictionaries on the publish and deliver paths: the headers of
a publish without MQTT 5 properties are encoded once per QoS.
"""
from __future__ import annotations

import logging
import math
import os
import struct
import time
from collections import deque

from ..broker.certlogin import peer_cert_auth_name
from ..broker.channel import Channel
from ..broker.exchanges import args_key
from ..protocol.codec import encode_shortstr
from ..protocol.errors import AMQPError
from ..protocol.properties import content_header
from ..protocol.spec import BasicProperties
from . import codec
from .codec import (MQTT5, PUBACK, PUBCOMP, PUBREC, PUBREL, MQTTError, Publish, Suback, Unsuback)
from .connection import CONNECTED, ServerConnection

log = logging.getLogger("warrenmq.mqtt")

_HEADER_HEAD = struct.Struct(">HHQ").pack


def topic_to_key(topic: str) -> str:
    """An MQTT topic name or filter as an AMQP routing or binding key: ``/`` <-> ``.``, ``+`` -> ``*``."""
    return topic.translate(_TO_KEY)


def key_to_topic(key: str) -> str:
    return key.translate(_TO_TOPIC)


_TO_KEY = str.maketrans({"/": ".", ".": "/", "+": "*"})
_TO_TOPIC = str.maketrans({".": "/", "/": "."})


#: what a subscription's binding carries besides its key, so a persistent session resumed from its queues
#: (after a reconnect or a restart: the bindings of the durable QoS 1 queue are stored) has each filter's
#: granted QoS (the QoS 1 queue holds QoS 1 and 2 subscriptions alike) and MQTT 5 subscription options
_QOS_ARG, _NO_LOCAL_ARG, _RAP_ARG = "x-mqtt-subscription-qos", "x-mqtt-no-local", "x-mqtt-retain-as-published"
_SID_ARG, _RH_ARG = "x-mqtt-subscription-identifier", "x-mqtt-retain-handling"
#: a persistent session's membership of a shared subscription is a binding of the shared queue (with the
#: same key as the group's own, so routing is unchanged) carrying these and its QoS and identifier
_MEMBER_ARG, _FILTER_ARG = "x-mqtt-shared-member", "x-mqtt-shared-filter"
_QOS2_ARGS = {_QOS_ARG: 2}


def _bind_args(qos: int, no_local=False, rap=False, sid=None, rh=0):
    """The binding arguments of a subscription: none for a plain QoS 0 or 1 one (as before options were
    kept, so older bindings resume as they were)."""
    if not (no_local or rap or sid or rh):
        return _QOS2_ARGS if qos == 2 else None
    args = {_QOS_ARG: 2} if qos == 2 else {}
    if no_local:
        args[_NO_LOCAL_ARG] = True
    if rap:
        args[_RAP_ARG] = True
    if sid:
        args[_SID_ARG] = sid
    if rh:
        args[_RH_ARG] = rh
    return args


def _thaw_args(key: tuple) -> dict | None:
    """A binding's arguments back from :func:`~warrenmq.broker.exchanges.args_key` (scalars only here)."""
    return {k: v[1] for k, v in key} or None


def valid_filter(f: str) -> bool:
    if not f:
        return False
    levels = f.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether an MQTT topic name matches a filter (spec 4.7; ``$`` topics only by explicit filters)."""
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f = topic_filter.split("/")
    t = topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t):
            return False
        if level != "+" and level != t[i]:
            return False
    return len(f) == len(t)


def _props_bytes(qos: int) -> bytes:
    return BasicProperties(headers={"x-mqtt-publish-qos": qos, "x-mqtt-dup": False},
                           delivery_mode=2 if qos else 1).encode()


_PLAIN_PROPS = tuple(_props_bytes(q) for q in range(3))  # the headers of a publish without MQTT 5 properties

#: entries of the per-connection topic -> (routing key, exchange and key encoded) cache of publishes and the
#: routing key -> encoded topic cache of deliveries (cleared when full: a device publishes to a few topics)
KEY_CACHE = 1024
_TOPICS: dict[str, bytes] = {}


def amqp_header(pkt: Publish, extra: dict | None = None) -> bytes:
    """The AMQP content header of an MQTT publish (RabbitMQ's mapping; MQTT 5 properties as docs/mqtt.md).
    A retained publish also carries ``x-mqtt-retain`` (for MQTT 5's retain as published), and ``extra``
    headers (``x-mqtt-publisher`` from a session with a no-local subscription)."""
    p = pkt.properties
    if (not p or set(p) <= {"topic_alias", "payload_format_indicator"}) and not pkt.retain and extra is None:
        return _HEADER_HEAD(60, 0, len(pkt.payload)) + _PLAIN_PROPS[pkt.qos]
    headers = {"x-mqtt-publish-qos": pkt.qos, "x-mqtt-dup": False}
    if pkt.retain:
        headers["x-mqtt-retain"] = True
    if extra:
        headers.update(extra)
    users = p.get("user_property")
    if users:
        _user_headers(users, headers)
    props = BasicProperties(headers=headers, delivery_mode=2 if pkt.qos else 1)
    if "content_type" in p:
        props.content_type = p["content_type"][:255]
    if "correlation_data" in p:
        cd = p["correlation_data"]
        try:
            s = cd.decode("utf-8")
            if len(cd) <= 255:
                props.correlation_id = s
            else:
                headers["x-correlation-id"] = cd
        except UnicodeDecodeError:
            headers["x-correlation-id"] = cd
    if "response_topic" in p:
        props.reply_to = topic_to_key(p["response_topic"])[:255]
    if "message_expiry_interval" in p:
        props.expiration = str(p["message_expiry_interval"] * 1000)
    if "payload_format_indicator" in p:
        headers["x-mqtt-payload-format"] = p["payload_format_indicator"]
    return content_header(props, len(pkt.payload))


def _user_headers(users: list, headers: dict) -> None:
    """MQTT 5 user properties as AMQP headers: a name given once is a string header, a name given several
    times an array of its values in order (MQTT 5 allows repeats, 3.3.2.3.7); when repeated names are
    interleaved (a, b, a), ``x-mqtt-user-property-order`` lists the names in the order given, so an MQTT
    subscriber gets them back in exactly that order (the spec's MQTT-3.3.2-18)."""
    before = len(headers)
    for k, v in users:
        headers[k] = v
    if len(headers) - before == len(users):  # no name twice (the common case): nothing more to build
        return
    names: dict = {}
    for k, v in users:
        vals = names.get(k)
        if vals is None:
            names[k] = [v]
        else:
            vals.append(v)
    grouped = [k for k, vals in names.items() for _ in vals]
    for k, vals in names.items():
        headers[k] = vals[0] if len(vals) == 1 else vals
    if grouped != [k for k, _ in users]:
        headers[_ORDER_HEADER] = [k for k, _ in users]


_ORDER_HEADER = "x-mqtt-user-property-order"


def _text(v) -> str:
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


def mqtt5_properties(msg) -> dict:
    """The MQTT 5 PUBLISH properties of a delivered AMQP message (the reverse of :func:`amqp_header`)."""
    props = msg.properties
    out: dict = {}
    if props.content_type is not None:
        out["content_type"] = props.content_type
    if props.correlation_id is not None:
        out["correlation_data"] = props.correlation_id.encode()
    if props.reply_to is not None:
        out["response_topic"] = key_to_topic(props.reply_to)
    if props.expiration is not None:
        try:
            out["message_expiry_interval"] = int(props.expiration) // 1000
        except ValueError:
            pass
    headers = props.headers
    if headers:
        users = []
        for k, v in headers.items():
            if k == "x-correlation-id" and isinstance(v, (bytes, bytearray)):
                out["correlation_data"] = bytes(v)
            elif k == "x-mqtt-payload-format":
                out["payload_format_indicator"] = int(v)
            elif not k.startswith("x-mqtt-"):
                if isinstance(v, list):  # a repeated user property (or an AMQP array): one property each
                    users.extend((k, _text(x)) for x in v)
                else:
                    users.append((k, _text(v)))
        order = headers.get(_ORDER_HEADER)
        if order and isinstance(order, list) and users:
            users = _in_order(users, [_text(k) for k in order])
        if users:
            out["user_property"] = users
    return out


def _in_order(users: list, order: list) -> list:
    """The user properties in the order of ``x-mqtt-user-property-order`` (names not in it after)."""
    by_name: dict = {}
    for k, v in users:
        by_name.setdefault(k, deque()).append(v)
    out = []
    for k in order:
        vals = by_name.get(k)
        if vals:
            out.append((k, vals.popleft()))
    out.extend((k, v) for k, vals in by_name.items() for v in vals)
    return out


class RetainedStore:
    """Retained messages of one vhost: topic -> the retained PUBLISH (its QoS, payload, properties).

    Changes are also kept in ``dirty`` (topic -> the PUBLISH, or None: removed) until the listener
    writes them to the definitions store on its timer (:meth:`take_dirty`), so a device that retains
    every reading costs no database write per message; ``restore`` loads what the store kept."""

    def __init__(self):
        self.messages: dict[str, Publish] = {}
        self.dirty: dict[str, Publish | None] = {}

    def put(self, pkt: Publish) -> None:
        if pkt.payload:
            props = {k: v for k, v in pkt.properties.items() if k != "topic_alias"}
            # (packet id 1: a placeholder the stored encoding needs; deliveries take their own)
            m = self.messages[pkt.topic] = Publish(pkt.topic, pkt.payload, pkt.qos, True,
                                                   packet_id=1 if pkt.qos else None, properties=props)
            self.dirty[pkt.topic] = m
        elif self.messages.pop(pkt.topic, None) is not None:
            self.dirty[pkt.topic] = None

    def take_dirty(self) -> list:
        """The changes since the last call: ``(topic, packet bytes or None)``."""
        dirty, self.dirty = self.dirty, {}
        return [(t, None if m is None else codec.encode(m, MQTT5)) for t, m in dirty.items()]

    def restore(self, packet: bytes) -> None:
        [m] = codec.PacketReader(version=MQTT5).feed(packet)
        self.messages[m.topic] = m

    def matching(self, topic_filter: str) -> list:
        if "+" not in topic_filter and "#" not in topic_filter:
            m = self.messages.get(topic_filter)
            return [m] if m is not None else []
        return [m for t, m in self.messages.items() if topic_matches(topic_filter, t)]


def _member(akey: tuple):
    """The client id of a member binding (its arguments as ``args_key`` holds them), else None."""
    for k, v in akey:
        if k == _MEMBER_ARG:
            return _text(v[1])
    return None


def index_shared_queue(members: dict, vhost_name: str, q) -> None:
    """Add the member bindings of a shared subscription queue to ``members``: (vhost, client id) -> the
    names of the shared queues that client's session is a member of (the listener's index, so a
    CONNECT looks up its session's memberships instead of scanning the vhost's queues)."""
    for _, _, akey in q.bindings:
        member = _member(akey) if akey else None
        if member is not None:
            members.setdefault((vhost_name, member), set()).add(q.name)


def release_shared_queue(listener, vhost, q) -> bool:
    """A shared subscription's queue after a member left (or on the listener's timer): member bindings of
    sessions that no longer exist (their client not connected and their QoS 1 queue gone: expired) are
    removed, and the queue is deleted when it has neither a consumer nor a member binding left.
    Whether it is gone."""
    if q.deleted:
        return True
    live = False
    for ex, key, akey in list(q.bindings):
        member = _member(akey) if akey else None
        if member is None:
            continue
        mkey = (vhost.name, member)
        if mkey in listener.clients or f"mqtt-subscription-{member}qos1" in vhost.queues:
            live = True
        else:
            vhost.unbind_queue(q.name, None, ex.name, key, _thaw_args(akey))
            names = listener.shared_members.get(mkey)
            if names is not None:
                names.discard(q.name)
                if not names:
                    del listener.shared_members[mkey]
    if live or q.consumers:
        return False
    vhost.delete_queue(q)
    return True


class MQTTChannel(Channel):
    """The domain channel of an MQTT session: its hooks become PUBLISH packets and PUBACKs."""
    __slots__ = ("session",)

    def __init__(self, session):
        Channel.__init__(self, session.broker, session.vhost, session, 1, session.paused)
        self.session = session

    def send_deliver(self, consumer, tag: int, entry) -> None:
        self.session.deliver(consumer, tag, entry)

    def send_return(self, msg, code: int, text: str) -> None:
        pass  # MQTT publishes are never mandatory

    def send_confirm(self, seq: int, multiple: bool, nack: bool) -> None:
        self.session.confirmed(seq, multiple, nack)

    def send_cancel(self, consumer) -> None:
        self.session.consumer_gone(consumer)

    def send_reply(self, msg, tag: int) -> None:
        pass

    def timed_out(self, timeout_ms: int) -> None:
        self.session.abort(codec.UNSPECIFIED_ERROR, "delivery acknowledgement timed out")


class _Limits:
    """What the management API reads of a connection's protocol object: RabbitMQ 3.10 shows an MQTT
    connection with one channel, no frame size, the keepalive and these client properties (probed)."""
    __slots__ = ("heartbeat", "client_properties")
    channel_max = 1
    frame_max = 0

    def __init__(self):
        self.heartbeat = 0
        self.client_properties = {"product": "MQTT client"}


PROTOCOL_NAMES = {codec.MQTT31: "MQTT 3.1", codec.MQTT311: "MQTT 3.1.1", MQTT5: "MQTT 5.0"}
_PAUSE_FLOW, _PAUSE_ALARM = 1, 2


class MQTTSession:
    """One MQTT connection (see the module docstring).  ``io`` is the transport adapter: ``write(bytes)``,
    ``close()``, ``call_soon(fn)``, ``pause_reading(bool)``, ``peer`` and ``transport``.  Once connected
    it is one of the broker's sessions, so the management API lists it (as RabbitMQ does: protocol
    ``MQTT 3.1.1``, type ``direct``, one channel) and resource alarms stop reading it."""
    connection_type = "direct"
    state = "running"

    def __init__(self, listener, io):
        self.listener = listener
        self.broker = listener.broker
        self.config = self.broker.config
        self.io = io
        self.peer = io.peer
        # before the login, packets are small (RabbitMQ 3.13's max_packet_size_unauthenticated)
        self.conn = ServerConnection(min(65536, self.config.mqtt_max_packet_size))
        self.user = None
        self.vhost = None
        self.client_id = ""
        self.clean = True
        self.session_expiry = None  # MQTT 5's session expiry interval (seconds)
        self.end_session = False  # the client's queues go with the connection (MQTT 5 DISCONNECT, expiry 0)
        self.channel: MQTTChannel | None = None
        self.will = None
        self.closed = False
        self.paused = False
        self.flow_count = 0
        self.exchange = self.config.mqtt_exchange
        self.pending = deque()  # (publish seq, ack type, packet id) of QoS 1/2 publishes awaiting their confirm
        self.pub_seq = 0
        self.inbound_qos1 = 0  # QoS 1 publishes not yet PUBACKed (QoS 2 ones: conn.awaiting_rel)
        self.receive_maximum = 65535  # MQTT 5: the server's receive maximum, sent in the CONNACK
        self.tags: dict[int, int] = {}  # outgoing packet id -> delivery tag
        self.granted: dict[str, int] = {}  # topic filter -> granted QoS
        self.bound: dict[str, dict | None] = {}  # topic filter -> the arguments of its binding (_bind_args)
        self.qos1_max = 1  # the QoS a message from the qos1 queue is delivered at, at most
        # MQTT 5 subscription options (filter -> (no local, retain as published, subscription identifier)),
        # for filters that have any; ``rich`` while there are some: deliveries then match the filters
        self.sub_options: dict[str, tuple] = {}
        # $share/<group>/<filter> -> (QoS, consumer, subscription id, member binding arguments or None)
        self.shared: dict[str, tuple] = {}
        self.shared_consumers: dict = {}  # the consumer of a shared subscription -> (QoS, subscription id)
        self.rich = False
        self.no_local = False  # a no-local subscription: publishes carry header x-mqtt-publisher
        self.alias_max = 0  # MQTT 5: topic aliases the client accepts from the server
        self.header_extra = None  # AMQP headers this session's publishes carry besides RabbitMQ's
        self.out_aliases: dict[str, int] = {}
        self.consumers: dict[int, object] = {}  # 0/1 -> the consumer of that queue
        self.to_ack: list = []
        self.may_write = False
        self.last_seen = 0.0
        self.recv_oct = self.send_oct = self.recv_cnt = self.send_cnt = 0
        self.recv_pkts = 0  # packets handed to the session (the listener's fairness budget reads it)
        self.keys: dict = {}  # topic -> (routing key, ex_rk) of the topics published to (see KEY_CACHE)
        self.proto = _Limits()
        self.reader = getattr(io, "transport", None)  # (get_extra_info, for the management API)
        self.channels: dict = {}
        self.protocol = "MQTT"
        self.name = f"{self.peer[0]}:{self.peer[1]}" if self.peer else "embedded"
        self.connected_at = int(time.time() * 1000)
        self.pause_bits = 0
        self.registered = False
        self.counted = False  # in the broker's per-vhost/per-user connection counts (limits)
        self.flush_scheduled = False

    # ----------------------------------------------------------------- input
    def data_received(self, data) -> None:
        if self.closed:
            return
        self.recv_oct += len(data)
        self.recv_cnt += 1
        try:
            packets = self.conn.receive_data(data)
            self.recv_pkts += len(packets)
            for pkt in packets:
                self.handle(pkt)
                if self.closed:
                    return
        except MQTTError as e:
            self.conn.error_output(e)
            self.flush()
            self.close(publish_will=True)
            return
        except AMQPError as e:  # refused by the domain (permissions, a missing exchange)
            self.abort(codec.NOT_AUTHORIZED if "ACCESS_REFUSED" in e.reply_text else
                       codec.IMPLEMENTATION_SPECIFIC_ERROR, e.reply_text)
            return
        self.broker.confirms.flush()
        self.flush()

    def handle(self, pkt) -> None:
        t = pkt.type
        if t == codec.PUBLISH:
            self.on_publish(pkt)
        elif t == codec.PUBACK or t == codec.PUBREC:
            tag = self.tags.pop(pkt.packet_id, None)
            if tag is not None and self.channel is not None:
                self.channel.ack(tag, False)
        elif t == codec.SUBSCRIBE:
            self.on_subscribe(pkt)
        elif t == codec.UNSUBSCRIBE:
            self.on_unsubscribe(pkt)
        elif t == codec.CONNECT:
            self.on_connect(pkt)
        elif t == codec.DISCONNECT:
            expiry = pkt.properties.get("session_expiry_interval") if self.conn.version == MQTT5 else None
            if expiry is not None:
                if expiry and self.session_expiry == 0:  # 3.14.2.2.2: a session that ends with the connection
                    raise MQTTError(codec.PROTOCOL_ERROR, "session expiry interval set at DISCONNECT after 0")
                self._expiry_changed(expiry)
            self.close(publish_will=pkt.code == codec.DISCONNECT_WITH_WILL)
        elif t == codec.AUTH:
            raise MQTTError(codec.PROTOCOL_ERROR, "AUTH without an authentication method")

    def flush(self) -> None:
        self.flush_scheduled = False
        out = self.conn.take_output()
        if out:
            self.send_oct += len(out)
            self.send_cnt += 1
            self.io.write(out)

    # --------------------------------------------------------------- connect
    def on_connect(self, pkt) -> None:
        conn = self.conn
        v5 = pkt.version == MQTT5
        props = {}
        if v5:
            why = self._connect_properties_refused(pkt.properties)
            if why is not None:
                conn.refuse(why[0])
                return self._refused(why[1])
        client_id = pkt.client_id
        if not client_id:
            if not pkt.clean and not v5:
                conn.refuse(codec.CLIENT_IDENTIFIER_NOT_VALID)
                return self._refused("client id required for a persistent session")
            client_id = "mqtt-" + os.urandom(8).hex()
            if v5:
                props["assigned_client_identifier"] = client_id
        username = pkt.username
        password = pkt.password
        cert_name = self._certificate_name() if username is None and password is None else None
        if cert_name is not None:  # mqtt.ssl_cert_login: the verified certificate's name, no password
            username = cert_name
        elif username is None and password is None:
            if not self.config.mqtt_allow_anonymous:
                conn.refuse(codec.BAD_USER_NAME_OR_PASSWORD if v5 else codec.NOT_AUTHORIZED)
                return self._refused("anonymous login refused")
            username, password = self.config.mqtt_default_user, self.config.mqtt_default_pass.encode()
        vhost_name = self.config.mqtt_vhost
        if ":" in (username or ""):
            vhost_name, username = username.split(":", 1)
        try:
            pw = (password or b"").decode("utf-8")
        except UnicodeDecodeError:
            pw = None
        if cert_name is not None:
            user = self.broker.authenticate_certificate(username, self.peer, "mqtt")
        else:
            user = self.broker.authenticate((username, pw) if pw is not None and username else None, self.peer,
                                            "mqtt")
        if user is None:
            conn.refuse(codec.BAD_USER_NAME_OR_PASSWORD)
            return self._refused(f"user '{username}' - invalid credentials")
        vhost = self.broker.vhosts.get(vhost_name)
        if vhost is None:  # RabbitMQ 3.10 answers an unknown vhost as bad credentials
            conn.refuse(codec.BAD_USER_NAME_OR_PASSWORD)
            return self._refused(f"vhost '{vhost_name}' not found")
        if not self.broker.user_can_access(user, vhost_name):
            conn.refuse(codec.NOT_AUTHORIZED)
            return self._refused(f"user '{username}' has no access to vhost '{vhost_name}'")
        self.user = user
        self.vhost = vhost
        conn.reader.max_packet_size = self.config.mqtt_max_packet_size
        self.client_id = client_id
        expiry = self.session_expiry = pkt.properties.get("session_expiry_interval", 0) if v5 else None
        # MQTT 5: a session that expires at disconnect is a clean one as far as the queues go
        self.clean = pkt.clean if not v5 else expiry == 0
        key = (vhost_name, client_id)
        delayed = self.listener.delayed_wills.pop(key, None)
        if delayed is not None:  # back before its will delay was over: no will
            delayed.cancel()
        old = self.listener.clients.get(key)
        if old is not None and old is not self:
            old.taken_over()
        self.listener.clients[key] = self
        limits = self.broker.limits
        try:  # the vhost's and the user's max-connections count MQTT connections too (after a takeover)
            limits.check_connection(vhost_name, user.name)
        except AMQPError as e:
            del self.listener.clients[key]
            conn.refuse(codec.QUOTA_EXCEEDED if v5 else codec.NOT_AUTHORIZED)
            return self._refused(e.text)
        limits.connection_opened(vhost_name, user.name)
        self.counted = True
        if pkt.clean:
            self._delete_queues()
        self.will = pkt.will
        self.channel = ch = MQTTChannel(self)
        ch.select_confirm()
        ch.prefetch_count = self.config.mqtt_prefetch
        if v5:  # the client's receive maximum bounds its unacknowledged QoS 1/2 deliveries
            ch.prefetch_count = min(ch.prefetch_count, pkt.properties.get("receive_maximum", 65535))
            self.alias_max = pkt.properties.get("topic_alias_maximum", 0)
        resumed = [] if pkt.clean else self._resumed_queues()
        # the session's incoming QoS 2 packet ids still awaiting PUBREL: a resend (DUP) of one is answered
        # with PUBREC and not routed again (MQTT 5 4.3.3)
        kept = self.listener.take_qos2_ids(key, pkt.clean)
        if kept:
            conn.awaiting_rel.update(kept[0])
            for pid in kept[1]:  # deliveries released before the disconnect: PUBREL again (4.4)
                conn.inflight[pid] = PUBCOMP
        if v5:
            props.setdefault("topic_alias_maximum", conn.topic_alias_maximum)
            props["maximum_qos"] = 2
            props["retain_available"] = 1
            props["shared_subscription_available"] = 1
            props["receive_maximum"] = self.receive_maximum = self.config.mqtt_receive_maximum
            if pkt.properties.get("request_response_information") == 1:
                info = self._response_information(client_id, user.name, vhost_name)
                if info:
                    props["response_information"] = info
            server_keepalive = self.config.mqtt_server_keepalive
            if server_keepalive and not 0 < pkt.keepalive <= server_keepalive:  # the server's keep alive wins
                props["server_keep_alive"] = conn.keepalive = server_keepalive
        conn.accept(bool(resumed or kept), props or None)
        if kept:
            for pid in kept[1]:
                conn.send_ack(PUBREL, pid)
        self._options_changed()
        for q, qos in resumed:  # after the CONNACK, which must be the first packet the client gets
            self._consume(q, qos)
        if resumed:  # (a member of a shared subscription has its QoS 1 queue: see _shared_member)
            for f, q, qos, sid, member in self._resumed_shared():
                self._consume_shared(f, q, qos, sid, member)
            if self.shared:
                self._options_changed()
        self.channels = {1: ch}
        self.protocol = PROTOCOL_NAMES.get(pkt.version, "MQTT")
        self.proto.heartbeat = conn.keepalive
        self.proto.client_properties = {"client_id": client_id, "product": "MQTT client"}
        self.broker.session_opened(self)
        self.registered = True
        if self.broker.alarms:
            self.set_blocked(True)
        log.info("accepting MQTT connection %s (%s, client id: %s, user: '%s', vhost: '%s')", id(self),
                 self._peer_text(), client_id, user.name, vhost_name)
        self.listener.keepalive(self)

    def _certificate_name(self) -> str | None:
        """The user name of the client's verified TLS certificate when ``mqtt_ssl_cert_login`` is on
        (:mod:`warrenmq.broker.certlogin`), else ``None``."""
        cfg = self.config
        if not cfg.mqtt_ssl_cert_login or self.reader is None:
            return None
        return peer_cert_auth_name(self.reader.get_extra_info("peercert"), cfg.ssl_cert_login_from,
                                   cfg.tls_verify_peer)

    @staticmethod
    def _connect_properties_refused(p: dict):
        """MQTT 5 CONNECT properties the server refuses: (CONNACK reason code, why), or None.  No extended
        authentication method is supported (4.12: CONNACK 0x8C and close, MQTT-4.12.0-1); authentication
        data without a method (3.1.2.11.10), request flags other than 0 or 1 (3.1.2.11.6/7) and a receive
        maximum or maximum packet size of 0 (3.1.2.11.3/4: a receive maximum of 0 would have been an
        unlimited prefetch) are protocol errors."""
        method = p.get("authentication_method")
        if method is not None:
            return codec.BAD_AUTHENTICATION_METHOD, f"authentication method '{method}' not supported"
        if "authentication_data" in p:
            return codec.PROTOCOL_ERROR, "authentication data without an authentication method"
        for name in ("request_response_information", "request_problem_information"):
            if p.get(name, 0) > 1:
                return codec.PROTOCOL_ERROR, f"{name.replace('_', ' ')} {p[name]}"
        for name in ("receive_maximum", "maximum_packet_size"):  # 0 is a protocol error (3.1.2.11.3/4)
            if p.get(name) == 0:
                return codec.PROTOCOL_ERROR, f"{name.replace('_', ' ')} 0"
        return None

    def _response_information(self, client_id: str, username: str, vhost: str) -> str | None:
        """MQTT 5 Response Information (3.2.2.3.15) from ``mqtt_response_information``: none when it is
        empty, or when what it gives is not a usable topic prefix (a wildcard in the client id)."""
        template = self.config.mqtt_response_information
        if not template:
            return None
        info = (template.replace("{client_id}", client_id).replace("{username}", username)
                .replace("{vhost}", vhost))
        if "+" in info or "#" in info or len(info.encode()) > 65535:
            return None
        return info

    def _peer_text(self) -> str:
        return f"{self.peer[0]}:{self.peer[1]}" if self.peer else "?"

    def _refused(self, why: str) -> None:
        log.error("MQTT login failed for %s: %s", self._peer_text(), why)
        self.flush()
        self.close(publish_will=False)

    def queue_name(self, qos: int) -> str:
        return f"mqtt-subscription-{self.client_id}qos{1 if qos else 0}"

    def _delete_queues(self) -> None:
        for qos in (0, 1):
            q = self.vhost.queues.get(self.queue_name(qos))
            if q is not None:
                self.vhost.delete_queue(q)
        self._leave_shared()

    def _resumed_queues(self) -> list:
        """A persistent session: the client's queues, with their QoS class, to consume from again once
        the CONNACK is out (a queued message must not reach the client before it); their bindings
        are the session's subscriptions."""
        found = []
        for qos in (0, 1):
            q = self.vhost.queues.get(self.queue_name(qos))
            if q is None:
                continue
            found.append((q, qos))
            for ex, key, akey in q.bindings:
                if ex.name != self.exchange:
                    continue
                f = key_to_topic(key).replace("*", "+")
                args = self.bound[f] = _thaw_args(akey)
                if args is None:
                    self.granted[f] = qos
                    continue
                self.granted[f] = 2 if args.get(_QOS_ARG) == 2 else qos
                no_local, rap, sid = bool(args.get(_NO_LOCAL_ARG)), bool(args.get(_RAP_ARG)), args.get(_SID_ARG)
                if no_local or rap or sid:
                    self.sub_options[f] = (no_local, rap, sid)
        return found

    def _declare(self, qname: str, qos: int):
        """The subscription queue as RabbitMQ 3.10 declares it in a clean session: QoS 0's transient, QoS 1's
        durable, both auto-deleted.  In a persistent session both are durable and expire after
        ``mqtt_subscription_ttl_ms`` unused (mqtt.subscription_ttl; MQTT 5: the session expiry interval),
        as RabbitMQ 3.13 declares them: the QoS 0 subscriptions belong to the session too (MQTT 4.1),
        where RabbitMQ 3.10's transient QoS 0 queue lost them with the connection."""
        q = self.vhost.queues.get(qname)
        if q is not None and not q.deleted:  # (a resumed session's, declared with its own arguments)
            return q
        if qos == 0 and self.clean:
            return self.vhost.declare_queue(qname, self, durable=False, auto_delete=True)[0]
        ttl = self.config.mqtt_subscription_ttl_ms
        if self.session_expiry is not None:  # MQTT 5: the session expiry interval, "never" = none
            ttl = 0 if self.session_expiry == 0xFFFFFFFF else self.session_expiry * 1000
        args = {"x-expires": ttl} if ttl and not self.clean else None
        return self.vhost.declare_queue(qname, self, durable=True, auto_delete=self.clean, arguments=args)[0]

    def _consume(self, q, qos: int) -> None:
        if qos in self.consumers:
            return
        ch = self.channel
        c = ch.consume(q, f"mqtt-{qos}", qos == 0, False, None)
        self.consumers[qos] = c
        ch.start(c)

    # --------------------------------------------------------------- publish
    def on_publish(self, pkt) -> None:
        topic = pkt.topic
        known = self.keys.get(topic)
        if known is None:  # a topic this connection has not published to yet (a device uses a few)
            if not topic or "+" in topic or "#" in topic:
                raise MQTTError(codec.TOPIC_NAME_INVALID, f"invalid topic name '{topic}'")
            key = topic_to_key(topic)
            if len(self.keys) >= KEY_CACHE:
                self.keys.clear()
            known = self.keys[topic] = (key, encode_shortstr(self.exchange) + encode_shortstr(key))
        key, ex_rk = known
        user = self.user
        if not self.may_write:
            self.broker.check_resource(user, self.vhost.name, "exchange", self.exchange, "write")
            self.may_write = not user.has_topic_permissions(self.vhost.name)
        if not self.may_write:
            self.broker.check_topic(user, self.vhost.name, self.exchange, key, "write")
        if pkt.retain:
            self.listener.retained(self.vhost.name).put(pkt)
        self.channel.publish(self.exchange, key, amqp_header(pkt, self.header_extra), pkt.payload, False, ex_rk)
        self.pub_seq += 1
        if pkt.qos:
            if pkt.qos == 1:
                self.pending.append((self.pub_seq, PUBACK, pkt.packet_id))
                self.inbound_qos1 += 1
            else:
                self.pending.append((self.pub_seq, PUBREC, pkt.packet_id))
            if self.inbound_qos1 + len(self.conn.awaiting_rel) > self.receive_maximum:
                raise MQTTError(codec.RECEIVE_MAXIMUM_EXCEEDED, "receive maximum exceeded")

    def confirmed(self, seq: int, multiple: bool, nack: bool) -> None:
        pending = self.pending
        conn = self.conn
        code = codec.UNSPECIFIED_ERROR if nack else codec.SUCCESS
        while pending and pending[0][0] <= seq:
            _, ptype, pid = pending.popleft()
            if ptype == PUBACK:
                self.inbound_qos1 -= 1
            if conn.state == CONNECTED:
                conn.send_ack(ptype, pid, code if conn.version == MQTT5 else 0)
        if not self.closed and not self.flush_scheduled:
            self.flush_scheduled = True
            self.io.call_soon(self.flush)

    # ------------------------------------------------------------- subscribe
    def on_subscribe(self, pkt) -> None:
        codes = []
        existed = []
        v5 = self.conn.version == MQTT5
        vname = self.vhost.name
        sid = pkt.properties.get("subscription_identifier") if v5 else None
        if isinstance(sid, list):
            sid = sid[0] if sid else None
        for sub in pkt.subscriptions:
            f = sub.topic_filter
            existed.append(f in self.granted)
            if f.startswith("$share/"):
                codes.append(self._subscribe_shared(f, sub.qos, sid))
                continue
            if not valid_filter(f):
                codes.append(codec.TOPIC_FILTER_INVALID if v5 else codec.SUBACK_FAILURE)
                continue
            qos = sub.qos
            qname = self.queue_name(qos)
            key = topic_to_key(f)
            try:
                self.broker.check_resource(self.user, vname, "queue", qname, "configure")
                self.broker.check_resource(self.user, vname, "queue", qname, "write")
                self.broker.check_resource(self.user, vname, "exchange", self.exchange, "read")
                self.broker.check_topic(self.user, vname, self.exchange, key, "read")
                self.broker.check_resource(self.user, vname, "queue", qname, "read")
                q = self._declare(qname, qos)
                args = (_bind_args(qos, sub.no_local, sub.retain_as_published, sid, sub.retain_handling) if v5
                        else _bind_args(qos))
                self.vhost.bind_queue(q, self.exchange, key, args)
                old = self.granted.get(f)
                old_args = self.bound.get(f)
                # moved to the other queue, between QoS 1 and 2, or other options: the old binding goes
                if old is not None and (old != qos or old_args != args):
                    other = self.vhost.queues.get(self.queue_name(old))
                    if other is not None and (other is not q or args_key(old_args) != args_key(args)):
                        self.vhost.unbind_queue(other.name, self, self.exchange, key, old_args)
                self.bound[f] = args
                self._consume(q, qos)
            except AMQPError as e:
                log.warning("MQTT subscription to '%s' refused: %s", f, e.reply_text)
                codes.append(codec.NOT_AUTHORIZED if v5 and "ACCESS_REFUSED" in e.reply_text
                             else codec.SUBACK_FAILURE)
                continue
            self.granted[f] = qos
            if v5 and (sub.no_local or sub.retain_as_published or sid):
                self.sub_options[f] = (sub.no_local, sub.retain_as_published, sid)
            else:
                self.sub_options.pop(f, None)
            self._options_changed()
            codes.append(qos)
        self.conn.send(Suback(pkt.packet_id, codes))
        # retained messages, for wildcard filters too (the spec; RabbitMQ 3.10 only for exact topics)
        store = self.listener.retained_stores.get(vname)
        if store is not None and store.messages:
            granted = iter(existed)
            for sub, code in zip(pkt.subscriptions, codes):
                was = next(granted)
                if code > 2 or sub.topic_filter.startswith("$share/"):  # (none for shared subscriptions)
                    continue
                if v5 and (sub.retain_handling == 2 or (was and sub.retain_handling == 1)):
                    continue  # 1: only for a new subscription
                for m in store.matching(sub.topic_filter):
                    props = dict(m.properties) if v5 else {}
                    self.conn.send_publish(Publish(m.topic, m.payload, min(m.qos, code), True, properties=props))

    def _subscribe_shared(self, f: str, qos: int, sid) -> int:
        """``$share/<group>/<filter>``: one queue per group and filter, ``mqtt-shared-<group>-<filter>``
        (not durable, deleted when its last member goes), bound with the filter; each member session
        consumes from it, so the queue hands each message to one member, round robin.  The SUBACK code."""
        v5 = self.conn.version == MQTT5
        parts = f.split("/", 2)
        if len(parts) < 3 or not parts[1] or "+" in parts[1] or "#" in parts[1] or not valid_filter(parts[2]):
            return codec.TOPIC_FILTER_INVALID if v5 else codec.SUBACK_FAILURE
        group, topic_filter = parts[1], parts[2]
        qname = f"mqtt-shared-{group}-{topic_filter}"
        key = topic_to_key(topic_filter)
        vname = self.vhost.name
        try:
            for kind, name, perm in (("queue", qname, "configure"), ("queue", qname, "write"),
                                     ("exchange", self.exchange, "read"), ("queue", qname, "read")):
                self.broker.check_resource(self.user, vname, kind, name, perm)
            self.broker.check_topic(self.user, vname, self.exchange, key, "read")
            q = self.vhost.queues.get(qname)
            if q is None or q.deleted:  # (deleted once no member is left: release_shared_queue)
                q = self.vhost.declare_queue(qname, self, durable=not self.clean, auto_delete=False)[0]
            self.vhost.bind_queue(q, self.exchange, key, None)
            member = self._shared_member(f, qos, sid)
            old = self.shared.pop(f, None)
            if old is not None:
                self.shared_consumers.pop(old[1], None)
                self.channel.cancel(old[1].tag)
                if old[3] is not None and old[3] != member:
                    self.vhost.unbind_queue(qname, self, self.exchange, key, old[3])
            if member is not None:
                self.vhost.bind_queue(q, self.exchange, key, member)
                self.listener.shared_queues.add((vname, qname))
                self.listener.shared_members.setdefault((vname, self.client_id), set()).add(qname)
            self._consume_shared(f, q, qos, sid, member)
        except AMQPError as e:
            log.warning("MQTT subscription to '%s' refused: %s", f, e.reply_text)
            return codec.NOT_AUTHORIZED if v5 and "ACCESS_REFUSED" in e.reply_text else codec.SUBACK_FAILURE
        self._options_changed()
        return qos

    def _shared_member(self, f: str, qos: int, sid):
        """The binding arguments that make a persistent session a member of a shared subscription's queue
        (None for a clean session: its membership is its consumer).  The session's QoS 1 queue, declared
        for the purpose if it has none, is what says the session still exists: it expires with it."""
        if self.clean:
            return None
        vname = self.vhost.name
        own = self.queue_name(1)
        try:
            for perm in ("configure", "write", "read"):
                self.broker.check_resource(self.user, vname, "queue", own, perm)
        except AMQPError:
            return None  # not allowed its own queue: a member for as long as it is connected
        self._consume(self._declare(own, 1), 1)
        args = {_MEMBER_ARG: self.client_id, _FILTER_ARG: f, _QOS_ARG: qos}
        if sid:
            args[_SID_ARG] = sid
        return args

    def _consume_shared(self, f: str, q, qos: int, sid, member) -> None:
        c = self.channel.consume(q, f"mqtt-share-{q.name}", qos == 0, False, None)
        self.shared[f] = (qos, c, sid, member)
        self.shared_consumers[c] = (qos, sid)
        self.channel.start(c)

    def _resumed_shared(self) -> list:
        """A persistent session's shared subscriptions: the shared queues with a member binding of this
        client id (the listener's index says which), as (filter, queue, QoS, identifier, member arguments)."""
        found = []
        cid = self.client_id
        for name in self.listener.shared_members.get((self.vhost.name, cid), ()):
            q = self.vhost.queues.get(name)
            if q is None or q.deleted:
                continue
            for ex, key, akey in q.bindings:
                if ex.name == self.exchange and akey and _member(akey) == cid:
                    args = _thaw_args(akey)
                    if _FILTER_ARG in args:
                        found.append((_text(args[_FILTER_ARG]), q, args.get(_QOS_ARG, 0), args.get(_SID_ARG),
                                      args))
        return found

    def _leave_shared(self) -> None:
        """The session ends (a clean start, or expiry 0 at the end): its member bindings go, and the shared
        queues left without members with them."""
        cid = self.client_id
        for name in self.listener.shared_members.pop((self.vhost.name, cid), ()):
            q = self.vhost.queues.get(name)
            if q is None or q.deleted:
                continue
            for ex, key, akey in list(q.bindings):
                if akey and _member(akey) == cid:
                    self.vhost.unbind_queue(name, self, ex.name, key, _thaw_args(akey))
            self.listener.shared_unused(self.vhost, q)

    def _options_changed(self) -> None:
        """After a change of the subscriptions: whether deliveries must match the filters (subscription
        options, shared subscriptions, or QoS 1 and QoS 2 filters sharing the QoS 1 queue), and the
        highest QoS granted to a filter of that queue."""
        granted = set(self.granted.values())
        self.qos1_max = 2 if 2 in granted else 1
        self.rich = bool(self.sub_options) or bool(self.shared) or (1 in granted and 2 in granted)
        self.no_local = any(o[0] for o in self.sub_options.values())
        self.header_extra = {"x-mqtt-publisher": self.client_id} if self.no_local else None

    def on_unsubscribe(self, pkt) -> None:
        codes = []
        for f in pkt.topic_filters:
            shared = self.shared.pop(f, None)
            if shared is not None:
                self.shared_consumers.pop(shared[1], None)
                q = shared[1].queue
                self.channel.cancel(shared[1].tag)
                if shared[3] is not None:
                    self.vhost.unbind_queue(q.name, self, self.exchange, topic_to_key(f.split("/", 2)[2]),
                                            shared[3])
                    names = self.listener.shared_members.get((self.vhost.name, self.client_id))
                    if names is not None:
                        names.discard(q.name)
                self.listener.shared_unused(self.vhost, q)
                self._options_changed()
                codes.append(codec.SUCCESS)
                continue
            qos = self.granted.pop(f, None)
            if qos is None:
                codes.append(codec.NO_SUBSCRIPTION_EXISTED)
                continue
            self.sub_options.pop(f, None)
            args = self.bound.pop(f, None)
            self._options_changed()
            q = self.vhost.queues.get(self.queue_name(qos))
            if q is not None:
                try:
                    self.vhost.unbind_queue(q.name, self, self.exchange, topic_to_key(f), args)
                except AMQPError:
                    pass
            codes.append(codec.SUCCESS)
        self.conn.send(Unsuback(pkt.packet_id, codes if self.conn.version == MQTT5 else []))

    # -------------------------------------------------------------- delivery
    def deliver(self, consumer, tag: int, entry) -> None:
        msg = entry.message
        if msg.routing_key.startswith("$") and not self._dollar_subscribed(msg.routing_key):
            if not consumer.no_ack:  # matched only by a wildcard at the first level: not for this client
                self.to_ack.append(tag)
                if len(self.to_ack) == 1:
                    self.io.call_soon(self._ack_later)
            return
        header = msg.header
        # a message an MQTT client published without MQTT 5 properties: its QoS read off the header bytes
        # (no property decoding); anything else is decoded
        plain = -1
        if header.endswith(_PLAIN_PROPS[1]):
            plain = 1
        elif header.endswith(_PLAIN_PROPS[0]):
            plain = 0
        elif header.endswith(_PLAIN_PROPS[2]):
            plain = 2
        retain = False
        if self.rich:  # MQTT 5 subscription options: which of the client's filters match, and how
            best, retain, sids = self._matching(consumer, msg, plain)
            if best < 0:  # only through no-local filters (or none left): not for this client
                if not consumer.no_ack:
                    self.to_ack.append(tag)
                    if len(self.to_ack) == 1:
                        self.io.call_soon(self._ack_later)
                return
        else:
            best, sids = self.qos1_max, None
        if consumer.no_ack:
            qos = 0
        else:
            mq = plain
            if mq < 0:
                headers = msg.properties.headers
                mq = headers.get("x-mqtt-publish-qos") if headers else None
                if not isinstance(mq, int) or not 0 <= mq <= 2:
                    mq = 1 if msg.persistent else 0
            qos = mq if mq < best else best
        conn = self.conn
        if conn.version != MQTT5 and not retain and not sids:  # no properties: the packet's bytes made at once
            rk = msg.routing_key
            topic = _TOPICS.get(rk)
            if topic is None:
                if len(_TOPICS) >= KEY_CACHE:
                    _TOPICS.clear()
                topic = _TOPICS[rk] = codec.encode_string(key_to_topic(rk))
            pid = conn.send_plain_publish(topic, msg.body, qos, qos > 0 and entry.redelivered)
        else:
            props = mqtt5_properties(msg) if plain < 0 and conn.version == MQTT5 else {}
            topic = key_to_topic(msg.routing_key)
            if props:
                if entry.expires and "message_expiry_interval" in props:  # the time it has left (MQTT-3.3.2-6)
                    props["message_expiry_interval"] = max(0, math.ceil(entry.expires - time.monotonic()))
            if sids:
                props["subscription_identifier"] = sids
            if self.alias_max:  # MQTT 5 topic aliases towards the client, as many as it accepts
                alias = self.out_aliases.get(topic)
                if alias is not None:
                    props["topic_alias"] = alias
                    topic = ""
                elif len(self.out_aliases) < self.alias_max:
                    alias = self.out_aliases[topic] = len(self.out_aliases) + 1
                    props["topic_alias"] = alias
            pkt = Publish(topic, msg.body, qos, retain, qos > 0 and entry.redelivered, None, props)
            pid = conn.send_publish(pkt)
        if qos:
            if pid is None:  # too large for the client: dropped, as the spec says
                self.to_ack.append(tag)
            else:
                self.tags[pid] = tag
        elif not consumer.no_ack:
            self.to_ack.append(tag)
        if len(self.to_ack) == 1 and (qos == 0 or pid is None):
            self.io.call_soon(self._ack_later)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.io.call_soon(self.flush)

    def _matching(self, consumer, msg, plain: int):
        """For a session with MQTT 5 subscription options: the highest QoS granted to a filter of this
        queue's class that matches the message (-1: none, or only no-local ones and the client published
        it), whether its RETAIN flag is kept (retain as published) and the subscription identifiers."""
        shared = self.shared_consumers.get(consumer)
        if shared is not None:  # from a shared subscription's queue: its QoS and identifier
            return shared[0], False, [shared[1]] if shared[1] else None
        topic = key_to_topic(msg.routing_key)
        qos1 = not consumer.no_ack
        headers = msg.properties.headers if plain < 0 else None
        best, retain, sids = -1, False, []
        for f, granted in self.granted.items():
            if (granted > 0) != qos1 or not topic_matches(f, topic):
                continue
            o = self.sub_options.get(f)
            if o is not None:
                no_local, rap, sid = o
                if no_local and headers and headers.get("x-mqtt-publisher") == self.client_id:
                    continue
                if rap and headers and headers.get("x-mqtt-retain"):
                    retain = True
                if sid:
                    sids.append(sid)
            if granted > best:
                best = granted
        return best, retain, sids

    def _dollar_subscribed(self, key: str) -> bool:
        """Whether a filter of this client that does not start with a wildcard matches a ``$`` topic: the
        spec (4.7.2) keeps ``$`` topics from ``#`` and ``+/...`` filters, which the topic exchange's
        binding keys cannot say."""
        topic = key_to_topic(key)
        for f in self.granted:
            if f[:1] not in ("+", "#") and topic_matches(f, topic):
                return True
        return False

    def _ack_later(self) -> None:
        tags, self.to_ack = self.to_ack, []
        if self.channel is not None and not self.channel.closed:
            for tag in tags:
                self.channel.ack(tag, False)
            self.flush()

    def consumer_gone(self, consumer) -> None:
        if self.shared_consumers.pop(consumer, None) is not None:
            for f, shared in list(self.shared.items()):
                if shared[1] is consumer:
                    del self.shared[f]
            self._options_changed()
        for k, c in list(self.consumers.items()):
            if c is consumer:
                del self.consumers[k]

    def set_flow(self, on: bool) -> None:
        """Credit flow: a queue this session publishes into is behind its consumers (or no longer is)."""
        self.flow_count += 1 if on else -1
        if on:
            throttled = getattr(self.io, "throttled", None)  # (the TCP listener shrinks its receive buffer)
            if throttled is not None:
                throttled()
        self._pause(_PAUSE_FLOW, self.flow_count > 0)

    def set_blocked(self, blocked: bool) -> None:
        """A resource alarm is on (or every alarm cleared): the connection is not read meanwhile."""
        self._pause(_PAUSE_ALARM, blocked)

    def _pause(self, bit: int, on: bool) -> None:
        bits = self.pause_bits | bit if on else self.pause_bits & ~bit
        if bool(bits) != bool(self.pause_bits) and not self.closed:
            self.io.pause_reading(bool(bits))
        self.pause_bits = bits

    def force_close(self, code: int, text: str) -> None:
        """The management API or the broker closes the connection (user deleted, vhost gone, ...)."""
        self.abort(codec.ADMINISTRATIVE_ACTION if self.conn.version == MQTT5 else codec.UNSPECIFIED_ERROR, text)

    def set_paused(self, paused: bool) -> None:
        """The socket's write buffer is full (or drained again): stop (or resume) delivering."""
        self.paused = paused
        ch = self.channel
        if ch is not None:
            ch.paused = paused
            if not paused:
                ch.dispatch_consumers()

    # ---------------------------------------------------------------- ending
    def _expiry_changed(self, seconds: int) -> None:
        """MQTT 5: a DISCONNECT's session expiry interval replaces the CONNECT's: 0 ends the session with
        the connection, otherwise the queues' expiry changes (in memory: a restart goes back to the
        declared ``x-expires``)."""
        self.session_expiry = seconds
        if seconds == 0:
            self.end_session = True
            return
        for qos in (0, 1):
            q = self.vhost.queues.get(self.queue_name(qos))
            if q is not None and not q.auto_delete:
                q.expires = None if seconds == 0xFFFFFFFF else seconds * 1000

    def _session_seconds(self):
        """How long the session outlives the connection (None: no end): MQTT 5's session expiry
        interval, else the persistent session's queue TTL (``mqtt_subscription_ttl_ms``)."""
        if self.session_expiry is not None:
            return None if self.session_expiry == 0xFFFFFFFF else self.session_expiry
        ttl = self.config.mqtt_subscription_ttl_ms
        return ttl / 1000 if ttl else None

    def _publish_will(self, will) -> None:
        try:
            self.on_publish(Publish(will.topic, will.payload, will.qos, will.retain, properties=will.properties))
            self.broker.confirms.flush()
        except (AMQPError, MQTTError) as e:
            log.warning("will message of client id '%s' not published: %s", self.client_id, e)

    def _delayed_will(self, key, will) -> None:
        """The will delay is over: publish on a channel of its own (the connection's is closed)."""
        self.listener.delayed_wills.pop(key, None)
        if self.broker.vhosts.get(self.vhost.name) is not self.vhost:  # the vhost went meanwhile
            return
        self.channel = ch = MQTTChannel(self)
        try:
            self._publish_will(will)
        finally:
            ch.close()

    def taken_over(self) -> None:
        log.warning("MQTT client id '%s' connected again: closing its older connection", self.client_id)
        self.conn.disconnect(codec.SESSION_TAKEN_OVER)
        self.flush()
        self.close(publish_will=True)

    def keepalive_expired(self) -> None:
        log.error("MQTT keepalive timeout for client id '%s'", self.client_id)
        self.conn.disconnect(codec.KEEP_ALIVE_TIMEOUT)
        self.flush()
        self.close(publish_will=True)

    def abort(self, code: int, text: str) -> None:
        log.error("closing MQTT connection of client id '%s': %s", self.client_id, text)
        self.conn.disconnect(code, {"reason_string": text[:200]} if self.conn.version == MQTT5 else None)
        self.flush()
        self.close(publish_will=True)

    def connection_lost(self) -> None:
        self.close(publish_will=True)

    def close(self, publish_will: bool) -> None:
        if self.closed:
            return
        self.closed = True
        will = self.will if publish_will else None
        self.will = None
        delay = 0
        if will is not None and self.channel is not None:
            # MQTT 5's will delay: published once the delay or the session, whichever is shorter, is
            # over, unless the client id connects again first
            delay = min(will.properties.get("will_delay_interval", 0), self.session_expiry or 0)
            if delay <= 0:
                self._publish_will(will)
        if self.channel is not None:
            shared = [v[1].queue for v in self.shared.values()]
            self.channel.close()
            for q in shared:  # the shared queues this session was the last member of go
                self.listener.shared_unused(self.vhost, q)
            released = [pid for pid, expect in self.conn.inflight.items() if expect == PUBCOMP]
            if (self.conn.awaiting_rel or released) and not (self.clean or self.end_session):  # the session's
                self.listener.keep_qos2_ids((self.vhost.name, self.client_id), self.conn.awaiting_rel, released,
                                            self._session_seconds())
        if self.end_session:
            self._delete_queues()
        if delay > 0:
            key = (self.vhost.name, self.client_id)
            self.listener.delayed_wills[key] = self.listener.loop.call_later(delay, self._delayed_will, key, will)
        if self.counted:
            self.counted = False
            self.broker.limits.connection_closed(self.vhost.name, self.user.name)
        if self.registered:
            self.registered = False
            self.vhost.stats.fold_connection(self)  # its counts stay in the vhost's totals (churn, octets)
            self.broker.session_closed(self)
        if self.vhost is not None:
            key = (self.vhost.name, self.client_id)
            if self.listener.clients.get(key) is self:
                del self.listener.clients[key]
        self.io.close()
