"""Celery tasks through WarrenMQ: sending, results over rpc://, retries, routing, canvas."""
from __future__ import annotations

import time

import pytest
from celery import chain, chord, group
from kombu import Exchange, Queue

import celeryproj
from celery_harness import TIMEOUT, run_worker


def wait_queued(app, queue: str, n: int) -> None:
    """Wait until the broker counts ``n`` ready messages in ``queue`` (passive declares; RabbitMQ's
    count may trail a publish by a moment, WarrenMQ's never does)."""
    deadline = time.monotonic() + TIMEOUT
    with app.connection_for_write() as conn:
        while True:
            ok = conn.default_channel.queue_declare(queue=queue, passive=True)
            if ok.message_count == n:
                return
            assert time.monotonic() < deadline, f"{queue} holds {ok.message_count} messages, not {n}"


# ------------------------------------------------------------------ sending and results
def test_delay_apply_async_and_send_task(make_app):
    app = make_app()
    add = app.tasks["tests.add"]
    with run_worker(app):
        assert add.delay(2, 3).get(timeout=TIMEOUT) == 5
        r = add.apply_async(args=(4,), kwargs={"y": 5}, task_id=f"given-id-{time.time_ns()}")
        assert r.id.startswith("given-id-")
        assert r.get(timeout=TIMEOUT) == 9
        assert r.state == "SUCCESS" and r.successful()
        assert app.send_task("tests.mul", args=(6, 7)).get(timeout=TIMEOUT) == 42


def test_tasks_sent_before_the_worker_starts_wait_in_the_queue(make_app):
    app = make_app()
    add = app.tasks["tests.add"]
    results = [add.delay(i, i) for i in range(5)]
    wait_queued(app, app.conf.task_default_queue, 5)
    with run_worker(app):
        assert [r.get(timeout=TIMEOUT) for r in results] == [0, 2, 4, 6, 8]
    wait_queued(app, app.conf.task_default_queue, 0)


def test_failure_comes_back_over_rpc(make_app):
    app = make_app()
    with run_worker(app):
        r = app.tasks["tests.fail"].delay("boom")
        with pytest.raises(ValueError, match="boom"):
            r.get(timeout=TIMEOUT)
        assert r.state == "FAILURE"
        assert "ValueError" in r.traceback
        # the same result again, without propagating
        assert isinstance(r.get(timeout=TIMEOUT, propagate=False), ValueError)


def test_rpc_backend_reports_started_then_success(make_app):
    """With task_track_started the worker sends STARTED before the result; the gate opens only
    once the client has seen STARTED, so the order is certain."""
    app = make_app(task_track_started=True)
    gate = celeryproj.Gate()
    states = []

    def on_message(meta):
        states.append(meta["status"])
        if meta["status"] == "STARTED":
            gate.open()

    with run_worker(app):
        r = app.tasks["tests.hold"].delay(gate.name)
        assert r.get(on_message=on_message, timeout=TIMEOUT) == r.id
    assert states == ["STARTED", "SUCCESS"]


# ------------------------------------------------------------------ retries and ETA
def test_retry_with_countdown(make_app):
    app = make_app()
    start = len(celeryproj.timeline)
    with run_worker(app):
        r = app.tasks["tests.flaky"].delay(2, 0.25)
        assert r.get(timeout=TIMEOUT) == 2  # succeeded on the third run, after two retries
    runs = [t for name, t in celeryproj.timeline[start:] if name == "tests.flaky"]
    assert len(runs) == 3
    gaps = [b - a for a, b in zip(runs, runs[1:])]
    assert all(g >= 0.25 for g in gaps), gaps


def test_worker_keeps_working_while_it_holds_an_eta_task(make_app):
    """A retry with a countdown is an ETA message the worker keeps unacked until it is due.
    With prefetch 1 it then raises its channel's prefetch (basic.qos global=True, as on
    RabbitMQ 3.x) so other tasks still come through: add must run before flaky's retry."""
    app = make_app(worker_prefetch_multiplier=1)
    start = len(celeryproj.timeline)
    with run_worker(app) as worker:
        flaky = app.tasks["tests.flaky"].delay(1, 1.0)
        inspect = app.control.inspect(destination=[worker.hostname], timeout=TIMEOUT)
        deadline = time.monotonic() + TIMEOUT
        while not (inspect.scheduled() or {}).get(worker.hostname):  # the retry is held, unacked
            assert time.monotonic() < deadline, "the retry never reached the worker"
        assert app.tasks["tests.add"].delay(1, 1).get(timeout=TIMEOUT) == 2
        assert flaky.get(timeout=TIMEOUT) == 1
    runs = [(name, t) for name, t in celeryproj.timeline[start:]]
    assert [name for name, _ in runs] == ["tests.flaky", "tests.add", "tests.flaky"]
    assert runs[2][1] - runs[0][1] >= 1.0


# ------------------------------------------------------------------ routing
def test_task_routes_send_tasks_to_named_queues(make_app):
    images = f"images.{time.time_ns()}"
    app = make_app(task_routes={"tests.where": {"queue": images}})
    default = app.conf.task_default_queue
    with run_worker(app, queues=[images]) as worker:  # this worker does not consume the default queue
        r = app.tasks["tests.where"].delay()
        assert r.get(timeout=TIMEOUT)["routing_key"] == images
        waiting = app.tasks["tests.add"].delay(20, 22)
        wait_queued(app, default, 1)
        # start consuming the default queue by remote control: the waiting task runs
        reply = app.control.add_consumer(default, destination=[worker.hostname], reply=True, timeout=TIMEOUT)
        assert reply == [{worker.hostname: {"ok": f"add consumer {default}"}}]
        assert waiting.get(timeout=TIMEOUT) == 42


def test_topic_exchange_routing(make_app):
    video = f"video.{time.time_ns()}"
    media = Exchange(f"media.{time.time_ns()}", type="topic")
    app = make_app(task_queues=[Queue(video, media, routing_key="video.#")])
    where = app.tasks["tests.where"]
    with run_worker(app, queues=[video]):
        r = where.apply_async(exchange=media.name, routing_key="video.compress.h264")
        assert r.get(timeout=TIMEOUT)["routing_key"] == "video.compress.h264"
        assert r.get(timeout=TIMEOUT)["exchange"] == media.name
        r = where.apply_async(queue=video)  # by queue name: the queue's exchange and binding key
        assert r.get(timeout=TIMEOUT)["exchange"] == media.name


# ------------------------------------------------------------------ canvas
def test_chain(make_app):
    app = make_app()
    add, mul = app.tasks["tests.add"], app.tasks["tests.mul"]
    with run_worker(app):
        assert chain(add.s(1, 2), add.s(3), mul.s(10)).delay().get(timeout=TIMEOUT) == 60
        assert (add.s(2, 2) | mul.s(5)).delay().get(timeout=TIMEOUT) == 20


def test_chain_stops_at_a_failure(make_app):
    app = make_app()
    add, fail = app.tasks["tests.add"], app.tasks["tests.fail"]
    start = len(celeryproj.timeline)
    with run_worker(app):
        r = chain(add.s(1, 1), fail.si("broken link"), add.s(100)).delay()
        with pytest.raises(ValueError, match="broken link"):
            r.get(timeout=TIMEOUT)
    assert [name for name, _ in celeryproj.timeline[start:]] == ["tests.add"]  # the last link never ran


def test_group(make_app):
    app = make_app()
    add = app.tasks["tests.add"]
    with run_worker(app, pool="threads", concurrency=4):
        r = group(add.s(i, i) for i in range(20)).delay()
        assert r.get(timeout=TIMEOUT) == [2 * i for i in range(20)]
        assert r.successful() and r.completed_count() == 20


def test_chord(make_app):
    """rpc:// cannot do chords (Celery says so), so results go to an in-memory cache backend the
    in-process worker shares; every task message still goes through the broker."""
    app = make_app(backend="cache+memory://")
    add, tsum, mul = app.tasks["tests.add"], app.tasks["tests.tsum"], app.tasks["tests.mul"]
    with run_worker(app, pool="threads", concurrency=4):
        assert chord(add.s(i, i) for i in range(10))(tsum.s()).get(timeout=TIMEOUT, interval=0.01) == 90
        # a group chained to a task becomes a chord; then a chain after it
        r = (group(mul.s(i, i) for i in range(5)) | tsum.s() | add.s(1)).delay()
        assert r.get(timeout=TIMEOUT, interval=0.01) == 31
