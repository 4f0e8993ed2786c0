"""The queue page's "Move messages" (RabbitMQ's UI with the shovel plugin): a temporary shovel moves the
queue's messages to another queue of the vhost, then deletes itself; the page goes back to the queues list."""
from __future__ import annotations

import time

from playwright.sync_api import expect

from .test_object_pages import api, channel, open_queue, q, queue_depth, section  # noqa: F401 - channel: fixture


def test_move_messages_to_another_queue(logged_in, ui_broker, channel):  # noqa: F811
    page = logged_in
    channel.queue_declare("uim-from")
    channel.queue_declare("uim-to")
    for i in range(25):
        channel.basic_publish("", "uim-from", f"m{i}".encode())
    open_queue(page, "uim-from")
    move = section(page, "Move messages")
    move.get_by_label("Destination queue").fill("uim-to")
    move.get_by_role("button", name="Move messages").click()
    expect(page).to_have_url(f"{page.url.split('#')[0]}#/queues")
    deadline = time.time() + 10
    while queue_depth(ui_broker, "/", "uim-to") < 25 and time.time() < deadline:
        time.sleep(0.1)
    assert queue_depth(ui_broker, "/", "uim-to") == 25 and queue_depth(ui_broker, "/", "uim-from") == 0
    bodies = [channel.basic_get("uim-to", auto_ack=True)[2] for _ in range(25)]
    assert bodies == [f"m{i}".encode() for i in range(25)]
    # the shovel was RabbitMQ's temporary one, and it is gone once the queue's length was moved
    while api(ui_broker, "GET", "/shovels")[1] and time.time() < deadline:
        time.sleep(0.1)
    assert api(ui_broker, "GET", "/shovels")[1] == []
    assert api(ui_broker, "GET", f"/parameters/shovel/{q('/')}/{q('Move from uim-from')}")[0] == 404
