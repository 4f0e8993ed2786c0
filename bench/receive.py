#!/usr/bin/env python3
"""Micro-benchmark of ``ServerConnection.receive_data``, the protocol layer's hot path.

Two buffers, each handed to an opened connection in a single ``receive_data`` call:

* ``publish``: 10,000 pipelined ``basic.publish`` (method, content header, a 16-byte body);
* ``ack``: 10,000 ``basic.ack`` frames.

Each repetition uses a fresh connection (setup not timed); the best and the median of the
repetitions are printed in ns per message.  On a shared machine compare two builds by running
them alternately, e.g.::

    for i in 1 2 3; do
        PYTHONPATH=/tmp/base/src python bench/receive.py
        PYTHONPATH=src python bench/receive.py
    done
"""
from __future__ import annotations

import argparse
import statistics
import time

from warrenmq.protocol import spec
from warrenmq.protocol.connection import OPEN, ServerConnection
from warrenmq.protocol.frames import method_frame
from warrenmq.protocol.spec import PROTOCOL_HEADER

N = 10_000


def opened() -> ServerConnection:
    conn = ServerConnection({"product": "bench"})
    conn.receive_data(PROTOCOL_HEADER)
    conn.receive_data(method_frame(0, spec.ConnectionStartOk({}, "PLAIN", b"\x00guest\x00guest", "en_US")))
    conn.send_tune()
    conn.receive_data(method_frame(0, spec.ConnectionTuneOk(2047, 131072, 60)))
    conn.receive_data(method_frame(0, spec.ConnectionOpen("/", "", False)))
    conn.send_open_ok()
    conn.receive_data(method_frame(1, spec.ChannelOpen("")))
    conn.data_to_send()
    return conn


def frame(ftype: int, ch: int, payload: bytes) -> bytes:
    return bytes((ftype,)) + ch.to_bytes(2, "big") + len(payload).to_bytes(4, "big") + payload + b"\xce"


def publish_buffer(n: int = N) -> bytes:
    body = b"0123456789abcdef"
    one = (method_frame(1, spec.BasicPublish(0, "amq.direct", "bench.key", False, False))
           + frame(2, 1, spec.CLASS_BASIC.to_bytes(2, "big") + bytes(2) + len(body).to_bytes(8, "big")
                   + b"\x10\x00\x01")  # delivery-mode 1
           + frame(3, 1, body))
    return one * n


def ack_buffer(n: int = N) -> bytes:
    return b"".join(method_frame(1, spec.BasicAck(tag, False)) for tag in range(1, n + 1))


def measure(buf: bytes, reps: int) -> list:
    times = []
    for _ in range(reps):
        conn = opened()
        t0 = time.perf_counter_ns()
        events = conn.receive_data(buf)
        t1 = time.perf_counter_ns()
        assert len(events) == N and conn.state == OPEN and not conn.has_output, (len(events), conn.state)
        times.append((t1 - t0) / N)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=60)
    args = ap.parse_args()
    for name, buf in (("publish", publish_buffer()), ("ack", ack_buffer())):
        t = measure(buf, args.reps)
        print(f"{name:8s} best {min(t):7.1f} ns/msg  median {statistics.median(t):7.1f} ns/msg")


if __name__ == "__main__":
    main()
