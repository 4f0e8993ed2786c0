"""acks_late: a task whose worker dies mid-task (SIGKILL, no goodbye) is delivered again."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

import celeryproj
from celery_harness import TIMEOUT, run_worker

CELERYPROJ = Path(celeryproj.__file__)
START_TIMEOUT = 60.0  # a worker process imports celery and connects: seconds on a loaded machine


def test_acks_late_task_is_redelivered_after_its_worker_is_killed(make_app, broker_url, tmp_path):
    app = make_app()
    marker = f"started.{uuid.uuid4().hex[:8]}"
    log = tmp_path / "worker.log"
    with app.connection_for_write() as conn:
        started = celeryproj.simple_queue(conn, marker)
        r = app.tasks["tests.fragile"].delay(marker)
        with open(log, "w") as log_file:
            worker = subprocess.Popen(
                [sys.executable, str(CELERYPROJ), broker_url, "--pool=solo", "--concurrency=1",
                 "--without-mingle", "--without-gossip", "--without-heartbeat", "--loglevel=WARNING",
                 "-Q", app.conf.task_default_queue, "-n", f"victim-{marker}@%h"],
                stdout=log_file, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONWARNINGS="ignore"))
        try:
            try:
                message = started.get(timeout=START_TIMEOUT)  # the task is running in the worker process
            except started.Empty:
                pytest.fail(f"the worker process never started the task; its log:\n{log.read_text()}")
            message.ack()
            assert message.payload == {"pid": worker.pid, "task_id": r.id}, log.read_text()
            os.kill(worker.pid, signal.SIGKILL)
            assert worker.wait(TIMEOUT) == -signal.SIGKILL
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
            started.close()
    # the unacked message went back to the queue when the connection died: another worker gets it
    with run_worker(app):
        assert r.get(timeout=TIMEOUT) == {"pid": os.getpid(), "redelivered": True}
