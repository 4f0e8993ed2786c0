"""pytest fixtures for a real WarrenMQ broker in the test process.

Theory of operation: this module is registered as a pytest plugin through the
``pytest11`` entry point named ``warrenmq`` (see pyproject.toml), so installing
the package makes the fixtures available to every test suite, with no
conftest.py.  All names start with ``warrenmq_`` to stay clear of a project's
own fixtures (WarrenMQ's own suite has ``broker`` and ``amqp_url``).

* ``warrenmq_broker``: a fresh :class:`~.embedded.EmbeddedBroker` per test
  (start-up takes milliseconds), stopped after the test;
* ``warrenmq_url``: the ``amqp://`` URL of ``warrenmq_broker``;
* ``warrenmq_session_broker``: one broker for the whole session.  Before each
  test that uses it (directly or through other fixtures) it is ``reset()``:
  client connections are closed and all but the default vhost, user and
  exchanges are gone, so tests cannot see each other's queues or messages.

Disabled with ``-p no:warrenmq``; with ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set,
load it with ``-p warrenmq.testing.pytest_plugin``.
"""
from __future__ import annotations

import pytest

from .embedded import EmbeddedBroker


@pytest.fixture
def warrenmq_broker():
    """A running WarrenMQ broker of its own for this test (an :class:`EmbeddedBroker`)."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture
def warrenmq_url(warrenmq_broker) -> str:
    """The ``amqp://guest:guest@127.0.0.1:<port>/%2F`` URL of ``warrenmq_broker``."""
    return warrenmq_broker.url


@pytest.fixture(scope="session")
def warrenmq_session_broker():
    """One WarrenMQ broker for the whole session, reset before each test that uses it."""
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(autouse=True)
def _warrenmq_reset_session_broker(request):
    # Before the test's other fixtures run, so they see a fresh broker; tests that
    # do not use the session broker do not start it.
    if "warrenmq_session_broker" in request.fixturenames:
        request.getfixturevalue("warrenmq_session_broker").reset()
