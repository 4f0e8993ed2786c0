"""Routing through every exchange type, exchange-to-exchange bindings, the default and amq.* exchanges,
mandatory returns and auto-delete chains."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


def _route_table(env, ch, exchange, queues, keys, **publish_kw):
    """Publish one message per routing key; record which queue got which bodies."""
    for k in keys:
        ch.basic_publish(exchange, k, k.encode() or b"<empty>", **publish_kw)
    env.sync(ch)
    env.record("routed", {q.rsplit("-", 1)[-1]: env.bodies(ch, q) for q in queues})


def test_direct(differ):
    def scenario(env):
        ch = env.channel()
        x = env.exchange("x")
        ch.exchange_declare(x, "direct")
        qa, qb, qc = env.queue("a"), env.queue("b"), env.queue("c")
        for q in (qa, qb, qc):
            ch.queue_declare(q)
        ch.queue_bind(qa, x, "k1")
        ch.queue_bind(qa, x, "k2")
        ch.queue_bind(qb, x, "k1")
        ch.queue_bind(qb, x, "k1")  # the same binding twice is one binding
        ch.queue_bind(qc, x, "")
        _route_table(env, ch, x, (qa, qb, qc), ["k1", "k2", "", "K1", "k1 ", "nothing"])
        ch.queue_unbind(qa, x, "k1")
        ch.queue_unbind(qa, x, "never-bound")
        _route_table(env, ch, x, (qa, qb, qc), ["k1", "k2"])
    differ(scenario)


def test_fanout_ignores_routing_key(differ):
    def scenario(env):
        ch = env.channel()
        x = env.exchange("x")
        ch.exchange_declare(x, "fanout")
        qa, qb = env.queue("a"), env.queue("b")
        for q in (qa, qb):
            ch.queue_declare(q)
            ch.queue_bind(q, x, "ignored")
        ch.queue_bind(qa, x, "other")
        _route_table(env, ch, x, (qa, qb), ["", "ignored", "anything.at.all"])
    differ(scenario)


TOPIC_BINDINGS = {
    "star": "a.*.c", "hash": "a.#", "hashmid": "a.#.c", "all": "#", "one": "*", "exact": "a.b.c",
    "lead": "#.c", "empty": "", "twostar": "*.*", "hashhash": "#.#", "starhash": "*.#", "dots": "a..c",
}
TOPIC_KEYS = ["a.b.c", "a", "a.c", "a.b.b.c", "c", "", "x.y", "a..c", "a.b", ".", "a.", ".c", "b.c.a",
              "a.b.c.d", "#", "*"]


def test_topic(differ):
    def scenario(env):
        ch = env.channel()
        x = env.exchange("x")
        ch.exchange_declare(x, "topic")
        queues = []
        for suffix, pattern in TOPIC_BINDINGS.items():
            q = env.queue(suffix)
            ch.queue_declare(q)
            ch.queue_bind(q, x, pattern)
            queues.append(q)
        _route_table(env, ch, x, queues, TOPIC_KEYS)
        # unbinding one of two patterns that match the same key
        ch.queue_bind(queues[0], x, "z.*")
        ch.queue_unbind(queues[0], x, "a.*.c")
        _route_table(env, ch, x, queues[:1], ["a.b.c", "z.q"])
    differ(scenario)


HEADERS_BINDINGS = {
    "all": {"x-match": "all", "h1": "v1", "h2": 2},
    "any": {"x-match": "any", "h1": "v1", "h2": 2},
    "default": {"h1": "v1"},
    "xprefix": {"x-match": "all", "h1": "v1", "x-ignored": "zzz"},
    "noargs": {},
    "anynone": {"x-match": "any"},
    "void": {"x-match": "all", "h3": None},
    "int_str": {"x-match": "all", "h2": "2"},
    "bool": {"x-match": "any", "flag": True},
}
HEADERS_MESSAGES = [
    {"h1": "v1", "h2": 2}, {"h1": "v1"}, {"h2": 2}, {"h1": "v2", "h2": 3}, {},
    {"h1": "v1", "h2": 2, "x-ignored": "nope"}, {"h3": "anything"}, {"h2": "2"}, {"flag": True},
    {"flag": False}, None,
]


def test_headers(differ):
    def scenario(env):
        import pika
        ch = env.channel()
        x = env.exchange("x")
        ch.exchange_declare(x, "headers")
        queues = []
        for suffix, args in HEADERS_BINDINGS.items():
            q = env.queue(suffix)
            ch.queue_declare(q)
            ch.queue_bind(q, x, "ignored-key", arguments=args)
            queues.append(q)
        for i, headers in enumerate(HEADERS_MESSAGES):
            ch.basic_publish(x, "rk", str(i).encode(), pika.BasicProperties(headers=headers))
        env.sync(ch)
        env.record("routed", {q.rsplit("-", 1)[-1]: env.bodies(ch, q) for q in queues})
        # the amq.match and amq.headers exchanges are headers exchanges too
        q = env.queue("amqmatch")
        ch.queue_declare(q)
        ch.queue_bind(q, "amq.match", "", arguments={"x-match": "any", "k": "v"})
        ch.queue_bind(q, "amq.headers", "", arguments={"x-match": "any", "k": "w"})
        ch.basic_publish("amq.match", "", b"m", pika.BasicProperties(headers={"k": "v"}))
        ch.basic_publish("amq.headers", "", b"h", pika.BasicProperties(headers={"k": "w"}))
        ch.basic_publish("amq.headers", "", b"no", pika.BasicProperties(headers={"k": "v"}))
        env.sync(ch)
        env.record("amq.match/amq.headers", env.bodies(ch, q))
    differ(scenario)


def test_default_and_amq_exchanges(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        ch.basic_publish("", q, b"via default")
        ch.basic_publish("amq.direct", q, b"not bound")
        ch.queue_bind(q, "amq.direct", "rk")
        ch.queue_bind(q, "amq.fanout", "")
        ch.queue_bind(q, "amq.topic", "t.*")
        ch.basic_publish("amq.direct", "rk", b"direct")
        ch.basic_publish("amq.fanout", "whatever", b"fanout")
        ch.basic_publish("amq.topic", "t.x", b"topic")
        ch.basic_publish("amq.topic", "t.x.y", b"topic no match")
        env.sync(ch)
        env.record("got", env.get_all(ch, q))
        for x in ("amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"):
            env.attempt(f"passive {x}", ch.exchange_declare, x, passive=True)
    differ(scenario)


def test_exchange_to_exchange(differ):
    def scenario(env):
        ch = env.channel()
        top, mid, leaf, other = (env.exchange(n) for n in ("top", "mid", "leaf", "other"))
        ch.exchange_declare(top, "topic")
        ch.exchange_declare(mid, "direct")
        ch.exchange_declare(leaf, "fanout")
        ch.exchange_declare(other, "fanout")
        q1, q2, q3 = env.queue("q1"), env.queue("q2"), env.queue("q3")
        for q in (q1, q2, q3):
            ch.queue_declare(q)
        ch.exchange_bind(mid, top, "a.*")          # top -a.*-> mid
        ch.exchange_bind(leaf, mid, "a.b")         # mid -a.b-> leaf
        ch.exchange_bind(other, top, "#")          # top -#-> other
        ch.exchange_bind(top, leaf, "")            # a cycle: leaf -> top
        ch.queue_bind(q1, mid, "a.b")
        ch.queue_bind(q1, mid, "a.c")
        ch.queue_bind(q2, leaf, "")
        ch.queue_bind(q3, other, "")
        ch.queue_bind(q2, other, "")               # q2 reachable twice: gets one copy
        _route_table(env, ch, top, (q1, q2, q3), ["a.b", "a.c", "b"])
        ch.exchange_unbind(leaf, mid, "a.b")
        ch.exchange_unbind(leaf, mid, "not-bound")
        _route_table(env, ch, top, (q1, q2, q3), ["a.b"])
        # publishing straight to a mid exchange does not go "up"
        _route_table(env, ch, leaf, (q1, q2, q3), ["z"])
    differ(scenario)


def test_mandatory_returns(differ):
    def scenario(env):
        import pika
        conn = env.conn
        ch = env.channel()
        returned = []
        ch.add_on_return_callback(lambda c, m, p, b: returned.append([m.reply_code, m.reply_text, m.exchange,
                                                                      m.routing_key, b, p.headers, p.message_id]))
        x = env.exchange("x")
        ch.exchange_declare(x, "direct")
        q = env.queue("q")
        ch.queue_declare(q)
        ch.queue_bind(q, x, "yes")
        props = pika.BasicProperties(headers={"h": 1}, message_id="m1")
        ch.basic_publish(x, "no", b"unroutable mandatory", props, mandatory=True)
        ch.basic_publish(x, "no", b"unroutable", props)
        ch.basic_publish(x, "yes", b"routable mandatory", props, mandatory=True)
        ch.basic_publish("", "no-such-queue", b"default exchange", props, mandatory=True)
        env.sync(ch)
        env.pump(conn, 1.0, lambda: len(returned) >= 2)
        env.record("returned", returned)
        env.record("queue", env.bodies(ch, q))
    differ(scenario)


def test_internal_exchange(differ):
    def scenario(env):
        ch = env.channel()
        front, internal = env.exchange("front"), env.exchange("internal")
        ch.exchange_declare(front, "fanout")
        ch.exchange_declare(internal, "fanout", internal=True)
        q = env.queue("q")
        ch.queue_declare(q)
        ch.queue_bind(q, internal)
        ch.exchange_bind(internal, front)
        ch.basic_publish(front, "", b"through front")
        env.sync(ch)
        env.record("via front", env.bodies(ch, q))
        env.publish_sync(ch, "publish to internal", internal, "", b"x")
    differ(scenario)


def test_auto_delete_chain(differ):
    def scenario(env):
        conn2 = env.connect()
        ch2 = conn2.channel()
        ch = env.channel()
        x, q = env.exchange("x"), env.queue("q")
        ch2.exchange_declare(x, "fanout", auto_delete=True)
        ch2.queue_declare(q, auto_delete=True)
        ch2.queue_bind(q, x)
        c = env.consumer(ch2, q, auto_ack=True)
        ch.basic_publish(x, "", b"1")
        env.record("consumed", c.wait(1))
        conn2.close()  # the only consumer goes: the queue goes, then the exchange (its last binding)
        env.sleep(0.3)
        env.attempt("passive queue", ch.queue_declare, q, passive=True)
        ch = env.channel()
        env.publish_sync(ch, "publish to the exchange", x, "", b"2")
        # an auto-delete queue that never had a consumer survives its connection
        conn3 = env.connect()
        q2 = env.queue("never-consumed")
        conn3.channel().queue_declare(q2, auto_delete=True)
        conn3.close()
        ch = env.channel()
        env.attempt("never consumed", ch.queue_declare, q2, passive=True)
        # cancelling the last consumer deletes an auto-delete queue at once
        q3 = env.queue("cancelled")
        ch.queue_declare(q3, auto_delete=True)
        c = env.consumer(ch, q3)
        c.cancel()
        env.attempt("after cancel", ch.queue_declare, q3, passive=True)
        # an auto-delete exchange without bindings stays; losing its last binding deletes it
        ch = env.channel()
        x2, x3 = env.exchange("x2"), env.exchange("x3")
        ch.exchange_declare(x2, "direct", auto_delete=True)
        env.attempt("unbound auto-delete exchange", ch.exchange_declare, x2, passive=True)
        ch.exchange_declare(x3, "fanout")
        ch.exchange_bind(x3, x2, "k")
        ch.exchange_unbind(x3, x2, "k")
        env.attempt("after e2e unbind", ch.exchange_declare, x2, passive=True)
    differ(scenario)
