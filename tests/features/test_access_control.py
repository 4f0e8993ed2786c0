"""Permissions enforced over AMQP as RabbitMQ enforces them (pika against an embedded WarrenMQ): each
method refused with 403 ACCESS_REFUSED and RabbitMQ's text when the user lacks the permission it needs,
allowed when it has it; vhost access refused with 530; tags grant nothing over AMQP; deleting a user or a
vhost closes its connections with 320; permissions survive a restart."""
import pika
import pytest

from warrenmq.testing import EmbeddedBroker

# configure: c-* and cw-* / cr-*; write: w-*, cw-*, the default exchange; read: r-*, cr-*
CONFIGURE = r"^(c|cw|cr)-"
WRITE = r"^(w|cw)-|^amq\.default$"
READ = r"^(r|cr)-"


def connect(b, user="u", password="p", vhost="/"):
    return pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", b.port, vhost, pika.PlainCredentials(user, password), connection_attempts=1))


def refused(fn, *args, **kw) -> str:
    """Run ``fn``: it must close its channel with 403; return the reply text."""
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as info:
        fn(*args, **kw)
    assert info.value.reply_code == 403
    return info.value.reply_text


def text(kind, name, user="u", vhost="/"):
    return f"ACCESS_REFUSED - access to {kind} '{name}' in vhost '{vhost}' refused for user '{user}'"


@pytest.fixture
def b():
    with EmbeddedBroker() as broker:
        def setup():
            br = broker.broker
            br.add_user("u", "p")
            br.set_permissions("u", "/", CONFIGURE, WRITE, READ)
            vh = br.vhosts["/"]
            for q in ("x", "w-q", "r-q", "cr-q"):
                vh.declare_queue(q, None)
            for x in ("x", "w-x", "r-x"):
                vh.declare_exchange(x, "direct")
            vh.declare_exchange("r-t", "topic")
        broker.call(setup)
        yield broker


@pytest.fixture
def conn(b):
    c = connect(b)
    yield c
    if c.is_open:
        c.close()


def publish_refused(conn, exchange, key="k") -> str:
    ch = conn.channel()
    ch.basic_publish(exchange, key, b"m")
    return refused(ch.basic_qos, prefetch_count=0)  # a round trip: the close arrives first


def published(conn, exchange, key="k") -> None:
    ch = conn.channel()
    ch.basic_publish(exchange, key, b"m")
    ch.basic_qos(prefetch_count=0)
    ch.close()


def test_configure_is_needed_to_declare_and_delete(conn):
    assert refused(conn.channel().queue_declare, "q1") == text("queue", "q1")
    assert refused(conn.channel().exchange_declare, "x1", "direct") == text("exchange", "x1")
    assert refused(conn.channel().queue_delete, "x") == text("queue", "x")  # the issue: another user's queue
    assert refused(conn.channel().queue_delete, "missing") == text("queue", "missing")  # before the lookup
    assert refused(conn.channel().exchange_delete, "x") == text("exchange", "x")
    ch = conn.channel()
    ch.queue_declare("c-q")
    ch.exchange_declare("c-x", "fanout")
    ch.queue_declare("x", passive=True)  # passive declares need no permission
    ch.exchange_declare("x", "direct", passive=True)
    ch.queue_delete("c-q")
    ch.exchange_delete("c-x")


def test_server_named_queue_needs_configure_on_its_name(b, conn):
    assert refused(conn.channel().queue_declare, "", exclusive=True).startswith(
        "ACCESS_REFUSED - access to queue 'amq.gen-")
    b.call(b.broker.set_permissions, "u", "/", "^amq\\.gen-", "", "")
    assert conn.channel().queue_declare("", exclusive=True).method.queue.startswith("amq.gen-")


def test_dead_letter_and_alternate_exchanges_need_read_on_the_new_one_and_write_on_the_target(conn):
    # c-q: configure but no read
    assert refused(conn.channel().queue_declare, "c-q", arguments={"x-dead-letter-exchange": "w-x"}) == \
        text("queue", "c-q")
    assert refused(conn.channel().queue_declare, "cr-new", arguments={"x-dead-letter-exchange": "x"}) == \
        text("exchange", "x")
    conn.channel().queue_declare("cr-new", arguments={"x-dead-letter-exchange": "w-x"})
    assert refused(conn.channel().exchange_declare, "c-x", "direct", arguments={"alternate-exchange": "w-x"}) == \
        text("exchange", "c-x")
    conn.channel().exchange_declare("c-nox", "direct")


def test_write_is_needed_to_publish(conn):
    assert publish_refused(conn, "x") == text("exchange", "x")
    assert publish_refused(conn, "r-x") == text("exchange", "r-x")
    published(conn, "w-x")
    published(conn, "", "r-q")  # amq.default is in the write pattern
    # the permission comes before the lookup, as in RabbitMQ
    assert publish_refused(conn, "missing") == text("exchange", "missing")


def test_default_exchange_is_checked_as_amq_default(b, conn):
    b.call(b.broker.set_permissions, "u", "/", CONFIGURE, "^w-", READ)
    assert publish_refused(conn, "", "r-q") == text("exchange", "amq.default")


def test_read_is_needed_to_consume_get_and_purge(conn):
    assert refused(conn.channel().basic_consume, "x", lambda *a: None) == text("queue", "x")
    assert refused(conn.channel().basic_get, "x") == text("queue", "x")
    assert refused(conn.channel().queue_purge, "x") == text("queue", "x")
    ch = conn.channel()
    ch.basic_consume("r-q", lambda *a: None)
    ch.basic_get("r-q")
    ch.queue_purge("r-q")


def test_bind_needs_write_on_the_destination_and_read_on_the_source(conn):
    assert refused(conn.channel().queue_bind, "x", "r-x", "k") == text("queue", "x")
    assert refused(conn.channel().queue_bind, "w-q", "x", "k") == text("exchange", "x")
    assert refused(conn.channel().exchange_bind, "x", "r-x", "k") == text("exchange", "x")
    assert refused(conn.channel().exchange_bind, "w-x", "x", "k") == text("exchange", "x")
    ch = conn.channel()
    ch.queue_bind("w-q", "r-x", "k")
    ch.queue_unbind("w-q", "r-x", "k")
    ch.exchange_bind("w-x", "r-x", "k")
    ch.exchange_unbind("w-x", "r-x", "k")
    assert refused(conn.channel().queue_unbind, "x", "r-x", "k") == text("queue", "x")


def test_tags_grant_no_amqp_permissions(b):
    b.call(b.broker.add_user, "admin", "p", ["administrator"])
    b.call(b.broker.set_permissions, "admin", "/", "", "", "")
    c = connect(b, "admin", "p")
    assert refused(c.channel().queue_delete, "x") == text("queue", "x", "admin")
    assert refused(c.channel().basic_get, "x") == text("queue", "x", "admin")
    c.close()


def test_vhost_access_needs_permissions_there(b):
    b.call(b.broker.add_user, "n", "p", ["administrator"])
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as info:
        connect(b, "n", "p")
    assert "(530) \"NOT_ALLOWED - access to vhost '/' refused for user 'n'\"" in str(info.value)
    b.call(b.broker.set_permissions, "n", "/", "", "", "")
    connect(b, "n", "p").close()


def test_permission_changes_apply_to_open_channels(b, conn):
    ch = conn.channel()
    for _ in range(3):
        ch.basic_publish("w-x", "k", b"m")  # cached after the first
    ch.basic_qos(prefetch_count=0)
    b.call(b.broker.set_permissions, "u", "/", CONFIGURE, "", READ)
    ch.basic_publish("w-x", "k", b"m")
    assert refused(ch.basic_qos, prefetch_count=0) == text("exchange", "w-x")
    b.call(b.broker.clear_permissions, "u", "/")  # the connection stays, every operation is refused
    assert refused(conn.channel().basic_get, "r-q") == text("queue", "r-q")


def test_topic_permissions_check_routing_keys(b, conn):
    b.call(b.broker.set_permissions, "u", "/", CONFIGURE, ".*", ".*")
    b.call(b.broker.set_topic_permissions, "u", "/", "r-t", "^{username}\\.", "^r\\.")
    ch = conn.channel()
    ch.basic_publish("r-t", "u.a", b"m")
    ch.basic_publish("r-t", "u.b", b"m")
    ch.basic_qos(prefetch_count=0)
    assert publish_refused(conn, "r-t", "v.a") == \
        "ACCESS_REFUSED - access to topic 'v.a' in exchange 'r-t' in vhost '/' refused for user 'u'"
    conn.channel().queue_bind("w-q", "r-t", "r.#")
    assert refused(conn.channel().queue_bind, "w-q", "r-t", "u.#") == \
        "ACCESS_REFUSED - access to topic 'u.#' in exchange 'r-t' in vhost '/' refused for user 'u'"
    published(conn, "w-x", "v.a")  # not a topic permission's exchange
    b.call(b.broker.clear_topic_permissions, "u", "/")
    published(conn, "r-t", "v.a")


def test_deleting_a_user_closes_its_connections(b):
    c = connect(b)
    other = connect(b, "guest", "guest")
    b.call(b.broker.delete_user, "u")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        c.channel().queue_declare("c-q")
    assert info.value.reply_code == 320
    assert info.value.reply_text == "CONNECTION_FORCED - user 'u' is deleted"
    other.channel().queue_declare("x", passive=True)  # other users' connections stay
    other.close()


def test_deleting_a_vhost_closes_its_connections(b):
    b.call(b.broker.add_vhost, "v")
    b.call(b.broker.set_permissions, "u", "v", ".*", ".*", ".*")
    c = connect(b, vhost="v")
    c.channel().queue_declare("vq")
    b.call(b.broker.delete_vhost, "v")
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
        c.channel()
    assert info.value.reply_code == 320
    assert info.value.reply_text == "CONNECTION_FORCED - vhost 'v' is down"
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(b, vhost="v")


def test_users_and_permissions_survive_a_restart():
    with EmbeddedBroker(durable=True) as b:
        def setup():
            br = b.broker
            br.add_vhost("v")
            br.add_user("u", "p", ["monitoring"])
            br.set_permissions("u", "v", "^c-", "^w-", "^r-")
            br.set_topic_permissions("u", "v", "amq.topic", "^a", "")
        b.call(setup)
        b.restart()
        c = connect(b, vhost="v")
        assert refused(c.channel().queue_declare, "q", durable=True) == text("queue", "q", vhost="v")
        c.channel().queue_declare("c-q", durable=True)
        assert publish_refused(c, "amq.topic", "b") == text("exchange", "amq.topic", vhost="v")
        c.close()
        b.call(b.broker.set_permissions, "u", "v", ".*", ".*", ".*")
        b.restart()
        c = connect(b, vhost="v")
        published(c, "amq.topic", "a1")
        assert publish_refused(c, "amq.topic", "b") == \
            "ACCESS_REFUSED - access to topic 'b' in exchange 'amq.topic' in vhost 'v' refused for user 'u'"
        c.close()
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            connect(b, vhost="/")
