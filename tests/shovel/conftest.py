"""Shovel tests: embedded WarrenMQ brokers with the management API (helpers: support/links.py)."""
import pytest

from support.links import Api
from warrenmq.testing import EmbeddedBroker


@pytest.fixture
def mbroker():
    with EmbeddedBroker(management=True) as b:
        b.api = Api(b.management_url)
        yield b


