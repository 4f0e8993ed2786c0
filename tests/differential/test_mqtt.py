"""MQTT 3.1.1 scenarios compared with RabbitMQ 3.10's MQTT plugin: the exact packets a client gets back.

Each scenario is a list of raw packets sent over one MQTT connection; the outcome is every packet
received (decoded by WarrenMQ's codec into its fields) and whether the server closed the connection,
with the per-run token normalised.  WarrenMQ always runs (an embedded broker with MQTT on); the
reference runs when ``WARRENMQ_REFERENCE_MQTT`` names a RabbitMQ MQTT listener (``host:port``, e.g.
the probe node's ``127.0.0.1:1884``; .ci/rabbitmq.sh sets it when its node has the plugin), and
``WARRENMQ_DIFF_RECORD=1`` writes its outcomes to golden/test_mqtt.json.  Without a reference
WarrenMQ is compared with the recording.  Only what must match is here: QoS 2 (RabbitMQ 3.10 grants
1), retained messages on wildcard subscriptions and the CONNACK 1 for an unsupported protocol
level (RabbitMQ 3.10 closes without it) differ on purpose (docs/mqtt.md), and where a QoS 1
publish is delivered to its own publisher, RabbitMQ's PUBACK comes before the PUBLISH and
WarrenMQ's after it (both orders are valid).  Every session
is clean, so nothing outlives a scenario.
"""
from __future__ import annotations

import json
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from warrenmq.mqtt import codec as c
from warrenmq.mqtt.codec import PacketReader, encode
from warrenmq.testing import EmbeddedBroker

GOLDEN = Path(__file__).parent / "golden" / "test_mqtt.json"
TOKEN = "md" + uuid.uuid4().hex[:8]


def _connect(client_id=TOKEN, clean=True, user="guest", password=b"guest", level=4):
    pkt = c.Connect(4, client_id, clean, 60, user, password)
    data = encode(pkt, 4)
    if level != 4:  # the protocol level byte sits after the 2+4 byte protocol name
        data = data[:8] + bytes((level,)) + data[9:]
    return data


def _sub(pid, *filters):
    return encode(c.Subscribe(pid, [c.Subscription(f, q) for f, q in filters]), 4)


def _pub(topic, payload, qos=0, pid=None, retain=False):
    return encode(c.Publish(topic, payload, qos, retain, packet_id=pid), 4)


SCENARIOS = {
    "connect clean": [_connect()],
    "bad password": [_connect(password=b"wrong")],
    "unknown vhost": [_connect(user="md-nope:guest")],
    "empty client id, persistent session": [_connect(client_id="", clean=False)],
    "empty client id, clean session": [_connect(client_id="")],
    "ping": [_connect(), b"\xc0\x00"],
    "subscribe QoS 0 and 1, wildcards": [_connect(), _sub(1, (f"{TOKEN}/+/a", 0), (f"{TOKEN}/#", 1))],
    "publish QoS 1 is acked": [_connect(), _pub(f"{TOKEN}/p", b"x", 1, 7)],
    "own subscription receives": [
        _connect(), _sub(1, (f"{TOKEN}/s/+", 0)), _pub(f"{TOKEN}/s/1", b"one"), _pub(f"{TOKEN}/s/2", b"two")],
    "QoS 1 subscription gets QoS 0 and 1 publishes at their QoS": [
        _connect(), _sub(1, (f"{TOKEN}/q", 1)), _pub(f"{TOKEN}/q", b"zero"), _pub(f"{TOKEN}/q", b"one", 1, 3)],
    "unsubscribe": [_connect(), _sub(1, (f"{TOKEN}/u", 0)), encode(c.Unsubscribe(2, [f"{TOKEN}/u"]), 4),
                    _pub(f"{TOKEN}/u", b"not delivered")],
    "retained message, exact subscription": [
        _connect(), _pub(f"{TOKEN}/r", b"kept", 1, 4, retain=True), _sub(1, (f"{TOKEN}/r", 1)),
        _pub(f"{TOKEN}/r", b"", 1, 5, retain=True)],
}


def _fields(pkt) -> list:
    d = {s: getattr(pkt, s) for s in pkt.__slots__ if s != "properties"}
    for k, v in d.items():
        if isinstance(v, (bytes, bytearray)):
            d[k] = v.decode("utf-8", "replace")
        elif isinstance(v, list):
            d[k] = [x if isinstance(x, int) else repr(x) for x in v]
    return [c.PACKET_NAMES[pkt.type], d]


def run(host: str, port: int, packets: list) -> dict:
    s = socket.create_connection((host, port))
    s.settimeout(0.6)
    data = b""
    closed = False
    try:
        for p in packets:
            s.sendall(p)
            time.sleep(0.15)
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            except ConnectionResetError:
                closed = True
                break
            if not d:
                closed = True
                break
            data += d
    finally:
        s.close()
    received = [_fields(p) for p in PacketReader(version=4).feed(data)]
    return json.loads(json.dumps({"received": received, "closed": closed}).replace(TOKEN, "T"))


def _reference():
    ref = os.environ.get("WARRENMQ_REFERENCE_MQTT")
    if not ref:
        return None
    host, _, port = ref.rpartition(":")
    return host, int(port)


@pytest.fixture(scope="module")
def warren():
    with EmbeddedBroker(mqtt=True) as b:
        yield b


@pytest.fixture(scope="module")
def golden():
    recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    yield recorded
    if os.environ.get("WARRENMQ_DIFF_RECORD") and _reference() is not None:
        GOLDEN.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_mqtt_like_rabbitmq(name, warren, golden):
    packets = SCENARIOS[name]
    ref = _reference()
    if ref is not None:
        expected = run(ref[0], ref[1], packets)
        if os.environ.get("WARRENMQ_DIFF_RECORD"):
            golden[name] = expected
        else:
            assert expected == golden.get(name), "RabbitMQ's outcome differs from the recording: re-record"
    else:
        assert name in golden, f"no recorded outcome for {name!r}: record it (WARRENMQ_REFERENCE_MQTT, WARRENMQ_DIFF_RECORD=1)"
        expected = golden[name]
    assert run("127.0.0.1", warren.mqtt_port, packets) == expected
