"""AMQP errors carrying what a close method needs: reply code, text, class and method.

Theory of operation: a *soft* error closes one channel (``channel.close``), a
*hard* error closes the whole connection (``connection.close``).  Handlers raise
these; the session catches them at the edge of one event, fills in the class and
method ids of the method that failed, and sends the close.  The reply text is
formatted as RabbitMQ formats it: ``"NOT_FOUND - no queue 'q' in vhost '/'"``.
"""
from __future__ import annotations

from .spec import REPLY_NAMES


class AMQPError(Exception):
    """Base class: ``code`` and ``text`` become the close method's reply code and text."""

    def __init__(self, code: int, text: str, class_id: int = 0, method_id: int = 0):
        super().__init__(code, text)
        self.code = code
        self.text = text
        self.class_id = class_id
        self.method_id = method_id

    @property
    def reply_text(self) -> str:
        """``NAME - text``; just the name for an empty ``text`` (RabbitMQ's bare ``INTERNAL_ERROR``)."""
        name = REPLY_NAMES.get(self.code, 'ERROR')
        return f"{name} - {self.text}" if self.text else name

    def __str__(self) -> str:
        return self.reply_text


class SoftError(AMQPError):
    """A channel-level error: the channel is closed, the connection stays."""


class HardError(AMQPError):
    """A connection-level error: the connection is closed."""
