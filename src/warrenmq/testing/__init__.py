"""Test support: an in-process broker for your test suite (see :mod:`.embedded`)."""
from .embedded import AsyncEmbeddedBroker, EmbeddedBroker

__all__ = ["EmbeddedBroker", "AsyncEmbeddedBroker"]
