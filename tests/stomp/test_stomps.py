"""STOMP over TLS (``stomps_port``, 61614; RabbitMQ's stomp.listeners.ssl): stomp.py over TLS against the
embedded broker with a CA the test makes (trustme), sharing the AMQPS listener's certificate and verify
options; tests/cli/test_first_run.py has the ``warrenmq`` command's one line for a taken port."""
import base64
import json
import queue
import socket
import ssl
import time
import urllib.request

import pika
import pytest
import stomp

from warrenmq.testing import EmbeddedBroker

from support.pki import make_pki

trustme = pytest.importorskip("trustme")
CONNECT = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(trustme, tmp_path_factory.mktemp("pki"))


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)


def tls_stomp(port, pki, cert=None, key=None, name=None):
    c = stomp.Connection12([("localhost", port)], vhost="/", try_loopback_connect=False)
    c.set_ssl(for_hosts=[("localhost", port)], ca_certs=pki["ca"], cert_file=cert, key_file=key)
    listener = Listener()
    c.set_listener("t", listener)
    c.connect("guest", "guest", wait=True, headers={"client-name": name} if name else {})
    return c, listener


def api(b, path):
    req = urllib.request.Request(b.management_url + path,
                                 headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    return json.load(urllib.request.urlopen(req, timeout=5))


def test_stomp_over_tls_shares_the_broker_with_plain_stomp_and_amqp(pki):
    with EmbeddedBroker(stomp=True, tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"],
                        management=True) as b:
        assert b.stomps_port not in (b.stomp_port, b.app.tls_port, b.port)
        secure, got = tls_stomp(b.stomps_port, pki)
        sock = secure.transport.socket
        assert isinstance(sock, ssl.SSLSocket) and sock.version().startswith("TLS")
        secure.subscribe("/topic/plant.*", id="s1", ack="auto", headers={"receipt": "r1"})
        plain = stomp.Connection12([("127.0.0.1", b.stomp_port)], vhost="/")
        plain_got = Listener()
        plain.set_listener("t", plain_got)
        plain.connect("guest", "guest", wait=True)
        plain.subscribe("/topic/plant.#", id="p1", ack="auto")
        conns = api(b, "/api/connections")
        assert sorted((c["protocol"], c["ssl"], c["port"]) for c in conns) == [
            ("STOMP 1.2", False, b.stomp_port), ("STOMP 1.2", True, b.stomps_port)]
        for _ in range(50):  # both subscriptions bound before publishing
            if len(api(b, "/api/exchanges/%2F/amq.topic/bindings/source")) == 2:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the subscriptions were not bound")
        plain.send("/topic/plant.1", "21.5")
        m = got.messages.get(timeout=5)
        assert (m.headers["destination"], m.body) == ("/topic/plant.1", "21.5")
        assert plain_got.messages.get(timeout=5).body == "21.5"
        with pika.BlockingConnection(pika.URLParameters(b.url)) as amqp:
            amqp.channel().basic_publish("amq.topic", "plant.2", b"22.0")
        assert got.messages.get(timeout=5).body == "22.0"
        assert plain_got.messages.get(timeout=5).body == "22.0"
        secure.send("/queue/tls-q", "over tls", headers={"persistent": "true"})
        with pika.BlockingConnection(pika.URLParameters(b.url)) as amqp:
            ch = amqp.channel()
            for _ in range(50):
                method, _props, body = ch.basic_get("tls-q", auto_ack=True)
                if method is not None:
                    break
                time.sleep(0.05)
            assert body == b"over tls"
        for c in (secure, plain):
            c.disconnect()


def _refused(port, ctx, send=CONNECT) -> bytes:
    """What a TLS client reads from ``port`` after sending ``send`` (b"" when refused)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    got = b""
    try:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(send)
            while chunk := s.recv(100):  # TLS 1.3: a refused certificate shows on the first read
                got += chunk
    except (ssl.SSLError, OSError):
        pass
    return got


def test_a_client_that_does_not_trust_the_server_certificate_fails_the_handshake(pki):
    with EmbeddedBroker(stomp=True, tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"]) as b:
        ctx = ssl.create_default_context(cafile=pki["rogue"])  # a CA that did not sign the server's certificate
        with socket.create_connection(("127.0.0.1", b.stomps_port), timeout=5) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                ctx.wrap_socket(raw, server_hostname="localhost")
        # plain STOMP on the TLS port is no STOMP at all: no CONNECTED, the socket closes
        with socket.create_connection(("127.0.0.1", b.stomps_port)) as s:
            s.settimeout(5)
            s.sendall(CONNECT)
            got = b""
            try:
                while chunk := s.recv(100):
                    got += chunk
            except ConnectionResetError:
                pass
            assert b"CONNECTED" not in got
        # and the TLS listener still serves a client that trusts it
        assert _refused(b.stomps_port, ssl.create_default_context(cafile=pki["ca"])).startswith(b"CONNECTED\n")


def test_verify_peer_applies_to_stomp_over_tls(pki):
    with EmbeddedBroker(stomp=True, tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"],
                        tls_cafile=pki["ca"], tls_verify_peer=True, tls_fail_if_no_peer_cert=True) as b:
        ok, _ = tls_stomp(b.stomps_port, pki, cert=pki["client"], key=pki["client_key"])
        assert ok.is_connected()
        ok.disconnect()
        ctx = ssl.create_default_context(cafile=pki["ca"])  # no client certificate
        assert b"CONNECTED" not in _refused(b.stomps_port, ctx), "a client without a certificate was served"
        rogue = ssl.create_default_context(cafile=pki["ca"])
        rogue.load_cert_chain(pki["rogue"], pki["rogue_key"])  # a certificate the broker's CA did not sign
        assert b"CONNECTED" not in _refused(b.stomps_port, rogue), "a client with a rogue certificate was served"
        # plain STOMP is not subject to the TLS options
        with socket.create_connection(("127.0.0.1", b.stomp_port), timeout=5) as s:
            s.sendall(CONNECT)
            assert s.recv(100).startswith(b"CONNECTED\n")


def test_no_certificate_no_stomps_listener():
    with EmbeddedBroker(stomp=True) as b:
        assert b.app.stomps_port is None
        with pytest.raises(RuntimeError, match="STOMP over TLS is off"):
            b.stomps_port
