"""Broadcast (publish/subscribe): one sender, several listeners, a fanout exchange.

    python examples/broadcast.py [URL]          # demo: three listeners and a sender
    python examples/broadcast.py listen [URL]   # one listener, until Ctrl-C
    python examples/broadcast.py send [URL]     # one sender

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.

A fanout exchange copies every message to every queue bound to it and ignores
routing keys.  Each listener declares the exchange and its own queue: server-named
(the broker picks a unique name) and exclusive (only its connection may use it,
and the broker deletes it when that connection closes).  A listener therefore only
hears what is sent while it listens.

The sender does not declare the exchange.  If no listener has declared it, the
broker closes the sender's channel with "NOT_FOUND - no exchange 'logs' in vhost
'/'", which the sender prints before exiting with status 1.  The exchange is
auto-delete: it goes when its last binding goes, i.e. when the last listener
disconnects, so a sender without listeners always gets that error rather than
broadcasting to nobody.
"""
import os
import sys
import threading

import pika
from pika.exceptions import ChannelClosedByBroker

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
EXCHANGE = "logs"
LISTENERS = 3
MESSAGES = ["info: the system is up", "warning: disk 90% full", "error: disk full"]
_print_lock = threading.Lock()


def say(text):
    """print() for threads: one whole line at a time."""
    with _print_lock:
        print(text, flush=True)


def listen(url, name="listener", count=None, ready=None):
    """Print what arrives on the exchange: ``count`` messages, or until Ctrl-C."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    # every listener declares the exchange with the same arguments (redeclaring is a no-op)
    ch.exchange_declare(EXCHANGE, exchange_type="fanout", auto_delete=True)
    # queue "" = let the broker name it; exclusive = ours alone, deleted with our connection
    queue = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(queue, EXCHANGE)  # fanout: no routing key needed
    say(f"{name}: listening on {queue}")
    if ready is not None:
        ready.set()
    received = 0
    try:
        # auto_ack: a broadcast listener that misses a message loses nothing important
        for _method, _props, body in ch.consume(queue, auto_ack=True):
            say(f"{name}: got {body.decode()!r}")
            received += 1
            if received == count:
                break
    except KeyboardInterrupt:
        pass
    conn.close()
    return received


def send(url, messages=MESSAGES):
    """Publish ``messages`` to the exchange; return an exit status."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    # publisher confirms: each publish waits for the broker's answer, so an error
    # (here: the exchange does not exist) surfaces at the publish that caused it
    ch.confirm_delivery()
    try:
        for text in messages:
            ch.basic_publish(EXCHANGE, routing_key="", body=text.encode())
            say(f"sender: sent {text!r}")
    except ChannelClosedByBroker as e:
        print(f"sender: {e.reply_text}", file=sys.stderr, flush=True)
        return 1
    finally:
        if conn.is_open:
            conn.close()
    return 0


def demo(url):
    """Start the listeners in threads, wait until each has bound its queue, then send."""
    received, threads, ready = {}, [], []
    for i in range(1, LISTENERS + 1):
        name, event = f"listener-{i}", threading.Event()

        def run(name=name, event=event):
            received[name] = listen(url, name, len(MESSAGES), event)

        threads.append(threading.Thread(target=run, daemon=True))
        ready.append(event)
        threads[-1].start()
    for event in ready:
        if not event.wait(timeout=10):
            raise SystemExit("demo: a listener did not start")
    status = send(url)
    if status:
        return status
    for t in threads:
        t.join()
    say(f"demo: messages received per listener: {dict(sorted(received.items()))}")
    return 0


def main():
    args = sys.argv[1:]
    url = next((a for a in args if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    role = next((a for a in args if a in ("listen", "send")), "demo")
    if role == "listen":
        listen(url)
        return 0
    if role == "send":
        return send(url)
    return demo(url)


if __name__ == "__main__":
    sys.exit(main())
