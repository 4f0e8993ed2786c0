"""Consumer (delivery acknowledgement) timeout, as RabbitMQ's ``consumer_timeout``.

Theory of operation: a channel whose oldest unacknowledged delivery (consumer
deliveries and ``basic.get`` alike) has waited longer than
``BrokerConfig.consumer_timeout_ms`` is closed with RabbitMQ's
``406 PRECONDITION_FAILED - delivery acknowledgement on channel N timed out...``
(class and method 0), and its unacked messages go back to their queues.

Nothing is done per message.  A channel arms one periodic check when it gets
its first unacked delivery (``Channel.ack_timer`` is ``None`` then; it is a
timer handle while armed, and ``False`` when timeouts are off).  Each check
records a *mark* ``(time, next delivery tag)``: every tag below the mark was
delivered at or before that time.  The channel has timed out when its oldest
unacked tag is below a mark that is at least the timeout old.  A check that
finds nothing unacked disarms; the next unacked delivery re-arms.  So a late
acknowledgement is noticed between ``timeout`` and ``timeout + 2 * interval``
after the delivery, where ``interval`` is a tenth of the timeout, at most 30 s:
with the 30-minute default that is within a minute, as RabbitMQ, which checks
on its 60 s channel tick.
"""
from __future__ import annotations

from collections import deque
from time import monotonic

#: the longest time between two checks of one channel (half RabbitMQ's 60 s channel_tick_interval: a late
#: acknowledgement is noticed at most two intervals late)
MAX_INTERVAL = 30.0
#: the shortest (for very small timeouts in tests)
MIN_INTERVAL = 0.005


def interval_for(timeout: float) -> float:
    return min(MAX_INTERVAL, max(MIN_INTERVAL, timeout / 10.0))


def arm(channel) -> None:
    """Start checking ``channel`` (called at its first unacked delivery, right after the tag was taken)."""
    broker = channel.broker
    timeout_ms = broker.config.consumer_timeout_ms
    if not timeout_ms or timeout_ms <= 0:
        channel.ack_timer = False
        return
    channel.ack_marks = deque([(monotonic(), channel.next_tag)])
    timeout = timeout_ms / 1000.0
    handle = broker.timers.call_later(interval_for(timeout), lambda: _check(channel, timeout_ms))
    # without an event loop (a broker used bare) there is nothing to check with: stay off
    channel.ack_timer = handle if handle is not None else False


def disarm(channel) -> None:
    timer = channel.ack_timer
    if timer:
        timer.cancel()
    channel.ack_timer = None
    channel.ack_marks = None


def _check(channel, timeout_ms: int) -> None:
    channel.ack_timer = None
    if channel.closed:
        return
    unacked = channel.unacked
    if not unacked:
        channel.ack_marks = None  # re-armed by the next unacked delivery
        return
    now = monotonic()
    timeout = timeout_ms / 1000.0
    marks = channel.ack_marks
    marks.append((now, channel.next_tag))
    limit = now - timeout
    while len(marks) > 1 and marks[1][0] <= limit:
        marks.popleft()
    at, below = marks[0]
    if at <= limit and next(iter(unacked)) < below:
        channel.timed_out(timeout_ms)
        return
    channel.ack_timer = channel.broker.timers.call_later(interval_for(timeout),
                                                                 lambda: _check(channel, timeout_ms))


def timeout_text(channel_number: int, timeout_ms: int) -> str:
    """RabbitMQ 3.10's reply text (without the ``PRECONDITION_FAILED - `` prefix)."""
    return (f"delivery acknowledgement on channel {channel_number} timed out. Timeout value used: "
            f"{timeout_ms} ms. This timeout value can be configured, see consumers doc guide to learn more")
