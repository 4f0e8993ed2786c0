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
