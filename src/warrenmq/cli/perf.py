"""``warrenmq perf``: a load generator for any AMQP 0-9-1 broker (after RabbitMQ's PerfTest).

Theory of operation: the main process parses the flags, declares the topology
(exchange, queues, bindings) over a control connection, then forks worker
processes: publisher processes and consumer processes, each driving one or more
connections over raw blocking/non-blocking sockets with the project's own
protocol layer (:mod:`warrenmq.protocol.spec` method classes and
:func:`~warrenmq.protocol.connection.content_frames`).  No AMQP client library
is involved, so the client side costs little per message:

* a publisher pre-encodes a batch of whole messages (``basic.publish`` method
  frame + content header frame + body frame(s)) once, and writes the batch with
  one ``send`` (up to ~256 KiB per write).  Only the 8-byte timestamp at the
  start of a body is patched in place (every message at a fixed rate, a
  fixed sample of 16 messages of each batch otherwise).  Confirms are tracked by delivery tag
  (``multiple`` acks move a low-water mark, single acks fill a set above it),
  with at most ``--confirm N`` messages in flight.
* a consumer walks frame headers only: it counts ``basic.deliver`` method
  frames, takes the delivery tag at its fixed offset, reads the timestamp from
  the first 8 bytes of the body, and never decodes properties.  Manual acks go
  out as one write per received chunk (``multiple`` every K messages, or one
  ack per message when K is 1).

The main process names the broker it reached, in the first line on stderr and
the summary: WarrenMQ and RabbitMQ both default to port 5672, and WarrenMQ
reports ``product`` "RabbitMQ" with the version it is compatible with (clients
switch behaviour on them), so :func:`server_name` goes by the ``platform``
server property ("WarrenMQ 0.1.0 on Python 3.11.7" against "Erlang/OTP 25").

Publisher sockets get a small ``SO_SNDBUF`` before they connect (``--sndbuf``,
128 KiB by default, the same for every broker): with Linux's autotuning a
throttled publisher's unsent messages would wait megabytes deep in its own
kernel buffer and count as broker latency.

Workers publish their counters in shared memory; the main process prints one
progress line per second (rates, depth = published - consumed, latency of the
last second, which each consumer takes when the main process bumps a tick word,
broker CPU and RSS read from ``/proc/<pid>`` when ``--broker-pid`` is given),
then a summary table, or with ``--json`` one JSON object on stdout.  The summary
leads with the publishing window, from the first publish to the moment the last
publisher stops (each publisher process stores that moment): consumer processes
log their arrivals (the count at the last read of every millisecond) and the
arrival time of every latency sample, and at the end the main process counts
what arrived within the window (:func:`window_figures`), so a consumer that
starves while publishers run is not hidden by the drain after them.  When the
main loop sees the window close it samples the broker's RSS and asks the queues'
depth (``queue.declare`` passive, on a thread).  Modes: throughput (default; with
``--rate`` it is the fixed-rate latency test), ``--backlog N`` (fill N messages
with no consumer, then time the drain), ``--churn N`` (open and close N
connections) and ``--idle-connections N`` (memory per connection).
``--sink`` starts a fake broker that completes the handshake and discards what
it is sent (and floods consumers with pre-encoded deliveries): the generator's
own ceiling.
"""
from __future__ import annotations

import argparse
import array
import bisect
import json
import math
import multiprocessing
import os
import resource
import select
import selectors
import socket
import struct
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

from .. import __version__
from ..protocol import spec
from ..protocol.frames import content_frames, method_frame

_HDR = struct.Struct(">BHI")
_unpack_hdr = _HDR.unpack_from
_unpack_I = struct.Struct(">I").unpack_from
_unpack_Q = struct.Struct(">Q").unpack_from
_pack_Q_into = struct.Struct(">Q").pack_into
_HHQ = struct.Struct(">HHQ")

DELIVER = spec.BasicDeliver.INDEX
ACK = spec.BasicAck.INDEX
NACK = spec.BasicNack.INDEX
RETURN = spec.BasicReturn.INDEX
CONN_CLOSE = spec.ConnectionClose.INDEX
CHAN_CLOSE = spec.ChannelClose.INDEX
CONN_BLOCKED = spec.ConnectionBlocked.INDEX
CONN_UNBLOCKED = spec.ConnectionUnblocked.INDEX
CANCEL = spec.BasicCancel.INDEX

CLIENT_PROPERTIES = {
    "product": "warrenmq-perf", "version": __version__, "platform": "Python",
    "capabilities": {"publisher_confirms": True, "basic.nack": True, "consumer_cancel_notify": True,
                     "connection.blocked": True, "exchange_exchange_bindings": True},
}

# shared-memory layout: one slot of SLOT int64 counters per worker process
SLOT = 16
(C_COUNT, C_CONFIRMED, C_NACKED, C_READY, C_DONE, C_ERROR, C_BYTES, C_FIRST_NS, C_LAST_NS, C_P50, C_P99, C_BLOCKED,
 C_PUB_END_NS, C_SNDBUF, C_TICK, C_UNSENT) = range(SLOT)
# Linux's SIOCOUTQNSD: bytes a socket's send buffer holds that TCP has not sent yet
SIOCOUTQNSD = 0x894B
# publisher sockets' SO_SNDBUF unless --sndbuf says otherwise: a few batches, as a client library's socket holds,
# not the megabytes Linux autotuning grows to (which would count a throttled publisher's backlog as latency)
DEFAULT_SNDBUF = 131072
# timestamped messages per batch without --rate/--stamp-all: enough samples for a p99 over a few seconds
SAMPLES_PER_BATCH = 16
# control words
K_PUB_GO, K_CONS_GO, K_PUB_STOP, K_CONS_STOP, K_GO_NS, K_CONS_GO_NS, K_TICK = range(7)


class PerfError(Exception):
    pass


def server_name(server_properties: dict) -> str:
    """The broker behind ``connection.start``'s server properties, for people.

    "WarrenMQ 0.1.0 on Python 3.11.7" (WarrenMQ's ``platform``), "RabbitMQ 3.10.8 (Erlang/OTP 25.2.3)",
    otherwise product, version and platform as given.  examples/which_broker.py words it the same way.
    """
    props = {k: v.decode() if isinstance(v, bytes) else v for k, v in server_properties.items()}
    platform = props.get("platform") or ""
    if platform.startswith("WarrenMQ "):
        return platform
    name = " ".join(str(props[k]) for k in ("product", "version") if props.get(k)) or "an unnamed broker"
    return f"{name} ({platform})" if platform else name


def _server_info(conn: "Conn", url: "URL") -> dict:
    """``result["server"]``: what the broker says it is, and where it was reached."""
    props = {k: v.decode() if isinstance(v, bytes) else v for k, v in conn.server_properties.items()
             if k in ("product", "version", "platform")}
    return {"product": props.get("product", "?"), "version": props.get("version", ""),
            "platform": props.get("platform", ""), "name": server_name(conn.server_properties),
            "address": f"{url.host}:{url.port}"}


def _take_frame(buf: bytearray):
    """Remove the first frame from ``buf`` and return (type, channel, payload); None while incomplete."""
    if len(buf) >= 7:
        size = _unpack_I(buf, 3)[0]
        if len(buf) >= size + 8:
            if buf[7 + size] != spec.FRAME_END:
                raise PerfError("bad frame end")
            ftype, ch, _ = _unpack_hdr(buf, 0)
            payload = bytes(buf[7:7 + size])
            del buf[:size + 8]
            return ftype, ch, payload
    return None


# ---------------------------------------------------------------------------------------------- URL
class URL:
    def __init__(self, url: str):
        u = urlsplit(url)
        if u.scheme not in ("amqp", ""):
            raise PerfError(f"unsupported URL scheme {u.scheme!r} (only amqp://)")
        self.url = url
        self.host = u.hostname or "127.0.0.1"
        self.port = u.port or 5672
        self.user = unquote(u.username) if u.username else "guest"
        self.password = unquote(u.password) if u.password else "guest"
        path = u.path[1:] if u.path.startswith("/") else u.path
        self.vhost = unquote(path) if path else "/"

    def __str__(self) -> str:
        return f"amqp://{self.user}@{self.host}:{self.port}/{self.vhost if self.vhost != '/' else '%2F'}"


# ------------------------------------------------------------------------------- blocking connection
def _connect(host: str, port: int, timeout: float, sndbuf: int = 0) -> socket.socket:
    """A connected TCP socket; ``sndbuf`` > 0 sets SO_SNDBUF before connect (which turns off Linux's send
    buffer autotuning for it; Linux doubles the value for its bookkeeping and caps it at net.core.wmem_max)."""
    err = None
    for family, stype, proto, _, addr in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
        s = socket.socket(family, stype, proto)
        try:
            if sndbuf > 0:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            s.settimeout(timeout)
            s.connect(addr)
            return s
        except OSError as e:
            err = e
            s.close()
    raise err if err is not None else OSError(f"cannot resolve {host}")


class Conn:
    """A blocking AMQP client connection for setup; workers then drive ``sock`` directly."""

    def __init__(self, url: URL, timeout: float = 30.0, heartbeat: int = 0, sndbuf: int = 0):
        self.sock = _connect(url.host, url.port, timeout, sndbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.sock.sendall(spec.PROTOCOL_HEADER)
        start = self.expect(0, spec.ConnectionStart)
        self.server_properties = start.server_properties
        response = b"\0" + url.user.encode() + b"\0" + url.password.encode()
        self.send_method(0, spec.ConnectionStartOk(client_properties=CLIENT_PROPERTIES, mechanism="PLAIN",
                                                   response=response, locale="en_US"))
        tune = self.expect(0, spec.ConnectionTune)
        self.frame_max = min(tune.frame_max or 131072, 131072)
        self.channel_max = tune.channel_max or 2047
        self.send_method(0, spec.ConnectionTuneOk(channel_max=self.channel_max, frame_max=self.frame_max,
                                                  heartbeat=heartbeat))
        self.send_method(0, spec.ConnectionOpen(virtual_host=url.vhost))
        self.expect(0, spec.ConnectionOpenOk)

    def send(self, data) -> None:
        self.sock.sendall(data)

    def send_method(self, channel: int, method) -> None:
        self.sock.sendall(method_frame(channel, method))

    def read_frame(self):
        buf = self.buf
        while True:
            frame = _take_frame(buf)
            if frame is not None:
                return frame
            chunk = self.sock.recv(65536)
            if not chunk:
                raise PerfError("the broker closed the connection")
            buf += chunk

    def read_method(self):
        while True:
            ftype, ch, payload = self.read_frame()
            if ftype != spec.FRAME_METHOD:
                continue  # heartbeats; content frames are not expected during setup
            index = _unpack_I(payload, 0)[0]
            method = spec.METHODS[index].decode(payload, 4)
            if index == CONN_CLOSE:
                try:
                    self.send_method(0, spec.ConnectionCloseOk())
                except OSError:
                    pass
                raise PerfError(f"connection closed by the broker: {method.reply_code} {method.reply_text}")
            if index == CHAN_CLOSE:
                self.send_method(ch, spec.ChannelCloseOk())
                raise PerfError(f"channel closed by the broker: {method.reply_code} {method.reply_text}")
            return ch, method

    def expect(self, channel: int, cls):
        while True:
            ch, method = self.read_method()
            if isinstance(method, cls):
                return method
            if isinstance(method, (spec.ConnectionBlocked, spec.ConnectionUnblocked)):
                continue
            raise PerfError(f"expected {cls.NAME}, got {method.NAME}")

    def rpc(self, channel: int, method, reply_cls):
        self.send_method(channel, method)
        return self.expect(channel, reply_cls)

    def open_channel(self, channel: int = 1) -> None:
        self.rpc(channel, spec.ChannelOpen(), spec.ChannelOpenOk)

    def close(self, timeout: float = 2.0) -> None:
        try:
            self.sock.setblocking(True)
            self.sock.settimeout(timeout)
            self.send_method(0, spec.ConnectionClose(reply_code=200, reply_text="bye"))
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                ftype, ch, payload = self.read_frame()
                if ftype == spec.FRAME_METHOD and _unpack_I(payload, 0)[0] == spec.ConnectionCloseOk.INDEX:
                    break
        except (OSError, PerfError):
            pass
        finally:
            self.sock.close()


# -------------------------------------------------------------------------------------- topology
class Topology:
    """Names and routing: which queue each publisher targets and each consumer reads."""

    def __init__(self, cfg):
        self.cfg = cfg
        n = cfg.queues
        self.queues = [cfg.queue] if n == 1 else [f"{cfg.queue}-{i + 1}" for i in range(n)]
        self.exchange = cfg.exchange if cfg.exchange is not None else (
            "" if cfg.exchange_type is None else f"{cfg.queue}-{cfg.exchange_type}")
        self.type = cfg.exchange_type or ("direct" if self.exchange else None)

    def binding(self, q: str):
        """(routing key, arguments) of a queue's binding to the exchange."""
        if self.type == "fanout":
            return "", {}
        if self.type == "topic":
            return f"{q}.#", {}
        if self.type == "headers":
            return "", {"x-match": "all", "perf-queue": q}
        return q, {}

    def target(self, publisher: int):
        """(routing key, headers) of publisher ``publisher``'s messages, and the queues they reach."""
        if self.type == "fanout":
            return "", None, list(self.queues)
        q = self.queues[publisher % len(self.queues)]
        if self.type == "topic":
            return f"{q}.x", None, [q]
        if self.type == "headers":
            return "", {"perf-queue": q}, [q]
        return q, None, [q]

    def consumer_queue(self, consumer: int) -> str:
        return self.queues[consumer % len(self.queues)]

    def declare(self, conn: Conn, durable: bool) -> None:
        if self.exchange:
            conn.rpc(1, spec.ExchangeDeclare(exchange=self.exchange, type=self.type, durable=durable),
                     spec.ExchangeDeclareOk)
        for q in self.queues:
            conn.rpc(1, spec.QueueDeclare(queue=q, durable=durable, arguments=self.cfg.queue_arguments),
                     spec.QueueDeclareOk)
            if self.exchange:
                key, args = self.binding(q)
                conn.rpc(1, spec.QueueBind(queue=q, exchange=self.exchange, routing_key=key, arguments=args),
                         spec.QueueBindOk)

    def depth(self, conn: Conn) -> int:
        total = 0
        for q in self.queues:
            total += conn.rpc(1, spec.QueueDeclare(queue=q, passive=True), spec.QueueDeclareOk).message_count
        return total

    def delete(self, conn: Conn) -> None:
        for q in self.queues:
            conn.rpc(1, spec.QueueDelete(queue=q), spec.QueueDeleteOk)
        if self.exchange and not self.exchange.startswith("amq."):
            conn.rpc(1, spec.ExchangeDelete(exchange=self.exchange), spec.ExchangeDeleteOk)


# ------------------------------------------------------------------------------------- publisher
def unsent_bytes(sock) -> int | None:
    """Bytes written to ``sock`` that its kernel has not sent yet (Linux's SIOCOUTQNSD; None elsewhere)."""
    try:
        import fcntl
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0"))[0]
    except (ImportError, OSError):
        return None


def build_batch(cfg, topo: Topology, publisher: int, frame_max: int, batch: int):
    """(bytearray of ``batch`` encoded messages, message length, body offsets of the timestamps)."""
    key, headers, _ = topo.target(publisher)
    props = spec.BasicProperties(delivery_mode=2 if cfg.persistent else None, headers=headers,
                                 content_type=None)
    body = bytes(cfg.size)
    method = spec.BasicPublish(exchange=topo.exchange, routing_key=key, mandatory=False).encode()
    header = _HHQ.pack(spec.CLASS_BASIC, 0, len(body)) + props.encode()
    one = b"".join(content_frames(1, method, header, body, frame_max))
    body_off = 8 + len(method) + 8 + len(header) + 7  # the first body frame's payload
    mlen = len(one)
    offsets = [i * mlen + body_off for i in range(batch)] if cfg.size >= 8 else []
    return bytearray(one * batch), mlen, offsets


class Confirms:
    """Confirmed delivery tags: everything <= ``low`` plus the set ``above`` (single acks out of order)."""
    __slots__ = ("low", "above", "nacked")

    def __init__(self):
        self.low = 0
        self.above = set()
        self.nacked = 0

    def ack(self, tag: int, multiple: bool) -> None:
        above = self.above
        if multiple:
            if tag > self.low:
                if above:
                    for t in [t for t in above if t <= tag]:
                        above.discard(t)
                self.low = tag
        elif tag > self.low:
            above.add(tag)
        low = self.low
        while above and (low + 1) in above:
            low += 1
            above.discard(low)
        self.low = low

    @property
    def count(self) -> int:
        return self.low + len(self.above)


class _PubConn:
    def __init__(self, cfg, topo, index, url):
        self.index = index
        self.conn = Conn(url, sndbuf=cfg.sndbuf)
        self.sndbuf = self.conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.conn.open_channel(1)
        if cfg.confirm:
            self.conn.rpc(1, spec.ConfirmSelect(), spec.ConfirmSelectOk)
        self.sock = self.conn.sock
        self.batch = max(1, min(cfg.batch or 1000, (256 * 1024) // (cfg.size + 100) or 1))
        if cfg.confirm:
            self.batch = max(1, min(self.batch, cfg.confirm // 2 or 1))
        if cfg.pmessages:
            self.batch = min(self.batch, cfg.pmessages)
        self.tmpl, self.mlen, self.offsets = build_batch(cfg, topo, index, self.conn.frame_max, self.batch)
        self.view = memoryview(self.tmpl)
        self.published = 0
        self.confirms = Confirms()
        self.blocked = False
        self.rbuf = bytearray(self.conn.buf)  # frames that arrived with the setup replies
        self.conn.buf = bytearray()
        self.sock.settimeout(None)  # blocking; send and recv with MSG_DONTWAIT do not wait
        self.cut_ns = 0
        self.cut_unsent = None  # unsent_bytes() when the deadline cut the write
        self.on_cut = None  # called with cut_ns, before the message in progress is finished
        self.poller = select.poll()
        self.poller.register(self.sock, select.POLLOUT | (select.POLLIN if cfg.confirm else 0))

    def on_frames(self) -> None:
        """Process whole frames in ``rbuf``: confirms, blocked/unblocked, errors."""
        buf = self.rbuf
        off, end = 0, len(buf)
        confirms = self.confirms
        while off + 7 <= end:
            ftype, ch, size = _unpack_hdr(buf, off)
            fend = off + 8 + size
            if fend > end:
                break
            if ftype == 1:
                idx = _unpack_I(buf, off + 7)[0]
                if idx == ACK:
                    confirms.ack(_unpack_Q(buf, off + 11)[0], bool(buf[off + 19] & 1))
                elif idx == NACK:
                    before = confirms.count
                    confirms.ack(_unpack_Q(buf, off + 11)[0], bool(buf[off + 19] & 1))
                    confirms.nacked += confirms.count - before
                elif idx == CONN_BLOCKED:
                    self.blocked = True
                elif idx == CONN_UNBLOCKED:
                    self.blocked = False
                elif idx in (CONN_CLOSE, CHAN_CLOSE):
                    m = spec.METHODS[idx].decode(bytes(buf[off + 7:fend - 1]), 4)
                    raise PerfError(f"publisher {self.index}: broker closed: {m.reply_code} {m.reply_text}")
            off = fend
        del buf[:off]

    def pump(self, timeout: float | None) -> None:
        """Read whatever is available (waiting up to ``timeout`` for something, None = don't wait)."""
        sock = self.sock
        if timeout is not None:
            sel = selectors.DefaultSelector()
            sel.register(sock, selectors.EVENT_READ)
            ready = sel.select(timeout)
            sel.close()
            if not ready:
                return
        while True:
            try:
                data = sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                raise PerfError(f"publisher {self.index}: the broker closed the connection")
            self.rbuf += data
            if len(data) < (1 << 20):
                break
        if self.rbuf:
            self.on_frames()

    def send(self, view, confirm: bool, deadline: float | None = None) -> int:
        """Write ``view`` (whole messages), reading confirms meanwhile when ``confirm``; returns the bytes written.

        That is all of it, unless ``deadline`` (monotonic) passes while the broker does not take it: then the
        write stops at the end of the message in progress, so a throttled publisher stops on time (a
        blocking sendall of a whole batch outlasted -z by seconds against a broker that throttled it).
        ``cut_ns`` is then the moment it stopped publishing: finishing that message may take a while longer
        (the broker is not reading), but is no part of the publishing window.
        """
        sock = self.sock
        end = len(view)
        sent = 0
        poller = self.poller
        while sent < end:
            try:
                sent += sock.send(view[sent:end], socket.MSG_DONTWAIT)
                continue
            except (BlockingIOError, InterruptedError):
                pass
            if deadline is not None and end == len(view) and time.monotonic() >= deadline:
                end = -(-sent // self.mlen) * self.mlen  # finish the message in progress only
                if not self.cut_ns:
                    self.cut_ns = time.monotonic_ns()
                    self.cut_unsent = unsent_bytes(sock)  # before finishing the message lets some go
                    if self.on_cut is not None:
                        self.on_cut(self.cut_ns)
                continue
            for _, mask in poller.poll(50):
                if mask & select.POLLIN and confirm:
                    self.pump(None)
        return sent


def _publisher_proc(wid, cfg, url, pubs, shm, ctrl, pub_counts, results):
    base = wid * SLOT
    conns = []
    try:
        topo = Topology(cfg)
        conns = [_PubConn(cfg, topo, p, url) for p in pubs]
        shm[base + C_SNDBUF] = min(c.sndbuf for c in conns) if conns else 0

        def on_cut(ns):  # tell the main process now that this process stopped publishing
            if not shm[base + C_PUB_END_NS]:
                shm[base + C_PUB_END_NS] = ns
        for c in conns:
            c.on_cut = on_cut
        shm[base + C_READY] = 1
        while not ctrl[K_PUB_GO]:
            if ctrl[K_PUB_STOP]:
                return
            time.sleep(0.001)
        t0 = time.monotonic()
        deadline = t0 + cfg.duration if cfg.duration else None
        limit = cfg.pmessages or 0
        rate = cfg.rate
        for i, c in enumerate(conns):  # spread the connections' schedules over one interval
            c.t0 = t0 + (i / len(conns)) / rate if rate else t0
        confirm = cfg.confirm
        stamp_all = bool(rate) or cfg.stamp_all
        for c in conns:  # otherwise a fixed sample of each batch: its first message and every (batch/16)th
            c.stamped = c.offsets[::max(1, c.batch // SAMPLES_PER_BATCH)]
        first_ns = time.monotonic_ns()
        total = 0
        active = list(conns)
        last_update = 0.0
        while active:
            now = time.monotonic()
            if ctrl[K_PUB_STOP] or (deadline is not None and now >= deadline):
                break
            next_due = None
            for c in list(active):
                if c.cut_ns or (deadline is not None and len(conns) > 1 and time.monotonic() >= deadline):
                    break  # one connection's write was cut at the deadline: the others stop too
                n = c.batch
                if limit:
                    n = min(n, limit - c.published)
                    if n <= 0:
                        active.remove(c)
                        continue
                if rate:
                    due = int((now - c.t0) * rate) + 1 - c.published
                    if due <= 0:
                        t_next = c.t0 + c.published / rate
                        next_due = t_next if next_due is None else min(next_due, t_next)
                        continue
                    n = min(n, due)
                if confirm:
                    room = confirm - (c.published - c.confirms.count)
                    if room <= 0:
                        c.pump(0.05)
                        continue
                    n = min(n, room)
                if c.blocked:
                    c.pump(0.05)
                    continue
                offsets = c.offsets
                if offsets:
                    ns = time.monotonic_ns()
                    tmpl = c.tmpl
                    if stamp_all:
                        for i in range(n):
                            _pack_Q_into(tmpl, offsets[i], ns)
                    else:
                        for off in c.stamped:  # always the same ones: no stale timestamp is ever sent
                            _pack_Q_into(tmpl, off, ns)
                sent = c.send(c.view[:n * c.mlen], confirm, deadline)
                if sent < n * c.mlen:  # the deadline passed while the broker held the batch back
                    n = sent // c.mlen
                c.published += n
                total += n
                if confirm:
                    c.pump(None)
                pub_counts[c.index] = c.published
            if now - last_update > 0.05:
                last_update = now
                shm[base + C_COUNT] = total
                if confirm:
                    shm[base + C_CONFIRMED] = sum(c.confirms.count for c in conns)
                    shm[base + C_NACKED] = sum(c.confirms.nacked for c in conns)
                shm[base + C_BLOCKED] = sum(1 for c in conns if c.blocked)
            if rate and next_due is not None:
                delay = next_due - time.monotonic()
                if delay > 0:
                    time.sleep(min(delay, 0.05))
        last_ns = time.monotonic_ns()
        # what the publishers wrote that still waits in their own send buffers (part of the window's depth)
        unsent = [c.cut_unsent if c.cut_ns else unsent_bytes(c.sock) for c in conns]
        shm[base + C_UNSENT] = -1 if None in unsent else sum(-(-n // c.mlen) for n, c in zip(unsent, conns))
        for c in conns:
            pub_counts[c.index] = c.published
        shm[base + C_COUNT] = total
        shm[base + C_FIRST_NS] = first_ns
        cuts = [c.cut_ns for c in conns if c.cut_ns]
        # the end of this process's part of the publishing window
        shm[base + C_PUB_END_NS] = min(cuts + [last_ns])
        if confirm:  # wait for the outstanding confirms
            wait_until = time.monotonic() + cfg.confirm_timeout
            for c in conns:
                while c.confirms.count < c.published and time.monotonic() < wait_until:
                    c.pump(0.1)
                    shm[base + C_CONFIRMED] = sum(x.confirms.count for x in conns)
            shm[base + C_CONFIRMED] = sum(c.confirms.count for c in conns)
            shm[base + C_NACKED] = sum(c.confirms.nacked for c in conns)
            last_ns = time.monotonic_ns()
        shm[base + C_FIRST_NS] = first_ns
        shm[base + C_LAST_NS] = last_ns
        shm[base + C_BYTES] = sum(c.published * c.mlen for c in conns)
    except Exception as e:  # noqa: BLE001 - reported to the main process
        shm[base + C_ERROR] = 1
        results.put(("error", f"publisher process {wid}: {e}"))
    finally:
        shm[base + C_DONE] = 1
        # wait for close-ok: the broker has then handled every publish (closing earlier can reset the
        # connection and lose what the broker had not read yet)
        for c in conns:
            c.conn.buf = c.rbuf
            c.conn.close(0.2 if cfg.sink else cfg.confirm_timeout)


# -------------------------------------------------------------------------------------- consumer
class _ConsConn:
    def __init__(self, cfg, topo, index, url):
        self.index = index
        self.queue = topo.consumer_queue(index)
        self.conn = Conn(url)
        self.conn.open_channel(1)
        if not cfg.autoack and cfg.prefetch:
            self.conn.rpc(1, spec.BasicQos(prefetch_count=cfg.prefetch), spec.BasicQosOk)
        self.sock = self.conn.sock
        self.count = 0
        self.last_tag = 0
        self.acked_tag = 0
        self.pending = []  # delivery tags to ack one by one (multi_ack 1)
        self.rest = b""
        self.want_ts = False
        self.lat = array.array("q")
        self.lat_t = array.array("q")  # when each latency sample arrived (monotonic ns)
        self.interval_lat = []
        self.interval_t = []
        self.first_ns = 0
        self.last_ns = 0
        self.bytes = 0

    def start(self, cfg) -> None:
        self.conn.rpc(1, spec.BasicConsume(queue=self.queue, consumer_tag=f"perf-{self.index}",
                                           no_ack=cfg.autoack), spec.BasicConsumeOk)
        self.rest = bytes(self.conn.buf)
        self.conn.buf = bytearray()
        self.sock.setblocking(False)

    def feed(self, data: bytes, now: int, stamps: bool) -> int:
        """Count deliveries in ``data`` (plus the partial frame kept from last time); returns how many."""
        if self.rest:
            data = self.rest + data
        self.bytes += len(data) - len(self.rest)
        off, end = 0, len(data)
        n = 0
        tag = self.last_tag
        want_ts = self.want_ts
        lat = self.interval_lat
        lat_t = self.interval_t
        pending = self.pending
        each = pending is not None and self.individual
        while off + 7 <= end:
            ftype, ch, size = _unpack_hdr(data, off)
            fend = off + 8 + size
            if fend > end:
                break
            if ftype == 3:
                if want_ts:
                    want_ts = False
                    if stamps and size >= 8:
                        ts = _unpack_Q(data, off + 7)[0]
                        if ts:
                            lat.append(now - ts)
                            lat_t.append(now)
            elif ftype == 1:
                idx = _unpack_I(data, off + 7)[0]
                if idx == DELIVER:
                    n += 1
                    tag = _unpack_Q(data, off + 12 + data[off + 11])[0]
                    if each:
                        pending.append(tag)
                    want_ts = True
                elif idx in (CONN_CLOSE, CHAN_CLOSE, CANCEL):
                    m = spec.METHODS[idx].decode(bytes(data[off + 7:fend - 1]), 4)
                    what = m.NAME if idx == CANCEL else f"{m.reply_code} {m.reply_text}"
                    raise PerfError(f"consumer {self.index}: broker sent {what}")
            off = fend
        self.rest = data[off:] if off < end else b""
        self.want_ts = want_ts
        if n:
            if not self.first_ns:
                self.first_ns = now
            self.last_ns = now
            self.count += n
            self.last_tag = tag
        return n

    def acks(self, threshold: int) -> bytes:
        """The ack frames due (all of them when ``threshold`` is 0)."""
        if self.individual:
            tags = self.pending
            if not tags or len(tags) < threshold:
                return b""
            self.pending = []
            return b"".join(_ack_frame(t, False) for t in tags)
        if self.last_tag - self.acked_tag >= max(threshold, 1):
            self.acked_tag = self.last_tag
            return _ack_frame(self.last_tag, True)
        return b""


_ACK_PREFIX = _HDR.pack(1, 1, 13) + struct.pack(">I", ACK)


def _ack_frame(tag: int, multiple: bool) -> bytes:
    return _ACK_PREFIX + struct.pack(">QB", tag, 1 if multiple else 0) + b"\xce"


def _percentile(sorted_values, p: float):
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(math.ceil(p / 100.0 * len(sorted_values))) - 1))
    return sorted_values[k]


def _consumer_proc(wid, cfg, url, cons, shm, ctrl, results):
    base = wid * SLOT
    conns = []
    sel = selectors.DefaultSelector()
    try:
        topo = Topology(cfg)
        conns = [_ConsConn(cfg, topo, c, url) for c in cons]
        k = cfg.multi_ack
        threshold = 0
        for c in conns:
            c.individual = not cfg.autoack and k <= 1
            c.pending = [] if c.individual else None
        if not cfg.autoack:
            threshold = k if k > 1 else 1
            if cfg.prefetch:
                threshold = min(threshold, max(1, cfg.prefetch // 2)) if k > 1 else 1
        shm[base + C_READY] = 1
        while not ctrl[K_CONS_GO]:
            if ctrl[K_CONS_STOP]:
                return
            time.sleep(0.001)
        for c in conns:
            c.start(cfg)
            sel.register(c.sock, selectors.EVENT_READ, c)
        autoack = cfg.autoack
        stamps = True
        last_update = time.monotonic()
        seen_tick = ctrl[K_TICK]
        mono_ns = time.monotonic_ns
        # arrivals over time, for the main process to count what arrived before the publishers stopped:
        # (time, deliveries so far) at the last read of each millisecond that received something
        log_t, log_n = array.array("q"), array.array("q")
        received = 0
        bucket = -1
        for c in conns:  # deliveries that came in the same read as consume-ok (a small backlog: all of it)
            if c.rest:
                data, c.rest = c.rest, b""
                now_ns = mono_ns()
                n = c.feed(data, now_ns, stamps)
                if n:
                    received += n
                    bucket = now_ns // 1_000_000
                    log_t.append(now_ns)
                    log_n.append(received)
        while not ctrl[K_CONS_STOP]:
            events = sel.select(0.05)
            for key, _ in events:
                c = key.data
                sock = c.sock
                for _ in range(8):
                    try:
                        data = sock.recv(1 << 20)
                    except (BlockingIOError, InterruptedError):
                        break
                    if not data:
                        raise PerfError(f"consumer {c.index}: the broker closed the connection")
                    now_ns = mono_ns()
                    n = c.feed(data, now_ns, stamps)
                    if n:
                        received += n
                        if now_ns // 1_000_000 == bucket:
                            log_t[-1] = now_ns
                            log_n[-1] = received
                        else:
                            bucket = now_ns // 1_000_000
                            log_t.append(now_ns)
                            log_n.append(received)
                    if len(data) < (1 << 20):
                        break
                if not autoack:
                    out = c.acks(threshold)
                    if out:
                        sock.setblocking(True)
                        sock.sendall(out)
                        sock.setblocking(False)
            if not events and not autoack:  # idle: ack whatever is outstanding
                for c in conns:
                    out = c.acks(0)
                    if out:
                        c.sock.setblocking(True)
                        c.sock.sendall(out)
                        c.sock.setblocking(False)
            t = time.monotonic()
            tick = ctrl[K_TICK]
            if t - last_update >= 0.05 or tick != seen_tick:
                last_update = t
                shm[base + C_COUNT] = sum(c.count for c in conns)
                shm[base + C_BYTES] = sum(c.bytes for c in conns)
                if tick != seen_tick:  # the main process's progress line: this second's latency
                    seen_tick = tick
                    window = []
                    for c in conns:
                        if c.interval_lat:
                            window.extend(c.interval_lat)
                            c.lat.extend(c.interval_lat)
                            c.lat_t.extend(c.interval_t)
                            c.interval_lat = []
                            c.interval_t = []
                    if window:
                        window.sort()
                        shm[base + C_P50] = _percentile(window, 50)
                        shm[base + C_P99] = _percentile(window, 99)
                    else:
                        shm[base + C_P50] = shm[base + C_P99] = -1
                    shm[base + C_TICK] = tick
        lat, lat_t = array.array("q"), array.array("q")
        for c in conns:
            c.lat.extend(c.interval_lat)
            c.lat_t.extend(c.interval_t)
            lat.extend(c.lat)
            lat_t.extend(c.lat_t)
        shm[base + C_COUNT] = sum(c.count for c in conns)
        shm[base + C_BYTES] = sum(c.bytes for c in conns)
        firsts = [c.first_ns for c in conns if c.first_ns]
        shm[base + C_FIRST_NS] = min(firsts) if firsts else 0
        shm[base + C_LAST_NS] = max(c.last_ns for c in conns) if conns else 0
        results.put(("consumer", {"latency": lat.tobytes(), "latency_at": lat_t.tobytes(),
                                  "arrivals_at": log_t.tobytes(), "arrivals": log_n.tobytes()}))
    except Exception as e:  # noqa: BLE001
        shm[base + C_ERROR] = 1
        results.put(("error", f"consumer process {wid}: {e}"))
    finally:
        shm[base + C_DONE] = 1
        sel.close()
        for c in conns:
            c.conn.buf = bytearray(c.rest)
            c.conn.close(0.2 if cfg.sink else 1.0)


# ----------------------------------------------------------------------------------- broker stats
class BrokerStats:
    """RSS and CPU time of the broker process, from /proc/<pid> (Linux)."""

    HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def __init__(self, pid: int | None):
        self.pid = pid
        self.rss_start = self.rss_end = self.rss_max = None
        self._t0 = self._cpu0 = None
        self._last = None
        if pid:
            self.rss_start = self.rss_max = self.rss()
            self._t0, self._cpu0 = time.monotonic(), self.cpu()
            self._last = (self._t0, self._cpu0)

    def rss(self) -> int | None:
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            return None
        return None

    def cpu(self) -> float | None:
        try:
            with open(f"/proc/{self.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / self.HZ
        except (OSError, IndexError, ValueError):
            return None

    def sample(self):
        """(cpu percent since the last sample, rss) or (None, None)."""
        if not self.pid:
            return None, None
        rss = self.rss()
        if rss is not None:
            self.rss_max = max(self.rss_max or 0, rss)
            self.rss_end = rss
        t, cpu = time.monotonic(), self.cpu()
        pct = None
        if cpu is not None and self._last and self._last[1] is not None and t > self._last[0]:
            pct = 100.0 * (cpu - self._last[1]) / (t - self._last[0])
        self._last = (t, cpu)
        return pct, rss

    def reset_cpu(self) -> None:
        if self.pid:
            self._t0, self._cpu0 = time.monotonic(), self.cpu()
            self._last = (self._t0, self._cpu0)

    def summary(self) -> dict | None:
        if not self.pid:
            return None
        self.sample()
        t, cpu = time.monotonic(), self.cpu()
        pct = None
        if cpu is not None and self._cpu0 is not None and t > self._t0:
            pct = round(100.0 * (cpu - self._cpu0) / (t - self._t0), 1)
        return {"pid": self.pid, "rss_start": self.rss_start, "rss_end": self.rss_end, "rss_max": self.rss_max,
                "rss_max_above_start": self.rss_max - self.rss_start if self.rss_max and self.rss_start else None,
                "cpu_percent": pct, "cpu_seconds": None if cpu is None or self._cpu0 is None
                else round(cpu - self._cpu0, 3)}


# ------------------------------------------------------------------------------------------- sink
def _sink_serve(port_pipe, counters):
    """A fake broker: handshake and setup replies, then discard publishes / flood consumers."""
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1024)
    port_pipe.send(lsock.getsockname()[1])
    lock = threading.Lock()
    while True:
        s, _ = lsock.accept()
        threading.Thread(target=_sink_conn, args=(s, counters, lock), daemon=True).start()


def _sink_conn(s, counters, lock):
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    frame_max = 131072

    def frame():
        while True:
            f = _take_frame(buf)
            if f is not None:
                return f
            d = s.recv(65536)
            if not d:
                raise EOFError
            buf.extend(d)

    def send(ch, m):
        s.sendall(method_frame(ch, m))

    try:
        while len(buf) < 8:
            d = s.recv(64)
            if not d:
                return
            buf.extend(d)
        del buf[:8]
        send(0, spec.ConnectionStart(version_major=0, version_minor=9, server_properties={
            "product": "warrenmq-perf-sink", "capabilities": {"publisher_confirms": True, "basic.nack": True}},
            mechanisms=b"PLAIN", locales=b"en_US"))
        confirm = False
        while True:
            ftype, ch, payload = frame()
            if ftype != 1:
                continue
            idx = _unpack_I(payload, 0)[0]
            m = spec.METHODS[idx].decode(payload, 4)
            if idx == spec.ConnectionStartOk.INDEX:
                send(0, spec.ConnectionTune(channel_max=2047, frame_max=131072, heartbeat=0))
            elif idx == spec.ConnectionTuneOk.INDEX:
                frame_max = m.frame_max or 131072
            elif idx == spec.ConnectionOpen.INDEX:
                send(0, spec.ConnectionOpenOk())
            elif idx == spec.ChannelOpen.INDEX:
                send(ch, spec.ChannelOpenOk())
            elif idx == spec.ExchangeDeclare.INDEX:
                send(ch, spec.ExchangeDeclareOk())
            elif idx == spec.ExchangeDelete.INDEX:
                send(ch, spec.ExchangeDeleteOk())
            elif idx == spec.QueueDeclare.INDEX:
                send(ch, spec.QueueDeclareOk(queue=m.queue or "amq.gen-sink", message_count=0, consumer_count=0))
            elif idx == spec.QueueBind.INDEX:
                send(ch, spec.QueueBindOk())
            elif idx == spec.QueueDelete.INDEX:
                send(ch, spec.QueueDeleteOk(message_count=0))
            elif idx == spec.QueuePurge.INDEX:
                send(ch, spec.QueuePurgeOk(message_count=0))
            elif idx == spec.BasicQos.INDEX:
                send(ch, spec.BasicQosOk())
            elif idx == spec.ConfirmSelect.INDEX:
                confirm = True
                send(ch, spec.ConfirmSelectOk())
            elif idx == spec.ChannelClose.INDEX:
                send(ch, spec.ChannelCloseOk())
            elif idx == spec.ConnectionClose.INDEX:
                send(0, spec.ConnectionCloseOk())
                return
            elif idx == spec.BasicConsume.INDEX:
                tag = m.consumer_tag or "sink-ctag"
                send(ch, spec.BasicConsumeOk(consumer_tag=tag))
                _sink_flood(s, ch, tag, frame_max, counters, lock, bytes(buf))
                return
            elif idx == spec.BasicPublish.INDEX:
                hdr_type, _, header = frame()
                body_size = _unpack_Q(header, 4)[0]
                chunk = frame_max - 8
                nbody = (body_size + chunk - 1) // chunk
                mlen = 8 + len(payload) + 8 + len(header) + body_size + 8 * nbody
                got = 8 + len(payload) + 8 + len(header) + len(buf)
                _sink_discard(s, ch, mlen, got, confirm, counters, lock)
                return
    except (EOFError, OSError, PerfError):  # the peer left, or sent a broken frame
        return
    finally:
        s.close()


def _sink_discard(s, ch, mlen, got, confirm, counters, lock):
    rb = bytearray(1 << 20)
    acked = 0
    with lock:
        counters[0] += got
    while True:
        n = s.recv_into(rb)
        if not n:
            return
        got += n
        with lock:
            counters[0] += n
        if confirm:
            tag = got // mlen
            if tag > acked:
                acked = tag
                s.sendall(method_frame(ch, spec.BasicAck(delivery_tag=tag, multiple=True)))


def _sink_flood(s, ch, tag, frame_max, counters, lock, leftover):
    size = int(os.environ.get("WARRENMQ_PERF_SINK_SIZE", "16"))
    body = bytes(size)
    header = _HHQ.pack(spec.CLASS_BASIC, 0, size) + spec.BasicProperties().encode()
    n = max(1, min(1000, (256 * 1024) // (size + 100)))
    parts = []
    for i in range(n):
        method = spec.BasicDeliver(consumer_tag=tag, delivery_tag=i + 1, exchange="", routing_key="q").encode()
        parts.extend(content_frames(ch, method, header, body, frame_max))
    batch = b"".join(parts)
    stop = threading.Event()

    def drain():
        try:
            while s.recv(1 << 20):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=drain, daemon=True).start()
    try:
        while not stop.is_set():
            s.sendall(batch)
            with lock:
                counters[1] += n
    except OSError:
        return


def start_sink(size: int):
    ctx = _mp()
    counters = ctx.RawArray("q", 2)
    parent, child = ctx.Pipe()
    os.environ["WARRENMQ_PERF_SINK_SIZE"] = str(size)
    proc = ctx.Process(target=_sink_serve, args=(child, counters), daemon=True, name="warrenmq-perf-sink")
    proc.start()
    port = parent.recv()
    return proc, port, counters


# ------------------------------------------------------------------------------------ churn / idle
def _churn_proc(wid, url, n, shm, ctrl, results):
    base = wid * SLOT
    times = array.array("q")
    try:
        shm[base + C_READY] = 1
        while not ctrl[K_PUB_GO]:
            time.sleep(0.001)
        for i in range(n):
            if ctrl[K_PUB_STOP]:
                break
            t = time.monotonic_ns()
            c = Conn(url)
            c.open_channel(1)
            c.close(5.0)
            times.append(time.monotonic_ns() - t)
            shm[base + C_COUNT] = i + 1
        results.put(("latency", times.tobytes()))
    except Exception as e:  # noqa: BLE001
        shm[base + C_ERROR] = 1
        results.put(("error", f"churn process {wid}: {e}"))
    finally:
        shm[base + C_DONE] = 1


def _raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(want, soft)
    if soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def _idle_proc(wid, url, n, channels, shm, ctrl, results):
    base = wid * SLOT
    conns = []
    try:
        _raise_nofile(n + 64)
        shm[base + C_READY] = 1
        while not ctrl[K_PUB_GO]:
            time.sleep(0.001)
        for i in range(n):
            if ctrl[K_PUB_STOP]:
                break
            c = Conn(url)
            for ch in range(1, channels + 1):
                c.open_channel(ch)
            conns.append(c)
            shm[base + C_COUNT] = i + 1
        shm[base + C_LAST_NS] = time.monotonic_ns()
        while not ctrl[K_PUB_STOP]:
            time.sleep(0.05)
        # still connected? (the broker has not dropped us)
        alive = 0
        for c in conns:
            try:
                c.sock.setblocking(False)
                d = c.sock.recv(64, socket.MSG_DONTWAIT | socket.MSG_PEEK)
                alive += 1 if d != b"" else 0
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        shm[base + C_CONFIRMED] = alive
    except Exception as e:  # noqa: BLE001
        shm[base + C_ERROR] = 1
        results.put(("error", f"idle-connections process {wid}: {e}"))
    finally:
        for c in conns:
            try:
                c.send_method(0, spec.ConnectionClose(reply_code=200, reply_text="bye"))
            except OSError:
                pass
        time.sleep(0.2)
        for c in conns:
            c.sock.close()
        shm[base + C_DONE] = 1


# ------------------------------------------------------------------------------------------ runner
def _mp():
    try:
        return multiprocessing.get_context("fork")
    except ValueError:
        return multiprocessing.get_context()


def _split(items: list, parts: int) -> list:
    parts = max(1, min(parts, len(items)))
    return [items[i::parts] for i in range(parts)]


def _fmt_rate(x) -> str:
    return "-" if x is None else f"{x:,.0f}"


def _fmt_us(ns) -> str:
    if ns is None or ns < 0:
        return "-"
    us = ns / 1000.0
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} us"


def _fmt_bytes(b) -> str:
    if b is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(b) < 1024 or unit == "GiB":
            return f"{b:.1f} {unit}" if unit != "B" else f"{b:.0f} B"
        b /= 1024.0


def latency_summary(samples) -> dict | None:
    if not samples:
        return None
    s = sorted(samples)
    us = lambda v: round(v / 1000.0, 1)  # noqa: E731
    return {"samples": len(s), "min": us(s[0]), "p50": us(_percentile(s, 50)), "p95": us(_percentile(s, 95)),
            "p99": us(_percentile(s, 99)), "p99.9": us(_percentile(s, 99.9)), "max": us(s[-1]),
            "mean": round(sum(s) / len(s) / 1000.0, 1)}


class Runner:
    def __init__(self, cfg, out=sys.stdout, err=sys.stderr):
        self.cfg = cfg
        self.out, self.err = out, err
        self.ctx = _mp()
        self.errors: list = []
        self.per_second: list = []
        self.sink_proc = None
        self.sink_counters = None

    def log(self, line: str) -> None:
        if not self.cfg.quiet:
            print(line, file=self.err, flush=True)

    # -------------------------------------------------------------- processes
    def _spawn(self, target, args_list, name):
        procs = []
        for args in args_list:
            p = self.ctx.Process(target=target, args=args, daemon=True, name=name)
            p.start()
            procs.append(p)
        return procs

    def _wait_flag(self, shm, wids, flag, timeout, what):
        deadline = time.monotonic() + timeout
        while True:
            if all(shm[w * SLOT + flag] for w in wids):
                return
            for w in wids:
                if shm[w * SLOT + C_ERROR]:
                    self._drain_results()
                    raise PerfError("; ".join(self.errors) or f"{what} failed")
            if time.monotonic() > deadline:
                raise PerfError(f"timed out waiting for {what}")
            time.sleep(0.005)

    def _drain_results(self, expect_latency: int = 0, timeout: float = 0.0):
        got = []
        deadline = time.monotonic() + (timeout if expect_latency else 0.0)  # nothing to wait for: take what is there
        while True:
            try:
                remaining = max(0.0, deadline - time.monotonic())
                kind, payload = self.results.get(timeout=remaining) if remaining > 0 else self.results.get_nowait()
            except Exception:  # queue.Empty
                break
            if kind == "error":
                self.errors.append(payload)
            elif kind == "consumer":  # a dict of int64 arrays
                arrays = {}
                for k, v in payload.items():
                    arrays[k] = array.array("q")
                    arrays[k].frombytes(v)
                got.append(arrays)
            else:
                a = array.array("q")
                a.frombytes(payload)
                got.append(a)
                if len(got) >= expect_latency and time.monotonic() > deadline:
                    break
            if expect_latency and len(got) >= expect_latency:
                break
        return got

    def _join(self, procs, timeout=10.0):
        deadline = time.monotonic() + timeout
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.terminate()
                p.join(1)

    # ----------------------------------------------------------------- setup
    def connect(self) -> Conn:
        return Conn(self.url)

    def identify(self) -> dict:
        """``result["server"]`` from a connection of its own (the modes that have no control connection)."""
        conn = self.connect()
        try:
            return _server_info(conn, self.url)
        finally:
            conn.close()

    def run(self) -> dict:
        cfg = self.cfg
        if cfg.sink:
            self.sink_proc, port, self.sink_counters = start_sink(cfg.size)
            self.url = URL(f"amqp://guest:guest@127.0.0.1:{port}/%2F")
            cfg.broker_pid = self.sink_proc.pid
        else:
            self.url = URL(cfg.url)
        self.results = self.ctx.Queue()
        try:
            if cfg.churn:
                return self.run_churn()
            if cfg.idle_connections:
                return self.run_idle()
            return self.run_flow()
        finally:
            if self.sink_proc is not None:
                self.sink_proc.terminate()
                self.sink_proc.join(2)

    def base_result(self, mode: str) -> dict:
        cfg = self.cfg
        return {"tool": "warrenmq perf", "version": __version__, "mode": mode, "url": str(self.url),
                "sink": bool(cfg.sink), "config": {k: v for k, v in vars(cfg).items() if k not in ("url",)},
                "errors": self.errors}

    # ------------------------------------------------------------ the flow
    def run_flow(self) -> dict:
        cfg = self.cfg
        topo = Topology(cfg)
        backlog = cfg.backlog
        if backlog:
            per = [backlog // cfg.publishers + (1 if i < backlog % cfg.publishers else 0)
                   for i in range(cfg.publishers)]
        else:
            per = [cfg.pmessages or 0] * cfg.publishers
        ctrl_conn = Conn(self.url, timeout=600)  # deleting a queue of millions of messages takes a while
        ctrl_conn.open_channel(1)
        server = _server_info(ctrl_conn, self.url)
        if not cfg.no_declare:
            topo.declare(ctrl_conn, cfg.durable or cfg.persistent)
        if cfg.purge:
            for q in topo.queues:
                ctrl_conn.rpc(1, spec.QueuePurge(queue=q), spec.QueuePurgeOk)

        pub_groups = _split(list(range(cfg.publishers)), cfg.publisher_procs or cfg.publishers)
        cons_groups = _split(list(range(cfg.consumers)), cfg.consumer_procs or cfg.consumers) if cfg.consumers else []
        npw, ncw = len(pub_groups) if cfg.publishers else 0, len(cons_groups)
        shm = self.ctx.RawArray("q", (npw + ncw + 1) * SLOT)
        ctrl = self.ctx.RawArray("q", 8)
        pub_counts = self.ctx.RawArray("q", max(1, cfg.publishers))
        pub_w = list(range(npw))
        cons_w = list(range(npw, npw + ncw))
        stats = BrokerStats(cfg.broker_pid)
        result = self.base_result("backlog" if backlog else ("latency" if cfg.rate else "throughput"))
        result["server"] = server

        # copies of each publisher's messages that some consumer will read
        consumed_queues = {topo.consumer_queue(c) for c in range(cfg.consumers)}
        copies = [sum(1 for q in topo.target(p)[2] if q in consumed_queues) for p in range(cfg.publishers)]
        stored_copies = [len(topo.target(p)[2]) for p in range(cfg.publishers)]

        procs_p, procs_c = [], []
        cons_started = False

        def start_consumers():
            nonlocal procs_c, cons_started
            procs_c = self._spawn(_consumer_proc, [(w, cfg, self.url, g, shm, ctrl, self.results)
                                                   for w, g in zip(cons_w, cons_groups)], "warrenmq-perf-consumer")
            self._wait_flag(shm, cons_w, C_READY, 60, "consumers to connect")
            ctrl[K_CONS_GO_NS] = time.monotonic_ns()
            ctrl[K_CONS_GO] = 1
            cons_started = True

        def counts():
            pub = sum(shm[w * SLOT + C_COUNT] for w in pub_w)
            conf = sum(shm[w * SLOT + C_CONFIRMED] for w in pub_w)
            nack = sum(shm[w * SLOT + C_NACKED] for w in pub_w)
            cons = sum(shm[w * SLOT + C_COUNT] for w in cons_w)
            return pub, conf, nack, cons

        def routed():  # copies published so far into the queues that have consumers
            return sum(pub_counts[p] * copies[p] for p in range(cfg.publishers))

        # the publishing window: from the first publish to the moment the last publisher stopped.  When the
        # main loop sees it closed it samples the broker's RSS and asks the queues' depth (queue.declare
        # passive, on a thread: a busy broker may take a while to answer)
        windowed = bool(cfg.publishers and cfg.consumers and not backlog)
        win_seen = None
        depth_box: dict = {}
        depth_thread = None

        def poll_depth():
            try:
                depth_box["depth"] = topo.depth(ctrl_conn)
                depth_box["at_ns"] = time.monotonic_ns()
            except (OSError, PerfError) as e:
                depth_box["error"] = str(e)

        try:
            if cfg.consumers and not backlog:
                start_consumers()
            if cfg.publishers:
                pc_list = []
                for w, g in zip(pub_w, pub_groups):
                    pc = argparse.Namespace(**vars(cfg))
                    if backlog:
                        pc.pmessages = per[g[0]]
                    pc_list.append(pc)
                procs_p = self._spawn(_publisher_proc, [(w, pc, self.url, g, shm, ctrl, pub_counts, self.results)
                                                        for w, g, pc in zip(pub_w, pub_groups, pc_list)],
                                      "warrenmq-perf-publisher")
                self._wait_flag(shm, pub_w, C_READY, 60, "publishers to connect")
            stats.reset_cpu()
            t_go = time.monotonic()
            ctrl[K_GO_NS] = time.monotonic_ns()
            ctrl[K_PUB_GO] = 1
            self.log(f"warrenmq perf: {result['mode']} against {server['name']} at {server['address']}:"
                     f" {cfg.publishers} publisher(s), {cfg.consumers} consumer(s), {cfg.size} B bodies"
                     + (f", backlog {backlog:,}" if backlog else ""))
            last = (0, 0, 0, 0)
            last_t = t_go
            t_pub_done = None
            t_last_progress = t_go
            phase = "fill" if backlog else "run"
            fill = {}
            last_tick = (0, 0, 0, 0)
            last_depth_poll = 0.0
            last_depth, t_depth_changed = -1, t_go
            while True:
                time.sleep(0.1)  # checks every 0.1 s, one progress line per second
                now = time.monotonic()
                c = counts()
                if c != last_tick:
                    t_last_progress = now
                last_tick = c
                if now - last_t >= 1.0:
                    if cons_started:  # each consumer takes this second's latency percentiles now
                        tick = ctrl[K_TICK] = ctrl[K_TICK] + 1
                        wait_until = now + 0.3
                        while (time.monotonic() < wait_until and
                               any(shm[w * SLOT + C_TICK] != tick and not shm[w * SLOT + C_DONE] for w in cons_w)):
                            time.sleep(0.002)
                        now = time.monotonic()
                        c = counts()
                    dt = now - last_t
                    cpu, rss = stats.sample()
                    lat_p50 = [shm[w * SLOT + C_P50] for w in cons_w if shm[w * SLOT + C_P50] > 0]
                    lat_p99 = [shm[w * SLOT + C_P99] for w in cons_w if shm[w * SLOT + C_P99] > 0]
                    sec = {"t": round(now - t_go, 2), "published": round((c[0] - last[0]) / dt),
                           "confirmed": round((c[1] - last[1]) / dt), "consumed": round((c[3] - last[3]) / dt)}
                    depth_now = max(0, routed() - c[3]) if cfg.consumers and not backlog else None
                    if depth_now is not None:
                        sec["depth"] = depth_now
                    if lat_p50:
                        sec["latency_p50_us"] = round(sorted(lat_p50)[len(lat_p50) // 2] / 1000.0, 1)
                        sec["latency_p99_us"] = round(max(lat_p99) / 1000.0, 1)
                    if cpu is not None:
                        sec["broker_cpu_percent"] = round(cpu, 1)
                    if rss is not None:
                        sec["broker_rss"] = rss
                    self.per_second.append(sec)
                    line = (f"time {now - t_go:6.1f}s  published {sec['published']:>9,} msg/s")
                    if cfg.confirm:
                        line += f"  confirmed {sec['confirmed']:>9,} msg/s"
                    line += f"  consumed {sec['consumed']:>9,} msg/s"
                    if depth_now is not None:
                        line += f"  depth {depth_now:>10,}"
                    if lat_p50:
                        line += (f"  latency p50 {_fmt_us(sorted(lat_p50)[len(lat_p50) // 2])}"
                                 f" p99 {_fmt_us(max(lat_p99))}")
                    elif cons_started:
                        line += "  latency -"
                    if cpu is not None:
                        line += f"  broker cpu {cpu:4.0f}% rss {_fmt_bytes(rss)}"
                    if any(shm[w * SLOT + C_BLOCKED] for w in pub_w):
                        line += "  [blocked]"
                    self.log(line)
                    last, last_t = c, now
                if any(shm[w * SLOT + C_ERROR] for w in pub_w + cons_w):
                    self._drain_results()
                    raise PerfError("; ".join(self.errors) or "a worker failed")
                pubs_done = all(shm[w * SLOT + C_DONE] for w in pub_w)
                if pubs_done and t_pub_done is None:
                    t_pub_done = now
                if windowed and win_seen is None and all(shm[w * SLOT + C_PUB_END_NS] for w in pub_w):
                    stats.sample()
                    win_seen = {"rss_peak": stats.rss_max, "seen_ns": time.monotonic_ns()}
                    depth_thread = threading.Thread(target=poll_depth, daemon=True, name="warrenmq-perf-depth")
                    depth_thread.start()
                    self.log(f"publishers stopped after {now - t_go:.1f}s: depth {max(0, routed() - c[3]):,}"
                             + (f", broker rss {_fmt_bytes(stats.rss_end)}" if cfg.broker_pid else ""))
                if cfg.sink and cfg.duration and now - t_go >= cfg.duration:
                    ctrl[K_PUB_STOP] = 1
                    break
                if phase == "fill":
                    if not pubs_done or now - last_depth_poll < 0.25:
                        continue
                    last_depth_poll = now
                    depth = topo.depth(ctrl_conn)
                    want = sum(pub_counts[p] * stored_copies[p] for p in range(cfg.publishers))
                    if cfg.confirm:
                        want = min(want, sum(shm[w * SLOT + C_CONFIRMED] for w in pub_w) *
                                   max(stored_copies or [1]))
                    if depth != last_depth:
                        last_depth, t_depth_changed = depth, now
                    if depth >= want or now - t_depth_changed > cfg.drain_timeout:
                        t_filled = time.monotonic()
                        fill = {"messages": sum(pub_counts[p] for p in range(cfg.publishers)), "queued": depth,
                                "fill_s": round(t_filled - t_go, 3),
                                "fill_rate": round(sum(pub_counts) / max(1e-9, t_filled - t_go)),
                                "rss_after_fill": stats.rss() if cfg.broker_pid else None}
                        if cfg.broker_pid and stats.rss_start and depth:
                            fill["rss_per_message"] = round((fill["rss_after_fill"] - stats.rss_start) / depth, 1)
                        self.log(f"filled {depth:,} messages in {fill['fill_s']:.2f}s "
                                 f"({fill['fill_rate']:,} msg/s)"
                                 + (f", broker rss {_fmt_bytes(fill['rss_after_fill'])}" if cfg.broker_pid else ""))
                        if cfg.no_drain or not cfg.consumers:
                            break
                        phase = "drain"
                        start_consumers()
                        t_last_progress = t_pub_done = time.monotonic()  # --max-drain counts from here
                    continue
                if not pubs_done:
                    continue
                if not cfg.consumers:
                    break
                expected = sum(pub_counts[p] * copies[p] for p in range(cfg.publishers))
                if cfg.confirm and cfg.nacks_lost:
                    expected -= c[2]
                if c[3] >= expected:
                    break
                # before the first delivery only --max-drain applies (a broker may take a while to start
                # delivering a large backlog); after it, --drain-timeout of silence ends the run
                if c[3] and now - t_last_progress > cfg.drain_timeout:
                    self.errors.append(f"stopped waiting: consumed {c[3]:,} of {expected:,} expected messages "
                                       f"(nothing for {cfg.drain_timeout}s)")
                    break
                if cfg.max_drain and now - t_pub_done > cfg.max_drain:
                    self.errors.append(f"stopped waiting: consumed {c[3]:,} of {expected:,} expected messages "
                                       f"after {cfg.max_drain}s past the publishers' end")
                    break
        finally:
            ctrl[K_PUB_STOP] = 1
            ctrl[K_CONS_STOP] = 1
            lat_arrays = self._drain_results(expect_latency=len(procs_c) if cons_started else 0, timeout=10.0)
            self._join(procs_p + procs_c)
            self._drain_results()  # errors reported while the workers finished
            if depth_thread is not None:
                depth_thread.join(60)
        t_end = time.monotonic()
        pub, conf, nack, cons = counts()
        go_ns = ctrl[K_GO_NS]
        pub_last = [shm[w * SLOT + C_LAST_NS] for w in pub_w if shm[w * SLOT + C_LAST_NS]]
        cons_last = [shm[w * SLOT + C_LAST_NS] for w in cons_w if shm[w * SLOT + C_LAST_NS]]
        cons_bytes = sum(shm[w * SLOT + C_BYTES] for w in cons_w)
        pub_bytes = sum(shm[w * SLOT + C_BYTES] for w in pub_w)
        pub_secs = (max(pub_last) - go_ns) / 1e9 if pub_last else None
        cons_from = ctrl[K_CONS_GO_NS] if backlog else go_ns
        cons_secs = (max(cons_last) - max(cons_from, go_ns)) / 1e9 if cons_last else None
        samples = array.array("q")
        for a in lat_arrays:
            samples.extend(a["latency"])
        result.update({
            "publishers": cfg.publishers, "consumers": cfg.consumers, "queues": topo.queues[:20],
            "queue_count": len(topo.queues), "exchange": topo.exchange, "exchange_type": topo.type,
            "size": cfg.size, "published": pub, "confirmed": conf if cfg.confirm else None,
            "nacked": nack if cfg.confirm else None, "consumed": cons,
            "expected_consumed": sum(pub_counts[p] * copies[p] for p in range(cfg.publishers)),
            "elapsed_s": round(t_end - t_go, 3),
            "publish_s": round(pub_secs, 3) if pub_secs else None,
            "consume_s": round(cons_secs, 3) if cons_secs else None,
            "publish_rate": round(pub / pub_secs) if pub_secs else None,
            "confirm_rate": round(conf / pub_secs) if (pub_secs and cfg.confirm) else None,
            "consume_rate": round(cons / cons_secs) if cons_secs else None,
            "publish_bytes": pub_bytes, "consume_bytes": cons_bytes,
            "latency_us": latency_summary(samples),
            "per_second": self.per_second,
            "broker": stats.summary(),
        })
        pub_end = [shm[w * SLOT + C_PUB_END_NS] for w in pub_w]
        if windowed and pub_end and all(pub_end):
            pub_first = [shm[w * SLOT + C_FIRST_NS] for w in pub_w if shm[w * SLOT + C_FIRST_NS]]
            result["window"] = w = window_figures(
                min(pub_first) if pub_first else go_ns, max(pub_end), pub, routed(), lat_arrays,
                depth_box, stats, win_seen)
            unsent = [shm[wk * SLOT + C_UNSENT] for wk in pub_w]
            if -1 not in unsent:  # the depth's share that never reached the broker (Linux only)
                w["publisher_unsent"] = sum(unsent)
                w["publisher_unsent_ms"] = (round(sum(unsent) / w["consume_rate"] * 1000, 1)
                                            if w["consume_rate"] else None)
        if cfg.publishers:
            bufs = [shm[w * SLOT + C_SNDBUF] for w in pub_w if shm[w * SLOT + C_SNDBUF]]
            result["publisher_sndbuf"] = min(bufs) if bufs else None
        if backlog:
            cons_first = [shm[w * SLOT + C_FIRST_NS] for w in cons_w if shm[w * SLOT + C_FIRST_NS]]
            result["backlog"] = dict(fill, drain_s=round(cons_secs, 3) if cons_secs else None,
                                     drain_rate=round(cons / cons_secs) if cons_secs else None,
                                     first_delivery_s=round((min(cons_first) - ctrl[K_CONS_GO_NS]) / 1e9, 3)
                                     if cons_first else None)
        if cfg.sink:
            result["sink_received_bytes"] = self.sink_counters[0]
            result["sink_flooded_messages"] = self.sink_counters[1]
        if depth_thread is not None and depth_thread.is_alive():
            self.errors.append("the broker did not answer queue.declare (passive) after the publishing window: "
                               "the queues are left as they are")
        elif not cfg.keep_queues and not cfg.no_declare:
            try:
                topo.delete(ctrl_conn)
            except (OSError, PerfError) as e:
                self.errors.append(f"cleanup: {e}")
        ctrl_conn.close()
        return result

    # ---------------------------------------------------------------- churn
    def run_churn(self) -> dict:
        cfg = self.cfg
        nproc = max(1, min(cfg.churn_procs or 2, cfg.churn))
        shares = [cfg.churn // nproc + (1 if i < cfg.churn % nproc else 0) for i in range(nproc)]
        shm = self.ctx.RawArray("q", (nproc + 1) * SLOT)
        ctrl = self.ctx.RawArray("q", 8)
        stats = BrokerStats(cfg.broker_pid)
        result = self.base_result("churn")
        result["server"] = self.identify()
        self.log(f"warrenmq perf: churn against {result['server']['name']} at {result['server']['address']}: "
                 f"{cfg.churn:,} connections in {nproc} process(es)")
        procs = self._spawn(_churn_proc, [(w, self.url, shares[w], shm, ctrl, self.results) for w in range(nproc)],
                            "warrenmq-perf-churn")
        try:
            self._wait_flag(shm, range(nproc), C_READY, 30, "churn workers")
            stats.reset_cpu()
            t0 = time.monotonic()
            ctrl[K_PUB_GO] = 1
            last, last_t = 0, t0
            while not all(shm[w * SLOT + C_DONE] for w in range(nproc)):
                time.sleep(0.05)
                now = time.monotonic()
                if now - last_t < 1.0:
                    continue
                n = sum(shm[w * SLOT + C_COUNT] for w in range(nproc))
                cpu, rss = stats.sample()
                rate = (n - last) / (now - last_t)
                self.per_second.append({"t": round(now - t0, 2), "connections": round(rate)})
                self.log(f"time {now - t0:6.1f}s  opened+closed {rate:>8,.0f} conn/s"
                         + (f"  broker cpu {cpu:4.0f}% rss {_fmt_bytes(rss)}" if cpu is not None else ""))
                last, last_t = n, now
                if cfg.duration and now - t0 > cfg.duration:
                    ctrl[K_PUB_STOP] = 1
            t1 = time.monotonic()
            lat = self._drain_results(expect_latency=nproc, timeout=10.0)
        finally:
            ctrl[K_PUB_STOP] = 1
            self._join(procs)
        n = sum(shm[w * SLOT + C_COUNT] for w in range(nproc))
        samples = array.array("q")
        for a in lat:
            samples.extend(a)
        result.update({"connections": n, "elapsed_s": round(t1 - t0, 3), "connection_rate": round(n / (t1 - t0)),
                       "connection_latency_us": latency_summary(samples), "per_second": self.per_second,
                       "broker": stats.summary()})
        return result

    # ----------------------------------------------------------------- idle
    def run_idle(self) -> dict:
        cfg = self.cfg
        total = cfg.idle_connections
        nproc = max(1, min(cfg.idle_procs or 4, total))
        shares = [total // nproc + (1 if i < total % nproc else 0) for i in range(nproc)]
        shm = self.ctx.RawArray("q", (nproc + 1) * SLOT)
        ctrl = self.ctx.RawArray("q", 8)
        stats = BrokerStats(cfg.broker_pid)
        result = self.base_result("idle")
        result["server"] = self.identify()
        self.log(f"warrenmq perf: idle connections against {result['server']['name']} at "
                 f"{result['server']['address']}: {total:,} connections in {nproc} process(es)")
        procs = self._spawn(_idle_proc, [(w, self.url, shares[w], cfg.idle_channels, shm, ctrl, self.results)
                                         for w in range(nproc)], "warrenmq-perf-idle")
        try:
            self._wait_flag(shm, range(nproc), C_READY, 30, "idle-connection workers")
            rss0 = stats.rss() if cfg.broker_pid else None
            t0 = time.monotonic()
            ctrl[K_PUB_GO] = 1
            last_t = t0
            while True:
                time.sleep(0.05)
                now = time.monotonic()
                n = sum(shm[w * SLOT + C_COUNT] for w in range(nproc))
                if now - last_t >= 1.0 or n >= total:
                    last_t = now
                    cpu, rss = stats.sample()
                    self.log(f"time {now - t0:6.1f}s  open {n:>8,} connections"
                             + (f"  broker cpu {cpu:4.0f}% rss {_fmt_bytes(rss)}" if cpu is not None else ""))
                if any(shm[w * SLOT + C_ERROR] for w in range(nproc)):
                    self._drain_results()
                    raise PerfError("; ".join(self.errors) or "an idle-connection worker failed")
                if n >= total:
                    break
            t_open = time.monotonic() - t0
            hold_end = time.monotonic() + cfg.idle_hold
            while time.monotonic() < hold_end:
                time.sleep(min(1.0, max(0.0, hold_end - time.monotonic())))
                cpu, rss = stats.sample()
                self.log(f"holding {total:,} connections" + (f"  broker cpu {cpu:4.0f}% rss {_fmt_bytes(rss)}"
                                                              if cpu is not None else ""))
            rss1 = stats.rss() if cfg.broker_pid else None
            ctrl[K_PUB_STOP] = 1
            self._wait_flag(shm, range(nproc), C_DONE, 60, "idle connections to close")
        finally:
            ctrl[K_PUB_STOP] = 1
            self._join(procs, 30)
        alive = sum(shm[w * SLOT + C_CONFIRMED] for w in range(nproc))
        result.update({"connections": total, "channels_per_connection": cfg.idle_channels, "alive_at_end": alive,
                       "open_s": round(t_open, 3), "open_rate": round(total / t_open),
                       "rss_before": rss0, "rss_after": rss1,
                       "rss_per_connection": round((rss1 - rss0) / total) if rss0 and rss1 else None,
                       "broker": stats.summary()})
        return result


# ------------------------------------------------------------------------------------------ window
def _count_at(times, counts, t_ns: int) -> int:
    """Deliveries a consumer process had received by ``t_ns``, from its arrival log."""
    i = bisect.bisect_right(times, t_ns)
    return counts[i - 1] if i else 0


def window_figures(start_ns: int, end_ns: int, published: int, routed: int, consumers: list, depth_box: dict,
                   stats: "BrokerStats", seen: dict | None) -> dict:
    """``result["window"]``: what happened between the first publish and the moment the publishers stopped.

    ``consumers`` holds each consumer process's arrays (latency samples with their arrival times, and the
    arrival log); ``routed`` is the copies published into consumed queues (the depth's reference).
    """
    dur = max(1e-9, (end_ns - start_ns) / 1e9)
    consumed = sum(_count_at(a["arrivals_at"], a["arrivals"], end_ns) for a in consumers)
    samples = array.array("q")
    for a in consumers:
        lat, at = a["latency"], a["latency_at"]
        samples.extend(lat[i] for i in range(len(lat)) if start_ns <= at[i] <= end_ns)
    out = {"duration_s": round(dur, 3), "published": published, "publish_rate": round(published / dur),
           "consumed": consumed, "consume_rate": round(consumed / dur),
           "depth": routed - consumed, "latency_us": latency_summary(samples),
           "queue_depth": depth_box.get("depth"),
           "queue_depth_delay_s": round((depth_box["at_ns"] - end_ns) / 1e9, 3) if "at_ns" in depth_box else None}
    if stats.pid:
        peak = (seen or {}).get("rss_peak") or stats.rss_max
        out.update({"rss_idle": stats.rss_start, "rss_peak": peak,
                    "rss_peak_above_idle": peak - stats.rss_start if peak and stats.rss_start else None})
    return out


# ------------------------------------------------------------------------------------------ output
def summary_text(r: dict) -> str:
    lines = []
    mode = r["mode"]
    cfg = r["config"]
    server = r.get("server")
    if server:
        lines.append(f"{mode} against {server['name']} at {server['address']}")
    if r.get("sink"):
        lines.append("(against --sink: a fake broker that discards everything; these are the generator's ceilings)")
    if mode == "churn":
        lat = r.get("connection_latency_us") or {}
        lines.append(f"connections opened and closed   {r['connections']:>12,}")
        lines.append(f"rate (conn/s)                   {r['connection_rate']:>12,}")
        if lat:
            lines.append(f"open+close latency: p50 {lat['p50'] / 1000:.2f} ms  p99 {lat['p99'] / 1000:.2f} ms  "
                         f"max {lat['max'] / 1000:.2f} ms")
    elif mode == "idle":
        lines.append(f"idle connections                {r['connections']:>12,} "
                     f"({r['channels_per_connection']} channel(s) each, {r['alive_at_end']:,} alive at the end)")
        lines.append(f"opened in                       {r['open_s']:>12.2f} s ({r['open_rate']:,} conn/s)")
        if r.get("rss_per_connection") is not None:
            lines.append(f"broker RSS                      {_fmt_bytes(r['rss_before'])} -> {_fmt_bytes(r['rss_after'])}")
            lines.append(f"RSS per connection              {_fmt_bytes(r['rss_per_connection']):>12}")
    else:
        size = cfg["size"]

        def row(name, n, rate):
            mbs = "-" if rate is None else f"{rate * size / 1e6:.1f}"
            lines.append(f"{name:24}{n if isinstance(n, str) else f'{n:,}':>14}{_fmt_rate(rate):>14}{mbs:>10}")

        w = r.get("window")
        if w:
            lines.append(f"publishing window: {w['duration_s']:.2f} s from the first publish to the publishers' stop")
            lines.append(f"{'':24}{'messages':>14}{'msg/s':>14}{'MB/s':>10}")
            row("published", w["published"], w["publish_rate"])
            row("consumed in window", w["consumed"], w["consume_rate"])
            lines.append(f"{'depth at window end':24}{w['depth']:>14,}  (published - consumed"
                         + (f"; queue.declare {w['queue_depth_delay_s']:.2f} s later: {w['queue_depth']:,} ready)"
                            if w.get("queue_depth") is not None else ")"))
            if w.get("publisher_unsent") is not None:
                lines.append(f"{'  not yet sent':24}{w['publisher_unsent']:>14,}  (in the publishers' socket send"
                             " buffers" + (f": {w['publisher_unsent_ms']:,.1f} ms at the consumers' rate)"
                                           if w.get("publisher_unsent_ms") is not None else ")"))
            wl = w.get("latency_us")
            lines.append("latency in window  " + ("  ".join(f"{k} {_fmt_us(wl[k] * 1000)}" for k in ("p50", "p99",
                                                                                                     "max"))
                                                  + f"  ({wl['samples']:,} samples)" if wl else "no samples"))
            if w.get("rss_peak") is not None:
                lines.append(f"broker RSS: idle {_fmt_bytes(w['rss_idle'])}, peak in window {_fmt_bytes(w['rss_peak'])}"
                             f" ({'+' if w['rss_peak_above_idle'] >= 0 else ''}"
                             f"{_fmt_bytes(w['rss_peak_above_idle'])})")
            lines.append("whole run (the publishing window and the drain after it):")
        lines.append(f"{'':24}{'messages':>14}{'msg/s':>14}{'MB/s':>10}")
        row("published", r["published"], r["publish_rate"])
        if r.get("confirmed") is not None:
            row("confirmed", r["confirmed"], r["confirm_rate"])
            if r.get("nacked"):
                row("nacked", r["nacked"], None)
        row("consumed", r["consumed"], r["consume_rate"])
        if r.get("backlog"):
            b = r["backlog"]
            lines.append(f"backlog: filled {b.get('queued', 0):,} in {b.get('fill_s', 0):.2f}s "
                         f"({b.get('fill_rate', 0):,} msg/s)"
                         + (f", drained in {b['drain_s']:.2f}s ({b['drain_rate']:,} msg/s)" if b.get("drain_s") else "")
                         + (f", first delivery after {b['first_delivery_s']:.2f}s"
                            if b.get("first_delivery_s") is not None else ""))
            if b.get("rss_per_message") is not None:
                lines.append(f"broker RSS per queued message: {b['rss_per_message']:.0f} B")
        lat = r.get("latency_us")
        if lat:
            lines.append("latency    " + "  ".join(f"{k} {_fmt_us(lat[k] * 1000)}"
                                                   for k in ("min", "p50", "p95", "p99", "p99.9", "max"))
                         + f"  ({lat['samples']:,} samples)")
    b = r.get("broker")
    if b:
        lines.append(f"broker pid {b['pid']}: cpu {b['cpu_percent']}% ({b['cpu_seconds']} s), rss "
                     f"{_fmt_bytes(b['rss_start'])} -> {_fmt_bytes(b['rss_end'])} (max {_fmt_bytes(b['rss_max'])})")
    for e in r.get("errors") or []:
        lines.append(f"warning: {e}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- CLI
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="warrenmq perf", add_help=False,
        description="Load generator for AMQP 0-9-1 brokers (WarrenMQ, RabbitMQ, ...), after RabbitMQ's PerfTest.",
        epilog="Examples: `warrenmq perf -x 1 -y 1 -s 1024 -z 10` (throughput); "
               "`warrenmq perf --rate 1000 -z 10` (latency); `warrenmq perf --backlog 1000000`; "
               "`warrenmq perf --idle-connections 10000 --broker-pid PID`; `warrenmq perf --sink` (own ceiling).")
    a = p.add_argument
    a("--url", "-h", default=os.environ.get("WARRENMQ_PERF_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
      help="broker URL (default amqp://guest:guest@127.0.0.1:5672/%%2F)")
    a("--help", action="help", help="show this help and exit")
    g = p.add_argument_group("load")
    g.add_argument("--publishers", "-x", type=int, default=1, help="publisher connections (default 1)")
    g.add_argument("--consumers", "-y", type=int, default=1, help="consumer connections (default 1)")
    g.add_argument("--size", "-s", type=int, default=16, help="message body size in bytes (default 16; "
                   ">= 8 carries a timestamp)")
    g.add_argument("--rate", "-r", type=float, default=0, help="messages/s per publisher (default unlimited); "
                   "every message is then timestamped (the latency test)")
    g.add_argument("--duration", "-z", type=float, default=None, help="publish for this many seconds")
    g.add_argument("--pmessages", "-C", type=int, default=0, help="messages per publisher, then stop")
    g.add_argument("--autoack", "-a", action="store_true", help="consume with no_ack (default: manual acks)")
    g.add_argument("--prefetch", "-q", type=int, default=100, help="basic.qos prefetch with manual acks "
                   "(default 100, 0 = unlimited)")
    g.add_argument("--multi-ack", "-A", type=int, default=1, help="ack with multiple=true every K messages "
                   "(default 1: one ack per message)")
    g.add_argument("--persistent", "-f", action="store_true", help="delivery_mode 2 and durable queues")
    g.add_argument("--durable", action="store_true", help="durable queues/exchange (implied by --persistent)")
    g.add_argument("--confirm", "-c", type=int, default=0, help="publisher confirms with at most N "
                   "unconfirmed messages in flight per publisher")
    g.add_argument("--batch", type=int, default=0, help="messages per write (default: ~256 KiB worth, max 1000)")
    g.add_argument("--sndbuf", type=int, default=DEFAULT_SNDBUF, metavar="BYTES",
                   help=f"SO_SNDBUF of publisher sockets, set before connect (default {DEFAULT_SNDBUF}; 0 = the "
                   "OS default, autotuned): keeps client-side queueing out of the latency figure")
    g.add_argument("--stamp-all", action="store_true", help="timestamp every message even without --rate")
    t = p.add_argument_group("topology")
    t.add_argument("--queue", "-u", default="perf-test", help="queue name, or prefix with --queues > 1")
    t.add_argument("--queues", type=int, default=1, help="number of queues (NAME-1..NAME-N); consumer i "
                   "reads queue i mod N, publisher i targets queue i mod N (all of them with fanout)")
    t.add_argument("--exchange", "-e", default=None, help="exchange name (default: the default exchange, or "
                   "QUEUE-TYPE when --exchange-type is given)")
    t.add_argument("--exchange-type", "-t", choices=("direct", "fanout", "topic", "headers"), default=None)
    t.add_argument("--queue-arguments", type=json.loads, default=None, metavar="JSON",
                   help='queue.declare arguments, e.g. \'{"x-queue-type": "classic"}\'')
    t.add_argument("--no-declare", action="store_true", help="use existing queues; declare and delete nothing")
    t.add_argument("--keep-queues", action="store_true", help="do not delete the queues at the end")
    t.add_argument("--purge", action="store_true", help="purge the queues before starting")
    m = p.add_argument_group("modes")
    m.add_argument("--backlog", type=int, default=0, metavar="N", help="publish N messages with no consumer, "
                   "wait until they are queued, then start the consumers and time the drain")
    m.add_argument("--no-drain", action="store_true", help="with --backlog: fill only (with --keep-queues "
                   "to leave them queued)")
    m.add_argument("--churn", type=int, default=0, metavar="N", help="open and close N connections "
                   "(handshake, channel.open, connection.close) and report the rate")
    m.add_argument("--churn-procs", type=int, default=2, help="processes for --churn (default 2)")
    m.add_argument("--idle-connections", type=int, default=0, metavar="N", help="open N idle connections, "
                   "hold them --idle-hold seconds and report the broker's RSS per connection (--broker-pid)")
    m.add_argument("--idle-channels", type=int, default=1, help="channels per idle connection (default 1)")
    m.add_argument("--idle-hold", type=float, default=5.0, help="seconds to hold idle connections (default 5)")
    m.add_argument("--idle-procs", type=int, default=4, help="processes for --idle-connections (default 4)")
    m.add_argument("--sink", action="store_true", help="run against a built-in fake broker that discards "
                   "publishes and floods consumers: the generator's own ceiling")
    o = p.add_argument_group("processes, timing and output")
    o.add_argument("--publisher-procs", type=int, default=0, help="processes for the publishers "
                   "(default one per publisher)")
    o.add_argument("--consumer-procs", type=int, default=0, help="processes for the consumers "
                   "(default one per consumer)")
    o.add_argument("--broker-pid", type=int, default=None, help="read the broker's RSS and CPU from /proc/PID")
    o.add_argument("--drain-timeout", type=float, default=10.0, help="stop when nothing arrives for this many "
                   "seconds after the publishers finished (default 10)")
    o.add_argument("--max-drain", type=float, default=120.0, help="stop at most this many seconds after the "
                   "publishers finished (default 120, 0 = no limit)")
    o.add_argument("--confirm-timeout", type=float, default=60.0, help="seconds to wait for outstanding confirms")
    o.add_argument("--nacks-lost", action="store_true", help=argparse.SUPPRESS)
    o.add_argument("--json", action="store_true", help="print one JSON object (the summary) on stdout")
    o.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def parse_args(argv):
    p = build_parser()
    cfg = p.parse_args(argv)
    if not (cfg.duration or cfg.pmessages or cfg.backlog or cfg.churn or cfg.idle_connections):
        cfg.duration = 10.0 if not cfg.sink else 5.0
    if cfg.sink and not cfg.duration:
        cfg.duration = 5.0
    if cfg.backlog and cfg.duration:
        p.error("--backlog counts messages; do not combine it with --duration")
    if cfg.publishers < 0 or cfg.consumers < 0 or cfg.queues < 1 or cfg.size < 0 or cfg.sndbuf < 0:
        p.error("counts and sizes must not be negative")
    if cfg.backlog and not cfg.publishers:
        p.error("--backlog needs at least one publisher")
    if cfg.sink and (cfg.backlog or cfg.churn or cfg.idle_connections):
        p.error("--sink runs the throughput test only")
    if cfg.sink:
        cfg.no_declare = False
    return cfg


def main(argv=None) -> int:
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    runner = Runner(cfg)
    try:
        result = runner.run()
    except PerfError as e:
        print(f"warrenmq perf: {e}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError) as e:
        print(f"warrenmq perf: cannot talk to {cfg.url}: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if cfg.json:
        print(json.dumps(result))
    else:
        print(summary_text(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
