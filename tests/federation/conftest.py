"""Fixtures for federation tests: the reference RabbitMQ (``.ci/rabbitmq.sh``) as a federation peer.

``reference`` needs ``WARRENMQ_REFERENCE_URL`` (the node's AMQP URL) and ``rabbitmqctl`` reaching that
node (``RABBITMQ_NODENAME`` as ``.ci/rabbitmq.sh`` exports it); without them the tests that use it skip,
saying why.  With them, a node without the rabbitmq_federation plugin is a failure, not a skip: CI's
node enables it.  Everything a test creates there is named with a unique ``fedt-`` prefix and removed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid

import pika
import pytest

REFERENCE_URL = os.environ.get("WARRENMQ_REFERENCE_URL")


class Reference:
    """The reference RabbitMQ node: rabbitmqctl for parameters and policies, pika for the rest."""

    def __init__(self, url: str):
        self.url = url
        self.cleanup: list[tuple] = []
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()

    def ctl(self, *args) -> str:
        r = subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise AssertionError(f"rabbitmqctl {' '.join(args)}: {r.stdout}{r.stderr}")
        return r.stdout

    def cluster_name(self) -> str:
        return self.conn._impl.server_properties["cluster_name"].decode() \
            if isinstance(self.conn._impl.server_properties["cluster_name"], bytes) \
            else self.conn._impl.server_properties["cluster_name"]

    def set_upstream(self, name: str, value: dict) -> None:
        self.ctl("set_parameter", "federation-upstream", name, json.dumps(value))
        self.cleanup.append(("clear_parameter", "federation-upstream", name))

    def set_policy(self, name: str, pattern: str, definition: dict, apply_to: str = "all") -> None:
        self.ctl("set_policy", name, pattern, json.dumps(definition), "--apply-to", apply_to)
        self.cleanup.insert(0, ("clear_policy", name))

    def links(self) -> list[str]:
        """The federation links' statuses, one line each (rabbitmqctl eval of the plugin's status)."""
        return self.ctl("eval", "[{proplists:get_value(exchange, L, proplists:get_value(queue, L)),"
                        " proplists:get_value(status, L)} || L <- rabbit_federation_status:status()].")

    def wait_running(self, name: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        out = ""
        while time.monotonic() < deadline:
            out = self.links()
            if f'{{<<"{name}">>,running}}' in out.replace("\n", "").replace(" ", ""):
                return
            time.sleep(0.2)
        raise AssertionError(f"no running federation link for {name}: {out}")

    def close(self) -> None:
        for args in self.cleanup:
            subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, timeout=60)
        if self.conn.is_open:
            self.conn.close()


@pytest.fixture
def reference():
    if not REFERENCE_URL:
        pytest.skip("needs WARRENMQ_REFERENCE_URL: eval \"$(.ci/rabbitmq.sh)\"")
    if not shutil.which("rabbitmqctl"):
        pytest.skip("needs rabbitmqctl for the reference node")
    r = subprocess.run(["rabbitmq-plugins", "list", "-e", "-m"], capture_output=True, text=True, timeout=60)
    assert "rabbitmq_federation" in r.stdout, \
        f"the reference node lacks rabbitmq_federation (.ci/rabbitmq.sh enables it): {r.stdout}{r.stderr}"
    ref = Reference(REFERENCE_URL)
    yield ref
    ref.close()


def unique(prefix: str) -> str:
    return f"fedt-{prefix}-{uuid.uuid4().hex[:8]}"
