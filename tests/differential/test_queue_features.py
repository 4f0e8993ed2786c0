"""Queue features: priority queues, message TTL (queue and per message), queue expiry, length limits
and overflow, dead lettering with its x-death headers."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


def _props(**kw):
    import pika
    return pika.BasicProperties(**kw)


def test_priority_queue(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q, arguments={"x-max-priority": 5})
        for body, prio in [("none", None), ("p1", 1), ("p5", 5), ("p9", 9), ("p0", 0), ("p3", 3), ("p5b", 5),
                           ("none2", None), ("p1b", 1)]:
            ch.basic_publish("", q, body.encode(), _props(priority=prio))
        env.sync(ch)
        env.record("declare-ok", env.count(ch, q))
        got = env.get_all(ch, q, auto_ack=False)
        env.record("order", [[m["body"], m.get("props", {}).get("priority")] for m in got])
        # requeue a mix: each goes back to its place within its priority
        for m in got[1::2]:
            ch.basic_reject(m["delivery_tag"], requeue=True)
        env.record("after requeue", [[m["body"], m["redelivered"]] for m in env.get_all(ch, q)])
        c = env.consumer(ch, q, auto_ack=True)
        ch.basic_publish("", q, b"to consumer", _props(priority=2))
        env.record("consumer", [m["body"] for m in c.wait(1)])
    differ(scenario)


def test_priority_queue_zero_and_redeclare(differ):
    def scenario(env):
        ch = env.channel()
        q0 = env.queue("zero")
        ch.queue_declare(q0, arguments={"x-max-priority": 0})
        for body, prio in [("a", 0), ("b", 5), ("c", None)]:
            ch.basic_publish("", q0, body.encode(), _props(priority=prio))
        env.sync(ch)
        env.record("x-max-priority 0 is FIFO", env.bodies(ch, q0))
        q = env.queue("q")
        ch.queue_declare(q, arguments={"x-max-priority": 10})
        env.attempt("redeclare with another max", ch.queue_declare, q, arguments={"x-max-priority": 9})
        ch = env.channel()
        env.attempt("redeclare without", ch.queue_declare, q)
    differ(scenario)


def test_message_ttl_queue(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q, arguments={"x-message-ttl": 200})
        for i in range(3):
            ch.basic_publish("", q, str(i).encode())
        env.sync(ch)
        env.record("at once", env.count(ch, q))
        env.sleep(0.6)
        env.record("after the ttl", env.count(ch, q))
        ch.basic_publish("", q, b"got in time")
        env.record("get in time", env.bodies(ch, q))
        # unacked messages do not expire; requeued ones keep their deadline
        ch.basic_publish("", q, b"held")
        m = env.get_all(ch, q, auto_ack=False)
        env.sleep(0.5)
        ch.basic_reject(m[0]["delivery_tag"], requeue=True)
        env.sync(ch)
        env.record("requeued after its ttl", env.count(ch, q))
    differ(scenario)


def test_message_ttl_zero(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q, arguments={"x-message-ttl": 0})
        ch.basic_publish("", q, b"nobody waits")
        env.sync(ch)
        env.record("without a consumer", env.count(ch, q))
        c = env.consumer(ch, q, auto_ack=True)
        ch.basic_publish("", q, b"a consumer waits")
        env.record("with a consumer", [m["body"] for m in c.wait(1)])
        c.cancel()
        ch.basic_qos(prefetch_count=1)
        c = env.consumer(ch, q)
        ch.basic_publish("", q, b"1")
        ch.basic_publish("", q, b"2 (no credit: expires)")
        got = c.wait(1)
        env.sleep(0.2)
        ch.basic_ack(got[0]["delivery_tag"])
        env.sleep(0.3)
        env.record("prefetch 1", [m["body"] for m in c.messages])
    differ(scenario)


def test_per_message_expiration(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        ch.basic_publish("", q, b"short", _props(expiration="100"))
        ch.basic_publish("", q, b"forever")
        ch.basic_publish("", q, b"short behind forever", _props(expiration="100"))
        ch.basic_publish("", q, b"long", _props(expiration="60000"))
        env.sleep(0.5)
        env.record("only the head expires", [[m["body"], m.get("props")] for m in env.get_all(ch, q)])
        # the lower of the queue ttl and the message's
        q2 = env.queue("q2")
        ch.queue_declare(q2, arguments={"x-message-ttl": 100})
        ch.basic_publish("", q2, b"queue ttl wins", _props(expiration="60000"))
        ch.basic_publish("", q2, b"zero", _props(expiration="0"))
        env.sleep(0.5)
        env.record("min ttl", env.count(ch, q2))
        for exp in ("abc", "-5", "1.5", "", " 10", "+10"):
            env.publish_sync(ch, f"expiration {exp!r}", "", q, b"x", _props(expiration=exp))
            if ch.is_closed:
                ch = env.channel()
        env.record("left", [[m["body"], m.get("props")] for m in env.get_all(ch, q)])
    differ(scenario)


def test_queue_expires(differ):
    def scenario(env):
        ch = env.channel()
        q, kept, used = env.queue("q"), env.queue("kept"), env.queue("used")
        ch.queue_declare(q, arguments={"x-expires": 300})
        ch.queue_declare(kept, arguments={"x-expires": 400})
        ch.queue_declare(used, arguments={"x-expires": 300})
        cch = env.channel()
        c = env.consumer(cch, used)
        for _ in range(3):  # redeclaring restarts the countdown
            env.sleep(0.2)
            ch.queue_declare(kept, arguments={"x-expires": 400})
        env.sleep(0.2)
        env.attempt("unused queue", ch.queue_declare, q, passive=True)
        ch = env.channel()
        env.attempt("redeclared queue", ch.queue_declare, kept, passive=True)
        env.attempt("queue with a consumer", ch.queue_declare, used, passive=True)
        env.sleep(0.2)
        env.attempt("queue with a consumer, later", ch.queue_declare, used, passive=True)
        c.cancel()
        env.sleep(0.6)
        env.attempt("after its consumer went", ch.queue_declare, used, passive=True)
        ch = env.channel()
        for v in (0, -1, "abc"):
            env.attempt(f"x-expires {v!r}", ch.queue_declare, env.queue("bad"), arguments={"x-expires": v})
            ch = env.channel()
    differ(scenario)


def test_max_length_drop_head(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q, arguments={"x-max-length": 3})
        for i in range(6):
            ch.basic_publish("", q, str(i).encode())
        env.sync(ch)
        env.record("count", env.count(ch, q))
        got = env.get_all(ch, q, auto_ack=False)
        env.record("kept", [m["body"] for m in got])
        for i in range(6, 9):  # unacked messages do not count
            ch.basic_publish("", q, str(i).encode())
        env.sync(ch)
        env.record("with 3 unacked", env.count(ch, q))
        ch.basic_nack(0, multiple=True, requeue=True)  # requeue over the limit
        env.sync(ch)
        env.record("after requeue", [[m["body"], m["redelivered"]] for m in env.get_all(ch, q)])
        qb = env.queue("bytes")
        ch.queue_declare(qb, arguments={"x-max-length-bytes": 10})
        for body in (b"aaaa", b"bbbb", b"cccc", b"", b"dddddddddddd", b"ee"):
            ch.basic_publish("", qb, body)
        env.sync(ch)
        env.record("max-length-bytes", env.bodies(ch, qb))
        q0 = env.queue("zero")
        ch.queue_declare(q0, arguments={"x-max-length": 0})
        c = env.consumer(ch, q0, auto_ack=True)
        ch.basic_publish("", q0, b"to a waiting consumer")
        env.record("max-length 0 with a consumer", [m["body"] for m in c.wait(1, 0.5)])
    differ(scenario)


@pytest.mark.parametrize("overflow", ["reject-publish", "reject-publish-dlx"])
def test_max_length_reject_publish(differ, overflow):
    def scenario(env):
        ch = env.channel()
        q, dlq, dlx = env.queue("q"), env.queue("dlq"), env.exchange("dlx")
        ch.exchange_declare(dlx, "fanout")
        ch.queue_declare(dlq)
        ch.queue_bind(dlq, dlx)
        ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": overflow, "x-dead-letter-exchange": dlx})
        ch.confirm_delivery()
        for i in range(4):
            env.attempt(f"publish {i}", ch.basic_publish, "", q, str(i).encode())
        env.record("queue", env.bodies(ch, q))
        env.record("dead letters", [[m["body"], m.get("props")] for m in env.get_all(ch, dlq)])
        # a mandatory publish refused by the queue is nacked, not returned
        ch.basic_publish("", q, b"a")
        ch.basic_publish("", q, b"b")
        env.attempt("mandatory, full", ch.basic_publish, "", q, b"c", mandatory=True)
        # routed to a full queue and a free one: acked
        x = env.exchange("fan")
        free = env.queue("free")
        ch.exchange_declare(x, "fanout")
        ch.queue_declare(free)
        ch.queue_bind(q, x)
        ch.queue_bind(free, x)
        env.attempt("one of two queues full", ch.basic_publish, x, "", b"d")
        env.record("free", env.bodies(ch, free))
    differ(scenario)


def test_dead_letter_reasons_and_x_death(differ):
    def scenario(env):
        ch = env.channel()
        dlx, dlq = env.exchange("dlx"), env.queue("dlq")
        ch.exchange_declare(dlx, "topic")
        ch.queue_declare(dlq)
        ch.queue_bind(dlq, dlx, "#")
        src = env.queue("src")
        ch.queue_declare(src, arguments={"x-dead-letter-exchange": dlx, "x-message-ttl": 5000})
        props = _props(headers={"h": "v", "CC": [src + ".cc"]}, expiration="100", message_id="m-1",
                       content_type="text/plain", delivery_mode=2, priority=3, correlation_id="c")
        ch.basic_publish("", src, b"expired", props)  # per-message expiration
        env.sleep(0.5)
        ch.basic_publish("", src, b"rejected")
        ch.basic_publish("", src, b"nacked")
        got = env.get_all(ch, src, auto_ack=False)
        ch.basic_reject(got[0]["delivery_tag"], requeue=False)
        ch.basic_nack(got[1]["delivery_tag"], requeue=False)
        env.sync(ch)
        env.sleep(0.2)
        env.record("dead letters", env.get_all(ch, dlq))
        # a dead-letter routing key replaces the routing keys (and drops CC)
        src2 = env.queue("src2")
        ch.queue_declare(src2, arguments={"x-dead-letter-exchange": dlx, "x-dead-letter-routing-key": "dl.key",
                                          "x-max-length": 1})
        ch.basic_publish("", src2, b"pushed out", _props(headers={"CC": ["a.b"]}))
        ch.basic_publish("", src2, b"stays")
        env.sync(ch)
        env.sleep(0.2)
        env.record("maxlen with dlrk", env.get_all(ch, dlq))
        # the default exchange as the dead-letter exchange, a missing one drops the message
        src3, back = env.queue("src3"), env.queue("back")
        ch.queue_declare(back)
        ch.queue_declare(src3, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": back})
        src4 = env.queue("src4")
        ch.queue_declare(src4, arguments={"x-dead-letter-exchange": env.name("missing")})
        for q in (src3, src4):
            ch.basic_publish("", q, b"r")
            m = env.get_all(ch, q, auto_ack=False)
            ch.basic_reject(m[0]["delivery_tag"], requeue=False)
        env.sync(ch)
        env.sleep(0.2)
        env.record("via default exchange", env.get_all(ch, back))
        env.record("missing dlx", env.count(ch, src4))
    differ(scenario)


def test_dead_letter_cycles(differ):
    def scenario(env):
        ch = env.channel()
        a, b = env.queue("a"), env.queue("b")
        # a expires into b, b dead-letters (rejects) back into a
        ch.queue_declare(a, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": b,
                                       "x-message-ttl": 50})
        ch.queue_declare(b, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": a})
        ch.basic_publish("", a, b"round")
        history = []
        for _ in range(3):
            env.sleep(0.3)
            m = env.get_all(ch, b, auto_ack=False)
            history.append(m)
            if m:
                ch.basic_reject(m[0]["delivery_tag"], requeue=False)
                env.sync(ch)
        env.record("rounds", history)
        # a pure expiry loop drops the message when it comes back
        c1, c2 = env.queue("c1"), env.queue("c2")
        ch.queue_declare(c1, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": c2,
                                        "x-message-ttl": 50})
        ch.queue_declare(c2, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": c1,
                                        "x-message-ttl": 50})
        ch.basic_publish("", c1, b"loop")
        env.sleep(0.6)
        env.record("expiry loop", [env.count(ch, c1), env.count(ch, c2)])
        # dead-lettering into its own queue on reject is allowed (rejected is never a cycle)
        selfq = env.queue("self")
        ch.queue_declare(selfq, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": selfq})
        ch.basic_publish("", selfq, b"again")
        for _ in range(2):
            m = env.get_all(ch, selfq, auto_ack=False)
            ch.basic_reject(m[0]["delivery_tag"], requeue=False)
            env.sync(ch)
        env.record("self", env.get_all(ch, selfq))
    differ(scenario)


def test_queue_argument_validation_all(differ):
    """Validation texts of the remaining queue arguments (PRECONDITION_FAILED)."""
    cases = [
        ("x-expires", 0), ("x-expires", -1), ("x-expires", "abc"),
        ("x-max-length", -1), ("x-max-length", "abc"), ("x-max-length-bytes", -1),
        ("x-dead-letter-routing-key", "k"), ("x-dead-letter-exchange", 5),
        ("x-overflow", "foo"), ("x-overflow", "reject-publish-dlx"), ("x-queue-mode", "foo"),
        ("x-queue-type", "foo"), ("x-queue-type", 5), ("x-single-active-consumer", "abc"),
        ("x-queue-mode", "lazy"),
    ]

    def scenario(env):
        for i, (arg, value) in enumerate(cases):
            ch = env.channel()
            env.attempt(f"{arg}={value!r}", ch.queue_declare, env.queue(f"v{i}"), arguments={arg: value})
        ch = env.channel()
        env.attempt("dlrk with dlx", ch.queue_declare, env.queue("dlrk"),
                    arguments={"x-dead-letter-routing-key": "k", "x-dead-letter-exchange": "x"})
    differ(scenario)
