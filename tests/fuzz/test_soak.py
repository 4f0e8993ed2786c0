"""The fuzz cases over real sockets to a real broker (a ``python -m warrenmq`` subprocess): a fixed
number of cases (cases.py, derandomized), each on its own connection, then the broker's resident
memory and open file descriptors are compared with what they were after a warm-up.

Marked ``slow``: the default run leaves it out (pyproject's ``-m 'not slow'``).  Run it with
``python -m pytest -m slow tests/fuzz`` (WARRENMQ_SOAK_CASES: the number of cases, 2,000 by default;
about two minutes on a quiet 2-core machine).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import amqp_reference as ref
import pytest
from cases import cases, chunks
from hypothesis import HealthCheck, given, settings

SRC = str(Path(__file__).resolve().parents[2] / "src")
CASES = int(os.environ.get("WARRENMQ_SOAK_CASES", "2000"))
WARMUP = 200
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture(scope="module")
def broker():
    port = free_port()
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", str(port),
                             "--in-memory", "--log-level", "error", "--no-management"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "the broker did not start"
            time.sleep(0.1)
    yield proc, port
    proc.terminate()
    _, err = proc.communicate(timeout=10)
    assert b"Traceback" not in err, err.decode(errors="replace")[-3000:]


def read_until_eof(sock: socket.socket, timeout: float) -> bytes:
    got = b""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            data = sock.recv(65536)
        except socket.timeout:
            break
        except OSError:
            break
        if not data:
            break
        got += data
    return got


def handshake(sock: socket.socket) -> None:
    """As a client does: each step waits for the broker's answer (the open prefix of the cases)."""
    sock.sendall(ref.PROTOCOL_HEADER)
    _expect(sock, b"\x00\x0a\x00\x0a")
    sock.sendall(ref.start_ok())
    _expect(sock, b"\x00\x0a\x00\x1e")
    sock.sendall(ref.tune_ok(2047, 4096, 0) + ref.connection_open())
    _expect(sock, b"\x00\x0a\x00\x29")
    sock.sendall(ref.channel_open(1))
    _expect(sock, b"\x00\x14\x00\x0b")


def _expect(sock: socket.socket, ids: bytes) -> None:
    buf = b""
    sock.settimeout(5)
    while ids not in buf:
        data = sock.recv(65536)
        assert data, f"closed while waiting for {ids.hex()}: {buf!r}"
        buf += data


def send_case(port: int, case) -> None:
    prefix, data, sizes = case
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        if prefix == "open":
            handshake(sock)
        try:
            for piece in chunks(data, sizes):
                sock.sendall(piece)
            sock.shutdown(socket.SHUT_WR)  # end of input: the broker closes its side
        except OSError:  # the broker already closed (a framing error)
            return
        read_until_eof(sock, 5.0)


def run_cases(port: int, n: int) -> None:
    @settings(max_examples=n, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(cases())
    def run(case):
        send_case(port, case)
    run()


def settle(pid: int, fds_before: int, timeout: float = 15.0) -> int:
    end = time.monotonic() + timeout
    while open_fds(pid) > fds_before and time.monotonic() < end:
        time.sleep(0.2)
    return open_fds(pid)


def test_soak_the_fuzz_cases_over_sockets_leaves_memory_and_descriptors_as_they_were(broker):
    proc, port = broker
    run_cases(port, WARMUP)  # caches, the allocator's arenas
    fds_before = settle(proc.pid, 0, timeout=2.0)
    rss_before = rss_kib(proc.pid)
    run_cases(port, CASES)
    assert proc.poll() is None, "the broker died"
    fds_after = settle(proc.pid, fds_before)
    rss_after = rss_kib(proc.pid)
    print(f"fds {fds_before} -> {fds_after}, RSS {rss_before} -> {rss_after} KiB after {CASES} cases")
    assert fds_after <= fds_before, (fds_before, fds_after)
    # a connection costs a few KiB; the cases leave nothing behind but allocator slack
    assert rss_after - rss_before < 32 * 1024, (rss_before, rss_after)
    # and the broker still serves a client
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        handshake(sock)
