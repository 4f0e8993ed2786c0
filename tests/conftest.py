"""Shared fixtures: every test talks to a real WarrenMQ over a real socket."""
import sys
from pathlib import Path

import pytest

# test helper packages (tests/support) importable as ``support.*``
sys.path.insert(0, str(Path(__file__).parent))

from warrenmq.testing import EmbeddedBroker


@pytest.fixture
def broker():
    """A fresh in-process broker on an ephemeral port (one per test: start-up takes milliseconds)."""
    with EmbeddedBroker() as b:
        yield b


@pytest.fixture
def amqp_url(broker):
    return broker.url
