import pytest

from warrenmq.testing import EmbeddedBroker


@pytest.fixture
def mqtt_broker():
    with EmbeddedBroker(mqtt=True) as b:
        yield b
