#!/usr/bin/env python3
"""The screenshot of examples/iot's dashboard in its README (docs/img/iot-dashboard.png).

Theory of operation: starts an embedded broker with the management API, MQTT and
Web MQTT on ephemeral ports, runs ``examples/iot/iot.py`` against it as a user
would (its devices publishing every 0.4 s), drives Debian's chromium with
Playwright for Python (executable_path, as tests/ui do; nothing is downloaded),
logs in as alice, lets a few readings arrive and saves the page. Run it from the
repository root after changing the dashboard:

    python scripts/iot_screenshot.py [--out docs/img/iot-dashboard.png] [--chromium /usr/bin/chromium]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from warrenmq.testing import EmbeddedBroker

ROOT = Path(__file__).resolve().parent.parent


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs/img/iot-dashboard.png"))
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args(argv)
    with EmbeddedBroker(management=True, web_mqtt=True) as broker, tempfile.TemporaryDirectory() as tmp:
        example = subprocess.Popen(
            [sys.executable, "-u", str(ROOT / "examples/iot/iot.py"), broker.url, "--management", broker.management_url,
             "--mqtt", f"127.0.0.1:{broker.mqtt_port}", "--web-mqtt", broker.web_mqtt_url, "--web-port", "0",
             "--db", f"{tmp}/iot.db", "--interval", "0.4"], stdout=subprocess.PIPE, text=True)
        try:
            for line in example.stdout:
                m = re.match(r"web: dashboard at (\S+) ", line)
                if m:
                    break
            else:
                raise SystemExit("iot_screenshot: the example did not start its dashboard")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"], headless=True)
                page = browser.new_page(viewport={"width": 900, "height": 560})
                page.goto(m.group(1))
                page.get_by_label("Username").fill("alice")
                page.get_by_label("Password").fill("alice-secret")
                page.get_by_role("button", name="Log in").click()
                page.locator("#log li:nth-child(6)").wait_for(timeout=15_000)
                page.wait_for_timeout(700)  # the last reading's highlight fades
                page.screenshot(path=args.out)
                browser.close()
        finally:
            example.terminate()
            example.wait(10)
    print(f"iot_screenshot: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
