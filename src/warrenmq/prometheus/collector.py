"""The metrics: RabbitMQ 3.10's families, read from the domain at scrape time.

Theory of operation: RabbitMQ's prometheus plugin reads its core metrics
tables in groups (``queue_coarse_metrics``, ``channel_metrics``, ...: the
names ``/metrics/detailed?family=`` takes), each a list of metrics that share
one kind of row.  :data:`GROUPS` is the same table for WarrenMQ: per group,
the metrics WarrenMQ has a meaning for (name without the ``rabbitmq_`` prefix,
type, RabbitMQ's help text) and a *reader*, a function that yields one
``(labels, values)`` row per object (a queue, a channel, a connection) or a
single unlabelled row for the node.  :class:`Collector` turns rows into
prometheus_client metric families in one of RabbitMQ's three shapes:

* aggregated (``/metrics``): one unlabelled sample per metric, the sum over
  the objects (an average for the consumer utilisation), plus the totals
  (``rabbitmq_connections``, ``_channels``, ``_consumers``, ``_queues``);
* per object (``/metrics/per-object``): a sample per row, with RabbitMQ's
  labels (``vhost``/``queue``, ``channel``; connections carry their name in
  a label called ``channel``, as RabbitMQ 3.10 does), plus the totals, but
  without the alarms and ``process_start_time_seconds`` (RabbitMQ's other
  registry has them, not this one);
* detailed (``/metrics/detailed``): only the groups asked for, named
  ``rabbitmq_detailed_*``, queue groups filtered by vhost, and the cluster
  groups (``vhost_status``, ``exchange_bindings``, ``exchange_names``)
  named ``rabbitmq_cluster_*``.

Every variant ends with ``rabbitmq_build_info`` and ``rabbitmq_identity_info``
(the Grafana dashboards join every panel on the latter).  Node-wide groups
(churn, node facts, the ``rabbitmq_global_*`` counters) are read from the
vhosts' totals, ``broker.totals`` and the objects' counters
(:mod:`warrenmq.broker.stats`).
Readers run on the broker's event loop, so they see a consistent domain and
take no lock; nothing is cached between scrapes.

Objects are named as the management API names them: a connection
``"peer:port -> host:port"``, a channel ``"<connection> (<number>)"``
(RabbitMQ labels them with Erlang process ids, which WarrenMQ does not have).
"""
from __future__ import annotations

import os
import platform
import secrets
import shutil
import time
import weakref

from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

from ..broker.alarms import Alarm
from ..broker.broker import RABBITMQ_COMPAT_VERSION
from ..broker.stats import CHANNEL_COUNTERS, QUEUE_COUNTERS, channel_counts, queue_counts

#: every metric WarrenMQ exports: name -> (type, help), as RabbitMQ 3.10.8 (recorded in tests/prometheus)
METRICS: dict = {}

_STARTED = time.time()

#: RabbitMQ's queue type modules, the ``queue_type`` label of the global counters
QUEUE_TYPES = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue", "stream": "rabbit_stream_queue"}
PROTOCOL = "amqp091"

_C = {k: i for i, k in enumerate(CHANNEL_COUNTERS)}
_Q = {k: i for i, k in enumerate(QUEUE_COUNTERS)}


def _m(name: str, typ: str, help_: str) -> tuple:
    METRICS["rabbitmq_" + name] = (typ, help_)
    return (name, typ, help_)


# ---------------------------------------------------------------------------------------------- readers
class Scrape:
    """What one scrape reads once and several groups use: the live sessions, channels and queues."""

    def __init__(self, app, vhosts=None):
        self.app = app
        self.broker = broker = app.broker
        self.sessions = [s for s in broker.sessions if not getattr(s, "closed", False)
                         and getattr(s, "user", None) is not None and hasattr(s, "channels")]
        self.vhosts = [vh for name, vh in broker.vhosts.items() if vhosts is None or name in vhosts]
        mgmt = app.management
        self.util = mgmt.stats.util if mgmt is not None and mgmt.stats is not None else None

    def channels(self):
        for s in self.sessions:
            yield from s.channels.values()

    def queues(self):
        for vh in self.vhosts:
            yield from vh.queues.values()


def _names():
    from ..management.views import connection_name
    return connection_name


def read_churn(sc: Scrape):
    """The vhosts' churn (what the management API's churn_rates are made of) and the deleted vhosts'."""
    conns: dict = {}
    chans: dict = {}
    for s in sc.sessions:
        vh = s.vhost
        conns[vh] = conns.get(vh, 0) + 1
        chans[vh] = chans.get(vh, 0) + len(s.channels)
    churn = list(sc.broker.totals.churn)
    for vh in sc.broker.vhosts.values():
        for i, n in enumerate(vh.stats.churn(conns.get(vh, 0), chans.get(vh, 0))):
            churn[i] += n
    yield None, tuple(churn)


def _open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less the listing's own descriptor
    except OSError:
        return 0


def _max_fds() -> int:
    try:
        import resource
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        return soft if soft != resource.RLIM_INFINITY else 0
    except (ImportError, OSError, ValueError):
        return 0


def _disk_free(broker) -> int:
    path = broker.config.data_dir or os.getcwd()
    while path and not os.path.exists(path):  # not created yet: the disk it will be on
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return 0


def _tcp_sockets(app) -> int:
    """Client connections of every protocol listener the app runs (AMQP, AMQPS, and others such as STOMP)."""
    servers = (app.server, app.tls_server, getattr(app, "stomp", None), getattr(app, "mqtt", None))
    return sum(len(getattr(s, "connections", ())) for s in servers if s is not None)


def read_node_coarse(sc: Scrape):
    from ..management.views import rss_bytes
    yield None, (_open_fds(), _tcp_sockets(sc.app), rss_bytes(), _disk_free(sc.broker))


def read_node(sc: Scrape):
    max_fds = _max_fds()
    yield None, (max_fds, max_fds, sc.broker.memory.watermark, sc.broker.config.disk_free_limit)


def read_alarms(sc: Scrape):
    alarms = sc.broker.alarms
    yield None, (0, int(Alarm.DISK_FREE in alarms), int(Alarm.MEMORY in alarms))


def read_auth_attempts(sc: Scrape):
    """Logins per protocol (``broker.auth_attempts``: attempts and failures, as ``/api/auth/attempts``)."""
    for protocol, (total, failed) in sorted(sc.broker.auth_attempts.items()):
        yield (("protocol", protocol),), (total, total - failed, failed)


def read_queue_coarse(sc: Scrape):
    for q in sc.queues():
        ready = len(q.messages)
        unacked = q.unacked
        yield (("vhost", q.vhost.name), ("queue", q.name)), (ready, unacked, ready + unacked)


def read_queue(sc: Scrape):
    from ..management.stats import _ENTRY_SIZE, _QUEUE_BASE
    util = sc.util
    for q in sc.queues():
        n = len(q.consumers)
        if n:
            u = util.get(q, 1.0) if util is not None else 1.0
        else:
            u = 0
        yield (("vhost", q.vhost.name), ("queue", q.name)), \
            (n, u, u, _QUEUE_BASE + (len(q.messages) + q.unacked) * _ENTRY_SIZE)


def read_queue_published(sc: Scrape):
    for q in sc.queues():
        yield (("queue_vhost", q.vhost.name), ("queue", q.name)), (q.stats_published,)


def _channel_label(ch):
    return (("channel", f"{_names()(ch.owner)} ({ch.number})"),)


def read_channel(sc: Scrape):
    for ch in sc.channels():
        confirms = ch.confirms
        tx = ch.tx
        uncommitted = acks_uncommitted = 0
        if tx is not None:
            for op in tx.ops:
                if op[0] == "publish":
                    uncommitted += 1
                else:
                    acks_uncommitted += 1
        yield _channel_label(ch), (len(ch.consumers), len(ch.unacked),
                                   confirms.seq - confirms.acked if confirms is not None else 0,
                                   uncommitted, acks_uncommitted, ch.prefetch_count, ch.global_prefetch)


def read_channel_exchange(sc: Scrape):
    for ch in sc.channels():
        c = channel_counts(ch)
        yield _channel_label(ch), (c[_C["publish"]], c[_C["confirm"]], c[_C["return_unroutable"]],
                                   c[_C["drop_unroutable"]])


def read_channel_queue(sc: Scrape):
    for ch in sc.channels():
        c = channel_counts(ch)
        yield _channel_label(ch), (c[_C["get"]], c[_C["get_no_ack"]], c[_C["deliver"]], c[_C["deliver_no_ack"]],
                                   c[_C["redeliver"]], c[_C["ack"]], c[_C["get_empty"]])


def read_connection_coarse(sc: Scrape):
    name = _names()
    for s in sc.sessions:
        yield (("channel", name(s)),), (s.recv_oct, s.send_oct)


def read_connection(sc: Scrape):
    name = _names()
    for s in sc.sessions:
        yield (("channel", name(s)),), (s.recv_cnt, s.send_cnt, len(s.channels))


def read_vhost_status(sc: Scrape):
    for vh in sc.vhosts:
        yield (("vhost", vh.name),), (1,)


def _exchanges(sc: Scrape):
    for vh in sc.vhosts:
        for ex in vh.exchanges.values():
            if ex.name and not ex.internal:
                yield vh, ex


def read_exchange_bindings(sc: Scrape):
    for vh, ex in _exchanges(sc):
        yield (("vhost", vh.name), ("exchange", ex.name), ("type", ex.type)), (len(ex.bindings),)


def read_exchange_names(sc: Scrape):
    for vh, ex in _exchanges(sc):
        yield (("vhost", vh.name), ("exchange", ex.name), ("type", ex.type)), (1,)


class Group:
    """One of RabbitMQ's metric groups: its metrics and the reader of its rows."""
    __slots__ = ("name", "metrics", "read", "per_object", "average")

    def __init__(self, name: str, metrics: list, read, per_object: bool = True, average=()):
        self.name = name
        self.metrics = metrics
        self.read = read
        self.per_object = per_object  # rows are objects, summed when aggregated (False: node rows, as they are)
        self.average = average  # metrics aggregated as the mean over the rows instead of the sum


#: the groups of RabbitMQ's ``METRICS_RAW``, in its order, with the metrics WarrenMQ has
GROUPS = [
    Group("connection_churn_metrics", [
        _m("connections_opened_total", "counter", "Total number of connections opened"),
        _m("connections_closed_total", "counter", "Total number of connections closed or terminated"),
        _m("channels_opened_total", "counter", "Total number of channels opened"),
        _m("channels_closed_total", "counter", "Total number of channels closed"),
        _m("queues_declared_total", "counter", "Total number of queues declared"),
        _m("queues_created_total", "counter", "Total number of queues created"),
        _m("queues_deleted_total", "counter", "Total number of queues deleted"),
    ], read_churn, per_object=False),
    Group("node_coarse_metrics", [
        _m("process_open_fds", "gauge", "Open file descriptors"),
        _m("process_open_tcp_sockets", "gauge", "Open TCP sockets"),
        _m("process_resident_memory_bytes", "gauge", "Memory used in bytes"),
        _m("disk_space_available_bytes", "gauge", "Disk space available in bytes"),
    ], read_node_coarse, per_object=False),
    Group("node_metrics", [
        _m("process_max_fds", "gauge", "Open file descriptors limit"),
        _m("process_max_tcp_sockets", "gauge", "Open TCP sockets limit"),
        _m("resident_memory_limit_bytes", "gauge", "Memory high watermark in bytes"),
        _m("disk_space_available_limit_bytes", "gauge", "Free disk space low watermark in bytes"),
    ], read_node, per_object=False),
    Group("auth_attempt_metrics", [
        _m("auth_attempts_total", "counter", "Total number of authorization attempts"),
        _m("auth_attempts_succeeded_total", "counter", "Total number of successful authentication attempts"),
        _m("auth_attempts_failed_total", "counter", "Total number of failed authentication attempts"),
    ], read_auth_attempts, per_object=False),
    Group("queue_coarse_metrics", [
        _m("queue_messages_ready", "gauge", "Messages ready to be delivered to consumers"),
        _m("queue_messages_unacked", "gauge", "Messages delivered to consumers but not yet acknowledged"),
        _m("queue_messages", "gauge", "Sum of ready and unacknowledged messages - total queue depth"),
    ], read_queue_coarse),
    Group("queue_metrics", [
        _m("queue_consumers", "gauge", "Consumers on a queue"),
        _m("queue_consumer_capacity", "gauge", "Consumer capacity"),
        _m("queue_consumer_utilisation", "gauge", "Same as consumer capacity"),
        _m("queue_process_memory_bytes", "gauge", "Memory in bytes used by the Erlang queue process"),
    ], read_queue, average=("queue_consumer_capacity", "queue_consumer_utilisation")),
    Group("channel_metrics", [
        _m("channel_consumers", "gauge", "Consumers on a channel"),
        _m("channel_messages_unacked", "gauge", "Delivered but not yet acknowledged messages"),
        _m("channel_messages_unconfirmed", "gauge", "Published but not yet confirmed messages"),
        _m("channel_messages_uncommitted", "gauge", "Messages received in a transaction but not yet committed"),
        _m("channel_acks_uncommitted", "gauge", "Message acknowledgements in a transaction not yet committed"),
        _m("consumer_prefetch", "gauge", "Limit of unacknowledged messages for each consumer"),
        _m("channel_prefetch", "gauge", "Total limit of unacknowledged messages for all consumers on a channel"),
    ], read_channel),
    Group("channel_exchange_metrics", [
        _m("channel_messages_published_total", "counter",
           "Total number of messages published into an exchange on a channel"),
        _m("channel_messages_confirmed_total", "counter",
           "Total number of messages published into an exchange and confirmed on the channel"),
        _m("channel_messages_unroutable_returned_total", "counter", "Total number of messages published as "
           "mandatory into an exchange and returned to the publisher as unroutable"),
        _m("channel_messages_unroutable_dropped_total", "counter", "Total number of messages published as "
           "non-mandatory into an exchange and dropped as unroutable"),
    ], read_channel_exchange),
    Group("channel_queue_metrics", [
        _m("channel_get_ack_total", "counter",
           "Total number of messages fetched with basic.get in manual acknowledgement mode"),
        _m("channel_get_total", "counter",
           "Total number of messages fetched with basic.get in automatic acknowledgement mode"),
        _m("channel_messages_delivered_ack_total", "counter",
           "Total number of messages delivered to consumers in manual acknowledgement mode"),
        _m("channel_messages_delivered_total", "counter",
           "Total number of messages delivered to consumers in automatic acknowledgement mode"),
        _m("channel_messages_redelivered_total", "counter", "Total number of messages redelivered to consumers"),
        _m("channel_messages_acked_total", "counter", "Total number of messages acknowledged by consumers"),
        _m("channel_get_empty_total", "counter", "Total number of times basic.get operations fetched no message"),
    ], read_channel_queue),
    Group("connection_coarse_metrics", [
        _m("connection_incoming_bytes_total", "counter", "Total number of bytes received on a connection"),
        _m("connection_outgoing_bytes_total", "counter", "Total number of bytes sent on a connection"),
    ], read_connection_coarse),
    Group("connection_metrics", [
        _m("connection_incoming_packets_total", "counter", "Total number of packets received on a connection"),
        _m("connection_outgoing_packets_total", "counter", "Total number of packets sent on a connection"),
        _m("connection_channels", "gauge", "Channels on a connection"),
    ], read_connection),
    Group("channel_queue_exchange_metrics", [
        _m("queue_messages_published_total", "counter", "Total number of messages published to queues"),
    ], read_queue_published),
]

#: RabbitMQ's ``METRICS_CLUSTER``: only in ``/metrics/detailed``, named ``rabbitmq_cluster_*``
CLUSTER_GROUPS = [
    Group("vhost_status", [("vhost_status", "gauge", "Whether a given vhost is running")], read_vhost_status),
    Group("exchange_bindings", [("exchange_bindings", "gauge",
                                 "Number of bindings for an exchange. This value is cluster-wide.")],
          read_exchange_bindings),
    Group("exchange_names", [("exchange_name", "gauge", "Enumerates exchanges without any additional info. This "
                              "value is cluster-wide. A cheaper alternative to `exchange_bindings`")],
          read_exchange_names),
]

#: the groups whose rows are queues: the ones ``/metrics/detailed``'s ``vhost`` filter applies to
QUEUE_GROUPS = ("queue_coarse_metrics", "queue_metrics", "queue_consumer_count")

# the groups' metrics not in a group of RabbitMQ's table: node-wide, in every variant but detailed
_TOTALS = [
    _m("connections", "gauge", "Connections currently open"),
    _m("channels", "gauge", "Channels currently open"),
    _m("consumers", "gauge", "Consumers currently connected"),
    _m("queues", "gauge", "Queues available"),
]
_ALARMS = [
    _m("alarms_file_descriptor_limit", "untyped", "is 1 if file descriptor limit alarm is in effect"),
    _m("alarms_free_disk_space_watermark", "untyped", "is 1 if free disk space watermark alarm is in effect"),
    _m("alarms_memory_used_watermark", "untyped", "is 1 if VM memory watermark alarm is in effect"),
]
_GLOBAL_BY_TYPE = [  # (metric, help, how it is read from a queue's counts)
    ("messages_acknowledged_total", "Total number of messages acknowledged by consumers", ("ack",)),
    ("messages_delivered_consume_auto_ack_total", "Total number of messages delivered to consumers using "
     "basic.consume with automatic acknowledgment", ("deliver_no_ack",)),
    ("messages_delivered_consume_manual_ack_total", "Total number of messages delivered to consumers using "
     "basic.consume with manual acknowledgment", ("deliver",)),
    ("messages_delivered_get_auto_ack_total", "Total number of messages delivered to consumers using basic.get "
     "with automatic acknowledgment", ("get_no_ack",)),
    ("messages_delivered_get_manual_ack_total", "Total number of messages delivered to consumers using basic.get "
     "with manual acknowledgment", ("get",)),
    ("messages_delivered_total", "Total number of messages delivered to consumers",
     ("deliver", "deliver_no_ack", "get", "get_no_ack")),
    ("messages_get_empty_total", "Total number of times basic.get operations fetched no message", ("get_empty",)),
    ("messages_redelivered_total", "Total number of messages redelivered to consumers", ("redeliver",)),
]
for _name, _help, _ in _GLOBAL_BY_TYPE:
    _m("global_" + _name, "counter", _help)
_GLOBAL = [
    _m("global_consumers", "gauge", "Current number of consumers"),
    _m("global_messages_confirmed_total", "counter", "Total number of messages confirmed to publishers"),
    _m("global_messages_received_confirm_total", "counter",
       "Total number of messages received from publishers expecting confirmations"),
    _m("global_messages_received_total", "counter", "Total number of messages received from publishers"),
    _m("global_messages_routed_total", "counter", "Total number of messages routed to queues or streams"),
    _m("global_messages_unroutable_dropped_total", "counter", "Total number of messages published as "
       "non-mandatory into an exchange and dropped as unroutable"),
    _m("global_messages_unroutable_returned_total", "counter", "Total number of messages published as "
       "mandatory into an exchange and returned to the publisher as unroutable"),
    _m("global_publishers", "gauge", "Current number of publishers"),
]
_BUILD = _m("build_info", "untyped", "RabbitMQ & Erlang/OTP version info")
_IDENTITY = _m("identity_info", "untyped", "RabbitMQ node & cluster identity info")
METRICS["process_start_time_seconds"] = ("gauge", "Start time of the process since unix epoch in seconds.")

#: every group ``/metrics/detailed?family=`` knows, by name
FAMILIES = {g.name: g for g in GROUPS + CLUSTER_GROUPS}
FAMILIES["queue_consumer_count"] = Group("queue_consumer_count", [FAMILIES["queue_metrics"].metrics[0]],
                                         lambda sc: ((labels, values[:1]) for labels, values in read_queue(sc)))


# ---------------------------------------------------------------------------------------------- families
def _family(full: str, typ: str, help_: str) -> Metric:
    """A family named ``full`` as it appears in the text (counters keep their ``_total``)."""
    name = full[:-6] if typ == "counter" and full.endswith("_total") else full
    return Metric(name, help_, typ)


def _add(fam: Metric, full: str, labels: dict, value) -> None:
    fam.samples.append(Sample(full, labels, value, None, None, None))


class Collector:
    """``Collector(app, mode, families=None, vhosts=None)``; ``mode`` is ``"aggregated"``, ``"per-object"`` or
    ``"detailed"`` (with the group names asked for and an optional vhost filter).  prometheus_client's
    ``generate_latest(collector)`` renders it."""

    def __init__(self, app, mode: str = "aggregated", families=None, vhosts=None):
        self.app = app
        self.mode = mode
        self.families = families or []
        self.vhosts = vhosts

    def collect(self):
        app = self.app
        sc = Scrape(app)
        if self.mode == "detailed":
            wanted = [FAMILIES[f] for f in self.families if f in FAMILIES]
            if any(g.name == "queue_metrics" for g in wanted):  # RabbitMQ: queue_consumer_count is a subset
                wanted = [g for g in wanted if g.name != "queue_consumer_count"]
            cluster = [g for g in wanted if g in CLUSTER_GROUPS]
            raw = [g for g in wanted if g not in CLUSTER_GROUPS]
            filtered = Scrape(app, self.vhosts) if self.vhosts is not None else sc
            for g in raw:
                yield from self._group(g, filtered if g.name in QUEUE_GROUPS else sc, "rabbitmq_detailed_", True)
            for g in cluster:
                yield from self._group(g, sc, "rabbitmq_cluster_", True)
            yield from self._identity()
            return
        per_object = self.mode == "per-object"
        if not per_object:  # RabbitMQ's per-object registry has neither the alarms nor the process start time
            yield from self._node(sc)
        for g in GROUPS:
            yield from self._group(g, sc, "rabbitmq_", per_object)
        yield from self._totals(sc)
        yield from self._identity()
        yield from self._global(sc)

    # --------------------------------------------------------------------------------------- groups
    def _group(self, g: Group, sc: Scrape, prefix: str, per_object: bool):
        fams = []
        for name, typ, help_ in g.metrics:
            full = prefix + name
            fams.append((_family(full, typ, help_), full))
        if per_object or not g.per_object:
            for labels, values in g.read(sc):
                labels = dict(labels) if labels else {}
                for (fam, full), v in zip(fams, values):
                    _add(fam, full, labels, v)
        else:  # aggregated: one unlabelled sample per metric
            sums = [0] * len(fams)
            n = 0
            for _, values in g.read(sc):
                n += 1
                for i, v in enumerate(values):
                    sums[i] += v
            for i, ((fam, full), (name, _, _)) in enumerate(zip(fams, g.metrics)):
                _add(fam, full, {}, (sums[i] / n if n else 0) if name in g.average else sums[i])
        for fam, _ in fams:
            yield fam

    def _node(self, sc: Scrape):
        fam = _family("process_start_time_seconds", *METRICS["process_start_time_seconds"])
        _add(fam, "process_start_time_seconds", {}, int(_STARTED))
        yield fam
        for (name, typ, help_), v in zip(_ALARMS, next(read_alarms(sc))[1]):
            fam = _family("rabbitmq_" + name, typ, help_)
            _add(fam, "rabbitmq_" + name, {}, v)
            yield fam

    def _totals(self, sc: Scrape):
        queues = consumers = 0
        for vh in sc.vhosts:
            queues += len(vh.queues)
            for q in vh.queues.values():
                consumers += len(q.consumers)
        values = (len(sc.sessions), sum(len(s.channels) for s in sc.sessions), consumers, queues)
        for (name, typ, help_), v in zip(_TOTALS, values):
            fam = _family("rabbitmq_" + name, typ, help_)
            _add(fam, "rabbitmq_" + name, {}, v)
            yield fam

    def _identity(self):
        broker = self.app.broker
        from .. import __version__
        fam = _family("rabbitmq_build_info", *METRICS["rabbitmq_build_info"])
        _add(fam, "rabbitmq_build_info", {
            "rabbitmq_version": RABBITMQ_COMPAT_VERSION, "prometheus_plugin_version": RABBITMQ_COMPAT_VERSION,
            "prometheus_client_version": _client_version(), "erlang_version": "",
            "warrenmq_version": __version__, "python_version": platform.python_version()}, 1)
        yield fam
        node = node_name()
        fam = _family("rabbitmq_identity_info", *METRICS["rabbitmq_identity_info"])
        _add(fam, "rabbitmq_identity_info", {
            "rabbitmq_node": node, "rabbitmq_cluster": broker.cluster_name or node,
            "rabbitmq_cluster_permanent_id": cluster_permanent_id(broker)}, 1)
        yield fam

    def _global(self, sc: Scrape):
        broker = sc.broker
        totals = broker.totals
        ch_sum = list(totals.channels)  # channels of deleted vhosts, then closed ones, then open ones
        for vh in broker.vhosts.values():
            for i, n in enumerate(vh.stats.channels):
                ch_sum[i] += n
        received_confirm = totals.received_confirm
        publishers = 0
        for ch in sc.channels():
            for i, n in enumerate(channel_counts(ch)):
                ch_sum[i] += n
            if ch.n_publish:
                publishers += 1
            if ch.confirms is not None:
                received_confirm += ch.confirms.seq
        by_type = {t: list(c) for t, c in totals.queues.items()}  # deleted queues, then live ones
        consumers = 0
        for vh in broker.vhosts.values():
            for q in vh.queues.values():
                consumers += len(q.consumers)
                acc = by_type.get(q.queue_type)
                if acc is None:
                    acc = by_type[q.queue_type] = [0] * len(QUEUE_COUNTERS)
                for i, n in enumerate(queue_counts(q)):
                    acc[i] += n
        proto = {"protocol": PROTOCOL}
        received = ch_sum[_C["publish"]]
        unroutable = ch_sum[_C["return_unroutable"]] + ch_sum[_C["drop_unroutable"]]
        values = {
            "global_consumers": consumers,
            "global_messages_confirmed_total": ch_sum[_C["confirm"]],
            "global_messages_received_confirm_total": received_confirm,
            "global_messages_received_total": received,
            "global_messages_routed_total": received - unroutable,
            "global_messages_unroutable_dropped_total": ch_sum[_C["drop_unroutable"]],
            "global_messages_unroutable_returned_total": ch_sum[_C["return_unroutable"]],
            "global_publishers": publishers,
        }
        out = {}
        for name, typ, help_ in _GLOBAL:
            full = "rabbitmq_" + name
            fam = out[name] = _family(full, typ, help_)
            _add(fam, full, proto, values[name])
        for name, help_, keys in _GLOBAL_BY_TYPE:
            full = "rabbitmq_global_" + name
            fam = out["global_" + name] = _family(full, "counter", help_)
            idx = [_Q[k] for k in keys]
            for qtype, label in QUEUE_TYPES.items():
                counts = by_type.get(qtype)
                v = sum(counts[i] for i in idx) if counts is not None else 0
                _add(fam, full, {"protocol": PROTOCOL, "queue_type": label}, v)
        for name in sorted(out):  # RabbitMQ emits them in name order
            yield out[name]


def _client_version() -> str:
    try:
        from importlib.metadata import version
        return version("prometheus_client")
    except Exception:  # pragma: no cover - not installed as a distribution
        return ""


def node_name() -> str:
    from ..management.views import node_name as name
    return name()


_PERMANENT_IDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def cluster_permanent_id(broker) -> str:
    """RabbitMQ's ``internal_cluster_id`` global parameter when the broker has one (e.g. imported with
    RabbitMQ's definitions), else an id made once per broker object (not kept across restarts)."""
    value = broker.global_parameters.get("internal_cluster_id")
    if isinstance(value, str) and value:
        return value
    made = _PERMANENT_IDS.get(broker)
    if made is None:
        made = _PERMANENT_IDS[broker] = "rabbitmq-cluster-id-" + secrets.token_urlsafe(16)
    return made
