"""Web MQTT over TLS (``web_mqtts_port``, 15676; RabbitMQ's web_mqtt.ssl): paho's WebSocket transport with
tls_set over wss:// against the embedded broker with a CA the test makes (trustme), sharing the AMQPS
listener's certificate and verify options, client ids and retained messages with MQTT over TCP; every
port is an ephemeral one."""
import base64
import json
import ssl
import urllib.request

import paho.mqtt.client as mqtt
import pytest

from warrenmq.testing import EmbeddedBroker

from support.pki import make_pki

from .helpers import Client, browser_round_trip, ws_client

trustme = pytest.importorskip("trustme")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(trustme, tmp_path_factory.mktemp("pki"))


def tls_options(pki, **extra):
    return dict(tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"], **extra)


def wss_client(port, client_id, pki, version=mqtt.MQTTv311, cert=None, key=None, ca="ca"):
    """A paho client over wss://127.0.0.1:port/ws trusting ``pki[ca]``, with a client certificate if given."""
    return ws_client(port, client_id, version, tls=dict(ca_certs=pki[ca], certfile=cert, keyfile=key))


def api(b, path):
    req = urllib.request.Request(b.management_url + path,
                                 headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    return json.load(urllib.request.urlopen(req, timeout=5))


@pytest.mark.parametrize("version", [mqtt.MQTTv311, mqtt.MQTTv5])
def test_web_mqtt_over_tls_with_tcp_mqtt(pki, version):
    with EmbeddedBroker(web_mqtt=True, management=True, **tls_options(pki)) as b:
        assert b.web_mqtts_url.startswith("wss://127.0.0.1:") and b.web_mqtts_url.endswith("/ws")
        port = b.app.web_mqtts_port
        assert port not in (b.app.web_mqtt_port, b.app.mqtts_port, b.mqtt_port, b.app.tls_port)
        tcp = Client(b.mqtt_port, "tcp", version)
        tcp.publish("dash/cfg", b"dark", 1, retain=True)
        tcp.subscribe("back/+", 0)
        c, got, events = wss_client(port, "browser", pki, version)
        assert not events.get(timeout=5).is_failure
        assert isinstance(c.socket()._socket, ssl.SSLSocket)  # paho's WebSocket wrapper holds a TLS socket
        browser_round_trip(c, got, events, tcp)
        conns = api(b, "/api/connections")
        assert sorted((c["client_properties"]["client_id"], c["ssl"], c["port"]) for c in conns) == [
            ("browser", True, port), ("tcp", False, b.mqtt_port)]
        # the same client id over TCP takes the wss:// session over
        other = Client(b.mqtt_port, "browser", version)
        assert events.get(timeout=5)[0] == "gone"
        other.close()
        c.loop_stop()
        tcp.close()


def _refused(port, pki, **kw):
    """A wss:// client the broker must not serve: the handshake fails, or the connection ends with no CONNACK."""
    try:
        c, _got, events = wss_client(port, "refused", pki, **kw)
    except (ssl.SSLError, OSError):
        return
    try:
        first = events.get(timeout=5)
        assert not (hasattr(first, "is_failure") and not first.is_failure), "a refused client got a CONNACK"
    finally:
        c.loop_stop()


def test_untrusted_server_is_refused(pki):
    with EmbeddedBroker(web_mqtt=True, **tls_options(pki)) as b:
        with pytest.raises(ssl.SSLCertVerificationError):
            wss_client(b.app.web_mqtts_port, "wary", pki, ca="rogue")
        c, _got, events = wss_client(b.app.web_mqtts_port, "trusting", pki)
        assert not events.get(timeout=5).is_failure
        c.disconnect()
        c.loop_stop()


def test_verify_peer_applies_to_web_mqtt_over_tls(pki):
    with EmbeddedBroker(web_mqtt=True, **tls_options(pki, tls_cafile=pki["ca"], tls_verify_peer=True,
                                                     tls_fail_if_no_peer_cert=True)) as b:
        port = b.app.web_mqtts_port
        c, _got, events = wss_client(port, "with-cert", pki, cert=pki["client"], key=pki["client_key"])
        assert not events.get(timeout=5).is_failure
        c.disconnect()
        c.loop_stop()
        _refused(port, pki)  # no client certificate
        _refused(port, pki, cert=pki["rogue"], key=pki["rogue_key"])  # one the broker's CA did not sign


def test_no_certificate_no_web_mqtts_listener():
    with EmbeddedBroker(web_mqtt=True) as b:
        assert b.app.web_mqtts_port is None
        with pytest.raises(RuntimeError, match="Web MQTT over TLS is off"):
            b.web_mqtts_url
