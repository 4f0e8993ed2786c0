"""The list pages of the web UI (table.js and pages/{queues,exchanges,connections,channels,consumers,
users,vhosts,policies}.js) in a real browser, against what pika declared over AMQP.

Each list is paged, sorted and filtered by the server (?page=&sort=&name=&use_regex=&columns=);
these tests check that what the browser shows follows those controls, that the state survives a
reload and the back button (it lives in the hash), and that rate columns go away with statistics
off. The page fixture fails a test on any console error.
"""
from __future__ import annotations

import base64
import json
import re
import urllib.request

import pika
import pytest
from playwright.sync_api import expect

from warrenmq.testing import EmbeddedBroker

from .conftest import login

PREFIX = "lists-"


def _api(broker, method: str, path: str, body=None):
    req = urllib.request.Request(broker.management_url + "/api" + path, method=method,
                                 data=None if body is None else json.dumps(body).encode())
    req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=10) as r:
        return r.status


@pytest.fixture(scope="module")
def amqp(ui_broker):
    """A pika connection (named, so the connections list can show it) with what the lists show."""
    params = pika.URLParameters(ui_broker.url)
    params.client_properties = {"connection_name": "lists-conn"}
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.queue_declare(PREFIX + "ttl", durable=True,
                     arguments={"x-message-ttl": 60000, "x-max-length": 100, "x-dead-letter-exchange": "dlx",
                                "x-custom": "yes"})
    ch.queue_declare(PREFIX + "auto", auto_delete=True)
    for i in range(25):
        ch.queue_declare(f"{PREFIX}pg-{i:02d}")
        for _ in range(i):
            ch.basic_publish("", f"{PREFIX}pg-{i:02d}", b"x")
    ch.exchange_declare(PREFIX + "topic", "topic", durable=True,
                        arguments={"alternate-exchange": "amq.fanout"})
    ch.exchange_declare(PREFIX + "internal", "direct", internal=True)
    confirm = conn.channel()
    confirm.confirm_delivery()
    consumer = conn.channel()
    consumer.basic_qos(prefetch_count=7)
    consumer.basic_consume(PREFIX + "auto", lambda *a: None, consumer_tag=PREFIX + "tag")
    conn.process_data_events(0)
    yield conn
    conn.close()


def goto(page, hash_: str) -> None:
    """Go to a list page and wait for its table's first rows (not the previous page's table)."""
    page.evaluate("""h => {
        for (const s of document.querySelectorAll('section.paged-table')) s.dataset.stale = '1';
        location.hash = h;
    }""", hash_)
    loaded(page)


def loaded(page) -> None:
    page.locator("section.paged-table[data-loaded]:not([data-stale])").wait_for()


def names(page, column: int = 0) -> list[str]:
    return page.locator(f"table.list tbody tr td:nth-child({column + 1})").all_inner_texts()


def header(page, label: str):
    return page.locator("table.list thead th", has=page.get_by_role("button", name=label, exact=True))


def headers(page) -> list[str]:
    return [t.strip(" \u25b2\u25bc") for t in page.locator("table.list thead th").all_inner_texts()]


def filter_to(page, text: str, regex: bool = False) -> None:
    box = page.get_by_label("Regex")
    if box.is_checked() != regex:
        box.set_checked(regex)
    page.get_by_label("Filter").fill(text)
    page.get_by_label("Filter").press("Enter")


def test_the_nav_has_the_lists_in_rabbitmqs_order(logged_in, amqp):
    nav = logged_in.get_by_role("navigation", name="Main")
    labels = nav.get_by_role("link").all_inner_texts()
    order = ["Overview", "Connections", "Channels", "Exchanges", "Queues", "Consumers", "Admin"]
    assert [x for x in labels if x in order] == order


def test_queues_show_what_pika_declared_with_features_and_depths(logged_in, amqp):
    page = logged_in
    goto(page, f"#/queues?name={PREFIX}")
    expect(page.locator(".table-count")).to_have_text(re.compile(r"^27 items"))
    row = page.locator("table.list tbody tr", has=page.get_by_role("link", name=PREFIX + "ttl", exact=True))
    link = row.get_by_role("link", name=PREFIX + "ttl")
    expect(link).to_have_attribute("href", f"#/queues/%2F/{PREFIX}ttl")
    features = row.locator(".features abbr")
    assert features.all_inner_texts() == ["D", "TTL", "Lim", "DLX", "Args"]
    expect(features.nth(1)).to_have_attribute("title", re.compile("x-message-ttl = 60000"))
    expect(features.nth(4)).to_have_attribute("title", re.compile("x-custom: yes"))
    auto = page.locator("table.list tbody tr", has=page.get_by_role("link", name=PREFIX + "auto", exact=True))
    assert auto.locator(".features abbr").all_inner_texts() == ["AD"]
    # depths: pg-07 has seven ready messages; the consumers column counts the consumer on "auto"
    cols = headers(page)
    pg7 = page.locator("table.list tbody tr", has=page.get_by_role("link", name=PREFIX + "pg-07", exact=True))
    cells = pg7.locator("td").all_inner_texts()
    assert cells[cols.index("Ready")] == "7" and cells[cols.index("Total")] == "7"
    assert auto.locator("td").all_inner_texts()[cols.index("Consumers")] == "1"
    # a queue nothing happened to for a sample is "idle", since when in its title (RabbitMQ's idle_since)
    pg0_state = page.locator("table.list tbody tr", has=page.get_by_role(
        "link", name=PREFIX + "pg-00", exact=True)).locator(".state")
    expect(pg0_state).to_have_text("idle", timeout=12_000)
    expect(pg0_state).to_have_attribute("title", re.compile(r"^Idle since \d{4}-\d\d-\d\dT"))
    # one vhost only: no vhost column; statistics on: the rate columns are there
    assert "Virtual host" not in cols
    assert {"Incoming", "Deliver / get", "Ack"} <= set(cols)


def test_sort_filter_and_pages_change_the_rows_and_stay_in_the_hash(logged_in, amqp):
    page = logged_in
    goto(page, "#/queues")
    filter_to(page, PREFIX + "pg-")
    expect(page.locator(".table-count")).to_have_text(re.compile(r"^25 items"))
    page.get_by_label("Page size").select_option("20")
    expect(page.locator("table.list tbody tr")).to_have_count(20)
    # sort by Ready: ascending on the first click, descending on the second
    ready = header(page, "Ready")
    expect(ready).to_have_attribute("aria-sort", "none")
    ready.get_by_role("button").click()
    expect(ready).to_have_attribute("aria-sort", "ascending")
    expect(page.locator("table.list tbody tr").first).to_contain_text(PREFIX + "pg-00")
    ready.get_by_role("button").click()
    expect(ready).to_have_attribute("aria-sort", "descending")
    expect(page.locator("table.list tbody tr").first).to_contain_text(PREFIX + "pg-24")
    # page 2 holds the five smallest
    page.get_by_role("button", name="Page 2").click()
    expect(page.locator("table.list tbody tr")).to_have_count(5)
    expect(page.get_by_role("button", name="Page 2")).to_have_attribute("aria-current", "page")
    assert names(page) == [f"{PREFIX}pg-{i:02d}" for i in (4, 3, 2, 1, 0)]
    assert re.search(r"page=2", page.evaluate("location.hash"))
    assert "sort=messages_ready" in page.evaluate("location.hash")
    # a reload keeps filter, sort, page and size
    page.reload()
    loaded(page)
    expect(page.locator("table.list tbody tr")).to_have_count(5)
    expect(page.get_by_label("Filter")).to_have_value(PREFIX + "pg-")
    expect(page.get_by_label("Page size")).to_have_value("20")
    expect(header(page, "Ready")).to_have_attribute("aria-sort", "descending")
    # the back button from a queue's page comes back to the same view
    page.get_by_role("link", name=PREFIX + "pg-03").click()
    page.wait_for_function("() => location.hash.startsWith('#/queues/%2F/')")
    page.go_back()
    loaded(page)
    expect(page.locator("table.list tbody tr")).to_have_count(5)
    assert names(page)[1] == f"{PREFIX}pg-03"
    # a regex filter goes back to page 1 and keeps the sort
    filter_to(page, r"pg-0[2-5]$", regex=True)
    expect(page.locator("table.list tbody tr")).to_have_count(4)
    assert names(page) == [f"{PREFIX}pg-{i:02d}" for i in (5, 4, 3, 2)]
    assert "use_regex=true" in page.evaluate("location.hash") and "page=2" not in page.evaluate("location.hash")
    # an invalid regex is said, not sent (the server would answer 400)
    filter_to(page, "pg-(", regex=True)
    expect(page.locator(".table-filter-error")).to_have_text("Invalid regular expression")
    expect(page.get_by_label("Filter")).to_have_attribute("aria-invalid", "true")


def test_the_table_asks_the_server_only_for_the_page_and_the_shown_columns(logged_in, amqp):
    page = logged_in
    with page.expect_request(lambda r: "/api/queues?" in r.url) as req:
        goto(page, "#/queues?page_size=20")
    url = req.value.url
    assert "page=1" in url and "page_size=20" in url
    columns = re.search(r"columns=([^&]*)", url).group(1)
    cols = urllib.request.unquote(columns).split(",")
    assert "name" in cols and "messages_ready" in cols and "message_stats.publish_details.rate" in cols
    assert "consumer_details" not in cols and "effective_policy_definition" not in cols


def test_headers_sort_with_the_keyboard(logged_in, amqp):
    page = logged_in
    goto(page, f"#/queues?name={PREFIX}pg-")
    button = header(page, "Total").get_by_role("button")
    button.focus()
    page.keyboard.press("Enter")
    expect(header(page, "Total")).to_have_attribute("aria-sort", "ascending")
    page.keyboard.press("Enter")
    expect(header(page, "Total")).to_have_attribute("aria-sort", "descending")
    # the focus stays on the header across the re-render and the refreshes
    assert page.evaluate("document.activeElement.dataset.sort") == "messages"
    expect(page.locator("table.list tbody tr").first).to_contain_text(PREFIX + "pg-24")


def test_the_vhost_selector_narrows_to_one_vhost_and_shows_the_vhost_column_for_all(logged_in, amqp, ui_broker):
    _api(ui_broker, "PUT", "/vhosts/lists-vh")
    try:
        _api(ui_broker, "PUT", "/queues/lists-vh/lists-in-vh", {"durable": False})
        page = logged_in
        goto(page, f"#/queues?name={PREFIX}")
        expect(page.locator("table.list thead th").first).to_have_text("Virtual host")
        page.get_by_label("Virtual host").select_option("lists-vh")
        expect(page.locator("table.list tbody tr")).to_have_count(1)
        assert names(page) == ["lists-in-vh"]
        assert "Virtual host" not in headers(page)
        assert "vhost=lists-vh" in page.evaluate("location.hash")
        page.get_by_label("Virtual host").select_option("/")
        expect(page.locator(".table-count")).to_have_text(re.compile(r"^27 items"))
    finally:
        _api(ui_broker, "DELETE", "/vhosts/lists-vh")


def test_exchanges_list_types_features_and_the_default_exchange(logged_in, amqp):
    page = logged_in
    goto(page, "#/exchanges")
    topic = page.locator("table.list tbody tr", has=page.get_by_role("link", name=PREFIX + "topic", exact=True))
    cols = headers(page)
    cells = topic.locator("td").all_inner_texts()
    assert cells[cols.index("Type")] == "topic"
    assert topic.locator(".features abbr").all_inner_texts() == ["D", "AE"]
    internal = page.locator("table.list tbody tr",
                            has=page.get_by_role("link", name=PREFIX + "internal", exact=True))
    assert internal.locator(".features abbr").all_inner_texts() == ["I"]
    default = page.get_by_role("link", name="(AMQP default)")
    expect(default).to_have_attribute("href", "#/exchanges/%2F/amq.default")
    assert {"Rate in", "Rate out"} <= set(cols)


def test_connections_and_channels_show_the_pika_connection(logged_in, amqp):
    page = logged_in
    goto(page, "#/connections")
    row = page.locator("table.list tbody tr", has_text="lists-conn")
    expect(row).to_have_count(1)
    cols = headers(page)
    cells = row.locator("td").all_inner_texts()
    assert cells[cols.index("User")] == "guest"
    assert cells[cols.index("Protocol")] == "AMQP 0-9-1"
    assert cells[cols.index("State")] in ("running", "idle")
    assert int(cells[cols.index("Channels")]) >= 3
    assert "Pika" in cells[cols.index("Client")]
    assert {"From client", "To client"} <= set(cols)
    name = row.locator("td a").first.inner_text().splitlines()[0]
    goto(page, "#/channels")
    ours = page.locator("table.list tbody tr", has_text=name)
    expect(ours).to_have_count(3)
    cols = headers(page)
    modes = [r[cols.index("Mode")] for r in (ours.nth(i).locator("td").all_inner_texts() for i in range(3))]
    assert sorted(modes) == ["", "", "C"]
    prefetch = [r[cols.index("Prefetch")] for r in (ours.nth(i).locator("td").all_inner_texts() for i in range(3))]
    assert "7" in prefetch
    expect(ours.first.get_by_role("link")).to_have_attribute("href", re.compile(r"^#/connections/"))


def test_consumers_list(logged_in, amqp):
    page = logged_in
    goto(page, "#/consumers")
    row = page.locator("table.list tbody tr", has_text=PREFIX + "tag")
    expect(row).to_have_count(1)
    cols = headers(page)
    cells = row.locator("td").all_inner_texts()
    assert cells[cols.index("Queue")] == PREFIX + "auto"
    assert cells[cols.index("Prefetch")] == "7"
    expect(row.locator("td").nth(cols.index("Ack required")).locator("span")).to_have_attribute("title", "yes")
    expect(row.get_by_role("link", name=PREFIX + "auto")).to_have_attribute("href", f"#/queues/%2F/{PREFIX}auto")
    assert page.get_by_label("Filter").count() == 0


def test_admin_lists_users_vhosts_policies(logged_in, amqp, ui_broker):
    _api(ui_broker, "PUT", "/policies/%2F/lists-pol",
         {"pattern": "^lists-ttl$", "definition": {"max-length": 50}, "apply-to": "queues", "priority": 3})
    try:
        page = logged_in
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
        page.wait_for_function("() => location.hash === '#/users'")
        expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin")).to_have_attribute(
            "aria-current", "page")
        loaded(page)
        row = page.locator("table.list tbody tr", has=page.get_by_role("link", name="guest", exact=True))
        cols = headers(page)
        cells = row.locator("td").all_inner_texts()
        assert cells[cols.index("Tags")] == "administrator"
        assert cells[cols.index("Can access virtual hosts")] == "/"
        page.get_by_role("navigation", name="Admin").get_by_role("link", name="Virtual hosts").click()
        page.wait_for_function("() => location.hash === '#/vhosts'")
        loaded(page)
        expect(page.get_by_role("link", name="/", exact=True)).to_have_attribute("href", "#/vhosts/%2F")
        page.get_by_role("navigation", name="Admin").get_by_role("link", name="Policies").click()
        page.wait_for_function("() => location.hash === '#/policies'")
        loaded(page)
        row = page.locator("table.list tbody tr", has_text="lists-pol")
        cols = headers(page)
        cells = row.locator("td").all_inner_texts()
        assert cells[cols.index("Pattern")] == "^lists-ttl$"
        assert cells[cols.index("Apply to")] == "queues"
        assert cells[cols.index("Priority")] == "3"
        assert "max-length" in cells[cols.index("Definition")]
        expect(row.get_by_role("link", name="lists-pol")).to_have_attribute("href", "#/policies/%2F/lists-pol")
        # the policy shows in the queue's features
        goto(page, f"#/queues?name={PREFIX}ttl")
        expect(page.locator("table.list tbody tr .features .policy")).to_have_text("lists-pol")
        expect(page.locator("table.list tbody tr .features .policy a")).to_have_attribute(
            "href", "#/policies/%2F/lists-pol")
    finally:
        _api(ui_broker, "DELETE", "/policies/%2F/lists-pol")


def test_a_policymaker_gets_policies_under_admin_and_a_management_user_no_admin(page, ui_broker):
    _api(ui_broker, "PUT", "/users/lists-pm", {"password": "pw", "tags": "policymaker"})
    _api(ui_broker, "PUT", "/permissions/%2F/lists-pm", {"configure": ".*", "write": ".*", "read": ".*"})
    _api(ui_broker, "PUT", "/users/lists-mg", {"password": "pw", "tags": "management"})
    try:
        page.goto("/")
        login(page, "lists-pm", "pw")
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
        page.wait_for_function("() => location.hash === '#/policies'")
        loaded(page)
        admin = page.get_by_role("navigation", name="Admin")
        # policymakers get the policies and, as with RabbitMQ's shovel plugin, shovel management
        assert admin.get_by_role("link").all_inner_texts() == ["Policies", "Shovel management"]
        page.get_by_role("button", name="Log out").click()
        login(page, "lists-mg", "pw")
        page.get_by_role("heading", name="Overview", level=1).wait_for()
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Queues")).to_be_visible()
        expect(nav.get_by_role("link", name="Admin")).to_have_count(0)
    finally:
        _api(ui_broker, "DELETE", "/users/lists-pm")
        _api(ui_broker, "DELETE", "/users/lists-mg")


def test_narrow_screen_scrolls_the_table_inside_its_container(logged_in, amqp):
    page = logged_in
    page.set_viewport_size({"width": 375, "height": 700})
    goto(page, "#/queues")
    wrap = page.locator(".table-wrap")
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375


def test_refresh_keeps_the_view_and_shows_new_rows(logged_in, amqp):
    page = logged_in
    goto(page, f"#/queues?name={PREFIX}late")
    expect(page.locator("table.list tbody tr.empty")).to_have_text("No items match the filter")
    ch = amqp.channel()
    ch.queue_declare(PREFIX + "late")
    try:
        expect(page.get_by_role("link", name=PREFIX + "late")).to_be_visible(timeout=12_000)
        expect(page.get_by_label("Filter")).to_have_value(PREFIX + "late")
    finally:
        ch.queue_delete(PREFIX + "late")
        ch.close()


@pytest.fixture(scope="module")
def quiet_broker():
    with EmbeddedBroker(management=True, statistics_enabled=False) as b:
        yield b


def test_statistics_off_hides_the_rate_columns_but_not_the_depths(page, quiet_broker):
    conn = pika.BlockingConnection(pika.URLParameters(quiet_broker.url))
    try:
        ch = conn.channel()
        ch.queue_declare("quiet-q")
        ch.basic_publish("", "quiet-q", b"1")
        ch.basic_publish("", "quiet-q", b"2")
        page.goto(quiet_broker.management_url + "/")
        login(page)
        page.get_by_role("heading", name="Overview", level=1).wait_for()
        for hash_, rates, kept in (
                ("#/queues", {"Incoming", "Deliver / get", "Ack"}, {"Ready", "Unacked", "Total", "Consumers"}),
                ("#/exchanges", {"Rate in", "Rate out"}, {"Type", "Features"}),
                ("#/connections", {"From client", "To client"}, {"User", "Channels"}),
                ("#/channels", {"Publish", "Confirm", "Ack"}, {"Unacked", "Prefetch"})):
            goto(page, hash_)
            cols = set(headers(page))
            assert not (rates & cols), (hash_, cols)
            assert kept <= cols, (hash_, cols)
        goto(page, "#/queues?name=quiet-q")
        cols = headers(page)
        assert page.locator("table.list tbody tr td").all_inner_texts()[cols.index("Ready")] == "2"
    finally:
        conn.close()


def test_a_bookmarked_view_survives_the_login(page, amqp):
    page.goto(f"/#/queues?name={PREFIX}pg-1&page_size=20&sort=messages&sort_reverse=true")
    login(page)
    loaded(page)
    expect(page.get_by_label("Filter")).to_have_value(PREFIX + "pg-1")
    expect(header(page, "Total")).to_have_attribute("aria-sort", "descending")
    assert names(page) == [f"{PREFIX}pg-{i}" for i in range(19, 9, -1)]
