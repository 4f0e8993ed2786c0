"""Producer and consumer with an asyncio client (aio-pika).

    python examples/async_producer_consumer.py [URL] [COUNT]

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F; COUNT to 10000.

The twin of sync_producer_consumer.py: the same messages, the same guarantees.
The producer publishes COUNT messages with publisher confirms (aio-pika's default
for a channel), so each one counts only once the broker has acknowledged it; the
consumer takes them with manual acks and a prefetch of 100.  They run as two
tasks on one event loop, each with its own connection.

The difference: each publish is a coroutine that waits for its confirm, and the
producer starts IN_FLIGHT of them at once, then waits for them all.  It writes
the next messages while earlier confirms are on their way back instead of paying
a full round trip per message.  See "Sync or async clients" in README.md.
"""
import asyncio
import os
import sys
import time

import aio_pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
PREFETCH = 100
IN_FLIGHT = 200  # publishes awaiting their confirms at once


async def consume(url, count, ready):
    async with await aio_pika.connect(url) as conn:
        announce(conn)
        ch = await conn.channel()
        await ch.set_qos(prefetch_count=PREFETCH)
        # a queue of our own for this run: server-named, exclusive, gone when we disconnect
        q = await ch.declare_queue("", exclusive=True)
        ready.set_result(q.name)
        received = 0
        async with q.iterator() as messages:
            async for message in messages:
                await message.ack()
                received += 1
                if received == count:
                    break


async def produce(url, queue_name, count):
    async with await aio_pika.connect(url) as conn:
        announce(conn)
        ch = await conn.channel()  # publisher_confirms=True by default
        for start in range(0, count, IN_FLIGHT):
            batch = [aio_pika.Message(f"message {i}".encode()) for i in range(start, min(count, start + IN_FLIGHT))]
            # each publish() returns when the broker confirms its message (or raises if it is refused);
            # started together, all of the batch wait for their confirms at once
            await asyncio.gather(*(ch.default_exchange.publish(m, routing_key=queue_name) for m in batch))


async def run(url, count):
    ready = asyncio.get_running_loop().create_future()
    consumer = asyncio.create_task(consume(url, count, ready))
    queue_name = await asyncio.wait_for(ready, 10)  # the consumer's queue exists: start publishing

    start = time.perf_counter()
    await produce(url, queue_name, count)
    published = time.perf_counter() - start
    await consumer
    consumed = time.perf_counter() - start

    print(f"async (aio-pika): {count} messages published and confirmed in {published:.2f} s "
          f"({count / published:.0f} msg/s), all consumed and acked after {consumed:.2f} s "
          f"({count / consumed:.0f} msg/s)", flush=True)


def main():
    args = sys.argv[1:]
    url = next((a for a in args if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    count = next((int(a) for a in args if a.isdigit()), 10_000)
    asyncio.run(run(url, count))
    return 0


if __name__ == "__main__":
    sys.exit(main())
