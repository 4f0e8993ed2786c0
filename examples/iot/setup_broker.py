"""Who may do what: the example's users, permissions, queue and binding, made through the management API.

This is what a RabbitMQ administrator would do once, with the management UI,
``rabbitmqadmin`` or these same HTTP calls (RabbitMQ's HTTP API; WarrenMQ
answers them the same way).  Each user gets only what its part needs:

| user | part | permissions in the vhost (configure / write / read) | topic permissions on amq.topic (write / read) |
|---|---|---|---|
| iot-device | the devices, over MQTT | nothing / `amq.topic` / nothing | `devices.<id>.telemetry` / nothing |
| iot-worker | the workers, over AMQP | nothing / nothing / the `iot.telemetry` queue | (none needed) |
| alice, bob | the dashboard, over Web MQTT | their MQTT subscription queues; read `amq.topic` too | nothing / the devices they look after |

MQTT maps a topic ``devices/<id>/telemetry`` to the routing key
``devices.<id>.telemetry`` on ``amq.topic`` (``/`` and ``.`` swapped), so the
topic permissions are written for routing keys.  A subscription of the
dashboard binds its queue with such a key, and the broker checks that key
against the user's read pattern: alice's subscription to a freezer is refused
(SUBACK 0x80), bob's to a greenhouse likewise.  No part of the example filters
messages itself.
"""
from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from urllib.parse import quote

#: the simulated devices (what the dashboard lists)
DEVICES = ["greenhouse-1", "greenhouse-2", "freezer-1"]
#: the queue the workers share, and what is bound to it
QUEUE = "iot.telemetry"
BINDING_KEY = "devices.*.telemetry"
TELEMETRY = r"^devices\.[^.]+\.telemetry$"
SUBSCRIPTION_QUEUES = r"^mqtt-subscription-"  # what RabbitMQ's MQTT plugin names a subscriber's queues
NOTHING = "^$"  # matches no name (RabbitMQ reads "" as "nothing" too; this says it for topic keys as well)

#: user -> (password, what the user is)
USERS = {
    "iot-device": ("device-secret", "the devices' login (MQTT)"),
    "iot-worker": ("worker-secret", "the workers' login (AMQP)"),
    "alice": ("alice-secret", "looks after the greenhouses"),
    "bob": ("bob-secret", "looks after the freezer"),
}
#: user -> (configure, write, read)
PERMISSIONS = {
    "iot-device": (NOTHING, r"^amq\.topic$", NOTHING),
    "iot-worker": (NOTHING, NOTHING, f"^{re.escape(QUEUE)}$"),
    "alice": (SUBSCRIPTION_QUEUES, SUBSCRIPTION_QUEUES, r"^(amq\.topic|mqtt-subscription-.*)$"),
    "bob": (SUBSCRIPTION_QUEUES, SUBSCRIPTION_QUEUES, r"^(amq\.topic|mqtt-subscription-.*)$"),
}
#: user -> (write, read) routing-key patterns on amq.topic
TOPIC_PERMISSIONS = {
    "iot-device": (TELEMETRY, NOTHING),
    "alice": (NOTHING, r"^devices\.greenhouse-[^.]+\.telemetry$"),
    "bob": (NOTHING, r"^devices\.freezer-[^.]+\.telemetry$"),
}


class ManagementAPI:
    """The few calls of RabbitMQ's HTTP API the example needs (urllib, basic auth)."""

    def __init__(self, base_url: str, user: str, password: str):
        self.base = base_url.rstrip("/")
        self.auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Authorization": self.auth, "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                text = r.read()
        except urllib.error.HTTPError as e:
            if method == "DELETE" and e.code == 404:
                return None  # already gone
            raise SystemExit(f"setup: {method} {path}: {e.code} {e.read().decode(errors='replace')}") from None
        except urllib.error.URLError as e:  # nothing listening there, or not HTTP
            raise SystemExit(f"setup: no management API at {self.base} ({e.reason}); "
                             "--management names it") from None
        return json.loads(text) if text else None


def setup(api: ManagementAPI, vhost: str, prefix: str = "", say=print) -> None:
    """Create (or update: every call is idempotent) the users, permissions, queue and binding.

    ``prefix`` goes before every user name (``--user-prefix``: several copies of the example, or other
    users of that name, on one broker)."""
    v = quote(vhost, safe="")
    if vhost != "/":
        api.call("PUT", f"/api/vhosts/{v}", {})
    for user, (password, role) in USERS.items():
        name = quote(prefix + user, safe="")
        api.call("PUT", f"/api/users/{name}", {"password": password, "tags": ""})
        configure, write, read = PERMISSIONS[user]
        api.call("PUT", f"/api/permissions/{v}/{name}", {"configure": configure, "write": write, "read": read})
        if user in TOPIC_PERMISSIONS:
            twrite, tread = TOPIC_PERMISSIONS[user]
            api.call("PUT", f"/api/topic-permissions/{v}/{name}",
                     {"exchange": "amq.topic", "write": twrite, "read": tread})
        say(f"setup: user {prefix + user} ({role})")
    api.call("PUT", f"/api/queues/{v}/{QUEUE}", {"durable": True})
    api.call("POST", f"/api/bindings/{v}/e/amq.topic/q/{QUEUE}", {"routing_key": BINDING_KEY})
    say(f"setup: queue {QUEUE} bound to amq.topic with {BINDING_KEY}")


def teardown(api: ManagementAPI, vhost: str, prefix: str = "", say=print) -> None:
    """Remove what setup() made (a user's permissions go with it; a vhost other than the default too)."""
    for user in USERS:
        api.call("DELETE", f"/api/users/{quote(prefix + user, safe='')}")
    api.call("DELETE", f"/api/queues/{quote(vhost, safe='')}/{QUEUE}")
    if vhost != "/":
        api.call("DELETE", f"/api/vhosts/{quote(vhost, safe='')}")
    say(f"teardown: users {', '.join(prefix + u for u in USERS)} and queue {QUEUE}"
        f"{'' if vhost == '/' else f' and vhost {vhost}'} deleted")
