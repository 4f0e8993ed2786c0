"""How long ``GET /api/queues`` takes with 10,000 queues: WarrenMQ and RabbitMQ.

RabbitMQ users report 8-9 s per listing at 6,000 queues (rabbitmq-management
#50) and a statistics collector that becomes the bottleneck at 16,000 (#41);
WarrenMQ's target is under 0.5 s at 10,000.  For each broker this script

* declares ``--queues`` queues (non-durable, named ``<prefix>-<i>``) over AMQP,
  publishes one message to every tenth of them and consumes and acks it from
  every hundredth, so listings carry ``message_stats`` and rates as in real use;
* waits two sampling intervals (RabbitMQ: until its listing shows every queue,
  its statistics being emitted every 5 s);
* times ``--runs`` full listings (``GET /api/queues``: time until the whole
  body is received, JSON not parsed) and as many paged ones
  (``?page=1&page_size=100&sort=name``, what the management UI asks for);
* deletes its queues.

WarrenMQ runs as ``python -m warrenmq`` from this checkout's ``src/`` with
management on (and once more with ``--no-statistics`` when
``--no-stats-run`` is given); RabbitMQ is an existing node with the management
plugin (``--rabbit-amqp``/``--rabbit-http``; the probe node by default), left as
it was found.  Needs pika.  Run: ``python bench/mgmt_listing.py`` (``--skip-rabbit``
to measure WarrenMQ alone).
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
import tempfile
import time
import urllib.request
from pathlib import Path

import pika

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(base: str, path: str, auth=("guest", "guest")) -> tuple[float, bytes]:
    req = urllib.request.Request(base + path)
    req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=300) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def populate(amqp_url: str, prefix: str, n: int) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    for i in range(n):
        ch.queue_declare(f"{prefix}-{i:05d}")
    for i in range(0, n, 10):
        ch.basic_publish("", f"{prefix}-{i:05d}", b"x" * 16)
    for i in range(0, n, 100):
        m = ch.basic_get(f"{prefix}-{i:05d}")
        if m[0] is not None:
            ch.basic_ack(m[0].delivery_tag)
    conn.close()


def cleanup(amqp_url: str, prefix: str, n: int) -> None:
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    for i in range(n):
        ch.queue_delete(f"{prefix}-{i:05d}")
    conn.close()


def measure(name: str, amqp_url: str, http: str, prefix: str, n: int, runs: int, settle: float) -> dict:
    t0 = time.monotonic()
    populate(amqp_url, prefix, n)
    declared = time.monotonic() - t0
    deadline = time.monotonic() + 120
    while True:  # until the listing shows every queue (RabbitMQ's stats arrive with a delay)
        _, body = http_get(http, "/api/queues?columns=name")
        seen = sum(1 for q in json.loads(body) if q["name"].startswith(prefix))
        if seen >= n or time.monotonic() > deadline:
            break
        time.sleep(1)
    time.sleep(settle)
    full, paged = [], []
    size = 0
    stats_seen = 0
    for _ in range(runs):
        t, body = http_get(http, "/api/queues")
        full.append(t)
        size = len(body)
        t, _ = http_get(http, "/api/queues?page=1&page_size=100&sort=name")
        paged.append(t)
    items = json.loads(body)
    total = len(items)
    stats_seen = sum(1 for q in items if q["name"].startswith(prefix) and "message_stats" in q)
    return {"broker": name, "queues": n, "listed": total, "with_message_stats": stats_seen,
            "declare_s": round(declared, 2), "body_bytes": size,
            "full_median_s": round(statistics.median(full), 3), "full_max_s": round(max(full), 3),
            "paged_median_s": round(statistics.median(paged), 3), "paged_max_s": round(max(paged), 3)}


def warrenmq(args, extra: list) -> dict:
    port, mport = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    with tempfile.TemporaryDirectory(prefix="mgmt-listing-") as data:
        proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--no-prometheus", "--host", "127.0.0.1", "--port", str(port),
                                 "--data-dir", data, "--log-level", "warning", "--management-port", str(mport),
                                 *extra], env=env, stdin=subprocess.DEVNULL)
        try:
            url = f"amqp://guest:guest@127.0.0.1:{port}/%2F"
            http = f"http://127.0.0.1:{mport}"
            for _ in range(300):
                try:
                    http_get(http, "/api/overview")
                    break
                except OSError:
                    time.sleep(0.1)
            name = "WarrenMQ" + (" " + " ".join(extra) if extra else "")
            return measure(name, url, http, "bench", args.queues, args.runs, settle=2.5)
        finally:
            proc.terminate()
            proc.wait(60)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--queues", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--skip-rabbit", action="store_true")
    ap.add_argument("--no-stats-run", action="store_true", help="also measure WarrenMQ with --no-statistics")
    ap.add_argument("--rabbit-amqp", default="amqp://guest:guest@127.0.0.1:5673/%2F")
    ap.add_argument("--rabbit-http", default="http://127.0.0.1:15673")
    ap.add_argument("--prefix", default="mgmt-listing-bench", help="RabbitMQ queue names' prefix")
    args = ap.parse_args(argv)
    results = [warrenmq(args, [])]
    if args.no_stats_run:
        results.append(warrenmq(args, ["--no-statistics"]))
    if not args.skip_rabbit:
        try:
            results.append(measure("RabbitMQ", args.rabbit_amqp, args.rabbit_http, args.prefix, args.queues,
                                   args.runs, settle=6))
        finally:
            cleanup(args.rabbit_amqp, args.prefix, args.queues)
    print("| broker | queues listed | with message_stats | body | GET /api/queues median (max) | "
          "page of 100 median (max) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['broker']} | {r['listed']:,} | {r['with_message_stats']:,} | {r['body_bytes'] / 1e6:.1f} MB | "
              f"{r['full_median_s']:.3f} s ({r['full_max_s']:.3f}) | {r['paged_median_s']:.3f} s "
              f"({r['paged_max_s']:.3f}) |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
