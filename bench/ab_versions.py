"""Wall-clock A/B of two versions of WarrenMQ's source on this machine, WarrenMQ only.

Each version's broker runs as ``python -m warrenmq`` from its own ``src`` directory, management on
(an ephemeral port) and polled as an open web UI would (``/api/overview`` and ``/api/queues`` every
5 s); the same load generator (``warrenmq perf`` from ``--perf-src``) drives both; the versions
alternate, the order flipping every repetition, and each row prints the consumer's rate while
publishing.  Use it on a quiet machine: single runs on a loaded one vary by tens of percent.

    git worktree add --detach /tmp/base <commit>
    python bench/ab_versions.py --a /tmp/base/src --b src --reps 5 --duration 10
"""
import argparse
import base64
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

SCENARIOS = {"1 -> 1, 16 B, autoack": ["-x1", "-y1", "-s16", "-a"],
             "1 -> 1, 16 B, manual ack, prefetch 100": ["-x1", "-y1", "-s16", "-q100"],
             "4 -> 1 -> 4, 16 B, manual ack, prefetch 100": ["-x4", "-y4", "-s16", "-q100"]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def poll(mport: int, stop: threading.Event) -> None:
    auth = "Basic " + base64.b64encode(b"guest:guest").decode()
    while not stop.wait(5):
        for path in ("/api/overview", "/api/queues"):
            try:
                urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{mport}{path}",
                                                              headers={"Authorization": auth}), timeout=5).read()
            except OSError:
                pass


def run(src: str, perf_src: str, args: list, duration: int) -> float:
    port, mport = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen([sys.executable, "-m", "warrenmq", "--host", "127.0.0.1", "--port", str(port),
                                   "--data-dir", data, "--log-level", "warning", "--management-port", str(mport)],
                                  # no metrics, MQTT or STOMP listeners (their ports may be taken); older versions ignore these
                                  env=dict(os.environ, PYTHONPATH=src, WARRENMQ_PROMETHEUS_ENABLED="false",
                                           WARRENMQ_MQTT_ENABLED="false", WARRENMQ_STOMP_ENABLED="false"),
                                  stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                    break
                except OSError:
                    time.sleep(0.1)
            stop = threading.Event()
            threading.Thread(target=poll, args=(mport, stop), daemon=True).start()
            out = subprocess.run([sys.executable, "-m", "warrenmq", "perf", "--url",
                                  f"amqp://guest:guest@127.0.0.1:{port}/%2F", *args, "-z", str(duration),
                                  "--json", "--quiet"], env=dict(os.environ, PYTHONPATH=perf_src),
                                 capture_output=True, text=True, check=True)
            stop.set()
        finally:
            broker.terminate()
            broker.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])["window"]["consume_rate"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", required=True, help="src directory of version A (before)")
    ap.add_argument("--b", required=True, help="src directory of version B (after)")
    ap.add_argument("--perf-src", default="src", help="src directory whose `warrenmq perf` drives both")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    a = ap.parse_args()
    print("| scenario | A msg/s | B msg/s | B / A |\n|---|---:|---:|---:|")
    for name, args in SCENARIOS.items():
        rates = {"a": [], "b": []}
        for i in range(a.reps):
            for v in ("a", "b") if i % 2 == 0 else ("b", "a"):
                rates[v].append(run(getattr(a, v), a.perf_src, args, a.duration))
        ma, mb = statistics.median(rates["a"]), statistics.median(rates["b"])
        print(f"| {name} | {ma:,.0f} | {mb:,.0f} | {mb / ma:.3f} |", flush=True)


if __name__ == "__main__":
    main()
