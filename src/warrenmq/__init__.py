"""WarrenMQ: an AMQP 0-9-1 message broker in Python that RabbitMQ clients use unchanged.

Public API: :class:`Broker`, :class:`BrokerConfig`, :func:`run`, and
:class:`warrenmq.testing.EmbeddedBroker` for tests.
"""
__version__ = "0.1.0"

from .config import BrokerConfig  # noqa: E402
from .broker.broker import Broker  # noqa: E402
from .app import run  # noqa: E402

__all__ = ["Broker", "BrokerConfig", "run", "__version__"]
