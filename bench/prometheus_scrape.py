"""How long a Prometheus scrape of ``/metrics/per-object`` takes with 10,000 queues: WarrenMQ and RabbitMQ.

For each broker this script declares ``--queues`` queues (non-durable, named
``<prefix>-<i>``) over AMQP, publishes one message to every tenth, keeps a
consumer on every hundredth (so the series carry real values), then times
``--runs`` scrapes of ``/metrics/per-object`` and of ``/metrics`` (time until
the whole body is received, uncompressed, as Prometheus without gzip would),
reports the median and the body size, and deletes its queues.

WarrenMQ runs as ``python -m warrenmq`` from this checkout's ``src/`` (in memory,
management off, metrics on a free port); RabbitMQ is an existing node with the
rabbitmq_prometheus plugin (``--rabbit-amqp``/``--rabbit-metrics``; the probe
node by default), left as it was found.  The scrape reads counters the domain
keeps anyway: nothing on the message path changes for it.  Needs pika.
Run: ``python bench/prometheus_scrape.py`` (``--skip-rabbit`` for WarrenMQ alone).
"""
from __future__ import annotations

import argparse
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


def timed_get(url: str) -> tuple:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as r:
        body = r.read()
    return time.perf_counter() - t, len(body)


def populate(amqp_url: str, n: int, prefix: str):
    c = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = c.channel()
    for i in range(n):
        ch.queue_declare(f"{prefix}-{i}")
        if i % 10 == 0:
            ch.basic_publish("", f"{prefix}-{i}", b"x")
    cons = c.channel()
    for i in range(0, n, 100):
        cons.basic_consume(f"{prefix}-{i}", lambda *a: None)
    c.process_data_events(0.5)
    return c


def cleanup(amqp_url: str, n: int, prefix: str):
    c = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = c.channel()
    for i in range(n):
        ch.queue_delete(f"{prefix}-{i}")
    c.close()


def measure(name: str, metrics_url: str, runs: int, expect_series: int) -> dict:
    out = {"broker": name}
    for path in ("/metrics/per-object", "/metrics"):
        times, size = [], 0
        for _ in range(runs):
            dt, size = timed_get(metrics_url + path)
            times.append(dt)
        out[path] = (statistics.median(times), min(times), size)
    with urllib.request.urlopen(metrics_url + "/metrics/per-object", timeout=120) as r:
        text = r.read().decode()
    series = text.count("rabbitmq_queue_messages_ready{")
    assert series >= expect_series, (name, series)
    out["queue_series"] = series
    return out


def report(res: dict) -> None:
    for path in ("/metrics/per-object", "/metrics"):
        med, best, size = res[path]
        print(f"{res['broker']:10} GET {path:20} median {med:.3f} s  best {best:.3f} s  {size / 1e6:.1f} MB"
              f"  ({res['queue_series']} queues)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queues", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--prefix", default="prom-bench")
    ap.add_argument("--skip-rabbit", action="store_true")
    ap.add_argument("--rabbit-amqp", default="amqp://guest:guest@127.0.0.1:5673/%2F")
    ap.add_argument("--rabbit-metrics", default="http://127.0.0.1:15693")
    args = ap.parse_args(argv)

    port, pport = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WARRENMQ_")}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--host", "127.0.0.1", "--port", str(port),
                             "--in-memory", "--no-management", "--prometheus-port", str(pport),
                             "--log-level", "warning"], env=env)
    try:
        url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline
                time.sleep(0.1)
        t = time.perf_counter()
        conn = populate(url, args.queues, args.prefix)
        print(f"warrenmq: {args.queues} queues declared in {time.perf_counter() - t:.1f} s", flush=True)
        res = measure("warrenmq", f"http://127.0.0.1:{pport}", args.runs, args.queues)
        conn.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    report(res)

    if not args.skip_rabbit:
        t = time.perf_counter()
        conn = populate(args.rabbit_amqp, args.queues, args.prefix)
        print(f"rabbitmq: {args.queues} queues declared in {time.perf_counter() - t:.1f} s", flush=True)
        try:
            deadline = time.monotonic() + 120
            while True:  # RabbitMQ's queue metrics appear once each queue has emitted its stats (5 s)
                with urllib.request.urlopen(args.rabbit_metrics + "/metrics/per-object", timeout=120) as r:
                    text = r.read().decode()
                if text.count(f'queue="{args.prefix}-') >= args.queues * 3 or time.monotonic() > deadline:
                    break
                time.sleep(2)
            rres = measure("rabbitmq", args.rabbit_metrics, args.runs, args.queues)
        finally:
            conn.close()
            cleanup(args.rabbit_amqp, args.queues, args.prefix)
        report(rres)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
