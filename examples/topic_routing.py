"""Topic routing: subscribers pick messages by pattern on a dotted routing key.

    python examples/topic_routing.py [URL]

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.

Routing keys here are "<facility>.<severity>" (key.subkey), e.g. "kern.critical".
A topic exchange matches them word by word against each binding's pattern:
"*" stands for exactly one word, "#" for zero or more words.  Each subscriber
binds its own queue with the patterns it wants; one message reaches every queue
with a matching pattern (once, even if several of its patterns match), and a
message no pattern matches is dropped.
"""
import os
import sys

import pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
EXCHANGE = "topic_logs"

# subscriber -> the patterns it binds its queue with
SUBSCRIBERS = {
    "kernel": ["kern.*"],                    # everything from the kernel
    "critical": ["*.critical"],              # critical messages from anywhere
    "auth-or-critical": ["auth.#", "*.critical"],  # a message matching both patterns arrives once
    "everything": ["#"],
}
MESSAGES = ["kern.critical", "kern.info", "auth.info", "auth.critical", "cron.warning", "app.db.critical"]


def main():
    url = next((a for a in sys.argv[1:] if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.exchange_declare(EXCHANGE, exchange_type="topic")

    # one exclusive, server-named queue per subscriber, bound with its patterns
    queues = {}
    for name, patterns in SUBSCRIBERS.items():
        queues[name] = ch.queue_declare("", exclusive=True).method.queue
        for pattern in patterns:
            ch.queue_bind(queues[name], EXCHANGE, routing_key=pattern)

    # publish with confirms: once basic_publish returns, the message is in every matching queue
    ch.confirm_delivery()
    for key in MESSAGES:
        ch.basic_publish(EXCHANGE, routing_key=key, body=f"a {key} message".encode())

    # see what each subscriber got (basic_get fetches one message, None when the queue is empty)
    for name, queue in queues.items():
        got = []
        while True:
            method, _props, _body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                break
            got.append(method.routing_key)
        print(f"{name:17} {' '.join(SUBSCRIBERS[name]):20} got: {', '.join(got)}", flush=True)
    # "app.db.critical" has three words: "*.critical" does not match it, "#" does
    conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
