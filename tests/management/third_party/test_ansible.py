"""The community.rabbitmq Ansible modules, unchanged, against WarrenMQ: rabbitmq_queue, rabbitmq_exchange
and rabbitmq_binding talk to the management HTTP API (``login_port``); each is run as ``ansible localhost
-m ...`` and must create (changed), find it already there on a second run (not changed: the module compares
what GET returns with what it asked for, so the JSON has to be RabbitMQ's), and delete.
rabbitmq_vhost and rabbitmq_policy run ``rabbitmqctl``: they get a ``rabbitmqctl`` that is ``warrenmq ctl``
(dropping rabbitmqctl's ``-n NODE``), the alias an operator would make."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import importable, mgmt_port, require

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
def ansible(mgmt, tmp_path):
    exe = Path(sys.executable).with_name("ansible")
    found = exe.exists() or shutil.which("ansible") is not None
    require("ansible", found and importable("ansible_collections.community.rabbitmq"),
            "pip install ansible (it bundles the community.rabbitmq collection), or the thirdparty extra")
    return Ansible(mgmt, tmp_path, str(exe) if exe.exists() else shutil.which("ansible"))


class Ansible:
    def __init__(self, broker, home: Path, exe: str):
        self.broker = broker
        self.home = home
        self.exe = exe
        bindir = home / "bin"
        bindir.mkdir()
        shim = bindir / "rabbitmqctl"
        # rabbitmqctl for rabbitmq_vhost and rabbitmq_policy: warrenmq ctl, without rabbitmqctl's -n NODE
        shim.write_text(
            "#!/bin/sh\nfor a do\n  shift\n  if [ \"$skip\" = 1 ]; then skip=0; continue; fi\n"
            "  if [ \"$a\" = -n ]; then skip=1; continue; fi\n  set -- \"$@\" \"$a\"\ndone\n"
            f"exec {sys.executable} -c 'import sys; from warrenmq.cli.main import main; sys.exit(main())' "
            f"ctl --url {broker.management_url} \"$@\"\n")
        shim.chmod(0o755)
        self.env = dict(os.environ, HOME=str(home), ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
                        ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCAL_TEMP=str(home / "tmp"),
                        ANSIBLE_NOCOLOR="1", PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
                        PYTHONPATH=os.pathsep.join(p for p in sys.path if p))

    def run(self, module: str, http: bool = True, **args) -> dict:
        """The module's result (``changed``, ``failed``, ``msg``...)."""
        if http:
            args = {"login_host": "127.0.0.1", "login_port": mgmt_port(self.broker), "login_user": "guest",
                    "login_password": "guest", **args}
        r = subprocess.run([self.exe, "localhost", "-c", "local", "-i", "localhost,",
                            "-e", f"ansible_python_interpreter={sys.executable}",
                            "-m", f"community.rabbitmq.{module}", "-a", json.dumps(args)],
                           capture_output=True, text=True, timeout=120, env=self.env)
        try:
            out = json.loads(r.stdout)
            return out["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError):
            raise AssertionError(f"ansible {module} {args}: rc {r.returncode}\n{r.stdout}\n{r.stderr}") from None

    def ok(self, module: str, changed: bool, **args) -> dict:
        res = self.run(module, **args)
        assert not res.get("failed"), f"{module} {args} failed: {res.get('msg')}"
        assert res["changed"] is changed, f"{module} {args}: changed {res['changed']}, expected {changed}"
        return res


def test_rabbitmq_queue(ansible, mgmt):
    args = dict(name="jobs", durable=True, message_ttl=60000, max_length=100, dead_letter_exchange="dlx")
    ansible.ok("rabbitmq_queue", True, **args)
    q = mgmt.queues()["jobs"]
    assert q.arguments == {"x-message-ttl": 60000, "x-max-length": 100, "x-dead-letter-exchange": "dlx"}
    ansible.ok("rabbitmq_queue", False, **args)  # idempotent: what GET returned matched
    res = ansible.run("rabbitmq_queue", name="jobs", durable=True, message_ttl=1000)
    assert res.get("failed") and "attribute changes" in res["msg"]  # as against RabbitMQ: no redeclare
    ansible.ok("rabbitmq_queue", True, name="jobs", state="absent")
    assert "jobs" not in mgmt.queues()
    ansible.ok("rabbitmq_queue", False, name="jobs", state="absent")


def test_rabbitmq_exchange(ansible, mgmt):
    ansible.ok("rabbitmq_exchange", True, name="events", exchange_type="topic", durable=True)
    assert mgmt.call(lambda: mgmt.broker.vhosts["/"].exchanges["events"].type) == "topic"
    ansible.ok("rabbitmq_exchange", False, name="events", exchange_type="topic", durable=True)
    ansible.ok("rabbitmq_exchange", True, name="events", state="absent")
    assert "events" not in mgmt.call(lambda: set(mgmt.broker.vhosts["/"].exchanges))
    ansible.ok("rabbitmq_exchange", False, name="events", state="absent")


def test_rabbitmq_binding(ansible, mgmt):
    ansible.ok("rabbitmq_exchange", True, name="events", exchange_type="topic")
    ansible.ok("rabbitmq_queue", True, name="audit")
    binding = dict(source="events", destination="audit", destination_type="queue", routing_key="user.#")
    ansible.ok("rabbitmq_binding", True, **binding)
    import pika
    conn = pika.BlockingConnection(pika.URLParameters(mgmt.url))
    try:
        ch = conn.channel()
        ch.basic_publish("events", "user.created", b"hello")
        ch.basic_publish("events", "order.created", b"not for audit")
        conn.process_data_events(time_limit=0.2)
        assert mgmt.queues()["audit"].messages == 1  # routed by the binding Ansible made
    finally:
        conn.close()
    ansible.ok("rabbitmq_binding", False, **binding)
    ansible.ok("rabbitmq_binding", True, state="absent", **binding)
    ansible.ok("rabbitmq_binding", False, state="absent", **binding)


def test_rabbitmq_vhost_and_policy(ansible, mgmt):
    ansible.ok("rabbitmq_vhost", True, http=False, name="apps")
    assert "apps" in mgmt.call(lambda: set(mgmt.broker.vhosts))
    ansible.ok("rabbitmq_vhost", False, http=False, name="apps")
    policy = dict(name="ttl", vhost="apps", pattern="^ttl\\.", tags={"message-ttl": 60000}, apply_to="queues")
    ansible.ok("rabbitmq_policy", True, http=False, **policy)
    assert [p["name"] for p in mgmt.call(lambda: mgmt.broker.list_policies("apps"))] == ["ttl"]
    ansible.ok("rabbitmq_policy", False, http=False, **policy)
    ansible.ok("rabbitmq_policy", True, http=False, name="ttl", vhost="apps", state="absent")
    assert mgmt.call(lambda: mgmt.broker.list_policies("apps")) == []
    ansible.ok("rabbitmq_vhost", True, http=False, name="apps", state="absent")
    assert "apps" not in mgmt.call(lambda: set(mgmt.broker.vhosts))
