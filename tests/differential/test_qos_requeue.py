"""basic.qos as RabbitMQ 3.x applies it (per consumer, global, and their mix), requeue order and
the redelivered flag, recover, and basic.get counts."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)

SETTLE = 0.3  # long enough for any delivery that is going to happen to arrive


def _fill(ch, q, n, start=0):
    for i in range(start, start + n):
        ch.basic_publish("", q, str(i).encode())


def _counts(consumers):
    return [len(c.wait(None, SETTLE) if i == 0 else c.messages) for i, c in enumerate(consumers)]


def test_qos_per_consumer(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        _fill(ch, q, 10)
        ch.basic_qos(prefetch_count=2)
        a = env.consumer(ch, q)
        env.record("A after qos 2", _counts([a]))
        ch.basic_qos(prefetch_count=5)  # only for consumers created from now on
        b = env.consumer(ch, q)
        env.record("A, B after qos 5", _counts([a, b]))
        ch.basic_ack(a.messages[0]["delivery_tag"])
        env.record("A, B after one ack of A", _counts([a, b]))
        for m in b.messages:
            ch.basic_ack(m["delivery_tag"])
        env.record("A, B after acking B's", _counts([a, b]))
        env.record("bodies", [[m["body"] for m in a.messages], [m["body"] for m in b.messages]])
    differ(scenario)


def test_qos_global(differ):
    def scenario(env):
        ch = env.channel()
        q1, q2 = env.queue("q1"), env.queue("q2")
        ch.queue_declare(q1)
        ch.queue_declare(q2)
        _fill(ch, q1, 10)
        _fill(ch, q2, 10, 100)
        ch.basic_qos(prefetch_count=3, global_qos=True)
        a = env.consumer(ch, q1)
        env.record("A", _counts([a]))
        b = env.consumer(ch, q2)
        env.record("A, B (shared limit)", _counts([a, b]))
        # which queue's consumer gets the freed credit is a race between RabbitMQ's queue
        # processes: only the total is compared from here on
        ch.basic_qos(prefetch_count=5, global_qos=True)  # takes effect at once
        env.record("A+B after raising to 5", sum(_counts([a, b])))
        ch.basic_ack(0, multiple=True)
        env.record("A+B after acking all", sum(_counts([a, b])))
        env.record("get ignores prefetch", len(env.get_all(ch, q1)) + len(env.get_all(ch, q2)))
    differ(scenario)


@pytest.mark.parametrize("calls", [
    [(3, True), (2, False)],
    [(3, True), (5, False)],
    [(2, False), (3, True)],
    [(0, False), (2, True)],
    [(2, True), (0, True)],
], ids=lambda calls: "-".join(f"{n}{'g' if g else 'c'}" for n, g in calls))
def test_qos_mixed(differ, calls):
    def scenario(env):
        ch = env.channel()
        queues = [env.queue(f"q{i}") for i in range(3)]
        for i, q in enumerate(queues):
            ch.queue_declare(q)
            _fill(ch, q, 8, 10 * i)
        for n, g in calls:
            ch.basic_qos(prefetch_count=n, global_qos=g)
        consumers = [env.consumer(ch, q) for q in queues]
        env.record("unacked per consumer", _counts(consumers))
    differ(scenario)


def test_qos_prefetch_size(differ):
    def scenario(env):
        ch = env.channel()
        env.attempt("prefetch_size 10", ch.basic_qos, prefetch_size=10, prefetch_count=1)
        ch = env.channel()
        env.attempt("prefetch_count 65535", ch.basic_qos, prefetch_count=65535)
    differ(scenario)


def test_reject_requeue_keeps_position(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        _fill(ch, q, 5, 1)
        got = env.get_all(ch, q, auto_ack=False)
        ch.basic_reject(got[3]["delivery_tag"], requeue=True)
        ch.basic_reject(got[1]["delivery_tag"], requeue=True)
        ch.basic_publish("", q, b"6")
        env.record("after requeue", env.get_all(ch, q, auto_ack=False))
        ch.basic_reject(got[0]["delivery_tag"], requeue=False)  # dropped
        ch.close()
        ch = env.channel()  # closing the channel requeued the rest in their original order
        env.record("after channel close", env.get_all(ch, q))
    differ(scenario)


def test_nack_multiple_redelivers_to_same_consumer(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        _fill(ch, q, 4, 1)
        c = env.consumer(ch, q)
        first = c.take(4)
        env.record("first", first)
        ch.basic_nack(first[2]["delivery_tag"], multiple=True, requeue=True)
        env.record("redelivered", c.take(3))
        ch.basic_nack(0, multiple=True, requeue=False)
        env.record("left", env.count(ch, q))
    differ(scenario)


def test_recover(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        _fill(ch, q, 4, 1)
        c = env.consumer(ch, q)
        env.record("delivered", c.take(4))
        env.attempt("basic.recover", ch.basic_recover, requeue=True)
        env.record("redelivered", c.take(4))
        c.cancel()
        ch.basic_recover(requeue=True)
        env.record("get after recover", env.get_all(ch, q, auto_ack=False)[:2])
        ch.basic_recover(requeue=True)
        env.record("count", env.count(ch, q))
        env.attempt("basic.recover requeue=False", ch.basic_recover, requeue=False)
    differ(scenario)


def test_round_robin_and_cancel(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        a = env.consumer(ch, q, auto_ack=True)
        b = env.consumer(ch, q, auto_ack=True)
        _fill(ch, q, 6)
        a.wait(3)
        b.wait(3)
        env.record("A", [m["body"] for m in a.take()])
        env.record("B", [m["body"] for m in b.take()])
        env.attempt("cancel A", a.cancel)
        _fill(ch, q, 2, 10)
        env.record("B after cancel", [m["body"] for m in b.take(2)])
        env.attempt("cancel unknown tag", ch.basic_cancel, "no-such-tag")
    differ(scenario)


def test_get_counts(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        env.attempt("get empty", ch.basic_get, q)
        _fill(ch, q, 3)
        env.attempt("get 1", ch.basic_get, q)
        env.attempt("declare-ok counts (1 unacked)", ch.queue_declare, q, passive=True)
        env.attempt("get 2 no-ack", ch.basic_get, q, auto_ack=True)
        env.attempt("purge", ch.queue_purge, q)
        env.attempt("delete", ch.queue_delete, q)
        env.attempt("delete missing", ch.queue_delete, q)
    differ(scenario)
