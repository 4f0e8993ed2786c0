"""The overview page: live rates after publishing with pika, depths, node facts, statistics off."""
import threading
import time

import pika
import pytest
from playwright.sync_api import expect

from warrenmq.testing import EmbeddedBroker

from .conftest import login


def legend_value(page, chart: str, key: str):
    return page.locator(f"#{chart} .chart-value[data-key='{key}']")


def wait_positive_rate(page, chart: str, key: str, timeout_ms: int = 15_000) -> None:
    """Until the legend of ``chart`` shows a rate above zero for ``key``."""
    page.wait_for_function(
        """([chart, key]) => {
             const el = document.querySelector(`#${chart} .chart-value[data-key='${key}']`);
             return el && parseFloat(el.textContent.replace(/,/g, '')) > 0;
           }""", arg=[chart, key], timeout=timeout_ms)


def test_a_publish_rate_appears_while_pika_publishes(logged_in, ui_broker):
    page = logged_in
    expect(page.locator("#rates figcaption")).to_have_text("Message rates")
    expect(legend_value(page, "rates", "publish")).to_have_text("0/s")  # idle before publishing
    stop = threading.Event()

    def publish():
        conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
        ch = conn.channel()
        ch.queue_declare("ui-rate", auto_delete=True)
        ch.confirm_delivery()
        while not stop.is_set():
            ch.basic_publish("", "ui-rate", b"x")
            time.sleep(0.01)
        ch.queue_delete("ui-rate")
        conn.close()

    t = threading.Thread(target=publish)
    t.start()
    try:
        wait_positive_rate(page, "rates", "publish")
        wait_positive_rate(page, "rates", "confirm")
        # the chart has points: uPlot drew its canvas
        assert page.locator("#rates canvas").count() >= 1
    finally:
        stop.set()
        t.join(10)
    # the rate falls back to zero once publishing stops
    expect(legend_value(page, "rates", "publish")).to_have_text("0/s", timeout=10_000)


def test_depths_and_totals_follow_the_queues(logged_in, ui_broker):
    page = logged_in
    conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    try:
        ch = conn.channel()
        ch.queue_declare("ui-depth")
        for _ in range(3):
            ch.basic_publish("", "ui-depth", b"m")
        expect(legend_value(page, "depths", "messages_ready")).to_have_text("3")
        expect(legend_value(page, "depths", "messages")).to_have_text("3")
        expect(page.locator("#totals dd[data-key='connections']")).to_have_text("1")
        expect(page.locator("#totals dd[data-key='queues']")).to_have_text("1")
        msg = ch.basic_get("ui-depth", auto_ack=False)
        assert msg[0] is not None
        expect(legend_value(page, "depths", "messages_unacknowledged")).to_have_text("1")
        expect(legend_value(page, "depths", "messages_ready")).to_have_text("2")
        ch.queue_delete("ui-depth")
    finally:
        conn.close()


def test_node_facts_and_listeners(logged_in, ui_broker):
    page = logged_in
    node = page.locator("#node")
    expect(node).to_contain_text("high watermark")
    expect(node).to_contain_text("Uptime")
    expect(node).to_contain_text("File descriptors")
    expect(page.locator("#alarms")).to_have_text("none")
    expect(page.locator("#version")).to_contain_text("RabbitMQ 3.10.8 compatible")
    listeners = page.locator("#listeners")
    expect(listeners).to_contain_text("amqp")
    expect(listeners).to_contain_text(str(ui_broker.app.server.port))


def test_an_alarm_shows_on_the_overview(logged_in, ui_broker):
    from warrenmq.broker.alarms import Alarm
    page = logged_in
    ui_broker.call(lambda: ui_broker.broker.set_alarm(Alarm.MEMORY, True))
    try:
        expect(page.locator("#alarms")).to_have_text("memory", timeout=10_000)
    finally:
        ui_broker.call(lambda: ui_broker.broker.set_alarm(Alarm.MEMORY, False))
    expect(page.locator("#alarms")).to_have_text("none", timeout=10_000)


@pytest.fixture(scope="module")
def no_stats_broker():
    with EmbeddedBroker(management=True, statistics_enabled=False) as b:
        yield b


def test_with_statistics_off_no_rates_but_depths(browser, no_stats_broker):
    context = browser.new_context(base_url=no_stats_broker.management_url)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        conn = pika.BlockingConnection(pika.URLParameters(no_stats_broker.url))
        ch = conn.channel()
        ch.queue_declare("ui-nostats")
        ch.basic_publish("", "ui-nostats", b"m")
        page.goto("/")
        login(page)
        expect(page.locator("#stats-off")).to_contain_text("message rates are not shown")
        expect(page.locator("#rates")).to_have_count(0)
        expect(legend_value(page, "depths", "messages_ready")).to_have_text("1")
        conn.close()
    finally:
        context.close()
    assert errors == []
