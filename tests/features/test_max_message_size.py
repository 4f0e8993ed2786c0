"""max_message_size (issue 13): a message larger than the setting is refused with RabbitMQ's 406 and
text, its channel is closed, the connection and other channels go on, nothing is stored; the setting
is validated at start.  (The default's behaviour is compared with RabbitMQ in
tests/differential/test_malformed.py.)"""
from __future__ import annotations

import pika
import pytest

from warrenmq.config import BrokerConfig
from warrenmq.testing import EmbeddedBroker

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def small_broker():
    with EmbeddedBroker(max_message_size=10_000) as b:
        yield b


def test_a_message_over_max_message_size_closes_its_channel_with_406(small_broker):
    conn = pika.BlockingConnection(pika.URLParameters(small_broker.url))
    try:
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        other = conn.channel()
        ch.basic_publish("", q, b"x" * 10_000)  # the limit itself is accepted
        ch.basic_publish("", q, b"x" * 300_000, pika.BasicProperties(delivery_mode=2))  # several body frames
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare(q, passive=True)
        assert (e.value.reply_code, e.value.reply_text) == (
            406, "PRECONDITION_FAILED - message size 300000 is larger than configured max size 10000")
        assert conn.is_open
        assert other.queue_declare(q, passive=True).method.message_count == 1
        ch = conn.channel()  # the connection goes on
        ch.basic_publish("", q, b"y")
        assert ch.queue_declare(q, passive=True).method.message_count == 2
    finally:
        conn.close()


@pytest.mark.parametrize("value", [0, -1, 536870913])
def test_max_message_size_out_of_range_is_a_configuration_error(value):
    with pytest.raises(ValueError, match="max_message_size must be between 1 and 536870912"):
        BrokerConfig(max_message_size=value)
    with pytest.raises(ValueError, match="max_message_size"):
        BrokerConfig.load(env={"WARRENMQ_MAX_MESSAGE_SIZE": str(value)})


def test_max_message_size_default_and_maximum_are_rabbitmqs():
    assert BrokerConfig().max_message_size == 128 * 1024 * 1024
    assert BrokerConfig(max_message_size=512 * 1024 * 1024).max_message_size == 536870912
