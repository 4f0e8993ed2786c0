"""The STOMP codec: bytes in, frames out; frames in, bytes out (no sockets, no broker)."""
import ast
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

import warrenmq.stomp
from warrenmq.stomp.codec import Frame, FrameError, FrameReader, encode_frame, escape, unescape


def test_nul_terminated_and_content_length_bodies_and_heartbeats():
    r = FrameReader()
    frames = r.feed(b"\n\r\nSEND\ndestination:/queue/a\n\nhello\0\n"
                    b"SEND\ndestination:/queue/b\ncontent-length:3\n\na\0b\0")
    assert [(f.command, f.headers, f.body) for f in frames] == [
        ("SEND", [("destination", "/queue/a")], b"hello"),
        ("SEND", [("destination", "/queue/b"), ("content-length", "3")], b"a\0b")]
    assert r.heartbeats == 3


def test_frames_split_anywhere_come_out_whole():
    data = b"SEND\ndestination:/topic/x\ncontent-length:5\n\nab\0cd\0SUBSCRIBE\r\nid:1\r\ndestination:/queue/q\r\n\r\n\0"
    for cut in range(1, len(data)):
        r = FrameReader()
        frames = r.feed(data[:cut]) + r.feed(data[cut:])
        assert [f.command for f in frames] == ["SEND", "SUBSCRIBE"], cut
        assert frames[0].body == b"ab\0cd"
        assert frames[1].headers == [("id", "1"), ("destination", "/queue/q")]


def test_escapes_per_version():
    raw = b"SEND\nk\\cx:a\\nb\\\\c\\rd\n\n\0"
    r = FrameReader()
    r.version = "1.2"
    assert r.feed(raw)[0].headers == [("k:x", "a\nb\\c\rd")]
    r = FrameReader()
    r.version = "1.0"
    assert r.feed(raw)[0].headers == [("k\\cx", "a\\nb\\\\c\\rd")]
    r = FrameReader()
    r.version = "1.1"  # \r is no escape in 1.1
    with pytest.raises(FrameError):
        r.feed(raw)


def test_connect_headers_are_not_unescaped():
    r = FrameReader()
    f = r.feed(b"CONNECT\naccept-version:1.2\npasscode:a\\b\n\n\0")[0]
    assert f.get("passcode") == "a\\b"


def test_first_of_repeated_header_wins():
    f = FrameReader().feed(b"SEND\nfoo:1\nfoo:2\n\n\0")[0]
    assert f.get("foo") == "1"


@pytest.mark.parametrize("raw, message", [
    (b"SEND\nno colon here\n\n\0", "Bad frame"),
    (b"SEND\ncontent-length:x\n\n\0", "Invalid header"),
    (b"SEND\ncontent-length:2\n\nabc\0", "Bad frame"),  # no NUL after the announced bytes
    (b"SEND\nk:\xff\xfe\n\n\0", "Bad frame"),
])
def test_malformed_input(raw, message):
    with pytest.raises(FrameError) as e:
        FrameReader().feed(raw)
    assert e.value.message == message


def test_limits_bound_memory():
    r = FrameReader(max_header_bytes=100, max_headers=3, max_body=10)
    with pytest.raises(FrameError):  # headers that never end
        r.feed(b"SEND\n" + b"x" * 200)
    with pytest.raises(FrameError):
        FrameReader(max_headers=3).feed(b"SEND\na:1\nb:2\nc:3\nd:4\n\n\0")
    with pytest.raises(FrameError):  # a body without NUL past the limit
        FrameReader(max_body=10).feed(b"SEND\n\n" + b"y" * 11)
    with pytest.raises(FrameError):  # an announced body over the limit, refused before it arrives
        FrameReader(max_body=10).feed(b"SEND\ncontent-length:11\n\n")


def test_encode_escapes_but_not_connected():
    assert encode_frame("MESSAGE", [("a:b", "c\nd")], b"x", "1.2") == b"MESSAGE\na\\cb:c\\nd\ncontent-length:1\n\nx\0"
    assert encode_frame("CONNECTED", [("session", "a:b")], b"", "1.2", False) == b"CONNECTED\nsession:a:b\n\n\0"
    assert encode_frame("MESSAGE", [("a", "b\\")], b"", "1.0", False) == b"MESSAGE\na:b\\\n\n\0"


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200, deadline=None)
@given(version=st.sampled_from(["1.1", "1.2"]), value=_text)
def test_escape_roundtrip(version, value):
    if version == "1.1":
        value = value.replace("\r", "")
    assert unescape(escape(value, version), version) == value


@settings(max_examples=200, deadline=None)
@given(version=st.sampled_from(["1.1", "1.2"]),
       headers=st.lists(st.tuples(_text.filter(lambda s: s != "content-length" and s), _text), max_size=5),
       body=st.binary(max_size=50), cuts=st.lists(st.integers(0, 200), max_size=3))
def test_frame_roundtrip(version, headers, body, cuts):
    if version == "1.1":  # 1.1 has no escape for CR; a name left empty by removing it is no header
        headers = [(k.replace("\r", ""), v.replace("\r", "")) for k, v in headers]
        headers = [(k, v) for k, v in headers if k and k != "content-length"]
    data = encode_frame("SEND", headers, body, version)
    r = FrameReader()
    r.version = version
    frames = []
    prev = 0
    for c in sorted(min(c, len(data)) for c in cuts):
        frames += r.feed(data[prev:c])
        prev = c
    frames += r.feed(data[prev:])
    assert len(frames) == 1
    f = frames[0]
    assert f.command == "SEND" and f.body == body
    assert f.headers[:-1] == headers and f.headers[-1] == ("content-length", str(len(body)))


def test_codec_is_sans_io():
    base = Path(warrenmq.stomp.__file__).parent
    tree = ast.parse((base / "codec.py").read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | {
        a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert mods <= {"__future__"}, mods


def test_frame_repr_and_get_default():
    f = Frame("SEND", [("a", "b")])
    assert f.get("x", "d") == "d" and "SEND" in repr(f)
