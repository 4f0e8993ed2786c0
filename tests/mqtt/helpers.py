"""A paho-mqtt client driven synchronously for tests: connect, wait for messages, with timeouts."""
import queue

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


class Client:
    def __init__(self, port, client_id="", version=mqtt.MQTTv311, clean=True, username=None, password=None,
                 keepalive=60, will=None, connect=True, properties=None):
        kw = {"clean_session": clean} if version != mqtt.MQTTv5 else {}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, **kw)
        self.version = version
        self.port = port
        self.messages: queue.Queue = queue.Queue()
        self.connack = queue.Queue()
        self.disconnects = queue.Queue()
        self.subacks = queue.Queue()
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_connect = lambda c, u, f, rc, p=None: self.connack.put((f, rc, p))
        self.c.on_disconnect = lambda c, u, f, rc, p=None: self.disconnects.put(rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, p=None: self.subacks.put(rcs)
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            self.c.will_set(*will)
        self.keepalive = keepalive
        self.clean = clean
        self.properties = properties
        if connect:
            self.connect()

    def connect(self, expect_ok=True):
        kw = {}
        if self.version == mqtt.MQTTv5:
            kw["clean_start"] = self.clean
            kw["properties"] = self.properties
        self.c.connect("127.0.0.1", self.port, self.keepalive, **kw)
        self.c.loop_start()
        flags, rc, props = self.connack.get(timeout=5)
        if expect_ok:
            assert not rc.is_failure, rc
        return flags, rc, props

    def subscribe(self, topic, qos=0):
        self.c.subscribe(topic, qos)
        return self.subacks.get(timeout=5)

    def publish(self, topic, payload, qos=0, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos, retain, properties)
        if qos:
            info.wait_for_publish(5)
            assert info.is_published()
        return info

    def get(self, timeout=5):
        return self.messages.get(timeout=timeout)

    def none(self, timeout=0.3):
        try:
            m = self.messages.get(timeout=timeout)
        except queue.Empty:
            return True
        raise AssertionError(f"unexpected message on {m.topic}: {m.payload!r}")

    def close(self):
        self.c.disconnect()
        self.c.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT (the will is published)."""
        self.c.loop_stop()
        self.c.socket().close()


def ws_client(port, client_id, version=mqtt.MQTTv311, tls=None):
    """A paho client over ws://127.0.0.1:port/ws (``tls``: tls_set's keywords, for wss://), looping in its
    thread; returns it, its messages and its events (the CONNACK's reason code first, then SUBACK codes
    and ("gone", rc) at a disconnect), or raises what the TLS handshake raised."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version, transport="websockets")
    c.ws_set_options(path="/ws")
    if tls is not None:
        c.tls_set(**tls)
    got, events = queue.Queue(), queue.Queue()
    c.on_message = lambda cl, u, m: got.put(m)
    c.on_connect = lambda cl, u, f, rc, p=None: events.put(rc)
    c.on_subscribe = lambda cl, u, mid, rcs, p=None: events.put(rcs)
    c.on_disconnect = lambda cl, u, f, rc, p=None: events.put(("gone", rc))
    c.connect("127.0.0.1", port, 30)
    c.loop_start()
    return c, got, events


def browser_round_trip(c, got, events, tcp) -> None:
    """What a browser does over Web MQTT beside a TCP client ``tcp`` subscribed to ``back/+``, with the
    retained ``dash/cfg`` = ``dark`` published: subscribes to ``dash/#`` (gets the retained message, then a
    live QoS 1 one) and publishes to ``back/1``, which ``tcp`` gets."""
    c.subscribe("dash/#", 1)
    events.get(timeout=5)
    m = got.get(timeout=5)  # the retained message, over the WebSocket
    assert (m.topic, m.payload, m.retain) == ("dash/cfg", b"dark", True)
    tcp.publish("dash/d1", b"21.5", 1)
    m = got.get(timeout=5)
    assert (m.topic, m.payload, m.qos) == ("dash/d1", b"21.5", 1)
    c.publish("back/1", b"from the browser", 1).wait_for_publish(5)
    assert tcp.get().payload == b"from the browser"
