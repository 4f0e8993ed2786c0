"""Helpers of the shovel and federation tests: the management API over urllib, pika for messages, the
reference RabbitMQ's URL (WARRENMQ_REFERENCE_URL, .ci/rabbitmq.sh)."""
import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

import pika

REFERENCE_URL = os.environ.get("WARRENMQ_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


class Api:
    def __init__(self, base: str):
        self.base = base + "/api"

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        return status, (json.loads(raw) if raw else None)

    def put_shovel(self, name: str, value: dict, vhost: str = "/"):
        return self.request("PUT", f"/parameters/shovel/{q(vhost)}/{q(name)}", {"value": value})

    def delete_shovel(self, name: str, vhost: str = "/"):
        return self.request("DELETE", f"/parameters/shovel/{q(vhost)}/{q(name)}")

    def shovels(self, vhost: str | None = None):
        return self.request("GET", "/shovels" + (f"/{q(vhost)}" if vhost is not None else ""))[1]

    def wait_state(self, name: str, state: str = "running", timeout: float = 15.0) -> dict:
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            for s in self.shovels():
                if s["name"] == name:
                    last = s
                    if s["state"] == state:
                        return s
            time.sleep(0.05)
        raise AssertionError(f"shovel {name} not {state}: {last}")


def q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def connect(url: str) -> pika.BlockingConnection:
    return pika.BlockingConnection(pika.URLParameters(url))


def publish_confirmed(url: str, queue: str, bodies, declare: bool = True, properties=None) -> None:
    """Publish ``bodies`` to ``queue`` with publisher confirms (every one confirmed before returning)."""
    c = connect(url)
    try:
        ch = c.channel()
        if declare:
            ch.queue_declare(queue, durable=True)
        ch.confirm_delivery()
        for b in bodies:
            ch.basic_publish("", queue, b, properties or pika.BasicProperties(delivery_mode=2))
    finally:
        c.close()


def drain(url: str, queue: str, expect: int, timeout: float = 20.0, idle: float = 0.0) -> list:
    """Get messages from ``queue`` until ``expect`` arrived (then ``idle`` seconds more for extras) or the
    timeout; returns ``(method, properties, body)`` tuples."""
    c = connect(url)
    got = []
    try:
        ch = c.channel()
        deadline = time.monotonic() + timeout
        quiet_until = None
        while time.monotonic() < deadline:
            m = ch.basic_get(queue, auto_ack=True)
            if m[0] is not None:
                got.append(m)
                continue
            if len(got) >= expect:
                if quiet_until is None:
                    quiet_until = time.monotonic() + idle
                if time.monotonic() >= quiet_until:
                    break
            time.sleep(0.02)
    finally:
        c.close()
    return got


def delete_queues(url: str, *queues) -> None:
    c = connect(url)
    try:
        ch = c.channel()
        for name in queues:
            ch.queue_delete(name)
    finally:
        c.close()
