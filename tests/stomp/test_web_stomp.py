"""Web STOMP: the STOMP session over WebSocket, with aiohttp's client (raw frames, subprotocols) and
stomp.py's WebSocket transport, and an AMQP publisher on the other side."""
import asyncio
import queue
import time

import aiohttp
import pika
import pytest
import stomp
from stomp.adapter.ws import WSStompConnection

from warrenmq.testing import EmbeddedBroker


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker(web_stomp=True) as b:
        yield b


async def _converse(url, protocols, sends, n_replies):
    got = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(url, protocols=protocols) as ws:
            chosen = ws.protocol
            for m in sends:
                if isinstance(m, bytes):
                    await ws.send_bytes(m)
                else:
                    await ws.send_str(m)
            while len(got) < n_replies:
                try:
                    msg = await ws.receive(timeout=3)
                except asyncio.TimeoutError:
                    break
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    got.append(msg.data)
                else:
                    got.append(msg.type)
                    break
    return chosen, got


def converse(url, protocols, sends, n_replies):
    return asyncio.run(_converse(url, protocols, sends, n_replies))


CONNECT = "CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0"


def test_subprotocol_and_one_frame_per_message(broker):
    chosen, got = converse(broker.web_stomp_url, ["v12.stomp", "v11.stomp"], [
        CONNECT, "SUBSCRIBE\ndestination:/topic/ws.a\nid:1\nreceipt:r\n\n\0SEND\ndestination:/topic/ws.a\n\nhi\0"], 3)
    assert chosen == "v12.stomp"
    assert got[0].startswith("CONNECTED\n") and got[1] == "RECEIPT\nreceipt-id:r\n\n\0\n"
    assert got[2].startswith("MESSAGE\nsubscription:1\ndestination:/topic/ws.a\n") and got[2].endswith("\n\nhi\0\n")


def test_no_subprotocol_and_frames_split_across_messages(broker):
    chosen, got = converse(broker.web_stomp_url, [], [CONNECT[:10], CONNECT[10:], "SEND\ndestination:/foo\n\n\0"], 3)
    assert chosen is None
    assert got[0].startswith("CONNECTED\n") and got[1].startswith("ERROR\nmessage:Unknown destination\n")
    assert got[2] == aiohttp.WSMsgType.CLOSE  # closed after the ERROR, as RabbitMQ does


def test_binary_body_goes_as_a_binary_message(broker):
    _, got = converse(broker.web_stomp_url, ["v12.stomp"], [
        CONNECT, "SUBSCRIBE\ndestination:/topic/ws.b\nid:1\nreceipt:r\n\n\0",
        b"SEND\ndestination:/topic/ws.b\ncontent-length:2\n\n\xff\x00\0"], 3)
    assert isinstance(got[2], bytes) and got[2].endswith(b"\n\n\xff\x00\0\n")


def test_stomp_py_over_websocket_with_amqp_publisher(broker):
    port = int(broker.web_stomp_url.rsplit(":", 1)[1].split("/")[0])
    c = WSStompConnection([("127.0.0.1", port)], ws_path="/ws", vhost="/")
    got = queue.Queue()

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            got.put(frame)
    c.set_listener("l", L())
    c.connect("guest", "guest", wait=True)
    c.subscribe("/exchange/amq.topic/devices.*", id="d", ack="client-individual")
    time.sleep(0.3)
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    conn.channel().basic_publish("amq.topic", "devices.7", b"reading", pika.BasicProperties(content_type="text/plain"))
    conn.close()
    m = got.get(timeout=5)
    assert m.body == "reading" and m.headers["destination"] == "/topic/devices.7"
    assert m.headers["content-type"] == "text/plain"
    c.ack(m.headers["ack"])
    c.disconnect()


def test_heartbeats_over_websocket(broker):
    async def run():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(broker.web_stomp_url, protocols=["v12.stomp"]) as ws:
                await ws.send_str(CONNECT.replace("\n\n\0", "\nheart-beat:0,100\n\n\0"))
                first = await ws.receive(timeout=3)
                beats = 0
                end = time.monotonic() + 1.0
                while time.monotonic() < end:
                    try:
                        msg = await ws.receive(timeout=0.5)
                    except asyncio.TimeoutError:
                        continue
                    if msg.type == aiohttp.WSMsgType.TEXT and msg.data == "\n":
                        beats += 1
                return first.data, beats
    first, beats = asyncio.run(run())
    assert "heart-beat:100,0" in first
    assert beats >= 4  # an EOL about every 100 ms of silence


def test_management_lists_web_stomp_connections():
    import base64
    import json
    import urllib.request
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}

    async def run(b):
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(b.web_stomp_url, protocols=["v12.stomp"]) as ws:
                await ws.send_str(CONNECT)
                await ws.receive(timeout=3)
                req = urllib.request.Request(b.management_url + "/api/connections", headers=auth)
                return await asyncio.get_running_loop().run_in_executor(
                    None, lambda: json.load(urllib.request.urlopen(req)))
    with EmbeddedBroker(web_stomp=True, management=True) as b:
        (conn,) = asyncio.run(run(b))
    assert (conn["protocol"], conn["type"], conn["channels"]) == ("Web STOMP 1.2", "direct", 1)  # as RabbitMQ 3.10
    assert conn["port"] == int(b.web_stomp_url.rsplit(":", 1)[1].split("/")[0])
