"""Publisher confirms (pika and aio-pika) and transactions."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(60)


def test_confirms_pika(differ):
    def scenario(env):
        import pika
        ch = env.channel()
        env.record("confirm.select", ch.confirm_delivery() is None)
        x, q = env.exchange("x"), env.queue("q")
        ch.exchange_declare(x, "direct")
        ch.queue_declare(q)
        ch.queue_bind(q, x, "yes")
        env.attempt("routable", ch.basic_publish, x, "yes", b"1")
        env.attempt("unroutable, not mandatory", ch.basic_publish, x, "no", b"2")
        env.attempt("unroutable, mandatory", ch.basic_publish, x, "no", b"3",
                    pika.BasicProperties(headers={"a": 1}), mandatory=True)
        env.attempt("routable, mandatory", ch.basic_publish, x, "yes", b"4", mandatory=True)
        env.attempt("default exchange, missing queue, mandatory", ch.basic_publish, "", "nope", b"5",
                    mandatory=True)
        env.record("queue", env.bodies(ch, q))
        env.attempt("missing exchange", ch.basic_publish, env.name("missing"), "k", b"6")
        ch = env.channel()
        ch.confirm_delivery()
        env.attempt("confirm.select twice", ch.confirm_delivery)
        env.attempt("tx.select on a confirm channel", ch.tx_select)
    differ(scenario)


def test_confirms_aio_pika(differ):
    async def scenario(env):
        import aio_pika
        conn = await env.aio_connect()
        ch = await conn.channel(publisher_confirms=True)
        x = await ch.declare_exchange(env.exchange("x"), aio_pika.ExchangeType.DIRECT)
        q = await ch.declare_queue(env.queue("q"))
        await q.bind(x, "yes")
        results = []
        for i, (rk, mandatory) in enumerate([("yes", False), ("no", False), ("no", True), ("yes", True)]):
            r = await x.publish(aio_pika.Message(str(i).encode()), rk, mandatory=mandatory)
            results.append(type(r).__name__)
        env.record("confirmations", results)
        got = []
        while (m := await q.get(no_ack=True, fail=False)) is not None:
            got.append([m.body, m.redelivered, m.routing_key])
        env.record("queue", got)
    differ(scenario)


def test_tx(differ):
    def scenario(env):
        ch = env.channel()
        q = env.queue("q")
        ch.queue_declare(q)
        env.attempt("tx.commit before select", ch.tx_commit)
        ch = env.channel()
        env.attempt("tx.rollback before select", ch.tx_rollback)
        ch = env.channel()
        env.attempt("tx.select", ch.tx_select)
        env.attempt("tx.select again", ch.tx_select)
        ch.basic_publish("", q, b"rolled back")
        env.record("count before rollback", env.count(ch, q))
        env.attempt("tx.rollback", ch.tx_rollback)
        env.record("count after rollback", env.count(ch, q))
        for i in range(3):
            ch.basic_publish("", q, str(i).encode())
        env.record("count before commit", env.count(ch, q))
        env.attempt("tx.commit", ch.tx_commit)
        env.record("count after commit", env.count(ch, q))
        # acks in a transaction only happen at commit
        msgs = env.get_all(ch, q, auto_ack=False)
        env.record("got", msgs)
        ch.basic_ack(msgs[0]["delivery_tag"])
        ch.basic_reject(msgs[1]["delivery_tag"], requeue=True)
        ch.tx_rollback()  # discards the ack and the reject
        env.record("after rollback", env.count(ch, q))
        ch.basic_ack(msgs[0]["delivery_tag"])
        ch.basic_reject(msgs[1]["delivery_tag"], requeue=True)
        ch.tx_commit()
        env.record("after commit: requeued", env.get_all(ch, q, auto_ack=False))
        env.attempt("ack an unknown tag in tx", lambda: (ch.basic_ack(99), env.sync(ch)))
        ch = env.channel()
        ch.tx_select()
        env.attempt("confirm.select on a tx channel", ch.confirm_delivery)
        ch = env.channel()
        env.record("left, redelivered", env.get_all(ch, q))
    differ(scenario)


def test_tx_mandatory_return_at_commit(differ):
    def scenario(env):
        ch = env.channel()
        returned = []
        ch.add_on_return_callback(lambda c, m, p, b: returned.append([m.reply_code, m.reply_text, b]))
        ch.tx_select()
        ch.basic_publish("", env.name("nowhere"), b"r", mandatory=True)
        env.sync(ch)
        env.pump(env.conn, 0.3, lambda: returned)
        env.record("returned before commit", list(returned))
        ch.tx_commit()
        env.pump(env.conn, 1.0, lambda: returned)
        env.record("returned after commit", returned)
    differ(scenario)
