"""Embedded broker start-up: from ``start()`` to a connection being served.

Measures, for each start, the time from calling ``start()`` until a client
socket has connected, sent the AMQP protocol header and received the broker's
``connection.start`` frame: the moment a test's client could begin its
handshake.  Stopping is timed separately (``stop()`` after that client has
closed its socket): start plus stop is what the per-test fixture costs.
Prints the median (and spread) over ``--runs`` starts for both embedded
variants:

* ``EmbeddedBroker`` (own thread and event loop: what the pytest fixtures use);
* ``AsyncEmbeddedBroker`` (on the caller's running loop);

and over as many ``reset()`` calls (until a new connection is served again),
which is what the session-scoped fixture costs per test.

Imports happen before the first measurement, and one unmeasured run warms up
each variant.  Run: ``python bench/startup.py [--runs 50]``.
"""
from __future__ import annotations

import argparse
import asyncio
import platform
import socket
import statistics
import sys
import time

from warrenmq import __version__
from warrenmq.testing import AsyncEmbeddedBroker, EmbeddedBroker

AMQP_HEADER = b"AMQP\x00\x00\x09\x01"


def served(port: int) -> None:
    """Connect, send the protocol header, wait for the connection.start method frame."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(AMQP_HEADER)
        data = s.recv(7)
        if not data or data[0] != 1:  # a method frame
            raise RuntimeError(f"unexpected reply from the broker: {data!r}")


async def served_async(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(AMQP_HEADER)
    data = await reader.readexactly(7)
    if data[0] != 1:
        raise RuntimeError(f"unexpected reply from the broker: {data!r}")
    writer.close()
    await writer.wait_closed()


def threaded(runs: int) -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        b = EmbeddedBroker().start()
        served(b.port)
        t1 = time.perf_counter()
        b.stop()
        t2 = time.perf_counter()
        if i:  # the first start is the warm-up
            starts.append(t1 - t0)
            stops.append(t2 - t1)
    return starts, stops


async def on_loop(runs: int) -> tuple[list[float], list[float]]:
    starts, stops = [], []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        b = AsyncEmbeddedBroker()
        await b.start()
        await served_async(b.port)
        t1 = time.perf_counter()
        await b.stop()
        t2 = time.perf_counter()
        if i:
            starts.append(t1 - t0)
            stops.append(t2 - t1)
    return starts, stops


def resets(runs: int) -> list[float]:
    """``reset()`` of a running broker: what the session fixture costs per test."""
    times = []
    with EmbeddedBroker() as b:
        for i in range(runs + 1):
            t0 = time.perf_counter()
            b.reset()
            served(b.port)
            t1 = time.perf_counter()
            if i:
                times.append(t1 - t0)
    return times


def report(name: str, times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    return (f"{name:<26} median {statistics.median(ms):7.2f} ms   min {ms[0]:7.2f}   p90 {p90:7.2f}   "
            f"max {ms[-1]:7.2f}   ({len(ms)} runs)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=50, help="measured starts per variant (default 50)")
    args = ap.parse_args(argv)
    print(f"WarrenMQ {__version__}, Python {platform.python_version()} ({sys.implementation.name}), "
          f"{platform.system()} {platform.machine()}")
    print("start() until a client connection gets connection.start, then stop():")
    for name, (starts, stops) in (("EmbeddedBroker", threaded(args.runs)),
                                  ("AsyncEmbeddedBroker", asyncio.run(on_loop(args.runs)))):
        print(report(f"{name} start", starts))
        print(report(f"{name} stop", stops))
    print(report("EmbeddedBroker reset", resets(args.runs)))


if __name__ == "__main__":
    main()
