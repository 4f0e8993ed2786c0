"""examples/iot end to end: MQTT devices, AMQP workers with SQLite, a dashboard in headless chromium.

Each test starts an :class:`EmbeddedBroker` with the management API, MQTT and
Web MQTT, and runs ``examples/iot/iot.py`` against it as a user would (one
command, the broker's addresses as options, the devices quiet: ``--interval 0``),
waiting for the lines it prints.  The dashboard is driven in Debian's chromium
with Playwright (the browser fixtures of tests/ui: ``executable_path``, skipped
without chromium unless ``WARRENMQ_REQUIRE_BROWSER=1``): alice and bob log in,
a device publishes through the example's ``publish`` role (paho-mqtt), and the
reading must show up, by its id, on the page of the user whose topic
permissions let them read that device, and not on the other's; the broker's
refusal of the other subscriptions must show as "no access".  Any console
error, page error or failed request fails the test.  The workers' SQLite
database is read directly: every reading stored once, the work shared between
the two workers, and a slow worker not handed a backlog (prefetch 1).
"""
from __future__ import annotations

import json
import re
import sqlite3
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from warrenmq.testing import EmbeddedBroker

from ..ui.conftest import ARGS, _playwright, browser, chromium_path  # noqa: F401 (fixtures)
from .test_examples import background, run  # noqa: F401 (fixture)

pytestmark = pytest.mark.timeout(180)
TIMEOUT_MS = 15_000
EXAMPLE = "iot/iot"


@dataclass
class IoT:
    broker: EmbeddedBroker
    url: str  # the AMQP URL the example was given (its vhost is the example's)
    db: Path
    dashboard: str
    script: object

    @property
    def mqtt(self) -> str:
        return f"127.0.0.1:{self.broker.mqtt_port}"

    def publish(self, device: str, count: int = 1) -> list[str]:
        """The example's publish role (MQTT only: it names no broker first); the ids of the readings it published."""
        r = run(EXAMPLE, "publish", self.url, "--mqtt", self.mqtt, device, str(count))
        assert (r.returncode, r.stderr) == (0, ""), r.stderr
        lines = r.stdout.splitlines()
        assert len(lines) == count, lines
        return [re.fullmatch(rf"{device}: published #\d+ reading (\w+) -?[\d.]+ °C", ln).group(1) for ln in lines]

    def stored(self, count: int, timeout: float = 20.0) -> list[tuple]:
        """Wait until the workers stored ``count`` readings; (id, device, worker) of each."""
        deadline = time.monotonic() + timeout
        rows = []
        while time.monotonic() < deadline:
            if self.db.exists():
                with sqlite3.connect(self.db, timeout=10) as db:
                    try:
                        rows = db.execute("SELECT id, device, worker FROM readings ORDER BY stored_at").fetchall()
                    except sqlite3.OperationalError:  # the table is not there yet
                        rows = []
                if len(rows) >= count:
                    return rows
            time.sleep(0.05)
        raise AssertionError(f"the workers stored {len(rows)} reading(s) within {timeout} s, not {count}: {rows}")


@pytest.fixture
def iot_broker():
    with EmbeddedBroker(management=True, web_mqtt=True) as b:
        yield b


def start(broker, tmp_path, background, *options, vhost: str = "%2F") -> IoT:
    db = tmp_path / "iot.db"
    url = broker.url.removesuffix("%2F") + vhost
    script = background(EXAMPLE, url, "--management", broker.management_url,
                        "--mqtt", f"127.0.0.1:{broker.mqtt_port}", "--web-mqtt", broker.web_mqtt_url,
                        "--web-port", "0", "--db", str(db), "--interval", "0", *options)
    script.expect(r"^setup: queue iot\.telemetry bound to amq\.topic with devices\.\*\.telemetry$")
    script.expect(r"^connected to WarrenMQ ")
    script.expect(r"^workers: 2 sharing queue iot\.telemetry \(prefetch 1\)")
    m = script.expect(r"^web: dashboard at (http://127\.0\.0\.1:\d+/) \(Web MQTT ws://")
    return IoT(broker, url, db, m.group(1), script)


@pytest.fixture
def iot(iot_broker, tmp_path, background):
    return start(iot_broker, tmp_path, background, "--work-ms", "20")


class Dashboard:
    """One user's browser context on the dashboard, collecting console errors, page errors, failed requests."""

    def __init__(self, browser, url: str):
        self.url = url
        self.context = browser.new_context(viewport={"width": 1100, "height": 800})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console error: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}: {r.failure}"))
        self.page.goto(url)

    def login(self, user: str, password: str) -> None:
        self.page.get_by_label("Username").fill(user)
        self.page.get_by_label("Password").fill(password)
        self.page.get_by_role("button", name="Log in").click()

    def access(self, device: str) -> str:
        return self.card(device).locator(".access").inner_text()

    def card(self, device: str):
        return self.page.get_by_role("article", name=device)

    def wait_for_access(self, device: str) -> str:
        """The device's subscription state once the broker answered the SUBSCRIBE."""
        self.page.wait_for_function(
            "d => { const c = document.querySelector(`article.device[data-device='${d}']`);"
            " return c && (c.classList.contains('live') || c.classList.contains('denied')); }", arg=device)
        return self.access(device)

    def wait_for_reading(self, reading: str) -> None:
        self.page.locator(f"#log li[data-reading-id='{reading}']").wait_for(state="visible")

    def readings(self) -> list[tuple[str, str]]:
        """(device, reading id) of every message in the page's log, newest first."""
        return [tuple(x) for x in self.page.locator("#log li").evaluate_all(
            "lis => lis.map(li => [li.dataset.device, li.dataset.readingId])")]

    def close(self) -> list[str]:
        self.context.close()
        return self.problems


@pytest.fixture
def dashboards(browser):
    opened = []

    def open_(url):
        opened.append(Dashboard(browser, url))
        return opened[-1]

    yield open_
    problems = [p for d in opened for p in d.close()]
    assert not problems, "the dashboard reported problems:\n" + "\n".join(problems)


@pytest.mark.parametrize("vhost", ["%2F", "iot"])  # in another vhost than /, MQTT logins are "iot:alice"
def test_each_user_sees_live_only_what_the_broker_lets_them_read(iot_broker, tmp_path, background, dashboards, vhost):
    iot = start(iot_broker, tmp_path, background, "--work-ms", "20", vhost=vhost)
    alice, bob = dashboards(iot.dashboard), dashboards(iot.dashboard)
    alice.login("alice", "alice-secret")
    bob.login("bob", "bob-secret")
    for page, user in ((alice, "alice"), (bob, "bob")):
        page.page.get_by_role("status").filter(has_text=f"Logged in as {user}").wait_for()
        assert not page.page.get_by_role("button", name="Log in").is_visible()  # the form made way
    # the broker granted or refused each device's SUBSCRIBE after the user's topic permissions
    assert {d: alice.wait_for_access(d) for d in ("greenhouse-1", "greenhouse-2", "freezer-1")} == {
        "greenhouse-1": "live", "greenhouse-2": "live", "freezer-1": "no access"}
    assert {d: bob.wait_for_access(d) for d in ("greenhouse-1", "greenhouse-2", "freezer-1")} == {
        "greenhouse-1": "no access", "greenhouse-2": "no access", "freezer-1": "live"}

    [greenhouse] = iot.publish("greenhouse-1")
    alice.wait_for_reading(greenhouse)
    assert alice.card("greenhouse-1").locator(".count").inner_text() == "1 message"
    [freezer] = iot.publish("freezer-1")
    bob.wait_for_reading(freezer)
    assert bob.card("freezer-1").locator(".count").inner_text() == "1 message"
    # a later message to bob's page came after alice's reading was routed: it would have reached bob by now
    alice.page.wait_for_timeout(300)
    assert alice.readings() == [("greenhouse-1", greenhouse)]
    assert bob.readings() == [("freezer-1", freezer)]

    # and the workers stored both, once each
    rows = iot.stored(2)
    assert sorted((r[0], r[1]) for r in rows) == sorted([(greenhouse, "greenhouse-1"), (freezer, "freezer-1")])
    assert {r[2] for r in rows} <= {"worker-1", "worker-2"}

    # logging out closes the page's connections: bob's next reading reaches his log no more
    bob.page.get_by_role("button", name="Log out").click()
    bob.page.get_by_role("button", name="Log in").wait_for()
    assert bob.page.get_by_role("status").inner_text() == "Not logged in"
    assert not bob.page.get_by_role("article").first.is_visible()
    [later] = iot.publish("freezer-1")
    iot.stored(3)
    assert later not in [r for _, r in bob.readings()]

    iot.script.interrupt()  # Ctrl-C: exits 0, nothing on stderr
    assert any(re.fullmatch(r"worker-[12]: stored \d+ reading\(s\)", ln) for ln in iot.script.seen + list(
        iter(lambda: iot.script.lines.get(timeout=5), None)))


def test_a_wrong_password_is_refused_by_the_broker(iot, dashboards):
    page = dashboards(iot.dashboard)
    page.login("alice", "not-her-password")
    # CONNACK 4, as RabbitMQ's MQTT plugin answers a wrong password; MQTT.js words it so
    page.page.get_by_role("alert").filter(has_text="Connection refused: Bad username or password").wait_for()
    assert page.page.get_by_role("status").inner_text() == "Not logged in"
    assert page.page.get_by_role("article").count() == 0


def test_two_workers_share_the_readings(iot):
    published = iot.publish("freezer-1", 20) + iot.publish("greenhouse-2", 20)
    rows = iot.stored(40)
    assert sorted(r[0] for r in rows) == sorted(published)  # each reading stored once
    per_worker = {w: sum(1 for r in rows if r[2] == w) for w in ("worker-1", "worker-2")}
    # equally fast workers with prefetch 1 take turns
    assert all(12 <= n <= 28 for n in per_worker.values()), per_worker


def test_a_slow_worker_is_not_given_a_backlog(iot_broker, tmp_path, background):
    # worker-2 takes 1 s per reading, worker-1 5 ms: with prefetch 1 the broker hands worker-2 its next
    # reading only once it acked the last, so worker-1 takes nearly all; without it, each would get half
    iot = start(iot_broker, tmp_path, background, "--work-ms", "5,1000")
    published = iot.publish("greenhouse-1", 16)
    rows = iot.stored(16)
    assert sorted(r[0] for r in rows) == sorted(published)
    slow = sum(1 for r in rows if r[2] == "worker-2")
    assert slow <= 3, f"the slow worker stored {slow} of 16"


def test_each_part_on_its_own(iot_broker, tmp_path, background):
    """The roles a user runs in separate terminals: setup, a worker, the devices, publish, web, readings, teardown."""
    url, db = iot_broker.url, str(tmp_path / "iot.db")
    broker = ["--management", iot_broker.management_url, "--mqtt", f"127.0.0.1:{iot_broker.mqtt_port}"]
    r = run(EXAMPLE, "setup", url, *broker)
    assert (r.returncode, r.stderr) == (0, "")
    assert r.stdout.splitlines()[-1] == "setup: queue iot.telemetry bound to amq.topic with devices.*.telemetry"

    worker = background(EXAMPLE, "worker", url, *broker, "--db", db, "--work-ms", "0")
    worker.expect(r"^connected to WarrenMQ ")
    devices = background(EXAMPLE, "devices", url, *broker, "--interval", "0.3")
    devices.expect(r"^devices: greenhouse-1, greenhouse-2, freezer-1 connected to MQTT at 127\.0\.0\.1:\d+")
    for device in ("greenhouse-1", "greenhouse-2", "freezer-1"):
        devices.expect(rf"^{device}: published #1 ")
        worker.expect(rf"^worker: stored {device} #1 \(-?[\d.]+ °C\)$")
    devices.interrupt()
    worker.interrupt()
    r = run(EXAMPLE, "readings", "--db", db)
    stored = {ln.split(":")[0]: int(re.search(r": (\d+) reading", ln).group(1)) for ln in r.stdout.splitlines()}
    assert set(stored) == {"greenhouse-1", "greenhouse-2", "freezer-1"} and min(stored.values()) >= 1, r.stdout

    dashboard = background(EXAMPLE, "web", url, "--web-mqtt", iot_broker.web_mqtt_url, "--web-port", "0")
    page = dashboard.expect(r"^web: dashboard at (http://\S+/) ").group(1)
    with urllib.request.urlopen(page + "config.json", timeout=10) as resp:
        assert json.load(resp) == {"web_mqtt": iot_broker.web_mqtt_url, "vhost": "/",
                                   "devices": ["greenhouse-1", "greenhouse-2", "freezer-1"]}
    with urllib.request.urlopen(page, timeout=10) as resp:
        assert b'<script type="module" src="/static/app.js">' in resp.read()
    dashboard.interrupt()

    r = run(EXAMPLE, "teardown", url, *broker)
    assert (r.returncode, r.stderr) == (0, ""), r.stderr
    # the devices' user is gone: the broker refuses its MQTT login
    r = run(EXAMPLE, "publish", url, *broker, "freezer-1")
    assert r.returncode == 1
    assert re.fullmatch(r"publish: freezer-1: MQTT login refused: .+\n", r.stderr), r.stderr
