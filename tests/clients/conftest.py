"""The client suites' broker URL: a fresh embedded WarrenMQ per test, or the broker
named by ``WARRENMQ_CLIENT_TESTS_URL`` (e.g. a real RabbitMQ, to check the tests)."""
import os

import pytest


@pytest.fixture
def url(request):
    other = os.environ.get("WARRENMQ_CLIENT_TESTS_URL")
    if other:
        return other
    return request.getfixturevalue("amqp_url")
