"""What the Celery tests share: the in-process worker and the limit they wait under."""
from __future__ import annotations

import contextlib
import os

from celery.contrib.testing.worker import start_worker
from celery.worker import state as worker_state

#: run the suite against another broker (e.g. a real RabbitMQ) to check the tests themselves
OTHER_BROKER = os.environ.get("WARRENMQ_CELERY_TESTS_URL")
TIMEOUT = 10.0  # upper bound for anything that should take milliseconds


@contextlib.contextmanager
def run_worker(app, pool="solo", concurrency=1, **kwargs):
    """A worker for ``app`` in a thread, consuming once this returns; stopped on exit.

    celery's ``start_worker`` stops its worker by setting a flag that the worker
    checks between two polls of its event loop, and an idle loop polls for up to
    10 s.  Scheduling a callback on the worker's hub wakes the loop (kombu writes
    to its waker pipe), so it sees the flag and stops at once.
    """
    kwargs.setdefault("shutdown_timeout", 15.0)
    with start_worker(app, pool=pool, concurrency=concurrency, perform_ping_check=False, **kwargs) as worker:
        try:
            yield worker
        finally:
            worker_state.should_terminate = 0
            hub = getattr(worker, "hub", None)
            if hub is not None and hasattr(hub, "_create_waker"):
                hub.call_soon(_nothing)
            else:  # a kombu whose hub has no waker: wake the worker with a message instead
                try:
                    app.control.broadcast("ping", reply=False, destination=[worker.hostname])
                except Exception:  # the broker is gone: the worker notices and stops by itself
                    pass


def _nothing() -> None:
    pass
