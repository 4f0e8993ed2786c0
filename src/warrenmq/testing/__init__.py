"""Test support: an in-process broker for your test suite (see :mod:`.embedded`).

The pytest fixtures (``warrenmq_broker``, ``warrenmq_url``,
``warrenmq_session_broker``) live in :mod:`.pytest_plugin`, registered through
the ``pytest11`` entry point: installing the package is enough.
"""
from .backdoor import AsyncRecording, MessageInfo, QueueInfo, Recording
from .embedded import AsyncEmbeddedBroker, EmbeddedBroker

__all__ = ["EmbeddedBroker", "AsyncEmbeddedBroker", "MessageInfo", "QueueInfo", "Recording", "AsyncRecording"]
