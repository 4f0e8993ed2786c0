"""STOMP frames: bytes in, frames out; frames in, bytes out.  Sans-I/O: no sockets, no asyncio.

Theory of operation: :class:`FrameReader` keeps one ``bytearray`` of unread input.  ``feed`` appends
and returns the complete frames found so far as :class:`Frame` objects (command, headers as a list of
``(name, value)`` pairs in received order, body bytes); lone EOLs between frames are heart-beats and
are counted, not returned.  A frame is a command line, header lines, a blank line and a body ended by
NUL; with a ``content-length`` header the body is exactly that many bytes (NULs allowed) and a NUL must
follow.  Header values are unescaped per version (1.0: none; 1.1: ``\\n``, ``\\c``, ``\\\\``; 1.2 adds
``\\r``) except in CONNECT/CONNECTED frames, as the specification says; an unknown escape is an error.
In 1.2 lines may end in CRLF.  When a header name repeats, the first wins (STOMP 1.2); ``Frame.get``
finds it.

Limits, so no input grows memory without bound: the command and headers of a frame (up to the blank
line) may be at most ``max_header_bytes``, a frame may have at most ``max_headers`` headers and its
body at most ``max_body`` bytes; breaking one, or any malformed input, raises :class:`FrameError` with
RabbitMQ's ERROR ``message`` header and body text; the connection sends that ERROR and closes.

Encoding: :func:`encode_frame` escapes header values for the version in use (not in CONNECTED, never in
1.0) and always writes ``content-length`` when the caller gives one (RabbitMQ does for MESSAGE and
ERROR frames).
"""
from __future__ import annotations

__all__ = ["Frame", "FrameError", "FrameReader", "encode_frame", "escape", "unescape"]

#: the commands a client may send
CLIENT_COMMANDS = frozenset({"CONNECT", "STOMP", "SEND", "SUBSCRIBE", "UNSUBSCRIBE", "ACK", "NACK", "BEGIN",
                             "COMMIT", "ABORT", "DISCONNECT"})

_UNESCAPE_11 = {ord("n"): "\n", ord("c"): ":", ord("\\"): "\\"}
_UNESCAPE_12 = {ord("n"): "\n", ord("c"): ":", ord("\\"): "\\", ord("r"): "\r"}
_ESC_11 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c"})
_ESC_12 = str.maketrans({"\\": "\\\\", "\n": "\\n", ":": "\\c", "\r": "\\r"})


class FrameError(Exception):
    """Malformed or oversized input: the ERROR frame's ``message`` header and body."""

    def __init__(self, message: str, detail: str):
        super().__init__(message, detail)
        self.message = message
        self.detail = detail


class Frame:
    __slots__ = ("command", "headers", "body")

    def __init__(self, command: str, headers: list, body: bytes = b""):
        self.command = command
        self.headers = headers  # [(name, value)], as received; the first of a repeated name wins
        self.body = body

    def get(self, name: str, default=None):
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def __repr__(self) -> str:
        return f"Frame({self.command!r}, {self.headers!r}, {self.body!r})"


def unescape(value: str, version: str) -> str:
    if "\\" not in value or version == "1.0":
        return value
    table = _UNESCAPE_12 if version == "1.2" else _UNESCAPE_11
    out = []
    i = 0
    n = len(value)
    while i < n:
        ch = value[i]
        if ch == "\\":
            if i + 1 >= n:
                raise FrameError("Bad header", f"invalid escape sequence at end of header value {value!r}")
            r = table.get(ord(value[i + 1]))
            if r is None:
                raise FrameError("Bad header", f"invalid escape sequence \\{value[i + 1]} in header value")
            out.append(r)
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def escape(value: str, version: str) -> str:
    if version == "1.0":
        return value
    return value.translate(_ESC_12 if version == "1.2" else _ESC_11)


def encode_frame(command: str, headers, body: bytes = b"", version: str = "1.2",
                 content_length: bool = True) -> bytes:
    """One frame's bytes; header values escaped for ``version`` (never for CONNECTED or in 1.0)."""
    parts = [command, "\n"]
    esc = version != "1.0" and command != "CONNECTED"
    table = _ESC_12 if version == "1.2" else _ESC_11
    for k, v in headers:
        if esc:
            k = k.translate(table)
            v = v.translate(table)
        parts.append(k)
        parts.append(":")
        parts.append(v)
        parts.append("\n")
    if content_length and body is not None:
        parts.append(f"content-length:{len(body)}\n")
    parts.append("\n")
    return "".join(parts).encode() + body + b"\0"


class FrameReader:
    """Splits a byte stream into frames (see the module docstring)."""
    __slots__ = ("buf", "version", "max_header_bytes", "max_headers", "max_body", "heartbeats")

    def __init__(self, max_header_bytes: int = 65536, max_headers: int = 1000, max_body: int = 128 * 1024 * 1024):
        self.buf = bytearray()
        self.version = "1.2"  # until negotiated; CONNECT headers are never unescaped anyway
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.max_body = max_body
        self.heartbeats = 0  # EOLs received between frames

    def feed(self, data: bytes) -> list:
        """Append ``data``; return the frames it completed.  Raises FrameError on malformed input."""
        buf = self.buf
        buf += data
        frames = []
        pos = 0
        n = len(buf)
        try:
            while pos < n:
                c = buf[pos]
                if c == 10:  # heart-beat
                    self.heartbeats += 1
                    pos += 1
                    continue
                if c == 13 and pos + 1 < n and buf[pos + 1] == 10:
                    self.heartbeats += 1
                    pos += 2
                    continue
                if c == 13 and pos + 1 == n:
                    break
                end = buf.find(b"\n\n", pos)
                # a CRLF blank line can only come first if it is before the LF one: search no further
                end_crlf = buf.find(b"\n\r\n", pos, end if end != -1 else n)
                if end_crlf != -1 and (end == -1 or end_crlf < end):
                    head_end, body_start = end_crlf, end_crlf + 3
                elif end != -1:
                    head_end, body_start = end, end + 2
                else:
                    if n - pos > self.max_header_bytes:
                        raise FrameError("Bad frame", f"frame headers exceed {self.max_header_bytes} bytes")
                    break
                if head_end - pos > self.max_header_bytes:
                    raise FrameError("Bad frame", f"frame headers exceed {self.max_header_bytes} bytes")
                frame, length = self._head(bytes(buf[pos:head_end]))
                if length is not None:
                    if n < body_start + length + 1:
                        break
                    if buf[body_start + length] != 0:
                        raise FrameError("Bad frame", "frame body not terminated by NUL after content-length bytes")
                    frame.body = bytes(buf[body_start:body_start + length])
                    pos = body_start + length + 1
                else:
                    nul = buf.find(b"\0", body_start)
                    if nul == -1:
                        if n - body_start > self.max_body:
                            raise FrameError("Bad frame", f"frame body exceeds {self.max_body} bytes")
                        break
                    if nul - body_start > self.max_body:
                        raise FrameError("Bad frame", f"frame body exceeds {self.max_body} bytes")
                    frame.body = bytes(buf[body_start:nul])
                    pos = nul + 1
                frames.append(frame)
                if frame.command in ("CONNECT", "STOMP"):
                    # later frames are unescaped for the version the CONNECT offers; the session sets it
                    # precisely once negotiated, frames read in the same feed use the highest offered
                    av = frame.get("accept-version", "1.0")
                    self.version = max((v.strip() for v in av.split(",")), default="1.0")
                    if self.version not in ("1.0", "1.1", "1.2"):
                        self.version = "1.2"
        finally:
            if pos:
                del buf[:pos]
        return frames

    def _head(self, head: bytes):
        """The frame's command and headers; the body length its content-length announces (or None)."""
        try:
            text = head.decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("Bad frame", "frame headers are not valid UTF-8") from None
        lines = text.split("\n")
        command = lines[0]
        if command.endswith("\r"):
            command = command[:-1]
        if len(lines) - 1 > self.max_headers:
            raise FrameError("Bad frame", f"frame has more than {self.max_headers} headers")
        raw = command in ("CONNECT", "STOMP")
        version = self.version
        headers = []
        length = None
        for line in lines[1:]:
            if line.endswith("\r"):
                line = line[:-1]
            i = line.find(":")
            if i <= 0:
                raise FrameError("Bad frame", f"header line without a name and colon: {line!r}")
            k, v = line[:i], line[i + 1:]
            if not raw:
                k = unescape(k, version)
                v = unescape(v, version)
            headers.append((k, v))
            if k == "content-length" and length is None:
                if not v.isdigit():
                    raise FrameError("Invalid header", f"content-length {v!r} is not a number")
                length = int(v)
                if length > self.max_body:
                    raise FrameError("Bad frame", f"frame body exceeds {self.max_body} bytes")
        return Frame(command, headers), length
