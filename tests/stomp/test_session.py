"""The STOMP session state machine on a real domain broker, without sockets: frames in, frames out."""
import pytest

from warrenmq.broker.broker import Broker
from warrenmq.config import BrokerConfig
from warrenmq.stomp.codec import FrameReader
from warrenmq.stomp.session import StompSession, parse_destination, StompError


@pytest.fixture
def broker():
    b = Broker(BrokerConfig(data_dir=""))
    yield b
    b.close()


def frames_of(session):
    r = FrameReader()
    r.version = session.version
    return r.feed(session.take_output())


def connect(broker, version="1.2", **headers):
    s = StompSession(broker, ("127.0.0.1", 5555))
    hs = {"accept-version": version, "host": "/", "login": "guest", "passcode": "guest", **headers}
    s.receive_data(b"CONNECT\n" + "".join(f"{k}:{v}\n" for k, v in hs.items()).encode() + b"\n\0")
    return s


def test_connected_frame_negotiates_version_and_heartbeats(broker):
    s = connect(broker, "1.0,1.1", **{"heart-beat": "1000,2000"})
    (f,) = frames_of(s)
    assert f.command == "CONNECTED"
    assert f.get("version") == "1.1" and f.get("heart-beat") == "2000,1000"
    assert f.get("server") == "RabbitMQ/3.10.8" and f.get("session").startswith("session-")
    assert (s.heartbeat_out, s.heartbeat_in) == (2000, 1000)
    assert s in broker.sessions


@pytest.mark.parametrize("headers, body", [
    ({"passcode": "nope"}, "Access refused for user 'guest'\n"),
    ({"host": "nope"}, "Virtual host 'nope' access denied"),
])
def test_refused_connect(broker, headers, body):
    s = connect(broker, **headers)
    (f,) = frames_of(s)
    assert (f.command, f.get("message"), f.body.decode()) == ("ERROR", "Bad CONNECT", body)
    assert s.closing


def test_frame_before_connect(broker):
    s = StompSession(broker)
    s.receive_data(b"SEND\ndestination:/queue/x\n\n\0")
    (f,) = frames_of(s)
    assert f.get("message") == "Illegal command" and s.closing


def test_send_subscribe_ack_through_the_domain(broker):
    s = connect(broker)
    frames_of(s)
    s.receive_data(b"SEND\ndestination:/queue/work\ncontent-type:text/plain\nfoo:bar\nreceipt:r1\n\nhi\0")
    assert [f.command for f in frames_of(s)] == ["RECEIPT"]
    q = broker.vhosts["/"].queues["work"]
    assert q.durable and len(q.messages) == 1
    s.receive_data(b"SUBSCRIBE\ndestination:/queue/work\nid:0\nack:client-individual\n\n\0")
    (m,) = frames_of(s)
    assert m.command == "MESSAGE" and m.body == b"hi"
    assert m.get("foo") == "bar" and m.get("content-type") == "text/plain" and m.get("subscription") == "0"
    assert q.unacked == 1
    s.receive_data(b"ACK\nid:" + m.get("ack").encode() + b"\n\n\0")
    assert q.unacked == 0 and not q.messages


def test_transaction_holds_sends_until_commit(broker):
    s = connect(broker)
    s.receive_data(b"BEGIN\ntransaction:t\n\n\0SEND\ndestination:/queue/tx\ntransaction:t\n\nx\0")
    assert "tx" not in broker.vhosts["/"].queues  # the SEND (and its queue's declaration) waits for COMMIT
    s.receive_data(b"COMMIT\ntransaction:t\n\n\0")
    assert len(broker.vhosts["/"].queues["tx"].messages) == 1
    s.receive_data(b"ABORT\ntransaction:t\n\n\0")
    assert frames_of(s)[-1].get("message") == "Bad transaction"


def test_close_requeues_unacked(broker):
    s = connect(broker)
    s.receive_data(b"SEND\ndestination:/queue/rq\n\nx\0SUBSCRIBE\ndestination:/queue/rq\nack:client\nid:1\n\n\0")
    q = broker.vhosts["/"].queues["rq"]
    assert q.unacked == 1
    s.connection_lost()
    assert q.unacked == 0 and len(q.messages) == 1 and s not in broker.sessions


def test_parse_destination():
    assert parse_destination("/exchange/amq.direct/a/b") == ("exchange", "amq.direct", "a/b")
    assert parse_destination("/exchange/x") == ("exchange", "x", "")
    assert parse_destination("/amq/queue/q") == ("amqqueue", "q", "q")
    with pytest.raises(StompError) as e:
        parse_destination("/foo/bar")
    assert e.value.message == "Unknown destination"
    with pytest.raises(StompError) as e:
        parse_destination("/queue")
    assert e.value.detail == "'' is not a valid queue destination\n"


def test_send_receipt_is_the_publisher_confirm(tmp_path):
    b = Broker(BrokerConfig(data_dir=str(tmp_path / "data")))
    try:
        s = connect(b)
        frames_of(s)
        s.receive_data(b"SEND\ndestination:/queue/durable\npersistent:true\nreceipt:p\n\nx\0"
                       b"SEND\ndestination:/queue/durable\nreceipt:t\n\ny\0")
        assert frames_of(s) == []  # the persistent one waits for its store batch, the transient one behind it
        epoch = b.store.write_pending()
        b.store.sync()
        b.store_synced(epoch)
        assert [f.get("receipt-id") for f in frames_of(s)] == ["p", "t"]
    finally:
        b.close()


def test_refused_send_with_receipt_gets_its_receipt(broker):
    s = connect(broker)
    frames_of(s)
    s.receive_data(b"SEND\ndestination:/queue/full\nx-max-length:0\nx-overflow:reject-publish\nreceipt:r\n\nx\0")
    (f,) = frames_of(s)
    assert f.command == "RECEIPT" and f.get("receipt-id") == "r"  # as RabbitMQ 3.10.8 answers a nacked SEND
    q = broker.vhosts["/"].queues["full"]
    assert q.arguments == {"x-max-length": 0, "x-overflow": "reject-publish"}  # x-* headers: queue arguments
    assert not q.messages


def test_a_publishing_session_is_not_read_while_an_alarm_is_on(broker):
    class Reader:
        paused = False

        def pause_reading(self):
            self.paused = True

        def resume_reading(self):
            self.paused = False
    from warrenmq.broker.alarms import Alarm
    s = connect(broker)
    s.reader = r = Reader()
    broker.set_alarm(Alarm.MEMORY, True)
    assert s.state == "blocking" and not r.paused  # not publishing: still read
    s.receive_data(b"SEND\ndestination:/topic/x\n\nx\0")
    assert s.state == "blocked" and r.paused
    broker.set_alarm(Alarm.MEMORY, False)
    assert s.state == "running" and not r.paused


def test_connection_limits_count_stomp_connections(broker):
    broker.set_vhost_limits("/", {"max-connections": 1})
    first = connect(broker)
    assert frames_of(first)[0].command == "CONNECTED"
    second = connect(broker)
    (f,) = frames_of(second)
    assert (f.get("message"), f.body) == ("Bad CONNECT", b"Virtual host '/' access denied")  # RabbitMQ's words
    first.connection_lost()
    assert frames_of(connect(broker))[0].command == "CONNECTED"


def test_durable_subscription_queue_named_as_rabbitmq_names_it(broker):
    from warrenmq.stomp.session import durable_queue_name
    # names RabbitMQ 3.10.8 gave these subscriptions (probed)
    assert durable_queue_name("stomp.t2", "b") == "stomp-subscription-99MXcE5LgC_J5_DmlOv0JQ"
    assert durable_queue_name("stomp.dur.ü", "sub-é:1") == "stomp-subscription-mkz0xdWZE6XU8AYg6RlCxA"
    s = connect(broker)
    s.receive_data("SUBSCRIBE\ndestination:/topic/stomp.dur.ü\nid:sub-é\\c1\ndurable:true\nauto-delete:false\n\n\0"
                   .encode())
    q = broker.vhosts["/"].queues["stomp-subscription-mkz0xdWZE6XU8AYg6RlCxA"]
    assert q.durable and not q.auto_delete


# (destination, extra headers) -> (durable, auto_delete, exclusive) of the queue, as RabbitMQ 3.10.8's STOMP
# plugin declared it (probed with SEND and SUBSCRIBE frames and read back from its management API)
DECLARED = [
    ("SEND", "/queue/q", "", (True, False, False)),
    ("SEND", "/queue/q", "durable:false\n", (False, True, True)),
    ("SEND", "/queue/q", "persistent:false\n", (False, True, True)),
    ("SEND", "/queue/q", "auto-delete:true\n", (True, True, False)),
    ("SUBSCRIBE", "/queue/q", "", (True, False, False)),
    ("SUBSCRIBE", "/queue/q", "durable:False\n", (False, True, True)),
    ("SUBSCRIBE", "/queue/q", "auto-delete:true\n", (True, True, False)),
    ("SUBSCRIBE", "/queue/q", "exclusive:true\n", (False, False, True)),
    ("SUBSCRIBE", "/queue/q", "durable:false\nauto-delete:false\n", (False, False, True)),
    ("SUBSCRIBE", "/queue/q", "durable:false\nexclusive:false\n", (False, True, False)),
    ("SUBSCRIBE", "/topic/k", "", (False, True, False)),
    ("SUBSCRIBE", "/topic/k", "durable:true\n", (True, True, False)),
    ("SUBSCRIBE", "/topic/k", "persistent:true\n", (True, True, False)),
    ("SUBSCRIBE", "/topic/k", "durable:true\nauto-delete:false\n", (True, False, False)),
    ("SUBSCRIBE", "/topic/k", "auto-delete:false\n", (False, False, False)),
    ("SUBSCRIBE", "/topic/k", "exclusive:true\n", (False, True, True)),
    ("SUBSCRIBE", "/exchange/amq.direct/k", "", (False, True, False)),
    ("SUBSCRIBE", "/exchange/amq.direct/k", "durable:true\n", (True, True, False)),
    ("SUBSCRIBE", "/exchange/amq.direct/k", "durable:true\nauto-delete:false\n", (True, False, False)),
    ("SUBSCRIBE", "/exchange/amq.direct/k", "exclusive:true\n", (False, True, True)),
]


@pytest.mark.parametrize("command,dest,extra,flags", DECLARED)
def test_queue_declared_with_rabbitmqs_flags(broker, command, dest, extra, flags):
    s = connect(broker)
    s.receive_data(f"{command}\ndestination:{dest}\nid:s1\n{extra}\nx\0".encode())
    assert [f.command for f in frames_of(s)] == ["CONNECTED"]
    made = [q for q in broker.vhosts["/"].queues.values() if not q.name.startswith("amq.")]
    assert [(q.durable, q.auto_delete, q.exclusive) for q in made] == [flags]
    if flags[1] or flags[2]:  # auto-delete (consumed, or SEND's exclusive one) or exclusive: gone with the connection
        s.connection_lost()
        assert [q.name for q in broker.vhosts["/"].queues.values() if not q.name.startswith("amq.")] == \
            ([] if flags[2] or command == "SUBSCRIBE" else [made[0].name])


def test_durable_exchange_subscription_named_as_rabbitmq_names_it(broker):
    from warrenmq.stomp.session import durable_queue_name
    s = connect(broker)
    s.receive_data(b"SUBSCRIBE\ndestination:/exchange/amq.fanout\nid:x1\ndurable:true\nauto-delete:false\n\n\0")
    assert durable_queue_name("", "x1") in broker.vhosts["/"].queues
    s.receive_data(b"SUBSCRIBE\ndestination:/exchange/amq.direct/k\ndurable:true\n\n\0")  # no id
    errors = [f for f in frames_of(s) if f.command == "ERROR"]
    assert errors and errors[0].get("message") == "Missing Header"


@pytest.mark.parametrize("header", ["durable:yes", "auto-delete:1", "exclusive:bogus"])
def test_a_declare_flag_that_is_not_a_boolean_is_a_processing_error(broker, header):
    s = connect(broker)
    s.receive_data(f"SUBSCRIBE\ndestination:/queue/q\nid:1\n{header}\n\n\0".encode())
    assert [(f.command, f.get("message")) for f in frames_of(s)][1:] == [("ERROR", "Processing error")]
    assert "q" not in broker.vhosts["/"].queues


@pytest.mark.parametrize("command", ["SEND", "SUBSCRIBE"])
def test_temp_queue_is_only_for_reply_to(broker, command):
    s = connect(broker)
    s.receive_data(f"{command}\ndestination:/temp-queue/t\nid:1\n\nx\0".encode())
    err = frames_of(s)[1]
    assert (err.command, err.get("message")) == ("ERROR", "Invalid destination")
    assert err.body == f"'/temp-queue/t' is not a valid destination for '{command}'\n".encode()


from hypothesis import given, settings, strategies as st  # noqa: E402

_pieces = st.sampled_from([b"SEND\n", b"SUBSCRIBE\n", b"ACK\n", b"NACK\n", b"BEGIN\n", b"COMMIT\n", b"\n", b"\0",
                           b"destination:/queue/fz\n", b"destination:/topic/a\n", b"id:1\n", b"ack:client\n",
                           b"content-length:3\n", b"transaction:t\n", b"receipt:r\n", b"\\c", b"\\x", b":",
                           b"priority:9\n", b"x-max-length:1\n", b"DISCONNECT\n", b"\r\n"])


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(st.one_of(_pieces, st.binary(max_size=8)), max_size=40))
def test_any_input_gives_frames_or_an_error_never_an_exception(chunks):
    b = Broker(BrokerConfig(data_dir=""))
    try:
        s = connect(b)
        s.reader_.max_header_bytes = 256
        for c in chunks:
            s.receive_data(c)
            assert len(s.reader_.buf) <= 256 + 8 + 64  # bounded: nothing grows past the limits
        out = s.take_output()
        if b"\nERROR\n" in out or out.startswith(b"ERROR"):
            assert s.closing
        s.connection_lost()
        assert not b.sessions
        for q in b.vhosts["/"].queues.values():
            assert q.unacked == 0 and not q.consumers  # everything given back
    finally:
        b.close()


def test_a_closed_session_stays_in_the_vhost_totals(broker):
    stats = broker.vhosts["/"].stats
    before = stats.churn(0, 0)
    s = connect(broker)
    s.receive_data(b"SEND\ndestination:/topic/x\n\nhello\0")
    s.connection_lost()
    after = stats.churn(0, 0)
    assert after[0] == before[0] + 1 and after[1] == before[1] + 1  # created and closed, never going down
    assert after[2] == before[2] + 1  # its channel too
