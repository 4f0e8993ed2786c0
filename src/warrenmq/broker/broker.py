"""The broker: vhosts, users, sessions, resource alarms, and recovery from the stores it is given.

Theory of operation: :class:`Broker` is the root of the domain model.  It owns
the vhosts and users, knows the open connections of every protocol (the
adapters register their sessions) and authenticates logins.  Users, vhosts,
permissions and topic permissions are managed here as ``rabbitmqctl`` manages
them (``add_user``, ``delete_user``, ``set_permissions``, ``delete_vhost``, ...:
the API the management HTTP API and ``warrenmq ctl`` call); the rules of
:mod:`.access` decide, and ``check_resource``/``check_topic`` refuse with
RabbitMQ's texts (the AMQP adapter calls them).  Deleting a user or a vhost
closes its connections (``force_close`` on the session, 320 CONNECTION_FORCED).  Vhost and user
limits (:mod:`.limits`: ``set_vhost_limits``, ``set_user_limits`` and their
``clear_``/getter and counting methods) are durable definitions too, as are
vhost metadata (description, tags, default queue type), operator policies
(``set_operator_policy``: policy.py merges them into what queues get), runtime
parameters of registered components and global parameters (:mod:`.parameters`:
``register_parameter_component``, ``set_parameter``, ``set_global_parameter``).
It receives its storage (:class:`~warrenmq.store.base.Storage`: message store,
page store, definitions) opened by the application, rebuilds what the
definitions and the message store hold, and reports every durable change to
them; it never opens a file.

Resource alarms (:mod:`.alarms`) are typed, and each has one owner: while any
is on, connections that publish are blocked (``connection.blocked`` to clients
that support it, and the transport stops reading from them).  The store
committer reports the store's fate: :meth:`Broker.store_synced` sends the
confirms an fsync made safe; :meth:`Broker.store_failed` raises
``STORE_FAILED`` and nacks every confirm that waits for the store (later ones
too, each time it is called again); :meth:`Broker.store_recovered` clears it.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import platform
from dataclasses import dataclass, field

from ..config import BrokerConfig
from ..store import NO_DEFINITIONS, Storage, open_storage  # interfaces and the factory, no concrete store
from ..protocol.spec import CONNECTION_FORCED
from .access import Permission, TopicPermission, refused, resource_name, topic_refused
from .alarms import Alarm, blocked_reason
from .confirms import ConfirmRegistry
from .direct_reply import DirectReplyTo
from .flow import MemoryMonitor
from .limits import Limits, validate as validate_limits
from .message import Message
from .parameters import (OPERATOR_POLICY, POLICY, VHOST_LIMITS, VHOST_LIMITS_NAME, Components, unknown_component)
from .timers import Timers
from .stats import NodeTotals
from .vhost import VHost

log = logging.getLogger("warrenmq.broker")

#: the node name in log lines (the management API's and the AMQP cluster_name)
NODE = f"warrenmq@{platform.node()}"
#: the alarms' resource names (RabbitMQ's ``memory`` and ``disk``), in their log lines
ALARM_SOURCES = {Alarm.MEMORY: "memory", Alarm.DISK_FREE: "disk", Alarm.STORE_FAILED: "message_store"}

#: the RabbitMQ release whose behaviour WarrenMQ reproduces (and reports as ``version``)
RABBITMQ_COMPAT_VERSION = "3.10.8"

#: RabbitMQ's password hashing modules (``hashing_algorithm`` in definitions) and their hash functions
HASHING = {"rabbit_password_hashing_sha256": hashlib.sha256, "rabbit_password_hashing_sha512": hashlib.sha512,
           "rabbit_password_hashing_md5": hashlib.md5}
DEFAULT_HASHING = "rabbit_password_hashing_sha256"


def hash_password(password: str, salt: bytes | None = None, algorithm: str = DEFAULT_HASHING) -> bytes:
    """RabbitMQ's rabbit_password_hashing_* schemes: a 4-byte salt, then HASH(salt + password)
    (SHA-256 by default; base64 of this is ``password_hash`` in RabbitMQ's definitions)."""
    salt = os.urandom(4) if salt is None else salt
    return salt + HASHING[algorithm](salt + password.encode("utf-8")).digest()


@dataclass
class User:
    """A user: password hash (b"": no password, only passwordless mechanisms could log in), tags, and per
    vhost a :class:`~.access.Permission` (access to the vhost) and topic permissions per exchange."""
    name: str
    password_hash: bytes
    tags: list = field(default_factory=list)
    permissions: dict = field(default_factory=dict)  # vhost -> Permission
    topic_permissions: dict = field(default_factory=dict)  # (vhost, exchange) -> TopicPermission
    hashing_algorithm: str = DEFAULT_HASHING

    @property
    def vhosts(self) -> set:
        """The vhosts this user may open (those it has permissions in)."""
        return set(self.permissions)

    def check_password(self, password: str) -> bool:
        h = self.password_hash
        return len(h) > 4 and hmac.compare_digest(hash_password(password, h[:4], self.hashing_algorithm), h)

    def has_topic_permissions(self, vhost: str) -> bool:
        return any(v == vhost for v, _ in self.topic_permissions)


def _tags(tags) -> list:
    """Tags as a list: from a list, or a comma-separated string as RabbitMQ's definitions give them."""
    if tags is None:
        return []
    if isinstance(tags, str):
        tags = tags.split(",")
    return [t.strip() for t in tags if t and t.strip()]


def _check_vhost_limits_parameter(value) -> None:
    """The ``vhost-limits`` parameter's value checked as RabbitMQ's rabbit_vhost_limit validates it
    (ValueError with its text; the Erlang terms as it prints them)."""
    from .limits import VHOST_LIMITS as KNOWN
    from .policy import _erl
    if not isinstance(value, dict):
        raise ValueError(f"Unrecognised terms {_erl(value)} in limits")
    unknown = [(k, v) for k, v in value.items() if k not in KNOWN]
    if unknown:
        raise ValueError("Unrecognised terms [" + ",".join(f"{{{_erl(k)},{_erl(v)}}}" for k, v in unknown)
                         + "] in limits")
    for k, v in value.items():
        if v.__class__ is not int:
            raise ValueError(f"{k} should be a number, actually was {_erl(v)}")


def _put(table: dict, key: str, limits: dict) -> None:
    """``table[key] = limits``, or no entry when there are none."""
    if limits:
        table[key] = limits
    else:
        table.pop(key, None)


def _without(limits: dict, name: str | None) -> dict:
    """``limits`` without the one called ``name`` (without any when ``name`` is None)."""
    return {} if name is None else {k: v for k, v in limits.items() if k != name}


class Broker:
    """``Broker(config, storage)``: ``storage`` from :func:`warrenmq.store.open_storage` (the broker closes
    it in :meth:`close`); left out, that factory opens what ``config`` asks for."""

    def __init__(self, config: BrokerConfig | None = None, storage: Storage | None = None):
        self.config = config or BrokerConfig()
        if storage is None:
            storage = open_storage(self.config)
        self.vhosts: dict[str, VHost] = {}
        self.users: dict[str, User] = {}
        self.sessions: set = set()  # the open connections of every protocol (set_blocked on alarms)
        self.totals = NodeTotals()  # what deleted queues and vhosts counted (stats.py)
        self.limits = Limits()  # vhost and user limits, and the connection counts they are checked against
        self.memory = MemoryMonitor(self.config.memory_watermark,
                                    paging_ratio=self.config.vm_memory_high_watermark_paging_ratio)  # samples of RSS: BrokerApp's MemorySampler
        self.memory.listeners.append(self._on_memory_alarm)
        self.timers = Timers()  # BrokerApp plugs its event loop in (timers.loop_call_later)
        self.direct_reply = DirectReplyTo()  # reply consumers on amq.rabbitmq.reply-to, broker-wide
        self.alarms: set[Alarm] = set()  # publishers are blocked while any is on
        self.confirms = ConfirmRegistry()  # publisher confirms, and those waiting for the store
        # called with a vhost's name when it is deleted (after its sessions and queues went, before the
        # store forgets it): protocol adapters drop what they keep per vhost (MQTT's retained messages)
        self.vhost_deleted_listeners: list = []
        self.components = Components()  # runtime parameter components (parameters.py)
        self.parameters: dict = {}  # (component, vhost, name) -> value, of every component but the built-in ones
        self.global_parameters: dict = {}  # name -> value
        # login attempts per protocol ("amqp091", "http"): [attempts, failed] (RabbitMQ's auth_attempt_metrics)
        self.auth_attempts: dict = {}
        self.storage = storage
        self.store = storage.messages
        self.page_store = storage.pages
        self.defs = storage.definitions
        if self._recover():
            self._ensure_cluster_id()
            self._default_settings_ignored()
            return
        # first boot: the default vhost, and the default user with the administrator tag and all permissions
        # in it (as RabbitMQ's default_user, default_vhost and default_permissions)
        self._ensure_cluster_id()
        if self.config.definitions_file:  # RabbitMQ's maybe_insert_default_data: the definitions say who
            log.debug("will not seed the default vhost and user: have definitions to load (%s)",
                      self.config.definitions_file)
            return
        cfg = self.config
        if storage.durable:
            log.info("first boot: the definitions database in %s is empty; creating the default vhost and user "
                     "(default_vhost, default_user)", storage.path)
        self.add_vhost(cfg.default_vhost, description="Default virtual host")
        self.add_user(cfg.default_user, cfg.default_pass, tags=["administrator"], vhosts={cfg.default_vhost})
        log.info("Adding vhost '%s' (description: 'Default virtual host', tags: [])", cfg.default_vhost)
        log.info("Created user '%s'", cfg.default_user)
        log.info("Successfully set user tags for user '%s' to [administrator]", cfg.default_user)
        log.info("Successfully set permissions for '%s' in virtual host '%s' to '.*', '.*', '.*'",
                 cfg.default_user, cfg.default_vhost)

    def _default_settings_ignored(self) -> None:
        """A later boot: the default user and vhost settings are not applied (RabbitMQ creates them only on
        first boot).  Say so when they were given and differ from what the database holds."""
        cfg = self.config
        given = cfg.given("default_user", "default_pass", "default_vhost")
        if not given:
            return
        user = self.users.get(cfg.default_user)
        if cfg.default_vhost in self.vhosts and user is not None and user.check_password(cfg.default_pass):
            return  # what they ask for is there (a deployment that passes them at every start)
        path = self.storage.path
        log.warning("%s given but ignored: the definitions database%s already has users and vhosts, and the "
                    "default user and vhost are created only on first boot, as RabbitMQ does; change users and "
                    "vhosts with `warrenmq ctl` or the management API", ", ".join(given),
                    f" in {path}" if path else "")

    # --------------------------------------------------------------- storage
    def _recover(self) -> bool:
        """Rebuild durable definitions and persistent messages; False if the definitions were empty."""
        d = self.defs.load()
        if not d["vhosts"]:
            return False
        defs, self.defs = self.defs, NO_DEFINITIONS  # no write-back while rebuilding
        try:
            for name in d["vhosts"]:
                self.add_vhost(name)
            for name, description, tags, queue_type in d.get("vhost_metadata", ()):
                if name in self.vhosts:
                    self.set_vhost_metadata(name, description, tags, queue_type)
            for vhost, name, pattern, apply_to, priority, definition in d["policies"]:
                if vhost in self.vhosts:  # before the queues, so a max-priority policy applies to them
                    self.vhosts[vhost].policies.set(name, pattern, definition, priority, apply_to)
            for vhost, name, pattern, apply_to, priority, definition in d.get("operator_policies", ()):
                if vhost in self.vhosts:
                    self.vhosts[vhost].operator_policies.set(name, pattern, definition, priority, apply_to)
            for component, vhost, name, value in d.get("parameters", ()):
                if vhost in self.vhosts:  # kept for their component, which registers later
                    self.parameters[(component, vhost, name)] = value
            for name, value in d.get("global_parameters", ()):
                self.global_parameters[name] = value
            for name, password_hash, tags, *algorithm in d["users"]:
                self.users[name] = User(name, password_hash, tags,
                                        hashing_algorithm=(algorithm and algorithm[0]) or DEFAULT_HASHING)
            for user, vhost, configure, write, read in d["permissions"]:
                if user in self.users and vhost in self.vhosts:
                    self.users[user].permissions[vhost] = Permission(configure, write, read)
            for user, vhost, exchange, write, read in d.get("topic_permissions", ()):
                if user in self.users and vhost in self.vhosts:
                    self.users[user].topic_permissions[(vhost, exchange)] = TopicPermission(exchange, write, read)
            for vhost, name, type_, auto_delete, internal, args in d["exchanges"]:
                vh = self.vhosts.get(vhost)
                if vh is not None and name not in vh.exchanges:
                    vh.declare_exchange(name, type_, durable=True, auto_delete=auto_delete, internal=internal,
                                        arguments=args)
            by_id = {}
            for qid, vhost, name, auto_delete, args in d["queues"]:
                vh = self.vhosts.get(vhost)
                if vh is None:
                    continue
                # the stored arguments are what was declared (a default queue type already applied)
                q, _ = vh.declare_queue(name, None, durable=True, auto_delete=auto_delete, arguments=args,
                                        default_type=False)
                q.store_id = qid
                by_id[qid] = q
            for vhost, source, dest, kind, key, args in d["bindings"]:
                vh = self.vhosts.get(vhost)
                if vh is None:
                    continue
                if kind == "q" and dest in vh.queues and source in vh.exchanges:
                    vh.bind_queue(vh.queues[dest], source, key, args)
                elif kind == "e" and dest in vh.exchanges and source in vh.exchanges:
                    vh.bind_exchange(dest, source, key, args)
            for kind, name, limits in d.get("limits", ()):  # after the queues: recovery is never refused
                if kind == "vhost" and name in self.vhosts:
                    self.set_vhost_limits(name, limits)
                elif kind == "user" and name in self.users:
                    self.set_user_limits(name, limits)
        finally:
            self.defs = defs
            for vh in self.vhosts.values():
                vh.defs = defs
        count = 0
        by_ids = self.store.recover_ids()
        if by_ids is not None:  # ids only: the queues read what they keep as objects (restore_stored)
            for qid, rq in by_ids.items():
                q = by_id.get(qid)
                if q is None:  # the queue is gone: forget its messages
                    for mid in rq.ids:
                        self.store.remove(qid, mid)
                else:
                    count += q.restore_stored(rq)
        recovered = {} if by_ids is not None else self.store.recover()
        for qid, records in recovered.items():
            q = by_id.get(qid)
            if q is None:  # the queue is gone: forget its messages
                for r in records:
                    self.store.remove(qid, r.msg_id)
                continue
            for r in records:
                q.restore(Message(r.exchange, r.routing_key, r.header, r.body, r.ex_rk), r.msg_id, r.delivered)
                count += 1
        log.info("recovered %d vhosts, %d durable queues, %d persistent messages from %s",
                 len(self.vhosts), len(by_id), count, self.storage.path)
        return True

    def store_synced(self, epoch: int) -> None:
        """The store made ``epoch`` durable: send the confirms that waited for it."""
        self.store.synced(epoch)
        self.confirms.store_synced(epoch)

    def store_failed(self, exc: BaseException) -> None:
        """The message store could not write (``exc``): publishers stay blocked (``STORE_FAILED``) until
        :meth:`store_recovered`, and every confirm waiting for the store is nacked, in order, as is every
        publish persisted meanwhile (the confirm registry's ``failed``)."""
        self.set_alarm(Alarm.STORE_FAILED, True)
        self.confirms.store_failed()

    def store_recovered(self) -> None:
        """A write and fsync of the message store succeeded again: publishing resumes."""
        self.confirms.store_recovered()
        self.set_alarm(Alarm.STORE_FAILED, False)

    def close(self) -> None:
        """Flush and close storage (after the listeners stopped)."""
        self.storage.close()

    # ------------------------------------------------------------ definitions
    def add_vhost(self, name: str, description: str | None = None, tags=None,
                  default_queue_type: str | None = None) -> VHost:
        """Create vhost ``name`` (an existing one is returned as it is, unless metadata is given: then its
        metadata is replaced, as the management API's PUT does)."""
        vh = self.vhosts.get(name)
        if vh is not None:
            if description is not None or tags is not None or default_queue_type is not None:
                self.set_vhost_metadata(name, description, tags, default_queue_type)
            return vh
        if vh is None:
            vh = self.vhosts[name] = VHost(name, self.memory, self.store, self.defs)
            vh.timers = self.timers
            vh.totals = self.totals
            vh.flow_high = self.config.flow_high
            vh.flow_low = self.config.flow_low
            if self.page_store is not None:
                vh.page_store = self.page_store
                vh.page_limit = self.config.queue_max_in_memory
            self.defs.vhost_added(name)
            if description or tags or default_queue_type:
                self.set_vhost_metadata(name, description, tags, default_queue_type)
        return vh

    def set_vhost_metadata(self, name: str, description: str | None = None, tags=None,
                           default_queue_type: str | None = None) -> None:
        """Replace the metadata of ``name`` (RabbitMQ 3.10's vhost description, tags, default queue type;
        None or "undefined": empty).  The default queue type (classic, quorum or stream) is given to queues
        declared durable, not exclusive, not auto-delete and without ``x-queue-type`` (RabbitMQ's
        augment_declare_args).  KeyError if there is no such vhost; ValueError ``invalid_queue_type``."""
        vh = self.vhosts.get(name)
        if vh is None:
            raise KeyError(f"vhost '{name}' not found")
        if default_queue_type == "undefined":
            default_queue_type = None
        if default_queue_type is not None and default_queue_type not in ("classic", "quorum", "stream"):
            raise ValueError("invalid_queue_type")
        vh.description = description or ""
        vh.tags = _tags(tags)
        vh.default_queue_type = default_queue_type or None
        self.defs.vhost_metadata_set(name, vh.description, vh.tags, vh.default_queue_type)

    def vhost_metadata(self, name: str) -> dict:
        """``{"description", "tags", "default_queue_type"}`` of ``name`` (KeyError if none)."""
        vh = self.vhosts.get(name)
        if vh is None:
            raise KeyError(f"vhost '{name}' not found")
        return {"description": vh.description, "tags": list(vh.tags), "default_queue_type": vh.default_queue_type}

    def delete_vhost(self, name: str) -> None:
        """Delete ``name`` as ``rabbitmqctl delete_vhost``: its connections are closed (320
        CONNECTION_FORCED, "vhost 'v' is down" as RabbitMQ 3.10 says), its queues (with their messages), exchanges, bindings, policies, limits and the
        permissions in it go.  KeyError if there is no such vhost."""
        vh = self.vhosts.get(name)
        if vh is None:
            raise KeyError(f"vhost '{name}' not found")
        log.info("Deleting vhost '%s'", name)
        log.info("Closing all connections in vhost '%s' because it's being deleted", name)
        self._close_sessions(lambda s: getattr(s, "vhost", None) is vh, f"vhost '{name}' is down")
        del self.vhosts[name]
        for q in list(vh.queues.values()):
            vh.delete_queue(q)
        self.totals.fold_vhost(vh)  # node-wide totals keep what its channels counted
        vh.exchanges.clear()
        for user in self.users.values():
            if user.permissions.pop(name, None) is not None:
                self._access_changed(user.name)
            for key in [k for k in user.topic_permissions if k[0] == name]:
                del user.topic_permissions[key]
        self.limits.vhost.pop(name, None)
        for key in [k for k in self.parameters if k[1] == name]:
            del self.parameters[key]
            c = self.components.get(key[0])
            if c is not None and c.on_clear is not None:
                c.on_clear(name, key[2])
        for listener in self.vhost_deleted_listeners:
            listener(name)
        self.defs.vhost_deleted(name)

    def list_vhosts(self) -> list:
        return list(self.vhosts)

    # ------------------------------------------------------------------ users
    def add_user(self, name: str, password: str | None = None, tags=None, vhosts=None, *,
                 password_hash: bytes | None = None, hashing_algorithm: str = DEFAULT_HASHING) -> User:
        """Create user ``name`` (or replace its password and tags, keeping its permissions: the management
        API's PUT) with ``password`` (hashed as RabbitMQ does), or a ``password_hash`` as RabbitMQ's
        definitions carry it (salt + digest, base64-decoded, with its ``hashing_algorithm``), or neither
        (no password: it cannot log in with PLAIN).  ``vhosts``: grant ``.* .* .*`` in each."""
        if not name:
            raise ValueError("user name must not be empty")
        if hashing_algorithm not in HASHING:
            raise ValueError(f"unknown hashing algorithm '{hashing_algorithm}'")
        if password is not None and password_hash is not None:
            raise ValueError("give a password or a password hash, not both")
        if password is not None:
            password_hash, hashing_algorithm = hash_password(password), DEFAULT_HASHING
        user = self.users.get(name)
        if user is None:
            user = self.users[name] = User(name, b"")
        user.password_hash = bytes(password_hash or b"")
        user.hashing_algorithm = hashing_algorithm
        user.tags = _tags(tags)
        self._save_user(user)
        for vh in vhosts or ():
            self.set_permissions(name, vh, ".*", ".*", ".*")
        return user

    def _save_user(self, user: User) -> None:
        self.defs.user_saved(user.name, user.password_hash, user.tags, user.hashing_algorithm)

    def _user(self, name: str) -> User:
        user = self.users.get(name)
        if user is None:
            raise KeyError(f"user '{name}' not found")
        return user

    def delete_user(self, name: str) -> None:
        """Delete ``name`` with its permissions and limits; its open connections are closed with 320
        CONNECTION_FORCED as RabbitMQ does.  KeyError if there is no such user."""
        self._user(name)
        del self.users[name]
        self.limits.user.pop(name, None)
        self.defs.user_deleted(name)
        log.info("Deleted user '%s'", name)
        log.info("Closing all connections from user '%s' because it's being deleted", name)
        self._close_sessions(lambda s: getattr(s, "user", None) is not None and s.user.name == name,
                             f"user '{name}' is deleted")

    def change_password(self, name: str, password: str) -> None:
        user = self._user(name)
        user.password_hash, user.hashing_algorithm = hash_password(password), DEFAULT_HASHING
        self._save_user(user)

    def clear_password(self, name: str) -> None:
        """Remove the password of ``name``: password logins are refused from now on."""
        user = self._user(name)
        user.password_hash = b""
        self._save_user(user)

    def set_user_tags(self, name: str, tags) -> None:
        """Replace the tags of ``name`` (``rabbitmqctl set_user_tags``; none clears them)."""
        user = self._user(name)
        user.tags = _tags(tags)
        self._save_user(user)

    def check_user_password(self, name: str, password: str) -> bool:
        """``rabbitmqctl authenticate_user``: whether ``password`` is ``name``'s (False for an unknown user)."""
        user = self.users.get(name)
        return bool(password) and user is not None and user.check_password(password)

    def list_users(self) -> list:
        """``[{"name", "tags", "password_hash" (base64), "hashing_algorithm"}]`` as RabbitMQ's definitions."""
        return [{"name": u.name, "password_hash": base64.b64encode(u.password_hash).decode(),
                 "hashing_algorithm": u.hashing_algorithm, "tags": list(u.tags)} for u in self.users.values()]

    # ------------------------------------------------------------ permissions
    def set_permissions(self, user: str, vhost: str, configure: str, write: str, read: str) -> None:
        """``rabbitmqctl set_permissions -p vhost user configure write read``; KeyError for an unknown user
        or vhost, ValueError for a pattern that is not a regular expression."""
        u = self._user(user)
        if vhost not in self.vhosts:
            raise KeyError(f"vhost '{vhost}' not found")
        u.permissions[vhost] = Permission(configure, write, read)
        self.defs.permission_set(user, vhost, configure, write, read)
        self._access_changed(user)

    def clear_permissions(self, user: str, vhost: str) -> None:
        """Remove ``user``'s permissions in ``vhost``: it can no longer open it.  Connections already open
        stay, and every operation on them is refused from now on (as in RabbitMQ)."""
        u = self._user(user)
        if vhost not in self.vhosts:
            raise KeyError(f"vhost '{vhost}' not found")
        if u.permissions.pop(vhost, None) is not None:
            self.defs.permission_cleared(user, vhost)
        self._access_changed(user)

    def list_permissions(self, vhost: str | None = None, user: str | None = None) -> list:
        """``[{"user", "vhost", "configure", "write", "read"}]``, of one vhost and/or one user or all."""
        return [{"user": u.name, "vhost": v, "configure": p.configure, "write": p.write, "read": p.read}
                for u in self.users.values() if user is None or u.name == user
                for v, p in u.permissions.items() if vhost is None or v == vhost]

    def set_topic_permissions(self, user: str, vhost: str, exchange: str, write: str, read: str) -> None:
        """``rabbitmqctl set_topic_permissions -p vhost user exchange write read``."""
        u = self._user(user)
        if vhost not in self.vhosts:
            raise KeyError(f"vhost '{vhost}' not found")
        u.topic_permissions[(vhost, exchange)] = TopicPermission(exchange, write, read)
        self.defs.topic_permission_set(user, vhost, exchange, write, read)
        self._access_changed(user)

    def clear_topic_permissions(self, user: str, vhost: str, exchange: str | None = None) -> None:
        """Remove ``user``'s topic permissions in ``vhost``: for ``exchange``, or all of them."""
        u = self._user(user)
        if vhost not in self.vhosts:
            raise KeyError(f"vhost '{vhost}' not found")
        for key in [k for k in u.topic_permissions if k[0] == vhost and (exchange is None or k[1] == exchange)]:
            del u.topic_permissions[key]
            self.defs.topic_permission_cleared(user, vhost, key[1])
        self._access_changed(user)

    def list_topic_permissions(self, vhost: str | None = None, user: str | None = None) -> list:
        """``[{"user", "vhost", "exchange", "write", "read"}]``."""
        return [{"user": u.name, "vhost": v, "exchange": t.exchange, "write": t.write, "read": t.read}
                for u in self.users.values() if user is None or u.name == user
                for (v, _), t in u.topic_permissions.items() if vhost is None or v == vhost]

    # ------------------------------------------------------------- enforcing
    def check_resource(self, user: User, vhost: str, kind: str, name: str, perm: str) -> None:
        """Raise RabbitMQ's ACCESS_REFUSED channel error unless ``user`` has ``perm`` (CONFIGURE, WRITE or
        READ) on ``kind`` ("queue" or "exchange") ``name`` in ``vhost`` (the default exchange is
        ``amq.default``).  A user deleted meanwhile has no permissions."""
        p = user.permissions.get(vhost) if self.users.get(user.name) is user else None
        if p is None or not p.allows(perm, resource_name(kind, name)):
            raise refused(kind, name, vhost, user.name)

    def check_topic(self, user: User, vhost: str, exchange: str, routing_key: str, perm: str) -> None:
        """Raise ACCESS_REFUSED unless ``user``'s topic permission (if any) for topic exchange ``exchange``
        allows ``routing_key`` for ``perm`` (WRITE: publish, READ: bind)."""
        t = user.topic_permissions.get((vhost, exchange))
        if t is not None and not t.allows(perm, routing_key, user.name, vhost):
            raise topic_refused(routing_key, exchange, vhost, user.name)

    def _access_changed(self, user: str) -> None:
        """Permissions of ``user`` changed: the channels of its connections forget what they cached."""
        for s in self.sessions:
            u = getattr(s, "user", None)
            if u is not None and u.name == user:
                for ch in getattr(s, "channels", {}).values():
                    cache = getattr(ch, "may_write", None)
                    if cache is not None:
                        cache.clear()

    def _close_sessions(self, which, reason: str) -> None:
        """Close the connections ``which(session)`` selects with 320 CONNECTION_FORCED and ``reason``."""
        for s in [s for s in self.sessions if which(s)]:
            force_close = getattr(s, "force_close", None)
            if force_close is not None:
                force_close(CONNECTION_FORCED, reason)

    # --------------------------------------------------------------- policies
    def set_policy(self, vhost: str, name: str, pattern: str, definition: dict, priority: int = 0,
                   apply_to: str = "all"):
        """Set (or replace) policy ``name`` in ``vhost``, as ``rabbitmqctl set_policy`` does; it applies
        at once to existing and future queues/exchanges (see policy.py).  ValueError if invalid."""
        vh = self.vhosts.get(vhost)
        if vh is None:
            raise KeyError(f"vhost '{vhost}' not found")
        return vh.policies.set(name, pattern, definition, priority, apply_to)

    def clear_policy(self, vhost: str, name: str) -> None:
        """Remove policy ``name`` from ``vhost``; KeyError if there is none."""
        vh = self.vhosts.get(vhost)
        if vh is None:
            raise KeyError(f"vhost '{vhost}' not found")
        vh.policies.clear(name)

    def list_policies(self, vhost: str | None = None) -> list:
        """The policies (as dicts like RabbitMQ's definitions export) of ``vhost``, or of all vhosts."""
        return [p.as_dict() for name, vh in self.vhosts.items() if vhost is None or name == vhost
                for p in vh.policies]

    def set_operator_policy(self, vhost: str, name: str, pattern: str, definition: dict, priority: int = 0,
                            apply_to: str = "all"):
        """Set (or replace) operator policy ``name`` in ``vhost`` (``rabbitmqctl set_operator_policy``): only
        the keys of policy.OPERATOR_KEYS; merged with the user policy of each queue it matches, the stricter
        value winning.  KeyError for an unknown vhost, ValueError with RabbitMQ's reason if invalid."""
        vh = self.vhosts.get(vhost)
        if vh is None:
            raise KeyError(f"vhost '{vhost}' not found")
        return vh.operator_policies.set(name, pattern, definition, priority, apply_to)

    def clear_operator_policy(self, vhost: str, name: str) -> None:
        """Remove operator policy ``name`` from ``vhost``; KeyError if there is none."""
        vh = self.vhosts.get(vhost)
        if vh is None:
            raise KeyError(f"vhost '{vhost}' not found")
        vh.operator_policies.clear(name)

    def list_operator_policies(self, vhost: str | None = None) -> list:
        """The operator policies (dicts as the policies') of ``vhost``, or of all vhosts."""
        return [p.as_dict() for name, vh in self.vhosts.items() if vhost is None or name == vhost
                for p in vh.operator_policies]

    # ------------------------------------------------------------ parameters
    def register_parameter_component(self, component: str, validate=None, on_set=None, on_clear=None,
                                     takes_user: bool = False):
        """Make ``component`` known (a plugin: shovel, federation): ``validate(vhost, name, value)`` raises
        ValueError to refuse a value; ``on_set(vhost, name, value)`` / ``on_clear(vhost, name)`` follow the
        parameter's changes.  Parameters of it already stored (recovered at boot) are given to ``on_set``."""
        c = self.components.register(component, validate, on_set, on_clear, takes_user)
        if on_set is not None:
            for (comp, vhost, name), value in list(self.parameters.items()):
                if comp == component:
                    on_set(vhost, name, value)
        return c

    def set_parameter(self, component: str, vhost: str, name: str, value, user=None) -> bool:
        """Set runtime parameter ``name`` of ``component`` in ``vhost`` to ``value`` (JSON), as
        ``rabbitmqctl set_parameter``; True if it is new.  ``vhost-limits`` sets the vhost's limits (name
        ``limits``).  KeyError for an unknown vhost; ValueError for an unknown component (RabbitMQ's
        ``component foo not found``) or a value its component refuses."""
        if vhost not in self.vhosts:
            raise KeyError(f"vhost '{vhost}' not found")
        if component == VHOST_LIMITS:
            _check_vhost_limits_parameter(value)
            existed = bool(self.limits.vhost.get(vhost))
            self.set_vhost_limits(vhost, value)
            return not existed
        if component == POLICY:
            raise ValueError("policies may not be set using this method")
        if component == OPERATOR_POLICY:
            if not isinstance(value, dict):
                raise ValueError(f"operator policy {name} must be a JSON object")
            for key in ("pattern", "definition", "priority"):  # as RabbitMQ's parameter validation wants them
                if key not in value:
                    raise ValueError(f'Key "{key}" not found in {name}')
            existed = name in self.vhosts[vhost].operator_policies.by_name
            self.set_operator_policy(vhost, name, value.get("pattern"), value.get("definition"),
                                     value.get("priority", 0), value.get("apply-to", "all"))
            return not existed
        c = self.components.get(component)
        if c is None:
            raise unknown_component(component)
        if c.validate is not None:
            if c.takes_user:
                c.validate(vhost, name, value, user=user)
            else:
                c.validate(vhost, name, value)
        key = (component, vhost, name)
        existed = key in self.parameters
        self.parameters[key] = value
        self.defs.parameter_set(component, vhost, name, value)
        if c.on_set is not None:
            c.on_set(vhost, name, value)
        return not existed

    def clear_parameter(self, component: str, vhost: str, name: str) -> None:
        """Remove a runtime parameter; KeyError if there is none."""
        if component == VHOST_LIMITS:
            if vhost not in self.vhosts or name != VHOST_LIMITS_NAME or not self.limits.vhost.get(vhost):
                raise KeyError(f"parameter '{name}' of '{component}' not found in vhost '{vhost}'")
            self.clear_vhost_limits(vhost)
            return
        if component == OPERATOR_POLICY:
            self.clear_operator_policy(vhost, name)
            return
        key = (component, vhost, name)
        if key not in self.parameters:
            raise KeyError(f"parameter '{name}' of '{component}' not found in vhost '{vhost}'")
        del self.parameters[key]
        self.defs.parameter_cleared(component, vhost, name)
        c = self.components.get(component)
        if c is not None and c.on_clear is not None:
            c.on_clear(vhost, name)

    def parameter(self, component: str, vhost: str, name: str):
        """``{"value", "vhost", "component", "name"}`` of one parameter, or None."""
        for p in self.list_parameters(component, vhost):
            if p["name"] == name:
                return p
        return None

    def list_parameters(self, component: str | None = None, vhost: str | None = None) -> list:
        """Runtime parameters as RabbitMQ's ``/api/parameters`` lists them (``[{"value", "vhost",
        "component", "name"}]``): those of registered and stored components, ``vhost-limits`` and the
        operator policies (``operator_policy``); of one component and/or one vhost, or all."""
        out = []
        for vname in self.vhosts:
            if vhost is not None and vname != vhost:
                continue
            if component in (None, VHOST_LIMITS) and self.limits.vhost.get(vname):
                out.append({"value": dict(self.limits.vhost[vname]), "vhost": vname, "component": VHOST_LIMITS,
                            "name": VHOST_LIMITS_NAME})
            if component == POLICY:  # listed only when asked for by name, as RabbitMQ does
                for p in self.vhosts[vname].policies:
                    out.append({"value": {"pattern": p.pattern, "definition": dict(p.definition),
                                          "priority": p.priority, "apply-to": p.apply_to},
                                "vhost": vname, "component": POLICY, "name": p.name})
            if component in (None, OPERATOR_POLICY):
                for p in self.vhosts[vname].operator_policies:
                    out.append({"value": {"pattern": p.pattern, "definition": dict(p.definition),
                                          "priority": p.priority, "apply-to": p.apply_to},
                                "vhost": vname, "component": OPERATOR_POLICY, "name": p.name})
        for (comp, vname, name), value in self.parameters.items():
            if (component is None or comp == component) and (vhost is None or vname == vhost):
                out.append({"value": value, "vhost": vname, "component": comp, "name": name})
        return out

    def set_global_parameter(self, name: str, value) -> bool:
        """``rabbitmqctl set_global_parameter``: ``name`` is now ``value`` (JSON); True if it is new."""
        if not name:
            raise ValueError("global parameter name must not be empty")
        existed = name in self.global_parameters
        self.global_parameters[name] = value
        self.defs.global_parameter_set(name, value)
        return not existed

    def clear_global_parameter(self, name: str) -> None:
        """Remove global parameter ``name``; KeyError if there is none."""
        if name not in self.global_parameters:
            raise KeyError(f"global parameter '{name}' not found")
        del self.global_parameters[name]
        self.defs.global_parameter_cleared(name)

    def global_parameter(self, name: str):
        """``{"value", "name"}`` of global parameter ``name``, or None."""
        if name not in self.global_parameters:
            return None
        return {"value": self.global_parameters[name], "name": name}

    def list_global_parameters(self) -> list:
        """``[{"value", "name"}]``, as ``/api/global-parameters``."""
        return [{"value": v, "name": n} for n, v in self.global_parameters.items()]

    @property
    def cluster_name(self) -> str | None:
        """The cluster name an operator set (RabbitMQ keeps it as the global parameter ``cluster_name``:
        ``PUT /api/cluster-name``), or None: the node's name is the cluster's."""
        name = self.global_parameters.get("cluster_name")
        return name if isinstance(name, str) and name else None

    def _ensure_cluster_id(self) -> None:
        """RabbitMQ creates the global parameter ``internal_cluster_id`` when the node first boots."""
        if "internal_cluster_id" not in self.global_parameters:
            token = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
            self.set_global_parameter("internal_cluster_id", f"rabbitmq-cluster-id-{token}")

    # ---------------------------------------------------------------- limits
    def set_vhost_limits(self, vhost: str, limits: dict) -> None:
        """Replace the limits of ``vhost`` (``{"max-connections": n, "max-queues": n}``, either or both; a
        negative value: no limit), as ``rabbitmqctl set_vhost_limits``.  KeyError/ValueError if invalid.
        Existing connections and queues beyond a new limit are kept (as in RabbitMQ)."""
        vh = self.vhosts.get(vhost)
        if vh is None:
            raise KeyError(f"vhost '{vhost}' not found")
        limits = validate_limits("vhost", limits)
        _put(self.limits.vhost, vhost, limits)
        vh.max_queues = limits.get("max-queues", -1)
        self.defs.limits_set("vhost", vhost, limits)

    def clear_vhost_limits(self, vhost: str, name: str | None = None) -> None:
        """Clear one limit (``name``) or all limits of ``vhost``."""
        self.set_vhost_limits(vhost, _without(self.vhost_limits(vhost), name))

    def vhost_limits(self, vhost: str) -> dict:
        if vhost not in self.vhosts:
            raise KeyError(f"vhost '{vhost}' not found")
        return dict(self.limits.vhost.get(vhost, {}))

    def set_user_limits(self, user: str, limits: dict) -> None:
        """Replace the limits of ``user`` (``{"max-connections": n, "max-channels": n}``), as
        ``rabbitmqctl set_user_limits``.  KeyError/ValueError if invalid."""
        if user not in self.users:
            raise KeyError(f"user '{user}' not found")
        limits = validate_limits("user", limits)
        _put(self.limits.user, user, limits)
        self.defs.limits_set("user", user, limits)

    def clear_user_limits(self, user: str, name: str | None = None) -> None:
        """Clear one limit (``name``) or all limits of ``user``."""
        self.set_user_limits(user, _without(self.user_limits(user), name))

    def user_limits(self, user: str) -> dict:
        if user not in self.users:
            raise KeyError(f"user '{user}' not found")
        return dict(self.limits.user.get(user, {}))

    def vhost_connection_count(self, vhost: str) -> int:
        """Open AMQP connections in ``vhost``."""
        return self.limits.vhost_connections.get(vhost, 0)

    def user_connection_count(self, user: str) -> int:
        """Open AMQP connections of ``user``."""
        return self.limits.user_connections.get(user, 0)

    def user_channel_count(self, user: str) -> int:
        """Open channels on the connections of ``user``."""
        return sum(len(s.channels) for s in self.sessions
                   if getattr(s, "user", None) is not None and s.user.name == user)

    # -------------------------------------------------------------- sessions
    def session_opened(self, session) -> None:
        self.sessions.add(session)

    def session_closed(self, session) -> None:
        self.sessions.discard(session)

    def _on_memory_alarm(self, alarm: bool) -> None:
        self.set_alarm(Alarm.MEMORY, alarm)

    def relieve_memory(self, excess: int) -> int:
        """Memory is ``excess`` bytes above where paging stops (flow.py): queues move what they hold to
        disk (the largest backlogs first) until that much is freed; returns the bytes freed."""
        freed = 0
        queues = [q for vh in self.vhosts.values() for q in vh.queues.values() if q.messages]
        queues.sort(key=lambda q: len(q.messages), reverse=True)
        for q in queues:
            if freed >= excess:
                break
            freed += q.page_out_ready(excess - freed)
        return freed

    def set_alarm(self, alarm: Alarm, on: bool) -> None:
        """Raise or clear a resource alarm; publishers are blocked while any is on."""
        if alarm.__class__ is not Alarm:
            raise TypeError(f"not an Alarm: {alarm!r}")
        before = bool(self.alarms)
        if on and alarm not in self.alarms:
            self.alarms.add(alarm)
            log.warning("%s resource limit alarm set on node '%s'.\n\n%s\n*** Publishers will be blocked until "
                        "this alarm clears ***\n%s", ALARM_SOURCES[alarm], NODE, "*" * 58, "*" * 58,
                        extra={"alarm": ALARM_SOURCES[alarm]})
        elif not on and alarm in self.alarms:
            self.alarms.discard(alarm)
            log.warning("%s resource limit alarm cleared on node '%s'", ALARM_SOURCES[alarm], NODE,
                        extra={"alarm": ALARM_SOURCES[alarm]})
        if bool(self.alarms) != before:
            for s in list(self.sessions):
                s.set_blocked(bool(self.alarms))

    def blocked_reason(self) -> str:
        """The ``connection.blocked`` reason for the alarms that are on."""
        return blocked_reason(self.alarms)

    def authenticate(self, creds, peer, protocol: str = "amqp091"):
        """The :class:`User` for ``(username, password)``, or ``None``; counted per ``protocol`` in
        :attr:`auth_attempts` (``/api/auth/attempts/{node}``)."""
        if creds is None:
            return None
        counts = self.auth_attempts.get(protocol)
        if counts is None:
            counts = self.auth_attempts[protocol] = [0, 0]
        counts[0] += 1
        user = self._authenticate(creds, peer)
        if user is None:
            counts[1] += 1
        return user

    def authenticate_certificate(self, name: str, peer, protocol: str):
        """The :class:`User` named ``name`` by a verified client certificate (RabbitMQ's login without a
        password, ``check_user_login(Name, [])``), or ``None``; the loopback restriction still applies, and
        the attempt is counted as :meth:`authenticate` counts it."""
        counts = self.auth_attempts.get(protocol)
        if counts is None:
            counts = self.auth_attempts[protocol] = [0, 0]
        counts[0] += 1
        user = self.users.get(name)
        if user is not None and name in self.config.loopback_users and peer is not None and not _is_loopback(peer[0]):
            user = None
        if user is None:
            counts[1] += 1
        return user

    def _authenticate(self, creds, peer):
        name, password = creds
        if not password:  # RabbitMQ's internal backend refuses blank passwords
            return None
        user = self.users.get(name)
        if user is None or not user.check_password(password):
            return None
        if name in self.config.loopback_users and peer is not None and not _is_loopback(peer[0]):
            return None
        return user

    def login_refusal(self, creds, peer) -> str:
        """Why :meth:`authenticate` refused ``creds``, in RabbitMQ's words (for the log, never the client)."""
        if creds is None:
            return "invalid credentials response"
        name = creds[0]
        user = self.users.get(name)
        if user is not None and user.check_password(creds[1]) and name in self.config.loopback_users:
            return f"user '{name}' can only connect via localhost"
        return f"user '{name}' - invalid credentials"

    def user_can_access(self, user: User, vhost: str) -> bool:
        """Whether ``user`` may open ``vhost``: it has permissions there (any, as in RabbitMQ)."""
        return self.users.get(user.name) is user and vhost in user.permissions


def _is_loopback(host: str) -> bool:
    return host.startswith("127.") or host in ("::1", "localhost") or host.startswith("::ffff:127.")
