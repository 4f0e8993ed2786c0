"""STOMP scenarios compared with RabbitMQ 3.10's STOMP plugin: the exact frames a client gets back.

Each scenario is a list of raw frames sent over one STOMP connection; the outcome is every frame received
(command, headers in order, body), with the session id, message ids and generated names normalised.
WarrenMQ always runs (an embedded broker with STOMP on); the reference runs when
``WARRENMQ_REFERENCE_STOMP`` names a RabbitMQ STOMP listener (``host:port``, e.g. the probe node's
``127.0.0.1:61614``; .ci/rabbitmq.sh sets it when its node has the plugin, which a node it starts has,
on 127.0.0.1:16130), and ``WARRENMQ_DIFF_RECORD=1`` writes its outcomes to golden/test_stomp.json.  Without a reference WarrenMQ is compared with the recording.
The scenarios create only auto-delete subscription queues.  RabbitMQ leaks one in the scenarios whose
SUBSCRIBE it refuses after declaring the queue (bad ack mode, bad prefetch-count, duplicate subscription
id: an unbound, never-consumed ``stomp-subscription-...`` stays); WarrenMQ checks the frame first.  After
recording, delete those on the reference (``rabbitmqctl list_queues name consumers``, then
``rabbitmqctl delete_queue``).
"""
from __future__ import annotations

import json
import os
import re
import socket
import time
import uuid
from pathlib import Path

import pytest

from warrenmq.stomp.codec import FrameReader
from warrenmq.stomp.session import durable_queue_name
from warrenmq.testing import EmbeddedBroker

GOLDEN = Path(__file__).parent / "golden" / "test_stomp.json"
TOKEN = "sd" + uuid.uuid4().hex[:8]


def _connect(version="1.2", extra=""):
    return (f"CONNECT\naccept-version:{version}\nhost:/\nlogin:guest\npasscode:guest\n{extra}\n\0").encode()


SCENARIOS = {
    "connect 1.2 heart-beat": [_connect("1.2", "heart-beat:1000,2000\n"), b"DISCONNECT\nreceipt:bye\n\n\0"],
    "connect 1.0 without accept-version": [b"CONNECT\nlogin:guest\npasscode:guest\n\n\0", b"DISCONNECT\n\n\0"],
    "connect 1.1 of 1.0,1.1": [_connect("1.0,1.1"), b"DISCONNECT\n\n\0"],
    "bad passcode": [b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:wrong\n\n\0"],
    "unknown vhost": [b"CONNECT\naccept-version:1.2\nhost:sd-nope\nlogin:guest\npasscode:guest\n\n\0"],
    "frame before CONNECT": [b"SEND\ndestination:/topic/x\n\nhi\0"],
    "unknown destination": [_connect(), b"SEND\ndestination:/foo/bar\n\nhi\0"],
    "empty queue destination": [_connect(), b"SUBSCRIBE\ndestination:/queue\nid:1\n\n\0"],
    "missing exchange": [_connect(), f"SEND\ndestination:/exchange/{TOKEN}-x/k\n\nhi\0".encode()],
    "missing amq queue": [_connect(), f"SUBSCRIBE\ndestination:/amq/queue/{TOKEN}-q\nid:1\n\n\0".encode()],
    "SEND without destination": [_connect(), b"SEND\n\nhi\0"],
    "message-id on SEND": [_connect(), b"SEND\ndestination:/topic/x\nmessage-id:1\n\nhi\0"],
    "unknown command": [_connect(), b"FOO\n\n\0"],
    "ACK with a bad id": [_connect(), b"ACK\nid:nope\n\n\0"],
    "second CONNECT": [_connect(), _connect()],
    "ACK without id": [_connect(), b"ACK\n\n\0"],
    "UNSUBSCRIBE of an unknown id": [_connect(), b"UNSUBSCRIBE\nid:nope\n\n\0"],
    "UNSUBSCRIBE without id or destination": [_connect(), b"UNSUBSCRIBE\n\n\0"],
    "duplicate subscription id": [_connect(), f"SUBSCRIBE\ndestination:/topic/{TOKEN}.a\nid:1\n\n\0".encode(),
                                  f"SUBSCRIBE\ndestination:/topic/{TOKEN}.b\nid:1\n\n\0".encode()],
    "bad ack mode": [_connect(), f"SUBSCRIBE\ndestination:/topic/{TOKEN}.a\nid:1\nack:bogus\n\n\0".encode()],
    "bad prefetch-count": [_connect(), f"SUBSCRIBE\ndestination:/topic/{TOKEN}.a\nid:1\nprefetch-count:x\n\n\0".encode()],
    "SUBSCRIBE without destination": [_connect(), b"SUBSCRIBE\nid:1\n\n\0"],
    "COMMIT of an unknown transaction": [_connect(), b"COMMIT\ntransaction:nope\n\n\0"],
    "ABORT of an unknown transaction": [_connect(), b"ABORT\ntransaction:nope\n\n\0"],
    "BEGIN without transaction": [_connect(), b"BEGIN\n\n\0"],
    "BEGIN twice": [_connect(), b"BEGIN\ntransaction:t\n\n\0BEGIN\ntransaction:t\nreceipt:b\n\n\0"],
    "SEND in an unknown transaction": [_connect(), b"SEND\ndestination:/topic/x\ntransaction:nope\n\nx\0"],
    "headers to properties and back (1.2, client ack)": [
        _connect(),
        f"SUBSCRIBE\ndestination:/topic/{TOKEN}.a\nid:s1\nack:client\nreceipt:r0\n\n\0".encode(),
        f"SEND\ndestination:/topic/{TOKEN}.a\ncontent-type:text/plain\ncontent-encoding:ce\npersistent:true\n"
        f"priority:3\ncorrelation-id:c1\nreply-to:/queue/r\nexpiration:60000\namqp-message-id:m1\ntype:t\n"
        f"app-id:a\ntimestamp:5\nx-custom:v\\cw\nreceipt-like:r1\n\nhello\0".encode(),
    ],
    "SEND to a temp-queue": [_connect(), f"SEND\ndestination:/temp-queue/{TOKEN}\n\nx\0".encode()],
    "SUBSCRIBE to a temp-queue": [_connect(), f"SUBSCRIBE\ndestination:/temp-queue/{TOKEN}\nid:1\n\n\0".encode()],
    "a declare flag that is not a boolean": [
        _connect(), f"SUBSCRIBE\ndestination:/queue/{TOKEN}-b\nid:1\ndurable:yes\n\n\0".encode()],
    "durable exchange subscription without id": [
        _connect(), f"SUBSCRIBE\ndestination:/exchange/amq.direct/{TOKEN}\ndurable:true\n\n\0".encode()],
    "auto-delete:true queue goes with its last consumer": [
        _connect(),
        f"SEND\ndestination:/queue/{TOKEN}-ad\nauto-delete:true\nreceipt:r0\n\nkept\0".encode(),
        f"SUBSCRIBE\ndestination:/amq/queue/{TOKEN}-ad\nid:a\n\n\0".encode(),
        b"UNSUBSCRIBE\nid:a\nreceipt:r2\n\n\0",
        f"SUBSCRIBE\ndestination:/amq/queue/{TOKEN}-ad\nid:b\n\n\0".encode(),
    ],
    "durable topic subscription is auto-delete without auto-delete:false": [
        _connect(),
        f"SUBSCRIBE\ndestination:/topic/{TOKEN}.d\nid:d\ndurable:true\nreceipt:r1\n\n\0".encode(),
        b"UNSUBSCRIBE\nid:d\nreceipt:r2\n\n\0",
        f"SUBSCRIBE\ndestination:/amq/queue/{durable_queue_name(TOKEN + '.d', 'd')}\nid:e\n\n\0".encode(),
    ],
    "exchange destination, 1.1 escapes": [
        _connect("1.1"),
        f"SUBSCRIBE\ndestination:/exchange/amq.direct/{TOKEN}\nid:e\nreceipt:r0\n\n\0".encode(),
        f"SEND\ndestination:/exchange/amq.direct/{TOKEN}\nh:a\\nb\ncontent-length:3\n\na\0b\0".encode(),
    ],
}


def run(host: str, port: int, frames: list) -> list:
    s = socket.create_connection((host, port))
    s.settimeout(0.6)
    reader = FrameReader()
    reader.version = "1.0"  # read headers raw: the escapes are part of what is compared
    data = b""
    try:
        for f in frames:
            s.sendall(f)
            time.sleep(0.15)
        while True:
            try:
                d = s.recv(65536)
            except socket.timeout:
                break
            if not d:
                break
            data += d
    finally:
        s.close()
    return [[f.command, [list(h) for h in f.headers], f.body.decode("utf-8", "replace")] for f in reader.feed(data)]


def normalise(outcome: list) -> list:
    text = json.dumps(outcome)
    text = re.sub(r"session-[A-Za-z0-9_-]{22}", "session-S", text)
    text = re.sub(r"stomp-subscription-[A-Za-z0-9_-]{22}", "stomp-subscription-G", text)
    text = re.sub(r"amq\.gen-[A-Za-z0-9_-]{22}", "amq.gen-G", text)
    text = text.replace(TOKEN, "T")
    return json.loads(text)


def _reference():
    ref = os.environ.get("WARRENMQ_REFERENCE_STOMP")
    if not ref:
        return None
    host, _, port = ref.rpartition(":")
    return host, int(port)


@pytest.fixture(scope="module")
def warren():
    with EmbeddedBroker(stomp=True) as b:
        yield b


@pytest.fixture(scope="module")
def golden():
    recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    yield recorded
    if os.environ.get("WARRENMQ_DIFF_RECORD") and _reference() is not None:
        GOLDEN.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_stomp_like_rabbitmq(name, warren, golden):
    frames = SCENARIOS[name]
    ref = _reference()
    if ref is not None:
        expected = normalise(run(ref[0], ref[1], frames))
        if os.environ.get("WARRENMQ_DIFF_RECORD"):
            golden[name] = expected
        else:
            assert expected == golden.get(name), "RabbitMQ's outcome differs from the recording: re-record"
    else:
        assert name in golden, f"no recorded outcome for {name!r}: record it (WARRENMQ_REFERENCE_STOMP, WARRENMQ_DIFF_RECORD=1)"
        expected = golden[name]
    assert normalise(run("127.0.0.1", warren.stomp_port, frames)) == expected
