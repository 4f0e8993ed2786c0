"""Length limits and overflow through the domain API: x-max-length, x-max-length-bytes, and each
x-overflow mode (drop-head, reject-publish, reject-publish-dlx), for classic and quorum queues, set by
argument or by policy."""
import pytest
from support.queue_client import Client, message, ready

from warrenmq.broker.vhost import VHost


@pytest.fixture
def vh():
    vh = VHost("/")
    vh.declare_exchange("dlx", "fanout")
    dead, _ = vh.declare_queue("dead", None)
    vh.bind_queue(dead, "dlx", "", None)
    return vh


def reasons(q):
    return [e.message.properties.headers["x-death"][0]["reason"] for e in q.messages]


def test_drop_head_keeps_the_newest_and_dead_letters_the_dropped(vh):
    q, _ = vh.declare_queue("q", None, arguments={"x-max-length": 2, "x-dead-letter-exchange": "dlx"})
    for b in (b"1", b"2", b"3", b"4"):
        assert q.publish(message(b)) is not False
    assert ready(q) == [b"3", b"4"]
    dead = vh.queues["dead"]
    assert ready(dead) == [b"1", b"2"] and reasons(dead) == ["maxlen", "maxlen"]


def test_requeued_messages_count_and_drop_head_drops_them_first(vh):
    q, _ = vh.declare_queue("q", None, arguments={"x-max-length": 2})
    q.publish(message(b"1"))
    got = q.get()
    q.publish(message(b"2"))
    q.publish(message(b"3"))
    q.requeue([got])  # back at the head, and the queue is over its limit: the head goes
    assert ready(q) == [b"2", b"3"]


def test_a_byte_limit_counts_ready_bodies_only(vh):
    q, _ = vh.declare_queue("q", None, arguments={"x-max-length-bytes": 10})
    client = Client()
    q.publish(message(b"x" * 6))
    q.publish(message(b"y" * 4))
    assert q.messages.bytes == 10
    q.publish(message(b"z" * 3))  # 13 > 10: the head goes
    assert ready(q) == [b"y" * 4, b"z" * 3] and q.messages.bytes == 7
    client.consume(q, "c", prefetch=1)  # a delivered message no longer counts
    assert q.messages.bytes == 3
    q.publish(message(b"w" * 7))
    assert ready(q) == [b"z" * 3, b"w" * 7]


def test_reject_publish_refuses_what_does_not_fit_and_dead_letters_nothing(vh):
    q, _ = vh.declare_queue("q", None, arguments={"x-max-length": 1, "x-overflow": "reject-publish",
                                                  "x-dead-letter-exchange": "dlx"})
    assert q.publish(message(b"1")) is not False
    assert q.publish(message(b"2")) is False
    assert ready(q) == [b"1"] and ready(vh.queues["dead"]) == [] and q.stats_published == 1


def test_reject_publish_dlx_dead_letters_the_refused_message(vh):
    q, _ = vh.declare_queue("q", None, arguments={"x-max-length-bytes": 3, "x-overflow": "reject-publish-dlx",
                                                  "x-dead-letter-exchange": "dlx"})
    assert q.publish(message(b"abc")) is not False
    assert q.publish(message(b"d")) is False
    assert ready(q) == [b"abc"]
    assert ready(vh.queues["dead"]) == [b"d"] and reasons(vh.queues["dead"]) == ["maxlen"]


def test_a_quorum_queue_treats_reject_publish_dlx_as_drop_head(vh):
    q, _ = vh.declare_queue("qq", None, durable=True, arguments={
        "x-queue-type": "quorum", "x-max-length": 1, "x-overflow": "reject-publish-dlx",
        "x-dead-letter-exchange": "dlx"})
    assert q.limit.overflow == "drop-head"
    assert q.publish(message(b"1")) is not False and q.publish(message(b"2")) is not False
    assert ready(q) == [b"2"] and ready(vh.queues["dead"]) == [b"1"]


def test_a_policy_sets_changes_and_lifts_a_limit_and_the_argument_wins_when_lower(vh):
    q, _ = vh.declare_queue("q", None, arguments={"x-max-length": 3})
    for b in (b"1", b"2", b"3"):
        q.publish(message(b))
    vh.policies.set("p", "^q$", {"max-length": 1})
    assert ready(q) == [b"3"]  # the lower limit, applied at once (drop-head)
    vh.policies.set("p", "^q$", {"max-length": 1, "overflow": "reject-publish"})  # fills the missing argument
    assert q.limit.overflow == "reject-publish" and q.publish(message(b"4")) is False
    vh.policies.set("p", "^q$", {"max-length": 10})
    assert q.limit.max_length == 3  # the argument is lower
    vh.policies.clear("p")
    assert q.limit.max_length == 3 and q.limit.overflow == "drop-head"


def test_a_delivery_limit_policy_reaches_a_quorum_queue(vh):
    q, _ = vh.declare_queue("qq", None, durable=True, arguments={"x-queue-type": "quorum",
                                                                  "x-dead-letter-exchange": "dlx"})
    assert q.delivery_limit is None
    vh.policies.set("p", "^qq$", {"delivery-limit": 1})
    assert q.delivery_limit == 1
    client = Client()
    client.consume(q, "c", prefetch=1)
    q.publish(message(b"m"))
    client.reject()  # returned once: delivered again, with x-delivery-count 1
    client.reject()  # returned twice: over the limit
    assert client.take() == [b"m", b"m"]
    assert ready(q) == [] and reasons(vh.queues["dead"]) == ["delivery_limit"]
