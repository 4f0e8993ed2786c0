"""The broker's log as an operator reads it (docs/logging.md): RabbitMQ 3.10's lines for a connection's
life, refused logins, errors, forced closes, deleted users and vhosts, and alarms; ``--log-file`` (reopened
after logrotate moves it) and ``--log-format json``.

The expected texts were probed on RabbitMQ 3.10.8 (its log for the same client actions)."""
import json
import logging
import os
import re
import socket
import time
import urllib.parse
import urllib.error
import urllib.request
import base64

import pika
import pytest

from warrenmq.broker.alarms import Alarm
from warrenmq.broker.broker import Broker
from warrenmq.config import BrokerConfig
from warrenmq.logs import JsonFormatter, TextFormatter
from warrenmq.testing.embedded import EmbeddedBroker

from support.process import BrokerProcess

CONN = r"<0\.\d+\.0>"
ADDR = r"127\.0\.0\.1:\d+ -> 127\.0\.0\.1:\d+"
PREFIX = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}[+-]\d\d:\d\d \[(\w+)\] (\S+) (.*)$")


def params(port, user="guest", password="guest", vhost="/", name=None):
    props = {"connection_name": name} if name else None
    return pika.ConnectionParameters("127.0.0.1", port, vhost, pika.PlainCredentials(user, password),
                                     client_properties=props, connection_attempts=1)


def read_lines(path):
    """``(level, who, text)`` of each line of a text log."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = PREFIX.match(line.rstrip("\n"))
            assert m, f"not RabbitMQ's line shape: {line!r}"
            out.append(m.groups())
    return out


def wait_for(path, pattern, timeout=5.0):
    deadline = time.monotonic() + timeout
    while True:
        text = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
        if re.search(pattern, text, re.M):
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not logged:\n{text}")
        time.sleep(0.05)


def test_a_connections_life_is_logged_with_rabbitmqs_lines(tmp_path):
    log = str(tmp_path / "warrenmq.log")
    with BrokerProcess(str(tmp_path / "data"), "--log-file", log) as b:
        for kw in ({"password": "wrong"}, {"user": "nobody", "password": "x"}):
            with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
                pika.BlockingConnection(params(b.port, **kw))
            assert "For details see the broker logfile" in str(e.value)
        with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
            pika.BlockingConnection(params(b.port, vhost="nowhere"))
        pika.BlockingConnection(params(b.port, name="orders-api")).close()

        killed = pika.BlockingConnection(params(b.port, name="killed"))
        sock = killed._impl._transport._sock
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

        c = pika.BlockingConnection(params(b.port, name="faulty"))
        with pytest.raises(pika.exceptions.ChannelClosedByBroker):
            c.channel().queue_declare("amq.reserved")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
            c.channel().exchange_declare("x", "nonsense-type")

        last = pika.BlockingConnection(params(b.port, name="at-shutdown"))
        wait_for(log, r"at-shutdown\): user 'guest' authenticated")
        assert b.stop() == 0
        del last
    lines = read_lines(log)
    # the start-up probe of BrokerProcess (a TCP connect that sends nothing) is not logged, as in RabbitMQ
    assert "client unexpectedly closed" not in lines[1][2]
    text = "\n".join(f"[{lvl}] {who} {msg}" for lvl, who, msg in lines)

    def has(level, pattern, who=CONN):
        assert re.search(rf"^\[{level}\] {who} {pattern}$", text, re.M), f"{pattern!r} not in:\n{text}"

    has("info", rf"accepting AMQP connection {CONN} \({ADDR}\)")
    # refused logins: the reason, which the client was told to look for here
    has("error", rf"Error on AMQP connection {CONN} \({ADDR}, state: starting\):")
    has("error", r"PLAIN login refused: user 'guest' - invalid credentials")
    has("error", r"PLAIN login refused: user 'nobody' - invalid credentials")
    has("info", rf"closing AMQP connection {CONN} \({ADDR}\)")
    # a vhost that does not exist
    has("error", rf"Error on AMQP connection {CONN} \({ADDR}, user: 'guest', state: opening\):")
    has("error", r"vhost nowhere not found")
    has("info", rf"closing AMQP connection {CONN} \({ADDR}, vhost: 'none', user: 'guest'\)")
    # a normal life, with the client-provided name
    has("info", rf"connection {CONN} \({ADDR}\) has a client-provided name: orders-api")
    has("info", rf"connection {CONN} \({ADDR} - orders-api\): user 'guest' authenticated and granted access to "
                r"vhost '/'")
    has("info", rf"closing AMQP connection {CONN} \({ADDR} - orders-api, vhost: '/', user: 'guest'\)")
    # the client vanished
    has("warning", rf"closing AMQP connection {CONN} \({ADDR} - killed, vhost: '/', user: 'guest'\):")
    has("warning", r"client unexpectedly closed TCP connection")
    # errors: a channel's and the connection's
    has("error", rf"Channel error on connection {CONN} \({ADDR}, vhost: '/', user: 'guest'\), channel 1:")
    has("error", r"operation queue\.declare caused a channel exception access_refused: queue name "
                 r"'amq\.reserved' contains reserved prefix 'amq\.\*'")
    has("error", rf"Error on AMQP connection {CONN} \({ADDR} - faulty, vhost: '/', user: 'guest', "
                 r"state: running\), channel \d+:")
    has("error", r" operation exchange\.declare caused a connection exception command_invalid: "
                 r"\"unknown exchange type 'nonsense-type'\"")
    # shutdown forces the open connection closed
    has("info", rf"Closing connection {CONN} because \"broker forced connection closure with reason "
                r"'shutdown'\"")

    # every line of one connection carries its id: the killed one's lines, in order
    ids = {who for lvl, who, msg in lines if "has a client-provided name: killed" in msg}
    assert len(ids) == 1
    mine = [msg for lvl, who, msg in lines if who in ids]
    assert [m.split(" (")[0] for m in mine] == [
        f"accepting AMQP connection {next(iter(ids))}", f"connection {next(iter(ids))}",
        f"connection {next(iter(ids))}", f"closing AMQP connection {next(iter(ids))}",
        "client unexpectedly closed TCP connection"]


def test_json_lines_carry_the_connections_fields(tmp_path):
    log = str(tmp_path / "warrenmq.log")
    with BrokerProcess(str(tmp_path / "data"), "--log-file", log, "--log-format", "json") as b:
        pika.BlockingConnection(params(b.port, name="json-client")).close()
        with pytest.raises(pika.exceptions.ProbableAuthenticationError):
            pika.BlockingConnection(params(b.port, password="wrong"))
        wait_for(log, r"login refused")
        b.stop()
    records = [json.loads(line) for line in open(log, encoding="utf-8")]
    for r in records:
        assert {"time", "level", "logger", "message"} <= r.keys()
    auth = [r for r in records if "authenticated and granted access" in r["message"]]
    assert len(auth) == 1
    r = auth[0]
    assert (r["level"], r["logger"], r["user"], r["vhost"], r["client_name"], r["peer_host"]) == (
        "info", "warrenmq.connection", "guest", "/", "json-client", "127.0.0.1")
    assert re.fullmatch(CONN, r["connection"]) and re.fullmatch(ADDR, r["connection_name"])
    assert isinstance(r["peer_port"], int)
    refused = [r for r in records if "login refused" in r["message"]]
    assert refused[0]["level"] == "error"
    assert refused[0]["message"].endswith("\nPLAIN login refused: user 'guest' - invalid credentials")
    # the listening line is there too, from another logger
    assert any(r["logger"] == "warrenmq" and "listening on" in r["message"] for r in records)


def test_the_log_file_is_reopened_after_logrotate_moves_it(tmp_path):
    log = tmp_path / "warrenmq.log"
    with BrokerProcess(str(tmp_path / "data"), "--log-file", str(log)) as b:
        pika.BlockingConnection(params(b.port, name="before-rotation")).close()
        wait_for(str(log), r"before-rotation, vhost")
        os.rename(log, tmp_path / "warrenmq.log.1")  # what logrotate does (without copytruncate)
        pika.BlockingConnection(params(b.port, name="after-rotation")).close()
        wait_for(str(log), r"after-rotation, vhost")
        b.stop()
    rotated = (tmp_path / "warrenmq.log.1").read_text()
    assert "before-rotation" in rotated and "after-rotation" not in rotated
    assert "before-rotation" not in log.read_text()


def test_log_file_and_format_from_the_environment_and_a_bad_format(tmp_path):
    log = tmp_path / "env.log"
    env = {"WARRENMQ_LOG_FILE": str(log), "WARRENMQ_LOG_FORMAT": "json"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with BrokerProcess(str(tmp_path / "data")) as b:
            pika.BlockingConnection(params(b.port)).close()
            wait_for(str(log), r'"closing AMQP connection')
            b.stop()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    assert all(json.loads(line)["message"] for line in log.read_text().splitlines())
    from cli.test_first_run import one_line, warrenmq
    r = warrenmq("--log-format", "xml")
    assert r.returncode == 2 and "invalid choice: 'xml'" in r.stderr
    r = warrenmq(env={"WARRENMQ_LOG_FORMAT": "xml"})
    assert (r.returncode, one_line(r.stderr)) == (2, "warrenmq: invalid log_format 'xml' (choose from text, json)")
    r = warrenmq("--in-memory", "--port", "0", "--log-file", str(tmp_path / "no" / "such" / "dir.log"))
    assert r.returncode == 2
    assert one_line(r.stderr).startswith("warrenmq: cannot open the log file ")


class Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def texts(self, fmt=TextFormatter()):
        return [fmt.format(r) for r in self.records]


@pytest.fixture
def records():
    h = Records()
    root = logging.getLogger("warrenmq")
    old = root.level
    root.addHandler(h)
    root.setLevel(logging.INFO)
    yield h
    root.removeHandler(h)
    root.setLevel(old)


def test_alarms_set_and_cleared_are_logged_once_each(records):
    broker = Broker(BrokerConfig(data_dir=""))
    broker.set_alarm(Alarm.MEMORY, True)
    broker.set_alarm(Alarm.MEMORY, True)  # already on: no second line
    broker.set_alarm(Alarm.DISK_FREE, True)
    broker.set_alarm(Alarm.MEMORY, False)
    broker.set_alarm(Alarm.DISK_FREE, False)
    broker.set_alarm(Alarm.DISK_FREE, False)
    broker.close()
    alarms = [r for r in records.records if "resource limit alarm" in r.getMessage()]
    msgs = [r.getMessage() for r in alarms]
    assert [m.split(" on node")[0] for m in msgs] == [
        "memory resource limit alarm set", "disk resource limit alarm set",
        "memory resource limit alarm cleared", "disk resource limit alarm cleared"]
    assert all(r.levelname == "WARNING" for r in alarms)
    assert "*** Publishers will be blocked until this alarm clears ***" in msgs[0]
    assert re.fullmatch(r"memory resource limit alarm cleared on node 'warrenmq@[^']+'", msgs[2])
    text = TextFormatter().format(alarms[0]).splitlines()
    assert len(text) == 5 and all(" [warning] warrenmq.broker " in line for line in text)
    assert json.loads(JsonFormatter().format(alarms[0]))["alarm"] == "memory"


def test_deleting_a_user_or_vhost_and_a_management_close_are_logged(records):
    with EmbeddedBroker(management=True) as b:
        b.call(b.broker.add_vhost, "logs-vh")
        b.call(b.broker.add_user, "logs-u", "pw", [], ["/", "logs-vh"])
        b.call(b.broker.set_permissions, "guest", "logs-vh", ".*", ".*", ".*")
        by_user = pika.BlockingConnection(params(b.port, "logs-u", "pw", name="user-conn"))
        in_vhost = pika.BlockingConnection(params(b.port, vhost="logs-vh", name="vhost-conn"))
        by_api = pika.BlockingConnection(params(b.port, name="api-conn"))
        b.call(b.broker.delete_user, "logs-u")
        b.call(b.broker.delete_vhost, "logs-vh")
        auth = "Basic " + base64.b64encode(b"guest:guest").decode()
        req = urllib.request.Request(f"{b.management_url}/api/connections", headers={"Authorization": auth})
        conns = json.load(urllib.request.urlopen(req))
        name = next(c["name"] for c in conns if c["client_properties"].get("connection_name") == "api-conn")
        req = urllib.request.Request(f"{b.management_url}/api/connections/{urllib.parse.quote(name, safe='')}",
                                     method="DELETE", headers={"Authorization": auth, "X-Reason": "go away"})
        assert urllib.request.urlopen(req).status == 204
        for c in (by_user, in_vhost, by_api):
            with pytest.raises(pika.exceptions.ConnectionClosedByBroker):
                c.process_data_events(1)
                c.process_data_events(1)
    text = "\n".join(records.texts())
    for pattern in [
        r"\[info\] warrenmq\.broker Deleted user 'logs-u'",
        r"\[info\] warrenmq\.broker Closing all connections from user 'logs-u' because it's being deleted",
        r"Closing connection <0\.\d+\.0> because \"user 'logs-u' is deleted\"",
        r"\[info\] warrenmq\.broker Deleting vhost 'logs-vh'",
        r"Closing all connections in vhost 'logs-vh' because it's being deleted",
        r"Closing connection <0\.\d+\.0> because \"vhost 'logs-vh' is down\"",
        r"Closing connection <0\.\d+\.0> because \"go away\"",
        rf"\[error\] <0\.\d+\.0> Error on AMQP connection <0\.\d+\.0> \({ADDR} - api-conn, vhost: '/', "
        r"user: 'guest', state: running\), channel 0:",
        r" operation none caused a connection exception connection_forced: \"go away\"",
        rf"closing AMQP connection <0\.\d+\.0> \({ADDR} - api-conn, vhost: '/', user: 'guest'\)$",
    ]:
        assert re.search(pattern, text, re.M), f"{pattern!r} not in:\n{text}"


def test_connections_the_broker_drops_are_logged_with_the_reason(records):
    from support.raw import RawClient
    from warrenmq.protocol import spec
    with EmbeddedBroker(handshake_timeout_ms=300) as b:
        silent = RawClient(b.port)
        silent.handshake(heartbeat=1)  # then says nothing: dropped after two intervals
        assert silent.closed_by_peer(5)
        slow = RawClient(b.port)
        slow.send(spec.PROTOCOL_HEADER)  # and never answers connection.start
        assert slow.closed_by_peer(5)
        bad = RawClient(b.port)
        bad.handshake()
        bad.send(b"\x01\x00\x00\x00\x00\x00\x01\x00\x00")  # a frame whose end marker is wrong
        _, close = bad.read_method()
        assert isinstance(close, spec.ConnectionClose) and close.reply_code == spec.FRAME_ERROR
        silent.close(), slow.close(), bad.close()
    text = "\n".join(records.texts())
    for pattern in [
        rf"\[warning\] {CONN} closing AMQP connection {CONN} \({ADDR}, vhost: '/', user: 'guest'\):\n"
        rf"\S+ \S+ \[warning\] {CONN} missed heartbeats from client, timeout: 1s$",
        rf"\[warning\] {CONN} closing AMQP connection {CONN} \({ADDR}\):\n"
        rf"\S+ \S+ \[warning\] {CONN} handshake not completed within 0\.3s$",
        rf"\[error\] {CONN} Error on AMQP connection {CONN} \({ADDR}, vhost: '/', user: 'guest', state: running\), "
        rf"channel 0:\n\S+ \S+ \[error\] {CONN}  operation none caused a connection exception frame_error: ",
    ]:
        assert re.search(pattern, text, re.M), f"{pattern!r} not in:\n{text}"


def test_a_consumer_timeout_is_a_channel_error_in_the_log(records):
    with EmbeddedBroker(consumer_timeout_ms=200) as b:
        c = pika.BlockingConnection(params(b.port, name="slow-consumer"))
        ch = c.channel()
        ch.queue_declare("slow")
        ch.basic_publish("", "slow", b"x")
        assert ch.basic_get("slow")[2] == b"x"  # and never acknowledged
        with pytest.raises((pika.exceptions.ChannelClosedByBroker, pika.exceptions.ChannelWrongStateError)):
            for _ in range(50):
                c.process_data_events(0.1)
                ch.basic_qos(prefetch_count=1)
        c.close()
    text = "\n".join(records.texts())
    pattern = (rf"\[error\] {CONN} Channel error on connection {CONN} \({ADDR}, vhost: '/', user: 'guest'\), "
               rf"channel 1:\n\S+ \S+ \[error\] {CONN} operation none caused a channel exception precondition_failed: "
               r"delivery acknowledgement on channel 1 timed out\. Timeout value used: 200 ms\.")
    assert re.search(pattern, text, re.M), text


def test_refused_http_logins_are_logged_as_rabbitmq_does(records):
    with EmbeddedBroker(management=True) as b:
        b.call(b.broker.add_user, "logs-plain", "pw", [])
        for user, password, code in [("guest", "wrong", 401), ("nobody", "x", 401), ("logs-plain", "pw", 401)]:
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            req = urllib.request.Request(f"{b.management_url}/api/overview", headers={"Authorization": f"Basic {token}"})
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(req)
            assert e.value.code == code
    denied = [r.getMessage() for r in records.records if r.getMessage().startswith("HTTP access denied")]
    assert denied == ["HTTP access denied: user 'guest' - invalid credentials",
                      "HTTP access denied: user 'nobody' - invalid credentials",
                      "HTTP access denied: user 'logs-plain' - Not management user"]
