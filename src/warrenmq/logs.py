"""Logging set-up: where the broker's log lines go and how they look (docs/logging.md).

Theory of operation: the broker logs with the standard library's ``logging``
under the ``warrenmq`` logger tree; nothing in it formats or writes log lines
itself.  :func:`configure` (called by the ``warrenmq`` command, never by an
embedded broker, which leaves its host's logging alone) installs one handler
on the root logger: stderr, or ``log_file`` through a
:class:`logging.handlers.WatchedFileHandler` (the file is reopened when
logrotate moves it away; rotation itself is logrotate's job), with one of two
formatters:

* ``text`` (:class:`TextFormatter`): RabbitMQ 3.10's line shape,
  ``2026-12-05 13:01:51.026222+00:00 [info] <0.958.0> accepting AMQP
  connection ...``.  The third column is the connection (``<0.N.0>``, N being
  WarrenMQ's connection number) on a connection's lines, else the logger's
  name.  A message of several lines repeats the prefix on each line, as
  RabbitMQ does, so ``grep`` finds every line of an event.
* ``json`` (:class:`JsonFormatter`): one JSON object a line with ``time``,
  ``level``, ``logger``, ``message`` and the fields the caller attached
  (``extra=``): for a connection's lines ``connection`` (its ``<0.N.0>`` id),
  ``connection_name`` (``peer -> local``), ``peer_host``, ``peer_port``,
  ``user``, ``vhost``, ``client_name`` as far as they are known.

The lines of a connection's life (accepted, authenticated, closed, refused
logins, errors) are written by :mod:`warrenmq.amqp.connlog`; they are per
connection, never per message.
"""
from __future__ import annotations

import datetime
import json
import logging
import logging.handlers
import sys

#: the log formats of ``log_format`` / ``--log-format``
LOG_FORMATS = ("text", "json")

#: the fields a record may carry (``extra=``) that the JSON formatter writes
FIELDS = ("connection", "connection_name", "peer_host", "peer_port", "user", "vhost", "client_name", "channel",
          "alarm")


def _time(record: logging.LogRecord) -> str:
    """RabbitMQ's timestamp: local time with microseconds and the UTC offset."""
    t = datetime.datetime.fromtimestamp(record.created).astimezone()
    return t.isoformat(sep=" ", timespec="microseconds")


class TextFormatter(logging.Formatter):
    """RabbitMQ 3.10's text lines: ``time [level] <who> message``, the prefix on every line."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            message = f"{message}\n{record.exc_text}"
        who = getattr(record, "connection", None) or record.name
        prefix = f"{_time(record)} [{record.levelname.lower()}] {who} "
        return "\n".join(prefix + line for line in message.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message and the record's connection fields."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": _time(record), "level": record.levelname.lower(), "logger": record.name,
               "message": record.getMessage()}
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def make_handler(log_file: str = "", log_format: str = "text") -> logging.Handler:
    """The handler for ``log_file`` (stderr when empty) with the ``log_format`` formatter.  OSError when
    the file cannot be opened."""
    if log_format not in LOG_FORMATS:
        raise ValueError(f"invalid log_format {log_format!r} (choose from {', '.join(LOG_FORMATS)})")
    if log_file:
        handler: logging.Handler = logging.handlers.WatchedFileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    return handler


def configure(level: str = "info", log_file: str = "", log_format: str = "text") -> logging.Handler:
    """Send the process's log lines to ``log_file`` (or stderr) in ``log_format`` from ``level`` up,
    replacing the root logger's handlers; returns the handler."""
    handler = make_handler(log_file, log_format)
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.addHandler(handler)
    root.setLevel(str(level).upper())
    return handler
