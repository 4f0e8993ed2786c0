"""Helpers shared by the store tests."""
from warrenmq.broker.message import Message
from warrenmq.protocol.properties import content_header
from warrenmq.protocol.spec import BasicProperties


def message(i: int, size: int = 10, **props) -> Message:
    body = (f"m{i}-".encode() * size)[:size]
    props.setdefault("delivery_mode", 2)
    props.setdefault("headers", {"i": i, "nested": {"x": [1, "two"]}})
    return Message("ex", f"rk.{i}", content_header(BasicProperties(**props), len(body)), body)


def commit(store) -> int:
    """One group-commit cycle, as the application's committer runs it."""
    epoch = store.write_pending()
    store.sync()
    store.synced(epoch)
    return epoch


def loaded(store) -> dict:
    """recover(), with every body read (a store may leave bodies on disk until asked)."""
    rec = store.recover()
    for rs in rec.values():
        for r in rs:
            if r.body is None:
                r.body = store.read_body(r.msg_id)
    return rec
