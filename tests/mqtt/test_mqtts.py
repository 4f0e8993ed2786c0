"""MQTT over TLS (``mqtts_port``, 8883; RabbitMQ's mqtt.listeners.ssl): paho over TLS against the embedded
broker with a CA the test makes (trustme), sharing the AMQPS listener's certificate and verify options,
and tests/cli/test_first_run.py has the ``warrenmq`` command's one line for a taken port."""
import base64
import json
import socket
import ssl
import urllib.request

import paho.mqtt.client as mqtt
import pika
import pytest

from warrenmq.testing import EmbeddedBroker

from support.pki import make_pki

from .helpers import Client

trustme = pytest.importorskip("trustme")
CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"  # MQTT 3.1.1, clean session, empty client id


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(trustme, tmp_path_factory.mktemp("pki"))


def tls_client(port, pki, client_id, version=mqtt.MQTTv311, cert=None, key=None):
    c = Client(port, client_id, version, connect=False)
    c.c.tls_set(ca_certs=pki["ca"], certfile=cert, keyfile=key)
    c.connect()
    return c


@pytest.mark.parametrize("version", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_mqtt_over_tls_shares_the_broker_with_plain_mqtt_and_amqp(pki, version):
    with EmbeddedBroker(mqtt=True, tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"],
                        management=True) as b:
        assert b.mqtts_port not in (b.mqtt_port, b.app.tls_port)
        secure = tls_client(b.mqtts_port, pki, "secure", version)
        assert secure.subscribe("plant/+/t", 2)[0].value == 2
        assert secure.c.socket().version().startswith("TLS")  # the socket paho holds is a TLS one
        plain = Client(b.mqtt_port, "plain", version)
        plain.subscribe("plant/#", 1)
        req = urllib.request.Request(b.management_url + "/api/connections",
                                     headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        conns = json.load(urllib.request.urlopen(req, timeout=5))
        assert sorted((c["client_properties"]["client_id"], c["ssl"], c["port"]) for c in conns) == [
            ("plain", False, b.mqtt_port), ("secure", True, b.mqtts_port)]
        secure.publish("plant/1/t", b"21.5", 2)
        m = secure.get()
        assert (m.topic, m.payload, m.qos) == ("plant/1/t", b"21.5", 2)
        assert plain.get().payload == b"21.5"
        with pika.BlockingConnection(pika.URLParameters(b.url)) as amqp:
            amqp.channel().basic_publish("amq.topic", "plant.2.t", b"22.0")
        assert secure.get().topic == "plant/2/t"
        assert plain.get().topic == "plant/2/t"
        # the same client id over TLS takes over the plain connection's session
        again = tls_client(b.mqtts_port, pki, "plain", version)
        assert plain.disconnects.get(timeout=5) is not None
        for c in (secure, again):
            c.close()


def test_a_client_that_does_not_trust_the_server_certificate_fails_the_handshake(pki, tmp_path):
    with EmbeddedBroker(mqtt=True, tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"]) as b:
        c = Client(b.mqtts_port, "wary", connect=False)
        c.c.tls_set(ca_certs=pki["rogue"])  # a CA that did not sign the server's certificate
        with pytest.raises(ssl.SSLCertVerificationError):
            c.c.connect("127.0.0.1", b.mqtts_port)
        # plain MQTT on the TLS port is no MQTT at all: the handshake fails and the socket closes
        with socket.create_connection(("127.0.0.1", b.mqtts_port)) as s:
            s.settimeout(5)
            s.sendall(CONNECT)
            got = b""
            while chunk := s.recv(100):
                got += chunk
            assert not got.startswith(b"\x20")  # no CONNACK: at most a TLS alert, then the close


def test_verify_peer_applies_to_mqtt_over_tls(pki):
    with EmbeddedBroker(mqtt=True, tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"],
                        tls_cafile=pki["ca"], tls_verify_peer=True, tls_fail_if_no_peer_cert=True) as b:
        ok = tls_client(b.mqtts_port, pki, "with-cert", cert=pki["client"], key=pki["client_key"])
        ok.close()
        ctx = ssl.create_default_context(cafile=pki["ca"])  # no client certificate
        raw = socket.create_connection(("127.0.0.1", b.mqtts_port), timeout=5)
        got = b""
        try:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(CONNECT)
                while chunk := s.recv(100):  # TLS 1.3: the refusal comes after the handshake, on a read
                    got += chunk
        except (ssl.SSLError, OSError):
            pass
        assert not got.startswith(b"\x20"), "a client without a certificate got a CONNACK"


def test_no_certificate_no_mqtts_listener():
    with EmbeddedBroker(mqtt=True) as b:
        assert b.app.mqtts_port is None
        with pytest.raises(RuntimeError, match="MQTT over TLS is off"):
            b.mqtts_port
