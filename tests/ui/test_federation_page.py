"""The Federation status page (Admin): the links of /api/federation-links with their state, for
administrators and monitoring users."""
from __future__ import annotations

import pika
from playwright.sync_api import expect

from .conftest import login
from .test_object_pages import api


def test_federation_status_lists_running_and_failing_links(logged_in, ui_broker, browser):
    page = logged_in
    assert api(ui_broker, "PUT", "/vhosts/fedui-up", {})[0] == 201
    assert api(ui_broker, "PUT", "/permissions/fedui-up/guest", {"configure": ".*", "write": ".*", "read": ".*"})[0] \
        in (201, 204)
    assert api(ui_broker, "PUT", "/parameters/federation-upstream/%2F/fedui-local",
               {"value": {"uri": "amqp:///fedui-up"}})[0] == 201
    assert api(ui_broker, "PUT", "/parameters/federation-upstream/%2F/fedui-gone",
               {"value": {"uri": "amqp://guest:secret@127.0.0.1:1", "reconnect-delay": 30}})[0] == 201
    assert api(ui_broker, "PUT", "/policies/%2F/fedui", {"pattern": "^fedui-x$", "apply-to": "exchanges",
                                                        "definition": {"federation-upstream-set": "all"}})[0] == 201
    c = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    try:
        c.channel().exchange_declare("fedui-x", "fanout")
        page.goto("/#/admin")
        page.get_by_role("navigation", name="Admin").get_by_role("link", name="Federation status").click()
        expect(page.get_by_role("heading", name="Federation status", level=1)).to_be_visible()
        table = page.get_by_role("table", name="Federation links")
        running = table.get_by_role("row").filter(has_text="fedui-local")
        expect(running).to_contain_text("running", timeout=15000)
        expect(running).to_contain_text("fedui-x (exchange)")
        expect(running).to_contain_text("amqp:///fedui-up")
        failing = table.get_by_role("row").filter(has_text="fedui-gone")
        expect(failing).to_contain_text("error econnrefused", timeout=15000)
        expect(failing).to_contain_text("amqp://127.0.0.1:1")
        expect(failing).not_to_contain_text("secret")  # URIs without credentials

        # a monitoring user sees the page too; a management user is not offered it
        assert api(ui_broker, "PUT", "/users/fedui-mon", {"password": "pw", "tags": "monitoring"})[0] == 201
        other = browser.new_context(base_url=ui_broker.management_url).new_page()
        try:
            other.goto("/")
            login(other, "fedui-mon", "pw")
            expect(other.locator("#who-name")).to_have_text("fedui-mon")
            other.goto("/#/federation")
            expect(other.get_by_role("heading", name="Federation status", level=1)).to_be_visible()
            expect(other.get_by_role("table", name="Federation links")).to_contain_text("fedui-gone")
        finally:
            other.context.close()
    finally:
        api(ui_broker, "DELETE", "/policies/%2F/fedui")
        api(ui_broker, "DELETE", "/parameters/federation-upstream/%2F/fedui-local")
        api(ui_broker, "DELETE", "/parameters/federation-upstream/%2F/fedui-gone")
        api(ui_broker, "DELETE", "/users/fedui-mon")
        c.channel().exchange_delete("fedui-x")
        c.close()
        api(ui_broker, "DELETE", "/vhosts/fedui-up")
