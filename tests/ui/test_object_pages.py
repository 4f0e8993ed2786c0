"""The pages of one queue, exchange and connection (ui-objects), in a real browser.

Each test declares its objects over AMQP with pika (or over the HTTP API), drives the page as a user
would (labels, buttons, the confirm dialog) and checks the outcome where it lands: in the broker,
through the HTTP API or through pika.
"""
from __future__ import annotations

import base64
import json
import time
import urllib.parse
import urllib.request

import pika
import pytest
from playwright.sync_api import expect

from .conftest import TIMEOUT_MS


def api(broker, method: str, path: str, body=None, headers=None):
    """One HTTP API call as guest: (status, parsed JSON or None)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(broker.management_url + "/api" + path, data=data, method=method)
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
            return r.status, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        raw = e.read()
        return e.code, (json.loads(raw) if raw else None)


def q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


@pytest.fixture
def channel(ui_broker):
    conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    ch = conn.channel()
    yield ch
    if conn.is_open:
        conn.close()


def queue_depth(broker, vhost: str, name: str) -> int:
    status, body = api(broker, "GET", f"/queues/{q(vhost)}/{q(name)}")
    assert status == 200, body
    return body["messages"]


def open_queue(page, name: str, vhost: str = "/"):
    page.goto(f"/#/queues/{q(vhost)}/{q(name)}")
    expect(page.get_by_role("heading", name=f"Queue {name}", level=1)).to_be_visible()


def section(page, title: str):
    return page.get_by_role("region", name=title, exact=True)


def test_queue_page_shows_the_facts_and_a_message_got_with_its_properties(logged_in, ui_broker, channel):
    page = logged_in
    channel.queue_declare("uio-get", durable=True, arguments={"x-max-length": 100})
    channel.basic_publish("", "uio-get", b"hello from pika", pika.BasicProperties(
        content_type="text/plain", headers={"colour": "blue"}, message_id="m-1", delivery_mode=2))
    open_queue(page, "uio-get")
    overview = section(page, "Overview")
    expect(overview).to_contain_text("classic")
    expect(overview.locator("[data-fact=ready]")).to_have_text("1")
    expect(overview.get_by_title("x-max-length: 100")).to_have_text("Lim")
    expect(overview.get_by_title("durable: true")).to_have_text("D")

    get = section(page, "Get messages")
    get.get_by_label("Ack mode").select_option("ack_requeue_false")
    get.get_by_role("button", name="Get message(s)").click()
    msg = get.get_by_role("article", name="Message 1")
    expect(msg.locator("pre")).to_have_text("hello from pika")
    expect(msg).to_contain_text("The server reported 0 messages remaining.")
    expect(msg).to_contain_text("text/plain")
    expect(msg).to_contain_text("colour")
    expect(msg).to_contain_text("blue")
    expect(msg).to_contain_text("m-1")
    expect(msg).to_contain_text("15 bytes, Encoding: string")
    assert queue_depth(ui_broker, "/", "uio-get") == 0
    expect(overview.locator("[data-fact=ready]")).to_have_text("0")


def test_get_with_requeue_leaves_the_message_redelivered(logged_in, ui_broker, channel):
    page = logged_in
    channel.queue_declare("uio-requeue")
    channel.basic_publish("", "uio-requeue", b"\xff\x00binary")
    open_queue(page, "uio-requeue")
    get = section(page, "Get messages")
    get.get_by_role("button", name="Get message(s)").click()  # default: Nack message requeue true
    msg = get.get_by_role("article", name="Message 1")
    expect(msg).to_contain_text("Encoding: base64")
    expect(msg.locator("pre")).to_have_text(base64.b64encode(b"\xff\x00binary").decode())
    deadline = time.time() + 10
    while queue_depth(ui_broker, "/", "uio-requeue") != 1 and time.time() < deadline:
        time.sleep(0.1)
    assert queue_depth(ui_broker, "/", "uio-requeue") == 1
    get.get_by_role("button", name="Get message(s)").click()
    expect(get.get_by_role("article", name="Message 1")).to_contain_text("Redelivered\u25CF")


def test_publish_from_the_queue_page_then_purge(logged_in, ui_broker, channel):
    page = logged_in
    channel.queue_declare("uio-purge")
    open_queue(page, "uio-purge")
    pub = section(page, "Publish message")
    pub.get_by_label("Payload", exact=True).fill("typed in the browser")
    pub.get_by_label("Delivery mode").select_option("2")
    pub.get_by_label("Headers 1: key").fill("h1")
    pub.get_by_label("Headers 1: value").fill("42")
    pub.get_by_label("Headers 1: type").select_option("number")
    pub.get_by_role("button", name="Publish message").click()
    expect(pub.get_by_role("status")).to_have_text("Message published.")
    method, props, body = channel.basic_get("uio-purge", auto_ack=False)
    assert body == b"typed in the browser"
    assert props.delivery_mode == 2 and props.headers == {"h1": 42}
    channel.basic_nack(method.delivery_tag, requeue=True)
    expect(section(page, "Overview").locator("[data-fact=ready]")).to_have_text("1")

    page.once("dialog", lambda d: d.accept())
    section(page, "Purge").get_by_role("button", name="Purge Messages").click()
    expect(section(page, "Purge").get_by_role("status")).to_have_text("Queue purged")
    assert queue_depth(ui_broker, "/", "uio-purge") == 0


def test_delete_asks_first_and_honours_if_empty(logged_in, ui_broker, channel):
    page = logged_in
    channel.queue_declare("uio-delete")
    channel.basic_publish("", "uio-delete", b"x")
    open_queue(page, "uio-delete")
    delete = section(page, "Delete")
    page.once("dialog", lambda d: d.dismiss())
    delete.get_by_role("button", name="Delete Queue").click()
    assert queue_depth(ui_broker, "/", "uio-delete") == 1  # dismissed: nothing happened

    page.expect_console(r"status of 400")
    delete.get_by_label("Only if empty").check()
    page.once("dialog", lambda d: d.accept())
    delete.get_by_role("button", name="Delete Queue").click()
    expect(delete.get_by_role("alert")).to_contain_text("uio-delete")  # RabbitMQ's reason: not empty
    assert queue_depth(ui_broker, "/", "uio-delete") == 1

    # a poll in flight when the object goes is answered 404 (the page then says so)
    page.expect_console(r"status of 404")
    delete.get_by_label("Only if empty").uncheck()
    page.once("dialog", lambda d: d.accept())
    delete.get_by_role("button", name="Delete Queue").click()
    page.wait_for_url("**/#/queues")
    assert api(ui_broker, "GET", "/queues/%2F/uio-delete")[0] == 404


def test_an_unknown_queue_says_not_found(logged_in):
    page = logged_in
    page.expect_console(r"status of 404")
    page.goto("/#/queues/%2F/uio-no-such-queue")
    expect(page.get_by_role("heading", name="Queue not found")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("'uio-no-such-queue' in virtual host '/' does not exist")


def test_add_and_remove_a_binding_on_the_queue_page(logged_in, ui_broker, channel):
    page = logged_in
    channel.queue_declare("uio-bind")
    open_queue(page, "uio-bind")
    bindings = section(page, "Bindings")
    expect(bindings).to_contain_text("(Default exchange binding)")
    form = bindings.get_by_role("form", name="Add binding to this queue")
    form.get_by_label("From exchange").fill("amq.topic")
    form.get_by_label("Routing key").fill("a.*.c")
    form.get_by_label("Arguments 1: key").fill("x-note")
    form.get_by_label("Arguments 1: value").fill("yes")
    form.get_by_role("button", name="Bind").click()
    expect(form.get_by_role("status")).to_contain_text("Bound amq.topic -> uio-bind")
    status, rows = api(ui_broker, "GET", "/bindings/%2F/e/amq.topic/q/uio-bind")
    assert [(b["routing_key"], b["arguments"]) for b in rows] == [("a.*.c", {"x-note": "yes"})]
    channel.basic_publish("amq.topic", "a.b.c", b"via topic")
    expect(section(page, "Overview").locator("[data-fact=ready]")).to_have_text("1")

    bindings.get_by_role("button", name="Unbind amq.topic to uio-bind with key a.*.c").click()
    expect(bindings.get_by_role("status").first).to_contain_text("Unbound amq.topic")
    assert api(ui_broker, "GET", "/bindings/%2F/e/amq.topic/q/uio-bind")[1] == []


def test_a_binding_to_a_missing_exchange_shows_the_reason(logged_in, channel):
    page = logged_in
    channel.queue_declare("uio-bind-err")
    open_queue(page, "uio-bind-err")
    page.expect_console(r"status of 404")
    form = section(page, "Bindings").get_by_role("form", name="Add binding to this queue")
    form.get_by_label("From exchange").fill("uio-nowhere")
    form.get_by_role("button", name="Bind").click()
    expect(form.get_by_role("alert")).to_have_text("no exchange 'uio-nowhere' in vhost '/'")


def test_exchange_page_publishes_routed_and_not_routed(logged_in, ui_broker, channel):
    page = logged_in
    channel.exchange_declare("uio-x", "direct")
    channel.queue_declare("uio-xq")
    channel.queue_bind("uio-xq", "uio-x", "k1")
    page.goto("/#/exchanges/%2F/uio-x")
    expect(page.get_by_role("heading", name="Exchange uio-x", level=1)).to_be_visible()
    expect(section(page, "Overview")).to_contain_text("direct")
    expect(section(page, "Bindings")).to_contain_text("uio-xq (queue)")
    pub = section(page, "Publish message")
    pub.get_by_label("Routing key").fill("k1")
    pub.get_by_label("Properties 1: key").fill("content_type")
    pub.get_by_label("Properties 1: value").fill("application/json")
    pub.get_by_label("Payload", exact=True).fill('{"n": 1}')
    pub.get_by_role("button", name="Publish message").click()
    expect(pub.get_by_role("status")).to_have_text("Message published.")
    method, props, body = channel.basic_get("uio-xq", auto_ack=True)
    assert body == b'{"n": 1}' and props.content_type == "application/json"

    pub.get_by_label("Routing key").fill("nobody")
    pub.get_by_role("button", name="Publish message").click()
    expect(pub.get_by_role("alert")).to_have_text("Message published, but not routed.")


def test_exchange_page_adds_and_removes_bindings_both_ways(logged_in, ui_broker, channel):
    page = logged_in
    channel.exchange_declare("uio-src", "fanout")
    channel.exchange_declare("uio-mid", "topic")
    channel.queue_declare("uio-end")
    page.goto("/#/exchanges/%2F/uio-mid")
    bindings = section(page, "Bindings")
    to_this = bindings.get_by_role("form", name="Add binding to this exchange")
    to_this.get_by_label("From exchange").fill("uio-src")
    to_this.get_by_role("button", name="Bind").click()
    expect(to_this.get_by_role("status")).to_have_text("Bound uio-src -> uio-mid.")
    from_this = bindings.get_by_role("form", name="Add binding from this exchange")
    from_this.get_by_label("Destination type").select_option("q")
    from_this.get_by_label("Destination", exact=True).fill("uio-end")
    from_this.get_by_label("Routing key").fill("#")
    from_this.get_by_role("button", name="Bind").click()
    expect(from_this.get_by_role("status")).to_have_text("Bound uio-mid -> uio-end.")
    channel.basic_publish("uio-src", "any.thing", b"through two exchanges")
    method, props, body = channel.basic_get("uio-end", auto_ack=True)
    assert body == b"through two exchanges"

    bindings.get_by_role("button", name="Unbind uio-src to uio-mid with key").click()
    expect(bindings.get_by_role("status").first).to_contain_text("Unbound uio-src -> uio-mid")
    assert api(ui_broker, "GET", "/bindings/%2F/e/uio-src/e/uio-mid")[1] == []
    bindings.get_by_role("button", name="Unbind uio-mid to uio-end with key #").click()
    expect(bindings.get_by_role("status").first).to_contain_text("Unbound uio-mid -> uio-end")
    assert api(ui_broker, "GET", "/bindings/%2F/e/uio-mid/q/uio-end")[1] == []


def test_force_close_a_connection_with_a_reason(logged_in, ui_broker):
    page = logged_in
    params = pika.URLParameters(ui_broker.url)
    params.client_properties = {"connection_name": "uio-victim"}
    conn = pika.BlockingConnection(params)
    try:
        conn.channel()
        deadline = time.time() + 10
        name = None
        while name is None and time.time() < deadline:
            rows = api(ui_broker, "GET", "/connections")[1]
            name = next((c["name"] for c in rows if c.get("user_provided_name") == "uio-victim"), None)
            time.sleep(0.05)
        assert name
        page.goto(f"/#/connections/{q(name)}")
        expect(page.get_by_role("heading", name=f"Connection {name}", level=1)).to_be_visible()
        overview = section(page, "Overview")
        expect(overview).to_contain_text("guest")
        expect(overview).to_contain_text("uio-victim")
        expect(overview).to_contain_text("Pika Python Client Library")
        expect(section(page, "Channels")).to_contain_text(f"{name} (1)")
        # a poll in flight when the object goes is answered 404 (the page then says so)
        page.expect_console(r"status of 404")
        close = section(page, "Close this connection")
        close.get_by_label("Reason").fill("uio says goodbye")
        page.once("dialog", lambda d: d.accept())
        close.get_by_role("button", name="Force Close").click()
        expect(page.get_by_role("alert")).to_have_text("Connection closed: uio says goodbye")
        with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as info:
            deadline = time.time() + 10
            while time.time() < deadline:
                conn.process_data_events(time_limit=0.2)
        assert info.value.reply_code == 320
        assert info.value.reply_text == "CONNECTION_FORCED - uio says goodbye"
    finally:
        if conn.is_open:
            conn.close()


def test_definitions_download_and_upload_to_a_fresh_broker(logged_in, ui_broker, channel, browser, tmp_path):
    page = logged_in
    from warrenmq.testing import EmbeddedBroker
    from .conftest import login

    channel.exchange_declare("uio-def-x", "topic", durable=True)
    channel.queue_declare("uio-def-q", durable=True, arguments={"x-message-ttl": 60000})
    channel.queue_bind("uio-def-q", "uio-def-x", "def.#")
    assert api(ui_broker, "PUT", "/users/uio-def-user", {"password": "pw", "tags": "monitoring"})[0] == 201
    page.goto("/#/definitions")
    export = section(page, "Export definitions")
    export.get_by_label("Filename for download").fill("uio-defs.json")
    # Chromium reports a navigation that became a download as an aborted request
    page.expect_console(r"request failed: GET .*/api/definitions\?download=uio-defs\.json.*ERR_ABORTED")
    with page.expect_download() as info:
        export.get_by_role("link", name="Download broker definitions").click()
    download = info.value
    assert download.suggested_filename == "uio-defs.json"
    saved = tmp_path / "uio-defs.json"
    download.save_as(saved)
    defs = json.loads(saved.read_text())
    assert {"name": "uio-def-q", "vhost": "/"}.items() <= {k: v for k, v in
                                                           next(x for x in defs["queues"] if x["name"] == "uio-def-q").items()}.items()
    assert any(u["name"] == "uio-def-user" for u in defs["users"])

    with EmbeddedBroker(management=True) as fresh:
        assert api(fresh, "GET", "/queues/%2F/uio-def-q")[0] == 404
        context = browser.new_context(base_url=fresh.management_url)
        other = context.new_page()
        errors = []
        other.on("console", lambda m: m.type == "error" and errors.append(m.text))
        other.on("pageerror", lambda e: errors.append(str(e)))
        try:
            other.goto("/#/definitions")
            login(other)
            imp = other.get_by_role("region", name="Import definitions")
            imp.get_by_label("Definitions file").set_input_files(str(saved))
            other.once("dialog", lambda d: d.accept())
            imp.get_by_role("button", name="Upload broker definitions").click()
            expect(imp.get_by_role("status")).to_have_text("Your definitions were imported successfully.",
                                                           timeout=TIMEOUT_MS)
        finally:
            context.close()
        assert errors == []
        status, queue = api(fresh, "GET", "/queues/%2F/uio-def-q")
        assert status == 200 and queue["arguments"] == {"x-message-ttl": 60000}
        assert api(fresh, "GET", "/bindings/%2F/e/uio-def-x/q/uio-def-q")[1][0]["routing_key"] == "def.#"
        assert api(fresh, "GET", "/users/uio-def-user")[1]["tags"] == ["monitoring"]


def test_an_upload_that_is_not_json_shows_rabbitmqs_reason(logged_in, tmp_path):
    page = logged_in
    bad = tmp_path / "bad.json"
    bad.write_text("{this is not json")
    page.expect_console(r"status of 400")
    page.goto("/#/definitions")
    imp = section(page, "Import definitions")
    imp.get_by_label("Definitions file").set_input_files(str(bad))
    page.once("dialog", lambda d: d.accept())
    imp.get_by_role("button", name="Upload broker definitions").click()
    expect(imp.get_by_role("alert")).to_have_text("failed_to_parse_json")


def test_queue_charts_show_depth_and_a_publish_rate(logged_in, ui_broker):
    import threading
    page = logged_in
    conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))
    ch = conn.channel()
    ch.queue_declare("uio-chart")
    ch.basic_publish("", "uio-chart", b"first")
    open_queue(page, "uio-chart")
    overview = section(page, "Overview")
    depth = overview.get_by_role("figure").filter(has_text="Messages").first
    expect(depth.locator("li[data-key=messages_ready] .chart-value")).to_have_text("1")
    stop = threading.Event()
    publisher_conn = pika.BlockingConnection(pika.URLParameters(ui_broker.url))

    def publish():
        pch = publisher_conn.channel()
        while not stop.is_set():
            pch.basic_publish("", "uio-chart", b"tick")
            time.sleep(0.02)

    t = threading.Thread(target=publish)
    t.start()
    try:
        rates = overview.get_by_role("figure").filter(has_text="Message rates")
        value = rates.locator("li[data-key=publish] .chart-value")
        expect(value).to_have_text(__import__("re").compile(r"^[1-9][\d,.]*/s$"))
    finally:
        stop.set()
        t.join()
        publisher_conn.close()
        conn.close()


def test_default_exchange_page_publishes_to_a_queue_by_name(logged_in, ui_broker, channel):
    page = logged_in
    channel.queue_declare("uio-by-name")
    page.goto("/#/exchanges/%2F/amq.default")
    expect(page.get_by_role("heading", name="Exchange (AMQP default)", level=1)).to_be_visible()
    expect(section(page, "Bindings")).to_contain_text("every queue is bound to it")
    expect(section(page, "Delete this exchange")).to_have_count(0)
    pub = section(page, "Publish message")
    pub.get_by_label("Routing key").fill("uio-by-name")
    pub.get_by_label("Payload", exact=True).fill("by name")
    pub.get_by_role("button", name="Publish message").click()
    expect(pub.get_by_role("status")).to_have_text("Message published.")
    assert queue_depth(ui_broker, "/", "uio-by-name") == 1


def test_delete_an_exchange_if_unused_then_for_good(logged_in, ui_broker, channel):
    page = logged_in
    channel.exchange_declare("uio-del-x", "fanout")
    channel.queue_declare("uio-del-xq")
    channel.queue_bind("uio-del-xq", "uio-del-x")
    page.goto("/#/exchanges/%2F/uio-del-x")
    delete = section(page, "Delete this exchange")
    page.expect_console(r"status of 400")
    delete.get_by_label("Only if unused (no bindings from it)").check()
    page.once("dialog", lambda d: d.accept())
    delete.get_by_role("button", name="Delete").click()
    expect(delete.get_by_role("alert")).to_contain_text("uio-del-x")
    assert api(ui_broker, "GET", "/exchanges/%2F/uio-del-x")[0] == 200
    # a poll in flight when the object goes is answered 404 (the page then says so)
    page.expect_console(r"status of 404")
    delete.get_by_label("Only if unused (no bindings from it)").uncheck()
    page.once("dialog", lambda d: d.accept())
    delete.get_by_role("button", name="Delete").click()
    page.wait_for_url("**/#/exchanges")
    assert api(ui_broker, "GET", "/exchanges/%2F/uio-del-x")[0] == 404


def test_a_queue_deleted_while_its_page_is_open_says_so(logged_in, ui_broker, channel):
    page = logged_in
    channel.queue_declare("uio-vanish")
    open_queue(page, "uio-vanish")
    page.expect_console(r"status of 404")
    channel.queue_delete("uio-vanish")
    expect(page.get_by_role("alert")).to_have_text("The queue 'uio-vanish' no longer exists.")


def test_consumers_and_truncated_payloads_on_the_queue_page(logged_in, ui_broker, channel):
    page = logged_in
    channel.queue_declare("uio-consumed")
    channel.basic_qos(prefetch_count=7)
    channel.basic_consume("uio-consumed", lambda *a: None, consumer_tag="uio-tag")
    channel.queue_declare("uio-long")
    channel.basic_publish("", "uio-long", b"0123456789" * 10)
    open_queue(page, "uio-consumed")
    consumers = section(page, "Consumers")
    expect(consumers.get_by_role("cell", name="uio-tag")).to_be_visible()
    expect(consumers.get_by_role("cell", name="7", exact=True)).to_be_visible()
    expect(section(page, "Overview").get_by_role("row", name="Consumers 1")).to_be_visible()

    open_queue(page, "uio-long")
    get = section(page, "Get messages")
    get.get_by_label("Truncate at (bytes)").fill("12")
    get.get_by_role("button", name="Get message(s)").click()
    msg = get.get_by_role("article", name="Message 1")
    expect(msg.locator("pre")).to_have_text("012345678901")
    expect(msg).to_contain_text("100 bytes")
