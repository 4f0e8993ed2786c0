"""Producer and consumer with a blocking client (pika's BlockingConnection).

    python examples/sync_producer_consumer.py [URL] [COUNT]

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F; COUNT to 10000.

The twin of async_producer_consumer.py: the same messages, the same guarantees.
The producer publishes COUNT messages with publisher confirms, so each one counts
only once the broker has acknowledged it; the consumer takes them with manual
acks and a prefetch of 100.  They run in two threads, each with its own
connection.

A blocking publish with confirms returns when the broker's basic.ack arrives,
so the producer has one message in flight at a time: every message costs a full
round trip to the broker and back.  See "Sync or async clients" in README.md.
"""
import os
import queue
import sys
import threading
import time

import pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
PREFETCH = 100


def consume(url, count, ready):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=PREFETCH)
    # a queue of our own for this run: server-named, exclusive, gone when we disconnect
    name = ch.queue_declare("", exclusive=True).method.queue
    ready.put(name)
    received = 0
    for method, _props, _body in ch.consume(name):
        ch.basic_ack(method.delivery_tag)
        received += 1
        if received == count:
            break
    ch.cancel()
    conn.close()


def produce(url, queue_name, count):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(count):
        # blocks until the broker confirms this message (raises if it is refused)
        ch.basic_publish("", queue_name, f"message {i}".encode())
    conn.close()


def main():
    args = sys.argv[1:]
    url = next((a for a in args if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    count = next((int(a) for a in args if a.isdigit()), 10_000)

    ready = queue.Queue()
    consumer = threading.Thread(target=consume, args=(url, count, ready))
    consumer.start()
    queue_name = ready.get(timeout=10)  # the consumer's queue exists: start publishing

    start = time.perf_counter()
    produce(url, queue_name, count)
    published = time.perf_counter() - start
    consumer.join()
    consumed = time.perf_counter() - start

    print(f"sync (pika BlockingConnection): {count} messages published and confirmed in {published:.2f} s "
          f"({count / published:.0f} msg/s), all consumed and acked after {consumed:.2f} s "
          f"({count / consumed:.0f} msg/s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
