"""The differential harness: run one client-side scenario against WarrenMQ and RabbitMQ, compare.

Theory of operation: a *scenario* is a plain function ``scenario(env)`` (or an
``async def`` for aio-pika) that drives a broker through a real client and
records what a client can observe with ``env.record(label, value)``: messages
received (body, routing key, redelivered flag, properties, headers), reply
codes and texts of channel and connection closes, counts, returned messages.
:func:`run_differential` runs the scenario once against a fresh embedded
WarrenMQ and, when ``WARRENMQ_REFERENCE_URL`` names a RabbitMQ, once against
it, then compares the two *outcomes* (the lists of records) after
:func:`normalise` has replaced what legitimately differs between two runs or two
brokers: server-generated names (``amq.gen-*``, ``amq.ctag-*``, direct reply-to
names, pika's own consumer tags) become ``amq.gen-1``, ``amq.gen-2``, ... in
order of first appearance (so aliasing is still compared), the per-test name
token becomes ``T``, date-times (``x-death`` time) and node names become fixed
markers.

Every outcome recorded from RabbitMQ is also kept in ``golden/<module>.json``:
without a reference broker, WarrenMQ's outcome is compared with that recording,
so the suite is differential on machines without RabbitMQ too.  With a
reference, the live RabbitMQ outcome must also equal the recording (a changed
scenario or a flaky one shows up); ``WARRENMQ_DIFF_RECORD=1`` rewrites the
recordings from the reference instead.

Scenarios use names from ``env.name(...)`` (unique per run: ``dt-<token>-...``)
and the harness deletes every queue, exchange, policy and user (``env.user``) so
named after each run, so the reference broker is left as it was found.
"""
from __future__ import annotations

import asyncio
import datetime
import decimal
import inspect
import json
import os
import re
import subprocess
import time
import urllib.parse
import uuid
from pathlib import Path

import pika
from pika.exceptions import (
    ChannelClosedByBroker, ChannelWrongStateError, ConnectionClosedByBroker, NackError, UnroutableError,
)

REFERENCE_ENV = "WARRENMQ_REFERENCE_URL"
RECORD_ENV = "WARRENMQ_DIFF_RECORD"
CTL_ENV = "WARRENMQ_REFERENCE_CTL"
GOLDEN_DIR = Path(__file__).parent / "golden"
NAME_PREFIX = "dt-"
#: how long RabbitMQ needs before a policy change has reached its queue processes
POLICY_SETTLE = 0.4


def reference_url() -> str | None:
    return os.environ.get(REFERENCE_ENV) or None


def recording() -> bool:
    return os.environ.get(RECORD_ENV, "") not in ("", "0", "false", "no")


# ===================================================================== targets
class Target:
    """A broker a scenario runs against."""
    name = "?"
    url = ""
    vhost = "/"
    #: ``http://host:port/api`` of the target's management API, or None (see mgmt.py)
    api_url: str | None = None

    def set_policy(self, name, pattern, definition, priority=0, apply_to="all") -> None:
        raise NotImplementedError

    def clear_policy(self, name) -> None:
        raise NotImplementedError

    def clear_policies(self, names) -> None:
        """Clear several policies, ignoring missing ones (cleanup)."""
        for n in names:
            try:
                self.clear_policy(n)
            except Exception:
                pass

    def settle(self) -> None:
        """Wait until asynchronous side effects (policy changes) are visible to clients."""

    # users and permissions (in the target's vhost): rabbitmqctl on the reference, the Broker API here
    def add_user(self, name, password, tags=()) -> None:
        raise NotImplementedError

    def delete_user(self, name) -> None:
        raise NotImplementedError

    def set_permissions(self, user, configure, write, read) -> None:
        raise NotImplementedError

    def set_topic_permissions(self, user, exchange, write, read) -> None:
        raise NotImplementedError

    def delete_users(self, names) -> None:
        """Delete several users, ignoring missing ones (cleanup)."""
        for n in names:
            try:
                self.delete_user(n)
            except Exception:
                pass

    def add_vhost(self, name) -> None:
        raise NotImplementedError

    def delete_vhost(self, name) -> None:
        raise NotImplementedError


class WarrenTarget(Target):
    """A fresh embedded WarrenMQ (``warrenmq.testing.EmbeddedBroker``)."""
    name = "warrenmq"

    def __init__(self, embedded):
        self.embedded = embedded
        self.url = embedded.url
        if embedded.app is not None and embedded.app.management_port is not None:
            self.api_url = embedded.management_url + "/api"

    def add_vhost(self, name) -> None:
        # as RabbitMQ's PUT /api/vhosts/name does, the creating user (guest) gets full permissions there
        self.embedded.call(lambda: self.embedded.broker.add_vhost(name))
        self.embedded.call(lambda: self.embedded.broker.set_permissions("guest", name, ".*", ".*", ".*"))

    def delete_vhost(self, name) -> None:
        self.embedded.call(lambda: self.embedded.broker.delete_vhost(name))

    def set_policy(self, name, pattern, definition, priority=0, apply_to="all") -> None:
        b = self.embedded.broker
        self.embedded.call(lambda: b.set_policy(self.vhost, name, pattern, definition, priority=priority,
                                                apply_to=apply_to))

    def clear_policy(self, name) -> None:
        b = self.embedded.broker
        self.embedded.call(lambda: b.clear_policy(self.vhost, name))

    def add_user(self, name, password, tags=()) -> None:
        self.embedded.call(lambda: self.embedded.broker.add_user(name, password, list(tags)))

    def delete_user(self, name) -> None:
        self.embedded.call(lambda: self.embedded.broker.delete_user(name))

    def set_permissions(self, user, configure, write, read) -> None:
        self.embedded.call(lambda: self.embedded.broker.set_permissions(user, self.vhost, configure, write, read))

    def set_topic_permissions(self, user, exchange, write, read) -> None:
        self.embedded.call(lambda: self.embedded.broker.set_topic_permissions(user, self.vhost, exchange, write,
                                                                              read))


class ReferenceTarget(Target):
    """A real RabbitMQ at ``url``, administered with ``rabbitmqctl`` (``WARRENMQ_REFERENCE_CTL``)."""
    name = "rabbitmq"

    def __init__(self, url: str):
        self.url = url
        path = urllib.parse.urlparse(url).path
        self.vhost = urllib.parse.unquote(path[1:]) if len(path) > 1 else "/"
        self.ctl = (os.environ.get(CTL_ENV) or "rabbitmqctl").split()

    def rabbitmqctl(self, *args: str) -> str:
        r = subprocess.run([*self.ctl, *args], capture_output=True, text=True, timeout=60)
        if r.returncode:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed ({r.returncode}): {r.stdout} {r.stderr}")
        return r.stdout

    def set_policy(self, name, pattern, definition, priority=0, apply_to="all") -> None:
        self.rabbitmqctl("set_policy", "-p", self.vhost, "--priority", str(priority), "--apply-to", apply_to,
                         name, pattern, json.dumps(definition))

    def clear_policy(self, name) -> None:
        self.rabbitmqctl("clear_policy", "-p", self.vhost, name)

    def _need_ctl(self) -> None:
        import shutil

        import pytest
        if shutil.which(self.ctl[0]) is None:
            pytest.skip(f"the reference's users are set up with {self.ctl[0]}, which is not installed")

    def add_user(self, name, password, tags=()) -> None:
        self._need_ctl()
        self.rabbitmqctl("add_user", name, password)
        if tags:
            self.rabbitmqctl("set_user_tags", name, *tags)

    def delete_user(self, name) -> None:
        self.rabbitmqctl("delete_user", name)

    def delete_users(self, names) -> None:
        procs = [subprocess.Popen([*self.ctl, "delete_user", n], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for n in names]
        for p in procs:
            p.wait(timeout=60)

    def set_permissions(self, user, configure, write, read) -> None:
        self.rabbitmqctl("set_permissions", "-p", self.vhost, user, configure, write, read)

    def set_topic_permissions(self, user, exchange, write, read) -> None:
        self.rabbitmqctl("set_topic_permissions", "-p", self.vhost, user, exchange, write, read)

    def clear_policies(self, names) -> None:
        # each rabbitmqctl call starts an Erlang VM (about a second): run them side by side
        procs = [subprocess.Popen([*self.ctl, "clear_policy", "-p", self.vhost, n], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL) for n in names]
        for p in procs:
            p.wait(timeout=60)

    def settle(self) -> None:
        time.sleep(POLICY_SETTLE)

    def leftovers(self, tokens: set) -> list:
        """Names of queues, exchanges, policies and users of this session still on the broker."""
        found = []
        for what, cmd in (("user", ["list_users", "-q", "--no-table-headers"]),("queue", ["list_queues", "-p", self.vhost, "-q", "--no-table-headers", "name"]),
                          ("exchange", ["list_exchanges", "-p", self.vhost, "-q", "--no-table-headers", "name"]),
                          ("policy", ["list_policies", "-p", self.vhost, "-q", "--no-table-headers"])):
            for line in self.rabbitmqctl(*cmd).splitlines():
                cols = line.split("\t")
                name = cols[1] if what == "policy" and len(cols) > 1 else cols[0]
                if any(t in name for t in tokens):
                    found.append((what, name))
        return found


class MgmtReferenceTarget(ReferenceTarget):
    """A real RabbitMQ with the management plugin (mgmt.py's private node), administered over its HTTP API
    (a call takes milliseconds, where each ``rabbitmqctl`` starts an Erlang VM)."""

    def __init__(self, url: str, api_url: str, auth=("guest", "guest")):
        super().__init__(url)
        self.api_url = api_url
        self.auth = auth

    def _call(self, method, p, body=None, ok=(200, 201, 204)):
        from .mgmt import http
        status, _, data = http(self.api_url, method, p, body, auth=self.auth)
        if status not in ok:
            raise RuntimeError(f"{method} {p} on the reference answered {status}: {data}")
        return data

    def set_policy(self, name, pattern, definition, priority=0, apply_to="all") -> None:
        from .mgmt import path
        self._call("PUT", path("policies", self.vhost, name), {"pattern": pattern, "definition": definition,
                                                               "priority": priority, "apply-to": apply_to})

    def clear_policy(self, name) -> None:
        from .mgmt import path
        self._call("DELETE", path("policies", self.vhost, name))

    def clear_policies(self, names) -> None:
        Target.clear_policies(self, names)

    def add_user(self, name, password, tags=()) -> None:
        from .mgmt import path
        self._call("PUT", path("users", name), {"password": password, "tags": ",".join(tags)})

    def delete_user(self, name) -> None:
        from .mgmt import path
        self._call("DELETE", path("users", name))

    def delete_users(self, names) -> None:
        Target.delete_users(self, names)

    def set_permissions(self, user, configure, write, read) -> None:
        from .mgmt import path
        self._call("PUT", path("permissions", self.vhost, user),
                   {"configure": configure, "write": write, "read": read})

    def set_topic_permissions(self, user, exchange, write, read) -> None:
        from .mgmt import path
        self._call("PUT", path("topic-permissions", self.vhost, user),
                   {"exchange": exchange, "write": write, "read": read})

    def add_vhost(self, name) -> None:
        from .mgmt import path
        self._call("PUT", path("vhosts", name))

    def delete_vhost(self, name) -> None:
        from .mgmt import path
        self._call("DELETE", path("vhosts", name), ok=(204, 404))

    def leftovers(self, tokens: set) -> list:
        found = []
        for what, p in (("user", "/users"), ("vhost", "/vhosts"), ("queue", "/queues"),
                        ("exchange", "/exchanges"), ("policy", "/policies")):
            for item in self._call("GET", p):
                if any(t in item["name"] for t in tokens):
                    found.append((what, item["name"]))
        return found


# ===================================================================== normalising
_GENERATED = re.compile(
    r"amq\.gen-[A-Za-z0-9_-]{22}"                       # server-named queues
    r"|amq\.ctag-[A-Za-z0-9_-]{22}"                     # server-generated consumer tags
    r"|amq\.rabbitmq\.reply-to\.[A-Za-z0-9_.=+/-]+"     # direct reply-to names
    r"|ctag\d+\.[0-9a-f]{32}"                           # pika's client-generated consumer tags
)
_NODE = re.compile(r"\b(?:rabbit|warrenmq)@[A-Za-z0-9_.-]+")


class Normaliser:
    """Turns an outcome into comparable, JSON-compatible data (see the module docstring)."""

    def __init__(self, token: str):
        self.token = token
        self.names: dict[str, str] = {}

    def _name(self, m: re.Match) -> str:
        s = m.group(0)
        n = self.names.get(s)
        if n is None:
            kind = ("amq.ctag-" if s.startswith(("amq.ctag-", "ctag")) else
                    "amq.rabbitmq.reply-to." if s.startswith("amq.rabbitmq.reply-to.") else "amq.gen-")
            n = self.names[s] = f"{kind}{sum(1 for v in self.names.values() if v.startswith(kind)) + 1}"
        return n

    def text(self, s: str) -> str:
        if self.token:
            s = s.replace(self.token, "T")
        s = _GENERATED.sub(self._name, s)
        return _NODE.sub("<node>", s)

    def __call__(self, v):
        if v is None or isinstance(v, bool):
            return v
        if isinstance(v, int):
            if type(v).__name__ == "long":  # pika decodes a 64-bit 'l' field as compat.long
                return {"$long": int(v)}
            return int(v)
        if isinstance(v, float):
            return v
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, (bytes, bytearray, memoryview)):
            b = bytes(v)
            try:
                return {"$bytes": self.text(b.decode("utf-8"))}
            except UnicodeDecodeError:
                return {"$hex": b.hex()}
        if isinstance(v, datetime.datetime):
            return "<datetime>"
        if isinstance(v, decimal.Decimal):
            return {"$decimal": str(v)}
        if isinstance(v, dict):
            return {self.text(str(k)): self(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [self(x) for x in v]
        return {"$repr": self.text(repr(v))}


def normalise(outcome, token: str = ""):
    return Normaliser(token)(outcome)


# ===================================================================== describing results
_PROPS = ("content_type", "content_encoding", "headers", "delivery_mode", "priority", "correlation_id",
          "reply_to", "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id")


def props_dict(props) -> dict:
    """The properties a message carries (pika ``BasicProperties`` or aio-pika ``IncomingMessage``)."""
    out = {}
    for k in _PROPS:
        v = getattr(props, k, None)
        if v is not None:
            out[k] = v
    return out


def message(method, props, body) -> dict:
    """A delivered or fetched message (pika ``Basic.Deliver``/``Basic.GetOk``/``Basic.Return``)."""
    d = {"body": body}
    for k in ("exchange", "routing_key", "redelivered", "delivery_tag", "message_count", "reply_code",
              "reply_text", "consumer_tag"):
        if hasattr(method, k):
            d[k] = getattr(method, k)
    p = props_dict(props)
    if p:
        d["props"] = p
    return d


def describe(result):
    """Plain data for what a pika call returned."""
    if result is None:
        return None
    if isinstance(result, tuple) and len(result) == 3 and hasattr(result[0], "NAME"):
        return message(*result)
    if isinstance(result, tuple) and len(result) == 3 and result[0] is None:
        return "get-empty"
    if isinstance(result, (list, tuple)):
        return [describe(r) for r in result]
    method = getattr(result, "method", result)
    if hasattr(method, "NAME"):
        d = {"method": method.NAME}
        d.update({k: v for k, v in vars(method).items() if not k.startswith("_")})
        return d
    return result


def aio_message(m) -> dict:
    """An aio-pika ``IncomingMessage``/``DeliveredMessage`` as plain data."""
    d = {"body": m.body}
    for k in ("exchange", "routing_key", "redelivered", "delivery_tag", "message_count"):
        v = getattr(m, k, None)
        if v is not None:
            d[k] = v
    p = props_dict(m)
    p.pop("delivery_mode", None)  # aio-pika fills in a default (1) when the property is absent
    if p.get("headers") == {}:
        del p["headers"]  # aio-pika shows an absent headers table as {}
    if p:
        d["props"] = p
    return d


def aio_describe(r):
    """Plain data for what an aio-pika call returned."""
    if r is None or isinstance(r, (str, int, bool)):
        return r
    if hasattr(r, "body") and hasattr(r, "routing_key"):
        return aio_message(r)
    name = type(r).__name__
    if name in ("Queue", "RobustQueue"):
        return {"queue": r.name}
    if name in ("Exchange", "RobustExchange"):
        return {"exchange": r.name}
    if hasattr(r, "__slots__") or hasattr(r, "__dict__"):  # a pamqp method frame, e.g. Queue.DeclareOk
        fields = {k: getattr(r, k) for k in getattr(r, "__slots__", ()) if not k.startswith("_")}
        return {"method": name, **fields}
    return repr(r)


# ===================================================================== the scenario environment
class Consumer:
    """Messages delivered to one ``basic.consume`` on a pika BlockingChannel."""

    def __init__(self, env, ch, queue, auto_ack=False, **kw):
        self.env = env
        self.ch = ch
        self.messages: list = []
        self.tag = ch.basic_consume(queue, self._on_message, auto_ack=auto_ack, **kw)

    def _on_message(self, ch, method, props, body):
        self.messages.append(message(method, props, body))

    def wait(self, n: int | None = None, timeout: float = 2.0) -> list:
        """All messages so far, after waiting until there are ``n`` (or ``timeout``; n=None waits it out)."""
        self.env.pump(self.ch.connection, timeout, lambda: n is not None and len(self.messages) >= n)
        return self.messages

    def take(self, n: int | None = None, timeout: float | None = None) -> list:
        """Return and forget the messages received so far; first ``wait(n, timeout)`` if either is given
        (timeout 2 s by default then)."""
        if n is not None or timeout is not None:
            self.wait(n, 2.0 if timeout is None else timeout)
        got, self.messages = self.messages, []
        return got

    def cancel(self):
        return self.ch.basic_cancel(self.tag)


class Env:
    """What a scenario gets: the target's URL, unique names, connections, and the outcome being recorded."""

    def __init__(self, target: Target, token: str):
        self.target = target
        self.token = token
        self.outcome: list = []
        self.queues: list[str] = []
        self.exchanges: list[str] = []
        self.policies: list[str] = []
        self.users: list[str] = []
        self.vhosts: list[str] = []
        self._conns: list = []
        self._aio_conns: list = []
        self._conn = None

    @property
    def is_reference(self) -> bool:
        return isinstance(self.target, ReferenceTarget)

    # ---------------------------------------------------------------- names
    def name(self, suffix: str) -> str:
        return f"{NAME_PREFIX}{self.token}-{suffix}"

    def queue(self, suffix: str) -> str:
        """A queue name this run owns (deleted after the scenario)."""
        n = self.name(suffix)
        self.queues.append(n)
        return n

    def exchange(self, suffix: str) -> str:
        """An exchange name this run owns (deleted after the scenario)."""
        n = self.name(suffix)
        self.exchanges.append(n)
        return n

    # ---------------------------------------------------------------- recording
    def record(self, label: str, value=None) -> None:
        self.outcome.append([label, value])

    def attempt(self, label: str, fn, *args, **kw):
        """Call ``fn``; record its result, or the channel/connection close it caused. Returns the result."""
        try:
            r = fn(*args, **kw)
        except ChannelClosedByBroker as e:
            self.record(label, {"channel_closed": [e.reply_code, e.reply_text]})
            return None
        except ConnectionClosedByBroker as e:
            self.record(label, {"connection_closed": [e.reply_code, e.reply_text]})
            return None
        except UnroutableError as e:
            self.record(label, {"unroutable": [message(m.method, m.properties, m.body) for m in e.messages]})
            return None
        except NackError as e:
            self.record(label, {"nacked": [message(m.method, m.properties, m.body) for m in e.messages]})
            return None
        self.record(label, {"ok": describe(r)})
        return r

    # ---------------------------------------------------------------- pika
    def connect(self, **params):
        p = pika.URLParameters(self.target.url)
        p.connection_attempts = 1
        for k, v in params.items():
            setattr(p, k, v)
        conn = pika.BlockingConnection(p)
        self._conns.append(conn)
        return conn

    @property
    def conn(self):
        """A shared BlockingConnection, reopened if a connection error closed it."""
        if self._conn is None or not self._conn.is_open:
            self._conn = self.connect()
        return self._conn

    def channel(self, conn=None):
        return (conn or self.conn).channel()

    def sync(self, ch) -> None:
        """A round trip on ``ch``, so that the effects (or the error) of asynchronous methods have arrived."""
        ch.exchange_declare("amq.direct", passive=True)

    def publish_sync(self, ch, label: str, exchange: str, routing_key: str, body: bytes = b"", properties=None,
                     **kw):
        """Publish, then a round trip: record ``ok`` or the channel/connection error it caused."""
        def go():
            ch.basic_publish(exchange, routing_key, body, properties, **kw)
            self.sync(ch)
        return self.attempt(label, go)

    def pump(self, conn, timeout: float, done=lambda: False) -> None:
        """Process I/O on ``conn`` until ``done()`` or ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while not done():
            left = end - time.monotonic()
            if left <= 0:
                break
            conn.process_data_events(time_limit=min(left, 0.05))

    def consumer(self, ch, queue, auto_ack=False, **kw) -> Consumer:
        return Consumer(self, ch, queue, auto_ack=auto_ack, **kw)

    def get_all(self, ch, queue, auto_ack=True, limit=1000) -> list:
        """Drain ``queue`` with basic.get: the messages, in order."""
        out = []
        for _ in range(limit):
            m, p, b = ch.basic_get(queue, auto_ack=auto_ack)
            if m is None:
                break
            out.append(message(m, p, b))
        return out

    def bodies(self, ch, queue) -> list:
        return [m["body"] for m in self.get_all(ch, queue)]

    def count(self, ch, queue) -> int:
        return ch.queue_declare(queue, passive=True).method.message_count

    # ---------------------------------------------------------------- aio-pika
    async def aio_connect(self, **kw):
        import aio_pika
        conn = await aio_pika.connect(self.target.url, **kw)
        self._aio_conns.append(conn)
        return conn

    async def aattempt(self, label: str, awaitable):
        """Await ``awaitable`` (aio-pika); record its result, or the error (aiormq's class and arguments)."""
        import aiormq.exceptions as me
        try:
            r = await awaitable
        except (me.AMQPChannelError, me.AMQPConnectionError) as e:
            kind = "connection_closed" if isinstance(e, me.AMQPConnectionError) else "channel_closed"
            self.record(label, {kind: [type(e).__name__, *[str(a) for a in e.args]]})
            return None
        self.record(label, {"ok": aio_describe(r)})
        return r

    # ---------------------------------------------------------------- administration
    def set_policy(self, suffix: str, pattern: str, definition: dict, priority: int = 0,
                   apply_to: str = "all") -> str:
        """Set a policy named ``env.name(suffix)`` (rabbitmqctl on the reference); return its name."""
        name = self.name(suffix)
        if name not in self.policies:
            self.policies.append(name)
        self.target.set_policy(name, pattern, definition, priority=priority, apply_to=apply_to)
        self.target.settle()
        return name

    def clear_policy(self, suffix: str) -> None:
        self.target.clear_policy(self.name(suffix))
        self.target.settle()

    def user(self, suffix: str, password: str, tags=(), permissions=None) -> str:
        """Add a user named ``env.name(suffix)`` (deleted after the scenario), with ``permissions``
        (configure, write, read) in the target's vhost if given; return its name."""
        name = self.name(suffix)
        self.users.append(name)
        self.target.add_user(name, password, tags)
        if permissions is not None:
            self.target.set_permissions(name, *permissions)
        return name

    def vhost(self, suffix: str) -> str:
        """Add a vhost named ``env.name(suffix)`` (deleted after the scenario); return its name."""
        name = self.name(suffix)
        self.vhosts.append(name)
        self.target.add_vhost(name)
        return name

    # ---------------------------------------------------------------- management HTTP API (mgmt.py)
    def http(self, method: str, p: str, body=None, **kw):
        """One request to the target's management API: ``(status, headers, body)``, nothing recorded."""
        from .mgmt import http
        if self.target.api_url is None:
            raise RuntimeError("this target has no management API: use the api_differ fixture")
        return http(self.target.api_url, method, p, body, **kw)

    def api(self, label: str, method: str, p: str, body=None, *, keys=True, values=(), headers=(), **kw):
        """Send a request to the management API and record its answer (mgmt.record_response); returns
        ``(status, body)``."""
        from .mgmt import record_response
        status, hdrs, data = self.http(method, p, body, **kw)
        self.record(label, record_response(status, hdrs, data, keys=keys, values=values, headers=headers))
        return status, data

    def connect_as(self, user: str, password: str, **params):
        """A BlockingConnection as ``user`` (to the target's vhost)."""
        return self.connect(credentials=pika.PlainCredentials(user, password), **params)

    def sleep(self, seconds: float) -> None:
        """Wait, keeping the shared connection serviced."""
        if self._conn is not None and self._conn.is_open:
            self.pump(self._conn, seconds)
        else:
            time.sleep(seconds)

    # ---------------------------------------------------------------- cleanup
    async def aclose(self) -> None:
        for c in self._aio_conns:
            try:
                await asyncio.wait_for(c.close(), 5)
            except Exception:
                pass
        self._aio_conns.clear()

    def cleanup(self) -> None:
        """Close connections, delete what the scenario named, clear its policies."""
        for c in self._conns:
            try:
                if c.is_open:
                    c.close()
            except Exception:
                pass
        self._conns.clear()
        if self.users:
            self.target.delete_users(self.users)
        if self.policies:
            self.target.clear_policies(self.policies)
        for v in self.vhosts:
            try:
                self.target.delete_vhost(v)
            except Exception:
                pass
        if not (self.queues or self.exchanges):
            return
        conn = pika.BlockingConnection(pika.URLParameters(self.target.url))
        try:
            ch = conn.channel()
            for q in dict.fromkeys(self.queues):
                try:
                    ch.queue_delete(q)
                except (ChannelClosedByBroker, ChannelWrongStateError):  # another connection's exclusive queue
                    ch = conn.channel()
            for x in dict.fromkeys(self.exchanges):
                try:
                    ch.exchange_delete(x)
                except (ChannelClosedByBroker, ChannelWrongStateError):
                    ch = conn.channel()
        finally:
            conn.close()


# ===================================================================== running
def execute(scenario, target: Target, token: str, *, crash_ok: bool) -> list:
    """Run ``scenario`` against ``target``; the raw outcome.  With ``crash_ok`` (WarrenMQ) an exception the
    scenario did not expect is recorded as the last entry, so it shows in the diff with the reference;
    without (the reference) it is raised: the scenario itself is broken."""
    env = Env(target, token)
    try:
        if inspect.iscoroutinefunction(scenario):
            async def main():
                try:
                    await scenario(env)
                finally:
                    await env.aclose()
            asyncio.run(main())
        else:
            scenario(env)
    except Exception as e:
        if not crash_ok:
            env.cleanup()
            raise
        env.record("unexpected failure", f"{type(e).__name__}: {e}")
    env.cleanup()
    return env.outcome


class GoldenStore:
    """Recorded RabbitMQ outcomes, one JSON file per test module."""

    def __init__(self, directory: Path = GOLDEN_DIR):
        self.directory = directory
        self._files: dict[str, dict] = {}
        self._dirty: set = set()

    def _load(self, module: str) -> dict:
        d = self._files.get(module)
        if d is None:
            path = self.directory / f"{module}.json"
            d = self._files[module] = json.loads(path.read_text()) if path.exists() else {}
        return d

    def get(self, module: str, test: str):
        return self._load(module).get(test)

    def put(self, module: str, test: str, outcome) -> None:
        self._load(module)[test] = outcome
        self._dirty.add(module)

    def save(self) -> None:
        self.directory.mkdir(exist_ok=True)
        for module in sorted(self._dirty):
            path = self.directory / f"{module}.json"
            path.write_text(json.dumps(self._files[module], indent=1, sort_keys=True, ensure_ascii=False) + "\n")
        self._dirty.clear()


def new_token() -> str:
    return uuid.uuid4().hex[:12]
