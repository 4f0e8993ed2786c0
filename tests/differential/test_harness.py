"""The harness itself: normalising outcomes, and the golden store (no broker needed)."""
from __future__ import annotations

import datetime
import decimal
import json

from pika.compat import long

from .harness import GoldenStore, normalise


def test_generated_names_are_numbered_in_order_of_appearance():
    a, b = "amq.gen-JzTY20BRgKO-HjmUJj0wLg", "amq.gen-t651JX6RRfIqFerDQOyvCA"
    out = normalise(["declared " + a, {"queue": b}, f"no queue '{a}' in vhost '/'",
                     "amq.ctag-cNMvLD3f9RR8dv544dzi1w", "ctag1.0123456789abcdef0123456789abcdef",
                     "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAyNzc5NDQxNAAAC1oAAAAAWa0k5Q=="])
    assert out == ["declared amq.gen-1", {"queue": "amq.gen-2"}, "no queue 'amq.gen-1' in vhost '/'",
                   "amq.ctag-1", "amq.ctag-2", "amq.rabbitmq.reply-to.1"]


def test_token_nodes_times_and_types():
    out = normalise({"q": "dt-abc123-q", "node": "rabbit@vm and warrenmq@host.example",
                     "x-death": [{"time": datetime.datetime(2026, 1, 1), "count": long(1)}],
                     "n": 1, "d": decimal.Decimal("1.5"), "b": b"\xff", "t": (1, 2)}, token="abc123")
    assert out == {"q": "dt-T-q", "node": "<node> and <node>", "x-death": [{"time": "<datetime>",
                                                                          "count": {"$long": 1}}],
                   "n": 1, "d": {"$decimal": "1.5"}, "b": {"$hex": "ff"}, "t": [1, 2]}
    # a 64-bit integer is not the same as a 32-bit one, and bytes are not str
    assert normalise(long(1)) != normalise(1)
    assert normalise(b"x") != normalise("x")
    json.dumps(out)  # JSON-compatible


def test_golden_store_round_trip(tmp_path):
    store = GoldenStore(tmp_path)
    assert store.get("mod", "test_a") is None
    store.put("mod", "test_a", [["label", {"$bytes": "x"}]])
    store.save()
    again = GoldenStore(tmp_path)
    assert again.get("mod", "test_a") == [["label", {"$bytes": "x"}]]
