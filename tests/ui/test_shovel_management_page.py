"""The Shovel management page (Admin): add a shovel with the form (it runs: a message moves), a refused value
shows RabbitMQ's reason, and a shovel is deleted after a confirm."""
from __future__ import annotations

import time

import pika
from playwright.sync_api import expect

from .test_object_pages import api


def test_add_refuse_and_delete_a_shovel(logged_in, ui_broker):
    page = logged_in
    try:
        page.goto("/#/admin")
        page.get_by_role("navigation", name="Admin").get_by_role("link", name="Shovel management").click()
        expect(page.get_by_role("heading", name="Shovel management", level=1)).to_be_visible()
        form = page.get_by_role("form", name="Add a new shovel")
        form.get_by_label("Name", exact=True).fill("shmui")
        form.get_by_label("Source queue or exchange").fill("shmui-src")
        form.get_by_label("Destination type").select_option("exchange")
        form.get_by_label("Destination queue or exchange").fill("amq.direct")
        form.get_by_label("Destination routing key").fill("shmui-key")
        form.get_by_label("Add forwarding headers").check()
        form.get_by_role("button", name="Add shovel").click()
        expect(form.get_by_role("status")).to_have_text("Shovel shmui added")
        row = page.get_by_role("table", name="Shovels").get_by_role("row").filter(has_text="shmui")
        expect(row).to_contain_text("queue shmui-src")
        expect(row).to_contain_text("exchange amq.direct (shmui-key)")
        status, p = api(ui_broker, "GET", "/parameters/shovel/%2F/shmui")
        assert status == 200 and p["value"] == {
            "src-uri": "amqp://", "src-queue": "shmui-src", "src-prefetch-count": 1000, "src-delete-after": "never",
            "dest-uri": "amqp://", "dest-exchange": "amq.direct", "dest-exchange-key": "shmui-key",
            "add-forward-headers": True, "reconnect-delay": 5, "ack-mode": "on-confirm"}
        c = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
        ch = c.channel()
        ch.queue_declare("shmui-dst")
        ch.queue_bind("shmui-dst", "amq.direct", "shmui-key")
        deadline = time.time() + 10
        while api(ui_broker, "GET", "/queues/%2F/shmui-src")[0] != 200 and time.time() < deadline:
            time.sleep(0.1)  # the shovel declares its source queue once it runs
        ch.basic_publish("", "shmui-src", b"from the form")
        got = None
        while got is None and time.time() < deadline:
            got = ch.basic_get("shmui-dst", auto_ack=True)[2]
            time.sleep(0.05)
        assert got == b"from the form"
        c.close()

        page.expect_console(r"status of 400 .*/api/parameters/shovel/%2F/shmui-bad")  # the refusal below
        form.get_by_label("Name", exact=True).fill("shmui-bad")
        form.get_by_label("Source URI").fill("foo://")
        form.get_by_role("button", name="Add shovel").click()
        expect(form.get_by_role("alert")).to_contain_text('"foo://" not a valid URI')

        page.once("dialog", lambda d: d.accept())
        row.get_by_role("button", name="Delete shmui").click()
        expect(page.get_by_role("status").first).to_have_text("Shovel shmui deleted")
        expect(page.get_by_role("table", name="Shovels")).to_have_count(0)
        assert api(ui_broker, "GET", "/parameters/shovel/%2F/shmui")[0] == 404
    finally:
        api(ui_broker, "DELETE", "/parameters/shovel/%2F/shmui")
        for q in ("shmui-src", "shmui-dst"):
            api(ui_broker, "DELETE", f"/queues/%2F/{q}")
