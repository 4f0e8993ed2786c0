"""The Shovel status page (Admin): the shovels of /api/shovels with their state, source and destination,
for administrators and monitoring users; a row's Restart button restarts that shovel."""
from __future__ import annotations

from playwright.sync_api import expect

from .conftest import login
from .test_object_pages import api


def test_shovel_status_lists_running_and_terminated_shovels(logged_in, ui_broker, browser):
    page = logged_in
    assert api(ui_broker, "PUT", "/parameters/shovel/%2F/shui-run", {"value": {
        "src-uri": "amqp://", "src-queue": "shui-src", "dest-uri": "amqp://guest:secret@127.0.0.1:1",
        "dest-queue": "shui-dst", "reconnect-delay": 60}})[0] == 201
    assert api(ui_broker, "PUT", "/parameters/shovel/%2F/shui-local", {"value": {
        "src-uri": "amqp://", "src-queue": "shui-src2", "dest-uri": "amqp://", "dest-exchange": "amq.fanout"}})[0] == 201
    assert api(ui_broker, "PUT", "/parameters/shovel/%2F/shui-bad", {"value": {
        "src-uri": "amqp://", "src-exchange": "shui-missing", "dest-uri": "amqp://", "dest-queue": "shui-dst",
        "reconnect-delay": 60}})[0] == 201
    try:
        page.goto("/#/admin")
        page.get_by_role("navigation", name="Admin").get_by_role("link", name="Shovel status").click()
        expect(page.get_by_role("heading", name="Shovel status", level=1)).to_be_visible()
        table = page.get_by_role("table", name="Shovels")
        running = table.get_by_role("row").filter(has_text="shui-local")
        expect(running).to_contain_text("running", timeout=15000)
        expect(running).to_contain_text("queue shui-src2")
        expect(running).to_contain_text("exchange amq.fanout")
        bad = table.get_by_role("row").filter(has_text="shui-bad")
        expect(bad).to_contain_text("terminated", timeout=15000)
        expect(bad).to_contain_text("no exchange 'shui-missing'")
        starting = table.get_by_role("row").filter(has_text="shui-run")
        expect(starting).to_contain_text("starting")
        expect(table).not_to_contain_text("secret")  # URIs without credentials
        bad.get_by_role("button", name="Restart shui-bad").click()
        expect(page.get_by_role("status")).to_have_text("Shovel shui-bad restarted")

        # a monitoring user sees the page too
        assert api(ui_broker, "PUT", "/users/shui-mon", {"password": "pw", "tags": "monitoring"})[0] == 201
        other = browser.new_context(base_url=ui_broker.management_url).new_page()
        try:
            other.goto("/")
            login(other, "shui-mon", "pw")
            expect(other.locator("#who-name")).to_have_text("shui-mon")
            other.goto("/#/shovels")
            expect(other.get_by_role("table", name="Shovels")).to_contain_text("shui-local")
        finally:
            other.context.close()
    finally:
        for name in ("shui-run", "shui-local", "shui-bad"):
            api(ui_broker, "DELETE", f"/parameters/shovel/%2F/{name}")
        api(ui_broker, "DELETE", "/users/shui-mon")
        for q in ("shui-src", "shui-src2", "shui-dst"):
            api(ui_broker, "DELETE", f"/queues/%2F/{q}")
