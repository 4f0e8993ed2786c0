"""Vhost and user limits (RabbitMQ's set_vhost_limits / set_user_limits): refusals with RabbitMQ 3.10's
codes and texts, over real connections, and the limits survive a restart."""
import pika
import pytest

from warrenmq.testing import EmbeddedBroker


def connect(b, user="guest", password="guest", vhost="/"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", b.port, vhost, pika.PlainCredentials(user, password), connection_attempts=1))


def refused(b, **kw):
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        connect(b, **kw)
    return str(info.value)


@pytest.fixture
def b():
    with EmbeddedBroker() as broker:
        broker.call(broker.broker.add_vhost, "lv")
        broker.call(lambda: broker.broker.add_user("lu", "lp", vhosts={"/", "lv"}))
        yield broker


def test_vhost_max_connections(b):
    b.call(b.broker.set_vhost_limits, "lv", {"max-connections": 1})
    c = connect(b, "lu", "lp", "lv")
    assert b.call(b.broker.vhost_connection_count, "lv") == 1
    text = refused(b, user="lu", password="lp", vhost="lv")
    assert "(530) \"NOT_ALLOWED - access to vhost 'lv' refused for user 'lu': connection limit (1) is reached\"" in text
    connect(b, "lu", "lp", "/").close()  # other vhosts are not limited
    c.close()
    connect(b, "lu", "lp", "lv").close()  # the count went down with the close


def test_vhost_max_connections_zero_refuses_every_connection(b):
    b.call(b.broker.set_vhost_limits, "lv", {"max-connections": 0})
    assert "connection limit (0) is reached" in refused(b, user="lu", password="lp", vhost="lv")
    b.call(b.broker.clear_vhost_limits, "lv", "max-connections")
    connect(b, "lu", "lp", "lv").close()


def test_vhost_max_queues(b):
    b.call(b.broker.set_vhost_limits, "lv", {"max-queues": 1})
    c = connect(b, "lu", "lp", "lv")
    ch = c.channel()
    ch.queue_declare("q1")
    ch.queue_declare("q1")  # redeclaring an existing queue is not a new queue
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        ch.queue_declare("q2")
    assert info.value.reply_code == 406
    assert info.value.reply_text == "PRECONDITION_FAILED - cannot declare queue 'q2': queue limit in vhost 'lv' (1) is reached"
    c.close()


def test_user_max_connections(b):
    b.call(b.broker.set_user_limits, "lu", {"max-connections": 2})
    c1, c2 = connect(b, "lu", "lp"), connect(b, "lu", "lp", "lv")
    assert b.call(b.broker.user_connection_count, "lu") == 2
    text = refused(b, user="lu", password="lp")
    assert "(530) \"NOT_ALLOWED - connection refused for user 'lu': user connection limit (2) is reached\"" in text
    connect(b).close()  # other users are not limited
    c1.close()
    connect(b, "lu", "lp").close()
    c2.close()


def test_user_max_channels(b):
    b.call(b.broker.set_user_limits, "lu", {"max-channels": 2})
    c1, c2 = connect(b, "lu", "lp"), connect(b, "lu", "lp")
    c1.channel()
    c2.channel()  # the limit counts the user's channels on all connections
    assert b.call(b.broker.user_channel_count, "lu") == 2
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        c1.channel()
    assert info.value.reply_code == 530
    assert info.value.reply_text == ("NOT_ALLOWED - number of channels opened for user 'lu' has reached the "
                                     "maximum allowed user limit of (2)")
    c3 = connect(b)
    c3.channel(), c3.channel(), c3.channel()  # guest is not limited
    c2.close()
    c3.close()


def test_limits_are_validated_and_readable(b):
    with pytest.raises(ValueError):
        b.call(b.broker.set_vhost_limits, "lv", {"max-channels": 1})
    with pytest.raises(ValueError):
        b.call(b.broker.set_user_limits, "lu", {"max-connections": "10"})
    with pytest.raises(KeyError):
        b.call(b.broker.set_user_limits, "nobody", {"max-connections": 1})
    b.call(b.broker.set_vhost_limits, "lv", {"max-connections": 5, "max-queues": -1})
    assert b.call(b.broker.vhost_limits, "lv") == {"max-connections": 5, "max-queues": -1}
    b.call(b.broker.clear_vhost_limits, "lv")
    assert b.call(b.broker.vhost_limits, "lv") == {}
    assert b.call(b.broker.user_limits, "lu") == {}


def test_limits_survive_a_restart():
    with EmbeddedBroker(durable=True) as b:
        b.call(b.broker.add_vhost, "lv")
        b.call(lambda: b.broker.add_user("lu", "lp", vhosts={"lv"}))
        b.call(b.broker.set_vhost_limits, "lv", {"max-connections": 3, "max-queues": 0})
        b.call(b.broker.set_user_limits, "lu", {"max-channels": 7})
        b.call(b.broker.set_user_limits, "guest", {"max-connections": 4})
        b.call(b.broker.clear_user_limits, "guest")
        b.restart()
        assert b.call(b.broker.vhost_limits, "lv") == {"max-connections": 3, "max-queues": 0}
        assert b.call(b.broker.user_limits, "lu") == {"max-channels": 7}
        assert b.call(b.broker.user_limits, "guest") == {}
        c = connect(b, "lu", "lp", "lv")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
            c.channel().queue_declare("q")
        assert "queue limit in vhost 'lv' (0) is reached" in info.value.reply_text
        c.close()
