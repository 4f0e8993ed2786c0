"""Reply codes and texts of channel and connection errors, as a client sees them."""
from __future__ import annotations

import decimal

import pytest

pytestmark = pytest.mark.timeout(60)


def _each(env, cases):
    """Run each ``(label, fn(ch))`` on a fresh channel; record its result or error."""
    for label, fn in cases:
        ch = env.channel()
        env.attempt(label, fn, ch)


def test_exchange_errors(differ):
    def scenario(env):
        x, src, dst = env.exchange("x"), env.exchange("src"), env.exchange("dst")
        missing = env.name("missing")
        setup = env.channel()
        setup.exchange_declare(x, "direct")
        setup.exchange_declare(src, "fanout")
        setup.exchange_declare(dst, "fanout")
        setup.exchange_bind(dst, src)
        _each(env, [
            ("passive missing", lambda ch: ch.exchange_declare(missing, passive=True)),
            ("passive missing amq.foo", lambda ch: ch.exchange_declare("amq.foo", passive=True)),
            ("declare default", lambda ch: ch.exchange_declare("", "direct")),
            ("passive default", lambda ch: ch.exchange_declare("", passive=True)),
            ("other type", lambda ch: ch.exchange_declare(x, "fanout")),
            ("other durable", lambda ch: ch.exchange_declare(x, "direct", durable=True)),
            ("other auto_delete", lambda ch: ch.exchange_declare(x, "direct", auto_delete=True)),
            ("other internal", lambda ch: ch.exchange_declare(x, "direct", internal=True)),
            ("new alternate-exchange arg", lambda ch: ch.exchange_declare(
                x, "direct", arguments={"alternate-exchange": "ae"})),
            ("unknown arg ignored", lambda ch: ch.exchange_declare(x, "direct", arguments={"foo": "bar"})),
            ("passive ignores the rest", lambda ch: ch.exchange_declare(x, "fanout", passive=True, durable=True)),
            ("amq.direct durable", lambda ch: ch.exchange_declare("amq.direct", "direct", durable=True)),
            ("amq.direct non-durable", lambda ch: ch.exchange_declare("amq.direct", "direct")),
            ("reserved amq.foo", lambda ch: ch.exchange_declare("amq.foo", "direct")),
            ("reserved amq.Foo.bar", lambda ch: ch.exchange_declare("amq.Foo.bar", "topic")),
            ("delete amq.direct", lambda ch: ch.exchange_delete("amq.direct")),
            ("delete default", lambda ch: ch.exchange_delete("")),
            ("delete missing", lambda ch: ch.exchange_delete(missing)),
            ("delete missing if_unused", lambda ch: ch.exchange_delete(missing, if_unused=True)),
            ("delete if_unused, a source", lambda ch: ch.exchange_delete(src, if_unused=True)),
            ("delete if_unused, only a destination", lambda ch: ch.exchange_delete(dst, if_unused=True)),
            ("bind missing source", lambda ch: ch.exchange_bind(x, missing)),
            ("bind missing destination", lambda ch: ch.exchange_bind(missing, x)),
            ("bind both missing", lambda ch: ch.exchange_bind(env.name("nope-dst"), env.name("nope-src"))),
            ("bind default as destination", lambda ch: ch.exchange_bind("", x)),
            ("bind default as source", lambda ch: ch.exchange_bind(x, "")),
            ("unbind missing", lambda ch: ch.exchange_unbind(x, missing)),
            ("unbind not bound", lambda ch: ch.exchange_unbind(x, src, "nope")),
        ])
        # a wrong-case name: "Topic", not "Direct", which the shovel and federation plugins make an Erlang
        # atom, so that RabbitMQ then says "invalid" instead of "unknown" (see broker/exchanges.py)
        for label, type_ in (("invalid type foo", "foo"), ("invalid type ''", ""), ("unknown type Topic", "Topic")):
            ch = env.channel(env.connect())
            env.attempt(label, ch.exchange_declare, env.exchange("typed"), type_)
    differ(scenario)


def test_queue_errors(differ):
    def scenario(env):
        q, other_excl = env.queue("q"), env.queue("excl")
        missing = env.name("missing")
        setup = env.channel()
        setup.queue_declare(q)
        owner = env.connect()
        owner_ch = owner.channel()
        owner_ch.queue_declare(other_excl, exclusive=True)
        owner_ch.queue_bind(other_excl, "amq.fanout", "")
        full = env.queue("full")
        setup.queue_declare(full)
        setup.basic_publish("", full, b"x")
        busy = env.queue("busy")
        setup.queue_declare(busy)
        setup.basic_consume(busy, lambda *a: None)
        _each(env, [
            ("passive missing", lambda ch: ch.queue_declare(missing, passive=True)),
            ("other durable", lambda ch: ch.queue_declare(q, durable=True)),
            ("other auto_delete", lambda ch: ch.queue_declare(q, auto_delete=True)),
            ("other exclusive", lambda ch: ch.queue_declare(q, exclusive=True)),
            ("passive ignores the rest", lambda ch: ch.queue_declare(q, passive=True, durable=True,
                                                                      arguments={"x-message-ttl": 5})),
            ("reserved amq.foo", lambda ch: ch.queue_declare("amq.foo")),
            ("reserved amq.gen-", lambda ch: ch.queue_declare("amq.gen-abc")),
            ("passive amq.foo", lambda ch: ch.queue_declare("amq.foo", passive=True)),
            ("passive ''", lambda ch: ch.queue_declare("", passive=True)),
            ("another's exclusive: declare", lambda ch: ch.queue_declare(other_excl)),
            ("another's exclusive: passive", lambda ch: ch.queue_declare(other_excl, passive=True)),
            ("another's exclusive: consume", lambda ch: ch.basic_consume(other_excl, lambda *a: None)),
            ("another's exclusive: bind", lambda ch: ch.queue_bind(other_excl, "amq.direct", "k")),
            ("another's exclusive: unbind, not bound", lambda ch: ch.queue_unbind(other_excl, "amq.direct", "k")),
            ("another's exclusive: unbind", lambda ch: ch.queue_unbind(other_excl, "amq.fanout", "")),
            ("another's exclusive: bind to a missing exchange", lambda ch: ch.queue_bind(other_excl, missing)),
            ("another's exclusive: purge", lambda ch: ch.queue_purge(other_excl)),
            ("another's exclusive: get", lambda ch: ch.basic_get(other_excl)),
            ("another's exclusive: delete", lambda ch: ch.queue_delete(other_excl)),
            ("another's exclusive: publish", lambda ch: (ch.basic_publish("", other_excl, b"ok"),
                                                         env.sync(ch))),
            ("delete if_empty, not empty", lambda ch: ch.queue_delete(full, if_empty=True)),
            ("delete if_unused, consumer", lambda ch: ch.queue_delete(busy, if_unused=True)),
            ("delete if_unused+if_empty", lambda ch: ch.queue_delete(busy, if_unused=True, if_empty=True)),
            ("delete missing", lambda ch: ch.queue_delete(missing, if_empty=True, if_unused=True)),
            ("purge missing", lambda ch: ch.queue_purge(missing)),
            ("consume missing", lambda ch: ch.basic_consume(missing, lambda *a: None)),
            ("get missing", lambda ch: ch.basic_get(missing)),
            ("bind missing exchange", lambda ch: ch.queue_bind(q, missing)),
            ("bind missing queue", lambda ch: ch.queue_bind(missing, "amq.direct")),
            ("bind both missing", lambda ch: ch.queue_bind(missing, env.name("nope-x"))),
            ("bind to default", lambda ch: ch.queue_bind(q, "")),
            ("unbind from default", lambda ch: ch.queue_unbind(q, "")),
            ("bind twice", lambda ch: (ch.queue_bind(q, "amq.direct", "k"), ch.queue_bind(q, "amq.direct", "k"))),
            ("unbind not bound", lambda ch: ch.queue_unbind(q, "amq.direct", "nope")),
            ("unbind missing queue", lambda ch: ch.queue_unbind(missing, "amq.direct", "k")),
            ("unbind missing exchange", lambda ch: ch.queue_unbind(q, missing, "k")),
            ("publish missing exchange", lambda ch: (ch.basic_publish(missing, "k", b""), env.sync(ch))),
            ("declare-ok counts", lambda ch: ch.queue_declare(full, passive=True)),
        ])
        owner.close()
    differ(scenario)


def test_exclusive_consumers(differ):
    def scenario(env):
        q = env.queue("q")
        ch1 = env.channel()
        ch1.queue_declare(q)
        env.attempt("exclusive consume", ch1.basic_consume, q, lambda *a: None, exclusive=True, consumer_tag="c1")
        ch2 = env.channel(env.connect())
        env.attempt("consume while an exclusive consumer exists", ch2.basic_consume, q, lambda *a: None)
        q2 = env.queue("q2")
        ch1.queue_declare(q2)
        ch1.basic_consume(q2, lambda *a: None)
        ch3 = env.channel()
        env.attempt("exclusive consume when another consumer exists", ch3.basic_consume, q2, lambda *a: None,
                    exclusive=True)
        env.attempt("reuse consumer tag on another channel", env.channel().basic_consume, q2, lambda *a: None,
                    consumer_tag="c1")
        def reuse_on_same_channel():  # pika refuses this itself: send the frame directly
            import pika
            ch1._impl._send_method(pika.spec.Basic.Consume(queue=q2, consumer_tag="c1"))
            env.sync(ch1)
        env.attempt("reuse consumer tag on the same channel", reuse_on_same_channel)
    differ(scenario)


def test_ack_errors(differ):
    def scenario(env):
        q = env.queue("q")
        setup = env.channel()
        setup.queue_declare(q)

        def with_two(ch):
            for i in range(2):
                ch.basic_publish("", q, str(i).encode())
            return [ch.basic_get(q)[0].delivery_tag for _ in range(2)]

        def ack(tag, multiple=False, op="ack", before=None):
            def go(ch):
                if before:
                    before(ch)
                if op == "ack":
                    ch.basic_ack(tag, multiple)
                elif op == "nack":
                    ch.basic_nack(tag, multiple)
                else:
                    ch.basic_reject(tag)
                env.sync(ch)
            return go

        def double_ack(ch):
            t = with_two(ch)[0]
            ch.basic_ack(t)
            ch.basic_ack(t)
            env.sync(ch)

        def ack_no_ack_delivery(ch):
            ch.basic_publish("", q, b"n")
            m = ch.basic_get(q, auto_ack=True)[0]
            ch.basic_ack(m.delivery_tag)
            env.sync(ch)

        def ack_other_channels_tag(ch):
            other = env.channel()
            ch.basic_publish("", q, b"o")
            m = other.basic_get(q)[0]
            ch.basic_ack(m.delivery_tag)
            env.sync(ch)

        _each(env, [
            ("ack unknown 5", ack(5)),
            ("nack unknown 5", ack(5, op="nack")),
            ("reject unknown 5", ack(5, op="reject")),
            ("ack 0", ack(0)),
            ("ack 0 multiple, nothing outstanding", ack(0, True)),
            ("ack 7 multiple, nothing outstanding", ack(7, True)),
            ("ack 5 multiple, 1 and 2 outstanding", ack(5, True, before=with_two)),
            ("ack 2 multiple, 1 and 2 outstanding", ack(2, True, before=with_two)),
            ("double ack", double_ack),
            ("ack a no-ack delivery", ack_no_ack_delivery),
            ("ack 2 multiple, only 1 outstanding", ack(2, True, before=lambda ch: (with_two(ch), ch.basic_ack(2)))),
            ("nack 5 multiple, 1 and 2 outstanding", ack(5, True, op="nack", before=with_two)),
            ("ack another channel's tag", ack_other_channels_tag),
        ])
        env.record("left in queue", env.count(env.channel(), q))

        def tx_double_ack(ch):
            ch.tx_select()
            t = with_two(ch)
            ch.basic_ack(t[0])
            env.sync(ch)
            ch.basic_ack(t[0])
            env.sync(ch)

        def tx_multiple_then_single(ch):
            ch.tx_select()
            t = with_two(ch)
            ch.basic_ack(t[1], multiple=True)
            env.sync(ch)
            ch.basic_ack(t[0])
            env.sync(ch)

        def tx_ack_then_commit(ch):
            ch.tx_select()
            t = with_two(ch)
            ch.basic_ack(t[0])
            ch.basic_nack(t[1], requeue=False)
            return ch.tx_commit()

        _each(env, [
            ("tx: ack the same tag twice", tx_double_ack),
            ("tx: multiple ack, then one of those", tx_multiple_then_single),
            ("tx: ack and nack, commit", tx_ack_then_commit),
        ])
        env.record("left in queue after tx", env.count(env.channel(), q))
    differ(scenario)


def test_last_queue_name(differ):
    def scenario(env):
        fresh = env.channel()
        _each(env, [
            ("consume '' first", lambda ch: ch.basic_consume("", lambda *a: None)),
            ("get '' first", lambda ch: ch.basic_get("")),
            ("purge '' first", lambda ch: ch.queue_purge("")),
            ("bind '' first", lambda ch: ch.queue_bind("", "amq.direct", "k")),
            ("unbind '' first", lambda ch: ch.queue_unbind("", "amq.direct", "k")),
            ("delete '' first", lambda ch: ch.queue_delete("")),
        ])
        ch = fresh
        q = env.queue("q")
        ch.queue_declare(q)
        env.attempt("bind '' with key ''", ch.queue_bind, "", "amq.direct", "")
        ch.basic_publish("amq.direct", q, b"by queue name")
        env.attempt("get ''", ch.basic_get, "", auto_ack=True)
        env.attempt("purge ''", ch.queue_purge, "")
        env.attempt("delete ''", ch.queue_delete, "")
        env.attempt("delete '' again", ch.queue_delete, "")
        env.attempt("purge '' after delete", ch.queue_purge, "")
        ch = env.channel()
        r = ch.queue_declare("", exclusive=True)
        env.record("server-named", r.method.queue)
        env.attempt("passive '' does not mean the last queue", ch.queue_declare, "", passive=True)
    differ(scenario)


def test_inequivalent_queue_args(differ):
    def scenario(env):
        q = env.queue("q")
        ttl = env.queue("ttl")
        setup = env.channel()
        setup.queue_declare(q)
        setup.queue_declare(ttl, arguments={"x-message-ttl": 1000})
        _each(env, [
            ("ttl 1000 -> 2000", lambda ch: ch.queue_declare(ttl, arguments={"x-message-ttl": 2000})),
            ("ttl 1000 -> none", lambda ch: ch.queue_declare(ttl)),
            ("ttl 1000 -> 1000", lambda ch: ch.queue_declare(ttl, arguments={"x-message-ttl": 1000})),
            ("ttl 1000 -> '1000'", lambda ch: ch.queue_declare(ttl, arguments={"x-message-ttl": "1000"})),
            ("none -> ttl", lambda ch: ch.queue_declare(q, arguments={"x-message-ttl": 1000})),
            ("none -> max-length", lambda ch: ch.queue_declare(q, arguments={"x-max-length": 10})),
            ("none -> max-length-bytes", lambda ch: ch.queue_declare(q, arguments={"x-max-length-bytes": 10})),
            ("none -> expires", lambda ch: ch.queue_declare(q, arguments={"x-expires": 50000})),
            ("none -> max-priority", lambda ch: ch.queue_declare(q, arguments={"x-max-priority": 5})),
            ("none -> dlx", lambda ch: ch.queue_declare(q, arguments={"x-dead-letter-exchange": "dlx"})),
            ("none -> dlrk", lambda ch: ch.queue_declare(q, arguments={"x-dead-letter-routing-key": "k"})),
            ("none -> overflow", lambda ch: ch.queue_declare(q, arguments={"x-overflow": "reject-publish"})),
            ("none -> queue-mode", lambda ch: ch.queue_declare(q, arguments={"x-queue-mode": "lazy"})),
            ("none -> quorum", lambda ch: ch.queue_declare(q, arguments={"x-queue-type": "quorum"})),
            ("none -> classic", lambda ch: ch.queue_declare(q, arguments={"x-queue-type": "classic"})),
            ("none -> unknown arg", lambda ch: ch.queue_declare(q, arguments={"foo": "bar"})),
            ("none -> single-active-consumer", lambda ch: ch.queue_declare(
                q, arguments={"x-single-active-consumer": True})),
        ])
    differ(scenario)


def test_queue_argument_validation(differ):
    """Validation texts of the arguments every queue type checks at declare (PRECONDITION_FAILED)."""
    cases = [
        ("x-message-ttl", -1), ("x-message-ttl", "abc"), ("x-message-ttl", decimal.Decimal("1.5")), ("x-message-ttl", True),
        ("x-message-ttl", None), ("x-message-ttl", 0), ("x-message-ttl", 2 ** 32),
        ("x-max-priority", 300), ("x-max-priority", 256), ("x-max-priority", 255), ("x-max-priority", 0),
        ("x-max-priority", -1), ("x-max-priority", "5"),
        ("x-foo", "anything"),
    ]

    def scenario(env):
        for i, (arg, value) in enumerate(cases):
            ch = env.channel()
            env.attempt(f"{arg}={value!r}", ch.queue_declare, env.queue(f"v{i}"), arguments={arg: value})
    differ(scenario)
