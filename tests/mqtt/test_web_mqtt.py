"""Web MQTT: paho over WebSocket (subprotocol mqtt, path /ws) against the embedded broker, sharing
subscriptions, client ids and retained messages with the TCP listener."""
import queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from warrenmq.testing import EmbeddedBroker

from .helpers import Client


def ws_client(port, client_id, version=mqtt.MQTTv311):
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, transport="websockets")
    c.ws_set_options(path="/ws")
    got, acks = queue.Queue(), queue.Queue()
    c.on_message = lambda cl, u, m: got.put(m)
    c.on_connect = lambda cl, u, f, rc, p=None: acks.put(rc)
    c.on_subscribe = lambda cl, u, mid, rcs, p=None: acks.put(rcs)
    c.on_disconnect = lambda cl, u, f, rc, p=None: acks.put(("gone", rc))
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
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
            c, got, acks = ws_client(port, f"browser{version}", version)
            c.subscribe("dash/#", 1)
            acks.get(timeout=5)
            m = got.get(timeout=5)  # the retained message, over the WebSocket
            assert (m.topic, m.payload, m.retain) == ("dash/cfg", b"dark", True)
            tcp.publish("dash/d1", b"21.5", 1)
            m = got.get(timeout=5)
            assert (m.topic, m.payload, m.qos) == ("dash/d1", b"21.5", 1)
            c.publish("back/1", b"from the browser", 1).wait_for_publish(5)
            assert tcp.get().payload == b"from the browser"
            # the same client id over TCP takes the WebSocket session over
            other = Client(b.mqtt_port, f"browser{version}")
            assert acks.get(timeout=5)[0] == "gone"
            other.close()
            c.loop_stop()
        tcp.close()
