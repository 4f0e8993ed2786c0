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
    def __init__(self, base: str, auth=("guest", "guest")):
        self.base = base + "/api"
        self.auth = f"{auth[0]}:{auth[1]}".encode()

    def request(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", "Basic " + base64.b64encode(self.auth).decode())
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


class Publisher:
    """Publishes ``n`` persistent messages ``b"<prefix>:<i>"`` to ``queue`` with confirms, one at a time, in a
    thread; ``sent`` counts the confirmed ones."""

    def __init__(self, url: str, queue: str, n: int, prefix: str = "m", batch: int = 50):
        import threading
        self.url, self.queue, self.n, self.prefix, self.batch = url, queue, n, prefix, batch
        self.sent = 0
        self.error = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Publisher":
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            c = connect(self.url)
            ch = c.channel()
            ch.queue_declare(self.queue, durable=True)
            ch.confirm_delivery()
            props = pika.BasicProperties(delivery_mode=2)
            while self.sent < self.n:
                ch.basic_publish("", self.queue, f"{self.prefix}:{self.sent}".encode(), props)
                self.sent += 1
            c.close()
        except Exception as e:  # noqa: BLE001 - reported by join()
            self.error = e

    def join(self, timeout: float = 60, broken: bool = False) -> None:
        """Wait for the end; ``broken``: the broker was killed, so the thread may end early with an error
        (``sent`` then counts the messages confirmed before it)."""
        self.thread.join(timeout)
        assert not self.thread.is_alive()
        if not broken:
            assert self.error is None, self.error
            assert self.sent == self.n


def collect(url: str, queue: str, expect_unique: int, timeout: float = 60.0, idle: float = 1.0):
    """Consume ``queue`` until ``expect_unique`` distinct bodies arrived and ``idle`` seconds passed without
    more (duplicates are counted); returns ``(distinct bodies, duplicates)``."""
    seen = set()
    dups = 0
    c = connect(url)
    try:
        ch = c.channel()
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            m = ch.basic_get(queue, auto_ack=True)
            if m[0] is not None:
                if m[2] in seen:
                    dups += 1
                seen.add(m[2])
                last = time.monotonic()
                continue
            if len(seen) >= expect_unique and time.monotonic() - last >= idle:
                break
            time.sleep(0.02)
    finally:
        c.close()
    return seen, dups
