"""The MQTT listener: an asyncio protocol per socket in front of a :class:`~warrenmq.mqtt.session.MQTTSession`.

Theory of operation: :class:`MQTTProtocol` hands received bytes to its session and is the
session's ``io``: ``write`` sends at once (the session already joins a turn's packets),
``call_soon`` and ``pause_reading`` reach the loop and the transport.  It notes when bytes last
arrived; :class:`MQTTServer` checks each connected session's keepalive on a timer that fires at
1.5 times the client's keepalive, and disconnects a client silent that long.  The server keeps
what the sessions of all connections share: the connected client ids per vhost (a second CONNECT
with the same id takes the session over) and the retained messages per vhost, loaded from the
definitions store at start and written back, the changes of a second together, on a timer and at
stop.  For the persistent sessions of clients that are away it keeps what is not in their queues:
the QoS 2 packet ids of unfinished handshakes (:meth:`MQTTServer.keep_qos2_ids`), and an index of the
shared subscription queues each session is a member of; a one-second timer deletes the shared queues
whose member sessions all expired.  With a TLS context it also listens on ``tls_port`` (MQTT over TLS, RabbitMQ's
mqtt.listeners.ssl): the same protocol and sessions behind asyncio's TLS transport, the handshake
bounded by ``tls_handshake_timeout_ms``.  Write-side flow:
``pause_writing`` stops deliveries to the connection until ``resume_writing`` (the write buffer
limits are ``write_buffer_high``/``write_buffer_low``, as for AMQP).

Fair reading, as the AMQP listener does it (transport/server.py): the loop reads into one
``FAIR_READ`` buffer the server's connections share (``LARGE_READ`` for a connection sending large
messages), and a connection that handed the session ``FAIR_BUDGET`` units of work (packets, and
4 KiB units of bytes read) pauses its reading until the next loop turn.  Without that, libuv reads a
busy publisher's socket up to 32 times in one callback (256 KiB each): the deliveries to the
subscribers, written at the end of the turn, waited behind megabytes of publishes, and a fan-in of
100 QoS 0 devices delivered nothing for seconds.  Reading is paused for the session's reasons
(credit flow, a resource alarm) or for the yield, and resumed when neither holds; the first time
credit flow throttles the connection its ``SO_RCVBUF`` shrinks to ``flow_recbuf``, so what a device
sends while it is not read waits on the device, not in megabytes of autotuned kernel buffer.
"""
from __future__ import annotations

import asyncio
import logging
import socket

from ..mqtt.session import MQTTSession, RetainedStore, index_shared_queue, release_shared_queue
from .server import FAIR_BUDGET, FAIR_READ, LARGE_READ, ListenError

log = logging.getLogger("warrenmq.mqtt")

RETAINED_SAVE_INTERVAL = 1.0  # seconds between writes of changed retained messages to the definitions store
CLOSE_LINGER = 2.0  # seconds a closed connection waits for the client to close its side (see MQTTProtocol.close)


class MQTTProtocol(asyncio.BufferedProtocol):
    def __init__(self, server: "MQTTServer"):
        self.server = server
        self.loop = server.loop
        self.transport = None
        self.session: MQTTSession | None = None
        self.peer = None
        self.last_data = 0.0
        self.reading_paused = False  # the transport's state
        self.session_paused = False  # the session's reasons (flow, alarm)
        self.yielding = False  # the fairness yield until the next loop turn
        self.throttled_once = False
        self._rbuf = server.read_buffer
        self._budget = FAIR_BUDGET

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        cfg = self.server.app.config
        transport.set_write_buffer_limits(high=cfg.write_buffer_high, low=cfg.write_buffer_low)
        self.last_data = self.loop.time()
        self.session = MQTTSession(self.server, self)
        self.server.protocols.add(self)
        self.server.schedule_connect_timeout(self)

    def get_buffer(self, sizehint: int):
        return self._rbuf  # shared: buffer_updated copies the bytes out before anything else reads

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(self._rbuf[:nbytes].tobytes())

    def data_received(self, data: bytes) -> None:
        self.last_data = self.loop.time()
        session = self.session
        before = session.recv_pkts
        session.data_received(data)
        n = len(data)
        packets = session.recv_pkts - before
        if n == len(self._rbuf):  # more than 4 KiB a packet: large reads (fewer of them, no joined pieces)
            self._rbuf = self.server.large_read_buffer if n > packets << 12 else self.server.read_buffer
        budget = self._budget - packets - (n >> 12)
        if budget > 0:
            self._budget = budget
        elif not self.yielding:
            self._budget = FAIR_BUDGET
            self.yielding = True
            self._update_reading()
            self.loop.call_soon(self._resume_turn)

    def _resume_turn(self) -> None:
        self.yielding = False
        self._update_reading()

    def connection_lost(self, exc) -> None:
        self.server.protocols.discard(self)
        if self.session is not None:
            self.session.connection_lost()

    def pause_writing(self) -> None:
        self.session.set_paused(True)

    def resume_writing(self) -> None:
        self.session.set_paused(False)

    # ------------------------------------------------------------ the session's io
    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        """Close after what was written (a CONNACK refusing, a DISCONNECT): half-close and go on reading
        (and ignoring) until the client closes, for at most ``CLOSE_LINGER`` seconds, so the client
        reads the packet instead of a reset (a close with unread input in the socket resets it, and a
        client still sending, e.g. PUBRELs for the PUBRECs before a receive-maximum DISCONNECT, would
        get a broken pipe before it reads the reason)."""
        t = self.transport
        if t is None or t.is_closing():
            return
        if self.server.lingering and t.can_write_eof():
            try:
                t.write_eof()
            except (OSError, RuntimeError):
                t.close()
                return
            if self.reading_paused:
                t.resume_reading()
            self.loop.call_later(CLOSE_LINGER, t.close)
        else:
            t.close()

    def eof_received(self):
        return None  # the client closed its side: close ours

    def call_soon(self, fn) -> None:
        self.loop.call_soon(fn)

    def pause_reading(self, paused: bool) -> None:
        self.session_paused = paused
        self._update_reading()

    def throttled(self) -> None:
        """Credit flow throttles this connection: the first time, shrink its receive buffer (see the module)."""
        if self.throttled_once:
            return
        self.throttled_once = True
        recbuf = self.server.app.config.flow_recbuf
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if recbuf and sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recbuf)
            except OSError:
                pass

    def _update_reading(self) -> None:
        paused = self.session_paused or self.yielding
        if paused != self.reading_paused and self.transport is not None and not self.transport.is_closing():
            self.reading_paused = paused
            if paused:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()


class MQTTServer:
    """The MQTT listener of a broker (``mqtt_host``/``mqtt_port``) and the state MQTT sessions share."""

    def __init__(self, app, host: str, port: int, tls=None, tls_port: int = 8883):
        self.app = app
        self.host = host
        self.port = port
        self.tls = tls  # an ssl.SSLContext: also listen for MQTT over TLS on tls_port
        self.tls_port = tls_port
        self.loop = None
        self._server = None
        self._tls_server = None
        self.lingering = True  # (not while the listener stops: connections close at once)
        self.protocols: set = set()
        self.clients: dict = {}  # (vhost name, client id) -> the connected MQTTSession
        self.retained_stores: dict[str, RetainedStore] = {}
        self.delayed_wills: dict = {}  # (vhost name, client id) -> the timer of a will with a delay
        # (vhost name, client id) -> (incoming QoS 2 packet ids awaiting PUBREL, outgoing ones awaiting
        # PUBCOMP, when the session ends or None) of a persistent session whose client is away
        # (see MQTTSession.close)
        self.qos2_ids: dict = {}
        # (vhost name, queue name) of shared subscription queues with members of persistent sessions: their
        # queue outlives the members' connections, so a timer looks for members whose session expired
        self.shared_queues: set = set()
        # (vhost name, client id) -> names of the shared subscription queues its persistent session is a
        # member of (a binding of each: index_shared_queue), so a CONNECT does not scan the vhost's queues
        self.shared_members: dict = {}
        self._save_timer = None
        self.read_buffer = memoryview(bytearray(FAIR_READ))  # shared by its connections (get_buffer)
        self.large_read_buffer = memoryview(bytearray(LARGE_READ))

    @property
    def broker(self):
        return self.app.broker

    @broker.setter
    def broker(self, value) -> None:  # BrokerApp.start hands every listener the broker: ours is the app's
        pass

    def retained(self, vhost: str) -> RetainedStore:
        store = self.retained_stores.get(vhost)
        if store is None:
            store = self.retained_stores[vhost] = RetainedStore()
        return store

    async def bind(self) -> None:
        self.loop = asyncio.get_running_loop()
        try:
            self._server = await self.loop.create_server(lambda: MQTTProtocol(self), self.host, self.port,
                                                         reuse_address=True, start_serving=False)
        except OSError as e:
            raise ListenError(self.host, self.port, False, e, "--mqtt-port (or --no-mqtt)") from e
        self.port = self._server.sockets[0].getsockname()[1]
        if self.tls is not None:
            timeout = self.app.config.tls_handshake_timeout_ms / 1000
            try:
                self._tls_server = await self.loop.create_server(
                    lambda: MQTTProtocol(self), self.host, self.tls_port, reuse_address=True, ssl=self.tls,
                    ssl_handshake_timeout=timeout, start_serving=False)
            except OSError as e:
                self._server.close()
                self._server = None
                raise ListenError(self.host, self.tls_port, True, e, "--mqtts-port") from e
            self.tls_port = self._tls_server.sockets[0].getsockname()[1]

    async def start(self) -> None:
        self.broker.vhost_deleted_listeners.append(self._vhost_deleted)
        for vhost, topic, packet in self.broker.defs.load_retained():
            try:
                self.retained(vhost).restore(packet)
            except Exception as e:  # noqa: BLE001 - one unreadable record must not stop the broker
                log.error("retained MQTT message of topic '%s' in vhost '%s' unreadable: %s", topic, vhost, e)
        for vhost in self.broker.vhosts.values():  # shared subscription queues kept for persistent sessions
            for name, q in vhost.queues.items():
                if name.startswith("mqtt-shared-"):
                    self.shared_queues.add((vhost.name, name))
                    index_shared_queue(self.shared_members, vhost.name, q)
        self._save_timer = self.loop.call_later(RETAINED_SAVE_INTERVAL, self._save_retained)
        await self._server.start_serving()
        if self._tls_server is not None:
            await self._tls_server.start_serving()

    def keep_qos2_ids(self, key: tuple, incoming, outgoing, seconds) -> None:
        """A persistent session's client went in the middle of QoS 2 handshakes: the packet ids of its
        publishes not yet released (PUBREL) and of the deliveries whose PUBREL it has not completed
        (PUBCOMP) stay with the session (each at most a receive maximum of them, so bounded per client
        id) until the client comes back or the session expires.  Expired entries of others go here too."""
        now = self.loop.time() if self.loop is not None else 0.0
        gone = [k for k, (_, _, until) in self.qos2_ids.items() if until is not None and until <= now]
        for k in gone:
            del self.qos2_ids[k]
        self.qos2_ids[key] = (frozenset(incoming), tuple(outgoing), None if seconds is None else now + seconds)

    def take_qos2_ids(self, key: tuple, clean: bool):
        """What :meth:`keep_qos2_ids` kept for a client id connecting again, ``(incoming ids, outgoing
        ids)``; None for a clean start, or once the session expired."""
        kept = self.qos2_ids.pop(key, None)
        if kept is None or clean:
            return None
        incoming, outgoing, until = kept
        if until is not None and until <= self.loop.time():
            return None
        return incoming, outgoing

    def shared_unused(self, vhost, q) -> None:
        """A member left the shared subscription queue ``q``: it goes once no member is left."""
        if release_shared_queue(self, vhost, q):
            self.shared_queues.discard((vhost.name, q.name))

    def _sweep_shared(self) -> None:
        vhosts = self.broker.vhosts
        for vname, qname in list(self.shared_queues):
            vhost = vhosts.get(vname)
            q = vhost.queues.get(qname) if vhost is not None else None
            if q is None:
                self.shared_queues.discard((vname, qname))
            elif not q.consumers:
                self.shared_unused(vhost, q)

    def _vhost_deleted(self, name: str) -> None:
        """A deleted vhost's retained messages go with it (the store deletes the saved ones), as do the
        wills waiting for their delay there and its sessions' QoS 2 packet ids."""
        self.retained_stores.pop(name, None)
        for key in [k for k in self.qos2_ids if k[0] == name]:
            del self.qos2_ids[key]
        for key in [k for k in self.shared_members if k[0] == name]:
            del self.shared_members[key]
        for key in [k for k in self.delayed_wills if k[0] == name]:
            self.delayed_wills.pop(key).cancel()

    def _save_retained(self) -> None:
        """Write the retained messages changed since the last time to the definitions store, together."""
        self._save_timer = self.loop.call_later(RETAINED_SAVE_INTERVAL, self._save_retained)
        self.save_retained()
        if self.shared_queues:
            self._sweep_shared()

    def save_retained(self) -> None:
        changes = [(vhost, store.take_dirty()) for vhost, store in self.retained_stores.items() if store.dirty]
        if not changes:
            return
        defs = self.broker.defs
        try:
            with defs.batch():
                for vhost, items in changes:
                    for topic, packet in items:
                        if packet is None:
                            defs.retained_cleared(vhost, topic)
                        else:
                            defs.retained_set(vhost, topic, packet)
        except Exception as e:  # noqa: BLE001 - a failing disk: kept in memory, logged
            log.error("storing retained MQTT messages failed: %s", e)

    async def stop(self, timeout: float = 2.0) -> None:
        if self._save_timer is not None:
            self._save_timer.cancel()
            self._save_timer = None
        self.lingering = False
        if self.app.broker is not None and self._vhost_deleted in self.app.broker.vhost_deleted_listeners:
            self.app.broker.vhost_deleted_listeners.remove(self._vhost_deleted)
        for timer in self.delayed_wills.values():
            timer.cancel()
        self.delayed_wills.clear()
        servers = [s for s in (self._server, self._tls_server) if s is not None]
        for server in servers:
            server.close()
        for p in list(self.protocols):
            if p.session is not None:
                p.session.close(publish_will=False)
            p.close()
        for server in servers:
            try:
                await asyncio.wait_for(server.wait_closed(), timeout)
            except asyncio.TimeoutError:
                pass
        self._server = self._tls_server = None
        if self.app.broker is not None:
            self.save_retained()  # what changed since the last timer

    # -------------------------------------------------------------- timers
    def schedule_connect_timeout(self, proto: MQTTProtocol) -> None:
        """A socket that sends no CONNECT within ``mqtt_connect_timeout_ms`` is closed."""
        def check():
            s = proto.session
            if s is not None and s.user is None and not s.closed:
                s.close(publish_will=False)
        self.loop.call_later(self.app.config.mqtt_connect_timeout_ms / 1000, check)

    def keepalive(self, session: MQTTSession) -> None:
        """Disconnect ``session`` once its client was silent for 1.5 times its keepalive."""
        timeout = session.conn.keepalive_timeout
        if not timeout:
            return
        proto = session.io

        def check():
            if session.closed:
                return
            idle = self.loop.time() - proto.last_data
            if idle >= timeout:
                session.keepalive_expired()
            else:
                self.loop.call_later(timeout - idle, check)
        self.loop.call_later(timeout, check)
