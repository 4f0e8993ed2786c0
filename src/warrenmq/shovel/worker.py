"""One dynamic shovel: connect both ends, move messages, reconnect when either end goes away.

Theory of operation: :meth:`Shovel.run` is a loop, one task per shovel.  Each round opens a source
link and a destination link (links/: a local URI uses the domain API, a remote one aiormq), with the
connection name ``Shovel <name>``; a list of URIs is failover: the first round starts at a random one
of each list (RabbitMQ picks at random), each further round takes the next, so every URI is tried.  The source is the named queue (declared durable if missing, as RabbitMQ's
``ensure_queue``) or an exclusive server-named queue bound to the source exchange with the source
key; the destination queue is likewise ensured.  Then it consumes with the prefetch and state becomes
``running``.  Each delivery is published to the destination:

* exchange and routing key: ``dest-queue`` publishes to the default exchange with the queue as key;
  ``dest-exchange`` / ``dest-exchange-key`` replace the delivery's own where given, which are kept
  otherwise (RabbitMQ's ``set_fields``);
* ``add-forward-headers`` prepends RabbitMQ's ``x-shovelled`` table (shovel type, name, vhost, node,
  the URIs without credentials, the queues or exchanges), ``dest-add-timestamp-header`` sets
  ``x-shovelled-timestamp`` (seconds); otherwise the content header is forwarded byte for byte;
* settling by ``ack-mode``: ``on-confirm`` acks the source delivery only when the destination
  confirms the publish (a nack from it nacks the source, requeued, as RabbitMQ's shovel does), so a
  message leaves the source only once the destination has it: nothing is lost whichever side dies,
  and what was in flight is redelivered (a duplicate at the destination when the confirm was lost on
  the way).  ``on-publish`` acks once the publish is handed to the destination connection (a
  message in flight when the destination dies is lost); ``no-ack`` consumes without acks.

A destination that cannot keep up (a remote one whose unwritten output passes a megabyte, a local one
under credit flow) pauses the source's deliveries until it catches up, so a fast source never piles
messages up in the shovel's memory, whatever the ack mode.

When either link dies (peer restart, link cut, an operator closing the connection, a channel
error) both are closed, unsettled deliveries go back to the source queue, the state becomes
``terminated`` with the reason, and the next round starts after the reconnect delay, doubled
after each round that never reached ``running`` (up to 8 times the delay, at most 60 s): the
backoff.  A reconnect delay of 0 means no restart, as in RabbitMQ.  ``src-delete-after`` (a count,
or ``queue-length``: the source queue's length when the shovel started) stops the shovel after that
many messages are settled at the source, and the manager then deletes its parameter, as RabbitMQ
does; deliveries past the count are given back (nack, requeue).
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque

from ..links import LinkClosed, open_link, redact, with_headers
from ..protocol.properties import content_header
from ..protocol.spec import BasicProperties
from .params import ShovelDef

log = logging.getLogger("warrenmq.shovel")

MAX_BACKOFF = 60.0


def _timestamp() -> str:
    """The time now as RabbitMQ's management plugin prints it: the hour not padded (``2026-12-06 0:28:03``)."""
    t = time.localtime()
    return f"{t.tm_year}-{t.tm_mon:02}-{t.tm_mday:02} {t.tm_hour}:{t.tm_min:02}:{t.tm_sec:02}"



def _endpoints(d, sep: str) -> dict:
    """The shovel's source and destination (queue, or exchange and key) as the forward headers (``sep``
    "-") and the status (``sep`` "_") name them; an exchange destination names only what was given."""
    out = {}
    if d.src_queue is not None:
        out["src" + sep + "queue"] = d.src_queue
    else:
        out["src" + sep + "exchange"] = d.src_exchange
        out["src" + sep + "exchange" + sep + "key"] = d.src_exchange_key
    if d.dest_queue is not None:
        out["dest" + sep + "queue"] = d.dest_queue
    else:
        if d.dest_exchange is not None:
            out["dest" + sep + "exchange"] = d.dest_exchange
        if d.dest_exchange_key is not None:
            out["dest" + sep + "exchange" + sep + "key"] = d.dest_exchange_key
    return out

class Shovel:
    """See the module docstring.  ``manager`` is the :class:`~.manager.ShovelManager`."""

    def __init__(self, manager, vhost: str, name: str, definition: ShovelDef):
        self.manager = manager
        self.broker = manager.broker
        self.vhost = vhost
        self.name = name
        self.d = definition
        self.state = "starting"
        self.reason = None
        self.timestamp = _timestamp()
        self.src_uri = self.dest_uri = None  # the URIs of the current round (LinkURI)
        self.task = None
        self.stopped = False
        self.src = self.dest = None
        self.finished = None  # a future of the current round: set when src-delete-after is reached
        # counts, for tests and statistics
        self.forwarded = 0  # published to the destination
        self.settled = 0  # settled at the source (acked, or consumed without ack)
        self.remaining = None  # delete-after: messages still to accept this run (None: no limit)
        self.accepted = 0
        self.ran = False  # the current round reached running
        self.uri_start = random.randrange(1 << 16)  # where the rotation through the URI lists starts
        self.rounds = 0
        # source acks, coalesced: delivery tags not yet acked at the source, in order, and those settled
        # (tag -> True: to ack, False: nacked already); one basic.ack(multiple) per loop turn covers the
        # settled prefix, as RabbitMQ's shovel acks with multiple
        self.order: deque = deque()
        self.done: dict = {}
        self.ack_scheduled = False
        self.connected = False  # the current round opened both links

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self.run())

    async def stop(self) -> None:
        self.stopped = True
        if self.task is not None and not self.task.done():
            self.task.cancel()
            try:
                await self.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping: the reason no longer matters
                pass
        await self._close_links()

    def _set(self, state: str, reason: str | None = None) -> None:
        self.state = state
        self.reason = reason
        self.timestamp = _timestamp()

    async def run(self) -> None:
        base = self.d.reconnect_delay
        cap = max(base, min(base * 8, MAX_BACKOFF))
        failures = 0
        while not self.stopped:
            self.ran = self.connected = False
            self._set("starting")
            try:
                await self._round()
                if self.finished is not None and self.finished.done():
                    self.flush_acks()  # what was settled is acked before the links close (no redelivery)
                    await self._close_links()
                    self.manager.completed(self)
                    return
            except (LinkClosed, OSError) as e:
                reason = str(e) or type(e).__name__
                if self.connected:  # connected, then failed: RabbitMQ shows the worker terminated
                    self._set("terminated", reason)
                else:  # could not connect: still starting
                    self.reason = reason
                log.info("shovel '%s' in vhost '%s': %s", self.name, self.vhost, reason)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - a bug must not kill the restart loop
                log.exception("shovel '%s' in vhost '%s' failed", self.name, self.vhost)
                self._set("terminated", f"{type(e).__name__}: {e}")
            finally:
                if not self.stopped:
                    await self._close_links()
            if self.stopped or base <= 0:
                return
            failures = 0 if self.ran else failures + 1
            await asyncio.sleep(min(base * 2 ** max(failures - 1, 0), cap))

    async def _close_links(self) -> None:
        src, dest, self.src, self.dest = self.src, self.dest, None, None
        for link in (dest, src):  # the destination first: its confirms no longer matter once the source goes
            if link is not None:
                try:
                    await link.close()
                except Exception:  # noqa: BLE001 - closing a dead link
                    pass

    # ------------------------------------------------------------ one round
    async def _round(self) -> None:
        d = self.d
        if not d.src_uris or not d.dest_uris:
            await asyncio.Event().wait()  # nothing to connect to: starting for ever, as RabbitMQ shows it
        conn_name = f"Shovel {self.name}"
        self.rounds += 1
        self.src_uri = d.src_uris[(self.uri_start + self.rounds) % len(d.src_uris)]
        self.dest_uri = d.dest_uris[(self.uri_start + self.rounds) % len(d.dest_uris)]
        self.src = await open_link(self.broker, self.src_uri, conn_name)
        self.dest = await open_link(self.broker, self.dest_uri, conn_name, confirms=d.ack_mode == "on-confirm")
        src, dest = self.src, self.dest
        self.connected = True
        self.order, self.done, self.ack_scheduled = deque(), {}, False
        dest.set_flow_listener(src.pause)  # a destination that cannot keep up stops the source's deliveries
        if d.src_queue is not None:
            length = await src.ensure_queue(d.src_queue)
            queue = d.src_queue
        else:
            queue, length = await src.declare_queue("", durable=False, exclusive=True)
            await src.bind(queue, d.src_exchange, d.src_exchange_key)
        if d.dest_queue is not None:
            await dest.ensure_queue(d.dest_queue)
        if d.delete_after == "queue-length" and d.src_queue is not None:
            self.remaining = length - self.settled if self.remaining is None else self.remaining
        elif isinstance(d.delete_after, int) and not isinstance(d.delete_after, bool):
            self.remaining = d.delete_after - self.settled
        loop = asyncio.get_running_loop()
        self.finished = loop.create_future()
        self.accepted = 0
        self.ran = False
        if self.remaining is not None and self.remaining <= 0:
            self.finished.set_result(True)
            return
        self._prepare_publish()
        prefetch = d.prefetch
        if self.remaining is not None and prefetch:
            prefetch = min(prefetch, self.remaining)
        await src.consume(queue, self._on_delivery, prefetch=prefetch, no_ack=d.ack_mode == "no-ack",
                          arguments=d.consumer_args or None)
        self._set("running")
        self.ran = True
        done, _ = await asyncio.wait([src.closed, dest.closed, self.finished], return_when=asyncio.FIRST_COMPLETED)
        if self.finished.done():
            return
        which = "source" if src.closed.done() else "destination"
        fut = src.closed if src.closed.done() else dest.closed
        raise LinkClosed(f"{which} connection closed: {fut.result()}")

    def _prepare_publish(self) -> None:
        d = self.d
        if d.dest_queue is not None:
            self.out_exchange, self.out_key = "", d.dest_queue
        else:
            self.out_exchange, self.out_key = d.dest_exchange, d.dest_exchange_key
        self.rewrite = d.forward_headers or d.timestamp_header or bool(d.publish_properties)
        if d.forward_headers:
            t = {"shovelled-by": self.manager.node, "shovel-type": "dynamic", "shovel-name": self.name,
                 "shovel-vhost": self.vhost, "src-uri": redact(self.src_uri.uri), "dest-uri": redact(self.dest_uri.uri),
                 **_endpoints(d, "-")}
            self.forward_table = dict(sorted(t.items()))
        else:
            self.forward_table = None

    def _rewrite(self, header: bytes) -> bytes:
        d = self.d
        if d.publish_properties:
            props = BasicProperties.decode(header, 12)
            for k, v in d.publish_properties.items():
                if k in BasicProperties.FIELDS:
                    setattr(props, k, v)
            header = content_header(props, int.from_bytes(header[4:12], "big"))
        updates = {}
        if d.timestamp_header:
            updates["x-shovelled-timestamp"] = int(time.time())
        prepend = {"x-shovelled": self.forward_table} if self.forward_table is not None else None
        if updates or prepend:
            header = with_headers(header, updates, prepend)
        return header

    # ------------------------------------------------------------ the message path
    def _on_delivery(self, tag: int, exchange: str, routing_key: str, redelivered: bool, header: bytes,
                     body: bytes) -> None:
        src, dest = self.src, self.dest
        if src is None or dest is None:
            return
        mode = self.d.ack_mode
        if mode != "no-ack":
            self.order.append(tag)
        if self.remaining is not None:
            if self.accepted >= self.remaining:  # past src-delete-after: give it back
                if mode != "no-ack":
                    self._nack_src(tag)
                return
            self.accepted += 1
        ex = self.out_exchange if self.out_exchange is not None else exchange
        key = self.out_key if self.out_key is not None else routing_key
        if self.rewrite:
            header = self._rewrite(header)
        try:
            if mode == "on-confirm":
                dest.publish(ex, key, header, body, on_confirm=lambda ok, t=tag: self._confirmed(t, ok))
                self.forwarded += 1
                return
            dest.publish(ex, key, header, body)
        except LinkClosed:
            return  # the round ends on dest.closed; the source requeues what it delivered
        self.forwarded += 1
        if mode == "on-publish":
            self._ack_src(tag)
        self._settled()

    def _confirmed(self, tag: int, ok: bool) -> None:
        if self.src is None:
            return
        if ok:
            self._ack_src(tag)
            self._settled()
            return
        self._nack_src(tag)
        if self.remaining is not None:
            self.accepted -= 1

    def _ack_src(self, tag: int) -> None:
        self.done[tag] = True
        if not self.ack_scheduled:
            self.ack_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush_acks)

    def _nack_src(self, tag: int) -> None:
        """Give the delivery back to the source queue (requeued) now; the acks after it may pass it."""
        self.done[tag] = False
        try:
            self.src.nack(tag, False, True)
        except LinkClosed:
            pass

    def flush_acks(self) -> None:
        """Ack the settled prefix of the deliveries with one ``basic.ack(multiple)`` up to its last acked tag
        (a nacked tag is no longer outstanding: an ack past it is valid, an ack *of* it would not be)."""
        self.ack_scheduled = False
        order, done = self.order, self.done
        last = None
        while order and order[0] in done:
            t = order.popleft()
            if done.pop(t):
                last = t
        src = self.src
        if last is not None and src is not None:
            try:
                src.ack(last, True)
            except LinkClosed:
                pass

    def _settled(self) -> None:
        self.settled += 1
        if self.remaining is not None:
            self.remaining -= 1
            self.accepted -= 1
            if self.remaining <= 0 and self.finished is not None and not self.finished.done():
                self.finished.set_result(True)

    # ------------------------------------------------------------ status
    def status(self, node: str) -> dict:
        """As RabbitMQ 3.10's ``/api/shovels`` shows a dynamic shovel."""
        out = {"node": node, "timestamp": self.timestamp, "name": self.name, "vhost": self.vhost, "type": "dynamic",
               "state": self.state}
        if self.state == "terminated":
            out["reason"] = f'"{self.reason}"'
        elif self.state == "running":
            d = self.d
            out["src_uri"] = redact(self.src_uri.uri)
            out["src_protocol"] = "amqp091"
            out["dest_protocol"] = "amqp091"
            out["dest_uri"] = redact(self.dest_uri.uri)
            out.update(_endpoints(d, "_"))
        return out
