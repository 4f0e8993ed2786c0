#!/usr/bin/env python3
"""Screenshots of the web UI's main pages for docs/ui.md (docs/img/ui-*.png).

Theory of operation: starts an embedded broker with the management API on an
ephemeral port, gives it some life with pika (a few queues with messages, a
publisher in confirm mode and a consumer running in a thread, so the rate chart
moves), drives Debian's chromium with Playwright for Python (executable_path, as
tests/ui do; nothing is downloaded), logs in as guest and saves each page after its
data arrived. Run it from the repository root after UI changes:

    python scripts/ui_screenshots.py [--out docs/img] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import shutil
import threading
import time
from pathlib import Path

import pika
from playwright.sync_api import sync_playwright

from warrenmq.testing import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent
#: (file name, hash route, text that shows the page's data arrived)
PAGES = [
    ("ui-overview.png", "#/", "#rates .chart-value"),
    ("ui-queues.png", "#/queues", "main table tbody tr"),
    ("ui-queue.png", "#/queues/%2F/orders", "main h1"),
    ("ui-connections.png", "#/connections", "main table tbody tr"),
    ("ui-admin.png", "#/users", "main table tbody tr"),
]


def traffic(url: str, stop: threading.Event) -> None:
    """Publish to 'orders' with confirms and consume half of it, until stopped."""
    params = pika.URLParameters(url)
    params.client_properties = {"connection_name": "shop-api"}
    conn = pika.BlockingConnection(params)
    ch = conn.channel()
    ch.confirm_delivery()
    consumer = pika.BlockingConnection(pika.URLParameters(url))
    cch = consumer.channel()
    cch.basic_qos(prefetch_count=10)
    n = 0
    while not stop.is_set():
        ch.basic_publish("", "orders", b'{"order": %d}' % n,
                         pika.BasicProperties(content_type="application/json", delivery_mode=2))
        ch.basic_publish("", "invoices", b"invoice %d" % n)
        n += 1
        if n % 2 == 0:
            method, _, _ = cch.basic_get("invoices")
            if method is not None:
                cch.basic_ack(method.delivery_tag)
        time.sleep(0.02)
    conn.close()
    consumer.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "img"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    ap.add_argument("--width", type=int, default=1280)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with EmbeddedBroker(management=True) as b:
        b.call(lambda: b.broker.add_user("ops", "ops-password", ["monitoring"], {"/"}))
        setup = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = setup.channel()
        ch.queue_declare("orders", durable=True, arguments={"x-max-length": 100000, "x-queue-type": "classic"})
        ch.queue_declare("invoices", durable=True, arguments={"x-message-ttl": 600000})
        ch.queue_declare("audit", arguments={"x-max-priority": 5})
        ch.exchange_declare("events", "topic", durable=True)
        ch.queue_bind("audit", "events", "order.*")
        for i in range(25):
            ch.basic_publish("events", "order.created", b"created %d" % i)
        ch.basic_consume("audit", lambda c, m, p, body: None, auto_ack=False)
        stop = threading.Event()
        t = threading.Thread(target=traffic, args=(b.url, stop), daemon=True)
        t.start()
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium,
                                            args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
                page = browser.new_page(viewport={"width": args.width, "height": 900},
                                        base_url=b.management_url)
                page.goto("/")
                page.get_by_label("Username").fill("guest")
                page.get_by_label("Password").fill("guest")
                page.get_by_role("button", name="Log in").click()
                page.get_by_role("heading", name="Overview", level=1).wait_for()
                page.wait_for_timeout(12_000)  # a few seconds of rates on the charts
                for name, route, ready in PAGES:
                    page.goto("/" + route)
                    page.locator(ready).first.wait_for()
                    # the object pages chart from their own polls: give them some seconds of it
                    page.wait_for_timeout(2500 if route == "#/" else 10_000 if route.count("/") > 1 else 1500)
                    page.screenshot(path=str(out / name), full_page=True)
                    print(f"ui_screenshots: {out / name}")
                browser.close()
        finally:
            stop.set()
            t.join(10)
            setup.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
