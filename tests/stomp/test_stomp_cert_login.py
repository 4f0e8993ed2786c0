"""Logins from the client certificate (``stomp_ssl_cert_login``, RabbitMQ's stomp.ssl_cert_login): a CONNECT
without a login header over STOMP or Web STOMP over TLS, with a certificate the broker verified, logs in
as the certificate's distinguished name (or common name, ``ssl_cert_login_from``); stomp.py and aiohttp
against the embedded broker, certificates made by trustme."""
import asyncio
import socket
import ssl
import urllib.parse
import urllib.request

import aiohttp
import pytest
import stomp

from warrenmq.broker.certlogin import distinguished_name, escape_rdn_value, peer_cert_auth_name
from warrenmq.testing import EmbeddedBroker

from support.http import http
from support.pki import add_certificate_user

trustme = pytest.importorskip("trustme")
x509 = pytest.importorskip("cryptography.x509")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    files = {"ca": d / "ca.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    for role, cert in (("server", ca.issue_cert("localhost", "127.0.0.1")),
                       ("client", ca.issue_cert("client.test", common_name="Client One"))):
        files[role], files[role + "_key"] = d / f"{role}.pem", d / f"{role}.key"
        cert.cert_chain_pems[0].write_to_path(str(files[role]))
        cert.private_key_pem.write_to_path(str(files[role + "_key"]))
    out = {k: str(v) for k, v in files.items()}
    # the subject as RFC 4514 reads it (cryptography's own formatting: the same string for these plain values)
    client = x509.load_pem_x509_certificate(files["client"].read_bytes())
    out["dn"] = client.subject.rfc4514_string()
    out["issuer"] = client.issuer.rfc4514_string()
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    out["validity"] = (f"{client.not_valid_before_utc.strftime(fmt)} - "
                       f"{client.not_valid_after_utc.strftime(fmt)}")
    return out


def api(b, method, path, body=None):
    return http(b.management_url, method, path, body)[2]


def broker(pki, **extra):
    return EmbeddedBroker(stomp=True, web_stomp=True, management=True, tls_port=0, tls_certfile=pki["server"],
                          tls_keyfile=pki["server_key"], tls_cafile=pki["ca"], stomp_ssl_cert_login=True, **extra)


def raw_connect(port, pki, frame, cert=True, then=None):
    """The broker's answer to ``frame`` over TLS (with the client certificate unless ``cert`` is false);
    with ``then``: (the answer, what ``then()`` returned while the connection was still open)."""
    ctx = ssl.create_default_context(cafile=pki["ca"])
    if cert:
        ctx.load_cert_chain(pki["client"], pki["client_key"])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(frame)
            got = b""
            while b"\0" not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            return got.decode() if then is None else (got.decode(), then())


CONNECT = b"CONNECT\naccept-version:1.2\nhost:/\n\n\0"


def test_a_verified_certificate_logs_in_as_its_distinguished_name(pki):
    assert pki["dn"].startswith("CN=Client One,OU=Testing cert #") and pki["dn"].endswith(",O=trustme v1.2.1")
    with broker(pki, tls_verify_peer=True) as b:
        add_certificate_user(b, pki["dn"])
        c = stomp.Connection12([("localhost", b.stomps_port)], vhost="/", try_loopback_connect=False)
        c.set_ssl(for_hosts=[("localhost", b.stomps_port)], ca_certs=pki["ca"], cert_file=pki["client"],
                  key_file=pki["client_key"])
        c.connect(wait=True)  # no login, no passcode
        conns = api(b, "GET", "/api/connections")
        assert [x["user"] for x in conns] == [pki["dn"]]
        # RabbitMQ's TLS keys of the connection, with Erlang's names (TLS 1.3: key exchange "any", mac "aead")
        tls = {k: v for k, v in conns[0].items() if k.startswith(("ssl", "peer_cert"))}
        assert tls == {"ssl": True, "ssl_protocol": "tlsv1.3", "ssl_key_exchange": "any",
                       "ssl_cipher": tls["ssl_cipher"], "ssl_hash": "aead", "peer_cert_subject": pki["dn"],
                       "peer_cert_issuer": pki["issuer"], "peer_cert_validity": pki["validity"]}
        assert tls["ssl_cipher"] in ("aes_256_gcm", "aes_128_gcm", "chacha20_poly1305")
        c.disconnect()
        # a login header wins over the certificate (RabbitMQ: the certificate only when there is none)
        assert raw_connect(b.stomps_port, pki, b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\n"
                                               b"passcode:guest\n\n\0").startswith("CONNECTED\n")
        got = raw_connect(b.stomps_port, pki, b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\n"
                                              b"passcode:wrong\n\n\0")
        assert got.startswith("ERROR\n") and "Access refused for user 'guest'" in got
        # no certificate, no login: RabbitMQ's default login (guest), as over plain STOMP
        assert raw_connect(b.stomps_port, pki, CONNECT, cert=False).startswith("CONNECTED\n")
        # Web STOMP over TLS takes the certificate's name too
        ctx = ssl.create_default_context(cafile=pki["ca"])
        ctx.load_cert_chain(pki["client"], pki["client_key"])

        async def ws():
            async with aiohttp.ClientSession() as s:
                async with s.ws_connect(b.web_stomps_url, protocols=["v12.stomp"], ssl=ctx) as w:
                    await w.send_str(CONNECT.decode())
                    first = (await w.receive(timeout=5)).data
                    conns = await asyncio.get_running_loop().run_in_executor(
                        None, api, b, "GET", "/api/connections")
                    return first, conns
        first, conns = asyncio.run(ws())
        assert first.startswith("CONNECTED\n")
        assert [(x["protocol"], x["user"]) for x in conns] == [("Web STOMP 1.2", pki["dn"])]
        attempts = {a["protocol"]: a for a in api(b, "GET", "/api/auth/attempts/" + urllib.parse.quote(
            api(b, "GET", "/api/overview")["node"], safe=""))}
        assert attempts["stomp"]["auth_attempts_failed"] == 1  # the wrong passcode


def test_an_unknown_name_is_refused_and_common_name_mode(pki):
    with broker(pki, tls_verify_peer=True) as b:  # no user named after the certificate
        got = raw_connect(b.stomps_port, pki, CONNECT)
        assert got.startswith("ERROR\nmessage:Bad CONNECT\n") and f"Access refused for user '{pki['dn']}'" in got
    with broker(pki, tls_verify_peer=True, ssl_cert_login_from="common_name") as b:
        add_certificate_user(b, "Client One")
        got, conns = raw_connect(b.stomps_port, pki, CONNECT, then=lambda: api(b, "GET", "/api/connections"))
        assert got.startswith("CONNECTED\n") and [x["user"] for x in conns] == ["Client One"]


def test_without_peer_verification_or_the_option_the_certificate_names_nobody(pki):
    with broker(pki) as b:  # tls_verify_peer off: no certificate is asked for, the default login applies
        add_certificate_user(b, pki["dn"])
        got, conns = raw_connect(b.stomps_port, pki, CONNECT, then=lambda: api(b, "GET", "/api/connections"))
        assert got.startswith("CONNECTED\n") and [x["user"] for x in conns] == ["guest"]
        assert conns[0]["ssl_protocol"] == "tlsv1.3" and conns[0]["peer_cert_subject"] is None
        # a plain connection has the TLS keys too, null (RabbitMQ's format_nulls)
        with socket.create_connection(("127.0.0.1", b.stomp_port), timeout=5) as plain:
            plain.sendall(CONNECT)
            assert plain.recv(100).startswith(b"CONNECTED\n")
            conns = api(b, "GET", "/api/connections")
        assert [{k: v for k, v in x.items() if k.startswith(("ssl_", "peer_cert"))} for x in conns] == [
            dict.fromkeys(("ssl_protocol", "ssl_key_exchange", "ssl_cipher", "ssl_hash", "peer_cert_subject",
                           "peer_cert_issuer", "peer_cert_validity"))]
    with EmbeddedBroker(stomp=True, management=True, tls_port=0, tls_certfile=pki["server"],
                        tls_keyfile=pki["server_key"], tls_cafile=pki["ca"], tls_verify_peer=True) as b:
        add_certificate_user(b, pki["dn"])  # stomp_ssl_cert_login off (the default)
        got, conns = raw_connect(b.stomps_port, pki, CONNECT, then=lambda: api(b, "GET", "/api/connections"))
        assert got.startswith("CONNECTED\n") and [x["user"] for x in conns] == ["guest"]


def test_names_are_formatted_and_escaped_as_rabbitmq_formats_them():
    subject = ((("countryName", "GB"),), (("organizationName", "Acme, Inc."),),
               (("organizationalUnitName", "a+b"), ("commonName", "x")), (("commonName", " #lead;<trail> "),),
               (("domainComponent", "é~"),), (("1.2.3.4", "odd"),))
    assert distinguished_name(subject) == ("1.2.3.4=odd,DC=\\C3\\A9\\7E,CN=\\ #lead\\;\\<trail\\>\\ ,"
                                           "OU=a\\+b+CN=x,O=Acme\\, Inc.,C=GB")
    assert escape_rdn_value("#a#") == "\\#a#" and escape_rdn_value('q"\\') == 'q\\"\\\\'
    cert = {"subject": subject}
    assert peer_cert_auth_name(cert, "common_name", True) == "x, #lead;<trail> "
    assert peer_cert_auth_name(cert, "distinguished_name", False) is None  # nobody verified it
    assert peer_cert_auth_name({}, "distinguished_name", True) is None
    assert peer_cert_auth_name({"subject": ((("countryName", "GB"),),)}, "common_name", True) is None


def test_a_bad_ssl_cert_login_from_is_refused():
    from warrenmq.config import BrokerConfig
    with pytest.raises(ValueError, match="invalid ssl_cert_login_from 'email'"):
        BrokerConfig(ssl_cert_login_from="email")
