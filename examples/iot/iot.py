"""Devices, workers and a live dashboard on one broker: MQTT in, AMQP work queue, Web MQTT out.

    python examples/iot/iot.py [URL] [options]      # everything, until Ctrl-C; open the printed address
    python examples/iot/iot.py setup [URL]          # only make the users, permissions, queue and binding
    python examples/iot/iot.py teardown [URL]       # remove them
    python examples/iot/iot.py devices [URL]        # simulated devices publishing, until Ctrl-C
    python examples/iot/iot.py publish [URL] DEVICE [COUNT]   # one device publishes COUNT readings, then exits
    python examples/iot/iot.py worker [URL]         # one worker storing readings, until Ctrl-C
    python examples/iot/iot.py web [URL]            # only the dashboard's web server, until Ctrl-C
    python examples/iot/iot.py readings [URL]       # what the workers stored, per device and worker

URL is the broker's AMQP URL with an administrator's credentials (default $AMQP_URL, then
amqp://guest:guest@localhost:5672/%2F); the management API, MQTT and Web MQTT are found on the
same host at their usual ports (15672, 1883, ws://...:15675/ws) unless --management, --mqtt and
--web-mqtt say otherwise.  It works the same against RabbitMQ with its management, mqtt and
web_mqtt plugins.  README.md in this directory tells what each part shows.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]  # this example's modules, and examples/which_broker.py

import pika  # noqa: E402

import devices as devices_mod  # noqa: E402
import setup_broker  # noqa: E402
import web  # noqa: E402
import workers as workers_mod  # noqa: E402
from which_broker import announce  # noqa: E402

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
ROLES = ("all", "setup", "teardown", "devices", "publish", "worker", "web", "readings")
_print_lock = threading.Lock()


def say(text: str) -> None:
    """print() for threads: one whole line at a time."""
    with _print_lock:
        print(text, flush=True)


class Broker:
    """Where the broker's AMQP, management, MQTT and Web MQTT listeners are, from the AMQP URL and options."""

    def __init__(self, url: str, management: str | None, mqtt: str | None, web_mqtt: str | None, prefix: str = ""):
        u = urlsplit(url)
        self.url = url
        self.scheme = u.scheme
        self.host = u.hostname or "localhost"
        self.port = u.port or (5671 if u.scheme == "amqps" else 5672)
        self.user = unquote(u.username or "guest")
        self.password = unquote(u.password or "guest")
        self.vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
        self.management = management or f"http://{self.host}:15672"
        mqtt_host, _, mqtt_port = (mqtt or f"{self.host}:1883").rpartition(":")
        self.mqtt = (mqtt_host, int(mqtt_port))
        self.web_mqtt = web_mqtt or f"ws://{self.host}:15675/ws"
        self.prefix = prefix  # before the example's user names (--user-prefix)

    def amqp_url(self, user: str, password: str) -> str:
        """The AMQP URL for another user of the same vhost."""
        return (f"{self.scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{self.host}:{self.port}/"
                f"{quote(self.vhost, safe='')}")

    def api(self) -> setup_broker.ManagementAPI:
        return setup_broker.ManagementAPI(self.management, self.user, self.password)


def check_amqp(broker: Broker) -> None:
    """Connect once with the administrator's URL: prints which broker answered, and fails early if none."""
    try:
        conn = pika.BlockingConnection(pika.URLParameters(broker.url))
    except pika.exceptions.AMQPError as e:
        raise SystemExit(f"no AMQP broker at {broker.host}:{broker.port} for {broker.user} ({e!r})") from None
    announce(conn)
    conn.close()


def start_workers(broker: Broker, count: int, work_ms: list[float], db: str) -> list[tuple]:
    password = setup_broker.USERS["iot-worker"][0]
    started = []
    for i in range(count):
        w = workers_mod.Worker(broker.amqp_url(broker.prefix + "iot-worker", password), f"worker-{i + 1}", db,
                               work_ms[min(i, len(work_ms) - 1)] / 1000, say)
        t = threading.Thread(target=w.run, name=w.name)
        t.start()
        started.append((w, t))
    say(f"workers: {count} sharing queue {setup_broker.QUEUE} (prefetch 1), storing readings in {db}")
    return started


async def until_interrupted() -> None:
    """Return on Ctrl-C (SIGINT) or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


async def serve_dashboard(broker: Broker, host: str, port: int) -> None:
    app = web.make_app(broker.web_mqtt, broker.vhost, setup_broker.DEVICES)
    runner, port = await web.start(app, host, port)
    logins = ", ".join(f"{broker.prefix}{u} / {setup_broker.USERS[u][0]} ({setup_broker.USERS[u][1]})"
                       for u in ("alice", "bob"))
    say(f"web: dashboard at http://{host}:{port}/ (Web MQTT {broker.web_mqtt}); log in as {logins}")
    try:
        await until_interrupted()
    finally:
        await runner.cleanup()


def run_all(broker: Broker, args) -> int:
    setup_broker.setup(broker.api(), broker.vhost, broker.prefix, say)  # first: it may create the vhost
    check_amqp(broker)
    started = start_workers(broker, args.workers, args.work_ms, args.db)
    stop_devices = threading.Event()
    devices_thread = None
    if args.interval > 0:
        try:
            connected = devices_mod.connect(setup_broker.DEVICES, *broker.mqtt, broker.vhost, broker.prefix)
        except ConnectionError as e:
            for w, _ in started:
                w.stop()
            raise SystemExit(f"devices: {e}") from None
        devices_thread = threading.Thread(target=devices_mod.run_devices, name="devices",
                                          args=(connected, args.interval, stop_devices, say))
        devices_thread.start()
    else:
        say("devices: none publishing on their own (--interval 0); use the publish role")
    try:
        asyncio.run(serve_dashboard(broker, args.web_host, args.web_port))
    finally:
        stop_devices.set()
        if devices_thread is not None:
            devices_thread.join()
        for w, _ in started:
            w.stop()
        for w, t in started:
            t.join()
            say(f"{w.name}: stored {w.stored} reading(s)")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("words", nargs="*", metavar="[ROLE] [URL] [ARGS]")
    ap.add_argument("--management", help="the management API's base URL (default http://HOST:15672)")
    ap.add_argument("--mqtt", help="the MQTT listener, HOST:PORT (default HOST:1883)")
    ap.add_argument("--web-mqtt", help="the Web MQTT endpoint the page connects to (default ws://HOST:15675/ws)")
    ap.add_argument("--web-host", default="127.0.0.1", help="the dashboard's address (default 127.0.0.1)")
    ap.add_argument("--web-port", type=int, default=8080, help="the dashboard's port (default 8080; 0: any free)")
    ap.add_argument("--db", default="iot.db", help="the workers' SQLite database (default ./iot.db)")
    ap.add_argument("--workers", type=int, default=2, help="how many workers share the queue (default 2)")
    ap.add_argument("--work-ms", default="50", type=lambda s: [float(x) for x in s.split(",")],
                    help="milliseconds a worker spends per reading; a list (50,400) gives each worker its own")
    ap.add_argument("--user-prefix", default="", metavar="PREFIX",
                    help="put PREFIX before the example's user names (alice becomes PREFIXalice)")
    ap.add_argument("--interval", type=float, default=2.0,
                    help="seconds between a device's readings (default 2; 0: devices publish only when asked)")
    args = ap.parse_intermixed_args(argv)
    words = list(args.words)
    role = words.pop(0) if words and words[0] in ROLES else "all"
    url = next((w for w in words if "://" in w), os.environ.get("AMQP_URL", DEFAULT_URL))
    rest = [w for w in words if w != url]
    broker = Broker(url, args.management, args.mqtt, args.web_mqtt, args.user_prefix)

    if role == "all":
        return run_all(broker, args)
    if role == "setup":
        setup_broker.setup(broker.api(), broker.vhost, broker.prefix, say)
    elif role == "teardown":
        setup_broker.teardown(broker.api(), broker.vhost, broker.prefix, say)
    elif role == "publish":
        if not rest or rest[0] not in setup_broker.DEVICES:
            ap.exit(2, f"usage: iot.py publish [URL] DEVICE [COUNT]  (DEVICE one of {', '.join(setup_broker.DEVICES)})\n")
        try:
            device = devices_mod.Device(rest[0], *broker.mqtt, broker.vhost, broker.prefix)
        except ConnectionError as e:  # e.g. the setup was not run: the broker refuses the login
            print(f"publish: {e}", file=sys.stderr)
            return 1
        for _ in range(int(rest[1]) if len(rest) > 1 else 1):
            r = device.publish()
            say(f"{device.id}: published #{r['seq']} reading {r['id']} {r['temperature']} °C")
        device.close()
    elif role == "devices":
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        try:
            connected = devices_mod.connect(setup_broker.DEVICES, *broker.mqtt, broker.vhost, broker.prefix)
        except ConnectionError as e:
            print(f"devices: {e}", file=sys.stderr)
            return 1
        devices_mod.run_devices(connected, args.interval or 2.0, stop, say)
    elif role == "worker":
        check_amqp(broker)
        w = workers_mod.Worker(broker.amqp_url(broker.prefix + "iot-worker", setup_broker.USERS["iot-worker"][0]),
                               "worker",
                               args.db, args.work_ms[0] / 1000, say)
        w.run()
    elif role == "web":
        asyncio.run(serve_dashboard(broker, args.web_host, args.web_port))
    elif role == "readings":
        for device, worker, n in workers_mod.summary(args.db):
            say(f"{device}: {n} reading(s) stored by {worker}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
