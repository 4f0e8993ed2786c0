"""Third-party clients of the management HTTP API, run unchanged against WarrenMQ.

A client that is not installed skips its tests with the reason, except when
``WARRENMQ_REQUIRE_THIRD_PARTY=1`` (``.ci/run`` sets it, after installing the ``thirdparty`` extra and
Debian's rabbitmq-server, which ships ``/usr/bin/rabbitmqadmin``): then a missing client fails, so CI
cannot pass by skipping them."""
from __future__ import annotations

import os

import pytest

from warrenmq.testing import EmbeddedBroker

REQUIRE_ENV = "WARRENMQ_REQUIRE_THIRD_PARTY"


def require(what: str, available: bool, how: str) -> None:
    """Skip (or, with WARRENMQ_REQUIRE_THIRD_PARTY=1, fail) unless ``available``."""
    if available:
        return
    msg = f"{what} is not installed ({how})"
    if os.environ.get(REQUIRE_ENV, "") not in ("", "0"):
        pytest.fail(f"{msg}, and {REQUIRE_ENV} is set", pytrace=False)
    pytest.skip(msg)


def importable(module: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@pytest.fixture
def mgmt():
    """A fresh broker serving the management API (the clients' tests expect RabbitMQ's fresh state:
    vhost /, user guest)."""
    with EmbeddedBroker(management=True) as b:
        yield b


def mgmt_port(b) -> int:
    return b.app.management_port
