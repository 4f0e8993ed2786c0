"""Focused checks of what the clients' own suites (test_client_suites.py) found missing or wrong.

Each behaviour was compared with a live RabbitMQ 3.x; these run in-process and
fast, so a regression shows up here with a clear name before the slow suites run.
"""
import ssl
import time

import amqp
import pytest

from support.pki import make_pki
from support.raw import RawClient
from warrenmq.protocol import spec
from warrenmq.testing import EmbeddedBroker


@pytest.fixture
def conn(broker):
    c = amqp.Connection(f"127.0.0.1:{broker.port}")
    c.connect()
    yield c
    try:
        c.close()
    except Exception:
        pass


@pytest.fixture
def ch(conn):
    return conn.channel()


def declare(ch, **arguments):
    q, _, _ = ch.queue_declare("", exclusive=True, arguments=arguments or None)
    return q


def bodies(ch, q, n):
    out = []
    for _ in range(n):
        m = ch.basic_get(q, no_ack=True)
        out.append(None if m is None else m.body)
    return out


# ------------------------------------------------------------------ immediate
def test_publish_with_immediate_closes_the_connection_with_540(conn, ch):
    q = declare(ch)
    ch.basic_publish(amqp.Message("x"), routing_key=q, immediate=True)
    with pytest.raises(amqp.exceptions.AMQPNotImplementedError) as info:
        ch.basic_get(q)
    assert info.value.reply_code == 540
    assert info.value.reply_text == "NOT_IMPLEMENTED - immediate=true"
    assert info.value.method_name == "Basic.publish"


# -------------------------------------------------------------- reply ordering
def _raw(broker) -> RawClient:
    c = RawClient(broker.port)
    c.handshake(capabilities={"consumer_cancel_notify": True})
    c.open_channel(1)
    return c


def test_deleting_a_queue_on_its_consumers_channel_sends_delete_ok_before_cancel(broker):
    c = _raw(broker)
    c.send_method(1, spec.QueueDeclare(0, "rq.del", False, False, False, True, False, {}))
    assert isinstance(c.read_method()[1], spec.QueueDeclareOk)
    c.send_method(1, spec.BasicConsume(0, "rq.del", "c1", False, False, False, False, {}))
    assert isinstance(c.read_method()[1], spec.BasicConsumeOk)
    c.send_method(1, spec.QueueDelete(0, "rq.del", False, False, False))
    first, second = c.read_method()[1], c.read_method()[1]
    assert isinstance(first, spec.QueueDeleteOk)
    assert isinstance(second, spec.BasicCancel) and second.consumer_tag == "c1"
    c.close()


def test_cancel_then_channel_close_in_one_write_get_their_replies_in_order(broker):
    c = _raw(broker)
    c.send_method(1, spec.QueueDeclare(0, "rq.order", False, False, False, True, False, {}))
    c.read_method()
    c.send_method(1, spec.BasicConsume(0, "rq.order", "c1", False, False, False, False, {}))
    c.read_method()
    from warrenmq.protocol.frames import method_frame
    c.send(method_frame(1, spec.BasicCancel("c1", False)) + method_frame(1, spec.ChannelClose(200, "bye", 0, 0)))
    replies = [type(c.read_method()[1]) for _ in range(2)]
    assert replies == [spec.BasicCancelOk, spec.ChannelCloseOk]
    c.close()


def test_replies_before_a_connection_close_in_the_same_write_come_first(broker):
    c = _raw(broker)
    from warrenmq.protocol.frames import method_frame
    c.send(method_frame(1, spec.QueueDeclare(0, "rq.last", False, False, False, True, False, {}))
           + method_frame(0, spec.ConnectionClose(200, "bye", 0, 0)))
    assert isinstance(c.read_method()[1], spec.QueueDeclareOk)
    assert isinstance(c.read_method()[1], spec.ConnectionCloseOk)
    c.close()


# ------------------------------------------------------------------------ TTL
def test_per_message_ttl_expires_ready_messages(ch):
    q = declare(ch)
    ch.basic_publish(amqp.Message("gone", expiration="50"), routing_key=q)
    ch.basic_publish(amqp.Message("kept"), routing_key=q)
    time.sleep(0.2)
    assert bodies(ch, q, 2) == ["kept", None]


def test_only_the_head_expires_and_a_timer_drops_it_without_traffic(ch):
    q = declare(ch, **{"x-message-ttl": 300})
    ch.basic_publish(amqp.Message("a"), routing_key=q)                    # deadline 300 ms
    ch.basic_publish(amqp.Message("b", expiration="50"), routing_key=q)   # 50 ms, but not at the head
    time.sleep(0.15)
    assert ch.queue_declare(q, passive=True).message_count == 2            # as RabbitMQ: b waits behind a
    time.sleep(0.3)
    assert ch.queue_declare(q, passive=True).message_count == 0            # dropped by the timer


def test_ttl_zero_reaches_a_waiting_consumer_but_is_dropped_otherwise(conn, ch):
    q = declare(ch)
    ch.basic_publish(amqp.Message("nobody", expiration="0"), routing_key=q)
    assert bodies(ch, q, 1) == [None]
    got = []
    ch.basic_consume(q, callback=got.append, no_ack=True)
    ch.basic_publish(amqp.Message("waiting", expiration="0"), routing_key=q)
    conn.drain_events(timeout=2)
    assert [m.body for m in got] == ["waiting"]


def test_requeued_messages_keep_their_deadline(ch):
    q = declare(ch, **{"x-message-ttl": 100})
    ch.basic_publish(amqp.Message("m"), routing_key=q)
    m = ch.basic_get(q)
    time.sleep(0.2)  # delivered: does not expire while unacked
    ch.basic_reject(m.delivery_tag, requeue=True)  # back at the head, past its deadline
    assert bodies(ch, q, 1) == [None]


@pytest.mark.parametrize("expiration, reason", [
    ("abc", "no_integer"), ("", "no_integer"), (" 5", "no_integer"), ("-5", "{value_negative,-5}"),
    ("12x", '{leftover_string,"x"}'), ("5 ", '{leftover_string," "}'),
])
def test_invalid_expiration_is_a_precondition_failed(ch, expiration, reason):
    q = declare(ch)
    ch.basic_publish(amqp.Message("x", expiration=expiration), routing_key=q)
    with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
        ch.basic_get(q)
    assert info.value.reply_text == f"PRECONDITION_FAILED - invalid expiration '{expiration}': {reason}"


# ------------------------------------------------------------------ priorities
def test_priority_queue_serves_highest_first_fifo_within_a_level(ch):
    q = declare(ch, **{"x-max-priority": 5})
    for p in [None, 7, 5, 200, 1, 0, None, 3]:
        props = {} if p is None else {"priority": p}
        ch.basic_publish(amqp.Message(str(p), **props), routing_key=q)
    # above the maximum counts as the maximum; none counts as 0 (RabbitMQ's order, recorded)
    assert bodies(ch, q, 9) == ["7", "5", "200", "3", "1", "None", "0", "None", None]


def test_priority_queue_requeues_into_the_original_places(ch):
    q = declare(ch, **{"x-max-priority": 10})
    for body, p in [("first", 3), ("second", 6), ("third", 3)]:
        ch.basic_publish(amqp.Message(body, priority=p), routing_key=q)
    got = [ch.basic_get(q) for _ in range(3)]
    assert [m.body for m in got] == ["second", "first", "third"]
    for m in reversed(got):
        ch.basic_reject(m.delivery_tag, requeue=True)
    ch.basic_publish(amqp.Message("fourth", priority=9), routing_key=q)
    assert bodies(ch, q, 4) == ["fourth", "second", "first", "third"]


@pytest.mark.parametrize("key, value, reason", [
    ("x-max-priority", 300, "{max_value_exceeded,300}"),
    ("x-max-priority", -1, "{value_negative,-1}"),
    ("x-max-priority", "abc", '"expected integer, got longstr"'),
    ("x-max-priority", True, '"expected integer, got bool"'),
    ("x-message-ttl", -1, "{value_negative,-1}"),
    ("x-message-ttl", "x", '"expected integer, got longstr"'),
])
def test_invalid_queue_arguments_are_refused_as_rabbitmq_does(ch, key, value, reason):
    with pytest.raises(amqp.exceptions.PreconditionFailed) as info:
        ch.queue_declare("rq.badarg", exclusive=True, arguments={key: value})
    assert info.value.reply_text == (f"PRECONDITION_FAILED - invalid arg '{key}' for queue 'rq.badarg' "
                                     f"in vhost '/': {reason}")


# ------------------------------------------------------------------------- TLS
@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(pytest.importorskip("trustme"), tmp_path_factory.mktemp("pki"))


def tls_broker(pki, **kw):
    return EmbeddedBroker(tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"],
                          tls_cafile=pki["ca"], **kw)


def tls_connect(port, pki, cert=None, key=None, **ssl_options):
    c = amqp.Connection(f"127.0.0.1:{port}", connect_timeout=5,
                        ssl={"ca_certs": pki["ca"], "certfile": cert, "keyfile": key, **ssl_options})
    c.connect()
    return c


def test_tls_listener_serves_amqp(pki):
    with tls_broker(pki) as b:
        c = tls_connect(b.app.tls_port, pki)
        ch = c.channel()
        q, _, _ = ch.queue_declare("", exclusive=True)
        ch.basic_publish(amqp.Message("over tls"), routing_key=q)
        assert ch.basic_get(q, no_ack=True).body == "over tls"
        assert c.transport.sock.version() in ("TLSv1.2", "TLSv1.3")
        c.close()
        # the plain listener is still there
        plain = amqp.Connection(f"127.0.0.1:{b.port}")
        plain.connect()
        plain.close()


def test_tls_verify_peer_accepts_a_trusted_client_certificate(pki):
    with tls_broker(pki, tls_verify_peer=True, tls_fail_if_no_peer_cert=True) as b:
        tls_connect(b.app.tls_port, pki, pki["client"], pki["client_key"]).close()


@pytest.mark.parametrize("which", ["untrusted", "missing"])
def test_tls_verify_peer_refuses_bad_client_certificates(pki, which):
    cert, key = (pki["rogue"], pki["rogue_key"]) if which == "untrusted" else (None, None)
    with tls_broker(pki, tls_verify_peer=True, tls_fail_if_no_peer_cert=True) as b:
        # TLS 1.2: the server's refusal ends the handshake itself
        with pytest.raises(ssl.SSLError):
            tls_connect(b.app.tls_port, pki, cert, key, tls_maximum_version=ssl.TLSVersion.TLSv1_2)
        # TLS 1.3: the client learns of it at its first read (py-amqp: "Server unexpectedly closed connection")
        with pytest.raises(OSError):
            tls_connect(b.app.tls_port, pki, cert, key)
        # and the broker keeps serving well-behaved clients
        tls_connect(b.app.tls_port, pki, pki["client"], pki["client_key"]).close()


def test_tls_verify_peer_without_fail_if_no_peer_cert_lets_anonymous_clients_in(pki):
    with tls_broker(pki, tls_verify_peer=True) as b:
        tls_connect(b.app.tls_port, pki).close()


def test_tls_config_errors_are_reported(pki):
    from warrenmq.config import BrokerConfig
    with pytest.raises(ValueError, match="tls_cafile"):
        BrokerConfig(tls_certfile=pki["server"], tls_keyfile=pki["server_key"], tls_verify_peer=True).tls_context()
    with pytest.raises(ValueError, match="both"):
        BrokerConfig(tls_certfile=pki["server"]).tls_context()
    assert BrokerConfig().tls_context() is None
