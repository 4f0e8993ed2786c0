"""RabbitMQ extensions: alternate exchanges, sender-selected distribution (CC/BCC), validated user_id,
direct reply-to, consumer priorities, single active consumer, quorum queues (delivery limit)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


def _props(**kw):
    import pika
    return pika.BasicProperties(**kw)


def test_alternate_exchange(differ):
    def scenario(env):
        ch = env.channel()
        main, ae, ae2 = env.exchange("main"), env.exchange("ae"), env.exchange("ae2")
        routed, caught, caught2 = env.queue("routed"), env.queue("caught"), env.queue("caught2")
        ch.exchange_declare(ae2, "fanout")
        ch.exchange_declare(ae, "direct", arguments={"alternate-exchange": ae2})
        ch.exchange_declare(main, "direct", arguments={"alternate-exchange": ae})
        for q in (routed, caught, caught2):
            ch.queue_declare(q)
        ch.queue_bind(routed, main, "yes")
        ch.queue_bind(caught, ae, "to-ae")
        ch.queue_bind(caught2, ae2)
        returned = []
        ch.add_on_return_callback(lambda c, m, p, b: returned.append([m.reply_text, m.exchange, m.routing_key, b]))
        ch.basic_publish(main, "yes", b"routed")
        ch.basic_publish(main, "to-ae", b"via ae", mandatory=True)
        ch.basic_publish(main, "other", b"via ae2 (ae's ae)", mandatory=True)
        env.sync(ch)
        env.record("queues", {q.rsplit("-", 1)[-1]: env.get_all(ch, q) for q in (routed, caught, caught2)})
        # a missing alternate exchange: unroutable, returned if mandatory
        lost = env.exchange("lost")
        ch.exchange_declare(lost, "direct", arguments={"alternate-exchange": env.name("missing-ae")})
        ch.basic_publish(lost, "k", b"returned", mandatory=True)
        ch.basic_publish(lost, "k", b"dropped")
        # a cycle of alternate exchanges
        c1, c2 = env.exchange("c1"), env.exchange("c2")
        ch.exchange_declare(c1, "direct", arguments={"alternate-exchange": c2})
        ch.exchange_declare(c2, "direct", arguments={"alternate-exchange": c1})
        ch.basic_publish(c1, "k", b"cycle", mandatory=True)
        env.sync(ch)
        env.pump(env.conn, 1.0, lambda: len(returned) >= 2)
        env.record("returned", returned)
        # confirms: a message that reaches a queue through the alternate exchange is simply acked
        cch = env.channel()
        cch.confirm_delivery()
        env.attempt("confirm via ae", cch.basic_publish, main, "to-ae", b"c", mandatory=True)
        env.attempt("confirm, missing ae", cch.basic_publish, lost, "k", b"d", mandatory=True)
        env.attempt("alternate-exchange not a string", cch.exchange_declare, env.exchange("bad"), "fanout",
                    arguments={"alternate-exchange": 5})
    differ(scenario)


def test_alternate_exchange_with_e2e(differ):
    def scenario(env):
        ch = env.channel()
        top, inner, ae = env.exchange("top"), env.exchange("inner"), env.exchange("ae")
        q, aq = env.queue("q"), env.queue("aq")
        ch.exchange_declare(ae, "fanout")
        ch.exchange_declare(inner, "direct", arguments={"alternate-exchange": ae})
        ch.exchange_declare(top, "fanout")
        ch.exchange_bind(inner, top)
        ch.queue_declare(q)
        ch.queue_declare(aq)
        ch.queue_bind(q, inner, "k")
        ch.queue_bind(aq, ae)
        ch.basic_publish(top, "k", b"bound")
        ch.basic_publish(top, "nope", b"inner's ae is not used via e2e")
        ch.basic_publish(inner, "nope", b"inner's ae used")
        env.sync(ch)
        env.record("q", env.bodies(ch, q))
        env.record("aq", env.bodies(ch, aq))
    differ(scenario)


def test_cc_bcc(differ):
    def scenario(env):
        ch = env.channel()
        x = env.exchange("x")
        ch.exchange_declare(x, "direct")
        qa, qb, qc, qd = (env.queue(n) for n in "abcd")
        for q, k in ((qa, "a"), (qb, "b"), (qc, "c"), (qd, "d")):
            ch.queue_declare(q)
            ch.queue_bind(q, x, k)
        ch.basic_publish(x, "a", b"cc b, bcc c", _props(headers={"CC": ["b"], "BCC": ["c"], "h": 1}))
        ch.basic_publish(x, "a", b"cc a twice", _props(headers={"CC": ["a", "a"]}))
        ch.basic_publish(x, "none", b"only cc", _props(headers={"CC": ["d", 5, "nope"]}))
        ch.basic_publish("", qa, b"default exchange", _props(headers={"CC": [qb]}))
        env.sync(ch)
        env.record("queues", {q.rsplit("-", 1)[-1]: env.get_all(ch, q) for q in (qa, qb, qc, qd)})
        t = env.exchange("t")
        ch.exchange_declare(t, "topic")
        ch.queue_bind(qd, t, "x.*")
        ch.basic_publish(t, "y", b"topic cc", _props(headers={"CC": ["x.1", "x.2"]}))
        env.sync(ch)
        env.record("topic", env.get_all(ch, qd))
        returned = []
        ch.add_on_return_callback(lambda c, m, p, b: returned.append([m.routing_key, p.headers, b]))
        ch.basic_publish(x, "none", b"returned", _props(headers={"CC": ["none2"], "BCC": ["none3"]}),
                         mandatory=True)
        env.sync(ch)
        env.pump(env.conn, 1.0, lambda: returned)
        env.record("returned", returned)
        env.publish_sync(ch, "CC not an array", x, "a", b"", _props(headers={"CC": "b"}))
        ch = env.channel()
        env.publish_sync(ch, "BCC not an array", x, "a", b"", _props(headers={"BCC": 5}))
    differ(scenario)


def test_user_id(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        env.publish_sync(ch, "user_id guest", "", q, b"ok", _props(user_id="guest"))
        env.record("delivered", env.get_all(ch, q))
        env.publish_sync(ch, "user_id other", "", q, b"no", _props(user_id="other"))
        ch = env.channel()
        env.publish_sync(ch, "user_id ''", "", q, b"no", _props(user_id=""))
    differ(scenario)


def test_direct_reply_to(differ):
    def scenario(env):
        client = env.channel()
        server_conn = env.connect()
        server = server_conn.channel()
        rpc = env.queue("rpc")
        server.queue_declare(rpc)
        env.attempt("passive declare before consuming", client.queue_declare, "amq.rabbitmq.reply-to",
                    passive=True)
        client = env.channel()
        env.publish_sync(client, "publish with reply_to before consuming", "", rpc, b"q",
                         _props(reply_to="amq.rabbitmq.reply-to"))
        client = env.channel()
        env.attempt("consume with acks", client.basic_consume, "amq.rabbitmq.reply-to", lambda *a: None)
        client = env.channel()
        replies = env.consumer(client, "amq.rabbitmq.reply-to", auto_ack=True)
        env.record("consumer tag", replies.tag)
        env.attempt("passive declare", client.queue_declare, "amq.rabbitmq.reply-to", passive=True)
        client.basic_publish("", rpc, b"question", _props(reply_to="amq.rabbitmq.reply-to", correlation_id="c1"))
        env.sync(client)
        req = env.get_all(server, rpc)
        env.record("request", req)
        reply_to = req[0]["props"]["reply_to"]
        server.basic_publish("", reply_to, b"answer", _props(correlation_id="c1", headers={"h": 1}))
        env.record("reply", replies.wait(1))
        env.attempt("passive declare of the full name", server.queue_declare, reply_to, passive=True)
        server = server_conn.channel()
        env.publish_sync(server, "reply to a made-up name", "", "amq.rabbitmq.reply-to.nonsense", b"x")
        server = server_conn.channel()
        env.attempt("second reply consumer", client.basic_consume, "amq.rabbitmq.reply-to", lambda *a: None,
                    auto_ack=True)
    differ(scenario)


def test_consumer_priorities(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        ch.basic_qos(prefetch_count=2)
        low = env.consumer(ch, q, arguments={"x-priority": 1})
        high = env.consumer(ch, q, arguments={"x-priority": 10})
        mid = env.consumer(ch, q, arguments={"x-priority": 5})
        for i in range(8):
            ch.basic_publish("", q, str(i).encode())
        env.sync(ch)
        low.wait(None, 0.3)
        env.record("high, mid, low", [[m["body"] for m in c.messages] for c in (high, mid, low)])
        for m in high.take():
            ch.basic_ack(m["delivery_tag"])
        high.wait(2)
        env.record("high after its acks", [m["body"] for m in high.messages])
        env.attempt("x-priority not an integer", env.channel().basic_consume, q, lambda *a: None,
                    arguments={"x-priority": "abc"})
        env.attempt("negative x-priority", env.channel().basic_consume, q, lambda *a: None,
                    arguments={"x-priority": -5})
    differ(scenario)


def test_single_active_consumer(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q, arguments={"x-single-active-consumer": True})
        ch1, ch2 = env.channel(), env.channel()
        first = env.consumer(ch1, q)
        second = env.consumer(ch2, q)
        env.attempt("declare-ok counts both", ch.queue_declare, q, passive=True)
        for i in range(4):
            ch.basic_publish("", q, str(i).encode())
        env.sync(ch)
        first.wait(4)
        second.wait(None, 0.2)
        env.record("first, second", [[m["body"] for m in c.messages] for c in (first, second)])
        ch1.basic_ack(first.messages[0]["delivery_tag"])
        ch1.close()  # the rest is requeued; the second consumer takes over
        env.record("second after the first's channel closed", [[m["body"], m["redelivered"]]
                                                               for m in second.wait(3)])
        env.attempt("exclusive consume", env.channel().basic_consume, q, lambda *a: None, exclusive=True)
        env.attempt("redeclare without the argument", env.channel().queue_declare, q)
    differ(scenario)


def test_quorum_queue(differ):
    def scenario(env):
        ch = env.channel()
        q, dlq = env.queue("qq"), env.queue("dlq")
        ch.queue_declare(dlq)
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 2,
                                                     "x-dead-letter-exchange": "",
                                                     "x-dead-letter-routing-key": dlq})
        ch.basic_publish("", q, b"poison", _props(headers={"h": 1}))
        ch.basic_publish("", q, b"other")
        env.sync(ch)
        deliveries = []
        for _ in range(6):
            got = env.get_all(ch, q, auto_ack=False, limit=1)
            if not got:
                break
            m = got[0]
            deliveries.append([m["body"], m["redelivered"], m.get("props", {}).get("headers")])
            if m["body"] == b"poison":
                ch.basic_nack(m["delivery_tag"], requeue=True)
            else:
                ch.basic_ack(m["delivery_tag"])
            env.sync(ch)
        env.record("deliveries", deliveries)
        env.sleep(0.3)
        env.record("dead-lettered", env.get_all(ch, dlq))
        for label, kw in [("non-durable", {}), ("exclusive", {"durable": True, "exclusive": True}),
                          ("auto-delete", {"durable": True, "auto_delete": True}),
                          ("x-max-priority", {"durable": True, "arguments": {"x-max-priority": 5}})]:
            ch = env.channel()
            args = {"x-queue-type": "quorum", **kw.pop("arguments", {})}
            env.attempt(label, ch.queue_declare, env.queue("bad-" + label), arguments=args, **kw)
    differ(scenario)
