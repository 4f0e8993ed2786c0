"""The domain's hot path alone: publish -> deliver (-> ack) through the broker API, no sockets.

A protocol-free loop to compare two versions of the domain (e.g. before and after a change on the
hot path) where wall-clock benchmarks are too noisy: run it under ``valgrind --tool=callgrind`` at
two message counts and divide the difference in instructions by the difference in messages, which
gives instructions per message, independent of what else the machine runs::

    for n in 5000 25000; do PYTHONHASHSEED=0 PYTHONPATH=src valgrind --tool=callgrind \\
        --callgrind-out-file=/dev/null python bench/domain_loop.py ack 1 $n 2>&1 | grep refs; done

Without valgrind it prints the best of ``REPS`` runs in nanoseconds per message.
Usage: ``python bench/domain_loop.py {ack,noack} REPS N``.
"""
import gc
import struct
import sys
import time

from warrenmq.broker.broker import Broker
from warrenmq.broker.channel import Channel
from warrenmq.config import BrokerConfig
from warrenmq.protocol.spec import CLASS_BASIC, BasicProperties


class Owner:
    def __init__(self, user):
        self.user = user
        self.flow_count = 0

    def set_flow(self, on):
        pass


class LoopChannel(Channel):
    __slots__ = ("last",)

    def __init__(self, broker):
        Channel.__init__(self, broker, broker.vhosts["/"], Owner(broker.users["guest"]), 1)
        self.last = 0

    def send_deliver(self, consumer, tag, entry):
        self.last = tag

    def send_return(self, msg, code, text):
        pass

    def send_confirm(self, seq, multiple, nack):
        pass


def main() -> None:
    mode, reps, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    b = Broker(BrokerConfig(data_dir=""))
    ch = LoopChannel(b)
    vh = b.vhosts["/"]
    vh.declare_queue("q", None)
    q = vh.queues["q"]
    c = ch.consume(q, "c", mode == "noack", False, None)
    ch.start(c)
    hdr = struct.pack(">HHQ", CLASS_BASIC, 0, 16) + BasicProperties().encode()
    body = b"x" * 16
    gc.disable()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        pub, ack = ch.publish, ch.ack
        for _ in range(n):
            pub("", "q", hdr, body, False)
            if mode == "ack":
                ack(ch.last, False)
        best = min(best, time.perf_counter() - t)
    print(f"{best / n * 1e9:.0f} ns/message")


if __name__ == "__main__":
    main()
