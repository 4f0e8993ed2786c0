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
consumers until ``resume_writing`` (after a ``writelines``, ``_flush`` makes
the transport check its high mark: CPython 3.12.0-3.12.8 and 3.13.0-3.13.1 do
not, gh-127655, and a stalled consumer would take every delivery).  Fairness: a read takes at most
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

Bounded lifetimes (as RabbitMQ's rabbit_reader): whatever the peer does, a connection
is gone within a known time once it is not healthy.  A connection must be OPEN
within ``handshake_timeout_ms`` of being accepted, and one that fails during the
handshake (a framing error, a refused vhost) is dropped by the same deadline
even if it never answers the close.  Once the broker has sent
``connection.close`` (the first output with ``proto.close_reason`` set), the
socket is aborted if no close-ok came within ``close_timeout_ms``.  A refused
login of a client without the ``authentication_failure_close`` capability is
left unread for ``auth_failure_delay_ms`` before the socket is closed (the
session sets ``close_delay``), which makes password guessing slow.

TLS: the listener accepts plain TCP and upgrades it with ``loop.start_tls``
(:class:`TLSAcceptor`), so a failed or timed-out TLS handshake is seen here and
logged with the peer and the reason, at most once a minute per peer address
(:class:`RateLimitedLog`, bounded memory).  ``Server.bind`` binds the socket
without accepting; ``Server.start`` binds if needed and starts accepting (the
app binds every listener before it opens storage).

Logging (:mod:`warrenmq.amqp.connlog`): a connection's "accepting" line is written when its first
bytes arrive (the check runs only while handshaking), so a port probe that sends nothing is not
logged, as in RabbitMQ; the end of a connection that was not closed cleanly is logged with its
reason (the client vanished, missed heartbeats, a handshake or close-ok timeout).
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import sys

from ..amqp import connlog
from ..amqp.session import PAUSE_ALARM, PAUSE_YIELD, Session, new_protocol
from ..protocol.connection import CLOSING, OPEN
from ..protocol.spec import CONNECTION_FORCED

log = logging.getLogger("warrenmq.transport")

HANDSHAKE_TIMEOUT = 10.0  # the default of config.handshake_timeout_ms, in seconds
#: failed TLS handshakes are logged at most once per peer address in this many seconds
TLS_LOG_INTERVAL = 60.0
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
        self.proto = new_protocol(self.broker.config, self.broker.cluster_name)
        self.proto.on_output = self._schedule_flush
        self.session = None
        self.transport = None
        self._flush_scheduled = False
        self._hb_handle = None
        self._handshake_handle = None
        self._close_handle = None  # the close-ok deadline, once connection.close went out
        self.last_recv = self.last_sent = 0.0
        self.closed = False
        self._handshaking = True
        self._write_paused = False  # between pause_writing and resume_writing
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
        local = transport.get_extra_info("sockname")
        self.session = Session(self.broker, self.proto, peer[:2] if peer else None,
                               local[:2] if isinstance(local, tuple) else None)
        self.session.reader = transport
        if cfg.flow_recbuf and sock is not None:
            self.session.on_throttled = self._on_throttled
        self.server.connections.add(self)
        self.last_recv = self.last_sent = self.loop.time()
        self._handshake_handle = self.loop.call_later(self.server.handshake_timeout, self._handshake_timeout)

    def get_buffer(self, sizehint: int):
        # one buffer for every connection of the server: the loop fills it and calls buffer_updated at
        # once, which copies the bytes out before anything else can read (idle connections cost nothing)
        return self._rbuf

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._rbuf[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        self.last_recv = self.loop.time()
        session = self.session
        session.recv_oct += len(data)
        session.recv_cnt += 1
        if self._handshaking and not session.announced:
            # as RabbitMQ, a connection is logged once it sends something (a port probe is not)
            session.announced = True
            connlog.accepted(session)
        proto = self.proto
        memory = self.broker.memory
        queued = memory.used
        events = proto.receive_data(data)
        if events:
            self.session.handle_events(events)
            if self._handshaking and proto.state == OPEN:
                self._handshake_done()
        # the memory alarm's estimate until its next RSS sample: what was read and not queued (the
        # queues count the bodies they took), e.g. a message still being received
        memory.received(len(data) - (memory.used - queued))
        if session.blocked and not session.reading_paused & PAUSE_ALARM and proto.receiving_bytes:
            session.pause_reading()  # a message being received while an alarm is on: stop reading
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
        for h in (self._hb_handle, self._handshake_handle, self._close_handle):
            if h is not None:
                h.cancel()
        self._hb_handle = self._handshake_handle = self._close_handle = None
        if self.session is not None:
            # gone without a close handshake: the client vanished (RabbitMQ's warning and words)
            self.session.connection_lost("client unexpectedly closed TCP connection"
                                         if self.proto.state < CLOSING else None)

    def pause_writing(self) -> None:
        self._write_paused = True
        self.session.set_paused(True)

    def resume_writing(self) -> None:
        self._write_paused = False
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
                transport = self.transport
                transport.writelines(data)
                self.session.send_oct += sum(map(len, data))
                if not self._write_paused and transport.get_write_buffer_size():
                    # CPython 3.12.0-3.12.8 and 3.13.0-3.13.1: the selector transport's writelines
                    # buffers without checking the high mark (gh-127655), so pause_writing never
                    # came. Setting the limits again makes the transport check: past the high mark it
                    # pauses us, and so resumes us when its buffer drains below the low mark.
                    low, high = transport.get_write_buffer_limits()
                    transport.set_write_buffer_limits(high=high, low=low)
            else:
                self.transport.write(data)
                self.session.send_oct += len(data)
            self.session.send_cnt += 1
            self.last_sent = self.loop.time()
        if self.proto.should_close:
            self._close_socket()
        elif self._close_handle is None and self.proto.close_reason is not None:
            self._close_handle = self.loop.call_later(self.server.close_timeout, self._close_timeout)

    def _close_socket(self) -> None:
        """The protocol is done: close the socket, at once or after the session's ``close_delay``."""
        self.closed = True
        delay = self.session.close_delay if self.session is not None else 0
        if delay > 0:  # a refused login: leave the client unanswered and unread for a while
            self.transport.pause_reading()
            self._close_handle = self.loop.call_later(delay, self.transport.close)
        else:
            self.transport.close()

    # ------------------------------------------------------------- timers
    def _handshake_timeout(self) -> None:
        self._handshake_handle = None
        if self.proto.state < OPEN and not self.closed:
            self._drop(f"handshake not completed within {self.server.handshake_timeout:g}s")
        elif self.proto.state >= CLOSING and not self.closed:  # refused during the handshake, no close-ok
            self._drop("no connection.close-ok after a handshake error")

    def _drop(self, reason: str) -> None:
        """Abort the socket of an unhealthy connection, logging ``reason`` as its end."""
        self.closed = True
        self.session.connection_lost(reason)
        self.transport.abort()

    def _close_timeout(self) -> None:
        self._close_handle = None
        if not self.closed:
            self._drop(f"no connection.close-ok within {self.server.close_timeout:g}s")

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
            self._drop(f"missed heartbeats from client, timeout: {hb}s")
            return
        if now - self.last_sent >= hb / 2.0 - 0.05 and not self.proto.has_output:
            self.proto.send_heartbeat()
        self._hb_handle = self.loop.call_later(hb / 2.0, self._heartbeat_tick)

    def force_close(self, text: str) -> None:
        """Close with CONNECTION_FORCED and ``text`` (``CONNECTION_FORCED - reason``): the management API,
        shutdown, the test backdoor."""
        session = self.session
        if session is not None and not session.close_logged and self.proto.state == OPEN:
            session.close_logged = True
            connlog.forced(session, CONNECTION_FORCED, text)
        self.proto.close(CONNECTION_FORCED, text)
        self._flush()


class ListenError(OSError):
    """A listener could not bind its address (in use, not permitted, no such address). ``option`` is the
    command-line option that chooses another port, for the CLI's hint."""

    def __init__(self, host: str, port: int, tls: bool, cause: OSError, option: str = "--port"):
        reason = os.strerror(cause.errno).lower() if cause.errno else str(cause)  # asyncio's text repeats us
        super().__init__(cause.errno, f"cannot listen on {host}:{port}{' (TLS)' if tls else ''}: {reason}")
        self.host, self.port, self.tls, self.option = host, port, tls, option


def listen_socket(host: str, port: int, option: str, tls: bool = False) -> socket.socket:
    """A bound, listening, non-blocking TCP socket for an aiohttp site (management, Prometheus, Web
    STOMP, Web MQTT); ListenError naming ``option`` (and ``tls``: that it is a TLS port) when the address
    cannot be bound."""
    try:
        family = socket.AF_INET6 if host and ":" in host else socket.AF_INET
        sock = socket.create_server((host or "0.0.0.0", port), family=family, backlog=128)
    except OSError as e:
        raise ListenError(host, port, tls, e, option) from e
    sock.setblocking(False)
    return sock


class RateLimitedLog:
    """Log at most once per key (a peer address) per ``interval`` seconds, remembering at most ``size``
    keys (the oldest are forgotten first), so a flood of peers cannot grow it without bound."""

    def __init__(self, interval: float = TLS_LOG_INTERVAL, size: int = 4096):
        self.interval = interval
        self.size = size
        self.last: dict = {}  # key -> time of its last line, oldest first
        self.suppressed = 0  # lines not logged because of the limit

    def allow(self, key, now: float) -> bool:
        last = self.last.get(key)
        if last is not None and now - last < self.interval:
            self.suppressed += 1
            return False
        self.last.pop(key, None)
        self.last[key] = now
        if len(self.last) > self.size:
            del self.last[next(iter(self.last))]
        return True


class TLSAcceptor(asyncio.Protocol):
    """A TLS listener's accepted socket until its TLS handshake is done (see the module docstring)."""

    def __init__(self, server: "Server"):
        self.server = server
        self.amqp = None
        self.early: list = []  # what came before start_tls took the socket over (uvloop reads at once)

    def connection_made(self, transport) -> None:
        transport.pause_reading()  # asyncio: nothing reaches us; uvloop starts reading after this returns
        if sys.version_info < (3, 11):
            # CPython 3.10's selector transport starts reading after connection_made even when paused
            # there, and start_tls's own pause is then a no-op: the ClientHello would reach the TLS
            # protocol before its connection_made, which drops it.  Pause for real once reading started.
            self.server.loop.call_soon(self._pause_for_real, transport)
        self.server.handshaking.add(self)
        self.task = self.server.loop.create_task(self._upgrade(transport))

    @staticmethod
    def _pause_for_real(transport) -> None:
        if not transport.is_closing():
            transport.resume_reading()
            transport.pause_reading()

    def data_received(self, data) -> None:
        self.early.append(bytes(data))

    def _replay(self, transport) -> None:
        """Hand what we read (the ClientHello) to the TLS protocol start_tls put in place: it waits in
        the protocol's incoming buffer until its handshake starts."""
        early, self.early = self.early, []
        proto = transport.get_protocol()
        if proto is self or transport.is_closing():
            return
        for data in early:
            view = memoryview(data)
            while view:
                buf = proto.get_buffer(len(view))
                n = min(len(buf), len(view))
                buf[:n] = view[:n]
                proto.buffer_updated(n)
                view = view[n:]

    def connection_lost(self, exc) -> None:
        pass

    async def _upgrade(self, transport) -> None:
        server = self.server
        peer = transport.get_extra_info("peername")
        amqp = self.amqp = AMQPProtocol(server)
        early: list = []
        amqp.data_received = early.append  # bytes that come with the end of the handshake, replayed below
        try:
            # runs after start_tls swapped its protocol in (below, in this step) and before it starts
            # the handshake (start_tls schedules that after this)
            server.loop.call_soon(self._replay, transport)
            tls = await server.loop.start_tls(transport, amqp, server.ssl, server_side=True,
                                              ssl_handshake_timeout=server.tls_handshake_timeout)
        except (OSError, asyncio.TimeoutError, ssl.SSLError, EOFError) as e:
            server.tls_handshake_failed(peer, e)
            transport.abort()
            return
        except asyncio.CancelledError:
            transport.abort()
            raise
        finally:
            server.handshaking.discard(self)
        del amqp.data_received
        amqp.connection_made(tls)
        for data in early:
            if amqp.closed:
                break
            amqp.data_received(data)


class Server:
    """Listens for AMQP connections for one :class:`~warrenmq.broker.broker.Broker`."""

    def __init__(self, broker, host: str = "0.0.0.0", port: int = 5672, ssl=None, config=None):
        self.broker = broker
        self.host = host
        self.port = port
        self.ssl = ssl  # an ssl.SSLContext makes this a TLS (AMQPS) listener
        config = config if config is not None else getattr(broker, "config", None)
        self.handshake_timeout = getattr(config, "handshake_timeout_ms", HANDSHAKE_TIMEOUT * 1000) / 1000.0
        self.close_timeout = getattr(config, "close_timeout_ms", 30_000) / 1000.0
        self.tls_handshake_timeout = getattr(config, "tls_handshake_timeout_ms", 5_000) / 1000.0
        self.tls_log = RateLimitedLog()
        self.loop = None
        self.connections: set[AMQPProtocol] = set()
        self.handshaking: set[TLSAcceptor] = set()  # TLS sockets still in their TLS handshake
        self._server = None
        self.read_buffer = memoryview(bytearray(FAIR_READ))  # shared by its connections (get_buffer)
        self.large_read_buffer = memoryview(bytearray(LARGE_READ))  # for connections sending large messages

    async def bind(self) -> None:
        """Bind the listening socket (OSError if the address is taken); connections wait for start()."""
        if self._server is not None:
            return
        self.loop = asyncio.get_running_loop()
        factory = (lambda: AMQPProtocol(self)) if self.ssl is None else (lambda: TLSAcceptor(self))
        try:
            self._server = await self.loop.create_server(factory, self.host, self.port, reuse_address=True,
                                                         backlog=1024, start_serving=False)
        except OSError as e:
            raise ListenError(self.host, self.port, self.ssl is not None, e,
                              "--port" if self.ssl is None else "--tls-port") from e
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]

    async def start(self) -> None:
        await self.bind()
        await self._server.start_serving()

    def tls_handshake_failed(self, peer, exc) -> None:
        """Log a failed TLS handshake: the peer and the reason, once a minute per peer address."""
        host = peer[0] if peer else None
        if not self.tls_log.allow(host, self.loop.time()):
            return
        text = str(exc)
        if isinstance(exc, (asyncio.TimeoutError, TimeoutError)) or "timed out" in text or "taking longer" in text:
            reason = f"no TLS handshake within {self.tls_handshake_timeout:g}s"
        else:
            reason = getattr(exc, "reason", None) or text or exc.__class__.__name__
            detail = getattr(exc, "verify_message", None)  # why a certificate was not trusted
            if detail:
                reason = f"{reason} ({detail})"
        where = f"{peer[0]}:{peer[1]}" if peer else "unknown peer"
        log.warning("TLS handshake with %s failed: %s (further failures from %s are not logged for %ds)",
                    where, reason, host, int(self.tls_log.interval))

    async def stop(self, timeout: float = 2.0) -> None:
        """Stop listening; close every connection with CONNECTION_FORCED (as RabbitMQ on shutdown)."""
        if self.loop is None:  # never bound
            return
        if self._server is not None:
            self._server.close()
        for a in list(self.handshaking):
            a.task.cancel()
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
