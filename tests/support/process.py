"""A WarrenMQ broker in a child process (``python -m warrenmq``), for restart and crash tests."""
import os
import signal
import socket
import subprocess
import sys
import time


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BrokerProcess:
    def __init__(self, data_dir: str, *extra: str, port: int | None = None, env: dict | None = None):
        self.data_dir = data_dir
        self.env = None if env is None else {**os.environ, **env}
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(data_dir.rstrip("/")) or ".", f"broker-{self.port}.log")

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self, timeout: float = 20.0) -> "BrokerProcess":
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "warrenmq", "--no-prometheus", "--no-stomp", "--no-mqtt", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", self.data_dir, "--log-level", "info", "--no-management", *self.extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self.env)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"broker exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"broker did not start:\n{self.log()}") from None
                time.sleep(0.02)

    def rss(self) -> int:
        """The broker process's resident set size in bytes."""
        with open(f"/proc/{self.proc.pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def log(self) -> str:
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait: a clean shutdown."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL: a crash."""
        self.proc.kill()
        self.proc.wait(timeout=20)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        if self.proc is not None and self.proc.poll() is None:
            self.kill()
