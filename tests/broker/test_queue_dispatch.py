"""Queue dispatch through the domain API: round robin with prefetch credit, requeue in place, basic.get,
message priorities, consumer priorities and single active consumer.  No sockets: a VHost, its queues and a
test-side client (tests/support/queue_client.py)."""
from support.queue_client import Client, message, ready

from warrenmq.broker.queues import Fifo, PriorityMessages, SizedMessages
from warrenmq.broker.vhost import VHost


def declare(name="q", vhost=None, **arguments):
    vh = vhost if vhost is not None else VHost("/")
    q, created = vh.declare_queue(name, None, arguments=arguments or None)
    assert created
    return q


def publish(q, *bodies, **props):
    for b in bodies:
        assert q.publish(message(b, **props)) is not False


def test_round_robin_follows_prefetch_credit():
    q = declare()
    client = Client()
    a = client.consume(q, "a", prefetch=2)
    b = client.consume(q, "b", prefetch=1)
    publish(q, *[b"m%d" % i for i in range(6)])
    # a, b, a; then b and a are out of credit: the rest waits
    assert client.delivered == [("a", b"m0"), ("b", b"m1"), ("a", b"m2")]
    assert ready(q) == [b"m3", b"m4", b"m5"]
    assert (a.unacked, b.unacked, q.unacked) == (2, 1, 3)
    client.ack([client.unacked[1]])  # b's message: b has credit again
    assert client.delivered[-1] == ("b", b"m3")
    client.ack()
    client.ack()
    assert ready(q) == [] and q.unacked == 0
    assert [body for _, body in client.delivered] == [b"m%d" % i for i in range(6)]
    assert q.stats_delivered == q.stats_acked == 6


def test_global_prefetch_limits_the_channel_and_a_paused_channel_gets_nothing():
    q = declare()
    client = Client(global_prefetch=2)
    client.consume(q, "a")
    client.consume(q, "b")
    publish(q, b"1", b"2", b"3")
    assert client.take() == [b"1", b"2"] and ready(q) == [b"3"]
    client.paused = True
    client.ack()
    assert client.take() == [] and ready(q) == [b"3"]
    client.paused = False
    q.dispatch()  # what the session does when writing resumes
    assert client.take() == [b"3"]


def test_requeued_messages_go_back_to_their_original_place_marked_redelivered():
    q = declare()
    client = Client()
    publish(q, b"0", b"1", b"2", b"3", b"4")
    got = [q.get() for _ in range(3)]
    assert [e.message.body for e in got] == [b"0", b"1", b"2"]
    q.requeue([got[2], got[0]])  # in any order: back by sequence number
    assert ready(q) == [b"0", b"2", b"3", b"4"]
    assert [e.redelivered for e in q.messages] == [True, True, False, False]
    c = client.consume(q, "c", prefetch=1)
    assert client.take() == [b"0"]
    client.reject()  # requeue: first again
    assert client.take() == [b"0"]
    client.cancel(c)
    assert ready(q) == [b"0", b"2", b"3", b"4"]


def test_get_takes_the_head_and_purge_empties_the_queue():
    q = declare()
    assert q.get() is None
    publish(q, b"a", b"b", b"c")
    assert q.get().message.body == b"a"
    assert q.purge() == 2 and ready(q) == [] and q.vhost.memory.used == 1  # "a" is still out


def test_priority_queue_serves_the_highest_priority_first_fifo_within_a_level():
    q = declare(**{"x-max-priority": 5})
    assert isinstance(q.messages, PriorityMessages)
    publish(q, b"p0-a")
    publish(q, b"p3-a", priority=3)
    publish(q, b"p9-a", priority=9)  # above the maximum: counts as the maximum
    publish(q, b"p3-b", priority=3)
    publish(q, b"p0-b")
    publish(q, b"p5-a", priority=5)
    assert ready(q) == [b"p9-a", b"p5-a", b"p3-a", b"p3-b", b"p0-a", b"p0-b"]
    got = [q.get() for _ in range(3)]
    q.requeue(got)
    assert ready(q) == [b"p9-a", b"p5-a", b"p3-a", b"p3-b", b"p0-a", b"p0-b"]
    assert len(q.messages) == 6 and q.messages[0].message.body == b"p9-a"


def test_a_byte_limit_wraps_the_container_and_lifting_it_unwraps():
    q = declare(**{"x-max-priority": 2, "x-max-length-bytes": 100})
    assert isinstance(q.messages, SizedMessages) and isinstance(q.messages.inner, PriorityMessages)
    plain = declare("plain", q.vhost)
    assert plain.messages.__class__ is Fifo and plain.limit is None
    publish(plain, b"abc", b"de")
    q.vhost.policies.set("b", "^plain$", {"max-length-bytes": 3})  # drop-head: "abc" goes
    assert plain.messages.__class__ is SizedMessages and plain.messages.bytes == 2 and ready(plain) == [b"de"]
    q.vhost.policies.clear("b")
    assert plain.messages.__class__ is Fifo and plain.limit is None and ready(plain) == [b"de"]


def test_consumer_priorities_serve_the_highest_level_with_credit_round_robin_within():
    q = declare()
    client = Client()
    client.consume(q, "low", prefetch=10)
    client.consume(q, "high1", prefetch=1, priority=5)
    client.consume(q, "high2", prefetch=1, priority=5)
    publish(q, b"1", b"2", b"3", b"4")
    assert [tag for tag, _ in client.delivered] == ["high1", "high2", "low", "low"]
    client.delivered.clear()
    client.ack([e for e in client.unacked if e.consumer.tag == "high2"])
    publish(q, b"5")
    assert client.delivered == [("high2", b"5")]


def test_single_active_consumer_gets_everything_until_it_goes():
    q = declare(**{"x-single-active-consumer": True})
    client = Client()
    first = client.consume(q, "first", prefetch=1)
    client.consume(q, "second", prefetch=5)
    client.consume(q, "third", prefetch=5, priority=3)
    publish(q, b"1", b"2", b"3")
    assert client.delivered == [("first", b"1")]  # the others wait even with credit
    assert ready(q) == [b"2", b"3"]
    client.cancel(first)  # its unacked message goes back first; the highest priority takes over
    assert [tag for tag, _ in client.delivered[1:]] == ["third", "third", "third"]
    assert [body for _, body in client.delivered[1:]] == [b"1", b"2", b"3"]
    assert q.active_consumer.tag == "third"
