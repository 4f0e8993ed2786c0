"""Every script in examples/ run as a user runs it: ``python examples/<name>.py URL``.

Each test starts a fresh :class:`~warrenmq.testing.EmbeddedBroker`, runs the
example as a subprocess with the broker's URL, and checks its output and exit
status.  Examples with separate roles (listener and sender, worker, server and
client) are also run as separate processes; a long-running role is started with
:class:`Script`, which waits for the lines it prints (never sleeps) and stops it
with Ctrl-C (SIGINT), as a user would.

Every example first prints the broker it reached ("connected to WarrenMQ 0.1.0
on Python 3.11.7 at 127.0.0.1:PORT"); :func:`ok` checks that line and returns
the lines after it.

Set ``WARRENMQ_CLIENT_TESTS_URL`` (as for tests/clients) to run them against
another broker, e.g. a real RabbitMQ.
"""
from __future__ import annotations

import os
import platform
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from warrenmq import __version__
from warrenmq.testing import EmbeddedBroker

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TIMEOUT = 30.0  # upper bound for one example run; each takes well under 2 s
NOT_FOUND_LOGS = "NOT_FOUND - no exchange 'logs' in vhost '/'"

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def url():
    other = os.environ.get("WARRENMQ_CLIENT_TESTS_URL")
    if other:
        yield other
        return
    with EmbeddedBroker() as broker:
        yield broker.url


def run(name: str, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / f"{name}.py"), *args], capture_output=True, text=True,
                          timeout=TIMEOUT, env={**os.environ, **(env or {})})


def connected_line(url: str) -> str:
    """What an example prints first: the broker it reached (a pattern when that is another broker)."""
    u = urlsplit(url)
    where = f"{u.hostname}:{u.port or 5672}"
    if os.environ.get("WARRENMQ_CLIENT_TESTS_URL"):
        return rf"connected to .+ at {re.escape(where)}"
    return re.escape(f"connected to WarrenMQ {__version__} on Python {platform.python_version()} at {where}")


def ok(name: str, *args: str, env: dict | None = None) -> list[str]:
    """Run an example that must succeed; its output lines after the first, which names the broker."""
    r = run(name, *args, env=env)
    assert r.returncode == 0, f"{name} exited {r.returncode}\n--- stdout\n{r.stdout}\n--- stderr\n{r.stderr}"
    assert r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    url = next((a for a in args if "://" in a), None) or (env or {}).get("AMQP_URL")
    assert lines and re.fullmatch(connected_line(url), lines[0]), lines[:1]
    return lines[1:]


class Script:
    """A long-running example in the background, its output lines read as they come."""

    def __init__(self, name: str, *args: str):
        self.proc = subprocess.Popen([sys.executable, "-u", str(EXAMPLES / f"{name}.py"), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, pattern: str, timeout: float = TIMEOUT) -> re.Match:
        """Wait for an output line matching ``pattern``; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; got {self.seen}") from None
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before printing {pattern!r}; got {self.seen}\n"
                                     f"{self.proc.stderr.read()}")
            self.seen.append(line)
            m = re.search(pattern, line)
            if m:
                return m

    def interrupt(self) -> int:
        """Ctrl-C; the example must then exit cleanly (status 0, nothing on stderr)."""
        self.proc.send_signal(signal.SIGINT)
        status = self.proc.wait(timeout=TIMEOUT)
        err = self.proc.stderr.read()
        assert (status, err) == (0, ""), err
        return status

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc.stderr.close()


@pytest.fixture
def background():
    """Start examples with ``background(name, *args)``; anything left running is killed."""
    scripts = []

    def start(name, *args):
        scripts.append(Script(name, *args))
        return scripts[-1]

    yield start
    for s in scripts:
        s.kill()


# ------------------------------------------------------------------ broadcast
BROADCAST = ["info: the system is up", "warning: disk 90% full", "error: disk full"]


def test_broadcast_demo_reaches_every_listener(url):
    lines = ok("broadcast", url)
    for i in (1, 2, 3):
        assert [ln for ln in lines if ln.startswith(f"listener-{i}: got")] == [
            f"listener-{i}: got {m!r}" for m in BROADCAST]
    assert lines[-1] == "demo: messages received per listener: {'listener-1': 3, 'listener-2': 3, 'listener-3': 3}"


def test_broadcast_sender_without_listeners_gets_not_found(url):
    r = run("broadcast", "send", url)
    assert r.returncode == 1
    assert r.stderr == f"sender: {NOT_FOUND_LOGS}\n"
    assert "sent" not in r.stdout


def test_broadcast_listener_processes_and_a_sender_process(url, background):
    listeners = [background("broadcast", "listen", url) for _ in range(2)]
    for listener in listeners:
        listener.expect(f"^{connected_line(url)}$")
        listener.expect(r"^listener: listening on amq\.gen-")
        assert len(listener.seen) == 2  # the broker's name came first
    assert ok("broadcast", "send", url) == [f"sender: sent {m!r}" for m in BROADCAST]
    for listener in listeners:
        for m in BROADCAST:
            listener.expect(f"^listener: got {re.escape(repr(m))}$")
        listener.interrupt()
    # the listeners' queues went with their connections, and the auto-delete exchange with them
    r = run("broadcast", "send", url)
    assert (r.returncode, r.stderr) == (1, f"sender: {NOT_FOUND_LOGS}\n")


# ------------------------------------------------------------------ direct, topic, headers
def test_direct_queue_demo(url):
    assert ok("direct_queue", url) == [
        "sent 'Hello World!'", "sent 'second message'", "sent 'third message'",
        "received 'Hello World!'", "received 'second message'", "received 'third message'"]


def test_direct_queue_send_then_receive(url, background):
    assert ok("direct_queue", "send", url, "first", "second") == ["sent 'first'", "sent 'second'"]
    receiver = background("direct_queue", "receive", url)
    receiver.expect("^received 'first'$")
    receiver.expect("^received 'second'$")
    receiver.interrupt()


def test_direct_routing_demo(url):
    assert ok("direct_routing", url) == [
        "errors   binds error               got: [error] disk full, [error] disk still full",
        "console  binds info warning error  got: [info] the system is up, [warning] disk 90% full, "
        "[error] disk full, [error] disk still full",
    ]


def test_direct_routing_listener_gets_only_its_keys(url, background):
    listener = background("direct_routing", "listen", url, "warning", "error")
    listener.expect(r"^listening for warning, error on amq\.gen-")
    assert ok("direct_routing", "send", url, "info", "the system is up") == ["sent [info] 'the system is up'"]
    assert ok("direct_routing", "send", url, "error", "disk", "full") == ["sent [error] 'disk full'"]
    listener.expect(r"^got \[error\] 'disk full'$")
    assert not [ln for ln in listener.seen if "[info]" in ln]  # sent first, bound by nobody: dropped
    listener.interrupt()


def test_direct_routing_send_needs_a_severity(url):
    r = run("direct_routing", "send", url)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", "usage: direct_routing.py send [URL] SEVERITY [TEXT...]\n")


def test_topic_routing(url):
    got = {ln.split()[0]: ln.split("got: ")[1] for ln in ok("topic_routing", url)}
    assert got == {
        "kernel": "kern.critical, kern.info",
        "critical": "kern.critical, auth.critical",
        "auth-or-critical": "kern.critical, auth.info, auth.critical",
        "everything": "kern.critical, kern.info, auth.info, auth.critical, cron.warning, app.db.critical",
    }


def test_headers_routing(url):
    assert ok("headers_routing", url) == [
        "pdf-reports: monthly report (pdf)",
        "pdf-or-logs: monthly report (pdf), server log (pdf), access log (text)",
    ]


def test_url_from_the_environment(url):
    assert len(ok("headers_routing", env={"AMQP_URL": url})) == 2


# ------------------------------------------------------------------ work queue
def test_work_queue_demo_dispatches_fairly(url):
    lines = ok("work_queue", url)
    summary = dict(re.match(r"^(worker-\d) did \d+ task\(s\): (.*)$", ln).groups()
                   for ln in lines if " did " in ln)
    # prefetch 1: whoever took the long task (it takes 1.5 s, the others none) did nothing else
    long_task = next(w for w, tasks in summary.items() if "render video" in tasks)
    other = next(w for w in summary if w != long_task)
    assert summary[long_task] == "render video"
    assert summary[other] == ", ".join(f"resize image {i}" for i in range(1, 9))


def test_work_queue_send_and_worker(url, background):
    assert ok("work_queue", "send", url, "first.", "second") == ["sent 'first.'", "sent 'second'"]
    worker = background("work_queue", "worker", url)
    worker.expect("^worker: done 'first.'$")
    worker.expect("^worker: done 'second'$")
    worker.interrupt()


# ------------------------------------------------------------------ RPC
FIB = ["client: fib(30) = 832040", "client: fib(1) = 1", "client: fib(2) = 1", "client: fib(3) = 2",
       "client: fib(10) = 55", "client: fib(20) = 6765"]


def test_rpc_demo(url):
    lines = ok("rpc", url)
    assert [ln for ln in lines if ln.startswith("client:")] == FIB
    servers = [ln for ln in lines if ln.startswith("server:") and "requested" in ln]
    assert len(servers) == 6
    # every request named the client's own server-named reply queue, each with its own correlation id
    reply_queues = {re.search(r"reply_to=(\S+),", ln).group(1) for ln in servers}
    assert len(reply_queues) == 1 and reply_queues.pop().startswith("amq.gen-")
    assert len({re.search(r"correlation_id=(\S+)\)", ln).group(1) for ln in servers}) == 6


def test_rpc_direct_reply_to_demo(url):
    lines = ok("rpc_direct_reply_to", url)
    assert [ln for ln in lines if ln.startswith("client:")] == FIB
    addresses = {ln.split("replying to ")[1] for ln in lines if "replying to" in ln}
    assert len(addresses) == 1
    assert re.fullmatch(r"amq\.rabbitmq\.reply-to\.\S+", addresses.pop())


@pytest.mark.parametrize("name", ["rpc", "rpc_direct_reply_to"])
def test_rpc_server_and_client_processes(url, background, name):
    server = background(name, "server", url)
    server.expect("^server: waiting for requests")
    assert ok(name, "client", url, "7", "25") == ["client: fib(7) = 13", "client: fib(25) = 75025"]
    server.interrupt()


# ------------------------------------------------------------------ pipeline
def test_pipeline(url):
    lines = ok("pipeline", url)
    words = "Pack my box with five dozen liquor jugs while the quick brown fox jumps over the Lazy dog".split()
    answers = sorted(re.match(r"^processor-[123]: (\S+) -> (\S+) \(from pipeline\.(upper|lower)\)$", ln).groups()
                     for ln in lines if ln.startswith("processor-"))
    expected = sorted((w, w.upper(), "upper") if w[0].lower() <= "m" else (w, w.lower(), "lower") for w in words)
    assert answers == expected  # every word answered once, by the right responder
    assert lines[-1].startswith(f"pipeline: {len(words)} words in, {len(words)} answers out")


# ------------------------------------------------------------------ sync and async
@pytest.mark.parametrize("name, label", [("sync_producer_consumer", "sync (pika BlockingConnection)"),
                                         ("async_producer_consumer", "async (aio-pika)")])
def test_producer_consumer(url, name, label):
    [line] = ok(name, url, "500")
    assert re.fullmatch(re.escape(label) + r": 500 messages published and confirmed in \d+\.\d\d s \(\d+ msg/s\), "
                        r"all consumed and acked after \d+\.\d\d s \(\d+ msg/s\)", line), line
