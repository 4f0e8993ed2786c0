"""STOMP throughput: one publisher, one subscriber, through a queue, on WarrenMQ and on RabbitMQ.

Raw-socket STOMP 1.2 clients (a client library would be the bottleneck): the subscriber SUBSCRIBEs to
``/queue/<name>`` (``ack:auto``, or ``client`` with a cumulative ACK after each read and ``prefetch-count``
``--prefetch``), then the publisher sends ``--messages`` SEND frames of ``--size`` bytes as fast as the
socket takes them (pipelined, no receipts); the time is from the first SEND to the last MESSAGE received.
Each scenario runs ``--runs`` times; the median rate is reported.

WarrenMQ runs as ``python -m warrenmq`` from this checkout's ``src/`` (in memory, only AMQP and STOMP on
free ports); RabbitMQ is an existing node with the STOMP plugin (``--rabbit-stomp``, the probe node's
61614 by default; ``--rabbit-amqp`` to delete the benchmark's queue afterwards).
Run: ``python bench/stomp_throughput.py`` (``--skip-rabbit`` for WarrenMQ alone).
"""
from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONNECT = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(CONNECT)
    data = b""
    while b"\0" not in data:
        data += s.recv(4096)
    assert data.startswith(b"CONNECTED"), data
    return s


def run_once(port: int, queue: str, n: int, size: int, ack: str, prefetch: int) -> float:
    sub = connect(port)
    headers = f"SUBSCRIBE\ndestination:/queue/{queue}\nid:b\nack:{ack}\nreceipt:ready\n"
    if ack != "auto":
        headers += f"prefetch-count:{prefetch}\n"
    sub.sendall(headers.encode() + b"\n\0")
    data = b""
    while b"RECEIPT" not in data:
        data += sub.recv(4096)
    done = threading.Event()
    result = {}

    def consume():
        count = 0
        tail = b""
        last_ack = None
        while count < n:
            chunk = sub.recv(1 << 18)
            if not chunk:
                break
            buf = tail + chunk
            count += buf.count(b"MESSAGE\n") - tail.count(b"MESSAGE\n")
            if ack != "auto":  # client: one cumulative ACK of the last message seen in this read
                i = buf.rfind(b"\nack:")
                j = buf.find(b"\n", i + 5) if i >= 0 else -1
                if j > 0 and buf[i + 5:j] != last_ack:
                    last_ack = buf[i + 5:j]
                    sub.sendall(b"ACK\nid:" + last_ack + b"\n\n\0")
            tail = buf[-80:]
        result["end"] = time.perf_counter()
        done.set()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    pub = connect(port)
    frame = f"SEND\ndestination:/queue/{queue}\ncontent-length:{size}\n\n".encode() + b"x" * size + b"\0"
    batch = frame * 200
    start = time.perf_counter()
    sent = 0
    while sent < n:
        k = min(200, n - sent)
        pub.sendall(batch if k == 200 else frame * k)
        sent += k
    done.wait(120)
    pub.close()
    sub.close()
    if "end" not in result:
        raise RuntimeError("the subscriber did not get every message in 120 s")
    return n / (result["end"] - start)


def scenario(port: int, queue: str, args, ack: str) -> list:
    return [run_once(port, queue, args.messages, args.size, ack, args.prefetch) for _ in range(args.runs)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--size", type=int, default=16)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--prefetch", type=int, default=100)
    p.add_argument("--rabbit-stomp", type=int, default=61614)
    p.add_argument("--rabbit-amqp", default="amqp://guest:guest@127.0.0.1:5673/%2F")
    p.add_argument("--skip-rabbit", action="store_true")
    args = p.parse_args()
    queue = f"stomp-bench-{os.getpid()}"
    amqp, stomp = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--in-memory", "--no-management", "--no-prometheus",
                             "--no-mqtt", "--no-web-stomp", "--host", "127.0.0.1", "--port", str(amqp),
                             "--stomp-port", str(stomp), "--log-level", "warning"], env=env)
    rows = []
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", stomp)).close()
                break
            except OSError:
                time.sleep(0.1)
        for ack in ("auto", "client"):
            rows.append(("WarrenMQ", ack, scenario(stomp, queue, args, ack)))
    finally:
        proc.terminate()
        proc.wait(10)
    if not args.skip_rabbit:
        try:
            for ack in ("auto", "client"):
                rows.append(("RabbitMQ", ack, scenario(args.rabbit_stomp, queue, args, ack)))
        finally:
            import pika
            conn = pika.BlockingConnection(pika.URLParameters(args.rabbit_amqp))
            conn.channel().queue_delete(queue)
            conn.close()
    print(f"{args.messages} messages of {args.size} B, 1 publisher -> 1 subscriber, median of {args.runs}")
    print("| broker | ack | msg/s (median) | runs |")
    print("|---|---|---|---|")
    for broker, ack, rates in rows:
        print(f"| {broker} | {ack} | {statistics.median(rates):,.0f} | {', '.join(f'{r:,.0f}' for r in rates)} |")


if __name__ == "__main__":
    main()
