"""Routing by key: a named direct exchange sends each message to the queues bound with its key.

    python examples/direct_routing.py [URL]                          # demo: two subscribers, five messages
    python examples/direct_routing.py listen [URL] [SEVERITY...]     # print what arrives until Ctrl-C
    python examples/direct_routing.py send [URL] SEVERITY [TEXT...]  # publish TEXT with that key

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.  A listener
without SEVERITY listens for info, warning and error.

Log messages are published to the "direct_logs" exchange with their severity as
the routing key.  A direct exchange delivers a message to every queue bound with
exactly that key: here the "errors" subscriber binds its queue with "error" only,
the "console" subscriber binds its own with "info", "warning" and "error".  An
error reaches both queues; a "debug" message reaches none and is dropped.  (The
default exchange of direct_queue.py is a direct exchange too, with every queue
bound under its own name.)

Every party declares the exchange with the same arguments, so whichever starts
first creates it; each subscriber has its own server-named, exclusive queue,
gone when it disconnects.
"""
import os
import sys

import pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
EXCHANGE = "direct_logs"
SEVERITIES = ["info", "warning", "error"]

# subscriber -> the routing keys it binds its queue with
SUBSCRIBERS = {
    "errors": ["error"],
    "console": ["info", "warning", "error"],
}
MESSAGES = [("info", "the system is up"), ("warning", "disk 90% full"), ("error", "disk full"),
            ("debug", "cache miss"), ("error", "disk still full")]


def connect(url):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, exchange_type="direct")
    return conn, ch


def subscribe(ch, severities):
    """A queue of our own, bound once per severity; returns its (server-chosen) name."""
    queue = ch.queue_declare("", exclusive=True).method.queue
    for severity in severities:
        ch.queue_bind(queue, EXCHANGE, routing_key=severity)
    return queue


def send(url, severity, text):
    conn, ch = connect(url)
    ch.confirm_delivery()  # basic_publish returns once the broker has routed the message
    ch.basic_publish(EXCHANGE, routing_key=severity, body=text.encode())
    print(f"sent [{severity}] {text!r}", flush=True)
    conn.close()


def listen(url, severities):
    conn, ch = connect(url)
    queue = subscribe(ch, severities)
    print(f"listening for {', '.join(severities)} on {queue}", flush=True)
    try:
        for method, _props, body in ch.consume(queue, auto_ack=True):
            print(f"got [{method.routing_key}] {body.decode()!r}", flush=True)
    except KeyboardInterrupt:
        pass
    conn.close()


def demo(url):
    conn, ch = connect(url)
    queues = {name: subscribe(ch, keys) for name, keys in SUBSCRIBERS.items()}
    ch.confirm_delivery()
    for severity, text in MESSAGES:
        ch.basic_publish(EXCHANGE, routing_key=severity, body=text.encode())
    # what each subscriber got (basic_get fetches one message, None when the queue is empty)
    for name, queue in queues.items():
        got = []
        while True:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            got.append(f"[{method.routing_key}] {body.decode()}")
        print(f"{name:8} binds {' '.join(SUBSCRIBERS[name]):19} got: {', '.join(got)}", flush=True)
    # "debug" matched no binding: the exchange dropped it
    conn.close()
    return 0


def main():
    args = sys.argv[1:]
    url = next((a for a in args if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    role = next((a for a in args if a in ("listen", "send")), "demo")
    rest = [a for a in args if a not in (role, url)]
    if role == "send":
        if not rest:
            print("usage: direct_routing.py send [URL] SEVERITY [TEXT...]", file=sys.stderr)
            return 2
        send(url, rest[0], " ".join(rest[1:]) or "Hello World!")
    elif role == "listen":
        listen(url, rest or SEVERITIES)
    else:
        return demo(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
