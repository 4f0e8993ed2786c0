"""Dead lettering goes through the one publish path."""
from .conftest import TestChannel, make_broker, publish


def test_a_rejected_message_is_dead_lettered_with_x_death(broker, channel):
    vh = broker.vhosts["/"]
    vh.declare_exchange("dlx", "fanout")
    dead, _ = vh.declare_queue("dead", None)
    vh.bind_queue(dead, "dlx", "", {})
    q, _ = vh.declare_queue("work", None, arguments={"x-dead-letter-exchange": "dlx"})
    publish(TestChannel(broker, 2), "", "work", b"job")
    channel.start(channel.consume(q, "c", False, False, {}))
    channel.reject(1, False, False)
    [entry] = list(dead.messages)
    death = entry.message.properties.headers["x-death"][0]
    assert (death["reason"], death["queue"], death["count"]) == ("rejected", "work", 1)


def test_a_persistent_dead_letter_into_a_durable_queue_is_stored(tmp_path):
    b = make_broker(tmp_path / "data")
    try:
        vh = b.vhosts["/"]
        vh.declare_exchange("dlx", "fanout", durable=True)
        dead, _ = vh.declare_queue("dead", None, durable=True)
        vh.bind_queue(dead, "dlx", "", {})
        vh.declare_queue("ttl", None, durable=True, arguments={"x-dead-letter-exchange": "dlx"})
        ch = TestChannel(b)
        publish(ch, "", "ttl", b"expiring", delivery_mode=2, expiration="0")
        vh.queues["ttl"]._drop_expired()
        [entry] = list(dead.messages)
        assert entry.message.store_id and entry.message.pageable
    finally:
        b.close()
    b = make_broker(tmp_path / "data")
    try:
        assert [e.message.body for e in b.vhosts["/"].queues["dead"].messages] == [b"expiring"]
    finally:
        b.close()


def test_a_cycle_of_expiries_is_dropped(broker, channel):
    vh = broker.vhosts["/"]
    vh.declare_queue("a", None, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "b"})
    vh.declare_queue("b", None, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "a"})
    publish(channel, "", "a", b"m", expiration="0")
    vh.queues["a"]._drop_expired()
    assert len(vh.queues["b"].messages) == 1
    vh.queues["b"]._drop_expired()
    assert len(vh.queues["a"].messages) == 0  # back in 'a' with no rejection between: a cycle
