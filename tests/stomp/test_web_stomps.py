"""Web STOMP over TLS (``web_stomps_port``, 15673; RabbitMQ's web_stomp.ssl): aiohttp's WebSocket client and
stomp.py's WebSocket transport over wss:// against the embedded broker with a CA the test makes (trustme),
sharing the AMQPS listener's certificate and verify options; every port is an ephemeral one (15673 is a
probe RabbitMQ's management port on the development machine)."""
import asyncio
import base64
import json
import queue
import socket
import ssl
import time
import urllib.request

import aiohttp
import pika
import pytest
import stomp
from stomp.adapter.ws import WSStompConnection

from warrenmq.testing import EmbeddedBroker

from support.pki import make_pki

trustme = pytest.importorskip("trustme")
CONNECT = "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(trustme, tmp_path_factory.mktemp("pki"))


def tls_options(pki, **extra):
    return dict(tls_port=0, tls_certfile=pki["server"], tls_keyfile=pki["server_key"], **extra)


def api(b, path):
    req = urllib.request.Request(b.management_url + path,
                                 headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
    return json.load(urllib.request.urlopen(req, timeout=5))


async def _converse(url, ctx, sends, n_replies, on_ready=None):
    got = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url, protocols=["v12.stomp"], ssl=ctx if ctx is not None else True) as ws:
            assert ws.protocol == "v12.stomp"
            for m in sends:
                await ws.send_str(m)
            while len(got) < n_replies:
                try:
                    msg = await ws.receive(timeout=5)
                except asyncio.TimeoutError:
                    break
                if msg.type != aiohttp.WSMsgType.TEXT:
                    got.append(msg.type)
                    break
                got.append(msg.data)
                if on_ready is not None and len(got) == 2:  # CONNECTED and the SUBSCRIBE's RECEIPT
                    await asyncio.get_running_loop().run_in_executor(None, on_ready)
    return got


def test_web_stomp_over_tls_with_aiohttp_and_stomp_py(pki):
    with EmbeddedBroker(web_stomp=True, management=True, **tls_options(pki)) as b:
        assert b.web_stomps_url.startswith("wss://127.0.0.1:") and b.web_stomps_url.endswith("/ws")
        port = b.app.web_stomps_port
        assert port not in (b.app.web_stomp_port, b.app.tls_port, b.port)
        ctx = ssl.create_default_context(cafile=pki["ca"])
        seen = {}

        def publish_and_look():
            with pika.BlockingConnection(pika.URLParameters(b.url)) as amqp:
                amqp.channel().basic_publish("amq.topic", "dash.d1", b"21.5")
            seen["conns"] = api(b, "/api/connections")

        got = asyncio.run(_converse(b.web_stomps_url, ctx, [
            CONNECT, "SUBSCRIBE\ndestination:/topic/dash.*\nid:1\nreceipt:r\n\n\0"], 3, publish_and_look))
        assert got[0].startswith("CONNECTED\n") and got[1] == "RECEIPT\nreceipt-id:r\n\n\0\n"
        assert got[2].startswith("MESSAGE\nsubscription:1\ndestination:/topic/dash.d1\n") and got[2].endswith(
            "\n\n21.5\0\n")
        assert [(c["protocol"], c["ssl"], c["port"]) for c in seen["conns"]] == [("Web STOMP 1.2", True, port)]

        # stomp.py's WebSocket transport over wss://, and plain ws:// beside it on the Web STOMP port
        secure = WSStompConnection([("localhost", port)], ws_path="/ws", vhost="/", try_loopback_connect=False)
        secure.set_ssl(for_hosts=[("localhost", port)], ca_certs=pki["ca"])
        got = queue.Queue()
        secure.set_listener("t", type("L", (stomp.ConnectionListener,), {"on_message": lambda s, f: got.put(f)})())
        secure.connect("guest", "guest", wait=True)
        secure.subscribe("/queue/wss-q", id="1", ack="client-individual", headers={"receipt": "s"})
        plain = WSStompConnection([("127.0.0.1", b.app.web_stomp_port)], ws_path="/ws", vhost="/")
        plain.connect("guest", "guest", wait=True)
        plain.send("/queue/wss-q", "from ws://")
        f = got.get(timeout=5)
        assert f.body == "from ws://"
        secure.ack(f.headers["ack"])
        secure.disconnect()
        plain.disconnect()


def _wss_refused(url, ctx) -> BaseException:
    async def go():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(url, ssl=ctx) as ws:
                await ws.send_str(CONNECT)
                msg = await ws.receive(timeout=5)
                assert not (msg.type == aiohttp.WSMsgType.TEXT and msg.data.startswith("CONNECTED")), msg
    with pytest.raises((aiohttp.ClientError, ssl.SSLError, OSError, asyncio.TimeoutError)) as e:
        asyncio.run(go())
    return e.value


def test_untrusted_server_and_plain_websocket_are_refused(pki):
    with EmbeddedBroker(web_stomp=True, **tls_options(pki)) as b:
        e = _wss_refused(b.web_stomps_url, ssl.create_default_context(cafile=pki["rogue"]))
        assert "certificate verify failed" in str(e)
        # ws:// (no TLS) on the TLS port: no WebSocket upgrade
        with pytest.raises(aiohttp.ClientError):
            asyncio.run(_converse(b.web_stomps_url.replace("wss://", "ws://"), None, [CONNECT], 1))
        # the listener serves the next client that trusts it
        got = asyncio.run(_converse(b.web_stomps_url, ssl.create_default_context(cafile=pki["ca"]), [CONNECT], 1))
        assert got[0].startswith("CONNECTED\n")


def test_verify_peer_applies_to_web_stomp_over_tls(pki):
    with EmbeddedBroker(web_stomp=True, **tls_options(pki, tls_cafile=pki["ca"], tls_verify_peer=True,
                                                      tls_fail_if_no_peer_cert=True)) as b:
        ctx = ssl.create_default_context(cafile=pki["ca"])
        ctx.load_cert_chain(pki["client"], pki["client_key"])
        assert asyncio.run(_converse(b.web_stomps_url, ctx, [CONNECT], 1))[0].startswith("CONNECTED\n")
        _wss_refused(b.web_stomps_url, ssl.create_default_context(cafile=pki["ca"]))  # no client certificate
        rogue = ssl.create_default_context(cafile=pki["ca"])
        rogue.load_cert_chain(pki["rogue"], pki["rogue_key"])
        _wss_refused(b.web_stomps_url, rogue)
        # plain Web STOMP is not subject to the TLS options
        assert asyncio.run(_converse(b.web_stomp_url, None, [CONNECT], 1))[0].startswith("CONNECTED\n")


@pytest.mark.parametrize("kind", ["web_stomps_port", "web_mqtts_port", "stomps_port", "mqtts_port"])
def test_a_silent_tls_client_is_dropped_after_the_handshake_timeout(pki, kind):
    protocol = {"web_stomps_port": "web_stomp", "web_mqtts_port": "web_mqtt", "stomps_port": "stomp",
                "mqtts_port": "mqtt"}[kind]
    with EmbeddedBroker(**{protocol: True}, **tls_options(pki, tls_handshake_timeout_ms=300)) as b:
        with socket.create_connection(("127.0.0.1", getattr(b.app, kind)), timeout=10) as s:
            start = time.monotonic()
            assert s.recv(100) == b""  # no ClientHello sent: the broker closes the socket
            assert time.monotonic() - start < 5  # (asyncio's default would be a minute)


def test_no_certificate_no_web_stomps_listener():
    with EmbeddedBroker(web_stomp=True) as b:
        assert b.app.web_stomps_port is None
        with pytest.raises(RuntimeError, match="Web STOMP over TLS is off"):
            b.web_stomps_url
