"""``warrenmq ctl``: the rabbitmqctl commands people script with, over the management HTTP API.

Theory of operation: every command is one or a few requests to the running
broker's management HTTP API (RabbitMQ's JSON shapes, :mod:`warrenmq.management`),
made with the standard library's urllib, so the same command works against a
broker on another machine (``--url``) and against RabbitMQ's own management
plugin.  The URL and credentials come from ``--url``/``--username``/``--password``,
else ``WARRENMQ_CTL_URL``/``WARRENMQ_CTL_USERNAME``/``WARRENMQ_CTL_PASSWORD``,
else ``http://localhost:15672`` as guest/guest.

Output is rabbitmqctl 3.10's: informational lines first ("Listing queues for
vhost / ...", which ``-q`` suppresses), then for the list commands a
tab-separated table with a header row (``-s``/``--no-table-headers`` drop it;
an empty list prints no header) whose columns are the info keys given as
arguments, each taken from the API object's field of the same name (a few are
renamed, :data:`LISTS`).  ``--formatter json`` prints what rabbitmqctl's json
formatter does: one object per line inside ``[`` ``]``, AMQP tables as
``[name, type, value]`` triples, and no informational lines.  WarrenMQ has no
Erlang processes: the ``pid`` columns show the connection's or channel's name,
and ``close_connection`` takes that name.

Failures are one line on stderr and rabbitmqctl's exit codes (sysexits): 64
usage, 65 data error (bad credentials in ``authenticate_user``, a missing
file), 67 no such user, 69 unavailable (broker unreachable, no such vhost,
queue, policy), 70 software error (user exists), 75 timeout, 77 refused by the
API (bad credentials or missing tags for the calling user).
"""
from __future__ import annotations

import argparse
import base64
import html
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_URL = "http://localhost:15672"
ENV_URL, ENV_USERNAME, ENV_PASSWORD = "WARRENMQ_CTL_URL", "WARRENMQ_CTL_USERNAME", "WARRENMQ_CTL_PASSWORD"

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOUSER = 67
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_TEMPFAIL = 75
EX_NOPERM = 77


class CtlError(Exception):
    """A failure: one line for stderr and rabbitmqctl's exit code."""

    def __init__(self, message: str, code: int = EX_SOFTWARE):
        super().__init__(message)
        self.code = code


class HttpError(Exception):
    """The API answered with an error status; ``reason`` is its JSON ``reason`` (or ``error``)."""

    def __init__(self, status: int, error: str, reason: str, method: str = "", path: str = ""):
        super().__init__(f"{status} {error}: {reason}")
        self.status, self.error, self.reason = status, error, reason
        self.method, self.path = method, path


# ------------------------------------------------------------------- HTTP
def path(*segments, **query) -> str:
    """``/api/seg/...?q=v`` with every segment percent-encoded (a vhost ``/`` is ``%2F``)."""
    p = "/api/" + "/".join(urllib.parse.quote(str(s), safe="") for s in segments)
    query = {k.replace("_", "-"): v for k, v in query.items() if v is not None}
    return p + ("?" + urllib.parse.urlencode(query) if query else "")


class Client:
    def __init__(self, url: str, username: str, password: str, timeout: float):
        self.url = url.rstrip("/")
        self.username, self.password, self.timeout = username, password, timeout

    def request(self, method: str, p: str, body=None, headers=None, auth=None, raw: bool = False):
        """The decoded JSON answer (``None`` for an empty one; bytes with ``raw``); :class:`HttpError`
        for an error status, :class:`CtlError` when the API cannot be reached or refuses the caller."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + p, data=data, method=method)
        user, password = auth or (self.username, self.password)
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                payload = r.read()
        except urllib.error.HTTPError as e:
            payload = e.read()
            try:
                doc = json.loads(payload) if payload.strip() else {}
            except ValueError:
                doc = {}
            if not isinstance(doc, dict):
                doc = {}
            err = HttpError(e.code, str(doc.get("error", "")), str(doc.get("reason") or doc.get("error") or e.reason),
                            method, p)
            if e.code == 401 and auth is None:
                raise CtlError(f"the management API at {self.url} refused user '{self.username}': "
                               f"{err.reason or 'login failed'}", EX_NOPERM) from None
            raise err from None
        except (socket.timeout, TimeoutError):
            raise CtlError(f"no answer from the management API at {self.url} within {self.timeout:g} seconds",
                           EX_TEMPFAIL) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise CtlError(f"cannot reach the management API at {self.url}: {reason}", EX_UNAVAILABLE) from None
        if raw:
            return payload
        if not payload.strip():
            return None
        try:
            return json.loads(payload)
        except ValueError:
            raise CtlError(f"{self.url} did not answer JSON: is it a management API?", EX_SOFTWARE) from None

    def get(self, p: str, **kw):
        return self.request("GET", p, **kw)

    def put(self, p: str, body: dict, **kw):
        return self.request("PUT", p, body, **kw)

    def delete(self, p: str, **kw):
        return self.request("DELETE", p, **kw)


# ------------------------------------------------------------------- output
class Out:
    """Informational lines (``-q`` drops them), tables and JSON, as rabbitmqctl prints them."""

    def __init__(self, args, stream=None):
        self.quiet = args.quiet or args.silent or args.formatter == "json"
        self.headers = not (args.silent or args.no_table_headers)
        self.json = args.formatter == "json"
        self.stream = stream or sys.stdout

    def info(self, line: str) -> None:
        if not self.quiet:
            self.write(line)

    def write(self, line: str) -> None:
        self.stream.write(line + "\n")

    def table(self, columns: list, rows: list) -> None:
        """``rows``: lists of raw values, one per column."""
        if self.json:
            objs = [json.dumps({c: json_value(v) for c, v in zip(columns, row)}, separators=(",", ":"),
                               ensure_ascii=False) for row in rows]
            self.stream.write("[\n" + "".join(("," if i else "") + o + "\n" for i, o in enumerate(objs)) + "]\n")
            return
        if not rows:
            return
        if self.headers:
            self.write("\t".join(columns))
        for row in rows:
            self.write("\t".join(table_value(v) for v in row))


def _amqp_type(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "signedint" if -2**31 <= v < 2**31 else "long"
    if isinstance(v, float):
        return "double"
    if isinstance(v, dict):
        return "table"
    if isinstance(v, list):
        return "array"
    if v is None:
        return "void"
    return "longstr"


class Table(dict):
    """An AMQP table (arguments, client properties): printed as rabbitmqctl prints one."""


def _erl(v) -> str:
    """rabbitmqctl's table rendering of a value inside an AMQP table: strings quoted, tables as
    ``[{"key",value}]``."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "[" + ",".join("{" + json.dumps(k, ensure_ascii=False) + "," + _erl(x) + "}" for k, x in v.items()) + "]"
    if isinstance(v, list):
        return "[" + ",".join(_erl(x) for x in v) + "]"
    if v is None:
        return "undefined"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return str(v)


def table_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, Table):
        return _erl(dict(v))
    if isinstance(v, dict):
        return json.dumps(v, separators=(",", ":"), ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(table_value(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}" if v != int(v) else f"{v:.1f}"
    return str(v)


def json_value(v):
    if isinstance(v, Table):
        return [[k, _amqp_type(x), json_value(Table(x)) if isinstance(x, dict) else x] for k, x in v.items()]
    return v


# ------------------------------------------------------------------- list commands
def _name(obj: dict, key: str):
    return (obj.get(key) or {}).get("name") if isinstance(obj.get(key), dict) else None


#: per list command: (info line, default columns, {column: how to read it from the API object}).
#: A column maps to the API field of the same name unless a function is given.
LISTS = {
    "list_queues": (
        ["name", "messages"],
        {k: None for k in (
            "arguments auto_delete consumer_capacity consumer_utilisation consumers disk_reads disk_writes durable "
            "exclusive exclusive_consumer_pid exclusive_consumer_tag head_message_timestamp leader members memory "
            "message_bytes message_bytes_persistent message_bytes_ram message_bytes_ready "
            "message_bytes_unacknowledged messages messages_persistent messages_ram messages_ready "
            "messages_ready_ram messages_unacknowledged messages_unacknowledged_ram name online owner_pid pid "
            "policy slave_pids state synchronised_slave_pids type").split()}
        | {"consumer_capacity": lambda o: o.get("consumer_capacity", o.get("consumer_utilisation")),
           "owner_pid": lambda o: _name(o, "owner_pid_details"),
           "pid": lambda o: o.get("name"),
           "leader": lambda o: o.get("leader", o.get("node")),
           "members": lambda o: o.get("members", [o.get("node")]),
           "online": lambda o: o.get("online", [o.get("node")])},
    ),
    "list_exchanges": (
        ["name", "type"],
        {k: None for k in "arguments auto_delete durable internal name policy type".split()},
    ),
    "list_bindings": (
        ["source_name", "source_kind", "destination_name", "destination_kind", "routing_key", "arguments"],
        {"source_name": lambda o: o.get("source"), "source_kind": lambda o: "exchange",
         "destination_name": lambda o: o.get("destination"),
         "destination_kind": lambda o: o.get("destination_type"),
         "routing_key": None, "arguments": None},
    ),
    "list_connections": (
        ["user", "peer_host", "peer_port", "state"],
        {k: None for k in (
            "auth_mechanism channel_max channels client_properties connected_at frame_max host name "
            "peer_cert_issuer peer_cert_subject peer_cert_validity peer_host peer_port pid port protocol "
            "recv_cnt recv_oct send_cnt send_oct send_pend ssl ssl_cipher ssl_hash ssl_key_exchange "
            "ssl_protocol state timeout user vhost").split()}
        | {"pid": lambda o: o.get("name")},
    ),
    "list_channels": (
        ["pid", "user", "consumer_count", "messages_unacknowledged"],
        {k: None for k in (
            "acks_uncommitted confirm connection consumer_count global_prefetch_count messages_unacknowledged "
            "messages_uncommitted messages_unconfirmed name number pid prefetch_count transactional user "
            "vhost").split()}
        | {"pid": lambda o: o.get("name"), "connection": lambda o: _name(o, "connection_details")},
    ),
    "list_consumers": (
        ["queue_name", "channel_pid", "consumer_tag", "ack_required", "prefetch_count", "active", "arguments"],
        {"queue_name": lambda o: _name(o, "queue"), "channel_pid": lambda o: _name(o, "channel_details"),
         "consumer_tag": None, "ack_required": None, "prefetch_count": None, "active": None,
         "activity_status": None, "arguments": None},
    ),
    "list_vhosts": (
        ["name"],
        {"name": None, "description": None, "tags": None, "tracing": None,
         "default_queue_type": lambda o: o.get("default_queue_type", "undefined"),
         "cluster_state": lambda o: Table(o.get("cluster_state") or {})},
    ),
}

#: API fields that are AMQP tables
TABLE_FIELDS = {"arguments", "client_properties"}


def _column(command: str, key: str, obj: dict):
    getter = LISTS[command][1][key]
    v = obj.get(key) if getter is None else getter(obj)
    if key in TABLE_FIELDS and isinstance(v, dict):
        return Table(v)
    return v


def _columns(command: str, given: list) -> list:
    defaults, known = LISTS[command]
    cols = [c for arg in given for c in arg.split(",") if c] or list(defaults)
    bad = [c for c in cols if c not in known]
    if bad:
        raise CtlError(f"Error (argument validation): Info key(s) {','.join(bad)} are not supported", EX_USAGE)
    return cols


def _list(client: Client, out: Out, command: str, args, p: str, vhost: str | None = None) -> int:
    cols = _columns(command, args.columns)
    try:
        items = client.get(p)
    except HttpError as e:
        # rabbitmqctl lists nothing for a vhost that does not exist (a 404 for one that does: no such endpoint)
        if e.status == 404 and vhost is not None and not _exists(client, path("vhosts", vhost)):
            items = []
        else:
            raise
    out.table(cols, [[_column(command, c, o) for c in cols] for o in items])
    return EX_OK


def cmd_list_queues(client, out, args):
    out.info(f"Timeout: {args.timeout:.1f} seconds ...")
    out.info(f"Listing queues for vhost {args.vhost} ...")
    return _list(client, out, "list_queues", args, path("queues", args.vhost), args.vhost)


def cmd_list_exchanges(client, out, args):
    out.info(f"Listing exchanges for vhost {args.vhost} ...")
    return _list(client, out, "list_exchanges", args, path("exchanges", args.vhost), args.vhost)


def cmd_list_bindings(client, out, args):
    out.info(f"Listing bindings for vhost {args.vhost}...")
    return _list(client, out, "list_bindings", args, path("bindings", args.vhost), args.vhost)


def cmd_list_connections(client, out, args):
    out.info("Listing connections ...")
    return _list(client, out, "list_connections", args, path("connections"))


def cmd_list_channels(client, out, args):
    out.info("Listing channels ...")
    return _list(client, out, "list_channels", args, path("channels"))


def cmd_list_consumers(client, out, args):
    out.info(f"Listing consumers in vhost {args.vhost} ...")
    return _list(client, out, "list_consumers", args, path("consumers", args.vhost), args.vhost)


def cmd_list_vhosts(client, out, args):
    out.info("Listing vhosts ...")
    return _list(client, out, "list_vhosts", args, path("vhosts"))


def cmd_list_users(client, out, args):
    out.info("Listing users ...")
    users = client.get(path("users"))
    out.table(["user", "tags"], [[u["name"], _tags(u.get("tags"))] for u in users])
    return EX_OK


def _tags(tags) -> list:
    if isinstance(tags, str):  # RabbitMQ before 3.9 answered a comma-separated string
        return [t for t in tags.split(",") if t]
    return list(tags or [])


def cmd_list_permissions(client, out, args):
    out.info(f'Listing permissions for vhost "{args.vhost}" ...')
    perms = _get_or_missing_vhost(client, path("vhosts", args.vhost, "permissions"), args.vhost)
    out.table(["user", "configure", "write", "read"],
              [[p["user"], p["configure"], p["write"], p["read"]] for p in perms])
    return EX_OK


def cmd_list_user_permissions(client, out, args):
    out.info(f'Listing permissions for user "{args.username_arg}" ...')
    try:
        perms = _get_or_missing_user(client, path("users", args.username_arg, "permissions"), args.username_arg)
    except CtlError as e:
        e.code = EX_UNAVAILABLE  # as rabbitmqctl answers here ({:no_such_user, ...}, 69)
        raise
    out.table(["vhost", "configure", "write", "read"],
              [[p["vhost"], p["configure"], p["write"], p["read"]] for p in perms])
    return EX_OK


def cmd_list_topic_permissions(client, out, args):
    out.info(f'Listing topic permissions for vhost "{args.vhost}" ...')
    perms = _get_or_missing_vhost(client, path("vhosts", args.vhost, "topic-permissions"), args.vhost)
    out.table(["user", "exchange", "write", "read"],
              [[p["user"], p["exchange"], p["write"], p["read"]] for p in perms])
    return EX_OK


def cmd_list_policies(client, out, args):
    out.info(f'Listing policies for vhost "{args.vhost}" ...')
    pols = _get_or_missing_vhost(client, path("policies", args.vhost), args.vhost)
    rows = [[p["vhost"], p["name"], p["pattern"], p.get("apply-to", "all"),
             json.dumps(p.get("definition", {}), separators=(",", ":"), ensure_ascii=False), p.get("priority", 0)]
            for p in pols]
    out.table(["vhost", "name", "pattern", "apply-to", "definition", "priority"], rows)
    return EX_OK


def cmd_list_vhost_limits(client, out, args):
    out.info(f'Listing limits for vhost "{args.vhost}" ...')
    limits = _get_or_missing_vhost(client, path("vhost-limits", args.vhost), args.vhost)
    value = limits[0].get("value", {}) if limits else {}
    if value:
        out.write(json.dumps(value, separators=(",", ":")))
    else:  # rabbitmqctl: an empty line, or [] as JSON
        out.write("[]" if out.json else "")
    return EX_OK


def _no_vhost(vhost: str) -> CtlError:
    return CtlError(f"Virtual host '{vhost}' does not exist", EX_DATAERR)


def _no_user(user: str) -> CtlError:
    return CtlError(f'User "{user}" does not exist', EX_NOUSER)


def _get_or_missing_vhost(client, p, vhost):
    try:
        return client.get(p)
    except HttpError as e:
        if e.status == 404 and not _exists(client, path("vhosts", vhost)):
            raise _no_vhost(vhost) from None
        raise  # the vhost exists: the API has no such endpoint


def _get_or_missing_user(client, p, user):
    try:
        return client.get(p)
    except HttpError as e:
        if e.status == 404 and (p == path("users", user) or not _exists(client, path("users", user))):
            raise _no_user(user) from None
        raise


def _exists(client, p) -> bool:
    try:
        client.get(p)
        return True
    except HttpError as e:
        if e.status == 404:
            return False
        raise


# ------------------------------------------------------------------- status
PURPOSES = {"amqp": "AMQP 0-9-1 and AMQP 1.0", "amqp/ssl": "AMQP 0-9-1 and AMQP 1.0 over TLS",
            "http": "HTTP API", "https": "HTTP API over TLS (HTTPS)",
            "clustering": "inter-node and CLI tool communication"}


def _gb(n) -> str:
    return f"{(n or 0) / 1e9:.4f} gb"


def cmd_status(client, out, args):
    overview = client.get(path("overview"))
    node_name = overview.get("node", "")
    out.info(f"Status of node {node_name} ...")
    try:
        node = client.get(path("nodes", node_name))
    except HttpError:
        node = {}
    vhosts = client.get(path("vhosts"))
    totals = overview.get("object_totals", {})
    listeners = [{"interface": x.get("ip_address"), "node": x.get("node"), "port": x.get("port"),
                  "protocol": x.get("protocol"), "purpose": PURPOSES.get(x.get("protocol"), "")}
                 for x in overview.get("listeners", [])]
    alarms = (["memory"] if node.get("mem_alarm") else []) + (["disk"] if node.get("disk_free_alarm") else [])
    status = {
        "alarms": alarms,
        "disk_free": node.get("disk_free"),
        "disk_free_limit": node.get("disk_free_limit"),
        "listeners": listeners,
        "memory": {"total": {"rss": node.get("mem_used")}},
        "os": (node.get("os") or "").split(" ")[0] or None,
        "pid": int(node["os_pid"]) if str(node.get("os_pid", "")).isdigit() else node.get("os_pid"),
        "product_name": overview.get("product_name"),
        "product_version": overview.get("product_version"),
        "rabbitmq_version": overview.get("rabbitmq_version"),
        "totals": {"connection_count": totals.get("connections", 0), "queue_count": totals.get("queues", 0),
                   "virtual_host_count": len(vhosts)},
        "uptime": (node.get("uptime") or 0) // 1000,
        "vm_memory_high_watermark_limit": node.get("mem_limit"),
    }
    if overview.get("warrenmq_version"):
        status["warrenmq_version"] = overview["warrenmq_version"]
    if out.json:
        out.write(json.dumps(status, separators=(",", ":")))
        return EX_OK
    lines = ["Runtime", "", f"OS PID: {status['pid']}"] + ([f"OS: {status['os']}"] if status["os"] else [])
    lines += [f"Uptime (seconds): {status['uptime']}", f"RabbitMQ version: {status['rabbitmq_version']}"]
    if "warrenmq_version" in status:
        lines.append(f"WarrenMQ version: {status['warrenmq_version']}")
    lines += [f"Node name: {node_name}", "", "Alarms", ""]
    lines += ([f"{'Memory' if a == 'memory' else 'Free disk space'} alarm on node {node_name}" for a in alarms]
              or ["(none)"])
    lines += ["", "Memory", "", f"Total memory used: {_gb(node.get('mem_used'))}",
              f"Memory high watermark: computed to: {_gb(node.get('mem_limit'))}", "",
              "Free Disk Space", "", f"Low free disk space watermark: {_gb(node.get('disk_free_limit'))}"]
    if node.get("disk_free") is not None:
        lines.append(f"Free disk space: {_gb(node.get('disk_free'))}")
    lines += ["", "Totals", "", f"Connection count: {status['totals']['connection_count']}",
              f"Queue count: {status['totals']['queue_count']}",
              f"Virtual host count: {status['totals']['virtual_host_count']}", "", "Listeners", ""]
    lines += [f"Interface: {x['interface']}, port: {x['port']}, protocol: {x['protocol']}, purpose: {x['purpose']}"
              for x in listeners]
    for line in lines:
        out.write(line)
    return EX_OK


def cmd_await_startup(client, out, args):
    """Wait until the API answers (the broker serves it once it is up), up to ``--timeout``."""
    deadline = time.monotonic() + args.timeout
    while True:
        try:
            client.get(path("overview"))
            return EX_OK
        except CtlError as e:
            if e.code != EX_UNAVAILABLE and e.code != EX_TEMPFAIL:
                raise
            if time.monotonic() >= deadline:
                raise CtlError(f"the broker did not start within {args.timeout:g} seconds ({e})",
                               EX_TEMPFAIL) from None
        time.sleep(0.2)


# ------------------------------------------------------------------- users
def cmd_add_user(client, out, args):
    out.info(f'Adding user "{args.username_arg}" ...')
    if _exists(client, path("users", args.username_arg)):
        raise CtlError(f'User "{args.username_arg}" already exists', EX_SOFTWARE)
    client.put(path("users", args.username_arg), {"password": args.password_arg, "tags": ""})
    out.info("Done. Don't forget to grant the user permissions to some virtual hosts! "
             "See 'rabbitmqctl help set_permissions' to learn more.")
    return EX_OK


def cmd_delete_user(client, out, args):
    out.info(f'Deleting user "{args.username_arg}" ...')
    try:
        client.delete(path("users", args.username_arg))
    except HttpError as e:
        if e.status == 404:
            raise _no_user(args.username_arg) from None
        raise
    return EX_OK


def _user(client, name: str) -> dict:
    return _get_or_missing_user(client, path("users", name), name)


def cmd_change_password(client, out, args):
    out.info(f'Changing password for user "{args.username_arg}" ...')
    user = _user(client, args.username_arg)
    client.put(path("users", args.username_arg),
               {"password": args.password_arg, "tags": ",".join(_tags(user.get("tags")))})
    return EX_OK


def cmd_set_user_tags(client, out, args):
    tags = args.tags
    out.info(f'Setting tags for user "{args.username_arg}" to [{", ".join(tags)}] ...')
    user = _user(client, args.username_arg)
    # the password hash goes back with the tags: a PUT without it would leave the user without a password
    body = {"password_hash": user.get("password_hash", ""), "tags": ",".join(tags)}
    if user.get("hashing_algorithm"):
        body["hashing_algorithm"] = user["hashing_algorithm"]
    client.put(path("users", args.username_arg), body)
    return EX_OK


def cmd_authenticate_user(client, out, args):
    """The user's own credentials against ``/api/whoami``: 200, or 401 "Not management user" (a user
    without management tags authenticated), is success; 401 "Login failed" is not."""
    name = args.username_arg
    out.info(f'Authenticating user "{name}" ...')
    try:
        client.get(path("whoami"), auth=(name, args.password_arg))
    except HttpError as e:
        if e.status != 401 or "login failed" in e.reason.lower() or not e.reason:
            raise CtlError(f'Error: failed to authenticate user "{name}": '
                           f"user '{name}' - invalid credentials", EX_DATAERR) from None
    out.info("Success")
    return EX_OK


# ------------------------------------------------------------------- vhosts
def cmd_add_vhost(client, out, args):
    out.info(f'Adding vhost "{args.vhost_arg}" ...')
    body = {}
    if args.description is not None:
        body["description"] = args.description
    if args.tags is not None:
        body["tags"] = args.tags
    if args.default_queue_type is not None:
        body["default_queue_type"] = args.default_queue_type
    client.put(path("vhosts", args.vhost_arg), body)
    return EX_OK


def cmd_delete_vhost(client, out, args):
    out.info(f'Deleting vhost "{args.vhost_arg}" ...')
    try:
        client.delete(path("vhosts", args.vhost_arg))
    except HttpError as e:
        if e.status == 404:
            raise CtlError(f"Virtual host '{args.vhost_arg}' does not exist", EX_DATAERR) from None
        raise
    return EX_OK


def cmd_set_vhost_limits(client, out, args):
    out.info(f'Setting vhost limits to "{args.definition}" for vhost "{args.vhost}" ...')
    limits = _json_arg(args.definition)
    if not isinstance(limits, dict):
        raise CtlError("JSON decoding error: the limits must be an object", EX_UNAVAILABLE)
    current = _get_or_missing_vhost(client, path("vhost-limits", args.vhost), args.vhost)
    old = current[0].get("value", {}) if current else {}
    # rabbitmqctl replaces the vhost's limits with the definition: limits it does not name are cleared
    for name in old:
        if name not in limits:
            client.delete(path("vhost-limits", args.vhost, name))
    for name, value in limits.items():
        _or_missing_vhost(lambda: client.put(path("vhost-limits", args.vhost, name), {"value": value}), args.vhost)
    return EX_OK


def _or_missing_vhost(call, vhost):
    try:
        return call()
    except HttpError as e:
        if e.status == 404:
            raise _no_vhost(vhost) from None
        raise CtlError(e.reason, EX_UNAVAILABLE) from None


def _json_arg(text: str):
    try:
        return json.loads(text)
    except ValueError as e:
        raise CtlError(f"JSON decoding error. Reason: {e}", EX_UNAVAILABLE) from None


# ------------------------------------------------------------------- permissions
def _user_and_vhost(client, user: str, vhost: str) -> None:
    """Say which of the two is missing, as rabbitmqctl does (the API answers one 400 for both)."""
    if not _exists(client, path("vhosts", vhost)):
        raise CtlError(f"Virtual host {vhost} does not exist", EX_UNAVAILABLE)
    if not _exists(client, path("users", user)):
        raise CtlError(f"User {user} does not exist", EX_NOUSER)


def _put_checked(client, p, body, user, vhost):
    try:
        client.put(p, body)
    except HttpError as e:
        if e.status in (400, 404):
            _user_and_vhost(client, user, vhost)
            raise CtlError(e.reason, EX_UNAVAILABLE) from None
        raise


def cmd_set_permissions(client, out, args):
    out.info(f'Setting permissions for user "{args.username_arg}" in vhost "{args.vhost}" ...')
    _put_checked(client, path("permissions", args.vhost, args.username_arg),
                 {"configure": args.conf, "write": args.write, "read": args.read}, args.username_arg, args.vhost)
    return EX_OK


def cmd_clear_permissions(client, out, args):
    out.info(f'Clearing permissions for user "{args.username_arg}" in vhost "{args.vhost}" ...')
    try:
        client.delete(path("permissions", args.vhost, args.username_arg))
    except HttpError as e:
        if e.status != 404:
            raise
        _user_and_vhost(client, args.username_arg, args.vhost)  # none to clear is fine, as in rabbitmqctl
    return EX_OK


def cmd_set_topic_permissions(client, out, args):
    out.info(f'Setting topic permissions on "{args.exchange}" for user "{args.username_arg}" '
             f'in vhost "{args.vhost}" ...')
    _put_checked(client, path("topic-permissions", args.vhost, args.username_arg),
                 {"exchange": args.exchange, "write": args.write, "read": args.read}, args.username_arg, args.vhost)
    return EX_OK


def cmd_clear_topic_permissions(client, out, args):
    out.info(f'Clearing topic permissions for user "{args.username_arg}" in vhost "{args.vhost}" ...')
    p = (path("topic-permissions", args.vhost, args.username_arg, args.exchange) if args.exchange
         else path("topic-permissions", args.vhost, args.username_arg))
    try:
        client.delete(p)
    except HttpError as e:
        if e.status != 404:
            raise
        _user_and_vhost(client, args.username_arg, args.vhost)
    return EX_OK


# ------------------------------------------------------------------- policies
def cmd_set_policy(client, out, args):
    out.info(f'Setting policy "{args.name}" for pattern "{args.pattern}" to "{args.definition}" '
             f'with priority "{args.priority}" for vhost "{args.vhost}" ...')
    definition = _json_arg(args.definition)
    body = {"pattern": args.pattern, "definition": definition, "priority": args.priority,
            "apply-to": args.apply_to}
    _or_missing_vhost(lambda: client.put(path("policies", args.vhost, args.name), body), args.vhost)
    return EX_OK


def cmd_clear_policy(client, out, args):
    out.info(f'Clearing policy "{args.name}" on vhost "{args.vhost}" ...')
    try:
        client.delete(path("policies", args.vhost, args.name))
    except HttpError as e:
        if e.status == 404:
            raise CtlError("Parameter does not exist", EX_UNAVAILABLE) from None
        raise
    return EX_OK


# ------------------------------------------------------------------- runtime parameters, shovels
def cmd_set_parameter(client, out, args):
    out.info(f'Setting runtime parameter "{args.name}" for component "{args.component}" to "{args.value}" '
             f'in vhost "{args.vhost}" ...')
    value = _json_arg(args.value)
    try:
        client.put(path("parameters", args.component, args.vhost, args.name), {"value": value})
    except HttpError as e:
        if e.status == 404:
            raise _no_vhost(args.vhost) from None
        raise CtlError("Error:\n" + html.unescape(e.reason or ""), EX_UNAVAILABLE) from None
    return EX_OK


def cmd_clear_parameter(client, out, args):
    out.info(f'Clearing runtime parameter "{args.name}" for component "{args.component}" on vhost "{args.vhost}" ...')
    try:
        client.delete(path("parameters", args.component, args.vhost, args.name))
    except HttpError as e:
        if e.status == 404:
            raise CtlError("Error:\nParameter does not exist", EX_UNAVAILABLE) from None
        raise
    return EX_OK


def cmd_list_parameters(client, out, args):
    out.info(f'Listing runtime parameters for vhost "{args.vhost}" ...')
    params = _get_or_missing_vhost(client, path("parameters"), args.vhost)
    rows = [[p["component"], p["name"], json.dumps(p["value"], separators=(",", ":"), ensure_ascii=False)]
            for p in params if p["vhost"] == args.vhost and p["component"] not in ("vhost-limits", "operator_policy")]
    out.table(["component", "name", "value"], rows)
    return EX_OK


#: /api/shovels fields -> rabbitmqctl shovel_status keys
_SHOVEL_KEYS = {"dest_uri": "destination", "dest_protocol": "destination_protocol", "dest_queue": "destination_queue",
                "dest_exchange": "destination_exchange", "dest_exchange_key": "destination_exchange_key",
                "timestamp": "last_changed", "src_uri": "source", "src_protocol": "source_protocol",
                "src_queue": "source_queue", "src_exchange": "source_exchange",
                "src_exchange_key": "source_exchange_key", "reason": "termination_reason", "name": "name",
                "state": "state", "type": "type", "vhost": "vhost"}


def cmd_shovel_status(client, out, args):
    shovels = client.get(path("shovels"))
    node = shovels[0]["node"] if shovels else client.get(path("overview")).get("node", "")
    out.info(f"Shovel status on node {node}")
    rows = []
    for s in shovels:
        row = {k: "" for k in ("termination_reason",)}
        row.update({_SHOVEL_KEYS[k]: v for k, v in s.items() if k in _SHOVEL_KEYS})
        date, _, clock = row.get("last_changed", "").partition(" ")
        if len(clock) == 7:  # the API prints the hour unpadded (0:28:03), rabbitmqctl pads it
            row["last_changed"] = f"{date} 0{clock}"
        rows.append(dict(sorted(row.items())))
    if out.json:  # rabbitmqctl prints each shovel with its own keys
        out.stream.write("[\n" + "".join(("," if i else "") + json.dumps(r, separators=(",", ":"), ensure_ascii=False)
                                          + "\n" for i, r in enumerate(rows)) + "]\n")
        return EX_OK
    if rows and out.headers:
        out.write("\t".join(max((list(r) for r in rows), key=len)))
    for r in rows:
        out.write("\t".join(table_value(v) for v in r.values()))
    return EX_OK


#: rabbitmqctl federation_status's keys, in its order; /api/federation-links' ``timestamp`` is ``last_changed``
_FEDERATION_KEYS = ("error", "exchange", "id", "last_changed", "local_connection", "queue", "status", "type",
                    "upstream", "upstream_exchange", "upstream_queue", "uri", "vhost")
_FEDERATION_ATOMS = ("status", "type")  # printed bare, as Erlang atoms


def cmd_federation_status(client, out, args):
    links = client.get(path("federation-links"))
    node = links[0]["node"] if links else client.get(path("overview")).get("node", "")
    if args.only_down:
        links = [x for x in links if x.get("status") != "running"]
        out.info(f"Listing federation links which are down on node {node}...")
    else:
        out.info(f"Listing federation links on node {node}...")
    rows = []
    for link in links:
        stamp = link.get("timestamp") or ""  # the API's hour is not padded, rabbitmqctl's is
        day, _, clock = stamp.partition(" ")
        fields = dict(link, last_changed=f"{day} {clock.zfill(8)}" if clock else stamp)
        rows.append({k: fields.get(k) or "" for k in _FEDERATION_KEYS})
    if out.json:
        out.stream.write("[\n" + "".join(("," if i else "") + json.dumps(r, separators=(",", ":"), ensure_ascii=False)
                                          + "\n" for i, r in enumerate(rows)) + "]\n")
        return EX_OK

    def term(k, v):  # rabbitmqctl prints the links as Erlang maps
        if k in _FEDERATION_ATOMS or (k == "error" and v and v.isidentifier() and v.islower()):
            return v
        return "<<" + (json.dumps(v, ensure_ascii=False) if v else "") + ">>"
    out.write("[" + ",\n ".join("#{" + ",".join(f"{k} => {term(k, v)}" for k, v in r.items()) + "}"
                                 for r in rows) + "]")
    return EX_OK


def cmd_restart_federation_link(client, out, args):
    links = client.get(path("federation-links"))
    node = links[0]["node"] if links else client.get(path("overview")).get("node", "")
    out.info(f"Restarting federation link {args.link_id} on node {node}")
    for link in links:
        if link.get("id") == args.link_id:
            client.delete(path("federation-links", "vhost", link["vhost"], link["id"], link["node"], "restart"))
            return EX_OK
    raise CtlError("Error:\nLink with the given ID was not found", EX_UNAVAILABLE)


# ------------------------------------------------------------------- queues
def _queue_not_found(args) -> CtlError:
    return CtlError(f"queue '{args.queue}' in vhost '{args.vhost}' not found", EX_UNAVAILABLE)


def cmd_purge_queue(client, out, args):
    out.info(f"Purging queue '{args.queue}' in vhost '{args.vhost}' ...")
    try:
        client.delete(path("queues", args.vhost, args.queue, "contents"))
    except HttpError as e:
        if e.status == 404:
            raise _queue_not_found(args) from None
        raise
    return EX_OK


def cmd_delete_queue(client, out, args):
    conditions = " and ".join((["queue is empty"] if args.if_empty else []) + (["queue is unused"] if args.if_unused
                                                                               else []))
    out.info(f"Deleting queue '{args.queue}' on vhost '{args.vhost}'" + (f" if {conditions}" if conditions else "")
             + " ...")
    qpath = path("queues", args.vhost, args.queue)
    try:
        ready = client.get(qpath).get("messages_ready", 0)
        client.delete(path("queues", args.vhost, args.queue, if_empty="true" if args.if_empty else None,
                           if_unused="true" if args.if_unused else None))
    except HttpError as e:
        if e.status == 404:
            raise CtlError(f"Queue not found: '{args.queue}' in vhost '{args.vhost}'", EX_USAGE) from None
        if e.status == 400:  # if-empty / if-unused refused
            raise CtlError(f"Queue '{args.queue}' was not deleted: {e.reason}", EX_SOFTWARE) from None
        raise
    out.info(f"Queue was successfully deleted with {ready} ready messages")
    return EX_OK


# ------------------------------------------------------------------- connections
def _close(client, name: str, reason: str) -> None:
    client.delete(path("connections", name), headers={"X-Reason": reason})


def cmd_close_connection(client, out, args):
    out.info(f"Closing connection {args.connection}, reason: {args.reason}...")
    try:
        _close(client, args.connection, args.reason)
    except HttpError as e:
        if e.status == 404:
            raise CtlError(f"no connection named '{args.connection}' (list_connections name)",
                           EX_UNAVAILABLE) from None
        raise
    return EX_OK


def cmd_close_all_connections(client, out, args):
    if args.globally:
        out.info(f"Closing all connections to node {args.node_name or 'the broker'} (across all vhosts), "
                 f"reason: {args.reason}...")
        conns = client.get(path("connections"))
    else:
        out.info(f"Closing all connections in vhost {args.vhost}, reason: {args.reason}...")
        try:
            conns = _get_or_missing_vhost(client, path("vhosts", args.vhost, "connections"), args.vhost)
        except CtlError:  # no such vhost: nothing to close, as rabbitmqctl
            conns = []
    if args.limit:
        conns = conns[:args.limit]
    closed = 0
    for i, c in enumerate(conns):
        if i and args.per_connection_delay:
            time.sleep(args.per_connection_delay / 1000)
        try:
            _close(client, c["name"], args.reason)
            closed += 1
        except HttpError as e:
            if e.status != 404:  # closed meanwhile
                raise
    out.info(f"Closed {closed} connections")
    return EX_OK


# ------------------------------------------------------------------- definitions
def cmd_export_definitions(client, out, args):
    to_stdout = args.file == "-"
    if not to_stdout:
        out.info(f'Exporting definitions in JSON to a file at "{args.file}" ...')
    p = path("definitions", args.vhost) if args.definitions_vhost else path("definitions")
    raw = client.get(p, raw=True)
    if to_stdout:
        out.stream.write(raw.decode("utf-8"))
        out.stream.flush()
        return EX_OK
    try:
        with open(args.file, "wb") as f:
            f.write(raw)
    except OSError as e:
        raise CtlError(f"cannot write {args.file}: {e.strerror or e}", EX_DATAERR) from None
    return EX_OK


def cmd_import_definitions(client, out, args):
    if args.file == "-":
        out.info("Importing definitions in JSON from standard input ...")
        data = sys.stdin.buffer.read()
    else:
        out.info(f'Importing definitions in JSON from a file at "{args.file}" ...')
        try:
            with open(args.file, "rb") as f:
                data = f.read()
        except OSError as e:
            raise CtlError(f"Bad argument: File {args.file} could not be read: {e.strerror or e}",
                           EX_DATAERR) from None
    try:
        json.loads(data)
    except ValueError as e:
        raise CtlError(f"Bad argument: {args.file} is not JSON: {e}", EX_DATAERR) from None
    p = path("definitions", args.vhost) if args.definitions_vhost else path("definitions")
    try:
        client.request("POST", p, data)
    except HttpError as e:
        raise CtlError(f"definitions import failed: {e.reason}", EX_DATAERR) from None
    out.info("Successfully started definition import. This process is asynchronous and can take some time.")
    return EX_OK


# ------------------------------------------------------------------- the parser
def _nonneg_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}")
    return v


def _common(suppress: bool) -> argparse.ArgumentParser:
    """The options accepted before the command and after it (rabbitmqctl takes them anywhere)."""
    d = argparse.SUPPRESS if suppress else None
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection and output (before or after the command)")
    g.add_argument("--url", default=d, help=f"management API base URL (${ENV_URL}; default {DEFAULT_URL})")
    g.add_argument("--username", default=d, help=f"API user (${ENV_USERNAME}; default guest)")
    g.add_argument("--password", default=d, help=f"API password (${ENV_PASSWORD}; default guest)")
    g.add_argument("-p", "--vhost", default=d, help="virtual host (default /)")
    g.add_argument("-q", "--quiet", action="store_true", default=d, help="suppress informational messages")
    g.add_argument("-s", "--silent", action="store_true", default=d,
                   help="suppress informational messages and table headers")
    g.add_argument("--no-table-headers", action="store_true", default=d, help="no table header row")
    g.add_argument("--formatter", choices=("table", "json"), default=d, help="output format (default table)")
    g.add_argument("-t", "--timeout", type=_nonneg_float, default=d,
                   help="seconds to wait for the API (await_startup: for the broker; default 60, 300)")
    return p


#: command: (handler, help, [(argparse args, kwargs)], table output?)
def _commands():
    cols = [(("columns",), {"nargs": "*", "metavar": "column", "help": "info keys to show"})]
    user = [(("username_arg",), {"metavar": "username"})]
    user_pw = user + [(("password_arg",), {"metavar": "password"})]
    queue = [(("queue",), {})]
    return {
        "status": (cmd_status, "the node's status", []),
        "await_startup": (cmd_await_startup, "wait until the broker answers", []),
        "list_queues": (cmd_list_queues, "queues and their properties", cols),
        "list_exchanges": (cmd_list_exchanges, "exchanges", cols),
        "list_bindings": (cmd_list_bindings, "bindings", cols),
        "list_connections": (cmd_list_connections, "AMQP connections", cols),
        "list_channels": (cmd_list_channels, "AMQP channels", cols),
        "list_consumers": (cmd_list_consumers, "consumers", cols),
        "list_vhosts": (cmd_list_vhosts, "virtual hosts", cols),
        "list_users": (cmd_list_users, "users and their tags", []),
        "list_permissions": (cmd_list_permissions, "user permissions in a vhost", []),
        "list_user_permissions": (cmd_list_user_permissions, "a user's permissions in every vhost", user),
        "list_topic_permissions": (cmd_list_topic_permissions, "topic permissions in a vhost", []),
        "list_policies": (cmd_list_policies, "policies in a vhost", []),
        "list_vhost_limits": (cmd_list_vhost_limits, "a vhost's limits", []),
        "add_user": (cmd_add_user, "create a user", user_pw),
        "delete_user": (cmd_delete_user, "delete a user", user),
        "change_password": (cmd_change_password, "change a user's password", user_pw),
        "authenticate_user": (cmd_authenticate_user, "check a user's password", user_pw),
        "set_user_tags": (cmd_set_user_tags, "replace a user's tags", user + [(("tags",), {"nargs": "*"})]),
        "add_vhost": (cmd_add_vhost, "create a virtual host", [
            (("vhost_arg",), {"metavar": "vhost"}),
            (("--description",), {}), (("--tags",), {}), (("--default-queue-type",), {})]),
        "delete_vhost": (cmd_delete_vhost, "delete a virtual host", [(("vhost_arg",), {"metavar": "vhost"})]),
        "set_permissions": (cmd_set_permissions, "set a user's permissions in a vhost", user + [
            (("conf",), {}), (("write",), {}), (("read",), {})]),
        "clear_permissions": (cmd_clear_permissions, "revoke a user's permissions in a vhost", user),
        "set_topic_permissions": (cmd_set_topic_permissions, "set a user's topic permissions", user + [
            (("exchange",), {}), (("write",), {}), (("read",), {})]),
        "clear_topic_permissions": (cmd_clear_topic_permissions, "clear a user's topic permissions", user + [
            (("exchange",), {"nargs": "?"})]),
        "set_policy": (cmd_set_policy, "set a policy", [
            (("name",), {}), (("pattern",), {}), (("definition",), {}),
            (("--priority",), {"type": int, "default": 0}),
            (("--apply-to",), {"default": "all", "choices": ("all", "queues", "exchanges")})]),
        "clear_policy": (cmd_clear_policy, "clear a policy", [(("name",), {})]),
        "set_parameter": (cmd_set_parameter, "set a runtime parameter (shovel, federation-upstream, ...)", [
            (("component",), {}), (("name",), {}), (("value",), {"help": "JSON"})]),
        "clear_parameter": (cmd_clear_parameter, "clear a runtime parameter", [(("component",), {}), (("name",), {})]),
        "list_parameters": (cmd_list_parameters, "runtime parameters in a vhost", []),
        "shovel_status": (cmd_shovel_status, "the status of every shovel", []),
        "federation_status": (cmd_federation_status, "the status of every federation link", [
            (("--only-down",), {"action": "store_true", "dest": "only_down", "help": "only the links not running"})]),
        "restart_federation_link": (cmd_restart_federation_link, "restart a federation link (by its id)", [
            (("link_id",), {})]),
        "set_vhost_limits": (cmd_set_vhost_limits, "set a vhost's limits (JSON)", [(("definition",), {})]),
        "purge_queue": (cmd_purge_queue, "purge a queue", queue),
        "delete_queue": (cmd_delete_queue, "delete a queue", queue + [
            (("-e", "--if-empty"), {"action": "store_true"}), (("-u", "--if-unused"), {"action": "store_true"})]),
        "close_connection": (cmd_close_connection, "close a connection (by its name)", [
            (("connection",), {"metavar": "name"}), (("reason",), {})]),
        "close_all_connections": (cmd_close_all_connections, "close a vhost's (or every) connection", [
            (("reason",), {}), (("--global",), {"action": "store_true", "dest": "globally"}),
            (("--per-connection-delay",), {"type": int, "default": 0}), (("--limit",), {"type": int, "default": 0}),
            (("--node",), {"dest": "node_name"})]),
        "export_definitions": (cmd_export_definitions, "write the definitions to a file (or - for stdout)", [
            (("file",), {}), (("--vhost-only",), {"action": "store_true", "dest": "definitions_vhost",
                                                   "help": "only the definitions of --vhost"})]),
        "import_definitions": (cmd_import_definitions, "load definitions from a file (or - for stdin)", [
            (("file",), {}), (("--vhost-only",), {"action": "store_true", "dest": "definitions_vhost",
                                                   "help": "into --vhost only"})]),
    }


class _Parser(argparse.ArgumentParser):
    """Usage errors are one line and exit 64, as rabbitmqctl's argument validation."""

    def error(self, message):
        if message.startswith("argument command: invalid choice:"):
            bad = message.split("invalid choice:", 1)[1].split("(choose", 1)[0].strip().strip("'")
            raise CtlError(f"Command '{bad}' not found (see `warrenmq ctl --help`)", EX_USAGE)
        raise CtlError(f"Error (argument validation): {message} (see `{self.prog} --help`)", EX_USAGE)


def build_parser():
    common = _common(suppress=True)
    p = _Parser(prog="warrenmq ctl", parents=[_common(suppress=False)],
                description="rabbitmqctl's commands against a running broker, over its management HTTP API "
                            "(docs/cli.md).")
    sub = p.add_subparsers(dest="command", metavar="command", parser_class=_Parser)
    for name, (handler, helptext, spec) in _commands().items():
        sp = sub.add_parser(name, help=helptext, parents=[common], description=helptext)
        for a, kw in spec:
            sp.add_argument(*a, **kw)
        sp.set_defaults(handler=handler)
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
        if not getattr(args, "command", None):
            raise CtlError("Error (argument validation): no command given (see `warrenmq ctl --help`)", EX_USAGE)
        env = os.environ
        args.url = args.url or env.get(ENV_URL) or DEFAULT_URL
        args.username = args.username if args.username is not None else env.get(ENV_USERNAME, "guest")
        args.password = args.password if args.password is not None else env.get(ENV_PASSWORD, "guest")
        args.vhost = args.vhost if args.vhost is not None else "/"
        for flag in ("quiet", "silent", "no_table_headers"):
            setattr(args, flag, bool(getattr(args, flag, False)))
        args.formatter = args.formatter or "table"
        if args.timeout is None:
            args.timeout = 300.0 if args.command == "await_startup" else 60.0
        client = Client(args.url, args.username, args.password,
                        timeout=min(args.timeout, 10.0) if args.command == "await_startup" else args.timeout or 60)
        if args.command in LISTS:
            _columns(args.command, args.columns)  # a bad column fails before anything is printed
        out = Out(args)
        code = args.handler(client, out, args)
        sys.stdout.flush()
        return code
    except CtlError as e:
        sys.stdout.flush()
        text = str(e)
        print(text if text.startswith("Error") else f"Error: {text}", file=sys.stderr)
        return e.code
    except HttpError as e:
        sys.stdout.flush()
        print(f"Error: {e.method} {args.url}{e.path} answered {e.status}: {e.reason or e.error}", file=sys.stderr)
        return EX_UNAVAILABLE if e.status == 404 else EX_SOFTWARE
    except BrokenPipeError:
        return EX_OK
