"""Domain tests: the broker driven through its API, no sockets.

``TestChannel`` is these tests' protocol adapter: a domain channel whose ``send_*`` hooks record
what a client would have been sent, so a test reads deliveries, returns and confirms as values.
"""
import struct

import pytest

from warrenmq.broker.broker import Broker
from warrenmq.broker.channel import Channel
from warrenmq.config import BrokerConfig
from warrenmq.protocol.spec import BasicProperties, CLASS_BASIC


class Owner:
    """The connection a test channel belongs to (exclusive queues are owned by it)."""

    def __init__(self, user):
        self.user = user
        self.flow_count = 0  # how many queues throttle it (credit flow: set_flow)

    def set_flow(self, on):
        self.flow_count += 1 if on else -1


class TestChannel(Channel):
    __test__ = False
    __slots__ = ("sent",)

    def __init__(self, broker, number=1, vhost="/"):
        Channel.__init__(self, broker, broker.vhosts[vhost], Owner(broker.users["guest"]), number)
        self.sent = []

    def send_deliver(self, consumer, tag, entry):
        self.sent.append(("deliver", consumer.tag, tag, entry.redelivered, entry.message.body))

    def send_return(self, msg, code, text):
        self.sent.append(("return", code, text, msg.body))

    def send_confirm(self, seq, multiple, nack):
        self.sent.append(("nack" if nack else "ack", seq, multiple))

    def send_cancel(self, consumer):
        self.sent.append(("cancel", consumer.tag))

    def send_reply(self, msg, tag):
        self.sent.append(("reply", tag, msg.body))

    def timed_out(self, timeout_ms):
        self.sent.append(("timed_out", timeout_ms))

    def take(self, kind=None) -> list:
        """What was sent since the last take (only ``kind`` when given)."""
        out = [s for s in self.sent if kind is None or s[0] == kind]
        self.sent = [s for s in self.sent if kind is not None and s[0] != kind]
        return out


def header(body_size=0, **props) -> bytes:
    """A content-header payload as a client sends it."""
    return struct.pack(">HHQ", CLASS_BASIC, 0, body_size) + BasicProperties(**props).encode()


def publish(channel, exchange, routing_key, body=b"x", mandatory=False, **props):
    channel.publish(exchange, routing_key, header(len(body), **props), body, mandatory)


def make_broker(data_dir=None) -> Broker:
    """An in-memory broker, or a durable one keeping its data in ``data_dir``."""
    return Broker(BrokerConfig(data_dir=str(data_dir) if data_dir else ""))


@pytest.fixture
def broker():
    b = make_broker()
    yield b
    b.close()


@pytest.fixture
def durable_broker(tmp_path):
    b = make_broker(tmp_path / "data")
    yield b
    b.close()


@pytest.fixture
def channel(broker):
    return TestChannel(broker)
