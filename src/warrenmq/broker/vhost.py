"""A virtual host: its exchanges, queues and bindings, and the routing between them.

Theory of operation: every topology operation (declare, delete, bind, unbind)
is a method here that validates as RabbitMQ validates and raises
:class:`SoftError`/:class:`HardError` with RabbitMQ's reply codes and texts.
``route`` resolves exchange-to-exchange bindings breadth first (each exchange
visited once, each queue returned once); with no exchange-to-exchange bindings
it is a single lookup in the first exchange's table.

Deleting a queue removes its bindings, which may auto-delete exchanges whose
last binding went, which may cascade through exchange-to-exchange bindings.
"""
from __future__ import annotations

import base64
import secrets

from ..protocol.codec import field_type_name
from ..protocol.errors import SoftError
from ..protocol.spec import ACCESS_REFUSED, NOT_FOUND, PRECONDITION_FAILED, RESOURCE_LOCKED
from ..store.base import NO_DEFINITIONS
from .exchanges import (EXCHANGE_TYPES, KIND_EXCHANGE, DefaultExchange, Exchange, _thaw, args_key,
                        exchange_class)
from . import plugin_exchanges  # noqa: F401 (registers x-consistent-hash and x-delayed-message)
from . import federation_exchange  # noqa: F401 (registers x-federation-upstream)
from .flow import MemoryMonitor
from .policy import Policies
from .stats import NodeTotals, VHostTotals
from .queues import (QUEUE_EQUIVALENCE_ARGS, QUEUE_TYPE_MODULES, QUORUM_EQUIVALENCE_ARGS, Queue, QuorumQueue,
                     check_queue_arguments, queue_type_of)
from .timers import Timers



#: what :meth:`VHost.publish` returns besides a store epoch
ROUTED = 0
UNROUTABLE = -1
REJECTED = -2


def generated_name(prefix: str) -> str:
    """A RabbitMQ-style server-generated name, e.g. ``amq.gen-JzTY20BRgKO-HjmUJj0wLg``:
    16 random bytes in URL-safe base64 without padding."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode()


def fmt_bool(b: bool) -> str:
    return "true" if b else "false"


def _type_class(v) -> type:
    """RabbitMQ's type_class for argument equivalence: every integer width is one class (a bool is not)."""
    if isinstance(v, int) and not isinstance(v, bool):
        return int
    return type(v)


def _fmt_value(v) -> str:
    if isinstance(v, bool):
        return fmt_bool(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    return str(v)


class VHost:
    def __init__(self, name: str, memory: MemoryMonitor | None = None, store=None, defs=NO_DEFINITIONS):
        self.name = name
        self.memory = memory if memory is not None else MemoryMonitor(1 << 62)
        self.store = store  # the message store (persistent messages in durable queues)
        self.defs = defs  # durable definitions (store.base.Definitions): told every durable change
        self.page_store = None  # the transient page store (bodies paged out of memory), with data_dir
        self.page_limit = 0  # bodies a queue keeps in memory before paging (queue_max_in_memory)
        # credit flow (queues/credit.py): a queue with consumers and more ready messages than flow_high
        # throttles its publishers until it is below flow_low (0: off; the broker sets both from config)
        self.flow_high = 0
        self.flow_low = 0
        self.timers = Timers()  # the broker shares its own (with the event loop plugged in)
        self.exchanges: dict[str, Exchange] = {}
        self.queues: dict[str, Queue] = {}
        self.max_queues = -1  # the vhost's max-queues limit (broker.set_vhost_limits); negative: none
        self.stats = VHostTotals()  # what its closed channels and connections counted (stats.py)
        self.totals = NodeTotals()  # what deleted queues and vhosts leave (stats.py): the broker's, shared
        self.recorder = None  # warrenmq.testing: called (exchange, message) on every publish while set
        self.policies = Policies(self)  # policies (policy.py), applied to queues and exchanges
        self.operator_policies = Policies(self, operator=True)  # operator policies, merged in by self.policies
        # metadata (RabbitMQ 3.10's vhost description, tags, default queue type; the broker stores them)
        self.description = ""
        self.tags: list = []
        self.default_queue_type: str | None = None
        default = DefaultExchange(self)
        self.exchanges[""] = default
        for name_, type_ in (("amq.direct", "direct"), ("amq.fanout", "fanout"), ("amq.topic", "topic"),
                             ("amq.headers", "headers"), ("amq.match", "headers")):
            self.exchanges[name_] = EXCHANGE_TYPES[type_](name_, self, durable=True)
        # RabbitMQ's firehose tracer's exchange, present in every vhost (nothing publishes to it here)
        self.exchanges["amq.rabbitmq.trace"] = EXCHANGE_TYPES["topic"]("amq.rabbitmq.trace", self, durable=True,
                                                                      internal=True)

    # -------------------------------------------------------------- messages
    def publish(self, exchange: Exchange, msg, keep=None, record: bool = True, publisher=None) -> int:
        """The one publish path: route ``msg`` from ``exchange``, persist it if it is persistent and a
        durable queue takes it, and enqueue it.  Every protocol, dead lettering, the back door and the
        management API publish through here, and nothing else enqueues.

        Returns :data:`ROUTED`, :data:`UNROUTABLE` (no queue took it: a mandatory publish is returned),
        :data:`REJECTED` (a queue with ``x-overflow: reject-publish`` refused it: its confirm is a nack),
        or, when it was persisted, the store epoch whose sync makes it safe to confirm (a positive int).
        ``keep(queue)``, when given, filters the queues it was routed to (dead lettering drops cycles);
        ``record=False``: a message published before (a delayed message released) is not recorded again.
        ``publisher``: the connection that published it (a channel's ``owner``), which a queue whose
        consumers are behind throttles (``set_flow``, see queues/credit.py)."""
        if self.recorder is not None and record:  # warrenmq.testing is recording publishes (unused: this one check)
            self.recorder(exchange, msg)
        queues = self.route(exchange, msg)
        if keep is not None:
            queues = [q for q in queues if keep(q)]
        exchange.n_publish_in += 1
        if not queues:
            exchange.n_unroutable += 1
            return UNROUTABLE
        if len(queues) > 1:  # (the exchange's publish_out counts each queue: broker/stats.py)
            exchange.n_fanout += len(queues) - 1
        epoch = ROUTED
        if msg.persistent:
            qids = [q.store_id for q in queues if q.store_id]
            if qids:
                store = self.store
                epoch = store.persist(msg, qids)
                if epoch <= store.synced_epoch:  # a store that is durable at once (MemoryStore)
                    epoch = ROUTED
                # its body can wait on disk if every queue holding it keeps it in the store
                msg.pageable = len(qids) == len(queues)
            else:
                msg.pageable = len(queues) == 1
        else:
            msg.pageable = len(queues) == 1
        rejected = False
        for q in queues:
            if q.publish(msg) is False:  # a full queue with x-overflow reject-publish(-dlx)
                rejected = True
            elif len(q.messages) > q.flow_high and publisher is not None and q.consumers:
                q.throttle(publisher)  # its consumers are behind: credit flow (queues/credit.py)
        return REJECTED if rejected else epoch

    def route(self, exchange: Exchange, msg):
        """The queues ``msg`` goes to when published to ``exchange`` (each once)."""
        dests = exchange.route(msg)
        if (not exchange.e2e_bindings and (dests or (exchange.alternate is None and exchange.policy is None))
                and msg.extra_keys is None):
            return dests  # the common case: one lookup, no exchange-to-exchange binding, no AE, no CC/BCC
        return self.route_all(exchange, msg)

    def route_all(self, exchange: Exchange, msg) -> list:
        """Routing in full, as RabbitMQ's ``rabbit_exchange:route``: exchange-to-exchange bindings (each
        exchange visited once), an exchange's alternate exchange when *that exchange* routes the message
        nowhere (so AEs chain, and loops end), and every routing key of a CC/BCC message for the exchange
        types that route by key."""
        keys = msg.extra_keys
        queues: list = []
        seen_q: set = set()
        seen_x = {exchange}
        todo = [exchange]
        exchanges = self.exchanges
        while todo:
            x = todo.pop(0)
            dests = x.route(msg)
            if keys is not None and x.MULTI_KEY:
                dests = list(dests)
                for k in keys:
                    dests.extend(x.route(_KeyView(k, msg)))
            if not dests:
                ae = x.alternate if x.policy is None else x.effective("alternate-exchange")  # arg, else policy
                if ae is not None:
                    ae = exchanges.get(ae)  # a missing AE is no error: the message is unroutable
                    dests = (ae,) if ae is not None else ()
            for d in dests:
                if d.kind == KIND_EXCHANGE:
                    if d not in seen_x:
                        seen_x.add(d)
                        todo.append(d)
                elif d not in seen_q:
                    seen_q.add(d)
                    queues.append(d)
        return queues

    # ------------------------------------------------------------- exchanges
    def not_found_exchange(self, name: str) -> SoftError:
        return SoftError(NOT_FOUND, f"no exchange '{name}' in vhost '{self.name}'")

    def not_found_queue(self, name: str) -> SoftError:
        return SoftError(NOT_FOUND, f"no queue '{name}' in vhost '{self.name}'")

    def get_exchange(self, name: str) -> Exchange:
        ex = self.exchanges.get(name)
        if ex is None:
            raise self.not_found_exchange(name)
        return ex

    def declare_exchange(self, name: str, type_: str, passive=False, durable=False, auto_delete=False,
                         internal=False, arguments=None) -> Exchange:
        if name == "":  # RabbitMQ refuses even a passive declare of the default exchange
            raise SoftError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        if passive:
            ex = self.exchanges.get(name)
            if ex is None:
                raise self.not_found_exchange(name)
            return ex
        if name == "":
            raise SoftError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        cls = exchange_class(type_)  # HardError for a type there is none of
        ex = self.exchanges.get(name)
        if ex is not None:
            self._check_equivalent_exchange(ex, type_, durable, auto_delete, internal, arguments or {})
            return ex
        if name.startswith("amq."):
            raise SoftError(ACCESS_REFUSED, f"exchange name '{name}' contains reserved prefix 'amq.*'")
        ae = arguments.get("alternate-exchange", "") if arguments else ""
        if ae.__class__ is not str:
            raise SoftError(PRECONDITION_FAILED, f"invalid type '{field_type_name(ae)}' for arg 'alternate-exchange'"
                            f" in exchange '{name}' in vhost '{self.name}'")
        validate = getattr(cls, "validate", None)
        if validate is not None:  # the plugin types check their arguments on creation (plugin_exchanges)
            validate(self, name, arguments or {})
        ex = cls(name, self, durable=durable, auto_delete=auto_delete, internal=internal, arguments=arguments)
        self.exchanges[name] = ex
        if durable:
            self.defs.exchange_declared(self.name, ex)
        return ex

    def _check_equivalent_exchange(self, ex, type_, durable, auto_delete, internal, arguments) -> None:
        def fail(arg, received, current):
            raise SoftError(PRECONDITION_FAILED, f"inequivalent arg '{arg}' for exchange '{ex.name}' in vhost "
                            f"'{self.name}': received '{received}' but current is '{current}'")
        if ex.type != type_:
            fail("type", type_, ex.type)
        if ex.durable != durable:
            fail("durable", fmt_bool(durable), fmt_bool(ex.durable))
        if ex.auto_delete != auto_delete:
            fail("auto_delete", fmt_bool(auto_delete), fmt_bool(ex.auto_delete))
        if ex.internal != internal:
            fail("internal", fmt_bool(internal), fmt_bool(ex.internal))
        self._check_equivalent_args("exchange", ex.name, ex.arguments, arguments,
                                    getattr(ex, "EQUIVALENCE_ARGS", ()) + ("alternate-exchange",))

    def _check_equivalent_args(self, kind, name, current, received, keys) -> None:
        for k in keys:
            a, b = received.get(k), current.get(k)
            if k == "x-queue-type" and a in (None, "classic") and b in (None, "classic"):
                continue  # RabbitMQ: a classic queue's type is equivalent to none given
            if a == b and _type_class(a) is _type_class(b):
                continue
            if a is not None and b is not None:  # RabbitMQ prints both values bare then
                raise SoftError(PRECONDITION_FAILED, f"inequivalent arg '{k}' for {kind} '{name}' in vhost "
                                f"'{self.name}': received '{_fmt_value(a)}' but current is '{_fmt_value(b)}'")
            if a is None:
                rec = "none"
            else:
                rec = f"the value '{_fmt_value(a)}' of type '{field_type_name(a)}'"
            cur = "none" if b is None else f"the value '{_fmt_value(b)}' of type '{field_type_name(b)}'"
            raise SoftError(PRECONDITION_FAILED, f"inequivalent arg '{k}' for {kind} '{name}' in vhost "
                            f"'{self.name}': received {rec} but current is {cur}")

    def delete_exchange(self, name: str, if_unused=False) -> None:
        if name == "":
            raise SoftError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        ex = self.exchanges.get(name)
        if ex is None:
            return  # RabbitMQ: deleting a missing exchange succeeds
        if name.startswith("amq."):
            raise SoftError(ACCESS_REFUSED, f"deletion of system exchange '{name}' in vhost '{self.name}' not allowed")
        # "in use" means: the source of a binding (being only a destination does not count)
        if if_unused and ex.bindings:
            raise SoftError(PRECONDITION_FAILED, f"exchange '{name}' in vhost '{self.name}' in use")
        self._remove_exchange(ex)

    def _remove_exchange(self, ex) -> None:
        if self.exchanges.get(ex.name) is not ex:
            return
        del self.exchanges[ex.name]
        if ex.durable:
            self.defs.exchange_deleted(self.name, ex.name)
        # bindings where it is the source
        for dest, key, ak in list(ex.bindings):
            if dest.kind != KIND_EXCHANGE:
                dest.bindings.discard((ex, key, ak))
        ex.bindings.clear()
        # bindings where it is the destination
        for src in list(self.exchanges.values()):
            if src.e2e_bindings and src.unbind_destination(ex):
                self._maybe_auto_delete(src)

    def _maybe_auto_delete(self, ex) -> None:
        if ex.auto_delete and not ex.bindings and self.exchanges.get(ex.name) is ex:
            self._remove_exchange(ex)

    # ---------------------------------------------------------------- queues
    def declare_queue(self, name: str, owner, passive=False, durable=False, exclusive=False,
                      auto_delete=False, arguments=None, default_type=True) -> tuple[Queue, bool]:
        """Return (queue, created).  ``default_type=False``: the vhost's default queue type is not applied
        (RabbitMQ applies it to declares over a channel, not to queues a definitions import creates)."""
        if passive:
            q = self.queues.get(name)
            if q is None:
                raise self.not_found_queue(name)
            self.check_exclusive(q, owner)
            if q.expires:
                q.reset_expires()
            return q, False
        arguments = arguments or {}
        dqt = self.default_queue_type
        if dqt is not None and dqt != "classic" and "x-queue-type" not in arguments and durable \
                and not exclusive and not auto_delete and default_type:
            # RabbitMQ's augment_declare_args: the vhost's default queue type, where the type allows it
            arguments = {**arguments, "x-queue-type": dqt}
        if name == "":
            qtype = queue_type_of(arguments)
            if qtype != "classic":
                raise SoftError(PRECONDITION_FAILED, "Cannot declare a server-named queue for type "
                                f"{QUEUE_TYPE_MODULES[qtype]}")
            name = generated_name("amq.gen-")
        elif name.startswith("amq."):
            raise SoftError(ACCESS_REFUSED, f"queue name '{name}' contains reserved prefix 'amq.*'")
        q = self.queues.get(name)
        if q is not None:
            self.check_exclusive(q, owner)
            if q.durable != durable:
                self._inequivalent_queue(q, "durable", fmt_bool(durable), fmt_bool(q.durable))
            if q.auto_delete != auto_delete:
                self._inequivalent_queue(q, "auto_delete", fmt_bool(auto_delete), fmt_bool(q.auto_delete))
            if q.exclusive != exclusive:
                raise self._locked(q)
            self._check_equivalent_args("queue", q.name, q.arguments, arguments,
                                        QUORUM_EQUIVALENCE_ARGS if q.queue_type == "quorum" else QUEUE_EQUIVALENCE_ARGS)
            if q.expires:
                q.reset_expires()
            self.stats.queue_declared += 1
            return q, False
        dlx = arguments.get("x-dead-letter-exchange", "")
        if dlx.__class__ is not str:  # checked by RabbitMQ's channel before the other arguments
            raise SoftError(PRECONDITION_FAILED, f"invalid type '{field_type_name(dlx)}' for arg "
                            f"'x-dead-letter-exchange' in queue '{name}' in vhost '{self.name}'")
        qtype = check_queue_arguments(name, self.name, arguments)
        cls = Queue
        if qtype == "quorum":
            # RabbitMQ: exclusive queues are never durable, and the checks run in this order
            for bad, prop in ((auto_delete, "auto-delete"), (exclusive, "exclusive-owner"),
                              (not durable, "non-durable")):
                if bad:
                    raise SoftError(PRECONDITION_FAILED, f"invalid property '{prop}' for queue '{name}' in vhost "
                                    f"'{self.name}'")
            cls = QuorumQueue
        if self.max_queues >= 0 and len(self.queues) >= self.max_queues:
            raise SoftError(PRECONDITION_FAILED, f"cannot declare queue '{name}': queue limit in vhost "
                            f"'{self.name}' ({self.max_queues}) is reached")
        q = cls(name, self, durable=durable, exclusive_owner=owner if exclusive else None,
                auto_delete=auto_delete, arguments=arguments)
        self.queues[name] = q
        if durable and not exclusive:
            q.store_id = self.defs.queue_declared(self.name, q)
        stats = self.stats
        stats.queue_declared += 1
        stats.queue_created += 1
        return q, True

    def _inequivalent_queue(self, q, arg, received, current):
        raise SoftError(PRECONDITION_FAILED, f"inequivalent arg '{arg}' for queue '{q.name}' in vhost "
                        f"'{self.name}': received '{received}' but current is '{current}'")

    def check_exclusive(self, q: Queue, owner) -> None:
        if q.exclusive_owner is not None and q.exclusive_owner is not owner:
            raise self._locked(q)

    def _locked(self, q: Queue) -> SoftError:
        return SoftError(RESOURCE_LOCKED, f"cannot obtain exclusive access to locked queue '{q.name}' in vhost "
                            f"'{self.name}'. It could be originally declared on another connection or the "
                            "exclusive property value does not match that of the original declaration.")

    def get_queue(self, name: str, owner) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise self.not_found_queue(name)
        self.check_exclusive(q, owner)
        return q

    def delete_queue(self, q: Queue) -> int:
        """Delete ``q``: cancel its consumers, drop its bindings; return its ready message count."""
        if q.deleted:
            return 0
        q.deleted = True
        self.totals.fold_queue(q)  # node-wide sums keep its counts (stats.py)
        q.cancel_expires()
        if self.queues.get(q.name) is q:
            del self.queues[q.name]
            self.stats.queue_deleted += 1
        n = q.purge()
        if q.store_id:
            self.defs.queue_deleted(self.name, q.name)
            self.store.drop_queue(q.store_id)
        for c in list(q.consumers):
            q.remove_consumer(c)
            c.channel.consumer_cancelled_by_broker(c)
        for ex, key, ak in list(q.bindings):
            ex.bindings.discard((q, key, ak))
            ex._remove(q, key, dict(_thaw(ak)))
            self._maybe_auto_delete(ex)
        q.bindings.clear()
        return n

    # -------------------------------------------------------------- bindings
    def bind_queue(self, q: Queue, exchange_name: str, key: str, arguments) -> None:
        if exchange_name == "":
            raise SoftError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        ex = self.get_exchange(exchange_name)
        if ex.bind(q, key, arguments):
            q.bindings.add((ex, key, args_key(arguments)))
            if q.store_id and ex.durable:
                self.defs.binding_added(self.name, ex.name, q.name, "q", key, arguments)

    def unbind_queue(self, queue_name: str, owner, exchange_name: str, key: str, arguments) -> None:
        """Remove a binding; as in RabbitMQ a missing queue, exchange or binding is not an error."""
        if exchange_name == "":
            raise SoftError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        q = self.queues.get(queue_name)
        ex = self.exchanges.get(exchange_name)
        if q is None or ex is None:
            return
        # RabbitMQ checks exclusive access only when the binding exists (unbinding nothing always succeeds)
        if q.exclusive_owner is not None and (q, key, args_key(arguments)) in ex.bindings:
            self.check_exclusive(q, owner)
        if ex.unbind(q, key, arguments):
            q.bindings.discard((ex, key, args_key(arguments)))
            if q.store_id and ex.durable:
                self.defs.binding_removed(self.name, ex.name, q.name, "q", key, arguments)
            self._maybe_auto_delete(ex)

    def bind_exchange(self, destination: str, source: str, key: str, arguments) -> None:
        if destination == "" or source == "":
            raise SoftError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        src = self.get_exchange(source)
        dest = self.get_exchange(destination)
        if src.bind(dest, key, arguments) and src.durable and dest.durable:
            self.defs.binding_added(self.name, src.name, dest.name, "e", key, arguments)

    def unbind_exchange(self, destination: str, source: str, key: str, arguments) -> None:
        if destination == "" or source == "":
            raise SoftError(ACCESS_REFUSED, "operation not permitted on the default exchange")
        src = self.exchanges.get(source)
        dest = self.exchanges.get(destination)
        if src is None or dest is None:
            return
        if src.unbind(dest, key, arguments):
            if src.durable and dest.durable:
                self.defs.binding_removed(self.name, src.name, dest.name, "e", key, arguments)
            self._maybe_auto_delete(src)


class _KeyView:
    """A message seen through one of its extra routing keys (CC/BCC), for ``Exchange.route``."""
    __slots__ = ("routing_key", "_msg")

    def __init__(self, routing_key: str, msg):
        self.routing_key = routing_key
        self._msg = msg

    def __getattr__(self, name):
        return getattr(self._msg, name)
