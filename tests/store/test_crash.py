"""kill -9 under load: every confirmed persistent message survives, exactly once; nothing is duplicated."""
import random
import threading
import time
from collections import Counter

import pika
import pytest

from support.process import BrokerProcess

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def publisher(url: str, prefix: str, confirmed: list, stop: threading.Event) -> None:
    """Publish numbered persistent messages with confirms until the broker dies or ``stop`` is set."""
    try:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        ch = conn.channel()
        ch.confirm_delivery()
        i = 0
        while not stop.is_set():
            body = f"{prefix}-{i}"
            # fan out to two durable queues: one stored message, two queue references
            ch.basic_publish("crash-x", "", body.encode(), PERSISTENT)
            confirmed.append(body)  # basic_publish returned: the broker confirmed it
            i += 1
    except Exception:
        pass  # the broker was killed mid-publish: whatever was not confirmed may or may not be there


def drain(url: str, queue: str) -> list:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    out = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append(body.decode())
    conn.close()
    return out


@pytest.mark.timeout(180)
def test_sigkill_under_load_loses_no_confirmed_message(tmp_path):
    rnd = random.Random(20261125)
    data = str(tmp_path / "data")
    with BrokerProcess(data) as b:
        conn = pika.BlockingConnection(pika.URLParameters(b.url))
        ch = conn.channel()
        ch.exchange_declare("crash-x", "fanout", durable=True)
        for q in ("crash-a", "crash-b"):
            ch.queue_declare(q, durable=True)
            ch.queue_bind(q, "crash-x")
        conn.close()
        b.stop()

    for round_no in range(4):
        b = BrokerProcess(data).start()
        try:
            stop = threading.Event()
            confirmed = [[], []]
            threads = [threading.Thread(target=publisher, args=(b.url, f"r{round_no}p{k}", confirmed[k], stop))
                       for k in range(2)]
            for t in threads:
                t.start()
            time.sleep(rnd.uniform(0.3, 1.2))
            b.kill()  # SIGKILL, mid-load
            stop.set()
            for t in threads:
                t.join(timeout=10)
        finally:
            if b.proc.poll() is None:
                b.kill()
        assert sum(map(len, confirmed)) > 10, f"round {round_no}: the publishers barely ran:\n{b.log()}"
        with BrokerProcess(data) as b2:
            for q in ("crash-a", "crash-b"):
                got = drain(b2.url, q)
                counts = Counter(got)
                dupes = [m for m, n in counts.items() if n > 1]
                assert not dupes, f"round {round_no} {q}: duplicated {dupes[:5]}"
                for k in range(2):
                    missing = [m for m in confirmed[k] if m not in counts]
                    assert not missing, f"round {round_no} {q}: lost confirmed messages {missing[:5]}"
                    # per publisher, messages keep their publish order
                    mine = [m for m in got if m.startswith(f"r{round_no}p{k}-")]
                    assert mine == sorted(mine, key=lambda m: int(m.rsplit("-", 1)[1]))
            b2.stop()
