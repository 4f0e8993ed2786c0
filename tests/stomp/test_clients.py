"""STOMP over real sockets with stomp.py (1.0, 1.1, 1.2) and pika on the other side, against the embedded
broker; raw sockets where the exact bytes of an ERROR frame matter."""
import queue
import socket
import time

import pika
import pytest
import stomp

from warrenmq.testing import EmbeddedBroker

CLASSES = {"1.0": stomp.Connection10, "1.1": stomp.Connection11, "1.2": stomp.Connection12}


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker(stomp=True) as b:
        yield b


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.errors = queue.Queue()
        self.receipts = queue.Queue()

    def on_message(self, frame):
        self.messages.put(frame)

    def on_error(self, frame):
        self.errors.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])


def connect(broker, version="1.2", user="guest", password="guest", vhost="/", **kw):
    cls = CLASSES[version]
    args = {} if version == "1.0" else {"vhost": vhost}
    c = cls([("127.0.0.1", broker.stomp_port)], **args, **kw)
    listener = Listener()
    c.set_listener("t", listener)
    c.connect(user, password, wait=True, headers={"host": vhost} if version == "1.0" else {})
    return c, listener


def ack(c, version, frame):
    if version == "1.2":
        c.ack(frame.headers["ack"])
    elif version == "1.1":
        c.ack(frame.headers["message-id"], frame.headers["subscription"])
    else:
        c.ack(frame.headers["message-id"])


def nack(c, version, frame, requeue=True):
    extra = {"requeue": "true" if requeue else "false"}
    if version == "1.2":
        c.nack(frame.headers["ack"], **extra)
    else:
        c.nack(frame.headers["message-id"], frame.headers["subscription"], **extra)


def amqp(broker):
    conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    return conn, conn.channel()


def wait_for(pred, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_queue_send_subscribe_client_ack(broker, version):
    name = f"/queue/clients-{version}"
    c, l = connect(broker, version)
    c.subscribe(name, id="s1", ack="client-individual" if version != "1.0" else "client")
    c.send(name, "hello", headers={"foo": "bar"}, receipt="r1")
    assert l.receipts.get(timeout=5) == "r1"
    m = l.messages.get(timeout=5)
    assert m.body == "hello" and m.headers["foo"] == "bar" and m.headers["destination"] == name
    assert m.headers["redelivered"] == "false"
    q = broker.call(lambda: broker.broker.vhosts["/"].queues[name[7:]])
    assert q.durable and not q.auto_delete and q.unacked == 1
    ack(c, version, m)
    assert wait_for(lambda: broker.call(lambda: q.unacked) == 0)
    c.disconnect()
    assert not q.messages


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_nack_requeues_or_drops(broker, version):
    name = f"/queue/nack-{version}"
    c, l = connect(broker, version)
    c.subscribe(name, id="s1", ack="client-individual")
    c.send(name, "one")
    m = l.messages.get(timeout=5)
    nack(c, version, m)
    again = l.messages.get(timeout=5)
    assert again.body == "one" and again.headers["redelivered"] == "true"
    nack(c, version, again, requeue=False)
    c.send(name, "two", receipt="r")
    assert l.receipts.get(timeout=5) == "r"
    assert l.messages.get(timeout=5).body == "two"
    c.disconnect()


def test_client_ack_is_cumulative_and_disconnect_requeues(broker):
    c, l = connect(broker)
    c.subscribe("/queue/cumulative", id="s", ack="client")
    for i in range(3):
        c.send("/queue/cumulative", str(i))
    got = [l.messages.get(timeout=5) for _ in range(3)]
    c.ack(got[1].headers["ack"])  # the first two
    c.disconnect()
    q = broker.call(lambda: broker.broker.vhosts["/"].queues["cumulative"])
    assert wait_for(lambda: broker.call(lambda: not q.consumers))
    conn, ch = amqp(broker)
    assert ch.queue_declare("cumulative", durable=True, passive=True).method.message_count == 1
    assert ch.basic_get("cumulative", auto_ack=True)[2] == b"2"
    conn.close()


def test_prefetch_count_limits_unacked(broker):
    c, l = connect(broker)
    for i in range(5):
        c.send("/queue/prefetch", str(i))
    c.subscribe("/queue/prefetch", id="p", ack="client-individual", headers={"prefetch-count": "2"})
    first = [l.messages.get(timeout=5) for _ in range(2)]
    time.sleep(0.2)
    assert l.messages.empty()
    c.ack(first[0].headers["ack"])
    assert l.messages.get(timeout=5).body == "2"
    c.disconnect()


def test_topic_and_exchange_destinations_and_amqp_both_ways(broker):
    conn, ch = amqp(broker)
    c, l = connect(broker)
    c.subscribe("/topic/sensors.*", id="t")
    c.subscribe("/exchange/amq.direct/dk", id="e", receipt="sub")
    assert l.receipts.get(timeout=5) == "sub"
    ch.basic_publish("amq.topic", "sensors.a", b"from amqp", pika.BasicProperties(
        content_type="application/json", correlation_id="c1", reply_to="replies", priority=3, delivery_mode=2,
        message_id="m1", type="t1", app_id="app", timestamp=12, expiration="60000", content_encoding="gzip",
        headers={"h": "v", "n": 5, "flag": True}))
    m = l.messages.get(timeout=5)
    h = m.headers
    assert m.body == "from amqp" and h["destination"] == "/topic/sensors.a" and h["subscription"] == "t"
    assert (h["content-type"], h["correlation-id"], h["reply-to"], h["priority"], h["persistent"]) == (
        "application/json", "c1", "/reply-queue/replies", "3", "true")
    assert (h["amqp-message-id"], h["type"], h["app-id"], h["timestamp"], h["expiration"]) == (
        "m1", "t1", "app", "12", "60000")
    assert h["content-encoding"] == "gzip" and h["h"] == "v" and h["n"] == "5" and "flag" not in h
    ch.basic_publish("amq.direct", "dk", b"direct")
    m = l.messages.get(timeout=5)
    assert m.headers["destination"] == "/exchange/amq.direct/dk" and m.headers["subscription"] == "e"
    # STOMP -> AMQP: properties mapped, custom headers in the headers table
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", "to.amqp")
    c.send("/topic/to.amqp", "from stomp", content_type="text/plain", headers={
        "persistent": "true", "priority": "4", "correlation-id": "c2", "reply-to": "/queue/back",
        "amqp-message-id": "m2", "expiration": "50000", "x-custom": "yes"}, receipt="s")
    assert l.receipts.get(timeout=5) == "s"
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b"from stomp" and method.exchange == "amq.topic" and method.routing_key == "to.amqp"
    assert (props.content_type, props.delivery_mode, props.priority, props.correlation_id, props.reply_to,
            props.message_id, props.expiration) == ("text/plain", 2, 4, "c2", "/queue/back", "m2", "50000")
    assert props.headers == {"x-custom": "yes", "receipt": "s"}  # RabbitMQ 3.10 keeps receipt as a header too
    c.disconnect()
    conn.close()


def test_subscription_queues_as_rabbitmq_declares_them(broker):
    c, l = connect(broker)
    c.subscribe("/topic/durable.key", id="keep", headers={"durable": "true", "auto-delete": "false"})
    c.subscribe("/topic/transient.key", id="t", receipt="r")
    assert l.receipts.get(timeout=5) == "r"

    def subscription_queues():
        vh = broker.broker.vhosts["/"]
        return {q.name: (q.durable, q.auto_delete, q.exclusive, sorted(k for _, k, _ in q.bindings))
                for q in vh.queues.values() if q.name.startswith("stomp-subscription-")
                and any(k.endswith(".key") for _, k, _ in q.bindings)}
    qs = broker.call(subscription_queues)
    assert sorted(qs.values()) == [(False, True, False, ["transient.key"]), (True, False, False, ["durable.key"])]
    c.disconnect()
    time.sleep(0.2)
    after = broker.call(subscription_queues)
    assert list(after.values()) == [(True, False, False, ["durable.key"])]  # only the durable one is left
    conn, ch = amqp(broker)
    ch.basic_publish("amq.topic", "durable.key", b"while away")
    conn.close()
    c, l = connect(broker)
    c.subscribe("/topic/durable.key", id="keep", headers={"durable": "true", "auto-delete": "false"})
    assert l.messages.get(timeout=5).body == "while away"
    c.unsubscribe("keep", headers={"durable": "true"})
    c.disconnect()
    assert wait_for(lambda: not broker.call(subscription_queues))


def test_temp_queue_reply_to(broker):
    server, sl = connect(broker)
    server.subscribe("/queue/rpc", id="srv")
    client, cl = connect(broker)
    client.send("/queue/rpc", "ping", headers={"reply-to": "/temp-queue/answers"})
    req = sl.messages.get(timeout=5)
    assert req.headers["reply-to"].startswith("/reply-queue/amq.gen-")
    server.send(req.headers["reply-to"], "pong")
    resp = cl.messages.get(timeout=5)
    assert resp.body == "pong" and resp.headers["subscription"] == "/temp-queue/answers"
    client.disconnect()
    server.disconnect()


def test_transactions(broker):
    c, l = connect(broker)
    c.subscribe("/queue/txq", id="s", ack="client-individual")
    tx = c.begin()
    c.send("/queue/txq", "in tx", transaction=tx)
    time.sleep(0.2)
    assert l.messages.empty()
    c.commit(tx)
    m = l.messages.get(timeout=5)
    tx2 = c.begin()
    c.ack(m.headers["ack"], transaction=tx2)
    c.abort(tx2)
    c.ack(m.headers["ack"], receipt="acked")
    assert l.receipts.get(timeout=5) == "acked"
    q = broker.call(lambda: broker.broker.vhosts["/"].queues["txq"])
    assert wait_for(lambda: broker.call(lambda: q.unacked) == 0)
    c.disconnect()


def test_heartbeats_negotiated_and_sent(broker):
    # 1 s each way, watched for 4 s: a client silent for twice the interval is dropped, and shorter
    # intervals lost their heart-beats to scheduling on a loaded machine (the client's is a thread)
    c, l = connect(broker, heartbeats=(1000, 1000))
    time.sleep(4.0)
    assert c.is_connected()
    c.disconnect()


def test_server_sends_heartbeats_and_drops_a_silent_client(broker):
    s = socket.create_connection(("127.0.0.1", broker.stomp_port))
    s.settimeout(3)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:0,100\n\n\0")
    data = b""
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        data += s.recv(4096)
    assert b"heart-beat:100,0" in data
    assert data.split(b"\0", 1)[1].count(b"\n") >= 5  # an EOL about every 100 ms of silence
    s.close()
    s = socket.create_connection(("127.0.0.1", broker.stomp_port))
    s.settimeout(3)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\nheart-beat:100,0\n\n\0")
    start = time.monotonic()
    data = b""
    while True:
        d = s.recv(4096)
        if not d:
            break
        data += d
    assert data.startswith(b"CONNECTED") and time.monotonic() - start < 2.0  # silent past 2 x 100 ms: dropped
    s.close()


def raw(broker, *frames, connect=True, wait=0.3):
    s = socket.create_connection(("127.0.0.1", broker.stomp_port))
    s.settimeout(2)
    if connect:
        s.sendall(b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0")
    for f in frames:
        s.sendall(f)
    data = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except socket.timeout:
        pass
    s.close()
    return data


def error_of(data: bytes) -> tuple:
    i = data.index(b"ERROR\n")
    head, _, rest = data[i:].partition(b"\n\n")
    headers = dict(line.split(":", 1) for line in head.decode().split("\n")[1:])
    return headers["message"], rest[:int(headers["content-length"])].decode()


@pytest.mark.parametrize("frame, expected", [
    (b"SEND\ndestination:/foo/bar\n\nhi\0", ("Unknown destination", "'/foo/bar' is not a valid destination.\nValid "
     "destination types are: /temp-queue, /exchange, /topic, /queue, /amq/queue, /reply-queue/.\n")),
    (b"SUBSCRIBE\ndestination:/queue\nid:1\n\n\0", ("Invalid destination", "'' is not a valid queue destination\n")),
    (b"SEND\ndestination:/exchange/nosuch/k\n\nhi\0", ("not_found", "NOT_FOUND - no exchange 'nosuch' in vhost '/'")),
    (b"SUBSCRIBE\ndestination:/amq/queue/nosuch\nid:1\n\n\0", ("not_found", "NOT_FOUND - no queue 'nosuch' in vhost '/'")),
    (b"SEND\n\n\0", ("Missing destination", "\"SEND\" must include a 'destination' header\n")),
    (b"SEND\ndestination:/queue/x\nmessage-id:1\n\n\0", ("Invalid header", "'message-id' is not allowed on 'SEND'.\n")),
    (b"FOO\n\n\0", ("Bad command", 'Could not interpret command "FOO"\n')),
    (b"ACK\nid:nope\n\n\0", ("Invalid header", '"ACK" must include a valid "id" header\n')),
])
def test_error_frames_as_rabbitmq(broker, frame, expected):
    data = raw(broker, frame)
    assert data.startswith(b"CONNECTED\n")
    assert error_of(data) == expected


def test_bad_login_and_vhost(broker):
    data = raw(broker, b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:bad\n\n\0", connect=False)
    assert error_of(data) == ("Bad CONNECT", "Access refused for user 'guest'\n")
    data = raw(broker, b"CONNECT\naccept-version:1.2\nhost:none\nlogin:guest\npasscode:guest\n\n\0", connect=False)
    assert error_of(data) == ("Bad CONNECT", "Virtual host 'none' access denied")


def test_permissions_apply(broker):
    b = broker.broker
    broker.call(lambda: b.add_user("stomp-limited", "pw"))
    broker.call(lambda: b.set_permissions("stomp-limited", "/", "^$", "^$", ".*"))
    try:
        s = socket.create_connection(("127.0.0.1", broker.stomp_port))
        data = raw(broker, b"CONNECT\naccept-version:1.2\nhost:/\nlogin:stomp-limited\npasscode:pw\n\n\0"
                   b"SEND\ndestination:/topic/x\n\nhi\0", connect=False)
        s.close()
        assert error_of(data) == ("access_refused", "ACCESS_REFUSED - access to exchange 'amq.topic' in vhost '/' "
                                  "refused for user 'stomp-limited'")
        data = raw(broker, b"CONNECT\naccept-version:1.2\nhost:/\nlogin:stomp-limited\npasscode:pw\n\n\0"
                   b"SUBSCRIBE\ndestination:/queue/forbidden\nid:1\n\n\0", connect=False)
        assert error_of(data) == ("access_refused", "ACCESS_REFUSED - access to queue 'forbidden' in vhost '/' "
                                  "refused for user 'stomp-limited'")
    finally:
        broker.call(lambda: b.delete_user("stomp-limited"))


def test_malformed_frame_closes_with_error(broker):
    data = raw(broker, b"SEND\nno-colon\n\n\0")
    assert error_of(data)[0] == "Bad frame"


def test_management_lists_and_closes_stomp_connections():
    import base64
    import json
    import urllib.parse
    import urllib.request
    auth = {"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()}
    with EmbeddedBroker(stomp=True, management=True) as b:
        s = socket.create_connection(("127.0.0.1", b.stomp_port))
        s.settimeout(3)
        s.sendall(b"CONNECT\naccept-version:1.1,1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0")
        assert s.recv(4096).startswith(b"CONNECTED\n")
        req = urllib.request.Request(b.management_url + "/api/connections", headers=auth)
        (conn,) = json.load(urllib.request.urlopen(req))
        assert (conn["protocol"], conn["type"], conn["channels"], conn["user"], conn["vhost"]) == (
            "STOMP 1.2", "direct", 1, "guest", "/")
        assert conn["client_properties"] == {"product": "STOMP client"}
        req = urllib.request.Request(b.management_url + "/api/connections/" + urllib.parse.quote(conn["name"], safe=""),
                                     method="DELETE", headers={**auth, "X-Reason": "bye"})
        assert urllib.request.urlopen(req).status == 204
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        assert error_of(data) == ("AMQP channel died", 'Reason: {shutdown,\n            {connection_closing,'
                                  '{server_initiated_close,320,"bye"}}}')
        s.close()
