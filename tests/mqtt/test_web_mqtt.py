"""Web MQTT: paho over WebSocket (subprotocol mqtt, path /ws) against the embedded broker, sharing
subscriptions, client ids and retained messages with the TCP listener."""
import queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from warrenmq.testing import EmbeddedBroker

from .helpers import Client, browser_round_trip, ws_client


def connected_ws_client(port, client_id, version=mqtt.MQTTv311):
    c, got, acks = ws_client(port, client_id, version)
    assert not acks.get(timeout=5).is_failure
    return c, got, acks


def test_web_mqtt_with_tcp_mqtt():
    with EmbeddedBroker(web_mqtt=True) as b:
        assert b.web_mqtt_url.endswith("/ws")
        port = int(b.web_mqtt_url.rsplit(":", 1)[1].split("/")[0])
        tcp = Client(b.mqtt_port, "tcp")
        tcp.publish("dash/cfg", b"dark", 1, retain=True)
        tcp.subscribe("back/+", 0)
        for version in (mqtt.MQTTv311, mqtt.MQTTv5):
            c, got, acks = connected_ws_client(port, f"browser{version}", version)
            browser_round_trip(c, got, acks, tcp)
            # the same client id over TCP takes the WebSocket session over
            other = Client(b.mqtt_port, f"browser{version}")
            assert acks.get(timeout=5)[0] == "gone"
            other.close()
            c.loop_stop()
        tcp.close()


def test_a_web_mqtt_session_is_resumed_over_tcp_with_its_subscription_options():
    """A persistent session is the listener's, whichever transport: subscribed over WebSocket with MQTT 5
    options, resumed over TCP with them."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties
    from paho.mqtt.subscribeoptions import SubscribeOptions
    with EmbeddedBroker(web_mqtt=True) as b:
        port = int(b.web_mqtt_url.rsplit(":", 1)[1].split("/")[0])
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ws-sess", protocol=mqtt.MQTTv5,
                        transport="websockets")
        c.ws_set_options(path="/ws")
        acks = queue.Queue()
        c.on_connect = lambda cl, u, f, rc, p=None: acks.put(rc)
        c.on_subscribe = lambda cl, u, mid, rcs, p=None: acks.put(rcs)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 600
        c.connect("127.0.0.1", port, 30, properties=props)
        c.loop_start()
        assert not acks.get(timeout=5).is_failure
        sp = Properties(PacketTypes.SUBSCRIBE)
        sp.SubscriptionIdentifier = 42
        c.subscribe("wss/+", options=SubscribeOptions(qos=1, noLocal=True), properties=sp)
        assert [r.value for r in acks.get(timeout=5)] == [1]
        c.disconnect()
        c.loop_stop()
        tcp = Client(b.mqtt_port, "ws-sess", mqtt.MQTTv5, clean=False, connect=False,
                     properties=props)
        flags, _, _ = tcp.connect()
        assert flags.session_present
        tcp.publish("wss/own", b"own", 1)  # no local still holds
        other = Client(b.mqtt_port, "ws-sess-pub", mqtt.MQTTv5)
        other.publish("wss/x", b"x", 1)
        m = tcp.get()
        assert (m.payload, m.properties.SubscriptionIdentifier) == (b"x", [42])
        tcp.none(0.3)
        tcp.close()
        other.close()
