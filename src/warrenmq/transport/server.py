"""The asyncio adapter: sockets in, protocol objects and sessions behind them.

Theory of operation: each accepted socket gets an :class:`AMQPProtocol` (an
``asyncio.BufferedProtocol``, not a stream, for speed; the loop reads into its
``FAIR_READ`` buffer).  ``data_received`` feeds the bytes to the sans-I/O
:class:`~warrenmq.protocol.connection.ServerConnection` and hands the resulting
events to the broker session in one batch.  Output is
never written inline: when the protocol object first gets pending output it
calls ``_schedule_flush``, which queues one ``_flush`` for the end of this loop
turn, so everything produced for a connection in a turn (replies, confirms,
deliveries caused by other connections' publishes) leaves in one ``write``.

Back-pressure: when a socket's write buffer passes the high mark asyncio calls
``pause_writing`` and the session stops dispatching to that connection's
consumers until ``resume_writing``.  Fairness: a read takes at most
``FAIR_READ`` bytes, and once a connection has handed the broker ``FAIR_BUDGET``
units of work (events, and 4 KiB units of bytes read) it yields until the next
loop turn (libuv would otherwise read a busy publisher's socket many times in one
turn, and a consumer's acks, hence its deliveries, would wait behind all of it).  Reading is paused through the session (``Session.pause``/``resume``
with a reason: the fairness yield, a resource alarm, credit flow), which calls
``pause_reading``/``resume_reading`` only when the first reason comes and the
last one goes; the first time credit flow throttles a connection, its
``SO_RCVBUF`` is set to ``flow_recbuf`` (``_on_throttled``).  Heartbeats: after tune-ok, a timer sends a
heartbeat frame when nothing was sent for half an interval and drops a peer
that sent nothing for two intervals.  ``Server.stop`` closes every connection
with CONNECTION_FORCED and waits briefly for the clients' close-ok.
"""
from __future__ import annotations

import asyncio
import logging
import socket

from ..amqp.session import PAUSE_YIELD, Session, new_protocol
from ..protocol.connection import CLOSING, OPEN
from ..protocol.spec import CONNECTION_FORCED

log = logging.getLogger("warrenmq.transport")

HANDSHAKE_TIMEOUT = 10.0
#: the most one read takes (reads go into a buffer this large).  Measured with one publisher flooding
#: 16 B messages and one consumer acking each (flow control off), yielding after each full read: the
#: consumer got 3-5k msg/s with the loop's own 256 KiB reads, 17-28k with 64 KiB, 31-62k with 16 KiB.
FAIR_READ = 16 * 1024
#: the read size of a connection whose messages are large (more than 4 KiB read per event)
LARGE_READ = 256 * 1024
#: the work a connection may hand the broker before it yields its loop turn, in units of one event
#: (a publish, an ack, ...) or 4 KiB read: 16 B publishes yield after every full read, 64 KiB ones after
#: about half a MiB (yielding after every 16 KiB read halved 64 KiB persistent throughput)
FAIR_BUDGET = 128


class AMQPProtocol(asyncio.BufferedProtocol):
    def __init__(self, server: "Server"):
        self.server = server
        self.broker = server.broker
        self.loop = server.loop
        self.proto = new_protocol(self.broker.config)
        self.proto.on_output = self._schedule_flush
        self.session = None
        self.transport = None
        self._flush_scheduled = False
        self._hb_handle = None
        self._handshake_handle = None
        self.last_recv = self.last_sent = 0.0
        self.closed = False
        self._handshaking = True
        self._rbuf = server.read_buffer  # small reads until it sends large messages (see data_received)
        self._budget = FAIR_BUDGET  # what it may still hand the broker before it yields (see FAIR_BUDGET)

    # ------------------------------------------------------------ asyncio API
    def connection_made(self, transport) -> None:
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        cfg = self.broker.config
        transport.set_write_buffer_limits(high=cfg.write_buffer_high, low=cfg.write_buffer_low)
        peer = transport.get_extra_info("peername")
        self.session = Session(self.broker, self.proto, peer[:2] if peer else None)
        self.session.reader = transport
        if cfg.flow_recbuf and sock is not None:
            self.session.on_throttled = self._on_throttled
        self.server.connections.add(self)
        self.last_recv = self.last_sent = self.loop.time()
        self._handshake_handle = self.loop.call_later(HANDSHAKE_TIMEOUT, self._handshake_timeout)

    def get_buffer(self, sizehint: int):
        # one buffer for every connection of the server: the loop fills it and calls buffer_updated at
        # once, which copies the bytes out before anything else can read (idle connections cost nothing)
        return self._rbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._rbuf[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        self.last_recv = self.loop.time()
        proto = self.proto
        events = proto.receive_data(data)
        if events:
            self.session.handle_events(events)
            if self._handshaking and proto.state == OPEN:
                self._handshake_done()
        if proto.state >= CLOSING:
            self.session.connection_lost()
        if proto.should_close:
            self._flush()
        else:
            n = len(data)
            # large messages (more than 4 KiB read per event) are read LARGE_READ at a time: 16 KiB reads
            # cost 64 KiB publishes a third of their throughput (more reads, bodies joined from pieces)
            if n == len(self._rbuf):
                self._rbuf = self.server.large_read_buffer if n > len(events) << 12 else self.server.read_buffer
            budget = self._budget - len(events) - (n >> 12)
            if budget > 0:
                self._budget = budget
            else:
                # a busy publisher: libuv would read its socket again and again in this loop turn, starving
                # consumers, timers and the store's group commit; let the others run first
                self._budget = FAIR_BUDGET
                if not self.session.reading_paused & PAUSE_YIELD:
                    self.session.pause(PAUSE_YIELD)
                    self.loop.call_soon(self.session.resume, PAUSE_YIELD)

    def _on_throttled(self) -> None:
        """Credit flow throttled this connection for the first time: shrink its receive buffer, so what
        the client sends while it is not read waits in the client (where its latency is seen), not in
        megabytes of autotuned kernel buffer.  Connections never throttled keep the autotuning."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.broker.config.flow_recbuf)
            except OSError:
                pass

    def eof_received(self):
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        self.server.connections.discard(self)
        for h in (self._hb_handle, self._handshake_handle):
            if h is not None:
                h.cancel()
        self._hb_handle = self._handshake_handle = None
        if self.session is not None:
            self.session.connection_lost()

    def pause_writing(self) -> None:
        self.session.set_paused(True)

    def resume_writing(self) -> None:
        self.session.set_paused(False)

    # ------------------------------------------------------------------ output
    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.closed:
            return
        data = self.proto.take_output()
        if data:
            if data.__class__ is list:  # large bodies: written without joining them to the rest
                self.transport.writelines(data)
            else:
                self.transport.write(data)
            self.last_sent = self.loop.time()
        if self.proto.should_close:
            self.closed = True
            self.transport.close()

    # ------------------------------------------------------------- timers
    def _handshake_timeout(self) -> None:
        self._handshake_handle = None
        if self.proto.state < OPEN and not self.closed:
            log.warning("closing %s: handshake not completed within %ss", self.session.name, HANDSHAKE_TIMEOUT)
            self.transport.close()

    def _handshake_done(self) -> None:
        self._handshaking = False
        if self._handshake_handle is not None:
            self._handshake_handle.cancel()
            self._handshake_handle = None
        if self.proto.heartbeat:
            self._hb_handle = self.loop.call_later(self.proto.heartbeat / 2.0, self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        if self.closed:
            return
        hb = self.proto.heartbeat
        now = self.loop.time()
        if now - self.last_recv > 2 * hb:
            log.warning("closing %s: missed heartbeats from client, timeout: %ss", self.session.name, hb)
            self.closed = True
            self.transport.abort()
            return
        if now - self.last_sent >= hb / 2.0 - 0.05 and not self.proto.has_output:
            self.proto.send_heartbeat()
        self._hb_handle = self.loop.call_later(hb / 2.0, self._heartbeat_tick)

    def force_close(self, text: str) -> None:
        self.proto.close(CONNECTION_FORCED, text)
        self._flush()


class Server:
    """Listens for AMQP connections for one :class:`~warrenmq.broker.broker.Broker`."""

    def __init__(self, broker, host: str = "0.0.0.0", port: int = 5672, ssl=None):
        self.broker = broker
        self.host = host
        self.port = port
        self.ssl = ssl  # an ssl.SSLContext makes this a TLS (AMQPS) listener
        self.loop = None
        self.connections: set[AMQPProtocol] = set()
        self._server = None
        self.read_buffer = memoryview(bytearray(FAIR_READ))  # shared by its connections (get_buffer)
        self.large_read_buffer = memoryview(bytearray(LARGE_READ))  # for connections sending large messages

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        kw = {"ssl": self.ssl, "ssl_handshake_timeout": HANDSHAKE_TIMEOUT} if self.ssl is not None else {}
        self._server = await self.loop.create_server(lambda: AMQPProtocol(self), self.host, self.port,
                                                     reuse_address=True, backlog=1024, **kw)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop listening; close every connection with CONNECTION_FORCED (as RabbitMQ on shutdown)."""
        if self._server is not None:
            self._server.close()
        conns = list(self.connections)
        for c in conns:
            if c.proto.state == OPEN:
                c.force_close("CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'")
            else:
                c.transport.close()
        deadline = self.loop.time() + timeout
        while self.connections and self.loop.time() < deadline:
            await asyncio.sleep(0.001)
        for c in list(self.connections):
            c.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
