"""The management HTTP API in the differential suite: a private RabbitMQ node with the management plugin,
the HTTP side of a scenario (``env.api``), and how a response is recorded.

Theory of operation: the reference RabbitMQ that ``WARRENMQ_REFERENCE_URL`` names runs without the
management plugin (and must stay so), so the test session starts its own RabbitMQ node with the plugin
(:class:`PrivateNode`: free ports, a temporary directory, ``rabbitmq-server -detached``; stopped with
``rabbitmqctl -n NODE stop`` at the end of the session) when ``rabbitmq-server`` is installed, as in CI.
``WARRENMQ_REFERENCE_MGMT_URL`` (``http://user:pass@host:port/``) names an already running one instead.

A scenario sends the same HTTP calls to both brokers with ``env.api(label, method, path, ...)``, which
records what a client of the API relies on (:func:`record_response`): the status code; for an error the
whole JSON body (RabbitMQ's ``error`` and ``reason`` texts); for a success the object's keys, and the
values the scenario names (``values=``), item by item for lists, with the page fields for paginated
lists.  Keys are compared as a set minus :data:`NOT_COMPARED`: what belongs to the Erlang runtime,
what RabbitMQ's statistics collector adds only once it has sampled an object (so a fresh object on
RabbitMQ has them or not depending on timing), and WarrenMQ's own additions.  Where even that is not
stable, a scenario passes ``keys=(...)``: whether each of those keys is present is recorded.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from support.http import http  # noqa: F401 (harness imports http from here)

MGMT_URL_ENV = "WARRENMQ_REFERENCE_MGMT_URL"

#: keys never compared (see the module docstring)
NOT_COMPARED = frozenset({
    # the Erlang runtime's
    "erlang_version", "erlang_full_version", "release_series_support_status",
    # RabbitMQ's statistics collector: present once an object has been sampled, which is a race
    "message_stats", "idle_since", "garbage_collection", "reductions", "reductions_details",
    "messages_details", "messages_ready_details", "messages_unacknowledged_details",
    "recv_oct_details", "send_oct_details", "incoming", "outgoing", "deliveries",
    "messages", "messages_ready", "messages_unacknowledged", "recv_oct", "send_oct",
    # WarrenMQ's own additions
    "warrenmq_version", "python_version", "os", "statistics_interval",
})



def path(*segments: str) -> str:
    """``/a/b/c`` from path segments, each percent-encoded as RabbitMQ's paths want (``/`` is ``%2F``)."""
    return "".join("/" + urllib.parse.quote(s, safe="") for s in segments)


def api_until(env, label, method, p, ready, timeout=10.0, **kw):
    """``env.api`` once ``ready(body)`` holds (polling, unrecorded, up to ``timeout`` seconds): for what
    RabbitMQ shows only after its statistics collector has sampled an object."""
    end = time.monotonic() + timeout
    while True:
        status, _, data = env.http(method, p, **{k: v for k, v in kw.items() if k == "auth"})
        if (status == 200 and ready(data)) or time.monotonic() > end:
            return env.api(label, method, p, **kw)
        time.sleep(0.1)


def _keys(obj, keys) -> object:
    if keys is True:
        return sorted(k for k in obj if k not in NOT_COMPARED)
    return {k: k in obj for k in keys}


def _values(obj, values) -> dict:
    return {k: obj.get(k, "<absent>") for k in values}


def record_response(status: int, hdrs, data, *, keys=True, values=(), headers=()) -> dict:
    """What ``env.api`` records of one response (see the module docstring)."""
    out: dict = {"status": status}
    for h in headers:
        out[h.lower()] = hdrs.get(h)
    if data is None:
        return out
    if status >= 400 or not isinstance(data, (dict, list)):
        out["body"] = data
        return out
    if isinstance(data, dict) and "items" in data and "page" in data:
        out["page"] = {k: data.get(k) for k in ("filtered_count", "item_count", "page", "page_count",
                                                 "page_size", "total_count")}
        data = data["items"]
    if isinstance(data, list):
        if keys is not False and data:
            union: set = set()
            for item in data:
                union.update(item)
            out["keys"] = _keys(union, keys)
        if values:
            out["items"] = [_values(item, values) for item in data]
        elif keys is not False:  # keys=False: the status is what the scenario compares
            out["items"] = len(data)
        return out
    if keys is not False:
        out["keys"] = _keys(data, keys)
    if values:
        out["values"] = _values(data, values)
    return out


# ===================================================================== the private reference node
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PrivateNode:
    """A RabbitMQ node with the management plugin, for this test session only."""

    def __init__(self):
        self.port, self.mport, self.dport = _free_port(), _free_port(), _free_port()
        self.node = f"warrenmq-diff-{os.getpid()}@localhost"
        self.dir = tempfile.mkdtemp(prefix="warrenmq-diff-rmq-")
        self.started = False

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.mport}/api"

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def start(self, timeout: float = 90.0) -> None:
        d = self.dir
        with open(os.path.join(d, "conf"), "w") as f:
            f.write(f"listeners.tcp.default = {self.port}\nmanagement.tcp.port = {self.mport}\n"
                    "loopback_users = none\n"
                    # statistics every 0.5 s instead of 5: scenarios wait for a fresh object's statistics
                    "collect_statistics_interval = 500\n")
        with open(os.path.join(d, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_management].\n")
        if os.geteuid() == 0:  # the /usr/sbin wrapper runs the node as the rabbitmq user
            subprocess.run(["chown", "-R", "rabbitmq", d], check=False)
        env = dict(os.environ, RABBITMQ_NODENAME=self.node, RABBITMQ_NODE_PORT=str(self.port),
                   RABBITMQ_DIST_PORT=str(self.dport), RABBITMQ_CONFIG_FILE=f"{d}/conf",
                   RABBITMQ_ENABLED_PLUGINS_FILE=f"{d}/enabled_plugins", RABBITMQ_MNESIA_BASE=f"{d}/mnesia",
                   RABBITMQ_LOG_BASE=f"{d}/log", RABBITMQ_PID_FILE=f"{d}/pid")
        subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.started = True
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if http(self.api_url, "GET", "/overview")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"the private RabbitMQ node {self.node} did not answer on {self.api_url} "
                           f"within {timeout:.0f} s; see {d}/log")

    def stop(self) -> None:
        if self.started:
            subprocess.run(["rabbitmqctl", "-n", self.node, "stop"], check=False, timeout=60,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def existing_node():
    """``(api_url, amqp_url, auth)`` of the node ``WARRENMQ_REFERENCE_MGMT_URL`` names, or None."""
    url = os.environ.get(MGMT_URL_ENV)
    if not url:
        return None
    u = urllib.parse.urlsplit(url)
    auth = (urllib.parse.unquote(u.username or "guest"), urllib.parse.unquote(u.password or "guest"))
    api = f"{u.scheme}://{u.hostname}:{u.port or 15672}/api"
    status, _, overview = http(api, "GET", "/overview", auth=auth)
    if status != 200:
        raise RuntimeError(f"{MGMT_URL_ENV}={url}: GET /api/overview answered {status}")
    port = next(x["port"] for x in overview["listeners"] if x["protocol"] == "amqp")
    return api, f"amqp://{auth[0]}:{auth[1]}@{u.hostname}:{port}/%2F", auth
