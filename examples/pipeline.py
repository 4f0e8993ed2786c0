"""A pipeline: a work queue feeding processors that call RPC services.

    python examples/pipeline.py [URL]

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.

One producer streams words into the "pipeline.words" work queue.  Three
processors share that queue (prefetch 1, manual acks: whoever is free takes the
next word).  For each word a processor asks one of two responders by RPC, over
direct reply-to: words starting with a-m go to the responder that uppercases,
the others to the one that lowercases.  It prints the answer and only then acks
the word.  Everything runs in threads of this process, each with its own
connection (a pika connection belongs to one thread).

The stream ends with one empty message per processor: a processor stops at the
first it takes, so each of them takes exactly one.
"""
import os
import queue
import sys
import threading
import time
import uuid

import pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
WORDS = "Pack my box with five dozen liquor jugs while the quick brown fox jumps over the Lazy dog".split()
WORK_QUEUE = "pipeline.words"
RESPONDERS = {"pipeline.upper": str.upper, "pipeline.lower": str.lower}
PROCESSORS = 3
REPLY_TO = "amq.rabbitmq.reply-to"
_print_lock = threading.Lock()


def say(text):
    """print() for threads: one whole line at a time."""
    with _print_lock:
        print(text, flush=True)


def responder_for(word):
    return "pipeline.upper" if word[0].lower() <= "m" else "pipeline.lower"


def connect(url):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    return conn


class Responder:
    """An RPC server: applies its function to each request and replies to reply_to."""

    def __init__(self, url, queue_name):
        self.function = RESPONDERS[queue_name]
        self.conn = connect(url)
        self.ch = self.conn.channel()
        self.ch.queue_declare(queue_name)
        self.ch.basic_consume(queue_name, self.on_request)

    def on_request(self, ch, method, props, body):
        answer = self.function(body.decode())
        ch.basic_publish("", props.reply_to, answer.encode(), pika.BasicProperties(correlation_id=props.correlation_id))
        ch.basic_ack(method.delivery_tag)

    def run(self):
        self.ch.start_consuming()
        self.conn.close()

    def stop(self):
        self.conn.add_callback_threadsafe(self.ch.stop_consuming)


class Processor:
    def __init__(self, url, name, results):
        self.name = name
        self.results = results  # a queue.Queue of (processor, word, answer)
        self.conn = connect(url)
        self.work = self.conn.channel()
        self.work.queue_declare(WORK_QUEUE)
        self.work.basic_qos(prefetch_count=1)  # one word at a time
        # a second channel for the RPC calls, with its direct reply-to consumer
        self.rpc = self.conn.channel()
        self.rpc.basic_consume(REPLY_TO, self.on_reply, auto_ack=True)
        self.answers = {}

    def on_reply(self, ch, method, props, body):
        self.answers[props.correlation_id] = body.decode()

    def ask(self, responder, word, timeout=10.0):
        correlation_id = str(uuid.uuid4())
        self.rpc.basic_publish("", responder, word.encode(),
                               pika.BasicProperties(reply_to=REPLY_TO, correlation_id=correlation_id))
        deadline = time.monotonic() + timeout
        while correlation_id not in self.answers:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no answer from {responder}")
            self.conn.process_data_events(time_limit=deadline - time.monotonic())
        return self.answers.pop(correlation_id)

    def run(self):
        for method, _props, body in self.work.consume(WORK_QUEUE):
            if not body:  # end of stream
                self.work.basic_ack(method.delivery_tag)
                break
            word = body.decode()
            responder = responder_for(word)
            answer = self.ask(responder, word)
            say(f"{self.name}: {word} -> {answer} (from {responder})")
            self.results.put((self.name, word, answer))
            self.work.basic_ack(method.delivery_tag)  # done: the word leaves the queue for good
        self.work.cancel()  # a word prefetched meanwhile goes back to the queue for the others
        self.conn.close()


def produce(url, words, processors):
    conn = connect(url)
    ch = conn.channel()
    ch.queue_declare(WORK_QUEUE)
    ch.confirm_delivery()
    for word in words:
        ch.basic_publish("", WORK_QUEUE, word.encode())
    for _ in range(processors):
        ch.basic_publish("", WORK_QUEUE, b"")  # end of stream, one per processor
    say(f"producer: sent {len(words)} words")
    conn.close()


def main():
    url = next((a for a in sys.argv[1:] if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    # the responders and processors declare their queues as they are created, before anything is sent
    responders = [Responder(url, name) for name in RESPONDERS]
    results = queue.Queue()
    processors = [Processor(url, f"processor-{i}", results) for i in range(1, PROCESSORS + 1)]
    processors[0].work.queue_purge(WORK_QUEUE)  # start from an empty queue (drops leftovers of earlier runs)
    threads = [threading.Thread(target=x.run) for x in responders + processors]
    for t in threads:
        t.start()
    produce(url, WORDS, PROCESSORS)
    for t in threads[len(responders):]:  # the processors stop at the end of the stream
        t.join()
    for r in responders:
        r.stop()
    for t in threads[:len(responders)]:
        t.join()

    done = [results.get_nowait() for _ in range(results.qsize())]
    per_processor = {p.name: sum(1 for name, _, _ in done if name == p.name) for p in processors}
    say(f"pipeline: {len(WORDS)} words in, {len(done)} answers out, per processor: {per_processor}")
    expected = sorted((w, RESPONDERS[responder_for(w)](w)) for w in WORDS)
    return 0 if sorted((w, a) for _, w, a in done) == expected else 1


if __name__ == "__main__":
    sys.exit(main())
