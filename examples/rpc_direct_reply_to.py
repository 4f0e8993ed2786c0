"""RPC with direct reply-to: replies go straight back to the caller's channel, with no reply queue.

    python examples/rpc_direct_reply_to.py [URL]              # demo: a server and a client
    python examples/rpc_direct_reply_to.py server [URL]       # serve until Ctrl-C
    python examples/rpc_direct_reply_to.py client [URL] N...  # ask for fib(N) for each N

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.

Same server as rpc.py.  The client, instead of declaring a reply queue:

1. consumes from the pseudo-queue "amq.rabbitmq.reply-to" with auto_ack=True
   (acks are refused there: PRECONDITION_FAILED - reply consumer cannot acknowledge);
2. publishes its requests *on that same channel* with reply_to="amq.rabbitmq.reply-to".
   The broker rewrites reply_to to an address for this channel,
   "amq.rabbitmq.reply-to.<opaque token>" (without step 1 the publish fails with
   PRECONDITION_FAILED - fast reply consumer does not exist);
3. the server publishes its reply to that address on the default exchange, as it
   would to any reply queue, and the broker hands it directly to the client's consumer.

Nothing is stored: a reply whose caller has gone is dropped.  This saves declaring
and deleting a queue per client, which matters for short-lived callers.
"""
import os
import sys
import threading
import time
import uuid

import pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
QUEUE = "rpc_queue"
REPLY_TO = "amq.rabbitmq.reply-to"
_print_lock = threading.Lock()


def say(text):
    """print() for threads: one whole line at a time."""
    with _print_lock:
        print(text, flush=True)


def fib(n):
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


class Server:
    """Exactly rpc.py's server: it replies to whatever reply_to says."""

    def __init__(self, url):
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        announce(self.conn)
        self.ch = self.conn.channel()
        self.ch.queue_declare(QUEUE)
        self.ch.basic_qos(prefetch_count=1)
        self.ch.basic_consume(QUEUE, self.on_request)

    def on_request(self, ch, method, props, body):
        n = int(body)
        say(f"server: fib({n}) requested, replying to {props.reply_to}")
        ch.basic_publish("", routing_key=props.reply_to, body=str(fib(n)).encode(),
                         properties=pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    def run(self):
        say(f"server: waiting for requests on {QUEUE}")
        try:
            self.ch.start_consuming()
        except KeyboardInterrupt:
            pass
        self.conn.close()

    def stop(self):
        """Callable from any thread."""
        self.conn.add_callback_threadsafe(self.ch.stop_consuming)


class Client:
    def __init__(self, url):
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        announce(self.conn)
        self.ch = self.conn.channel()
        # step 1: the reply consumer; auto_ack=True is required
        self.ch.basic_consume(REPLY_TO, self.on_reply, auto_ack=True)
        self.answers = {}  # correlation id -> answer, None while waiting

    def on_reply(self, ch, method, props, body):
        if props.correlation_id in self.answers:
            self.answers[props.correlation_id] = int(body)

    def call_many(self, numbers, timeout=10.0):
        """fib(n) for every n, computed remotely; all requests are in flight at once."""
        ids = []
        for n in numbers:
            correlation_id = str(uuid.uuid4())
            self.answers[correlation_id] = None
            # step 2: same channel as the reply consumer, reply_to = the pseudo-queue
            self.ch.basic_publish("", routing_key=QUEUE, body=str(n).encode(),
                                  properties=pika.BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id))
            ids.append(correlation_id)
        deadline = time.monotonic() + timeout
        while any(self.answers[i] is None for i in ids):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the RPC server")
            self.conn.process_data_events(time_limit=left)
        return [self.answers.pop(i) for i in ids]

    def call(self, n):
        return self.call_many([n])[0]

    def close(self):
        self.conn.close()


def main():
    args = sys.argv[1:]
    url = next((a for a in args if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    role = next((a for a in args if a in ("server", "client")), "demo")
    numbers = [int(a) for a in args if a.isdigit()]
    if role == "server":
        Server(url).run()
        return 0
    if role == "client":
        client = Client(url)
        for n, answer in zip(numbers, client.call_many(numbers)):
            say(f"client: fib({n}) = {answer}")
        client.close()
        return 0
    server = Server(url)
    thread = threading.Thread(target=server.run)
    thread.start()
    client = Client(url)
    say(f"client: fib(30) = {client.call(30)}")
    numbers = numbers or [1, 2, 3, 10, 20]
    for n, answer in zip(numbers, client.call_many(numbers)):
        say(f"client: fib({n}) = {answer}")
    client.close()
    server.stop()
    thread.join()
    return 0


if __name__ == "__main__":
    sys.exit(main())
