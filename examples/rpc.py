"""RPC over a queue: requests carry reply_to and a correlation id; replies come back to the caller's queue.

    python examples/rpc.py [URL]              # demo: a server and a client asking for a few numbers
    python examples/rpc.py server [URL]       # serve until Ctrl-C
    python examples/rpc.py client [URL] N...  # ask for fib(N) for each N

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.

The server consumes requests from the "rpc_queue" queue, computes a Fibonacci
number and publishes the answer to the queue named in the request's ``reply_to``,
copying its ``correlation_id``.  The client has its own exclusive, server-named
reply queue and gives every request a fresh correlation id, so it can send many
requests at once and still match each reply to its request, whatever the order
in which they come back.  (rpc_direct_reply_to.py does the same without a reply
queue.)
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
    def __init__(self, url):
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        announce(self.conn)
        self.ch = self.conn.channel()
        self.ch.queue_declare(QUEUE)
        self.ch.basic_qos(prefetch_count=1)  # with several servers, each takes one request at a time
        self.ch.basic_consume(QUEUE, self.on_request)

    def on_request(self, ch, method, props, body):
        n = int(body)
        say(f"server: fib({n}) requested (reply_to={props.reply_to}, correlation_id={props.correlation_id})")
        # the default exchange delivers to the queue named by the routing key: the caller's reply queue
        ch.basic_publish("", routing_key=props.reply_to, body=str(fib(n)).encode(),
                         properties=pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)  # only now: a server dying mid-request leaves it to another

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
        # the reply queue: named by the broker, ours alone, gone when we disconnect
        self.reply_queue = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.basic_consume(self.reply_queue, self.on_reply, auto_ack=True)
        self.answers = {}  # correlation id -> answer, None while waiting

    def on_reply(self, ch, method, props, body):
        if props.correlation_id in self.answers:  # ignore replies nobody waits for any more
            self.answers[props.correlation_id] = int(body)

    def call_many(self, numbers, timeout=10.0):
        """fib(n) for every n, computed remotely; all requests are in flight at once."""
        ids = []
        for n in numbers:
            correlation_id = str(uuid.uuid4())
            self.answers[correlation_id] = None
            self.ch.basic_publish("", routing_key=QUEUE, body=str(n).encode(),
                                  properties=pika.BasicProperties(reply_to=self.reply_queue,
                                                                  correlation_id=correlation_id))
            ids.append(correlation_id)
        deadline = time.monotonic() + timeout
        while any(self.answers[i] is None for i in ids):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply from the RPC server")
            self.conn.process_data_events(time_limit=left)  # runs on_reply for what has arrived
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
    server = Server(url)  # declares rpc_queue before any request is sent
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
