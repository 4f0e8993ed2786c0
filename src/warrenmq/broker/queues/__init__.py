"""Queues: a classic :class:`Queue` and a :class:`QuorumQueue`, and their consumers.

Theory of operation: the queue is one class (core.py) put together from one
module per concern, each with its own docstring:

=================  ============================================================
core.py            Queue: publish/enqueue, round-robin dispatch with prefetch
                   credit, basic.get, requeue in place, restore, settle, purge
containers.py      the ready containers behind one interface: Fifo (a deque),
                   PriorityMessages, SizedMessages
lazy.py            paging bodies out and the lazy tail (LazyMessages)
ttl.py             message TTL, per-message expiration, x-expires
limits.py          x-max-length, x-max-length-bytes, x-overflow
consumers.py       Consumer; consumer priorities, single active consumer
credit.py          credit flow: throttling publishers while the consumers are
                   behind (flow_high/flow_low)
args.py            argument tables and checks; read_settings (creation and
                   policy changes, both queue types)
quorum.py          QuorumQueue: x-delivery-count, delivery limit, returns
=================  ============================================================

The hardest part is the lazy tail: read lazy.py's docstring first.
"""
from __future__ import annotations

from .args import (QUEUE_EQUIVALENCE_ARGS, QUEUE_TYPE_MODULES, QUORUM_EQUIVALENCE_ARGS, check_consumer_priority,
                   check_queue_arguments, queue_type_of, read_settings)
from .consumers import Consumer
from .containers import Fifo, PriorityMessages, SizedMessages
from .core import Queue
from .lazy import LazyMessages
from .limits import LengthLimit
from .quorum import QuorumQueue

__all__ = ["QUEUE_EQUIVALENCE_ARGS", "QUEUE_TYPE_MODULES", "QUORUM_EQUIVALENCE_ARGS", "Consumer", "Fifo",
           "LazyMessages", "LengthLimit", "PriorityMessages", "Queue", "QuorumQueue", "SizedMessages",
           "check_consumer_priority", "check_queue_arguments", "queue_type_of", "read_settings"]
