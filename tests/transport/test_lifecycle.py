"""Connection lifecycle over real sockets: whatever a peer does, its connection is gone in bounded
time (handshake and close-ok deadlines, silent TLS), a refused login without the
authentication_failure_close capability is delayed, failed TLS handshakes are logged once per peer."""
import logging
import os
import socket
import ssl
import time

import pytest

from support.pki import make_pki
from support.raw import RawClient
from warrenmq.protocol import spec
from warrenmq.testing import EmbeddedBroker


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(pytest.importorskip("trustme"), tmp_path_factory.mktemp("pki"))


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def start_ok(c: RawClient, password: str = "guest", capabilities=None) -> None:
    c.send(spec.PROTOCOL_HEADER)
    _, start = c.read_method()
    assert isinstance(start, spec.ConnectionStart)
    c.send_method(0, spec.ConnectionStartOk({"capabilities": capabilities or {}}, "PLAIN",
                                            f"\0guest\0{password}".encode(), "en_US"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_hundreds_of_misbehaving_connections_give_their_file_descriptors_back(pki):
    with EmbeddedBroker(handshake_timeout_ms=800, close_timeout_ms=800, tls_handshake_timeout_ms=800,
                        tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"]) as b:
        RawClient(b.port).handshake()  # warm up (lazy imports, first connection)
        time.sleep(0.2)
        before = fd_count()
        clients = []
        for i in range(300):
            kind = i % 5
            if kind == 4:  # silent TLS: connects to the AMQPS port and never starts the handshake
                clients.append(socket.create_connection(("127.0.0.1", b.app.tls_port), timeout=10))
                continue
            c = RawClient(b.port, timeout=10)
            if kind == 0:  # the protocol header, then garbage: 501, and the client never sends close-ok
                c.send(spec.PROTOCOL_HEADER)
                c.read_method()
                c.send(b"\x01\x00\x00\xff\xff\xff\xff" + b"\x00" * 20)
            elif kind == 1:  # half a handshake: the header, then nothing
                c.send(spec.PROTOCOL_HEADER)
            elif kind == 2:  # start-ok, then no tune-ok
                start_ok(c)
            else:  # an open connection made to close (a second channel.open), no close-ok ever
                c.handshake()
                c.open_channel(1)
                c.send_method(1, spec.ChannelOpen(""))
            clients.append(c.sock)
        assert fd_count() >= before + 300  # the clients' sockets and the broker's
        deadline = time.monotonic() + 30
        for s in clients:
            s.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            except (socket.timeout, TimeoutError):
                pytest.fail("the broker kept a misbehaving connection open")
            s.close()
        deadline = time.monotonic() + 5
        while fd_count() > before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert fd_count() <= before + 2
        assert b.call(lambda: len(b.app.server.connections) + len(b.app.tls_server.connections)
                      + len(b.app.tls_server.handshaking)) == 0


def test_a_client_that_never_answers_close_is_dropped_after_close_timeout():
    with EmbeddedBroker(close_timeout_ms=600) as b:
        c = RawClient(b.port)
        c.handshake()
        c.send_method(0, spec.ChannelOpen(""))  # a channel method on channel 0: a hard error
        _, close = c.read_method()
        assert isinstance(close, spec.ConnectionClose)
        assert not c.closed_by_peer(0.2)  # the broker waits for close-ok a while ...
        assert c.closed_by_peer(5)  # ... and not forever


def test_close_ok_ends_the_connection_at_once(broker):
    c = RawClient(broker.port)
    c.handshake()
    c.send_method(0, spec.ChannelOpen(""))
    _, close = c.read_method()
    assert isinstance(close, spec.ConnectionClose)
    c.send_method(0, spec.ConnectionCloseOk())
    assert c.closed_by_peer(2)


def test_failed_login_without_the_capability_is_closed_after_a_delay():
    with EmbeddedBroker(auth_failure_delay_ms=1500) as b:
        c = RawClient(b.port)
        start_ok(c, password="wrong")
        t = time.monotonic()
        assert not c.closed_by_peer(1.0)  # nothing for a while: guessing passwords is slow
        assert c.closed_by_peer(5)
        assert time.monotonic() - t >= 1.4
        assert c.buf == b""  # and closed without a word (the client cannot be told)


def test_failed_login_with_the_capability_gets_access_refused_at_once():
    with EmbeddedBroker(auth_failure_delay_ms=5000) as b:
        c = RawClient(b.port)
        start_ok(c, password="wrong", capabilities={"authentication_failure_close": True})
        t = time.monotonic()
        _, close = c.read_method()
        assert isinstance(close, spec.ConnectionClose)
        assert close.reply_code == spec.ACCESS_REFUSED
        assert close.reply_text == ("ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. "
                                    "For details see the broker logfile.")
        assert time.monotonic() - t < 3  # not the 5 s delay


def test_the_default_timeouts_are_rabbitmqs():
    from warrenmq.config import BrokerConfig
    c = BrokerConfig()
    assert (c.handshake_timeout_ms, c.close_timeout_ms, c.auth_failure_delay_ms, c.tls_handshake_timeout_ms) == \
        (10_000, 30_000, 3_000, 5_000)


# ---------------------------------------------------------------------- TLS logging
def tls_lines(caplog):
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("TLS handshake with")]


def wait_for_lines(caplog, n, timeout=5.0):
    deadline = time.monotonic() + timeout
    while len(tls_lines(caplog)) < n and time.monotonic() < deadline:
        time.sleep(0.02)
    return tls_lines(caplog)


def test_plain_tcp_on_the_tls_port_is_logged_once_per_peer_per_minute(pki, caplog):
    caplog.set_level(logging.WARNING, logger="warrenmq.transport")
    with EmbeddedBroker(tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"]) as b:
        for _ in range(3):
            c = RawClient(b.app.tls_port)
            c.send(spec.PROTOCOL_HEADER)  # AMQP where a TLS ClientHello belongs
            assert c.closed_by_peer(5)
        lines = wait_for_lines(caplog, 1)
        time.sleep(0.3)
        lines = tls_lines(caplog)
        assert len(lines) == 1, lines
        assert lines[0].startswith("TLS handshake with 127.0.0.1:")
        assert "failed:" in lines[0]
        assert b.call(lambda: b.app.tls_server.tls_log.suppressed) == 2


def test_an_untrusted_client_certificate_is_logged_with_the_reason(pki, caplog):
    caplog.set_level(logging.WARNING, logger="warrenmq.transport")
    with EmbeddedBroker(tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"],
                        tls_cafile=pki["ca"], tls_verify_peer=True, tls_fail_if_no_peer_cert=True) as b:
        ctx = ssl.create_default_context(cafile=pki["ca"])
        ctx.load_cert_chain(pki["rogue"], pki["rogue_key"])
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2  # the refusal comes inside the handshake
        with socket.create_connection(("127.0.0.1", b.app.tls_port), timeout=5) as raw:
            with pytest.raises(ssl.SSLError):
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.recv(1)
        lines = wait_for_lines(caplog, 1)
        assert len(lines) == 1, lines
        assert "CERTIFICATE" in lines[0].upper()


def test_a_silent_tls_client_is_dropped_and_logged(pki, caplog):
    caplog.set_level(logging.WARNING, logger="warrenmq.transport")
    with EmbeddedBroker(tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"],
                        tls_handshake_timeout_ms=300) as b:
        with socket.create_connection(("127.0.0.1", b.app.tls_port), timeout=5) as s:
            assert s.recv(1) == b""
        lines = wait_for_lines(caplog, 1)
        assert len(lines) == 1 and "no TLS handshake within 0.3s" in lines[0], lines


def test_tls_clients_still_speak_amqp_after_the_handshake(pki):
    pika = pytest.importorskip("pika")
    with EmbeddedBroker(tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"]) as b:
        ctx = ssl.create_default_context(cafile=pki["ca"])
        for _ in range(5):
            params = pika.ConnectionParameters("127.0.0.1", b.app.tls_port, ssl_options=pika.SSLOptions(ctx, "localhost"))
            conn = pika.BlockingConnection(params)
            ch = conn.channel()
            ch.queue_declare("tls-q")
            ch.basic_publish("", "tls-q", b"x")
            conn.close()
        assert b.call(lambda: b.broker.vhosts["/"].queues["tls-q"].message_count) == 5


def test_rate_limited_log_keeps_bounded_memory():
    from warrenmq.transport.server import RateLimitedLog
    r = RateLimitedLog(interval=60, size=100)
    assert all(r.allow(f"10.0.{i // 256}.{i % 256}", 0.0) for i in range(1000))
    assert len(r.last) == 100
    assert not r.allow("10.0.3.231", 1.0)  # recent: still remembered
    assert r.allow("10.0.3.231", 61.0)  # a minute later: logged again
