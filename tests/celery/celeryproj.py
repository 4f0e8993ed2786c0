"""The Celery project the suite runs against WarrenMQ: an app factory and its tasks.

The tests build one app per test with :func:`make_app` (broker: a fresh embedded
WarrenMQ; results: ``rpc://``, i.e. through the broker too) and run its worker
in-process.  Running this file starts a real worker process on the same tasks
(``python celeryproj.py BROKER_URL [worker options]``): the acks-late test
kills one with SIGKILL.

Tasks that must wait for the test use a :class:`Gate` (in-process workers only):
the task reports that it started and blocks until the test opens the gate, so
no test sleeps to "give the worker time".
"""
from __future__ import annotations

import os
import queue
import sys
import threading
import time
import uuid

from celery import Celery
from kombu import Connection

#: a task never waits longer than this for the test (a failing test must not hang the worker)
GATE_TIMEOUT = 10.0

#: which task ran when (in-process workers): (task name, monotonic time) appended by some tasks
timeline: list = []


class Gate:
    """A barrier between a test and its tasks: tasks announce that they started, then wait."""
    registry: dict[str, "Gate"] = {}

    def __init__(self):
        self.name = uuid.uuid4().hex
        self.started: queue.Queue = queue.Queue()
        self.opened = threading.Event()
        Gate.registry[self.name] = self

    def open(self) -> None:
        self.opened.set()

    def wait_started(self, n: int, timeout: float = GATE_TIMEOUT) -> list:
        """The ids of the next ``n`` tasks that started behind this gate."""
        return [self.started.get(timeout=timeout) for _ in range(n)]


def simple_queue(conn, name: str):
    """A kombu SimpleQueue that goes away after use (the tests may run against a shared broker)."""
    return conn.SimpleQueue(name, queue_opts={"durable": False, "auto_delete": True},
                            exchange_opts={"durable": False, "auto_delete": True})


def make_app(broker_url: str, backend: str = "rpc://", **conf) -> Celery:
    app = Celery("warrenmq_tests", broker=broker_url, backend=backend, set_as_current=False)
    app.conf.update(
        broker_connection_retry_on_startup=False,  # the broker is up before any worker starts
        broker_connection_max_retries=1,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        task_acks_late=False,
    )
    app.conf.update(conf)
    _register_tasks(app)
    return app


def _register_tasks(app: Celery) -> None:
    @app.task(shared=False, name="tests.add")
    def add(x, y):
        timeline.append(("tests.add", time.monotonic()))
        return x + y

    @app.task(shared=False, name="tests.mul")
    def mul(x, y):
        return x * y

    @app.task(shared=False, name="tests.tsum")
    def tsum(numbers):
        return sum(numbers)

    @app.task(shared=False, name="tests.fail")
    def fail(message):
        raise ValueError(message)

    @app.task(shared=False, name="tests.where", bind=True)
    def where(self):
        """Where the message came from: its exchange and routing key."""
        info = self.request.delivery_info or {}
        return {"exchange": info.get("exchange"), "routing_key": info.get("routing_key")}

    @app.task(shared=False, name="tests.flaky", bind=True, max_retries=5)
    def flaky(self, failures, countdown):
        """Fail ``failures`` times, each time retrying after ``countdown`` seconds."""
        timeline.append(("tests.flaky", time.monotonic()))
        if self.request.retries < failures:
            raise self.retry(exc=RuntimeError(f"attempt {self.request.retries}"), countdown=countdown)
        return self.request.retries

    @app.task(shared=False, name="tests.hold", bind=True)
    def hold(self, gate):
        g = Gate.registry[gate]
        g.started.put(self.request.id)
        if not g.opened.wait(GATE_TIMEOUT):
            raise TimeoutError("the test never opened the gate")
        return self.request.id

    @app.task(shared=False, name="tests.fragile", bind=True, acks_late=True)
    def fragile(self, marker_queue):
        """acks_late: on first delivery tell the test (through the broker) and block until killed;
        on redelivery finish."""
        redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
        if not redelivered:
            with Connection(self.app.conf.broker_url) as conn:
                q = simple_queue(conn, marker_queue)
                q.put({"pid": os.getpid(), "task_id": self.request.id})
                q.close()
            threading.Event().wait(60)  # the test SIGKILLs this worker meanwhile
        return {"pid": os.getpid(), "redelivered": redelivered}


if __name__ == "__main__":
    # python celeryproj.py BROKER_URL [worker options]: a worker process for these tasks
    make_app(sys.argv[1]).worker_main(["worker", *sys.argv[2:]])
