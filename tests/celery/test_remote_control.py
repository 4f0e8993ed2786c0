"""Remote control: pidbox fanout exchanges, reply queues (x-message-ttl, x-expires), the celery CLI."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time

from celery_harness import TIMEOUT, run_worker


def test_ping_and_inspect(make_app):
    app = make_app()
    with run_worker(app) as worker:
        host = worker.hostname
        assert app.control.ping(destination=[host], timeout=TIMEOUT) == [{host: {"ok": "pong"}}]
        inspect = app.control.inspect(destination=[host], timeout=TIMEOUT)
        stats = inspect.stats()[host]
        assert stats["broker"]["transport"] == "amqp"
        assert stats["pool"]["max-concurrency"] == 1
        assert "tests.add" in inspect.registered()[host]
        assert [q["name"] for q in inspect.active_queues()[host]] == [app.conf.task_default_queue]
        # a broadcast to every worker (no destination) reaches this one too
        replies = app.control.ping(timeout=TIMEOUT, limit=1)
        assert replies == [{host: {"ok": "pong"}}]


def test_control_commands(make_app):
    app = make_app()
    queue = app.conf.task_default_queue
    with run_worker(app) as worker:
        host = worker.hostname
        call = dict(destination=[host], reply=True, timeout=TIMEOUT)
        assert app.control.rate_limit("tests.add", "100/m", **call) == [
            {host: {"ok": "new rate limit set successfully"}}]
        assert app.control.cancel_consumer(queue, **call) == [{host: {"ok": f"no longer consuming from {queue}"}}]
        # celery answers cancel_consumer at once and cancels on its next loop turn (consumer.call_soon):
        # an inspect right after may still see the queue
        inspect = app.control.inspect(destination=[host], timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while (active := inspect.active_queues()[host]) != [] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert active == []
        r = app.tasks["tests.add"].delay(2, 2)  # waits in the queue: nobody consumes it
        assert app.control.add_consumer(queue, **call) == [{host: {"ok": f"add consumer {queue}"}}]
        assert r.get(timeout=TIMEOUT) == 4


def test_pidbox_queues_carry_ttl_and_expires(make_app, warren):
    """Celery declares each worker's pidbox queue (bound to the fanout exchange celery.pidbox)
    with x-message-ttl and x-expires from control_queue_ttl / control_queue_expires."""
    app = make_app(control_queue_ttl=30.0, control_queue_expires=5.0)
    with run_worker(app) as worker:
        assert app.control.ping(destination=[worker.hostname], timeout=TIMEOUT)

        def topology():
            vhost = warren.broker.vhosts["/"]
            q = vhost.queues[f"{worker.hostname}.celery.pidbox"]
            return (q.arguments, q.exclusive, q.auto_delete, len(q.consumers),
                    vhost.exchanges["celery.pidbox"].type, vhost.exchanges["reply.celery.pidbox"].type)
        assert warren.call(topology) == ({"x-message-ttl": 30000, "x-expires": 5000}, True, True, 1,
                                         "fanout", "direct")


def test_rpc_reply_queue_nobody_reads_expires(make_app, warren):
    """rpc:// declares the client's reply queue with x-expires = result_expires.  A client that
    sends a task and never asks for its result leaves a queue that never had a consumer, so
    auto-delete never fires: x-expires removes it (results and all)."""
    app = make_app(result_expires=0.3)
    with run_worker(app):
        sent = time.monotonic()
        r = app.tasks["tests.add"].delay(1, 2)
        reply_queue = app.backend.oid

        def state():
            q = warren.broker.vhosts["/"].queues.get(reply_queue)
            return None if q is None else (q.arguments.get("x-expires"), len(q.consumers))
        assert warren.call(state) == (300, 0)
        deadline = sent + TIMEOUT
        while warren.call(state) is not None:
            assert time.monotonic() < deadline, "the unused reply queue never expired"
            time.sleep(0.02)
        assert time.monotonic() - sent >= 0.3
        assert r.id  # the result went with the queue


def test_celery_inspect_ping_cli(make_app, broker_url):
    """The ``celery inspect ping`` command, as an operator runs it, in its own process."""
    app = make_app()
    with run_worker(app) as worker:
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        out = subprocess.run(
            [sys.executable, "-m", "celery", "-b", broker_url, "inspect", "ping",
             "-d", worker.hostname, "-t", str(TIMEOUT)],
            capture_output=True, text=True, timeout=60, env=env)
        assert out.returncode == 0, out.stderr
        assert re.search(rf"->\s+{re.escape(worker.hostname)}: OK\s+pong\n", out.stdout), out.stdout
        assert "1 node online." in out.stdout
