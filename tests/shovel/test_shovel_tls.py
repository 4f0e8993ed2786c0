"""A shovel to an ``amqps://`` URI with RabbitMQ's TLS query options: the server verified against
``cacertfile`` (``verify=verify_peer``), a client certificate presented (``certfile``/``keyfile``) to a
broker that requires one; a CA that did not sign the server's certificate keeps it ``starting``."""
import time
from urllib.parse import quote

import pytest

from support.links import drain, publish_confirmed
from support.pki import make_pki
from warrenmq.testing import EmbeddedBroker


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(pytest.importorskip("trustme"), tmp_path_factory.mktemp("pki"))


def amqps(port: int, pki: dict, ca: str) -> str:
    q = lambda p: quote(p, safe="")  # noqa: E731
    return (f"amqps://guest:guest@localhost:{port}/%2F?cacertfile={q(ca)}&certfile={q(pki['client'])}"
            f"&keyfile={q(pki['client_key'])}&verify=verify_peer&server_name_indication=localhost")


def test_amqps_with_peer_verification_and_a_client_certificate(mbroker, pki):
    with EmbeddedBroker(tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"],
                        tls_cafile=pki["ca"], tls_verify_peer=True, tls_fail_if_no_peer_cert=True) as tls:
        port = tls.app.tls_port
        api = mbroker.api
        assert api.put_shovel("tls", {"src-uri": "amqp://", "src-queue": "t-src",
                                      "dest-uri": amqps(port, pki, pki["ca"]), "dest-queue": "t-dst"})[0] == 201
        st = api.wait_state("tls")
        assert st["dest_uri"].startswith(f"amqps://localhost:{port}/%2F?")
        publish_confirmed(mbroker.url, "t-src", [b"over tls"], declare=False)
        assert [m[2] for m in drain(tls.url, "t-dst", 1)] == [b"over tls"]
        # a CA that did not sign the server's certificate: the handshake fails, the shovel keeps trying
        assert api.put_shovel("bad", {"src-uri": "amqp://", "src-queue": "t-src2",
                                      "dest-uri": amqps(port, pki, pki["rogue"]), "dest-queue": "t-dst",
                                      "reconnect-delay": 0.2})[0] == 201
        time.sleep(1.0)
        [bad] = [s for s in api.shovels() if s["name"] == "bad"]
        assert bad["state"] == "starting"
