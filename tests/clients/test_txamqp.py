"""txAMQP (Twisted) against a real WarrenMQ over TCP: publish, get, consume, ack/reject,
publisher confirms, transactions, returns and error texts.

Where txAMQP's AMQP spec comes from: txAMQP builds its whole API from an AMQP
spec XML file loaded at run time (``txamqp.spec.load(path)``, passed to
``AMQClient(spec=...)``).  txAMQP 0.8.2 from PyPI ships no spec file: its
``txamqp.spec.DEFAULT_SPEC`` is ``../specs/standard/amqp0-9.stripped.xml``
relative to the installed package, a path neither its wheel nor its sdist
installs, so txAMQP users bring their own.  This suite uses the AMQP Working
Group's ``amqp0-9-1.stripped.xml`` (BSD licence, header kept), vendored in
``tests/clients/specs/`` as the txAMQP project distributes it.  That standard
spec has none of RabbitMQ's extensions, so for publisher confirms the suite
adds RabbitMQ's ``confirm`` class (85: select/select-ok) and ``basic.nack``
(60/120), as RabbitMQ's extended spec defines them, and handles the broker's
basic.ack/basic.nack in its delegate (txAMQP itself has no confirm support).

With a 0-9(-1) spec txAMQP sends AMQP 0-9's protocol header (``AMQP 1 1 0 9``):
RabbitMQ 3.10 takes it as 0-9-1, and so does WarrenMQ.

The tests drive Twisted's reactor, started once on a background thread; each
scenario is an ``inlineCallbacks`` function run on the reactor with a timeout.
Set ``WARRENMQ_CLIENT_TESTS_URL`` to run them against another broker.
"""
from __future__ import annotations

import threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
import txamqp.spec
from twisted.internet import defer, threads
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from txamqp.client import ChannelClosed, TwistedDelegate
from txamqp.content import Content
from txamqp.protocol import AMQClient

from . import helpers as H

pytestmark = [pytest.mark.timeout(30),
              pytest.mark.filterwarnings("ignore:twisted.internet.defer.returnValue:DeprecationWarning")]

STANDARD_SPEC = Path(__file__).parent / "specs" / "amqp0-9-1.stripped.xml"

# RabbitMQ's extensions used here, in the stripped spec's format (txAMQP needs a <chassis> in
# every method: it builds each method's docstring from the element's text)
_BASIC_NACK = """
    <method name="nack" index="120">
      <chassis name="server" implement="MUST"/>
      <field name="delivery-tag" domain="delivery-tag"/>
      <field name="multiple" domain="bit"/>
      <field name="requeue" domain="bit"/>
    </method>
"""
_CONFIRM_CLASS = """  <class name="confirm" handler="channel" index="85">
    <chassis name="server" implement="MAY"/>
    <method name="select" synchronous="1" index="10">
      <chassis name="server" implement="MUST"/>
      <response name="select-ok"/>
      <field name="nowait" domain="bit"/>
    </method>
    <method name="select-ok" synchronous="1" index="11">
      <chassis name="client" implement="MUST"/>
    </method>
  </class>
"""


@pytest.fixture(scope="session")
def spec(tmp_path_factory):
    """The standard 0-9-1 spec plus RabbitMQ's confirm class and basic.nack."""
    xml = STANDARD_SPEC.read_text()
    end_of_basic = '  </class>\n  <class name="tx"'
    assert xml.count(end_of_basic) == 1
    xml = xml.replace(end_of_basic, _BASIC_NACK.lstrip("\n") + '  </class>\n' + _CONFIRM_CLASS
                      + '  <class name="tx"')
    path = tmp_path_factory.mktemp("txamqp") / "amqp0-9-1.rabbitmq.xml"
    path.write_text(xml)
    return txamqp.spec.load(str(path))


@pytest.fixture(scope="session")
def reactor():
    """Twisted's reactor on a daemon thread (a reactor runs once per process: stopped at the end)."""
    from twisted.internet import reactor as r
    thread = threading.Thread(target=r.run, kwargs={"installSignalHandlers": False}, daemon=True,
                              name="twisted-reactor")
    thread.start()
    threads.blockingCallFromThread(r, lambda: None)  # returns once the reactor runs
    yield r
    r.callFromThread(r.stop)
    thread.join(5)


class Delegate(TwistedDelegate):
    """txAMQP's delegate plus the broker's publisher confirms (basic.ack / basic.nack)."""

    def __init__(self):
        super().__init__()
        self.confirms: list = []  # ("ack" | "nack", delivery tag, multiple)
        self._waiters: list = []

    def basic_ack(self, ch, msg):
        self._confirm("ack", msg)

    def basic_nack(self, ch, msg):
        self._confirm("nack", msg)

    def _confirm(self, kind, msg):
        self.confirms.append((kind, msg.delivery_tag, msg.multiple))
        for n, d in list(self._waiters):
            if self.all_confirmed(n):
                self._waiters.remove((n, d))
                d.callback(self.confirms)

    def covered(self) -> set:
        """The publish sequence numbers confirmed so far (a multiple confirm covers all up to its tag;
        confirms need not come in order: RabbitMQ confirms an unroutable message at once)."""
        out: set = set()
        for _, tag, multiple in self.confirms:
            out.update(range(1, tag + 1) if multiple else (tag,))
        return out

    def all_confirmed(self, n: int) -> bool:
        return set(range(1, n + 1)) <= self.covered()

    def wait_confirmed(self, n: int) -> defer.Deferred:
        """Fires with the confirms once publishes 1..n are all confirmed."""
        if self.all_confirmed(n):
            return defer.succeed(self.confirms)
        d = defer.Deferred()
        self._waiters.append((n, d))
        return d


class Tx:
    """Runs txAMQP scenarios on the reactor from the test's thread."""

    def __init__(self, url, reactor, spec):
        u = urlparse(url)
        self.host, self.port = u.hostname, u.port or 5672
        self.user, self.password = unquote(u.username or "guest"), unquote(u.password or "guest")
        self.vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
        self.reactor = reactor
        self.spec = spec
        self.clients: list = []

    def run(self, fn, *args):
        """Run ``fn(*args)`` (returning a Deferred) on the reactor; its result, or its exception."""
        def call():
            d = defer.maybeDeferred(fn, *args)
            d.addTimeout(H.TIMEOUT, self.reactor)
            return d
        return threads.blockingCallFromThread(self.reactor, call)

    @defer.inlineCallbacks
    def connect(self):
        """An authenticated connection (AMQPLAIN, txAMQP's default) with channel 1 open."""
        delegate = Delegate()
        client = AMQClient(delegate, self.vhost, self.spec)
        yield connectProtocol(TCP4ClientEndpoint(self.reactor, self.host, self.port), client)
        self.clients.append(client)
        yield client.authenticate(self.user, self.password)
        ch = yield client.channel(1)
        yield ch.channel_open()
        return client, ch

    @defer.inlineCallbacks
    def _close_all(self):
        for client in self.clients:
            if not client.closed and client.transport is not None and client.transport.connected:
                try:
                    yield client.close(within=2)
                finally:
                    client.transport.loseConnection()

    def close_all(self):
        self.run(self._close_all)


@pytest.fixture
def tx(url, reactor, spec):
    t = Tx(url, reactor, spec)
    yield t
    t.close_all()


def text(body: str, **properties) -> Content:
    return Content(body.encode(), properties=properties)


# ------------------------------------------------------------------ scenarios
def test_publish_get_reject_and_ack(tx):
    q = H.unique("txamqp.get")

    @defer.inlineCallbacks
    def scenario():
        client, ch = yield tx.connect()
        ok = yield ch.queue_declare(queue=q, exclusive=True)
        assert (ok.queue, ok.message_count, ok.consumer_count) == (q, 0, 0)
        ch.basic_publish(exchange="", routing_key=q,
                         content=text("hello", **{"content-type": "text/plain", "delivery-mode": 2,
                                                  "headers": {"n": 1}, "message-id": "m-1"}))
        got = yield ch.basic_get(queue=q)
        assert got.method.name == "get-ok"
        assert (got.redelivered, got.routing_key, got.message_count) == (False, q, 0)
        assert got.content.body == "hello"  # txAMQP decodes UTF-8 bodies to str
        props = got.content.properties
        assert (props["content-type"], props["delivery-mode"], props["headers"], props["message-id"]) == (
            "text/plain", 2, {"n": 1}, "m-1")
        ch.basic_reject(delivery_tag=got.delivery_tag, requeue=True)
        again = yield ch.basic_get(queue=q)
        assert (again.content.body, again.redelivered) == ("hello", True)
        ch.basic_ack(delivery_tag=again.delivery_tag)
        binary = bytes(range(256)) * 3
        ch.basic_publish(exchange="", routing_key=q, content=Content(binary))
        got = yield ch.basic_get(queue=q, no_ack=True)
        assert got.content.body == binary  # ... and the rest as bytes, byte for byte
        empty = yield ch.basic_get(queue=q)
        assert empty.method.name == "get-empty"
    tx.run(scenario)


def test_consume_with_prefetch_and_ack(tx):
    q = H.unique("txamqp.consume")

    @defer.inlineCallbacks
    def scenario():
        client, ch = yield tx.connect()
        yield ch.queue_declare(queue=q, exclusive=True)
        yield ch.basic_qos(prefetch_count=1)
        for i in range(3):
            ch.basic_publish(exchange="", routing_key=q, content=text(f"m{i}"))
        ok = yield ch.basic_consume(queue=q, consumer_tag="txamqp-consumer")
        assert ok.consumer_tag == "txamqp-consumer"
        deliveries = yield client.queue(ok.consumer_tag)
        bodies = []
        for i in range(3):
            msg = yield deliveries.get(timeout=H.TIMEOUT)
            assert (msg.consumer_tag, msg.redelivered, msg.routing_key) == ("txamqp-consumer", False, q)
            bodies.append(msg.content.body)
            if i == 0:  # prefetch 1: the other two wait in the broker until this one is acked
                probe = yield client.channel(2)
                yield probe.channel_open()
                counts = yield probe.queue_declare(queue=q, passive=True)
                assert (counts.message_count, counts.consumer_count) == (2, 1)
            ch.basic_ack(delivery_tag=msg.delivery_tag)
        assert bodies == ["m0", "m1", "m2"]
        cancel = yield ch.basic_cancel(consumer_tag=ok.consumer_tag)
        assert cancel.consumer_tag == ok.consumer_tag
    tx.run(scenario)


def test_publisher_confirms(tx):
    q = H.unique("txamqp.confirm")

    @defer.inlineCallbacks
    def scenario():
        client, ch = yield tx.connect()
        yield ch.queue_declare(queue=q, exclusive=True)
        yield ch.confirm_select()
        for i in range(4):
            ch.basic_publish(exchange="", routing_key=q, content=text(f"c{i}"))
        # unroutable with mandatory: returned, and still confirmed (acked) after the return
        ch.basic_publish(exchange="", routing_key=H.unique("txamqp.nowhere"), mandatory=True,
                         content=text("lost"))
        confirms = yield client.delegate.wait_confirmed(5)
        assert {kind for kind, _, _ in confirms} == {"ack"}
        assert client.delegate.covered() == {1, 2, 3, 4, 5}
        returned = yield client.basic_return_queue.get(timeout=H.TIMEOUT)
        assert (returned.reply_code, returned.reply_text) == (H.NO_ROUTE, H.NO_ROUTE_TEXT)
        counts = yield ch.queue_declare(queue=q, passive=True)
        assert counts.message_count == 4
    tx.run(scenario)


def test_transactions(tx):
    q = H.unique("txamqp.tx")

    @defer.inlineCallbacks
    def scenario():
        client, ch = yield tx.connect()
        yield ch.queue_declare(queue=q, exclusive=True)
        yield ch.tx_select()
        ch.basic_publish(exchange="", routing_key=q, content=text("rolled back"))
        yield ch.tx_rollback()
        ch.basic_publish(exchange="", routing_key=q, content=text("committed"))
        counts = yield ch.queue_declare(queue=q, passive=True)
        assert counts.message_count == 0  # not before the commit
        yield ch.tx_commit()
        got = yield ch.basic_get(queue=q, no_ack=True)
        assert got.content.body == "committed"
        empty = yield ch.basic_get(queue=q)
        assert empty.method.name == "get-empty"
    tx.run(scenario)


def test_channel_error_carries_rabbitmq_code_and_text(tx):
    q = H.unique("txamqp.missing")

    @defer.inlineCallbacks
    def scenario():
        client, ch = yield tx.connect()
        try:
            yield ch.queue_declare(queue=q, passive=True)
        except ChannelClosed as e:
            close = e.args[0]
            assert (close.reply_code, close.reply_text, close.class_id, close.method_id) == (
                H.NOT_FOUND, H.no_queue(q), 50, 10)
        else:
            raise AssertionError("a passive declare of a missing queue succeeded")
        # the connection is still usable on another channel
        ch2 = yield client.channel(2)
        yield ch2.channel_open()
        ok = yield ch2.queue_declare(queue=q, exclusive=True)
        assert ok.queue == q
    tx.run(scenario)
