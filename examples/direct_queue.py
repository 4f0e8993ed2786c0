"""Send to a named queue and receive from it ("hello world").

    python examples/direct_queue.py [URL]                 # demo: send three messages, receive them
    python examples/direct_queue.py send [URL] [TEXT...]  # send TEXT (or "Hello World!")
    python examples/direct_queue.py receive [URL]         # print messages until Ctrl-C

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.

Publishing to the default exchange ("") with a queue's name as the routing key
delivers straight to that queue.  Both sides declare the queue: declaring is
idempotent, and whichever side starts first creates it, so neither depends on the
other having run.  A message sent while no receiver runs waits in the queue.
"""
import os
import sys

import pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
QUEUE = "hello"


def send(url, texts):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.queue_declare(QUEUE)
    ch.confirm_delivery()  # each publish returns once the broker has the message
    for text in texts:
        ch.basic_publish(exchange="", routing_key=QUEUE, body=text.encode())
        print(f"sent {text!r}", flush=True)
    conn.close()


def receive(url, count=None):
    """Print ``count`` messages (or all, until Ctrl-C); return the texts received."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.queue_declare(QUEUE)
    texts = []
    try:
        # consume() yields messages as they arrive; acknowledge each once it is handled
        for method, _props, body in ch.consume(QUEUE):
            print(f"received {body.decode()!r}", flush=True)
            ch.basic_ack(method.delivery_tag)
            texts.append(body.decode())
            if len(texts) == count:
                break
        ch.cancel()  # stop consuming (anything prefetched but unhandled goes back to the queue)
    except KeyboardInterrupt:
        pass
    conn.close()
    return texts


def purge(url):
    """The demo starts from an empty queue: drop what earlier runs of "send" left."""
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.queue_declare(QUEUE)
    ch.queue_purge(QUEUE)
    conn.close()


def main():
    args = sys.argv[1:]
    url = next((a for a in args if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    role = next((a for a in args if a in ("send", "receive")), "demo")
    if role == "send":
        send(url, [a for a in args if a not in ("send", url)] or ["Hello World!"])
    elif role == "receive":
        receive(url)
    else:
        texts = ["Hello World!", "second message", "third message"]
        purge(url)
        send(url, texts)
        assert receive(url, count=len(texts)) == texts, "a queue delivers in order"
    return 0


if __name__ == "__main__":
    sys.exit(main())
