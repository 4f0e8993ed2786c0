"""Shovel throughput, WarrenMQ -> RabbitMQ, ack-mode on-confirm: WarrenMQ's shovel against RabbitMQ's own.

Both move the same backlog over the same route: ``--messages`` messages of ``--size`` bytes waiting in a
queue on WarrenMQ are shovelled into a durable queue on RabbitMQ, on-confirm, prefetch ``--prefetch``.
In one case the shovel runs in WarrenMQ (``PUT /api/parameters/shovel/...``, source ``amqp://``, the
destination RabbitMQ's URL), in the other RabbitMQ's shovel plugin runs it (``rabbitmqctl set_parameter
shovel``, source WarrenMQ's URL, destination ``amqp://``).  The time is from setting the parameter to the
destination queue holding every message (polled with a passive declare every 10 ms).  As a reference
point, RabbitMQ's shovel moving the same backlog between two queues of its own node (direct connections
both sides) is measured too.  Each scenario runs ``--runs`` times; the median is reported.

WarrenMQ runs as ``python -m warrenmq --in-memory`` from this checkout (AMQP and the management API on
free ports); RabbitMQ is the reference node of ``.ci/rabbitmq.sh`` (``--rabbit``, default
``$WARRENMQ_REFERENCE_URL`` or amqp://guest:guest@127.0.0.1:5672/%2F), with its rabbitmq_shovel plugin,
reached by ``rabbitmqctl`` (``RABBITMQ_NODENAME`` as that script exports it).
Run: ``python bench/shovel_throughput.py`` (``--persistent`` for delivery mode 2).
"""
from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ctl(*args) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=60)


def http(method: str, url: str, body=None) -> None:
    req = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    req.add_header("Content-Type", "application/json")
    urllib.request.urlopen(req, timeout=30).read()


def preload(url: str, queue: str, n: int, size: int, persistent: bool) -> None:
    c = pika.BlockingConnection(pika.URLParameters(url))
    ch = c.channel()
    ch.queue_declare(queue, durable=True)
    ch.queue_purge(queue)
    props = pika.BasicProperties(delivery_mode=2 if persistent else 1)
    body = b"x" * size
    for _ in range(n):
        ch.basic_publish("", queue, body, props)
    while ch.queue_declare(queue, passive=True).method.message_count < n:
        time.sleep(0.01)
    c.close()


def wait_count(url: str, queue: str, n: int, timeout: float = 300) -> float:
    c = pika.BlockingConnection(pika.URLParameters(url))
    ch = c.channel()
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        try:
            if ch.queue_declare(queue, passive=True).method.message_count >= n:
                end = time.perf_counter()
                c.close()
                return end
        except pika.exceptions.ChannelClosedByBroker:  # not declared by the shovel yet
            ch = c.channel()
        time.sleep(0.01)
    raise RuntimeError(f"{queue} did not reach {n} messages in {timeout} s")


def delete_queue(url: str, queue: str) -> None:
    c = pika.BlockingConnection(pika.URLParameters(url))
    c.channel().queue_delete(queue)
    c.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=50000)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--prefetch", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--persistent", action="store_true")
    p.add_argument("--rabbit", default=os.environ.get("WARRENMQ_REFERENCE_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    args = p.parse_args()
    n = args.messages
    amqp, mgmt = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--in-memory", "--no-prometheus", "--no-stomp",
                             "--no-mqtt", "--host", "127.0.0.1", "--port", str(amqp), "--management-port", str(mgmt),
                             "--log-level", "warning"], env=env)
    warren = f"amqp://guest:guest@127.0.0.1:{amqp}/%2F"
    api = f"http://127.0.0.1:{mgmt}/api"
    tag = f"shovel-bench-{os.getpid()}"
    src, dst = f"{tag}-src", f"{tag}-dst"
    common = {"ack-mode": "on-confirm", "src-prefetch-count": args.prefetch, "src-queue": src, "dest-queue": dst}
    rows = {"WarrenMQ's shovel, WarrenMQ -> RabbitMQ": [], "RabbitMQ's shovel, WarrenMQ -> RabbitMQ": [],
            "RabbitMQ's shovel, RabbitMQ -> RabbitMQ (same node, reference)": []}
    try:
        for _ in range(100):
            try:
                http("GET", api + "/overview")
                break
            except OSError:
                time.sleep(0.1)
        for _ in range(args.runs):
            # WarrenMQ's shovel
            delete_queue(args.rabbit, dst)
            preload(warren, src, n, args.size, args.persistent)
            start = time.perf_counter()
            http("PUT", f"{api}/parameters/shovel/%2F/{tag}", {"value": {**common, "src-uri": "amqp://",
                                                                        "dest-uri": args.rabbit}})
            end = wait_count(args.rabbit, dst, n)
            http("DELETE", f"{api}/parameters/shovel/%2F/{tag}")
            rows["WarrenMQ's shovel, WarrenMQ -> RabbitMQ"].append(n / (end - start))
            # RabbitMQ's shovel, the same route
            delete_queue(args.rabbit, dst)
            preload(warren, src, n, args.size, args.persistent)
            start = time.perf_counter()
            ctl("set_parameter", "shovel", tag, json.dumps({**common, "src-uri": warren, "dest-uri": "amqp://"}))
            end = wait_count(args.rabbit, dst, n)
            ctl("clear_parameter", "shovel", tag)
            rows["RabbitMQ's shovel, WarrenMQ -> RabbitMQ"].append(n / (end - start))
            # RabbitMQ's shovel within RabbitMQ
            delete_queue(args.rabbit, dst)
            preload(args.rabbit, src, n, args.size, args.persistent)
            start = time.perf_counter()
            ctl("set_parameter", "shovel", tag, json.dumps({**common, "src-uri": "amqp://", "dest-uri": "amqp://"}))
            end = wait_count(args.rabbit, dst, n)
            ctl("clear_parameter", "shovel", tag)
            rows["RabbitMQ's shovel, RabbitMQ -> RabbitMQ (same node, reference)"].append(n / (end - start))
    finally:
        proc.terminate()
        proc.wait(10)
        for q in (src, dst):
            delete_queue(args.rabbit, q)
    mode = "persistent" if args.persistent else "transient"
    print(f"{n} {mode} messages of {args.size} B, on-confirm, prefetch {args.prefetch}, median of {args.runs}")
    print("| shovel | msg/s (median) | runs |")
    print("|---|---|---|")
    for name, rates in rows.items():
        print(f"| {name} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} |")


if __name__ == "__main__":
    main()
