"""Federation links: this broker as a federation *downstream* (RabbitMQ's rabbitmq_federation plugin).

Theory of operation: :class:`FederationService` (one per broker, started by the app) registers the
``federation-upstream`` and ``federation-upstream-set`` parameter components (upstreams.py) and keeps
one link running per (federated exchange or queue, upstream): an exchange or queue is federated when
the policy in force for it has ``federation-upstream``, ``federation-upstream-set`` or
``federation-upstream-pattern`` (internal exchanges and exclusive queues never are, as in RabbitMQ).
Which links should run is recomputed (:meth:`FederationService.reconcile`) when an upstream parameter
changes and on a one-second timer, so policy changes and new or deleted objects are picked up within
a second without a hook in the domain; a vhost without a federation policy costs one look at its
policies.  A second, faster timer (0.1 s) runs only for the links there are: it brings an exchange
link's upstream bindings in line with the exchange's bindings, and runs or pauses queue links.

Each link talks to its upstream over an outgoing link (warrenmq.links: aiormq for a remote URI, the
domain API for a local one) and to this broker through a local link (the domain API, listed as a
direct connection), both named ``Federation link (upstream: <upstream>, policy: <policy>)`` as
RabbitMQ names them.  It reconnects after ``reconnect-delay`` seconds when either dies, and stops when
its object, policy or upstream goes (deleting, unless ``resource-cleanup-mode`` is ``never``, the
queue and internal exchange an exchange link made upstream).

Exchange link (rabbit_federation_exchange_link): on the upstream it declares the federated exchange
if missing (passive first, with the downstream exchange's type and arguments), a durable queue
``federation: <exchange> -> <this cluster>[:<vhost>:<exchange>]`` (``x-expires``, ``x-message-ttl``
from the upstream, ``x-internal-purpose``), an internal auto-delete exchange ``<queue> A`` or ``B``
(alternating at each start) of type ``x-federation-upstream`` with ``x-max-hops``,
``x-downstream-name`` and ``x-downstream-vhost`` (on a fresh connection, so a broker without that
type answers 503 COMMAND_INVALID and the link declares a ``fanout`` instead, as RabbitMQ does),
binds the queue to it, binds it from the upstream exchange once per distinct (routing key,
arguments) of the downstream exchange's bindings, with ``x-bound-from`` (hops left; a binding that
itself came from a downstream is passed on with one hop fewer, none when it came from this upstream),
and consumes the queue.  Each message is republished into the downstream exchange with its routing
key and an ``x-received-from`` entry (uri, exchange, redelivered, the upstream's cluster-name and
vhost) put first, unless it already crossed ``max-hops`` links or came from this broker
(should_forward, needed when the upstream fell back to fanout); ``user_id`` is dropped unless
``trust-user-id``.

Queue link (rabbit_federation_queue_link): the upstream queue (declared if missing) is consumed, with
priority -1 and the upstream's consumer tag, only while the local queue is empty and has a consumer
of priority >= 0; otherwise the consumer is cancelled.  Each message goes to the local queue through
the default exchange with ``x-received-from`` (uri, queue, redelivered, visit-count) and, the first
time, ``x-original-exchange``/``x-original-routing-key``; a ``CC`` header becomes ``x-original-cc``.

Acknowledgements as ``ack-mode`` says: ``on-confirm`` acks the upstream once this broker confirmed
the republish (so a message is never lost between the two), ``on-publish`` right after
republishing, ``no-ack`` consumes without acks.  Status (:meth:`FederationLink.status`) is what
``/api/federation-links`` lists: starting, running, or error with the reason.
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from urllib.parse import quote

from ..broker.federation_exchange import (BINDING_HEADER, DOWNSTREAM_NAME_ARG, DOWNSTREAM_VHOST_ARG, MAX_HOPS_ARG,
                                          ROUTING_HEADER, TYPE_NAME, already_seen, should_forward)
from ..protocol.codec import INT_TYPES
from ..protocol.properties import content_header
from ..protocol.spec import BasicProperties
from ..links import LinkClosed, open_link, parse
from . import upstreams as ups

log = logging.getLogger("warrenmq.federation")

_Long = INT_TYPES["l"]
_Short = INT_TYPES["s"]
RECONCILE_INTERVAL = 1.0
TICK_INTERVAL = 0.1
#: how often an exchange link checks that its helper exchange still exists upstream (RabbitMQ's
#: internal_exchange_check_interval, 90 s by default); a module attribute so tests can shorten it
INTERNAL_EXCHANGE_CHECK = 90.0
PURPOSE = {"x-internal-purpose": "federation"}


def connection_name(upstream: str, policy: str) -> str:
    return f"Federation link (upstream: {upstream}, policy: {policy})"


def _now() -> str:
    """As rabbitmq_federation_management prints a link's timestamp (``~w`` for the hour: not padded)."""
    t = time.localtime()
    return f"{t.tm_year}-{t.tm_mon:02d}-{t.tm_mday:02d} {t.tm_hour}:{t.tm_min:02d}:{t.tm_sec:02d}"


def _rewrite(header: bytes, trust_user_id: bool, update, props=None) -> bytes:
    """``header`` (a content-header payload; ``props`` its properties if already decoded) with its headers
    table replaced by ``update(headers)`` and, unless ``trust_user_id``, no ``user_id``.  The body size
    is kept."""
    if props is None:
        props = BasicProperties.decode(header, 12)
    props.headers = update(dict(props.headers or {}))
    if not trust_user_id:
        props.user_id = None
    return content_header(props, int.from_bytes(header[4:12], "big"))


class FederationLink:
    """One link: a federated exchange or queue and one of its upstreams (see the module docstring)."""
    kind = ""

    def __init__(self, service: "FederationService", vhost: str, name: str, upstream: ups.Upstream, policy: str):
        self.service = service
        self.broker = service.broker
        self.vhost = vhost
        self.name = name
        self.upstream = upstream
        self.policy = policy
        self.state = "starting"
        self.error = None
        self.timestamp = _now()
        self.id = hashlib.sha1(f"{vhost}\0{self.kind}\0{name}\0{upstream.name}".encode()).hexdigest()[:8]
        self.safe_uri = ups.redact(upstream.uris[0])
        self.local = None
        self.remote = None
        self.local_connection = None
        self.upstream_cluster = None
        self.upstream_vhost = None
        self.syncing = False
        self.warned_same_name = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    # ------------------------------------------------------------ life
    async def _run(self) -> None:
        while True:
            try:
                reason = await self._session()
                self._set_error(_describe(reason) if isinstance(reason, BaseException) else reason)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - any failure of a session is the link's error status
                self._set_error(_describe(e))
            await self._close_links()
            await asyncio.sleep(max(float(self.upstream.reconnect_delay), 0.05))
            self.state, self.error, self.timestamp = "starting", None, _now()

    def _set_error(self, reason: str) -> None:
        log.warning("federation link for %s '%s' in vhost '%s' (upstream '%s'): %s", self.kind, self.name,
                    self.vhost, self.upstream.name, reason)
        self.state, self.error, self.timestamp = "error", reason, _now()

    async def _open(self) -> None:
        up = self.upstream
        uri_text = random.choice(up.uris)
        self.safe_uri = ups.redact(uri_text)
        uri = parse(uri_text)
        if not ups.has_vhost(uri_text):  # RabbitMQ: an upstream URI without a vhost means the downstream's
            uri.vhost = self.vhost
        self.upstream_vhost = uri.vhost
        self.uri = uri
        name = connection_name(up.name, self.policy)
        self.local = await open_link(self.broker, parse("amqp:///" + quote(self.vhost, safe="")), name,
                                     confirms=up.ack_mode == "on-confirm")
        self.local_connection = name
        self.remote = await open_link(self.broker, uri, name)
        self.local.set_flow_listener(self.remote.pause)  # this broker cannot keep up: stop taking deliveries
        self.upstream_cluster = self.remote.cluster_name
        if (self.upstream_cluster == self.service.cluster_name and self.upstream_vhost == self.vhost
                and self.upstream_object() == self.name and not self.warned_same_name):
            self.warned_same_name = True  # once per link: it still runs (one-way, it works)
            log.warning("federation link for %s '%s' in vhost '%s' (upstream '%s'): the upstream node is named "
                        "'%s', as this one is; cycle detection (x-received-from) and the upstream queue go by "
                        "that name, so with links both ways or two such downstreams messages are dropped or "
                        "shared: give each node its own cluster name (PUT /api/cluster-name)", self.kind,
                        self.name, self.vhost, self.upstream.name, self.upstream_cluster)

    def upstream_object(self) -> str:
        """The name of the upstream exchange or queue this link takes messages from."""
        raise NotImplementedError

    async def _disposable(self):
        """A fresh link to the upstream for one operation that may fail (RabbitMQ's disposable channel)."""
        return await open_link(self.broker, self.uri, connection_name(self.upstream.name, self.policy))

    async def _upstream_has(self, passive_declare) -> bool:
        """Whether a passive declare (``passive_declare(link)``) succeeds upstream, on a disposable link,
        since a NOT_FOUND closes the channel it is sent on; any other refusal is raised."""
        probe = await self._disposable()
        try:
            await passive_declare(probe)
            return True
        except LinkClosed as e:
            if "NOT_FOUND" not in str(e):
                raise
            return False
        finally:
            await probe.close()

    async def _wait_closed(self) -> str:
        done, _ = await asyncio.wait([self.local.closed, self.remote.closed], return_when=asyncio.FIRST_COMPLETED)
        which = "downstream" if self.local.closed in done else "upstream"
        return f"{which} connection closed: {next(iter(done)).result()}"

    async def _close_links(self) -> None:
        for link in (self.remote, self.local):
            if link is not None:
                try:
                    await link.close()
                except Exception:  # noqa: BLE001 - closing a broken link
                    pass
        self.remote = self.local = None

    def restart(self) -> None:
        """Close both connections and start again at once (the management API's restart)."""
        self.task.cancel()
        old = self.task

        async def again():
            try:
                await old
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            await self._close_links()
            self.state, self.error, self.timestamp = "starting", None, _now()
            self.task = asyncio.get_running_loop().create_task(self._run())
        self.task = asyncio.get_running_loop().create_task(again())

    async def stop(self) -> None:
        """Stop for good (the policy, upstream or object went): tidy the upstream, close both links."""
        self.task.cancel()
        try:
            await self.task
        except (asyncio.CancelledError, Exception):  # noqa: BLE001
            pass
        if self.remote is not None and self.state == "running" and self.upstream.resource_cleanup_mode != "never":
            try:
                await asyncio.wait_for(self._cleanup_upstream(), 5)
            except Exception:  # noqa: BLE001 - the upstream may be gone already
                pass
        await self._close_links()

    async def _cleanup_upstream(self) -> None:
        pass

    def tick(self) -> None:
        pass

    # ------------------------------------------------------------ forwarding
    def _forward(self, tag, exchange, routing_key, header, body) -> None:
        mode = self.upstream.ack_mode
        remote = self.remote
        if mode == "on-confirm":
            def confirmed(ok, tag=tag, remote=remote):
                if ok:
                    remote.ack(tag)
                else:
                    remote.nack(tag)
            self.local.publish(exchange, routing_key, header, body, on_confirm=confirmed)
        else:
            self.local.publish(exchange, routing_key, header, body)
            if mode == "on-publish":
                remote.ack(tag)

    def status(self, node: str) -> dict:
        raise NotImplementedError


class ExchangeLink(FederationLink):
    kind = "exchange"

    def __init__(self, *a):
        self.queue = None
        self.internal = None
        self.bound: dict = {}  # (key, args_key) -> (key, arguments as bound upstream)
        super().__init__(*a)

    def upstream_object(self) -> str:
        return self.upstream.exchange

    def queue_name(self) -> str:
        """upstream_queue_name: ``federation: <upstream exchange> -> <cluster>`` and the downstream part."""
        up_x = self.upstream.exchange
        down = ""
        if self.upstream_vhost != self.vhost:
            down = f":{self.vhost}:{self.name}"
        elif self.name != up_x:
            down = f":{self.name}"
        return f"federation: {up_x} -> {self.service.cluster_name}{down}"

    async def _session(self) -> str:
        vh = self.broker.vhosts.get(self.vhost)
        ex = vh.exchanges.get(self.name) if vh is not None else None
        if ex is None:
            return "not found"
        await self._open()
        up = self.upstream
        remote = self.remote
        # the upstream exchange, as the downstream one is, if it is missing
        if not await self._upstream_has(lambda probe: probe.declare_exchange(up.exchange, ex.type, passive=True)):
            await remote.declare_exchange(up.exchange, ex.type, durable=ex.durable, auto_delete=ex.auto_delete,
                                          internal=ex.internal, arguments=dict(ex.arguments))
        self.queue = q = self.queue_name()
        args = {}
        if up.expires is not None:
            args["x-expires"] = _Long(up.expires)
        if up.message_ttl is not None:
            args["x-message-ttl"] = _Long(up.message_ttl)
        args.update(PURPOSE)
        await remote.declare_queue(q, durable=True, arguments=args)
        key = (self.vhost, self.name, up.name)
        old = self.service.suffixes.get(key, "A")
        suffix = "B" if old == "A" else "A"
        self.internal = f"{q} {suffix}"
        await self._declare_internal()
        await remote.bind(q, self.internal, "")
        self.service.suffixes[key] = suffix
        self.suffix = suffix
        self.bound = {}
        await self._sync_bindings()
        probe = await self._disposable()
        try:
            await probe.delete_exchange(f"{q} {old}")
        except LinkClosed:
            pass
        finally:
            await probe.close()
        await remote.consume(q, self._delivered, prefetch=up.prefetch_count, no_ack=up.ack_mode == "no-ack")
        self.state, self.error, self.timestamp = "running", None, _now()
        checker = asyncio.get_running_loop().create_task(self._check_internal_exchange())
        try:
            return await self._wait_closed()
        finally:
            checker.cancel()

    async def _check_internal_exchange(self) -> None:
        """check_internal_exchange: a passive declare of the helper exchange on a fresh connection every
        INTERNAL_EXCHANGE_CHECK seconds; when it is gone (deleted by hand, or by a broker that lost it),
        the link restarts, which declares it again."""
        while True:
            await asyncio.sleep(INTERNAL_EXCHANGE_CHECK)
            try:
                probe = await self._disposable()
            except Exception:  # noqa: BLE001 - the upstream is unreachable: the link's own connection says so
                continue
            try:
                await probe.declare_exchange(self.internal, TYPE_NAME, passive=True)
            except LinkClosed as e:
                if "NOT_FOUND" in str(e):
                    log.warning("federation link for exchange '%s' (upstream '%s') could not find upstream exchange"
                                " '%s' and will restart", self.name, self.upstream.name, self.internal)
                    await self.remote.close()  # _wait_closed returns; _run reconnects
                    return
            finally:
                await probe.close()

    async def _declare_internal(self) -> None:
        up = self.upstream
        probe = await self._disposable()
        try:
            try:
                await probe.delete_exchange(self.internal)
                await probe.declare_exchange(
                    self.internal, TYPE_NAME, durable=True, internal=True, auto_delete=True,
                    arguments={MAX_HOPS_ARG: _Long(up.max_hops), DOWNSTREAM_NAME_ARG: self.service.cluster_name,
                               DOWNSTREAM_VHOST_ARG: self.vhost, **PURPOSE})
                return
            except LinkClosed as e:
                if "COMMAND_INVALID" not in str(e) and "503" not in str(e):
                    raise
        finally:
            await probe.close()
        await self.remote.declare_exchange(self.internal, "fanout", durable=True, internal=True, auto_delete=True,
                                           arguments=dict(PURPOSE))

    def _upstream_args(self, args: dict):
        """update_binding: the arguments to bind upstream with (``x-bound-from`` first), or None."""
        up = self.upstream
        chain = args.get(BINDING_HEADER)
        if not isinstance(chain, list) or not chain:
            hops = up.max_hops
        else:
            prev = chain[0] if isinstance(chain[0], dict) else {}
            prev_hops = prev.get("hops", 0) if isinstance(prev.get("hops"), int) else 0
            if already_seen(self.upstream_cluster, self.upstream_vhost, chain):
                hops = 0
            else:
                hops = min(prev_hops - 1, up.max_hops)
        if hops <= 0:
            return None
        info = {"cluster-name": self.service.cluster_name, "vhost": self.vhost,
                "exchange": f"{self.vhost}:{self.name} {self.suffix}", "hops": _Short(hops)}
        out = dict(args)
        out[BINDING_HEADER] = [info] + (list(chain) if isinstance(chain, list) else [])
        return out

    def _wanted(self) -> dict | None:
        vh = self.broker.vhosts.get(self.vhost)
        ex = vh.exchanges.get(self.name) if vh is not None else None
        if ex is None:
            return None
        from ..broker.exchanges import _thaw
        wanted = {}
        for _dest, key, ak in ex.bindings:
            if (key, ak) not in wanted:
                wanted[(key, ak)] = (key, dict(_thaw(ak)))
        return wanted

    async def _sync_bindings(self) -> None:
        wanted = self._wanted()
        if wanted is None:
            return
        # this session's link and bookkeeping: a sync still awaiting a dead link must not touch the next's
        remote, bound, internal = self.remote, self.bound, self.internal
        for k in [k for k in bound if k not in wanted]:
            key, up_args = bound.pop(k)
            if up_args is not None:
                await remote.unbind_exchange(internal, self.upstream.exchange, key, up_args)
        for k, (key, args) in wanted.items():
            if k in bound:
                continue
            up_args = self._upstream_args(args)
            bound[k] = (key, up_args)
            if up_args is not None:
                await remote.bind_exchange(internal, self.upstream.exchange, key, up_args)

    def tick(self) -> None:
        if self.state != "running" or self.syncing or self.remote is None:
            return
        wanted = self._wanted()
        if wanted is None or wanted.keys() == self.bound.keys():
            return
        self.syncing = True

        async def sync():
            try:
                await self._sync_bindings()
            except Exception:  # noqa: BLE001 - the link's closed future says why; it restarts
                pass
            finally:
                self.syncing = False
        asyncio.get_running_loop().create_task(sync())

    def _delivered(self, tag, exchange, routing_key, redelivered, header, body) -> None:
        up = self.upstream
        props = BasicProperties.decode(header, 12)
        if not should_forward(props.headers, up.max_hops, self.service.cluster_name, self.vhost):
            if up.ack_mode != "no-ack":
                self.remote.ack(tag)
            return
        entry = {"uri": self.safe_uri, "exchange": self.name, "redelivered": bool(redelivered)}
        if self.upstream_cluster is not None:
            entry["cluster-name"] = self.upstream_cluster
        entry["vhost"] = self.upstream_vhost

        def update(h):
            old = h.get(ROUTING_HEADER)
            h[ROUTING_HEADER] = [entry] + (list(old) if isinstance(old, list) else [])
            return h
        self._forward(tag, self.name, routing_key, _rewrite(header, up.trust_user_id, update, props), body)

    async def _cleanup_upstream(self) -> None:
        await self.remote.delete_queue(self.queue)
        await self.remote.delete_exchange(self.internal)

    def status(self, node: str) -> dict:
        out = {"node": node, "exchange": self.name, "upstream_exchange": self.upstream.exchange, "type": "exchange",
               "vhost": self.vhost, "upstream": self.upstream.name, "id": self.id, "status": self.state}
        return _status_tail(self, out)


class QueueLink(FederationLink):
    kind = "queue"

    def __init__(self, *a):
        self.consuming = None  # the consumer tag while running
        self.switching = False
        super().__init__(*a)

    def upstream_object(self) -> str:
        return self.upstream.queue

    async def _session(self) -> str:
        vh = self.broker.vhosts.get(self.vhost)
        q = vh.queues.get(self.name) if vh is not None else None
        if q is None:
            return "not found"
        await self._open()
        up = self.upstream
        if not await self._upstream_has(lambda probe: probe.declare_queue(up.queue, passive=True)):
            await self.remote.declare_queue(up.queue, durable=q.durable, auto_delete=q.auto_delete,
                                            arguments=dict(q.arguments))
        self.consuming = None
        self.state, self.error, self.timestamp = "running", None, _now()
        self.tick()
        return await self._wait_closed()

    def _wants_messages(self) -> bool:
        vh = self.broker.vhosts.get(self.vhost)
        q = vh.queues.get(self.name) if vh is not None else None
        if q is None or len(q.messages):
            return False
        return any(c.priority >= 0 for c in q.consumers)

    def tick(self) -> None:
        if self.state != "running" or self.switching or self.remote is None:
            return
        run = self._wants_messages()
        if run == (self.consuming is not None):
            return
        self.switching = True

        async def switch():
            up = self.upstream
            try:
                if run:
                    self.consuming = await self.remote.consume(
                        up.queue, self._delivered, prefetch=up.prefetch_count, no_ack=up.ack_mode == "no-ack",
                        arguments={"x-priority": _Long(-1)}, consumer_tag=up.consumer_tag)
                else:
                    tag, self.consuming = self.consuming, None
                    await self.remote.cancel(tag)
            except Exception:  # noqa: BLE001 - the link's closed future says why; it restarts
                pass
            finally:
                self.switching = False
        asyncio.get_running_loop().create_task(switch())

    def _delivered(self, tag, exchange, routing_key, redelivered, header, body) -> None:
        up = self.upstream
        table = {"uri": self.safe_uri, "queue": self.name}

        def update(h):
            been = h.get(ROUTING_HEADER)
            count = 0
            if isinstance(been, list):
                rest = []
                for t in been:
                    if isinstance(t, dict) and all(t.get(k) == table.get(k) for k in ("uri", "virtual_host", "queue")):
                        v = t.get("visit-count")
                        count = v if isinstance(v, int) else 0
                    else:
                        rest.append(t)
                been = rest
            else:
                h["x-original-exchange"] = exchange
                h["x-original-routing-key"] = routing_key
                been = []
            if "CC" in h:
                h["x-original-cc"] = h.pop("CC")
            h[ROUTING_HEADER] = [{**table, "redelivered": bool(redelivered), "visit-count": _Long(count + 1)}] + been
            return h
        self._forward(tag, "", self.name, _rewrite(header, up.trust_user_id, update), body)

    def status(self, node: str) -> dict:
        out = {"node": node, "queue": self.name, "upstream_queue": self.upstream.queue,
               "consumer_tag": self.upstream.consumer_tag, "type": "queue", "vhost": self.vhost,
               "upstream": self.upstream.name, "id": self.id, "status": self.state}
        return _status_tail(self, out)


def _status_tail(link: FederationLink, out: dict) -> dict:
    if link.state == "error":
        out["error"] = link.error
    elif link.state == "running":
        out["local_connection"] = link.local_connection
    out["uri"] = link.safe_uri
    out["timestamp"] = link.timestamp
    return out


def _describe(e: BaseException) -> str:
    if isinstance(e, ConnectionRefusedError):
        return "econnrefused"
    if isinstance(e, (TimeoutError, asyncio.TimeoutError)):
        return "timeout"
    text = str(e)
    if "Connect call failed" in text or "Connection refused" in text:
        return "econnrefused"  # as RabbitMQ's Erlang client says it
    return text or type(e).__name__


class FederationService:
    """The federation links of one broker (see the module docstring)."""

    def __init__(self, broker):
        self.broker = broker
        self.links: dict = {}  # (kind, vhost, name, upstream name) -> FederationLink
        self.suffixes: dict = {}  # (vhost, exchange, upstream) -> the internal exchange's last suffix
        self.loop = None
        self._reconcile_handle = None
        self._tick_handle = None
        self._stopping = False
        self._pending = False
        broker.federation = self

    @property
    def cluster_name(self) -> str:
        from ..broker.broker import NODE
        return self.broker.cluster_name or NODE

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        ups.register(self.broker, self.reconcile_soon)
        self._schedule_reconcile()
        self._schedule_tick()

    def _schedule_reconcile(self) -> None:
        if not self._stopping:
            self._reconcile_handle = self.loop.call_later(RECONCILE_INTERVAL, self._periodic)

    def _periodic(self) -> None:
        self.reconcile()
        self._schedule_reconcile()

    def _schedule_tick(self) -> None:
        if not self._stopping:
            self._tick_handle = self.loop.call_later(TICK_INTERVAL, self._tick)

    def _tick(self) -> None:
        for link in list(self.links.values()):
            link.tick()
        self._schedule_tick()

    def reconcile_soon(self) -> None:
        if self.loop is not None and not self._pending and not self._stopping:
            self._pending = True
            self.loop.call_soon(self._reconcile_now)

    def _reconcile_now(self) -> None:
        self._pending = False
        self.reconcile()

    def wanted(self) -> dict:
        """(kind, vhost, name, upstream name) -> (Upstream, policy name), for every link that should run."""
        out = {}
        broker = self.broker
        for vname, vh in broker.vhosts.items():
            policies = getattr(vh, "policies", None)
            if policies is None or not any(ups.has_federation_keys(p.definition) for p in policies):
                continue
            for ex in vh.exchanges.values():
                if not ex.name or ex.internal:
                    continue
                d = ups.policy_definition(ex)
                if d:
                    for up in ups.upstreams_for(broker, vname, ex.name, d):
                        out[("exchange", vname, ex.name, up.name)] = (up, ex.policy.name)
            for q in vh.queues.values():
                if getattr(q, "exclusive", False) or getattr(q, "owner", None) is not None:
                    continue
                d = ups.policy_definition(q)
                if d:
                    for up in ups.upstreams_for(broker, vname, q.name, d):
                        out[("queue", vname, q.name, up.name)] = (up, q.policy.name)
        return out

    def reconcile(self) -> None:
        if self._stopping:
            return
        wanted = self.wanted()
        for key, link in list(self.links.items()):
            w = wanted.get(key)
            if w is None or w[0] != link.upstream or w[1] != link.policy:
                del self.links[key]
                self.loop.create_task(link.stop())
        for key, (up, policy) in wanted.items():
            if key not in self.links:
                cls = ExchangeLink if key[0] == "exchange" else QueueLink
                self.links[key] = cls(self, key[1], key[2], up, policy)

    def restart(self, vhost: str, link_id: str) -> bool:
        for link in self.links.values():
            if link.vhost == vhost and link.id == link_id:
                link.restart()
                return True
        return False

    def status(self, vhost: str | None = None, node: str = "") -> list:
        return [link.status(node) for key, link in sorted(self.links.items())
                if vhost is None or link.vhost == vhost]

    async def stop(self) -> None:
        self._stopping = True
        for h in (self._reconcile_handle, self._tick_handle):
            if h is not None:
                h.cancel()
        links, self.links = list(self.links.values()), {}
        for link in links:
            link.task.cancel()
        for link in links:
            try:
                await link.task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            await link._close_links()

