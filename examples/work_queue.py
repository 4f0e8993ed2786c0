"""A work queue with fair dispatch: tasks shared among workers, each busy with one at a time.

    python examples/work_queue.py [URL]                # demo: a producer and two workers
    python examples/work_queue.py send [URL] TASK...   # queue tasks; each "." in a task is 0.1 s of work
    python examples/work_queue.py worker [URL]         # work until Ctrl-C

URL defaults to $AMQP_URL, then amqp://guest:guest@localhost:5672/%2F.

* Fair dispatch: ``basic_qos(prefetch_count=1)`` tells the broker to give a worker
  one task at a time, the next only once it acknowledged the last.  Without it
  the broker hands tasks out round robin as they arrive, so a worker stuck on a
  long task would keep a backlog that idle workers cannot take.
* Manual acks: a worker acknowledges a task when it is done.  If it dies first,
  the broker gives the task to another worker.
* Persistence: the queue is durable and the messages persistent (delivery mode 2),
  so a broker that stores messages keeps them across a restart.
"""
import os
import queue
import sys
import threading
import time

import pika

from which_broker import announce  # prints "connected to <broker> at <host>:<port>", once

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
QUEUE = "task_queue"
SECONDS_PER_DOT = 0.1
_print_lock = threading.Lock()


def say(text):
    """print() for threads: one whole line at a time."""
    with _print_lock:
        print(text, flush=True)


def connect(url):
    conn = pika.BlockingConnection(pika.URLParameters(url))
    announce(conn)
    ch = conn.channel()
    ch.queue_declare(QUEUE, durable=True)  # both sides declare it, with the same arguments
    return conn, ch


def send(url, tasks):
    conn, ch = connect(url)
    ch.confirm_delivery()  # each publish returns once the broker has taken responsibility for the task
    for task in tasks:
        ch.basic_publish("", QUEUE, task.encode(),
                         pika.BasicProperties(delivery_mode=pika.DeliveryMode.Persistent))
        say(f"sent {task!r}")
    conn.close()


class Worker:
    def __init__(self, url, name="worker", finished=None):
        self.name = name
        self.done = []  # the tasks this worker finished
        self.finished = finished  # a queue.Queue told about every finished task (for the demo)
        self.conn, self.ch = connect(url)
        self.ch.basic_qos(prefetch_count=1)  # fair dispatch: one unacknowledged task at a time
        self.ch.basic_consume(QUEUE, self.on_task)  # auto_ack=False: we ack when done

    def on_task(self, ch, method, properties, body):
        task = body.decode()
        say(f"{self.name}: working on {task!r}")
        time.sleep(task.count(".") * SECONDS_PER_DOT)  # the "work"
        ch.basic_ack(delivery_tag=method.delivery_tag)
        self.done.append(task)
        say(f"{self.name}: done {task!r}")
        if self.finished is not None:
            self.finished.put(task)

    def run(self):
        """Process tasks until stop() (or Ctrl-C)."""
        try:
            self.ch.start_consuming()
        except KeyboardInterrupt:
            pass
        self.conn.close()

    def stop(self):
        """Callable from any thread: pika connections belong to one thread, so ask that thread to stop."""
        self.conn.add_callback_threadsafe(self.ch.stop_consuming)


def demo(url):
    # one long task first, then short ones: with prefetch 1 the worker busy with the
    # long task gets nothing else, and the other worker does all the short ones
    tasks = ["render video" + "." * 15] + [f"resize image {i}" for i in range(1, 9)]
    conn, ch = connect(url)
    ch.queue_purge(QUEUE)  # the demo starts from an empty queue (drops tasks left by earlier runs)
    conn.close()
    finished = queue.Queue()
    workers = [Worker(url, "worker-1", finished), Worker(url, "worker-2", finished)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for t in threads:
        t.start()
    send(url, tasks)
    for _ in tasks:  # wait until every task is done
        finished.get(timeout=30)
    for w in workers:
        w.stop()
    for t in threads:
        t.join()
    for w in workers:
        say(f"{w.name} did {len(w.done)} task(s): {', '.join(t.rstrip('.') for t in w.done)}")
    return 0 if sorted(t for w in workers for t in w.done) == sorted(tasks) else 1


def main():
    args = sys.argv[1:]
    url = next((a for a in args if "://" in a), os.environ.get("AMQP_URL", DEFAULT_URL))
    role = next((a for a in args if a in ("send", "worker")), "demo")
    if role == "send":
        send(url, [a for a in args if a not in ("send", url)] or ["hello..."])
    elif role == "worker":
        Worker(url).run()
    else:
        return demo(url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
