"""worker_prefetch_multiplier: a worker reserves (holds unacked) at most multiplier x concurrency tasks."""
from __future__ import annotations

import pytest

import celeryproj
from celery_harness import TIMEOUT, run_worker

N_TASKS = 10


@pytest.mark.parametrize("multiplier, concurrency", [(1, 2), (3, 1), (2, 2)])
def test_worker_reserves_prefetch_multiplier_times_concurrency(make_app, warren_or_none, multiplier, concurrency):
    prefetch = multiplier * concurrency
    app = make_app(worker_prefetch_multiplier=multiplier, task_acks_late=True)
    hold = app.tasks["tests.hold"]
    gate = celeryproj.Gate()
    queue = app.conf.task_default_queue
    results = [hold.delay(gate.name) for _ in range(N_TASKS)]  # all queued before the worker starts
    with run_worker(app, pool="threads", concurrency=concurrency) as worker:
        gate.wait_started(concurrency)  # every pool thread is busy with a task it has not acked
        inspect = app.control.inspect(destination=[worker.hostname], timeout=TIMEOUT)
        # control messages come after the deliveries on the worker's connection, so by the time it
        # answers it has seen every task the broker let it have
        active = inspect.active()[worker.hostname]
        reserved = inspect.reserved()[worker.hostname]
        assert (len(active), len(reserved)) == (concurrency, prefetch - concurrency)

        with app.connection_for_write() as conn:
            ok = conn.default_channel.queue_declare(queue=queue, passive=True)
        assert (ok.message_count, ok.consumer_count) == (N_TASKS - prefetch, 1)  # the rest stayed in the broker
        if warren_or_none is not None:
            def broker_view():
                q = warren_or_none.broker.vhosts["/"].queues[queue]
                return q.unacked, [c.channel.global_prefetch or c.prefetch for c in q.consumers]
            assert warren_or_none.call(broker_view) == (prefetch, [prefetch])

        gate.open()
        assert sorted(r.get(timeout=TIMEOUT) for r in results) == sorted(r.id for r in results)
