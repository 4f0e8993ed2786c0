"""Browser tests of the web UI: Debian's chromium driven by Playwright for Python.

Fixtures (docs/ui.md, "Testing"):

- ``ui_broker``: an :class:`EmbeddedBroker` serving the management API and the UI (module scope);
- ``browser``: the system chromium (``executable_path``; browsers are never downloaded), module scope;
- ``page``: a fresh browser context and page that FAILS the test on any console error, uncaught page
  error or failed request (a test that expects one, e.g. the 401 of a wrong password, says so with
  ``page.expect_console(r"401")``);
- ``logged_in``: ``page`` logged in as guest, at the overview;
- ``base_url``: the UI's address.

Without chromium or Playwright the tests skip, saying why; with ``WARRENMQ_REQUIRE_BROWSER=1``
(.ci/run sets it after .ci/browser.sh installed chromium) they fail instead.
"""
from __future__ import annotations

import os
import re
import shutil

import pytest

from warrenmq.testing import EmbeddedBroker

REQUIRE = os.environ.get("WARRENMQ_REQUIRE_BROWSER") == "1"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
#: how long a test waits for something to appear (the overview polls every second or two)
TIMEOUT_MS = 15_000


def chromium_path() -> str | None:
    for cand in (os.environ.get("WARRENMQ_CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium",
                 shutil.which("chromium-browser")):
        if cand and os.path.exists(cand):
            return cand
    return None


def _unavailable(reason: str):
    if REQUIRE:
        pytest.fail(f"WARRENMQ_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


# module scope, not session: Playwright's sync API keeps an event loop running in the main thread while it
# is open, which would break later test modules that call asyncio.run()
@pytest.fixture(scope="module")
def _playwright():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed (pip install '.[test]')")
    if chromium_path() is None:
        _unavailable("no chromium on this machine (.ci/browser.sh installs Debian's)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(_playwright):
    b = _playwright.chromium.launch(executable_path=chromium_path(), args=ARGS, headless=True)
    yield b
    b.close()


@pytest.fixture(scope="module")
def ui_broker():
    with EmbeddedBroker(management=True) as b:
        yield b


@pytest.fixture
def base_url(ui_broker) -> str:
    return ui_broker.management_url


class _Problems:
    """What went wrong in the page: console errors, page errors, failed requests."""

    def __init__(self):
        self.found: list[str] = []
        self.allowed: list[re.Pattern] = []

    def add(self, text: str) -> None:
        if not any(p.search(text) for p in self.allowed):
            self.found.append(text)


@pytest.fixture
def page(browser, base_url, request):
    context = browser.new_context(base_url=base_url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    problems = _Problems()
    pg.on("console", lambda m: m.type == "error" and problems.add(f"console error: {m.text} ({m.location})"))
    pg.on("pageerror", lambda e: problems.add(f"page error: {e}"))
    pg.on("requestfailed", lambda r: problems.add(f"request failed: {r.method} {r.url}: {r.failure}")
          if r.url.startswith(base_url) else None)

    def expect_console(pattern: str) -> None:
        """Let console errors matching ``pattern`` (a regex) pass, e.g. the 401 of a refused login."""
        problems.allowed.append(re.compile(pattern))

    pg.expect_console = expect_console
    pg.problems = problems
    yield pg
    found = list(problems.found)
    context.close()
    if found and not _failed(request):
        pytest.fail("the page reported problems:\n" + "\n".join(found), pytrace=False)


def _failed(request) -> bool:
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


def login(page, user: str = "guest", password: str = "guest") -> None:
    """Log in through the login form (the page is at the login form or about to show it)."""
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()


@pytest.fixture
def logged_in(page):
    page.goto("/")
    login(page)
    page.get_by_role("heading", name="Overview", level=1).wait_for()
    return page
