"""Policies: set with ``rabbitmqctl set_policy`` on RabbitMQ and ``Broker.set_policy`` on WarrenMQ.

Every pattern is anchored on this run's own names, so a shared reference broker's other queues are
never touched."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.timeout(120)


def _props(**kw):
    import pika
    return pika.BasicProperties(**kw)


def _only(env, *suffixes) -> str:
    """A pattern matching exactly the names ``env.name(suffix)``."""
    return "^(" + "|".join(env.name(s) for s in suffixes) + ")$"


def test_message_ttl_policy(differ):
    def scenario(env):
        ch = env.channel()
        old, new, lower_arg, higher_arg = (env.queue(n) for n in ("old", "new", "lowarg", "higharg"))
        ch.queue_declare(old)
        ch.basic_publish("", old, b"before the policy")
        env.set_policy("ttl", _only(env, "old", "new", "lowarg", "higharg"), {"message-ttl": 200},
                       apply_to="queues")
        ch.queue_declare(new)
        ch.queue_declare(lower_arg, arguments={"x-message-ttl": 100})
        ch.queue_declare(higher_arg, arguments={"x-message-ttl": 60000})
        ch.basic_publish("", old, b"after the policy")
        for q in (new, lower_arg, higher_arg):
            ch.basic_publish("", q, b"m")
        env.sleep(0.15)
        env.record("at 150 ms", [env.count(ch, q) for q in (old, new, lower_arg, higher_arg)])
        env.sleep(0.4)
        # the old message has no deadline; the new one behind it only expires at the head
        env.record("at 550 ms", [env.count(ch, q) for q in (old, new, lower_arg, higher_arg)])
        env.record("old queue", env.bodies(ch, old))
        env.clear_policy("ttl")
        ch.basic_publish("", new, b"after clearing")
        ch.basic_publish("", higher_arg, b"after clearing")
        env.sleep(0.4)
        env.record("cleared", [env.count(ch, q) for q in (new, higher_arg)])
    differ(scenario)


def test_max_length_policy(differ):
    def scenario(env):
        ch = env.channel()
        q, capped = env.queue("q"), env.queue("capped")
        ch.queue_declare(q)
        ch.queue_declare(capped, arguments={"x-max-length": 3})
        for i in range(6):
            ch.basic_publish("", q, str(i).encode())
            ch.basic_publish("", capped, str(i).encode())
        env.sync(ch)
        env.record("before", [env.count(ch, q), env.count(ch, capped)])
        env.set_policy("ml", _only(env, "q", "capped"), {"max-length": 2})
        env.record("policy 2 applied at once (drop-head)", [env.bodies(ch, q), env.bodies(ch, capped)])
        env.set_policy("ml", _only(env, "q", "capped"), {"max-length": 5})  # replaces it
        for i in range(6):
            ch.basic_publish("", q, str(i).encode())
            ch.basic_publish("", capped, str(i).encode())
        env.sync(ch)
        env.record("policy 5: the lower of policy and argument", [env.count(ch, q), env.count(ch, capped)])
        env.clear_policy("ml")
        for i in range(6):
            ch.basic_publish("", q, str(i).encode())
            ch.basic_publish("", capped, str(i).encode())
        env.sync(ch)
        env.record("cleared", [env.count(ch, q), env.count(ch, capped)])
    differ(scenario)


def test_overflow_and_max_length_bytes_policy(differ):
    def scenario(env):
        ch = env.channel()
        q, argq = env.queue("q"), env.queue("argq")
        env.set_policy("of", _only(env, "q", "argq"), {"max-length-bytes": 6, "overflow": "reject-publish"},
                       apply_to="queues")
        ch.queue_declare(q)
        ch.queue_declare(argq, arguments={"x-overflow": "drop-head"})  # the argument wins over the policy
        ch.confirm_delivery()
        for body in (b"aaa", b"bbb", b"ccc"):
            env.attempt(f"publish {body.decode()} to q", ch.basic_publish, "", q, body)
            env.attempt(f"publish {body.decode()} to argq", ch.basic_publish, "", argq, body)
        env.record("q", env.bodies(ch, q))
        env.record("argq", env.bodies(ch, argq))
    differ(scenario)


def test_apply_to_priority_and_pattern(differ):
    def scenario(env):
        ch = env.channel()
        names = ("qa-1", "qa-2", "qb")
        qa1, qa2, qb = (env.queue(n) for n in names)
        # apply-to exchanges: not for queues
        env.set_policy("ex-only", _only(env, *names), {"max-length": 1}, apply_to="exchanges")
        # unanchored: matches anywhere in the name; the higher priority wins
        env.set_policy("low", env.token + "-qa", {"max-length": 3}, priority=1)
        env.set_policy("high", env.token + "-qa-1", {"max-length": 2}, priority=5, apply_to="queues")
        for q in (qa1, qa2, qb):
            ch.queue_declare(q)
            for i in range(5):
                ch.basic_publish("", q, str(i).encode())
        env.sync(ch)
        env.record("counts", [env.count(ch, q) for q in (qa1, qa2, qb)])
        # lowering the winner's priority hands the queue to the other policy
        env.set_policy("high", env.token + "-qa-1", {"max-length": 2}, priority=0, apply_to="queues")
        for q in (qa1, qa2):
            for i in range(5):
                ch.basic_publish("", q, str(i).encode())
        env.sync(ch)
        env.record("after reprioritising", [env.count(ch, q) for q in (qa1, qa2)])
    differ(scenario)


def test_expires_policy(differ):
    def scenario(env):
        ch = env.channel()
        q, argq, other = env.queue("q"), env.queue("argq"), env.queue("other")
        ch.queue_declare(q)
        ch.queue_declare(argq, arguments={"x-expires": 60000})
        ch.queue_declare(other)
        env.set_policy("exp", _only(env, "q", "argq"), {"expires": 300}, apply_to="queues")
        env.sleep(0.8)
        for name in (q, argq, other):
            env.attempt(name.rsplit("-", 1)[-1], ch.queue_declare, name, passive=True)
            if ch.is_closed:
                ch = env.channel()
    differ(scenario)


def test_dead_letter_policy(differ):
    def scenario(env):
        ch = env.channel()
        dlx, dlx2 = env.exchange("dlx"), env.exchange("dlx2")
        dlq, dlq2 = env.queue("dlq"), env.queue("dlq2")
        ch.exchange_declare(dlx, "direct")
        ch.exchange_declare(dlx2, "direct")
        ch.queue_declare(dlq)
        ch.queue_declare(dlq2)
        ch.queue_bind(dlq, dlx, "policy-key")
        ch.queue_bind(dlq2, dlx2, "policy-key")
        ch.queue_bind(dlq2, dlx2, "arg-key")
        src, argsrc, keysrc = env.queue("src"), env.queue("argsrc"), env.queue("keysrc")
        env.set_policy("dl", _only(env, "src", "argsrc", "keysrc"),
                       {"dead-letter-exchange": dlx, "dead-letter-routing-key": "policy-key"})
        ch.queue_declare(src)
        ch.queue_declare(argsrc, arguments={"x-dead-letter-exchange": dlx2})  # its own dlx, the policy's key
        ch.queue_declare(keysrc, arguments={"x-dead-letter-exchange": dlx2, "x-dead-letter-routing-key": "arg-key"})
        for q in (src, argsrc, keysrc):
            ch.basic_publish("", q, q.rsplit("-", 1)[-1].encode())
            m = env.get_all(ch, q, auto_ack=False)
            ch.basic_reject(m[0]["delivery_tag"], requeue=False)
        env.sync(ch)
        env.sleep(0.2)
        env.record("dlq", env.get_all(ch, dlq))
        env.record("dlq2", env.get_all(ch, dlq2))
    differ(scenario)


def test_alternate_exchange_policy(differ):
    def scenario(env):
        ch = env.channel()
        ae, ae2 = env.exchange("ae"), env.exchange("ae2")
        aq, aq2 = env.queue("aq"), env.queue("aq2")
        for x, q in ((ae, aq), (ae2, aq2)):
            ch.exchange_declare(x, "fanout")
            ch.queue_declare(q)
            ch.queue_bind(q, x)
        main, own = env.exchange("main"), env.exchange("own")
        ch.exchange_declare(main, "direct")
        ch.exchange_declare(own, "direct", arguments={"alternate-exchange": ae2})
        env.set_policy("ae", _only(env, "main", "own"), {"alternate-exchange": ae}, apply_to="exchanges")
        env.set_policy("ae-for-queues", _only(env, "main", "own"), {"alternate-exchange": ae2}, priority=10,
                       apply_to="queues")  # never applies to exchanges
        ch.basic_publish(main, "nowhere", b"main")
        ch.basic_publish(own, "nowhere", b"own (the argument wins)")
        env.sync(ch)
        env.record("aq", env.bodies(ch, aq))
        env.record("aq2", env.bodies(ch, aq2))
        env.clear_policy("ae")
        returned = []
        ch.add_on_return_callback(lambda c, m, p, b: returned.append(b))
        ch.basic_publish(main, "nowhere", b"after clearing", mandatory=True)
        env.sync(ch)
        env.pump(env.conn, 1.0, lambda: returned)
        env.record("returned", returned)
    differ(scenario)


def test_delivery_limit_policy(differ):
    def scenario(env):
        ch = env.channel()
        q, argq = env.queue("qq"), env.queue("argqq")
        env.set_policy("dl", _only(env, "qq", "argqq"), {"delivery-limit": 1}, apply_to="queues")
        ch.queue_declare(q, durable=True, arguments={"x-queue-type": "quorum"})
        ch.queue_declare(argq, durable=True, arguments={"x-queue-type": "quorum", "x-delivery-limit": 3})
        result = {}
        for name in (q, argq):
            ch.basic_publish("", name, b"m")
            env.sync(ch)
            n = 0
            for _ in range(6):
                got = env.get_all(ch, name, auto_ack=False, limit=1)
                if not got:
                    break
                n += 1
                ch.basic_nack(got[0]["delivery_tag"], requeue=True)
                env.sync(ch)
            result[name.rsplit("-", 1)[-1]] = n
        env.record("deliveries before the limit dropped it", result)
    differ(scenario)
