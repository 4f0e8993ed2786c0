"""The object pages with statistics switched off: depths shown, rates and rate charts left out;
and the queue page on a 375 px screen (no horizontal scroll of the page), used by keyboard."""
from __future__ import annotations

import pika
import pytest
from playwright.sync_api import expect

from warrenmq.testing import EmbeddedBroker

from .test_object_pages import api, open_queue, section


@pytest.fixture(scope="module")
def ui_broker():
    with EmbeddedBroker(management=True, statistics_enabled=False) as b:
        yield b


def test_queue_page_without_statistics_shows_depths_not_rates(logged_in, ui_broker):
    page = logged_in
    conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    try:
        ch = conn.channel()
        ch.queue_declare("uio-nostats")
        for _ in range(3):
            ch.basic_publish("", "uio-nostats", b"m")
    finally:
        conn.close()
    assert "message_stats" not in api(ui_broker, "GET", "/queues/%2F/uio-nostats")[1]
    open_queue(page, "uio-nostats")
    overview = section(page, "Overview")
    expect(overview.locator("[data-fact=ready]")).to_have_text("3")
    expect(overview.get_by_role("figure").filter(has_text="Messages")).to_be_visible()
    expect(overview.get_by_role("figure").filter(has_text="Message rates")).to_have_count(0)
    expect(overview.get_by_role("rowheader", name="Publish")).to_have_count(0)


def test_queue_page_fits_a_narrow_screen_and_works_by_keyboard(logged_in, ui_broker):
    page = logged_in
    page.set_viewport_size({"width": 375, "height": 800})
    conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    try:
        conn.channel().queue_declare("uio-narrow-with-a-rather-long-name-for-a-small-screen")
    finally:
        conn.close()
    open_queue(page, "uio-narrow-with-a-rather-long-name-for-a-small-screen")
    expect(section(page, "Get messages")).to_be_visible()
    scroll = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert scroll <= 0, f"the page scrolls sideways by {scroll}px at 375px"
    # publish by keyboard: focus the payload, type, Tab to the encoding and the button, Enter
    pub = section(page, "Publish message")
    pub.get_by_label("Payload", exact=True).focus()
    page.keyboard.type("typed by keyboard")
    page.keyboard.press("Tab")  # payload encoding
    page.keyboard.press("Tab")  # the submit button
    expect(pub.get_by_role("button", name="Publish message")).to_be_focused()
    page.keyboard.press("Enter")
    expect(pub.get_by_role("status")).to_have_text("Message published.")
    expect(section(page, "Overview").locator("[data-fact=ready]")).to_have_text("1")
