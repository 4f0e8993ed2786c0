"""Who sees what (tags), keyboard use, a narrow screen, and every page of the navigation loading cleanly."""
import pytest
from playwright.sync_api import expect

from .conftest import login


@pytest.fixture(scope="module", autouse=True)
def users(ui_broker):
    b = ui_broker
    b.call(lambda: b.broker.add_user("ui-plain", "pw", [], {"/"}))
    b.call(lambda: b.broker.add_user("ui-mgmt", "pw", ["management"], {"/"}))
    b.call(lambda: b.broker.add_user("ui-mon", "pw", ["monitoring"], {"/"}))


def nav_labels(page):
    return page.locator("#nav a").all_inner_texts()


def page_modules(page):
    """[{path, label, tags}] of every page module with a navigation entry, as the UI itself lists them."""
    return page.evaluate("""async () => (await import('./static/js/pages/index.js')).default
        .filter((p) => p.nav).sort((a, b) => (a.nav.order || 0) - (b.nav.order || 0))
        .map((p) => ({path: p.path, label: p.nav.label, tags: p.tags || ['management']}))""")


def test_a_user_without_a_management_tag_cannot_log_in(page):
    page.expect_console(r"status of 401")
    page.goto("/")
    login(page, "ui-plain", "pw")
    expect(page.get_by_role("alert")).to_have_text("Not management user")  # RabbitMQ's reason
    expect(page.locator("#nav")).to_be_hidden()


def test_a_management_user_sees_no_administrator_or_monitoring_pages(page):
    page.goto("/")
    login(page, "ui-mgmt", "pw")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    expect(page.locator("#who-tags")).to_have_text("(management)")
    labels = nav_labels(page)
    for p in page_modules(page):
        assert (p["label"] in labels) == ("management" in p["tags"]), (p, labels)
    # no node facts (/api/nodes needs monitoring): the page did not even ask, so no 401 in the console
    expect(page.locator("#totals dd[data-key='queues']")).to_have_text("0")
    expect(page.locator("#node")).to_have_count(0)


def test_an_administrator_sees_every_page_and_a_monitoring_user_the_monitoring_ones(browser, base_url, logged_in):
    labels = nav_labels(logged_in)
    modules = page_modules(logged_in)
    assert labels == [p["label"] for p in modules]  # all of them, in their order
    context = browser.new_context(base_url=base_url)
    try:
        page = context.new_page()
        page.goto("/")
        login(page, "ui-mon", "pw")
        expect(page.locator("#node")).to_contain_text("high watermark")
        mon = nav_labels(page)
        for p in modules:
            assert (p["label"] in mon) == bool({"management", "monitoring"} & set(p["tags"])), (p, mon)
    finally:
        context.close()


def test_every_navigation_entry_renders_without_errors(logged_in):
    page = logged_in
    titles = set()
    for label in nav_labels(page):
        before = page.title()
        page.locator("#nav").get_by_role("link", name=label, exact=True).click()
        if label != "Overview":
            expect(page).not_to_have_title(before)
        expect(page.locator("main h1").first).to_be_visible()
        page.wait_for_timeout(500)  # a first refresh of the page's data
        titles.add(page.title())
    assert len(titles) == len(nav_labels(page))
    # the page fixture fails this test on any console error, page error or failed request


def test_the_login_form_and_the_navigation_are_reachable_with_tab(page):
    page.goto("/")
    expect(page.get_by_label("Username")).to_be_focused()  # focused when the form shows
    page.keyboard.type("guest")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type("guest")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Log in")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    # from the top of the document: the skip link, the brand, then every navigation link, then Log out
    page.reload()  # focus navigation starts again at the top of the document
    expect(page.locator("#who-name")).to_have_text("guest")
    reached = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("""() => { const a = document.activeElement;
            return a.closest('#nav') ? 'nav:' + a.textContent : a.id || a.textContent.trim(); }"""))
        if reached[-1] == "logout":
            break
    assert reached[0] == "Skip to content"
    assert [r[4:] for r in reached if r.startswith("nav:")] == nav_labels(page)
    assert reached[-1] == "logout"


def test_a_375_pixel_screen_has_no_horizontal_page_scroll(browser, base_url):
    context = browser.new_context(base_url=base_url, viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        page.goto("/")
        login(page)
        expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
        expect(page.locator("#node")).to_contain_text("high watermark")
        labels = nav_labels(page)
        for label in labels:
            page.locator("#nav").get_by_role("link", name=label, exact=True).click()
            expect(page.locator("main h1").first).to_be_visible()
            page.wait_for_timeout(700)
            scroll, client = page.evaluate(
                "[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
            assert scroll <= client, f"{label}: the page scrolls sideways ({scroll} > {client} px)"
    finally:
        context.close()
