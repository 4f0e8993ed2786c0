"""Permissions: what a user without the configure, write or read permission an operation needs is told,
compared with RabbitMQ.  Users are added with ``rabbitmqctl`` on the reference (skipped when it is not
installed) and with the Broker API on WarrenMQ; each is deleted after its scenario."""
from __future__ import annotations

import pika
import pytest

pytestmark = pytest.mark.timeout(120)

# the restricted user: configure nothing it could touch, write amq.direct and amq.topic, read amq.fanout
PERMISSIONS = ("^cfg-", r"^amq\.(direct|topic)$", r"^amq\.fanout$")


def test_permission_refusals(differ):
    def scenario(env):
        q, x = env.queue("q"), env.exchange("x")
        admin = env.channel()
        admin.queue_declare(q)
        admin.exchange_declare(x, "direct")
        user = env.user("u", "pw", permissions=PERMISSIONS)
        conn = env.connect_as(user, "pw")
        for label, fn, args in (
                ("queue.declare", "queue_declare", (q,)),
                ("queue.declare passive", "queue_declare", (q, True)),
                ("queue.declare new", "queue_declare", (env.queue("new"),)),
                ("queue.delete", "queue_delete", (q,)),
                ("queue.delete missing", "queue_delete", (env.queue("missing"),)),
                ("queue.purge", "queue_purge", (q,)),
                ("basic.get", "basic_get", (q,)),
                ("queue.bind", "queue_bind", (q, "amq.fanout", "k")),
                ("queue.unbind", "queue_unbind", (q, "amq.fanout", "k")),
                ("exchange.declare", "exchange_declare", (x, "direct")),
                ("exchange.declare passive", "exchange_declare", (x, "direct", True)),
                ("exchange.delete", "exchange_delete", (x,)),
                ("exchange.bind no write", "exchange_bind", (x, "amq.fanout", "k")),
                ("exchange.bind no read", "exchange_bind", ("amq.direct", x, "k")),
        ):
            env.attempt(label, getattr(conn.channel(), fn), *args)
        env.attempt("basic.consume", conn.channel().basic_consume, q, lambda *a: None)
        env.publish_sync(conn.channel(), "publish to an exchange it cannot write", x, "k")
        env.publish_sync(conn.channel(), "publish to the default exchange", "", q)
        env.publish_sync(conn.channel(), "publish to a missing exchange", env.name("nowhere"), "k")
        ch = conn.channel()
        env.publish_sync(ch, "publish allowed", "amq.direct", "k")
        env.publish_sync(ch, "publish allowed again", "amq.direct", "k")
    differ(scenario)


def test_topic_permissions_and_vhost_access(differ):
    def scenario(env):
        user = env.user("t", "pw", permissions=PERMISSIONS)
        env.target.set_topic_permissions(user, "amq.topic", "^a\\.{username}", "^b")
        conn = env.connect_as(user, "pw")
        ch = conn.channel()
        env.publish_sync(ch, "topic allowed", "amq.topic", f"a.{user}.x")
        env.publish_sync(ch, "topic refused", "amq.topic", "c.x")
        nobody = env.user("n", "pw", tags=("administrator",))  # tags give no vhost access
        try:
            env.connect_as(nobody, "pw")
            env.record("connect without permissions", "ok")
        except pika.exceptions.ProbableAccessDeniedError as e:
            env.record("connect without permissions", str(e))
    differ(scenario)


def test_deleting_a_user_closes_its_connections(differ):
    def scenario(env):
        user = env.user("d", "pw", permissions=(".*", ".*", ".*"))
        conn = env.connect_as(user, "pw")
        ch = conn.channel()
        env.sync(ch)
        env.target.delete_user(user)

        def wait_and_use():  # the close arrives while waiting (or answers the round trip)
            env.pump(conn, 2.0, lambda: not conn.is_open)
            env.sync(ch)
        env.attempt("after delete_user", wait_and_use)
    differ(scenario)


# the permitted user: configure and read its own "ok-" names, write them and amq.direct; read amq.fanout too
OK_PERMISSIONS = ("ok-", "ok-|^amq\\.direct$", "ok-|^amq\\.fanout$")


def test_permitted_operations(differ):
    """Every operation with exactly the permission it needs: allowed (the other half of the refusals)."""
    def scenario(env):
        user = env.user("p", "pw", permissions=tuple(p.replace("ok-", f"^{env.name('ok-')}") for p in OK_PERMISSIONS))
        q, q2, x = env.queue("ok-q"), env.queue("ok-q2"), env.exchange("ok-x")
        conn = env.connect_as(user, "pw")
        ch = conn.channel()
        for label, fn, args in (
                ("queue.declare", ch.queue_declare, (q,)),
                ("queue.declare again", ch.queue_declare, (q,)),
                ("queue.declare second", ch.queue_declare, (q2,)),
                ("exchange.declare", ch.exchange_declare, (x, "topic")),
                ("exchange.declare passive amq.topic (no permission needed)", ch.exchange_declare,
                 ("amq.topic", "topic", True)),
                ("queue.bind (write queue, read exchange)", ch.queue_bind, (q, x, "a.#")),
                ("queue.bind to amq.fanout", ch.queue_bind, (q2, "amq.fanout")),
                ("exchange.bind (write destination, read source)", ch.exchange_bind, (x, "amq.fanout")),
        ):
            env.attempt(label, fn, *args)
        env.publish_sync(ch, "publish to its exchange", x, "a.b", b"one")
        env.publish_sync(ch, "publish to amq.direct (unroutable)", "amq.direct", "nowhere", b"lost")
        env.publish_sync(ch, "publish to amq.fanout (no write)", "amq.fanout", "", b"refused")
        ch = conn.channel()
        # the default exchange is the resource 'amq.default' for the write check, whatever the queue
        env.publish_sync(ch, "publish through the default exchange (no write on amq.default)", "", q, b"two")
        ch = conn.channel()
        env.publish_sync(ch, "publish to its exchange again", x, "a.c", b"two")
        env.attempt("basic.get", ch.basic_get, q, True)
        env.record("count", env.count(ch, q))
        c = env.consumer(ch, q, auto_ack=True)
        env.record("consumed", [m["body"] for m in c.wait(1)])
        c.cancel()
        ch.basic_publish(x, "a.d", b"three")
        env.sync(ch)
        env.attempt("queue.purge", ch.queue_purge, q)
        env.attempt("queue.unbind", ch.queue_unbind, q, x, "a.#")
        env.attempt("exchange.unbind", ch.exchange_unbind, x, "amq.fanout")
        env.attempt("exchange.delete", ch.exchange_delete, x)
        env.attempt("queue.delete", ch.queue_delete, q)
    differ(scenario)


def test_bind_checks_each_side(differ):
    """queue.bind needs write on the queue and read on the exchange; each missing one refused with its name."""
    def scenario(env):
        mine, theirs = env.queue("mine"), env.queue("theirs")
        xr, xn = env.exchange("xr"), env.exchange("xn")
        admin = env.channel()
        for qn in (mine, theirs):
            admin.queue_declare(qn)
        for xname in (xr, xn):
            admin.exchange_declare(xname, "direct")
        user = env.user("b", "pw", permissions=("", f"^{mine}$|^{xr}$", f"^{xr}$"))
        conn = env.connect_as(user, "pw")
        env.attempt("bind writable queue, readable exchange", conn.channel().queue_bind, mine, xr, "k")
        env.attempt("bind writable queue, unreadable exchange", conn.channel().queue_bind, mine, xn, "k")
        env.attempt("bind unwritable queue, readable exchange", conn.channel().queue_bind, theirs, xr, "k")
        env.attempt("unbind unwritable queue", conn.channel().queue_unbind, theirs, xr, "k")
        env.attempt("unbind allowed", conn.channel().queue_unbind, mine, xr, "k")
        env.attempt("queue.declare passive of another's queue", conn.channel().queue_declare, theirs, True)
        env.attempt("server-named queue (configure on amq.gen-...)", conn.channel().queue_declare, "", False,
                    False, True)
    differ(scenario)


def test_topic_permissions_on_publish_and_bind(differ):
    """Topic permissions: write checked on publish to a topic exchange, read on binding a queue to it."""
    def scenario(env):
        q = env.queue("tq")
        x = env.exchange("tx")
        admin = env.channel()
        admin.queue_declare(q)
        admin.exchange_declare(x, "topic")
        user = env.user("tp", "pw", permissions=(".*", ".*", ".*"))
        env.target.set_topic_permissions(user, x, "^pub\\.", "^sub\\.")
        conn = env.connect_as(user, "pw")
        ch = conn.channel()
        env.publish_sync(ch, "publish with a permitted key", x, "pub.a")
        env.publish_sync(conn.channel(), "publish with a refused key", x, "other.a")
        env.publish_sync(conn.channel(), "publish to amq.topic (no topic permission there: allowed)",
                         "amq.topic", "other.a")
        env.attempt("bind with a permitted key", conn.channel().queue_bind, q, x, "sub.#")
        env.attempt("bind with a refused key", conn.channel().queue_bind, q, x, "other.#")
        env.record("count", env.count(env.channel(), q))
    differ(scenario)
