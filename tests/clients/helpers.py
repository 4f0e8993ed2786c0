"""What the client suites share: RabbitMQ's exact error texts, routing tables, and the work-queue probe.

Each client suite (pika blocking, pika async, py-amqp) drives the same scenarios
through its own client's API; everything that is a *fact about RabbitMQ* (reply
codes and texts, which routing key reaches which queue, what a fair dispatch
looks like) lives here once, so the three suites cannot drift apart.

The texts were checked against RabbitMQ 3.10; set ``WARRENMQ_CLIENT_TESTS_URL``
to an ``amqp://`` URL to run the client suites against another broker (e.g. a
real RabbitMQ) and so check the tests themselves.
"""
from __future__ import annotations

import time
import uuid

VHOST = "/"
TIMEOUT = 5.0  # generous upper bound for anything that should take milliseconds

# reply codes
NO_ROUTE = 312
NOT_FOUND = 404
RESOURCE_LOCKED = 405
PRECONDITION_FAILED = 406
COMMAND_INVALID = 503
NOT_ALLOWED = 530
NOT_IMPLEMENTED = 540


def unique(prefix: str) -> str:
    """A name no other test (or earlier run against a shared broker) uses."""
    return f"{prefix}.{uuid.uuid4().hex[:10]}"


# ------------------------------------------------------------------ RabbitMQ's reply texts
def no_exchange(name: str) -> str:
    return f"NOT_FOUND - no exchange '{name}' in vhost '{VHOST}'"


def no_queue(name: str) -> str:
    return f"NOT_FOUND - no queue '{name}' in vhost '{VHOST}'"


def locked(name: str) -> str:
    return (f"RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{name}' in vhost '{VHOST}'. "
            "It could be originally declared on another connection or the exclusive property value does not "
            "match that of the original declaration.")


def inequivalent(kind: str, name: str, arg: str, received: str, current: str) -> str:
    return (f"PRECONDITION_FAILED - inequivalent arg '{arg}' for {kind} '{name}' in vhost '{VHOST}': "
            f"received '{received}' but current is '{current}'")


def unknown_tag(tag: int) -> str:
    return f"PRECONDITION_FAILED - unknown delivery tag {tag}"


def in_use(queue: str) -> str:
    return f"PRECONDITION_FAILED - queue '{queue}' in vhost '{VHOST}' in use"


def not_empty(queue: str) -> str:
    return f"PRECONDITION_FAILED - queue '{queue}' in vhost '{VHOST}' not empty"


def unknown_exchange_type(type_: str) -> str:
    # RabbitMQ 3.10 says "invalid exchange type" instead when the name happens to be an existing
    # Erlang atom (e.g. 'foo'); a never-seen name, as the tests use, always gets this text
    return f"COMMAND_INVALID - unknown exchange type '{type_}'"


def reuse_tag(tag: str) -> str:
    return f"NOT_ALLOWED - attempt to reuse consumer tag '{tag}'"


def vhost_not_found(vhost: str) -> str:
    return f"NOT_ALLOWED - vhost {vhost} not found"


PREFETCH_SIZE_TEXT = "NOT_IMPLEMENTED - prefetch_size!=0 (10)"
NO_ROUTE_TEXT = "NO_ROUTE"


# ------------------------------------------------------------------ routing tables
# direct: queue suffix -> binding keys (q_info is bound twice with the same key: still one copy)
DIRECT_BINDINGS = {
    "info": ["info", "info"],
    "problems": ["warning", "error"],
    "all": ["info", "warning", "error"],
}
DIRECT_KEYS = ["info", "warning", "error", "debug", "INFO", ""]
DIRECT_EXPECTED = {
    "info": ["info"],
    "problems": ["warning", "error"],
    "all": ["info", "warning", "error"],
}

# topic: queue suffix -> binding patterns
TOPIC_BINDINGS = {
    "orange": ["*.orange.*"],
    "rabbit_lazy": ["*.*.rabbit", "lazy.#"],
    "audit": ["audit.#"],      # '#' matching zero words: "audit" itself
    "errors": ["#.error"],     # ... and at the front: "error" itself
    "one_word": ["*"],
    "deep": ["a.*.#.z"],       # '#' between words, zero or more
}
TOPIC_KEYS = [
    "quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox", "lazy.brown.fox", "lazy",
    "quick.brown.fox", "orange", "quick.orange.male.rabbit", "audit", "audit.x.y", "auditor",
    "error", "app.db.error", "error.app", "a.b.z", "a.b.c.d.z", "a.z", "a.b.z.q", "lazy.", "",
]
TOPIC_EXPECTED = {
    "orange": ["quick.orange.rabbit", "lazy.orange.elephant", "quick.orange.fox"],
    "rabbit_lazy": ["quick.orange.rabbit", "lazy.orange.elephant", "lazy.brown.fox", "lazy", "lazy."],
    "audit": ["audit", "audit.x.y"],
    "errors": ["error", "app.db.error"],
    "one_word": ["lazy", "orange", "audit", "auditor", "error"],  # not "": it has no words at all
    "deep": ["a.b.z", "a.b.c.d.z"],
}
TOPIC_UNROUTED = ["quick.brown.fox", "quick.orange.male.rabbit", "error.app", "a.z", "a.b.z.q", ""]

# headers: queue suffix -> binding arguments
HEADERS_BINDINGS = {
    "all": {"x-match": "all", "format": "pdf", "type": "report"},
    "any": {"x-match": "any", "format": "pdf", "type": "log"},
    "default_all": {"format": "zip", "type": "report"},  # no x-match: 'all' is the default
}
# (case id, message headers or None) and the queues each case reaches
HEADERS_CASES = [
    ("both", {"format": "pdf", "type": "report"}),
    ("both_extra", {"format": "pdf", "type": "report", "extra": "1"}),
    ("both_bytes", {"format": b"pdf", "type": "report"}),  # a byte array equals the longstr "pdf"
    ("pdf_log", {"format": "pdf", "type": "log"}),
    ("pdf_only", {"format": "pdf"}),
    ("log_only", {"type": "log"}),
    ("report_only", {"type": "report"}),
    ("zip_report", {"format": "zip", "type": "report"}),
    ("zip_only", {"format": "zip"}),
    ("wrong_values", {"format": "PDF", "type": "Log"}),
    ("empty", {}),
    ("none", None),
]
HEADERS_EXPECTED = {
    "all": ["both", "both_extra", "both_bytes"],
    "any": ["both", "both_extra", "both_bytes", "pdf_log", "pdf_only", "log_only"],
    "default_all": ["zip_report"],
}

assert set(TOPIC_EXPECTED) == set(TOPIC_BINDINGS) and set(HEADERS_EXPECTED) == set(HEADERS_BINDINGS)
assert set(TOPIC_UNROUTED) == set(TOPIC_KEYS) - {k for ks in TOPIC_EXPECTED.values() for k in ks}


# ------------------------------------------------------------------ RPC
def rpc_answer(request: bytes) -> bytes:
    """What the RPC server computes: the square of the number it is sent."""
    return str(int(request) ** 2).encode()


# ------------------------------------------------------------------ work queue
class FairDispatch:
    """Book-keeping for a prefetch=1 work queue with three slow consumers.

    A client suite publishes ``n_messages`` to a queue, attaches ``n_consumers``
    consumers with ``basic.qos(prefetch_count=1)`` and pumps its connections,
    calling :meth:`delivered` for every delivery and acking what
    :meth:`due_acks` returns (each delivery is held ``hold`` seconds first).
    Nothing is acked until :meth:`probe` has been given the queue's ready
    count, taken once :attr:`ready_to_probe` (every consumer holds its first
    message): with prefetch 1 the broker must then still hold exactly
    ``n_messages - n_consumers``.
    """

    def __init__(self, n_consumers: int = 3, n_messages: int = 12, hold: float = 0.03):
        self.n_consumers = n_consumers
        self.n_messages = n_messages
        self.hold = hold
        self.bodies = [f"task-{i}".encode() for i in range(n_messages)]
        self.received: list[list[bytes]] = [[] for _ in range(n_consumers)]
        self.in_flight: list[list] = [[] for _ in range(n_consumers)]  # (due time, tag)
        self.max_in_flight = [0] * n_consumers
        self.probed = False
        self.acked = 0

    def delivered(self, i: int, tag, body: bytes, redelivered: bool) -> None:
        assert not redelivered, "nothing was requeued, so nothing may come back redelivered"
        self.received[i].append(bytes(body))
        self.in_flight[i].append((time.monotonic() + self.hold, tag))
        self.max_in_flight[i] = max(self.max_in_flight[i], len(self.in_flight[i]))

    @property
    def ready_to_probe(self) -> bool:
        """Every consumer holds a message, or one got a second before any ack (and :meth:`probe` fails)."""
        counts = [len(r) for r in self.received]
        return all(counts) or max(counts) > 1

    def probe(self, ready: int, consumers: int) -> None:
        assert [len(r) for r in self.received] == [1] * self.n_consumers, "prefetch 1: one message each"
        assert (ready, consumers) == (self.n_messages - self.n_consumers, self.n_consumers)
        self.probed = True

    def due_acks(self) -> list:
        """(consumer index, delivery tag) pairs whose hold time is over."""
        if not self.probed:
            return []
        now = time.monotonic()
        out = []
        for i, flight in enumerate(self.in_flight):
            while flight and flight[0][0] <= now:
                out.append((i, flight.pop(0)[1]))
        self.acked += len(out)
        return out

    @property
    def done(self) -> bool:
        return self.acked == self.n_messages

    def check(self) -> None:
        assert self.probed
        assert sorted(b for r in self.received for b in r) == sorted(self.bodies)
        assert self.max_in_flight == [1] * self.n_consumers, "prefetch 1: never two unacked at once"
        counts = [len(r) for r in self.received]
        # with prefetch 1 a free consumer gets the next message, so equal consumers get equal shares; the
        # test's consumers are equal only up to the client's scheduling (one ack late by a few of the 30 ms
        # holds on a loaded machine): one message more of slack than a perfect round
        assert max(counts) - min(counts) <= 2, f"unfair spread {counts}"
        for r in self.received:  # each consumer sees its share in queue order
            assert r == sorted(r, key=self.bodies.index)


def wait_until(predicate, pump, timeout: float = TIMEOUT, what: str = "condition") -> None:
    """Call ``pump()`` until ``predicate()`` holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pump()
