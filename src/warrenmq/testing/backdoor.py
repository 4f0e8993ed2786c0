"""The back door: look inside an embedded broker and act on it without speaking AMQP.

Theory of operation: the functions here take the domain
:class:`~warrenmq.broker.broker.Broker` and must run on the broker's event-loop
thread.  :class:`~.embedded.EmbeddedBroker` forwards each call to its loop
(``call``), so its methods are safe from the test's thread;
:class:`~.embedded.AsyncEmbeddedBroker` runs on the caller's loop and calls
them directly.  What they return are snapshots (:class:`QueueInfo`,
:class:`MessageInfo`) that share nothing mutable with the broker, so they may
be read from any thread after the call.

Injected messages (:func:`publish`, :func:`enqueue`) are built in the caller's
thread (encoding the properties is pure computation) and then published on the
loop through ``VHost.publish``, the one publish path a ``basic.publish`` takes:
routed, persisted when persistent and a durable queue takes them, recorded.

Recording publishes: ``VHost.recorder`` is ``None`` unless a
:class:`Recording` is active on that vhost; the session checks it once per
publish (``VHost.publish``), so recording costs one attribute
check when unused.  While recordings are active the vhost's recorder is a
:class:`_RecorderHub` that hands every publish ``(exchange, message)`` to
each recording; a recording keeps ``(Message, body)`` pairs (list appends,
atomic under the GIL; the body as published, since a queue may later page
it out to disk) and decodes them only when read.  ``messages`` reads bodies a
queue paged out back from the store, without paging them in.

:func:`reset_app` replaces a running app by a brand-new one on the same
port: it closes every client connection with CONNECTION_FORCED (without
waiting for clients that are not reading), deletes the old broker's queues
(so their timers do nothing), stops the app (which flushes and closes its
storage), empties the data directory when the embedded broker owns it
(``durable=True``), and starts a new :class:`~warrenmq.app.BrokerApp` from the
same configuration, so only the default vhost, user and exchanges remain.
Restarting the whole app rather than clearing the broker in place means no
state of any feature can leak from one test to the next.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import datetime
import json
import os
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..app import BrokerApp
from ..broker.broker import Broker
from ..broker.message import Message, parse_expiration
from ..protocol.connection import OPEN
from ..protocol.properties import content_header
from ..protocol.spec import BasicProperties

__all__ = ["QueueInfo", "MessageInfo", "Recording", "AsyncRecording", "SyncBackdoor", "AsyncBackdoor",
           "make_message"]


# ------------------------------------------------------------------ snapshots
@dataclass(frozen=True)
class MessageInfo:
    """One message as the broker holds it (a copy)."""
    body: bytes
    exchange: str
    routing_key: str
    properties: BasicProperties
    vhost: str = "/"
    redelivered: bool = False
    unacked: bool = False  # delivered to a consumer and not settled yet

    @property
    def headers(self) -> dict:
        """The ``headers`` property (``{}`` when absent)."""
        return self.properties.headers or {}

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):
        return json.loads(self.body)


@dataclass(frozen=True)
class QueueInfo:
    """A queue's state, named as in RabbitMQ's management API."""
    name: str
    vhost: str
    messages_ready: int
    messages_unacknowledged: int
    consumers: int
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict = field(default_factory=dict)
    published: int = 0  # messages ever enqueued
    acked: int = 0  # messages ever acked (or delivered with auto-ack)
    bindings: tuple = ()  # (exchange, routing_key) pairs, the default exchange left out

    @property
    def messages(self) -> int:
        """Ready plus unacknowledged, as RabbitMQ counts ``messages``."""
        return self.messages_ready + self.messages_unacknowledged


def _message_info(msg: Message, vhost: str, redelivered=False, unacked=False, body=None) -> MessageInfo:
    # decode a fresh copy: never touch the message's own lazily cached properties from another thread
    return MessageInfo(bytes(msg.body if body is None else body), msg.exchange, msg.routing_key,
                       BasicProperties.decode(msg.header, 12), vhost, redelivered, unacked)


def _body(queue, msg: Message) -> bytes:
    """``msg``'s body, read back from disk (without paging it in) when the queue paged it out."""
    body = msg.body
    if body is None:
        page_id, store_id = getattr(msg, "page_id", 0), getattr(msg, "store_id", 0)
        if page_id:
            body = queue.page_store.read_body(page_id)
        elif store_id:
            body = queue.store.read_body(store_id)
    return body if body is not None else b""


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


# --------------------------------------------------------------- look-ups
def get_vhost(broker: Broker, vhost: str):
    vh = broker.vhosts.get(vhost)
    if vh is None:
        raise LookupError(f"no vhost '{vhost}'")
    return vh


def get_queue(broker: Broker, queue: str, vhost: str):
    q = get_vhost(broker, vhost).queues.get(queue)
    if q is None:
        raise LookupError(f"no queue '{queue}' in vhost '{vhost}'")
    return q


def queue_info(broker: Broker, queue: str, vhost: str = "/") -> QueueInfo | None:
    """The queue's state, or ``None`` when it does not exist."""
    vh = broker.vhosts.get(vhost)
    q = vh.queues.get(queue) if vh is not None else None
    if q is None:
        return None
    bindings = tuple(sorted((ex.name, key) for ex, key, _ in q.bindings))
    return QueueInfo(q.name, vhost, len(q.messages), q.unacked, len(q.consumers), q.durable, q.exclusive,
                     q.auto_delete, _copy(q.arguments), q.stats_published,
                     q.stats_acked + q.n_deliver_no_ack + q.n_get_no_ack, bindings)


def queue_infos(broker: Broker, vhost: str = "/") -> dict[str, QueueInfo]:
    return {name: queue_info(broker, name, vhost) for name in get_vhost(broker, vhost).queues}


def exchange_types(broker: Broker, vhost: str = "/") -> dict[str, str]:
    return {name: ex.type for name, ex in get_vhost(broker, vhost).exchanges.items()}


def queue_messages(broker: Broker, queue: str, vhost: str = "/", include_unacked=False) -> list[MessageInfo]:
    """The queue's ready messages in delivery order (with ``include_unacked``, merged in queue order)."""
    q = get_queue(broker, queue, vhost)
    entries = [(e.seq, e, False) for e in q.messages]
    if include_unacked and q.unacked:
        for session in list(broker.sessions):
            for channel in list(session.channels.values()):
                entries.extend((e.seq, e, True) for e in channel.unacked.values() if e.queue is q)
        entries.sort(key=lambda t: t[0])
    return [_message_info(e.message, vhost, e.redelivered, unacked, _body(q, e.message))
            for _, e, unacked in entries]


# ---------------------------------------------------------------- injection
_PROPERTY_NAMES = BasicProperties.FIELDS


def make_message(exchange: str, routing_key: str, body, properties=None, **props) -> Message:
    """A :class:`Message` as if a client had published it.

    ``body`` is ``bytes`` (or ``str``, sent as UTF-8).  ``properties`` is a
    mapping or any object with the AMQP property attributes (pika's or
    WarrenMQ's ``BasicProperties``); keyword arguments override it.
    """
    if isinstance(body, str):
        body = body.encode("utf-8")
    elif isinstance(body, (bytearray, memoryview)):
        body = bytes(body)
    elif not isinstance(body, bytes):
        raise TypeError(f"body must be bytes or str, not {type(body).__name__}")
    values: dict = {}
    if properties is not None:
        if isinstance(properties, Mapping):
            values.update(properties)
        else:
            for name in _PROPERTY_NAMES:
                v = getattr(properties, name, None)
                if v is not None:
                    values[name] = v
    values.update(props)
    unknown = set(values) - set(_PROPERTY_NAMES)
    if unknown:
        raise TypeError(f"unknown message properties: {', '.join(sorted(unknown))}")
    values = {k: v for k, v in values.items() if v is not None}
    if "expiration" in values:
        exp = values["expiration"] = str(values["expiration"])
        try:
            parse_expiration(exp)
        except ValueError as e:
            raise ValueError(f"invalid expiration '{exp}': {e}") from None
    ts = values.get("timestamp")
    if isinstance(ts, datetime.datetime):
        values["timestamp"] = int(ts.timestamp())
    header = content_header(BasicProperties(**values), len(body))
    return Message(exchange, routing_key, header, body)


def publish(broker: Broker, msg: Message, vhost: str = "/") -> int:
    """Publish ``msg`` to its exchange through the vhost's one publish path, as a client's publish goes
    (routed, persisted when persistent and a durable queue takes it, recorded); return how many queues
    it was routed to."""
    vh = get_vhost(broker, vhost)
    ex = vh.exchanges.get(msg.exchange)
    if ex is None:
        raise LookupError(f"no exchange '{msg.exchange}' in vhost '{vhost}'")
    routed = []

    def count(q) -> bool:
        routed.append(q)
        return True
    vh.publish(ex, msg, count)
    return len(routed)


def enqueue(broker: Broker, queue: str, msg: Message, vhost: str = "/") -> None:
    """Put ``msg`` into ``queue`` through the default exchange (``msg`` is addressed to it)."""
    get_queue(broker, queue, vhost)
    publish(broker, msg, vhost)


# ---------------------------------------------------------------- recording
class _RecorderHub:
    """A vhost's recorder while recordings are active: fans each publish out to them."""
    __slots__ = ("recordings",)

    def __init__(self):
        self.recordings: tuple = ()

    def __call__(self, exchange, msg) -> None:
        for r in self.recordings:
            if r.exchange is None or r.exchange == exchange.name:
                r._raw.append((msg, msg.body))  # the body as published (a queue may page it out later)


class Recording:
    """The messages published to one exchange (or every exchange) of a vhost while active.

    Made by ``broker.record(...)``; a context manager (recording stops on exit).
    ``messages`` may be read at any time, from any thread.
    """

    def __init__(self, owner, exchange: str | None, vhost: str):
        self._owner = owner  # the embedded broker
        self.exchange = exchange
        self.vhost = vhost
        self._raw: list = []
        self.active = False

    @property
    def messages(self) -> list[MessageInfo]:
        return [_message_info(m, self.vhost, body=body) for m, body in list(self._raw)]

    @property
    def bodies(self) -> list[bytes]:
        return [bytes(body) for _, body in list(self._raw)]

    def __len__(self) -> int:
        return len(self._raw)

    def clear(self) -> None:
        self._raw.clear()

    def stop(self) -> None:
        if self.active:
            try:
                self._owner._run(uninstall_recording, self)
            except RuntimeError:  # the broker is not running any more: nothing records
                self.active = False

    def __enter__(self) -> "Recording":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _describe(self, count: int, timeout: float) -> str:
        target = "every exchange" if self.exchange is None else f"exchange '{self.exchange}'"
        return (f"waited {timeout}s for {count} messages published to {target} in vhost '{self.vhost}', "
                f"recorded {len(self._raw)}")

    def wait(self, count: int = 1, timeout: float = 5.0) -> list[MessageInfo]:
        """Block until at least ``count`` messages were recorded; return them."""
        self._owner._wait_sync(lambda: len(self._raw) >= count, timeout, lambda: self._describe(count, timeout))
        return self.messages


class AsyncRecording(Recording):
    """The :class:`Recording` of an :class:`~.embedded.AsyncEmbeddedBroker`: ``wait`` is awaitable."""

    async def wait(self, count: int = 1, timeout: float = 5.0) -> list[MessageInfo]:
        await wait_async(lambda: len(self._raw) >= count, timeout, lambda: self._describe(count, timeout))
        return self.messages


def install_recording(broker: Broker, recording: Recording) -> None:
    vh = get_vhost(broker, recording.vhost)
    hub = vh.recorder
    if hub is None:
        hub = vh.recorder = _RecorderHub()
    hub.recordings = hub.recordings + (recording,)
    recording.active = True


def uninstall_recording(broker: Broker, recording: Recording) -> None:
    recording.active = False
    vh = broker.vhosts.get(recording.vhost)
    hub = vh.recorder if vh is not None else None
    if hub is None:
        return
    hub.recordings = tuple(r for r in hub.recordings if r is not recording)
    if not hub.recordings:
        vh.recorder = None


# ------------------------------------------------------------------- waiting
async def wait_async(predicate, timeout: float, describe) -> None:
    """Poll ``predicate()`` on the running loop until true; ``TimeoutError(describe())`` after ``timeout``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.001
    while not predicate():
        if loop.time() >= deadline:
            raise TimeoutError(describe())
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.02)


def describe_queue(broker: Broker, queue: str, vhost: str) -> str:
    info = queue_info(broker, queue, vhost)
    if info is None:
        return f"queue '{queue}' does not exist in vhost '{vhost}'"
    return (f"queue '{queue}' in vhost '{vhost}' has {info.messages_ready} ready, "
            f"{info.messages_unacknowledged} unacknowledged, {info.acked} acked so far, "
            f"{info.consumers} consumers")


def has_ready(broker: Broker, queue: str, vhost: str, count: int) -> bool:
    info = queue_info(broker, queue, vhost)
    return info is not None and info.messages_ready >= count


def has_consumers(broker: Broker, queue: str, vhost: str, count: int) -> bool:
    info = queue_info(broker, queue, vhost)
    return info is not None and info.consumers >= count


def is_acked(broker: Broker, queue: str, vhost: str, count: int | None) -> bool:
    info = queue_info(broker, queue, vhost)
    if info is None:
        return False
    if count is None:
        return info.messages_ready == 0 and info.messages_unacknowledged == 0
    return info.acked >= count


# --------------------------------------------------------------------- reset
RESET_TEXT = "CONNECTION_FORCED - broker forced connection closure with reason 'reset'"


async def close_connections(app, text: str, timeout: float = 1.0) -> None:
    """Send every client ``connection.close`` and drop its socket, without waiting for ``close-ok``
    (a blocking client that is not reading would make the broker wait for nothing)."""
    loop = asyncio.get_running_loop()
    servers = [s for s in (app.server, getattr(app, "tls_server", None)) if s is not None]
    for server in servers:
        for c in list(server.connections):
            if c.proto.state == OPEN:
                c.force_close(text)  # connection.close, flushed
            if not c.closed:
                c.closed = True
                c.transport.close()  # after the buffered output is written
    deadline = loop.time() + timeout
    while any(s.connections for s in servers) and loop.time() < deadline:
        await asyncio.sleep(0.001)
    for server in servers:
        for c in list(server.connections):
            c.transport.abort()


def clear_directory(path: str) -> None:
    for entry in os.listdir(path):
        full = os.path.join(path, entry)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)
        else:
            os.remove(full)


async def reset_app(app, timeout: float = 1.0, wipe_data_dir: bool = False):
    """Close every client connection, stop ``app`` and return a new, started app on the same port(s).

    The old broker's queues are deleted first (their timers then do nothing) and
    active recordings end.  With ``wipe_data_dir`` the data directory is emptied
    between the two, so the new broker recovers nothing.
    """
    port, tls_port = app.port, getattr(app, "tls_port", None)
    await close_connections(app, RESET_TEXT, timeout)
    for vh in app.broker.vhosts.values():
        hub, vh.recorder = vh.recorder, None
        for r in hub.recordings if hub is not None else ():
            r.active = False
        for q in list(vh.queues.values()):
            vh.delete_queue(q)
    await app.stop(timeout)
    config = app.config
    if wipe_data_dir and config.data_dir:
        clear_directory(config.data_dir)
    changes = {"port": port}
    if tls_port is not None:
        changes["tls_port"] = tls_port
    new = BrokerApp(dataclasses.replace(config, **changes))
    await new.start()
    return new


# ----------------------------------------------------------------- the mixins
class SyncBackdoor:
    """The back door of :class:`~.embedded.EmbeddedBroker`: every method runs on the broker's loop."""

    app = None
    loop = None
    _thread = None

    def _run(self, fn, *args):
        """``fn(broker, *args)`` on the broker's loop thread; its result or exception."""
        if self.loop is None or self._thread is None:
            raise RuntimeError("the embedded broker is not running")
        if self._thread is threading.current_thread():
            return fn(self.app.broker, *args)
        cf = concurrent.futures.Future()

        def run():
            try:
                cf.set_result(fn(self.app.broker, *args))
            except BaseException as e:
                cf.set_exception(e)
        self.loop.call_soon_threadsafe(run)
        return cf.result(timeout=10)

    def _wait_sync(self, predicate, timeout: float, describe) -> None:
        deadline = time.monotonic() + timeout
        delay = 0.001
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(describe())
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    # inspection
    def queues(self, vhost: str = "/") -> dict[str, QueueInfo]:
        """Every queue of ``vhost`` by name, in declaration order."""
        return self._run(queue_infos, vhost)

    def queue(self, name: str, vhost: str = "/") -> QueueInfo:
        """One queue's state; ``LookupError`` when it does not exist."""
        info = self._run(queue_info, name, vhost)
        if info is None:
            raise LookupError(f"no queue '{name}' in vhost '{vhost}'")
        return info

    def exchanges(self, vhost: str = "/") -> dict[str, str]:
        """Every exchange of ``vhost``: name -> type."""
        return self._run(exchange_types, vhost)

    def messages(self, queue: str, vhost: str = "/", include_unacked: bool = False) -> list[MessageInfo]:
        """The queue's ready messages, head first (plus delivered, unacked ones with ``include_unacked``)."""
        return self._run(queue_messages, queue, vhost, include_unacked)

    # injection
    def publish(self, exchange: str, routing_key: str, body, properties=None, *, vhost: str = "/",
                **props) -> int:
        """Publish as a client would (routed, recorded); return how many queues took the message."""
        return self._run(publish, make_message(exchange, routing_key, body, properties, **props), vhost)

    def enqueue(self, queue: str, body, properties=None, *, vhost: str = "/", **props) -> None:
        """Put a message straight into ``queue``, as if published to the default exchange."""
        self._run(enqueue, queue, make_message("", queue, body, properties, **props), vhost)

    # waiting
    def wait_for_messages(self, queue: str, count: int = 1, timeout: float = 5.0,
                          vhost: str = "/") -> list[MessageInfo]:
        """Block until ``queue`` exists and holds at least ``count`` ready messages; return them."""
        self._wait_sync(lambda: self._run(has_ready, queue, vhost, count), timeout,
                        lambda: f"waited {timeout}s for {count} ready messages: "
                                + self._run(describe_queue, queue, vhost))
        return self.messages(queue, vhost)

    def wait_for_consumers(self, queue: str, count: int = 1, timeout: float = 5.0,
                           vhost: str = "/") -> QueueInfo:
        """Block until ``queue`` exists and has at least ``count`` consumers; return its state."""
        self._wait_sync(lambda: self._run(has_consumers, queue, vhost, count), timeout,
                        lambda: f"waited {timeout}s for {count} consumers: "
                                + self._run(describe_queue, queue, vhost))
        return self.queue(queue, vhost)

    def wait_until_acked(self, queue: str, count: int | None = None, timeout: float = 5.0,
                         vhost: str = "/") -> QueueInfo:
        """Block until ``count`` messages of ``queue`` were acked in all (auto-ack deliveries count), or,
        without ``count``, until it has neither ready nor unacknowledged messages; return its state."""
        what = "the queue to be empty with nothing unacknowledged" if count is None else f"{count} acks"
        self._wait_sync(lambda: self._run(is_acked, queue, vhost, count), timeout,
                        lambda: f"waited {timeout}s for {what}: " + self._run(describe_queue, queue, vhost))
        return self.queue(queue, vhost)

    # recording
    def record(self, exchange: str | None = None, vhost: str = "/") -> Recording:
        """Start recording what is published to ``exchange`` (``None``: every exchange) of ``vhost``."""
        rec = Recording(self, exchange, vhost)
        self._run(install_recording, rec)
        return rec

    # reset
    def reset(self, timeout: float = 1.0) -> None:
        """Back to a fresh broker on the same port: client connections closed (CONNECTION_FORCED), only
        the default vhost, user and exchanges left (a ``durable=True`` broker's data directory emptied)."""
        if self.loop is None or self._thread is None:
            raise RuntimeError("the embedded broker is not running")
        wipe = _check_resettable(self)
        self.app = asyncio.run_coroutine_threadsafe(reset_app(self.app, timeout, wipe),
                                                    self.loop).result(timeout + 10)


def _check_resettable(embedded) -> bool:
    """Whether a reset must empty the data directory; refuses to touch one the embedded broker does not own."""
    data_dir = embedded.config.data_dir
    if not data_dir:
        return False
    if not getattr(embedded, "owns_data_dir", False):
        raise RuntimeError(f"reset() would delete the durable data in {data_dir}, which this embedded broker "
                           "did not create; use durable=True for a temporary data directory")
    return True


class AsyncBackdoor:
    """The back door of :class:`~.embedded.AsyncEmbeddedBroker` (call it on the broker's loop)."""

    app = None

    def _run(self, fn, *args):
        return fn(self.app.broker, *args)

    def queues(self, vhost: str = "/") -> dict[str, QueueInfo]:
        return queue_infos(self.app.broker, vhost)

    def queue(self, name: str, vhost: str = "/") -> QueueInfo:
        info = queue_info(self.app.broker, name, vhost)
        if info is None:
            raise LookupError(f"no queue '{name}' in vhost '{vhost}'")
        return info

    def exchanges(self, vhost: str = "/") -> dict[str, str]:
        return exchange_types(self.app.broker, vhost)

    def messages(self, queue: str, vhost: str = "/", include_unacked: bool = False) -> list[MessageInfo]:
        return queue_messages(self.app.broker, queue, vhost, include_unacked)

    def publish(self, exchange: str, routing_key: str, body, properties=None, *, vhost: str = "/",
                **props) -> int:
        return publish(self.app.broker, make_message(exchange, routing_key, body, properties, **props), vhost)

    def enqueue(self, queue: str, body, properties=None, *, vhost: str = "/", **props) -> None:
        enqueue(self.app.broker, queue, make_message("", queue, body, properties, **props), vhost)

    async def wait_for_messages(self, queue: str, count: int = 1, timeout: float = 5.0,
                                vhost: str = "/") -> list[MessageInfo]:
        await wait_async(lambda: has_ready(self.app.broker, queue, vhost, count), timeout,
                         lambda: f"waited {timeout}s for {count} ready messages: "
                                 + describe_queue(self.app.broker, queue, vhost))
        return self.messages(queue, vhost)

    async def wait_for_consumers(self, queue: str, count: int = 1, timeout: float = 5.0,
                                 vhost: str = "/") -> QueueInfo:
        await wait_async(lambda: has_consumers(self.app.broker, queue, vhost, count), timeout,
                         lambda: f"waited {timeout}s for {count} consumers: "
                                 + describe_queue(self.app.broker, queue, vhost))
        return self.queue(queue, vhost)

    async def wait_until_acked(self, queue: str, count: int | None = None, timeout: float = 5.0,
                               vhost: str = "/") -> QueueInfo:
        what = "the queue to be empty with nothing unacknowledged" if count is None else f"{count} acks"
        await wait_async(lambda: is_acked(self.app.broker, queue, vhost, count), timeout,
                         lambda: f"waited {timeout}s for {what}: " + describe_queue(self.app.broker, queue, vhost))
        return self.queue(queue, vhost)

    def record(self, exchange: str | None = None, vhost: str = "/") -> AsyncRecording:
        rec = AsyncRecording(self, exchange, vhost)
        install_recording(self.app.broker, rec)
        return rec

    async def reset(self, timeout: float = 1.0) -> None:
        wipe = _check_resettable(self)
        self.app = await reset_app(self.app, timeout, wipe)
