"""rabbitmqadmin, unchanged (Debian's rabbitmq-server ships it as /usr/bin/rabbitmqadmin), against WarrenMQ:
the cases of RabbitMQ 3.10's own suite for it (deps/rabbitmq_management/test/
rabbit_mgmt_rabbitmqadmin_SUITE.erl), with its expected outputs, each against a fresh broker."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from .conftest import mgmt_port, require

pytestmark = pytest.mark.timeout(120)

ADMIN = os.environ.get("RABBITMQADMIN", "/usr/bin/rabbitmqadmin")


@pytest.fixture
def admin(mgmt, tmp_path):
    require("rabbitmqadmin", os.path.exists(ADMIN) or shutil.which(ADMIN) is not None,
            "Debian's rabbitmq-server package ships it as /usr/bin/rabbitmqadmin; .ci/rabbitmq.sh installs it")
    return Admin(mgmt, tmp_path)


class Admin:
    """Runs rabbitmqadmin as the suite's run/1, run_list/1 and run_table/1 do (``-P port``)."""

    def __init__(self, broker, home):
        self.broker = broker
        self.port = mgmt_port(broker)
        self.home = home  # HOME, so that a developer's ~/.rabbitmqadmin.conf plays no part

    def run(self, *args, stdin: str | None = None, port: bool = True):
        cmd = [sys.executable, shutil.which(ADMIN) or ADMIN, *(["-P", str(self.port)] if port else []), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, input=stdin,
                           env=dict(os.environ, HOME=str(self.home)))
        return r.returncode, r.stdout + r.stderr

    def ok(self, *args, **kw) -> str:
        code, out = self.run(*args, **kw)
        assert code == 0, f"rabbitmqadmin {' '.join(args)} failed ({code}): {out}"
        return out

    def error(self, *args, **kw) -> str:
        code, out = self.run(*args, **kw)
        assert code != 0, f"rabbitmqadmin {' '.join(args)} should have failed: {out}"
        return out

    def list(self, *args) -> list:
        # the suite splits with Erlang's string:tokens, which drops empty lines (the default exchange's name)
        return [line for line in self.ok("-f", "tsv", "-q", *args).splitlines() if line]

    def table(self, *args) -> list:
        return [[t for t in line.split("\t") if t] for line in self.list(*args)]


def test_help(admin):
    admin.ok("--help")
    admin.ok("help", "subcommands")
    admin.ok("help", "config")
    admin.error("help", "astronomy")


def test_host(admin):
    admin.ok("show", "overview")
    admin.ok("--host", "localhost", "show", "overview")
    admin.error("--host", "some-host-that-does-not-exist.invalid", "--request-timeout", "5", "show", "overview")


def test_base_uri(admin):
    base = f"http://localhost:{admin.port}"
    admin.ok("--base-uri", base, "list", "exchanges", port=False)
    admin.ok("--base-uri", base + "/", "list", "exchanges", port=False)
    admin.ok("--base-uri", base, "--vhost", "/", "list", "exchanges", port=False)
    admin.ok("--base-uri", base + "/", "--vhost", "/", "list", "exchanges", port=False)
    admin.error("--base-uri", "https://some-host-that-does-not-exist.invalid:15672/", "--request-timeout", "5",
                "list", "exchanges", port=False)
    admin.error("--base-uri", base + "/", "--vhost", "some-vhost-that-does-not-exist", "list", "exchanges",
                port=False)


def test_config_file(admin):
    port = str(admin.port)
    (admin.home / ".rabbitmqadmin.conf").write_text(
        f"[bad_credentials]\nhostname = localhost\nport = {port}\nusername = gu/est\npassword = gu\\est\n"
        "declare_vhost = /\nvhost = /\n\n"
        f"[bad_host]\nhostname = non-existent.invalid\nport = {port}\nusername = guest\npassword = guest\n")
    test_conf = admin.home / "test-config"
    test_conf.write_text(
        f"[reachable]\nhostname = localhost\nport = {port}\nusername = guest\npassword = guest\n"
        "declare_vhost = /\nvhost = /\n\n"
        "[default]\nhostname = non-existent.invalid\nport = 99799\nusername = guest\npassword = guest\n")
    admin.error("--config", "/tmp/no-such-config-file", "show", "overview")
    admin.ok("--config", str(test_conf), "--node", "reachable", "show", "overview", port=False)
    admin.error("--config", str(test_conf), "show", "overview", port=False)
    admin.ok("--config", str(test_conf), "--base-uri", f"http://localhost:{port}", "show", "overview", port=False)
    admin.ok("--config", str(test_conf), "--node", "default", "--host", "localhost", "--port", port,
             "show", "overview", port=False)
    admin.ok("show", "overview")
    admin.error("--node", "bad_credentials", "show", "overview", port=False)
    admin.ok("--node", "bad_credentials", "--username", "guest", "--password", "guest", "show", "overview",
             port=False)
    admin.error("--node", "bad_credentials", "--username", "gu3st", "--password", "guesTTTT", "show", "overview",
                port=False)


def test_user(admin):
    admin.ok("--user", "guest", "--password", "guest", "show", "overview")
    out = admin.error("--user", "no", "--password", "guest", "show", "overview")
    assert "Access refused" in out or "401" in out
    admin.error("--user", "guest", "--password", "no", "show", "overview")


def test_fmt_long(admin):
    assert admin.ok("--format", "long", "list", "vhosts", "name", "tracing") == (
        "\n" + "-" * 80 + "\n\n   name: /\ntracing: False\n\n" + "-" * 80 + "\n\n")


def test_fmt_kvp(admin):
    assert admin.ok("--format", "kvp", "list", "vhosts", "name", "tracing") == 'name="/" tracing="False"\n'


def test_fmt_tsv(admin):
    assert admin.ok("--format", "tsv", "list", "vhosts", "name", "tracing") == "name\ttracing\n/\tFalse\n"


def test_fmt_table(admin):
    table = ("+------+---------+\n| name | tracing |\n+------+---------+\n| /    | False   |\n"
             "+------+---------+\n")
    assert admin.ok("list", "vhosts", "name", "tracing") == table
    assert admin.ok("--format", "table", "list", "vhosts", "name", "tracing") == table


def test_fmt_bash(admin):
    assert admin.ok("--format", "bash", "list", "vhosts", "name", "tracing") == "/\n"


def test_fmt_raw_json_and_pretty_json(admin):
    import json
    raw = json.loads(admin.ok("--format", "raw_json", "list", "vhosts", "name", "tracing"))
    assert raw == [{"name": "/", "tracing": False}]
    assert json.loads(admin.ok("--format", "pretty_json", "list", "vhosts", "name")) == [{"name": "/"}]


def test_vhosts(admin):
    assert admin.list("list", "vhosts", "name") == ["/"]
    admin.ok("declare", "vhost", "name=foo")
    assert admin.list("list", "vhosts", "name") == ["/", "foo"]
    admin.ok("delete", "vhost", "name=foo")
    assert admin.list("list", "vhosts", "name") == ["/"]


def test_users(admin):
    assert admin.list("list", "users", "name") == ["guest"]
    admin.error("declare", "user", "name=foo")
    admin.ok("declare", "user", "name=foo", "password=pass", "tags=")
    sha256 = "MmJiODBkNTM3YjFkYTNlMzhiZDMwMzYxYWE4NTU2ODZiZGUwZWFjZDcxNjJmZWY2YTI1ZmU5N2JmNTI3YTI1Yg=="
    sha512 = ("YmQyYjFhYWY3ZWY0ZjA5YmU5ZjUyY2UyZDhkNTk5Njc0ZDgxYWE5ZDZhNDQyMTY5NmRjNGQ5M2RkMDYxOWQ2ODJjZTU2Yj"
              "RkNjRhOWVmMDk3NzYxY2VkOTllMGY2NzI2NWI1Zjc2MDg1ZTViMGVlN2NhNDY5NmIyYWQ2ZmUyYjI=")
    admin.ok("declare", "user", "name=with_password_hash1", f"password_hash={sha256}", "tags=management")
    admin.ok("declare", "user", "name=with_password_hash2", "hashing_algorithm=rabbit_password_hashing_sha256",
             f"password_hash={sha256}", "tags=management")
    admin.ok("declare", "user", "name=with_password_hash3", "hashing_algorithm=rabbit_password_hashing_sha512",
             f"password_hash={sha512}", "tags=management")
    admin.error("declare", "user", "name=with_password_hash4", "hashing_algorithm=rabbit_password_hashing_sha256",
                "password_hash=not-base64-encoded", "tags=management")
    assert admin.list("list", "users", "name") == ["foo", "guest", "with_password_hash1", "with_password_hash2",
                                                   "with_password_hash3"]
    for n in ("foo", "with_password_hash1", "with_password_hash2", "with_password_hash3"):
        admin.ok("delete", "user", f"name={n}")
    assert admin.list("list", "users", "name") == ["guest"]


def test_permissions(admin):
    admin.ok("declare", "vhost", "name=foo")
    admin.ok("declare", "user", "name=bar", "password=pass", "tags=")
    # the user that creates a vhost gets permissions in it (rabbitmq-management #444)
    assert admin.table("list", "permissions", "user", "vhost") == [["guest", "/"], ["guest", "foo"]]
    admin.ok("declare", "permission", "user=bar", "vhost=foo", "configure=.*", "write=.*", "read=.*")
    assert admin.table("list", "permissions", "user", "vhost") == [["guest", "/"], ["bar", "foo"],
                                                                   ["guest", "foo"]]
    admin.ok("delete", "user", "name=bar")
    admin.ok("delete", "vhost", "name=foo")


def test_alt_vhost(admin):
    admin.ok("declare", "vhost", "name=foo")
    admin.ok("declare", "permission", "user=guest", "vhost=foo", "configure=.*", "write=.*", "read=.*")
    admin.ok("declare", "queue", "name=in_/")
    admin.ok("--vhost", "foo", "declare", "queue", "name=in_foo")
    assert admin.table("list", "queues", "vhost", "name") == [["/", "in_/"], ["foo", "in_foo"]]
    admin.ok("--vhost", "foo", "delete", "queue", "name=in_foo")
    admin.ok("delete", "queue", "name=in_/")
    admin.ok("delete", "vhost", "name=foo")


def test_exchanges(admin):
    admin.ok("declare", "exchange", "name=foo", "type=direct")
    assert admin.list("list", "exchanges", "name") == ["amq.direct", "amq.fanout", "amq.headers", "amq.match",
                                                       "amq.rabbitmq.trace", "amq.topic", "foo"]
    admin.ok("delete", "exchange", "name=foo")


def test_queues(admin):
    admin.ok("declare", "queue", "name=foo")
    assert admin.list("list", "queues", "name") == ["foo"]
    admin.ok("delete", "queue", "name=foo")
    assert admin.list("list", "queues", "name") == []


def test_queues_unicode(admin):
    admin.ok("declare", "queue", "name=ööö")
    assert admin.list("list", "queues", "name") == ["ööö"]
    assert admin.broker.queues().keys() == {"ööö"}
    admin.ok("delete", "queue", "name=ööö")
    assert admin.broker.queues() == {}


def test_bindings(admin):
    admin.ok("declare", "queue", "name=foo")
    admin.ok("declare", "binding", "source=amq.direct", "destination=foo", "destination_type=queue",
             "routing_key=test")
    assert admin.table("list", "bindings", "source", "destination", "destination_type", "routing_key") == [
        ["foo", "queue", "foo"], ["amq.direct", "foo", "queue", "test"]]
    admin.ok("delete", "binding", "source=amq.direct", "destination=foo", "destination_type=queue",
             "properties_key=test")
    assert admin.table("list", "bindings", "source", "routing_key") == [["foo"]]
    admin.ok("delete", "queue", "name=foo")


def test_policies(admin):
    # the suite's own case: a classic mirroring policy (accepted and stored; nothing to mirror to on one node)
    admin.ok("declare", "policy", "name=ha", "pattern=.*", 'definition={"ha-mode":"all"}')
    assert admin.table("list", "policies", "name", "vhost", "pattern", "definition") == [
        ["ha", "/", ".*", '{"ha-mode": "all"}']]
    admin.ok("delete", "policy", "name=ha")
    admin.ok("declare", "policy", "name=len", "pattern=.*", 'definition={"max-length":100}')
    assert admin.table("list", "policies", "name", "vhost", "pattern", "definition") == [
        ["len", "/", ".*", '{"max-length": 100}']]
    admin.ok("declare", "queue", "name=q")
    assert admin.table("list", "queues", "name", "policy") == [["q", "len"]]
    admin.ok("delete", "policy", "name=len")
    assert admin.table("list", "policies", "name") == []


def test_operator_policies(admin):
    admin.ok("declare", "operator_policy", "name=len", "pattern=.*", 'definition={"max-length":100}')
    assert admin.table("list", "operator_policies", "name", "vhost", "pattern", "definition") == [
        ["len", "/", ".*", '{"max-length": 100}']]
    admin.ok("delete", "operator_policy", "name=len")
    assert admin.table("list", "operator_policies", "name") == []


def test_parameters(admin):
    b = admin.broker
    b.call(lambda: b.broker.components.register("test"))  # as the suite registers its test component
    admin.ok("declare", "parameter", "component=test", "name=good", "value=123")
    assert admin.table("list", "parameters", "component", "name", "vhost", "value") == [
        ["test", "good", "/", "123"]]
    admin.ok("delete", "parameter", "component=test", "name=good")
    assert admin.table("list", "parameters", "name") == []


def _msg(key, count, redelivered, payload):
    # the columns rabbitmqadmin's get prints: routing_key, message_count, payload, payload_bytes,
    # payload_encoding, redelivered
    return [key, str(count), payload, str(len(payload)), "string", redelivered]


def test_publish(admin, tmp_path):
    admin.ok("declare", "queue", "name=test")
    admin.ok("publish", "routing_key=test", "payload=test_1")
    admin.ok("publish", "routing_key=test", "payload=test_2")
    admin.ok("publish", "routing_key=test", stdin="test_3")  # the payload from stdin
    assert admin.table("get", "queue=test", "ackmode=ack_requeue_false") == [_msg("test", 2, "False", "test_1")]
    assert admin.table("get", "queue=test", "ackmode=ack_requeue_true") == [_msg("test", 1, "False", "test_2")]
    assert admin.table("get", "queue=test", "ackmode=ack_requeue_false") == [_msg("test", 1, "True", "test_2")]
    assert admin.table("get", "queue=test", "ackmode=ack_requeue_false") == [_msg("test", 0, "False", "test_3")]
    admin.ok("publish", "routing_key=test", "payload=test_4")
    fn = tmp_path / "publish_test_4"
    admin.ok("get", "queue=test", "ackmode=ack_requeue_false", f"payload_file={fn}")
    assert fn.read_bytes() == b"test_4"
    admin.ok("delete", "queue", "name=test")


def test_ignore_vhost(admin):
    admin.ok("--vhost", "/", "show", "overview")
    admin.ok("--vhost", "/", "list", "users")
    admin.ok("--vhost", "/", "list", "vhosts")
    admin.ok("--vhost", "/", "list", "nodes")
    admin.ok("--vhost", "/", "list", "permissions")
    admin.ok("--vhost", "/", "declare", "user", "name=foo", "password=pass", "tags=")
    admin.ok("delete", "user", "name=foo")


def test_sort(admin):
    admin.ok("declare", "queue", "name=foo")
    admin.ok("declare", "binding", "source=amq.direct", "destination=foo", "destination_type=queue",
             "routing_key=bbb")
    admin.ok("declare", "binding", "source=amq.topic", "destination=foo", "destination_type=queue",
             "routing_key=aaa")
    assert admin.table("--sort", "source", "list", "bindings", "source", "routing_key") == [
        ["foo"], ["amq.direct", "bbb"], ["amq.topic", "aaa"]]
    assert admin.table("--sort", "routing_key", "list", "bindings", "source", "routing_key") == [
        ["amq.topic", "aaa"], ["amq.direct", "bbb"], ["foo"]]
    assert admin.table("--sort", "source", "--sort-reverse", "list", "bindings", "source", "routing_key") == [
        ["amq.topic", "aaa"], ["amq.direct", "bbb"], ["foo"]]
    admin.ok("delete", "queue", "name=foo")


def test_list_columns_of_other_objects(admin):
    """What operators list beyond the suite: connections and channels of a live client, nodes."""
    import pika
    conn = pika.BlockingConnection(pika.URLParameters(admin.broker.url))
    try:
        conn.channel()
        assert admin.table("list", "connections", "user", "vhost", "channels") == [["guest", "/", "1"]]
        assert admin.table("list", "channels", "user", "vhost") == [["guest", "/"]]
        assert len(admin.table("list", "nodes", "name")) == 1
        admin.ok("close", "connection", "name=" + admin.table("list", "connections", "name")[0][0])
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
            conn.process_data_events(time_limit=2)
        assert e.value.reply_code == 320
    finally:
        if conn.is_open:
            conn.close()
