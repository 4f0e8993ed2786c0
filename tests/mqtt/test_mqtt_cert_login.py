"""Logins from the client certificate (``mqtt_ssl_cert_login``, RabbitMQ's mqtt.ssl_cert_login): a CONNECT
without user name and password over MQTT or Web MQTT over TLS, with a certificate the broker verified, logs
in as the certificate's distinguished name (or common name, ``ssl_cert_login_from``); paho with tls_set
against the embedded broker, certificates made by trustme."""

import paho.mqtt.client as mqtt
import pytest

from warrenmq.testing import EmbeddedBroker

from support.http import http
from support.pki import add_certificate_user

from .helpers import Client, ws_client

trustme = pytest.importorskip("trustme")
x509 = pytest.importorskip("cryptography.x509")
V5 = mqtt.MQTTv5


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    out = {"ca": str(d / "ca.pem")}
    ca.cert_pem.write_to_path(out["ca"])
    for role, cert in (("server", ca.issue_cert("localhost", "127.0.0.1")),
                       ("client", ca.issue_cert("device.test", common_name="Device 7"))):
        out[role], out[role + "_key"] = str(d / f"{role}.pem"), str(d / f"{role}.key")
        cert.cert_chain_pems[0].write_to_path(out[role])
        cert.private_key_pem.write_to_path(out[role + "_key"])
    # the subject as RFC 4514 reads it (cryptography's formatting: the same string for these plain values)
    with open(out["client"], "rb") as f:
        out["dn"] = x509.load_pem_x509_certificate(f.read()).subject.rfc4514_string()
    return out


def api(b, method, path, body=None):
    return http(b.management_url, method, path, body)[2]


def broker(pki, **extra):
    opts = dict(mqtt=True, web_mqtt=True, management=True, tls_port=0, tls_certfile=pki["server"],
                tls_keyfile=pki["server_key"], tls_cafile=pki["ca"], tls_verify_peer=True, mqtt_ssl_cert_login=True)
    opts.update(extra)
    return EmbeddedBroker(**opts)


def tls_client(b, pki, client_id, version=mqtt.MQTTv311, username=None, password=None, cert=True):
    """A paho client over TLS (with the client certificate unless ``cert`` is false), not yet connected."""
    c = Client(b.mqtts_port, client_id, version, username=username, password=password, connect=False)
    c.c.tls_set(ca_certs=pki["ca"], certfile=pki["client"] if cert else None,
                keyfile=pki["client_key"] if cert else None)
    return c


def users(b):
    return sorted((x["client_properties"]["client_id"], x["user"]) for x in api(b, "GET", "/api/connections"))


@pytest.mark.parametrize("version", [mqtt.MQTTv311, V5])
def test_a_verified_certificate_logs_in_as_its_distinguished_name(pki, version):
    assert pki["dn"].startswith("CN=Device 7,OU=Testing cert #") and pki["dn"].endswith(",O=trustme v1.2.1")
    with broker(pki) as b:
        add_certificate_user(b, pki["dn"])
        dev = tls_client(b, pki, "dev7", version)
        dev.connect()  # no user name, no password
        assert dev.subscribe("plant/+/t", 1)[0].value == 1  # the certificate user's permissions apply
        dev.publish("plant/7/t", b"20.5", 1)
        assert dev.get().payload == b"20.5"
        assert users(b) == [("dev7", pki["dn"])]
        # a user name and password win over the certificate (RabbitMQ: the certificate only without them)
        other = tls_client(b, pki, "other", version, username="guest", password="guest")
        other.connect()
        assert users(b) == [("dev7", pki["dn"]), ("other", "guest")]
        wrong = tls_client(b, pki, "wrong", version, username="guest", password="wrong")
        assert wrong.connect(expect_ok=False)[1].value == 0x86  # 3.1.1's 4, bad user name or password
        wrong.c.loop_stop()
        # Web MQTT over TLS takes the certificate's name too (the same session code)
        ws, got, events = ws_client(b.app.web_mqtts_port, "ws7", version,
                                    tls=dict(ca_certs=pki["ca"], certfile=pki["client"], keyfile=pki["client_key"]))
        try:
            assert not events.get(timeout=5).is_failure
            assert ("ws7", pki["dn"]) in users(b)
        finally:
            ws.disconnect()
            ws.loop_stop()
        for c in (dev, other):
            c.close()


@pytest.mark.parametrize("version", [mqtt.MQTTv311, V5])
def test_an_unknown_name_is_refused_and_common_name_mode(pki, version):
    with broker(pki) as b:  # nobody is named after the certificate: RabbitMQ 3.10's auth failure, CONNACK 4
        c = tls_client(b, pki, "stranger", version)
        assert c.connect(expect_ok=False)[1].value == 0x86
        c.c.loop_stop()
        assert api(b, "GET", "/api/connections") == []
    with broker(pki, ssl_cert_login_from="common_name") as b:
        add_certificate_user(b, "Device 7")
        c = tls_client(b, pki, "cn", version)
        c.connect()
        assert users(b) == [("cn", "Device 7")]
        c.close()


def test_off_by_default_and_without_peer_verification(pki):
    # mqtt_ssl_cert_login off (the default): no credentials is the anonymous login, or refused without it
    with broker(pki, mqtt_ssl_cert_login=False, mqtt_allow_anonymous=False) as b:
        add_certificate_user(b, pki["dn"])
        c = tls_client(b, pki, "anon")
        assert c.connect(expect_ok=False)[1].value == 0x87  # 3.1.1's 5, as without a certificate
        c.c.loop_stop()
    with broker(pki, mqtt_ssl_cert_login=False) as b:
        add_certificate_user(b, pki["dn"])
        c = tls_client(b, pki, "anon")
        c.connect()
        assert users(b) == [("anon", "guest")]
        c.close()
    # on, but nobody verified the certificate (no tls_verify_peer): it names nobody, the anonymous login
    with broker(pki, tls_verify_peer=False) as b:
        add_certificate_user(b, pki["dn"])
        c = tls_client(b, pki, "unverified")
        c.connect()
        assert users(b) == [("unverified", "guest")]
        c.close()
    # on, but the client sent no certificate (tls_verify_peer without tls_fail_if_no_peer_cert lets it), or
    # connected over plain TCP: no name, the anonymous login
    with broker(pki) as b:
        c = tls_client(b, pki, "nocert", cert=False)
        c.connect()
        plain = Client(b.mqtt_port, "plain")
        assert users(b) == [("nocert", "guest"), ("plain", "guest")]
        for x in (c, plain):
            x.close()
