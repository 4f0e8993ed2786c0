"""The admin pages of ui-objects: one user, one vhost, one policy (and the forms on the lists)."""
from __future__ import annotations

import pika
import pytest
from playwright.sync_api import expect

from .conftest import login
from .test_object_pages import api, q, section


def test_user_page_sets_permissions_and_tags_and_the_user_logs_in(logged_in, ui_broker, browser):
    page = logged_in
    assert api(ui_broker, "PUT", "/users/uio-alice", {"password": "secret", "tags": ""})[0] == 201
    assert api(ui_broker, "PUT", "/vhosts/uio-v1", {})[0] == 201
    page.goto("/#/users/uio-alice")
    expect(page.get_by_role("heading", name="User uio-alice", level=1)).to_be_visible()
    perms = section(page, "Permissions")
    expect(perms).to_contain_text("no permissions")
    form = perms.get_by_role("form", name="Set permission")
    form.get_by_label("Virtual host").select_option("uio-v1")
    form.get_by_label("Configure regexp").fill("^uio-.*")
    form.get_by_role("button", name="Set permission").click()
    expect(form.get_by_role("status")).to_have_text("Permissions of uio-alice in uio-v1 set.")
    assert api(ui_broker, "GET", "/permissions/uio-v1/uio-alice")[1]["configure"] == "^uio-.*"

    topic = section(page, "Topic permissions")
    tform = topic.get_by_role("form", name="Set topic permission")
    tform.get_by_label("Virtual host").select_option("uio-v1")
    tform.get_by_label("Write regexp").fill("^a\\.")
    tform.get_by_role("button", name="Set topic permission").click()
    expect(topic).to_contain_text("amq.topic")
    assert api(ui_broker, "GET", "/topic-permissions/uio-v1/uio-alice")[1][0]["write"] == "^a\\."

    update = section(page, "Update this user")
    update.get_by_label("Tags", exact=True).fill("")
    update.get_by_role("button", name="Add tag management").click()
    update.get_by_role("button", name="Update user").click()
    expect(update.get_by_role("status")).to_have_text("User uio-alice updated.")
    assert api(ui_broker, "GET", "/users/uio-alice")[1]["tags"] == ["management"]

    # the password was kept (no new one typed): uio-alice logs in with it and sees uio-v1
    other = browser.new_context(base_url=ui_broker.management_url).new_page()
    try:
        other.goto("/")
        login(other, "uio-alice", "secret")
        expect(other.locator("#who-name")).to_have_text("uio-alice")
        expect(other.locator("#who-tags")).to_have_text("(management)")
    finally:
        other.context.close()

    topic.get_by_role("button", name="Clear topic permissions of uio-alice in uio-v1 on amq.topic").click()
    expect(topic).to_contain_text("no topic permissions")
    perms.get_by_role("button", name="Clear permissions of uio-alice in uio-v1").click()
    expect(perms).to_contain_text("no permissions")
    assert api(ui_broker, "GET", "/users/uio-alice/permissions")[1] == []

    page.once("dialog", lambda d: d.accept())
    section(page, "Delete this user").get_by_role("button", name="Delete user").click()
    page.wait_for_url("**/#/users")
    assert api(ui_broker, "GET", "/users/uio-alice")[0] == 404


def test_vhost_page_permissions_limits_and_delete(logged_in, ui_broker):
    page = logged_in
    assert api(ui_broker, "PUT", "/vhosts/uio-v2", {"description": "for the UI test"})[0] == 201
    page.goto(f"/#/vhosts/{q('uio-v2')}")
    expect(page.get_by_role("heading", name="Virtual host uio-v2", level=1)).to_be_visible()
    expect(section(page, "Overview")).to_contain_text("for the UI test")
    perms = section(page, "Permissions")
    expect(perms).to_contain_text("guest")  # the creator's permissions, as RabbitMQ gives them
    limits = section(page, "Limits")
    form = limits.get_by_role("form", name="Set limit")
    form.get_by_label("Limit").select_option("max-queues")
    form.get_by_label("Value").fill("7")
    form.get_by_role("button", name="Set limit").click()
    expect(form.get_by_role("status")).to_have_text("Limit max-queues set to 7.")
    assert api(ui_broker, "GET", "/vhost-limits/uio-v2")[1] == [{"vhost": "uio-v2", "value": {"max-queues": 7}}]
    limits.get_by_role("button", name="Clear limit max-queues").click()
    expect(limits).to_contain_text("no limits")

    page.once("dialog", lambda d: d.accept())
    page.expect_console(r"status of 404")  # a poll in flight when the vhost goes
    section(page, "Delete this vhost").get_by_role("button", name="Delete this virtual host").click()
    page.wait_for_url("**/#/vhosts")
    assert api(ui_broker, "GET", "/vhosts/uio-v2")[0] == 404


def test_policy_page_updates_and_deletes_and_the_queue_shows_it(logged_in, ui_broker):
    page = logged_in
    conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    try:
        conn.channel().queue_declare("uio-pol-q")
    finally:
        conn.close()
    body = {"pattern": "^uio-pol-", "definition": {"max-length": 5}, "apply-to": "queues"}
    assert api(ui_broker, "PUT", "/policies/%2F/uio-pol", body)[0] == 201
    page.goto("/#/policies/%2F/uio-pol")
    expect(page.get_by_role("heading", name="Policy uio-pol", level=1)).to_be_visible()
    update = section(page, "Update this policy")
    update.get_by_label("Definition (JSON)").fill('{"max-length": 3, "message-ttl": 1000}')
    update.get_by_role("button", name="Add / update policy").click()
    expect(section(page, "Overview")).to_contain_text("message-ttl")
    assert api(ui_broker, "GET", "/policies/%2F/uio-pol")[1]["definition"] == {"max-length": 3, "message-ttl": 1000}

    page.goto("/#/queues/%2F/uio-pol-q")
    overview = section(page, "Overview")
    expect(overview).to_contain_text("uio-pol")
    expect(overview).to_contain_text("message-ttl")

    page.expect_console(r"status of 400")
    page.goto("/#/policies/%2F/uio-pol")
    update = section(page, "Update this policy")
    update.get_by_label("Definition (JSON)").fill('{"max-length": "lots"}')
    update.get_by_role("button", name="Add / update policy").click()
    expect(update.get_by_role("alert")).to_contain_text("is not a valid maximum length")

    page.once("dialog", lambda d: d.accept())
    section(page, "Delete this policy").get_by_role("button", name="Delete").click()
    page.wait_for_url("**/#/policies")
    assert api(ui_broker, "GET", "/policies/%2F/uio-pol")[0] == 404


def test_add_a_user_on_the_users_list_give_it_permissions_and_log_in_as_it(logged_in, ui_broker, browser):
    page = logged_in
    page.goto("/#/users")
    add = section(page, "Add a user")
    add.get_by_label("Username").fill("uio-bob")
    add.get_by_label("Password", exact=True).fill("bobpw")
    add.get_by_label("Password (confirm)").fill("bobpw")
    add.get_by_role("button", name="Add tag monitoring").click()
    expect(add.get_by_label("Tags", exact=True)).to_have_value("monitoring")
    add.get_by_role("button", name="Add user").click()
    expect(add.get_by_role("status")).to_have_text("User uio-bob added.")
    assert api(ui_broker, "GET", "/users/uio-bob")[1]["tags"] == ["monitoring"]

    page.goto("/#/users/uio-bob")
    form = section(page, "Permissions").get_by_role("form", name="Set permission")
    form.get_by_label("Virtual host").select_option("/")
    form.get_by_role("button", name="Set permission").click()
    expect(form.get_by_role("status")).to_have_text("Permissions of uio-bob in / set.")

    other = browser.new_context(base_url=ui_broker.management_url).new_page()
    try:
        other.goto("/")
        login(other, "uio-bob", "bobpw")
        expect(other.locator("#who-tags")).to_have_text("(monitoring)")
        other.goto("/#/queues")  # a monitoring user with permissions in / lists its queues
        expect(other.get_by_role("heading", name="Queues", level=1)).to_be_visible()
    finally:
        other.context.close()


def test_mismatched_passwords_are_refused_before_any_request(logged_in, ui_broker):
    page = logged_in
    page.goto("/#/users")
    add = section(page, "Add a user")
    add.get_by_label("Username").fill("uio-typo")
    add.get_by_label("Password", exact=True).fill("one")
    add.get_by_label("Password (confirm)").fill("two")
    add.get_by_role("button", name="Add user").click()
    expect(add.get_by_role("alert")).to_have_text("Passwords do not match.")
    assert api(ui_broker, "GET", "/users/uio-typo")[0] == 404


def test_add_and_delete_a_vhost_from_the_vhosts_list(logged_in, ui_broker):
    page = logged_in
    page.goto("/#/vhosts")
    add = section(page, "Add a new virtual host")
    add.get_by_label("Name").fill("uio-v3")
    add.get_by_label("Description").fill("made in the browser")
    add.get_by_label("Default queue type").select_option("quorum")
    add.get_by_role("button", name="Add virtual host").click()
    expect(add.get_by_role("status")).to_have_text("Virtual host uio-v3 added.")
    status, v = api(ui_broker, "GET", "/vhosts/uio-v3")
    assert status == 200 and v["description"] == "made in the browser" and v["default_queue_type"] == "quorum"
    page.get_by_role("link", name="uio-v3", exact=True).click()
    expect(page.get_by_role("heading", name="Virtual host uio-v3", level=1)).to_be_visible()
    page.once("dialog", lambda d: d.accept())
    page.expect_console(r"status of 404")  # a poll in flight when the vhost goes
    section(page, "Delete this vhost").get_by_role("button", name="Delete this virtual host").click()
    page.wait_for_url("**/#/vhosts")
    assert api(ui_broker, "GET", "/vhosts/uio-v3")[0] == 404


def test_add_a_policy_on_the_policies_list_and_see_it_applied_to_the_queue(logged_in, ui_broker):
    page = logged_in
    conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    try:
        conn.channel().queue_declare("uio-lim-q")
    finally:
        conn.close()
    page.goto("/#/policies")
    form = section(page, "Add / update a policy")
    form.get_by_label("Virtual host").select_option("/")
    form.get_by_label("Name", exact=True).fill("uio-lim")
    form.get_by_label("Pattern").fill("^uio-lim-")
    form.get_by_label("Apply to").select_option("queues")
    form.get_by_label("Definition 1: key").fill("max-length")
    form.get_by_label("Definition 1: value").fill("2")
    form.get_by_label("Definition 1: type").select_option("number")
    form.get_by_role("button", name="Add / update policy").click()
    expect(form.get_by_role("status")).to_have_text("Policy uio-lim set in /.")
    assert api(ui_broker, "GET", "/policies/%2F/uio-lim")[1]["definition"] == {"max-length": 2}
    page.goto("/#/queues/%2F/uio-lim-q")
    overview = section(page, "Overview")
    expect(overview).to_contain_text("uio-lim")
    expect(overview).to_contain_text("max-length")
    assert api(ui_broker, "DELETE", "/policies/%2F/uio-lim")[0] == 204
