"""A publisher flooding the MQTT listener does not hold up the other connections: the listener reads at
most a small buffer at a time and yields its loop turn once a connection has handed the session its
budget of work (transport/mqtt.py), as the AMQP listener does.  Raw sockets against the ``warrenmq``
command (uvloop, as it runs: libuv reads a readable socket up to 32 times in one callback)."""
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from support.process import free_port


@pytest.fixture
def mqtt_port(tmp_path):
    port = free_port()
    log = open(tmp_path / "broker.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "warrenmq", "--in-memory", "--host", "127.0.0.1",
                             "--port", str(free_port()), "--mqtt-port", str(port), "--no-management",
                             "--no-prometheus", "--no-stomp", "--no-web-stomp", "--no-web-mqtt"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert proc.poll() is None, (tmp_path / "broker.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "the broker did not start"
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def _connect(port: int, client_id: str) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    body = b"\x00\x04MQTT\x04\x02\x00\x00" + struct.pack(">H", len(client_id)) + client_id.encode()
    s.sendall(b"\x10" + bytes([len(body)]) + body)
    assert s.recv(4) == b"\x20\x02\x00\x00"
    return s


def test_a_flooding_publisher_does_not_stall_another_connection(mqtt_port):
    port = mqtt_port
    flood = _connect(port, "flood")
    pinger = _connect(port, "pinger")
    pinger.settimeout(30)
    topic = b"flood/nobody/listens"
    packet = b"\x30" + bytes([2 + len(topic) + 16]) + struct.pack(">H", len(topic)) + topic + b"x" * 16
    chunk = packet * 20000  # 740 KB
    stop = threading.Event()

    def send():
        while not stop.is_set():
            try:
                flood.sendall(chunk)
            except OSError:
                return

    t = threading.Thread(target=send, daemon=True)
    t.start()
    time.sleep(0.5)  # the flood's socket buffers fill: megabytes wait to be read in one go
    rtts = []
    try:
        for _ in range(20):
            t0 = time.monotonic()
            pinger.sendall(b"\xc0\x00")
            assert pinger.recv(2) == b"\xd0\x00"
            rtts.append(time.monotonic() - t0)
    finally:
        stop.set()
        flood.close()
        pinger.close()
        t.join(10)
    # the listener used to read up to 32 x 256 KiB of one socket in one loop callback (libuv): a ping
    # waited behind 200,000 publishes, about a second; now behind one 16 KiB read at most per turn
    assert max(rtts) < 0.3, rtts
