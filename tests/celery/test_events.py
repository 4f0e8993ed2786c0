"""Celery events: the topic exchange celeryev, receivers' queues (x-message-ttl, x-expires),
an in-process event receiver and the ``celery events --dump`` command."""
from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading

from celery_harness import TIMEOUT, run_worker


class Capture:
    """An event receiver on its own thread; events land in a queue the test reads with timeouts."""

    def __init__(self, app):
        self.app = app
        self.events: queue.Queue = queue.Queue()
        self.conn = app.connection_for_read()
        self.receiver = app.events.Receiver(self.conn, handlers={"*": self._on_event})
        self.thread = threading.Thread(target=self.receiver.capture, kwargs={"wakeup": True}, daemon=True)

    def _on_event(self, event) -> None:
        if event["type"] == "test-stop":
            self.receiver.should_stop = True
        self.events.put(event)

    def __enter__(self) -> "Capture":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self.app.events.default_dispatcher() as dispatcher:  # wakes the capture loop to stop it
            dispatcher.send("test-stop")
        self.thread.join(TIMEOUT)
        self.conn.close()
        assert not self.thread.is_alive()

    def wait_for(self, predicate) -> list:
        """Events up to and including the first one ``predicate`` accepts."""
        seen = []
        while True:
            event = self.events.get(timeout=TIMEOUT)
            seen.append(event)
            if predicate(event):
                return seen


def test_event_receiver_sees_a_task_from_sent_to_succeeded(make_app, warren):
    app = make_app(worker_send_task_events=True, task_send_sent_event=True)
    with run_worker(app) as worker, Capture(app) as capture:
        # wakeup=True asks every worker for a heartbeat once the receiver's queue is bound
        capture.wait_for(lambda e: e["type"] == "worker-heartbeat" and e["hostname"] == worker.hostname)

        def receiver_queue():
            qs = [q for name, q in warren.broker.vhosts["/"].queues.items() if name.startswith("celeryev.")]
            return [(q.arguments, q.auto_delete, [(ex.name, key) for ex, key, _ in q.bindings]) for q in qs]
        assert warren.call(receiver_queue) == [({"x-message-ttl": 5000, "x-expires": 60000}, True,
                                                 [("celeryev", "#")])]

        r = app.tasks["tests.add"].delay(2, 3)
        assert r.get(timeout=TIMEOUT) == 5
        seen = capture.wait_for(lambda e: e["type"] == "task-succeeded" and e["uuid"] == r.id)
        mine = [e for e in seen if e.get("uuid") == r.id]
        # (the client is this process too, so its task-sent carries the same hostname)
        from_worker = [e["type"] for e in mine if e["type"] != "task-sent"]
        assert from_worker == ["task-received", "task-started", "task-succeeded"]
        assert {e["hostname"] for e in mine} == {worker.hostname}
        sent = [e for e in mine if e["type"] == "task-sent"]
        if not sent:  # the client sends task-sent after the task itself, so it may come last
            sent = capture.wait_for(lambda e: e["type"] == "task-sent" and e["uuid"] == r.id)[-1:]
        assert sent[0]["name"] == "tests.add" and sent[0]["queue"] == app.conf.task_default_queue
        assert mine[-1]["result"] == "5"


def test_enable_events_by_remote_control_and_celery_events_dump(make_app, broker_url):
    """What an operator does: ``celery events --dump`` in its own process, and events switched on
    in a running worker by remote control."""
    app = make_app()  # task events off
    with run_worker(app, without_heartbeat=False) as worker:  # worker events (heartbeats) on
        env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONUNBUFFERED="1")
        dump = subprocess.Popen([sys.executable, "-m", "celery", "-b", broker_url, "events", "--dump"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        lines: queue.Queue = queue.Queue()
        reader = threading.Thread(target=lambda: [lines.put(line) for line in dump.stdout], daemon=True)
        reader.start()

        def wait_line(*words) -> str:
            while True:
                line = lines.get(timeout=TIMEOUT)
                if all(w in line for w in words):
                    return line
        try:
            wait_line(worker.hostname, "heartbeat")  # the dumper's queue is bound: it saw the worker
            reply = app.control.enable_events(destination=[worker.hostname], reply=True, timeout=TIMEOUT)
            assert reply == [{worker.hostname: {"ok": "task events enabled"}}]
            r = app.tasks["tests.add"].delay(20, 22)
            assert r.get(timeout=TIMEOUT) == 42
            assert "tests.add" in wait_line("task received", r.id)
            assert "result=42" in wait_line("task succeeded", r.id)
        finally:
            dump.terminate()
            dump.wait(TIMEOUT)
            reader.join(TIMEOUT)
