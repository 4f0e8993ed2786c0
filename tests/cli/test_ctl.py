"""``warrenmq ctl``: rabbitmqctl's commands, run as a child process (``python -m warrenmq ctl``) against
an embedded broker serving the management API; the output is compared with what rabbitmqctl 3.10
prints, and the effects are checked on the broker (over AMQP with pika, or through the domain)."""
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest

pytest.importorskip("aiohttp")

from warrenmq.testing import EmbeddedBroker  # noqa: E402

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture(scope="module")
def broker():
    with EmbeddedBroker(management=True) as b:
        yield b


def _env(extra=None) -> dict:
    e = {k: v for k, v in os.environ.items() if not k.startswith("WARRENMQ_")}
    e["PYTHONPATH"] = SRC + os.pathsep + e.get("PYTHONPATH", "")
    e.update(extra or {})
    return e


def ctl(broker, *args, url=None, env=None, check=True, stdin=None):
    """``(returncode, stdout, stderr)`` of ``warrenmq ctl --url <broker> ARGS``."""
    cmd = [sys.executable, "-m", "warrenmq", "ctl"]
    if url is not False:
        cmd += ["--url", url or broker.management_url]
    r = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=60, env=_env(env), input=stdin)
    if check:
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert r.stderr == ""
    return r.returncode, r.stdout, r.stderr


def connect(broker, vhost="/", **params):
    url = broker.url.rsplit("/", 1)[0] + "/" + ("%2F" if vhost == "/" else vhost)
    p = pika.URLParameters(url)
    for k, v in params.items():
        setattr(p, k, v)
    return pika.BlockingConnection(p)


def rows(stdout: str) -> list:
    return [line.split("\t") for line in stdout.splitlines()]


@pytest.fixture
def queues(broker):
    """q-ctl-a (durable, 2 messages) and q-ctl-b (x-max-length 5, bound to amq.direct with 'rk')."""
    c = connect(broker)
    ch = c.channel()
    ch.queue_declare("q-ctl-a", durable=True)
    ch.queue_declare("q-ctl-b", arguments={"x-max-length": 5})
    ch.queue_bind("q-ctl-b", "amq.direct", "rk")
    ch.basic_publish("", "q-ctl-a", b"one")
    ch.basic_publish("", "q-ctl-a", b"two")
    yield ch
    if ch.is_open:
        for q in ("q-ctl-a", "q-ctl-b"):
            ch.queue_delete(q)
    if c.is_open:
        c.close()


# ------------------------------------------------------------------- listing
def test_list_queues_prints_rabbitmqctl_table(broker, queues):
    _, out, _ = ctl(broker, "list_queues")
    lines = out.splitlines()
    assert lines[:3] == ["Timeout: 60.0 seconds ...", "Listing queues for vhost / ...", "name\tmessages"]
    assert sorted(lines[3:]) == ["q-ctl-a\t2", "q-ctl-b\t0"]


def test_list_queues_columns_as_arguments(broker, queues):
    _, out, _ = ctl(broker, "list_queues", "-q", "name", "durable", "arguments", "messages_ready", "consumers")
    got = rows(out)
    assert got[0] == ["name", "durable", "arguments", "messages_ready", "consumers"]
    assert sorted(got[1:]) == [["q-ctl-a", "true", "[]", "2", "0"],
                               ["q-ctl-b", "false", '[{"x-max-length",5}]', "0", "0"]]


def test_list_queues_json_formatter(broker, queues):
    _, out, _ = ctl(broker, "list_queues", "--formatter", "json", "name", "arguments", "durable")
    assert out.startswith("[\n") and out.endswith("]\n")
    body = out.splitlines()[1:-1]
    assert body[1].startswith(",")  # rabbitmqctl's json formatter: one object a line, comma first
    items = sorted(json.loads(out), key=lambda x: x["name"])
    assert items == [{"name": "q-ctl-a", "arguments": [], "durable": True},
                     {"name": "q-ctl-b", "arguments": [["x-max-length", "signedint", 5]], "durable": False}]


def test_silent_drops_headers_and_info(broker, queues):
    _, out, _ = ctl(broker, "-s", "list_queues", "name")
    assert sorted(out.splitlines()) == ["q-ctl-a", "q-ctl-b"]
    _, out2, _ = ctl(broker, "list_queues", "name", "--no-table-headers", "--quiet")
    assert sorted(out2.splitlines()) == ["q-ctl-a", "q-ctl-b"]


def test_list_queues_in_another_vhost(broker):
    broker.call(lambda: broker.broker.add_vhost("ctl-vh"))
    broker.call(lambda: broker.broker.set_permissions("guest", "ctl-vh", ".*", ".*", ".*"))
    c = connect(broker, "ctl-vh")
    try:
        c.channel().queue_declare("only-in-ctl-vh")
        _, out, _ = ctl(broker, "list_queues", "-p", "ctl-vh")
        assert out.splitlines() == ["Timeout: 60.0 seconds ...", "Listing queues for vhost ctl-vh ...",
                                    "name\tmessages", "only-in-ctl-vh\t0"]
        _, out, _ = ctl(broker, "list_queues", "--vhost", "/", "-s", "name")
        assert "only-in-ctl-vh" not in out.splitlines()
    finally:
        c.close()
        broker.call(lambda: broker.broker.delete_vhost("ctl-vh"))


def test_list_queues_of_a_missing_vhost_is_empty_as_in_rabbitmqctl(broker):
    _, out, _ = ctl(broker, "list_queues", "-p", "no-such-vhost")
    assert out.splitlines() == ["Timeout: 60.0 seconds ...", "Listing queues for vhost no-such-vhost ..."]


def test_list_exchanges(broker):
    _, out, _ = ctl(broker, "list_exchanges")
    lines = out.splitlines()
    assert lines[:2] == ["Listing exchanges for vhost / ...", "name\ttype"]
    assert {"\tdirect", "amq.direct\tdirect", "amq.fanout\tfanout", "amq.topic\ttopic",
            "amq.headers\theaders", "amq.match\theaders"} <= set(lines[2:])
    _, out, _ = ctl(broker, "list_exchanges", "-q", "name", "durable", "internal", "auto_delete")
    assert ["amq.topic", "true", "false", "false"] in rows(out)


def test_list_bindings(broker, queues):
    _, out, _ = ctl(broker, "list_bindings")
    lines = out.splitlines()
    assert lines[0] == "Listing bindings for vhost /..."
    assert lines[1] == "source_name\tsource_kind\tdestination_name\tdestination_kind\trouting_key\targuments"
    assert "amq.direct\texchange\tq-ctl-b\tqueue\trk\t[]" in lines
    assert "\texchange\tq-ctl-a\tqueue\tq-ctl-a\t[]" in lines  # the default exchange's implicit binding


def test_list_connections(broker):
    c = connect(broker, client_properties={"connection_name": "ctl-conn"})
    try:
        _, out, _ = ctl(broker, "list_connections")
        lines = out.splitlines()
        assert lines[:2] == ["Listing connections ...", "user\tpeer_host\tpeer_port\tstate"]
        port = c._impl._transport._sock.getsockname()[1]
        assert f"guest\t127.0.0.1\t{port}\trunning" in lines
        _, out, _ = ctl(broker, "list_connections", "-q", "name", "vhost", "channels", "client_properties")
        row = [r for r in rows(out) if r[0].startswith(f"127.0.0.1:{port} ")][0]
        assert row[1:3] == ["/", "0"]
        assert '{"connection_name","ctl-conn"}' in row[3]
    finally:
        c.close()


def test_list_vhosts(broker):
    _, out, _ = ctl(broker, "list_vhosts", "name", "tracing")
    assert out.splitlines()[:3] == ["Listing vhosts ...", "name\ttracing", "/\tfalse"]


def test_an_empty_list_prints_no_header(broker):
    _, out, _ = ctl(broker, "list_connections")
    assert out.splitlines() == ["Listing connections ..."]
    _, out, _ = ctl(broker, "list_connections", "--formatter", "json")
    assert out == "[\n]\n"


# ------------------------------------------------------------------- status, await_startup
def test_status(broker, queues):
    _, out, _ = ctl(broker, "status")
    lines = out.splitlines()
    node = lines[0].removeprefix("Status of node ").removesuffix(" ...")
    assert node.startswith("warrenmq@")
    assert f"OS PID: {os.getpid()}" in lines  # the embedded broker runs in this process
    assert "RabbitMQ version: 3.10.8" in lines
    assert "Queue count: 2" in lines and "Virtual host count: 1" in lines
    port = int(broker.management_url.rsplit(":", 1)[1])
    assert f"Interface: 127.0.0.1, port: {port}, protocol: http, purpose: HTTP API" in lines
    _, out, _ = ctl(broker, "status", "--formatter", "json")
    status = json.loads(out)
    assert status["pid"] == os.getpid()
    assert status["totals"] == {"connection_count": 1, "queue_count": 2, "virtual_host_count": 1}
    assert status["alarms"] == []


def test_status_shows_alarms(broker):
    from warrenmq.broker.alarms import Alarm
    broker.call(broker.broker.set_alarm, Alarm.MEMORY, True)
    try:
        _, out, _ = ctl(broker, "status")
        lines = out.splitlines()
        node = lines[0].removeprefix("Status of node ").removesuffix(" ...")
        alarms = lines.index("Alarms")
        assert lines[alarms + 2] == f"Memory alarm on node {node}"
        assert json.loads(ctl(broker, "status", "--formatter", "json")[1])["alarms"] == ["memory"]
    finally:
        broker.call(broker.broker.set_alarm, Alarm.MEMORY, False)
    lines = ctl(broker, "status")[1].splitlines()
    assert lines[lines.index("Alarms") + 2] == "(none)"


def test_await_startup_waits_for_a_broker_starting_later(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        mport = s.getsockname()[1]
    url = f"http://127.0.0.1:{mport}"
    waiter = subprocess.Popen([sys.executable, "-m", "warrenmq", "ctl", "--url", url, "await_startup", "--timeout",
                               "60"], env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    broker = None
    try:
        time.sleep(1.0)
        assert waiter.poll() is None  # nothing answers yet: still waiting
        broker = subprocess.Popen([sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", "0",
                                   "--management-port", str(mport), "--in-memory", "--log-level", "warning"],
                                  env=_env())
        out, err = waiter.communicate(timeout=60)
        assert (waiter.returncode, out, err) == (0, "", "")
        assert broker.poll() is None
    finally:
        waiter.kill()
        if broker is not None:
            broker.terminate()
            broker.wait(timeout=20)


def test_await_startup_times_out_on_a_dead_url(broker):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    t0 = time.monotonic()
    code, out, err = ctl(broker, "await_startup", "--timeout", "1", url=dead, check=False)
    assert code == 75
    assert time.monotonic() - t0 < 20
    assert len(err.strip().splitlines()) == 1 and "did not start within 1 seconds" in err


# ------------------------------------------------------------------- queues, connections
def test_purge_queue(broker, queues):
    _, out, _ = ctl(broker, "purge_queue", "q-ctl-a")
    assert out == "Purging queue 'q-ctl-a' in vhost '/' ...\n"
    assert queues.queue_declare("q-ctl-a", passive=True).method.message_count == 0


def test_purge_missing_queue(broker):
    code, out, err = ctl(broker, "purge_queue", "no-such-q", check=False)
    assert code == 69
    assert err == "Error: queue 'no-such-q' in vhost '/' not found\n"


def test_delete_queue(broker, queues):
    _, out, _ = ctl(broker, "delete_queue", "q-ctl-a")
    assert out.splitlines() == ["Deleting queue 'q-ctl-a' on vhost '/' ...",
                                "Queue was successfully deleted with 2 ready messages"]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        queues.queue_declare("q-ctl-a", passive=True)
    assert e.value.reply_code == 404
    code, _, err = ctl(broker, "delete_queue", "q-ctl-a", check=False)
    assert code == 64 and err.startswith("Error: Queue not found")


def test_delete_queue_if_empty_refuses_a_queue_with_messages(broker, queues):
    code, out, err = ctl(broker, "delete_queue", "--if-empty", "q-ctl-a", check=False)
    assert out == "Deleting queue 'q-ctl-a' on vhost '/' if queue is empty ...\n"
    assert code == 70 and len(err.splitlines()) == 1
    assert queues.queue_declare("q-ctl-a", passive=True).method.message_count == 2
    ctl(broker, "delete_queue", "-e", "q-ctl-b")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        queues.queue_declare("q-ctl-b", passive=True)


def test_close_connection(broker):
    c = connect(broker)
    try:
        port = c._impl._transport._sock.getsockname()[1]
        _, out, _ = ctl(broker, "list_connections", "-s", "name")
        name = [n for n in out.splitlines() if n.startswith(f"127.0.0.1:{port} ")][0]
        _, out, _ = ctl(broker, "close_connection", name, "go away")
        assert out == f"Closing connection {name}, reason: go away...\n"
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            c.process_data_events(time_limit=5)
            c.sleep(5)
        assert e.value.reply_code == 320
        assert e.value.reply_text == "CONNECTION_FORCED - go away"
    finally:
        if c.is_open:
            c.close()
    code, _, err = ctl(broker, "close_connection", name, "again", check=False)
    assert code == 69 and len(err.splitlines()) == 1


# ------------------------------------------------------------------- connecting, errors
def test_environment_gives_url_and_credentials(broker):
    broker.call(lambda: broker.broker.add_user("ctl-mon", "ctl-pw", ["monitoring"], {"/"}))
    _, out, _ = ctl(broker, "list_vhosts", url=False,
                    env={"WARRENMQ_CTL_URL": broker.management_url, "WARRENMQ_CTL_USERNAME": "ctl-mon",
                         "WARRENMQ_CTL_PASSWORD": "ctl-pw"})
    assert out.splitlines()[-1] == "/"
    code, _, err = ctl(broker, "list_vhosts", url=False, check=False,
                       env={"WARRENMQ_CTL_URL": broker.management_url, "WARRENMQ_CTL_USERNAME": "ctl-mon",
                            "WARRENMQ_CTL_PASSWORD": "wrong"})
    assert code == 77
    assert err == f"Error: the management API at {broker.management_url} refused user 'ctl-mon': Login failed\n"


def test_flags_override_the_environment(broker):
    code, _, err = ctl(broker, "--username", "guest", "--password", "nope", "list_vhosts", check=False,
                       env={"WARRENMQ_CTL_PASSWORD": "guest"})
    assert code == 77 and "refused user 'guest'" in err


def test_unreachable_broker_is_one_line_and_69(broker):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, out, err = ctl(broker, "list_queues", url=dead, check=False)
    assert code == 69
    assert len(err.splitlines()) == 1 and err.startswith(f"Error: cannot reach the management API at {dead}")


def test_usage_errors_exit_64(broker):
    code, out, err = ctl(broker, "list_queues", "bogus", check=False)
    assert code == 64 and out == ""
    assert err == "Error (argument validation): Info key(s) bogus are not supported\n"
    code, _, err = ctl(broker, "no_such_command", check=False)
    assert code == 64 and err.startswith("Error: Command 'no_such_command' not found")
    code, _, err = ctl(broker, "purge_queue", check=False)
    assert code == 64 and len(err.splitlines()) == 1 and err.startswith("Error (argument validation)")
    code, _, err = ctl(broker, check=False)
    assert code == 64


def test_close_all_connections(broker):
    conns = [connect(broker) for _ in range(2)]
    try:
        _, out, _ = ctl(broker, "close_all_connections", "maintenance")
        assert out.splitlines() == ["Closing all connections in vhost /, reason: maintenance...",
                                    "Closed 2 connections"]
        for c in conns:
            with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
                c.process_data_events(time_limit=5)
                c.sleep(5)
            assert e.value.reply_text == "CONNECTION_FORCED - maintenance"
    finally:
        for c in conns:
            if c.is_open:
                c.close()


# ------------------------------------------------------------------- definitions
def test_export_and_import_definitions(broker, queues, tmp_path):
    f = tmp_path / "defs.json"
    _, out, _ = ctl(broker, "export_definitions", str(f))
    assert out == f'Exporting definitions in JSON to a file at "{f}" ...\n'
    defs = json.loads(f.read_text())
    assert {"name": "q-ctl-a", "vhost": "/", "durable": True} .items() <= {
        k: v for q in defs["queues"] if q["name"] == "q-ctl-a" for k, v in q.items()}.items()
    _, out, _ = ctl(broker, "export_definitions", "-")
    assert json.loads(out)["queues"] == defs["queues"]
    _, out, _ = ctl(broker, "export_definitions", "--vhost-only", "-p", "/", "-")
    one_vhost = json.loads(out)
    assert "users" not in one_vhost and {q["name"] for q in one_vhost["queues"]} >= {"q-ctl-a", "q-ctl-b"}
    new = {"queues": [{"name": "ctl-imported", "vhost": "/", "durable": False, "auto_delete": False,
                       "arguments": {"x-max-length": 3}}],
           "users": [{"name": "ctl-imported-u", "password_hash": "", "tags": ["monitoring"]}]}
    g = tmp_path / "new.json"
    g.write_text(json.dumps(new))
    _, out, _ = ctl(broker, "import_definitions", str(g))
    assert out.splitlines() == [f'Importing definitions in JSON from a file at "{g}" ...',
                                "Successfully started definition import. This process is asynchronous "
                                "and can take some time."]
    try:
        _, out, _ = ctl(broker, "list_queues", "-s", "name", "arguments")
        assert 'ctl-imported\t[{"x-max-length",3}]' in out.splitlines()
        assert broker.call(lambda: sorted(broker.broker.users["ctl-imported-u"].tags)) == ["monitoring"]
    finally:
        queues.queue_delete("ctl-imported")
        broker.call(lambda: broker.broker.delete_user("ctl-imported-u"))
    code, _, err = ctl(broker, "import_definitions", str(tmp_path / "missing.json"), check=False)
    assert code == 65 and len(err.splitlines()) == 1


# ------------------------------------------------------------------- users (the endpoints of i12-admin)
def login(broker, user, password, vhost="/"):
    return connect(broker, vhost, credentials=pika.PlainCredentials(user, password), connection_attempts=1)


def test_add_user_then_it_exists_and_needs_permissions(broker):
    _, out, _ = ctl(broker, "add_user", "ctl-u1", "pw1")
    assert out.splitlines() == ['Adding user "ctl-u1" ...',
                                "Done. Don't forget to grant the user permissions to some virtual hosts! "
                                "See 'rabbitmqctl help set_permissions' to learn more."]
    try:
        code, out, err = ctl(broker, "add_user", "ctl-u1", "other", check=False)
        assert (code, err) == (70, 'Error: User "ctl-u1" already exists\n')
        _, out, _ = ctl(broker, "list_users", "-q")
        assert "ctl-u1\t[]" in out.splitlines()
        with pytest.raises(pika.exceptions.AMQPConnectionError):  # no permissions on / yet
            login(broker, "ctl-u1", "pw1")
        _, out, _ = ctl(broker, "set_permissions", "ctl-u1", ".*", ".*", ".*")
        assert out == 'Setting permissions for user "ctl-u1" in vhost "/" ...\n'
        login(broker, "ctl-u1", "pw1").close()
    finally:
        ctl(broker, "delete_user", "ctl-u1")
    code, _, err = ctl(broker, "delete_user", "ctl-u1", check=False)
    assert (code, err) == (67, 'Error: User "ctl-u1" does not exist\n')
    assert broker.call(lambda: "ctl-u1" in broker.broker.users) is False


def test_authenticate_and_change_password(broker):
    ctl(broker, "add_user", "ctl-u2", "old")
    try:
        _, out, _ = ctl(broker, "authenticate_user", "ctl-u2", "old")  # a user without tags: still a login
        assert out.splitlines() == ['Authenticating user "ctl-u2" ...', "Success"]
        code, out, err = ctl(broker, "authenticate_user", "ctl-u2", "wrong", check=False)
        assert code == 65 and err == ('Error: failed to authenticate user "ctl-u2": '
                                      "user 'ctl-u2' - invalid credentials\n")
        _, out, _ = ctl(broker, "change_password", "ctl-u2", "new")
        assert out == 'Changing password for user "ctl-u2" ...\n'
        assert ctl(broker, "authenticate_user", "ctl-u2", "old", check=False)[0] == 65
        ctl(broker, "authenticate_user", "ctl-u2", "new")
        code, _, err = ctl(broker, "change_password", "nobody-ctl", "x", check=False)
        assert (code, err) == (67, 'Error: User "nobody-ctl" does not exist\n')
    finally:
        ctl(broker, "delete_user", "ctl-u2")


def test_set_user_tags_keeps_the_password(broker):
    ctl(broker, "add_user", "ctl-u3", "pw3")
    try:
        _, out, _ = ctl(broker, "set_user_tags", "ctl-u3", "monitoring", "policymaker")
        assert out == 'Setting tags for user "ctl-u3" to [monitoring, policymaker] ...\n'
        _, out, _ = ctl(broker, "list_users", "--formatter", "json")
        assert {"user": "ctl-u3", "tags": ["monitoring", "policymaker"]} in json.loads(out)
        # the new tags let it use the API: it lists every vhost as a monitoring user
        _, out, _ = ctl(broker, "--username", "ctl-u3", "--password", "pw3", "list_vhosts", "-s")
        assert "/" in out.splitlines()
        ctl(broker, "set_user_tags", "ctl-u3")
        _, out, _ = ctl(broker, "list_users", "-s")
        assert "ctl-u3\t[]" in out.splitlines()
        ctl(broker, "authenticate_user", "ctl-u3", "pw3")
    finally:
        ctl(broker, "delete_user", "ctl-u3")


# ------------------------------------------------------------------- vhosts, permissions
def test_add_and_delete_vhost(broker):
    _, out, _ = ctl(broker, "add_vhost", "ctl-vh2", "--description", "for ctl")
    assert out == 'Adding vhost "ctl-vh2" ...\n'
    assert broker.call(lambda: "ctl-vh2" in broker.broker.vhosts)
    _, out, _ = ctl(broker, "list_vhosts", "-q", "name", "description")
    assert "ctl-vh2\tfor ctl" in out.splitlines()
    _, out, _ = ctl(broker, "delete_vhost", "ctl-vh2")
    assert out == 'Deleting vhost "ctl-vh2" ...\n'
    assert not broker.call(lambda: "ctl-vh2" in broker.broker.vhosts)
    code, _, err = ctl(broker, "delete_vhost", "ctl-vh2", check=False)
    assert (code, err) == (65, "Error: Virtual host 'ctl-vh2' does not exist\n")


def test_permissions_are_enforced_and_listed(broker):
    ctl(broker, "add_user", "ctl-u4", "pw4")
    try:
        ctl(broker, "set_permissions", "-p", "/", "ctl-u4", "^ctl-a", ".*", ".*")
        _, out, _ = ctl(broker, "list_permissions")
        assert out.splitlines()[:2] == ['Listing permissions for vhost "/" ...', "user\tconfigure\twrite\tread"]
        assert "ctl-u4\t^ctl-a\t.*\t.*" in out.splitlines()
        _, out, _ = ctl(broker, "list_user_permissions", "ctl-u4", "-q")
        assert out.splitlines() == ["vhost\tconfigure\twrite\tread", "/\t^ctl-a\t.*\t.*"]
        c = login(broker, "ctl-u4", "pw4")
        ch = c.channel()
        ch.queue_declare("ctl-allowed", exclusive=True)
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("ctl-other")
        assert e.value.reply_code == 403
        assert e.value.reply_text == ("ACCESS_REFUSED - access to queue 'ctl-other' in vhost '/' "
                                      "refused for user 'ctl-u4'")
        c.close()
        code, _, err = ctl(broker, "set_permissions", "-p", "no-vh", "ctl-u4", ".*", ".*", ".*", check=False)
        assert (code, err) == (69, "Error: Virtual host no-vh does not exist\n")
        code, _, err = ctl(broker, "set_permissions", "no-user", ".*", ".*", ".*", check=False)
        assert (code, err) == (67, "Error: User no-user does not exist\n")
        _, out, _ = ctl(broker, "clear_permissions", "ctl-u4")
        assert out == 'Clearing permissions for user "ctl-u4" in vhost "/" ...\n'
        with pytest.raises(pika.exceptions.AMQPConnectionError):
            login(broker, "ctl-u4", "pw4")
    finally:
        ctl(broker, "delete_user", "ctl-u4")


def test_topic_permissions(broker):
    ctl(broker, "add_user", "ctl-u5", "pw5")
    try:
        ctl(broker, "set_permissions", "ctl-u5", ".*", ".*", ".*")
        _, out, _ = ctl(broker, "set_topic_permissions", "ctl-u5", "amq.topic", "^allowed\\.", ".*")
        assert out == 'Setting topic permissions on "amq.topic" for user "ctl-u5" in vhost "/" ...\n'
        _, out, _ = ctl(broker, "list_topic_permissions", "-q")
        assert "ctl-u5\tamq.topic\t^allowed\\.\t.*" in out.splitlines()
        c = login(broker, "ctl-u5", "pw5")
        ch = c.channel()
        ch.basic_publish("amq.topic", "allowed.x", b"ok")
        ch.basic_publish("amq.topic", "denied.x", b"no")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("ctl-after-denied", passive=True)
        assert e.value.reply_code == 403
        c.close()
        ctl(broker, "clear_topic_permissions", "ctl-u5")
        _, out, _ = ctl(broker, "list_topic_permissions", "-q")
        assert not any(line.startswith("ctl-u5\t") for line in out.splitlines())
    finally:
        ctl(broker, "delete_user", "ctl-u5")


# ------------------------------------------------------------------- policies, limits
def test_set_list_and_clear_policy(broker, queues):
    _, out, _ = ctl(broker, "set_policy", "--priority", "7", "--apply-to", "queues", "ctl-pol", "^q-ctl-",
                    '{"max-length": 1}')
    assert out == ('Setting policy "ctl-pol" for pattern "^q-ctl-" to "{"max-length": 1}" with priority "7" '
                   'for vhost "/" ...\n')
    try:
        _, out, _ = ctl(broker, "list_policies")
        assert out.splitlines() == ['Listing policies for vhost "/" ...',
                                    "vhost\tname\tpattern\tapply-to\tdefinition\tpriority",
                                    '/\tctl-pol\t^q-ctl-\tqueues\t{"max-length":1}\t7']
        _, out, _ = ctl(broker, "list_policies", "--formatter", "json")
        assert json.loads(out) == [{"vhost": "/", "name": "ctl-pol", "pattern": "^q-ctl-", "apply-to": "queues",
                                    "definition": '{"max-length":1}', "priority": 7}]
        _, out, _ = ctl(broker, "list_queues", "-s", "name", "policy", "messages")
        assert sorted(r for r in rows(out) if r[0].startswith("q-ctl-")) == [["q-ctl-a", "ctl-pol", "1"],
                                                                              ["q-ctl-b", "ctl-pol", "0"]]
    finally:
        _, out, _ = ctl(broker, "clear_policy", "ctl-pol")
    assert out == 'Clearing policy "ctl-pol" on vhost "/" ...\n'
    assert ctl(broker, "list_policies", "-s")[1] == ""
    code, _, err = ctl(broker, "clear_policy", "ctl-pol", check=False)
    assert (code, err) == (69, "Error: Parameter does not exist\n")
    code, _, err = ctl(broker, "set_policy", "bad", "^x", "not json", check=False)
    assert code == 69 and err.startswith("Error: JSON decoding error.")


def test_set_vhost_limits(broker):
    broker.call(lambda: broker.broker.add_vhost("ctl-lim"))
    broker.call(lambda: broker.broker.set_permissions("guest", "ctl-lim", ".*", ".*", ".*"))
    try:
        _, out, _ = ctl(broker, "set_vhost_limits", "-p", "ctl-lim", '{"max-queues": 1, "max-connections": 5}')
        assert out == ('Setting vhost limits to "{"max-queues": 1, "max-connections": 5}" '
                       'for vhost "ctl-lim" ...\n')
        _, out, _ = ctl(broker, "list_vhost_limits", "-p", "ctl-lim", "-q")
        assert json.loads(out) == {"max-queues": 1, "max-connections": 5}
        c = connect(broker, "ctl-lim")
        ch = c.channel()
        ch.queue_declare("first")
        with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
            ch.queue_declare("second")
        assert e.value.reply_code == 406
        c.close()
        ctl(broker, "set_vhost_limits", "-p", "ctl-lim", '{"max-connections": 5}')  # max-queues is cleared
        _, out, _ = ctl(broker, "list_vhost_limits", "-p", "ctl-lim", "-q")
        assert json.loads(out) == {"max-connections": 5}
        c = connect(broker, "ctl-lim")
        c.channel().queue_declare("second")
        c.close()
    finally:
        broker.call(lambda: broker.broker.delete_vhost("ctl-lim"))


def test_a_missing_vhost_as_rabbitmqctl_answers_it(broker):
    for cmd in ("list_permissions", "list_topic_permissions", "list_policies", "list_vhost_limits"):
        code, _, err = ctl(broker, cmd, "-p", "no-such-vh", check=False)
        assert (code, err) == (65, "Error: Virtual host 'no-such-vh' does not exist\n"), cmd
    code, _, err = ctl(broker, "set_policy", "-p", "no-such-vh", "p", "^x", '{"max-length":1}', check=False)
    assert (code, err) == (65, "Error: Virtual host 'no-such-vh' does not exist\n")
    for cmd in ("list_exchanges", "list_bindings"):
        assert len(ctl(broker, cmd, "-p", "no-such-vh")[1].splitlines()) == 1
    _, out, _ = ctl(broker, "close_all_connections", "-p", "no-such-vh", "r")
    assert out.splitlines()[-1] == "Closed 0 connections"
    code, _, err = ctl(broker, "clear_permissions", "-p", "no-such-vh", "guest", check=False)
    assert (code, err) == (69, "Error: Virtual host no-such-vh does not exist\n")
    code, _, err = ctl(broker, "clear_permissions", "no-such-user", check=False)
    assert (code, err) == (67, "Error: User no-such-user does not exist\n")
    code, _, err = ctl(broker, "list_user_permissions", "no-such-user", check=False)
    assert code == 69


def test_list_vhost_limits_without_limits(broker):
    assert ctl(broker, "list_vhost_limits")[1] == 'Listing limits for vhost "/" ...\n\n'
    assert ctl(broker, "list_vhost_limits", "--formatter", "json")[1] == "[]\n"


# ------------------------------------------------------------------- channels, consumers
def test_list_channels_and_consumers(broker, queues):
    c = connect(broker)
    try:
        ch = c.channel()
        ch.basic_qos(prefetch_count=7)
        ch.basic_consume("q-ctl-a", lambda *a: None, consumer_tag="ctl-tag")
        c.process_data_events(time_limit=0.5)
        _, out, _ = ctl(broker, "list_consumers")
        lines = out.splitlines()
        assert lines[:2] == ["Listing consumers in vhost / ...",
                             "queue_name\tchannel_pid\tconsumer_tag\tack_required\tprefetch_count\tactive\targuments"]
        row = [r for r in rows(out) if r[2:3] == ["ctl-tag"]][0]
        assert row[0] == "q-ctl-a" and row[3:] == ["true", "7", "true", "[]"]
        channel_name = row[1]
        _, out, _ = ctl(broker, "list_channels", "-q", "name", "prefetch_count", "consumer_count",
                        "messages_unacknowledged", "user")
        assert [channel_name, "7", "1", "2", "guest"] in rows(out)
        _, out, _ = ctl(broker, "list_channels")
        assert out.splitlines()[:2] == ["Listing channels ...", "pid\tuser\tconsumer_count\tmessages_unacknowledged"]
        assert [channel_name, "guest", "1", "2"] in rows(out)
        _, out, _ = ctl(broker, "list_consumers", "--formatter", "json", "queue_name", "consumer_tag", "arguments")
        assert {"queue_name": "q-ctl-a", "consumer_tag": "ctl-tag", "arguments": []} in json.loads(out)
    finally:
        c.close()
