"""The SASL mechanisms a client may log in with: PLAIN and AMQPLAIN, as RabbitMQ offers them."""
from __future__ import annotations

import struct

from .codec import DecodeError, decode_table


def parse_credentials(mechanism: str, response: bytes):
    """(username, password) from a PLAIN or AMQPLAIN response, or ``None`` if malformed."""
    try:
        if mechanism == "PLAIN":
            parts = bytes(response).split(b"\x00")
            if len(parts) != 3:
                return None
            return parts[1].decode("utf-8"), parts[2].decode("utf-8")
        if mechanism == "AMQPLAIN":
            body = bytes(response)
            table, _ = decode_table(struct.pack(">I", len(body)) + body, 0)
            user, password = table.get("LOGIN"), table.get("PASSWORD")
            if isinstance(user, bytes):
                user = user.decode("utf-8")
            if isinstance(password, bytes):
                password = password.decode("utf-8")
            if not isinstance(user, str) or not isinstance(password, str):
                return None
            return user, password
    except (DecodeError, UnicodeDecodeError, struct.error, IndexError, ValueError, RecursionError):
        return None
    return None
