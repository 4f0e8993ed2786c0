"""Celery end to end against WarrenMQ: a fresh embedded broker per test (the ``broker``
fixture), a Celery app on it (:func:`celeryproj.make_app`) and a real worker
running in a thread of the test process (``celery.contrib.testing.worker``).

Set ``WARRENMQ_CELERY_TESTS_URL`` to an ``amqp://`` URL to run the suite against
another broker (e.g. a real RabbitMQ, to check the tests themselves); tests that
inspect WarrenMQ's internals are skipped then.

No ``__init__.py`` here on purpose: this folder is named ``celery`` and must not
shadow the real package.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path

import kombu.pools
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # celeryproj, celery_harness

import celeryproj  # noqa: E402
from celery_harness import OTHER_BROKER  # noqa: E402


@pytest.fixture
def broker_url(request):
    if OTHER_BROKER:
        return OTHER_BROKER
    return request.getfixturevalue("broker").url


@pytest.fixture
def warren(request):
    """The embedded broker, for tests that look at its state (skipped against another broker)."""
    if OTHER_BROKER:
        pytest.skip("looks inside WarrenMQ")
    return request.getfixturevalue("broker")


@pytest.fixture
def warren_or_none(request):
    """The embedded broker, or ``None`` when the suite runs against another broker."""
    return None if OTHER_BROKER else request.getfixturevalue("broker")


@pytest.fixture
def make_app(broker_url):
    """``make_app(**conf)``: a Celery app on the test's broker (results over ``rpc://``)."""
    apps = []

    def make(backend="rpc://", **conf):
        if OTHER_BROKER:  # a shared broker keeps queues between runs: use a queue of our own
            conf.setdefault("task_default_queue", f"celery.{uuid.uuid4().hex[:8]}")
        app = celeryproj.make_app(broker_url, backend=backend, **conf)
        apps.append(app)
        return app
    yield make
    for app in apps:
        close_app(app)


def close_app(app) -> None:
    """Close every connection the client side of ``app`` opened (``app.close()`` only drops the
    pool), so the broker stops at once instead of waiting for them."""
    backend = app.backend
    consumer = getattr(backend, "result_consumer", None)  # rpc://: the connection results arrive on
    if consumer is not None and getattr(consumer, "_connection", None) is not None:
        consumer.stop()
    app.pool.force_close_all()
    app.close()
    # kombu keeps producer pools per broker URL in a global registry (the worker's too)
    kombu.pools.reset()
