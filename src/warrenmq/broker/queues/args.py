"""Queue arguments: what each queue type takes, how RabbitMQ checks them, and the settings a queue
derives from its arguments and its policy.

Theory of operation: queue arguments are read at three moments.

* Declare: ``check_queue_arguments`` validates a new queue's arguments as
  RabbitMQ 3.10 does (``QUEUE_ARG_CHECKS``: its checking order and reason texts)
  and returns the queue type; an argument of another type is an error, an
  unknown one is ignored (``QUEUE_TYPE_ARGS``).
* Redeclare: the vhost compares the arguments in ``QUEUE_EQUIVALENCE_ARGS`` /
  ``QUORUM_EQUIVALENCE_ARGS``, in that (RabbitMQ's) order.  These two tuples are
  also what the types take: ``QUEUE_TYPE_ARGS`` is built from them.
* Creation and every policy change: ``read_settings(queue)`` derives the
  attributes the queue works with (``message_ttl``, ``expires``, ``dlx``,
  ``dlrk``, ``delivery_limit``, ``limit``) from ``queue.effective(arg)``, the
  argument combined with the policy (policy.py).  Invalid values read as absent:
  validation is the declare's (and policy.py's for a policy's values).
  ``x-max-priority`` (the ready container) and ``x-single-active-consumer`` are
  fixed when the queue is created and read only then.  Both queue types use it,
  so a quorum queue's ``x-delivery-limit`` follows its policy like the rest.
"""
from __future__ import annotations

from ...protocol.codec import field_type_name
from ...protocol.errors import SoftError
from ...protocol.spec import PRECONDITION_FAILED
from ..policy import MAX_SUPPORTED_PRIORITY, OVERFLOW_MODES, QUEUE_MODES
from .containers import Fifo, PriorityMessages

#: RabbitMQ's ceiling for ``x-expires`` and ``x-message-ttl``: ten years in milliseconds
MAX_EXPIRY = 315_360_000_000


def _int_arg(zero_ok: bool = True, maximum=None, too_big: str = ""):
    """A check for an argument RabbitMQ requires to be a non-negative integer (its reason text or None)."""
    def check(v, arguments):
        if isinstance(v, bool) or not isinstance(v, int):
            return f'"expected integer, got {field_type_name(v)}"'
        if v < 0:
            return f"{{value_negative,{v}}}"
        if v == 0 and not zero_ok:
            return "{value_zero,0}"
        if maximum is not None and v > maximum:
            return f"{{{too_big},{v}}}"
        return None
    return check


def _str_arg(values=None, invalid=None):
    """A check for a longstr argument, optionally one of ``values`` (else ``invalid(v)`` is the reason)."""
    def check(v, arguments):
        if v.__class__ is not str:
            return f"{{unacceptable_type,{field_type_name(v)}}}"
        if values is not None and v not in values:
            return invalid(v)
        return None
    return check


def _dlrk_arg(v, arguments):
    if v.__class__ is not str:
        return f"{{unacceptable_type,{field_type_name(v)}}}"
    return None if "x-dead-letter-exchange" in arguments else "routing_key_but_no_dlx_defined"


def _bool_arg(v, arguments):
    return None if v is True or v is False else f"{{unacceptable_type,{field_type_name(v)}}}"


#: RabbitMQ 3.10's queue argument checks, in its checking order (``rabbit_amqqueue:declare_args``);
#: a check returns RabbitMQ's reason text or None
QUEUE_ARG_CHECKS = (
    ("x-expires", _int_arg(False, MAX_EXPIRY, "value_too_large")),
    ("x-message-ttl", _int_arg(True, MAX_EXPIRY, "value_too_large")),
    ("x-dead-letter-exchange", _str_arg()),
    ("x-dead-letter-routing-key", _dlrk_arg),
    ("x-dead-letter-strategy", _str_arg(("at-most-once", "at-least-once"), lambda v: "invalid_dlx_strategy")),
    ("x-max-length", _int_arg()),
    ("x-max-length-bytes", _int_arg()),
    ("x-max-in-memory-length", _int_arg()),
    ("x-max-in-memory-bytes", _int_arg()),
    ("x-max-priority", _int_arg(True, MAX_SUPPORTED_PRIORITY, "max_value_exceeded")),
    ("x-overflow", _str_arg(OVERFLOW_MODES, lambda v: "invalid_overflow")),
    ("x-queue-mode", _str_arg(QUEUE_MODES, lambda v: f'"unsupported queue mode \'{v}\'"')),
    ("x-single-active-consumer", _bool_arg),
    ("x-quorum-initial-group-size", _int_arg(False)),
    ("x-queue-leader-locator", _str_arg(("client-local", "balanced", "random", "least-leaders"),
                                        lambda v: "invalid_queue_locator_arg")),
)

#: the arguments RabbitMQ 3.x compares on redeclare of a classic queue, in its order
QUEUE_EQUIVALENCE_ARGS = ("x-expires", "x-message-ttl", "x-dead-letter-exchange", "x-dead-letter-routing-key",
                          "x-max-length", "x-max-length-bytes", "x-max-priority", "x-overflow", "x-queue-mode",
                          "x-single-active-consumer", "x-queue-type", "x-queue-master-locator")
#: ... and of a quorum queue (RabbitMQ 3.10's rabbit_quorum_queue capabilities)
QUORUM_EQUIVALENCE_ARGS = ("x-dead-letter-exchange", "x-dead-letter-routing-key", "x-dead-letter-strategy",
                           "x-expires", "x-max-length", "x-max-length-bytes", "x-max-in-memory-length",
                           "x-max-in-memory-bytes", "x-overflow", "x-single-active-consumer", "x-queue-type",
                           "x-quorum-initial-group-size", "x-delivery-limit", "x-message-ttl",
                           "x-queue-leader-locator")
#: ... the arguments of a stream queue (refused on declare: WarrenMQ has no streams)
STREAM_ARGS = ("x-max-length-bytes", "x-queue-type", "x-max-age", "x-stream-max-segment-size-bytes",
               "x-initial-cluster-size", "x-queue-leader-locator")

#: the arguments each queue type takes (RabbitMQ 3.10; another type's argument is an error, an unknown
#: one is ignored); a classic queue also takes x-queue-version without comparing it on redeclare
QUEUE_TYPE_ARGS = {
    "classic": frozenset(QUEUE_EQUIVALENCE_ARGS + ("x-queue-version",)),
    "quorum": frozenset(QUORUM_EQUIVALENCE_ARGS),
    "stream": frozenset(STREAM_ARGS),
}
_KNOWN_QUEUE_ARGS = frozenset().union(*QUEUE_TYPE_ARGS.values())
#: the queue type's module name, as RabbitMQ's texts show it
QUEUE_TYPE_MODULES = {"classic": "rabbit_classic_queue", "quorum": "rabbit_quorum_queue",
                      "stream": "rabbit_stream_queue"}


def queue_type_of(arguments) -> str:
    """The queue type ``arguments`` ask for (assumed valid): classic, quorum or stream."""
    t = arguments.get("x-queue-type") if arguments else None
    return t if t in ("quorum", "stream") else "classic"


def check_queue_arguments(name: str, vhost_name: str, arguments: dict) -> str:
    """Validate a new queue's arguments as RabbitMQ 3.10 does, with its PRECONDITION_FAILED texts; return
    the queue type.  Order: x-queue-type, then each argument the type takes (``QUEUE_ARG_CHECKS`` order),
    then arguments of another type (in the order given).  Stream queues are refused (not implemented)."""
    def invalid(key, reason):
        return SoftError(PRECONDITION_FAILED, f"invalid arg '{key}' for queue '{name}' in vhost '{vhost_name}': "
                                              f"{reason}")
    qtype = "classic"
    if "x-queue-type" in arguments:
        t = arguments["x-queue-type"]
        if t.__class__ is not str:
            raise invalid("x-queue-type", f"{{unacceptable_type,{field_type_name(t)}}}")
        if t not in QUEUE_TYPE_ARGS:
            raise invalid("x-queue-type", f'"unsupported queue type \'{t}\'"')
        if t == "stream":  # RabbitMQ 3.10 has streams; WarrenMQ does not (docs/compatibility.md)
            raise invalid("x-queue-type", "\"unsupported queue type 'stream': WarrenMQ does not implement "
                                          "stream queues\"")
        qtype = t
    allowed = QUEUE_TYPE_ARGS[qtype]
    for key, check in QUEUE_ARG_CHECKS:
        if key in arguments and key in allowed:
            reason = check(arguments[key], arguments)
            if reason is not None:
                raise invalid(key, reason)
    for key in arguments:
        if key in _KNOWN_QUEUE_ARGS and key not in allowed:
            raise SoftError(PRECONDITION_FAILED, f"invalid arg '{key}' for queue '{name}' in vhost "
                            f"'{vhost_name}' of queue type {QUEUE_TYPE_MODULES[qtype]}")
    return qtype


def check_consumer_priority(queue_name: str, vhost_name: str, arguments) -> int:
    """The ``x-priority`` of a basic.consume (0 when absent), validated with RabbitMQ's text."""
    p = arguments.get("x-priority", 0) if arguments else 0
    if isinstance(p, bool) or not isinstance(p, int):
        raise SoftError(PRECONDITION_FAILED, f"invalid arg 'x-priority' for queue '{queue_name}' in vhost "
                        f"'{vhost_name}': \"expected integer, got {field_type_name(p)}\"")
    return int(p)


def _int_at_least(v, minimum: int):
    """``v`` if it is an integer (not a bool) of at least ``minimum``, else None."""
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= minimum else None


def read_settings(queue, creating: bool = False) -> None:
    """Derive ``queue``'s settings from its arguments and policy (``queue.effective``): on creation
    (``creating``, after the queue's own state is initialised) and whenever its policy changes."""
    effective = queue.effective
    if creating:  # fixed for the queue's life
        max_priority = _int_at_least(effective("x-max-priority"), 1)
        queue.set_ready(Fifo() if max_priority is None
                        else PriorityMessages(min(max_priority, MAX_SUPPORTED_PRIORITY)))
        queue.single_active = queue.arguments.get("x-single-active-consumer") is True
    queue.message_ttl = ttl = _int_at_least(effective("x-message-ttl"), 0)  # for messages enqueued from now on
    if ttl is not None:
        queue.has_ttl = True  # never back to False: entries may carry deadlines
    expires = _int_at_least(effective("x-expires"), 1)
    if expires != queue.expires:
        queue.expires = expires
        if expires:
            queue.reset_expires()  # the countdown (re)starts with the new value
        else:
            queue.cancel_expires()
    dlx = effective("x-dead-letter-exchange")
    queue.dlx = dlx if dlx.__class__ is str else None
    dlrk = effective("x-dead-letter-routing-key")
    queue.dlrk = dlrk if dlrk.__class__ is str and queue.dlx is not None else None
    if "x-delivery-limit" in QUEUE_TYPE_ARGS[queue.queue_type]:
        limit = effective("x-delivery-limit")  # not validated by RabbitMQ 3.10: non-numbers mean none
        queue.delivery_limit = limit if isinstance(limit, (int, float)) and not isinstance(limit, bool) else None
    max_length = _int_at_least(effective("x-max-length"), 0)
    max_bytes = _int_at_least(effective("x-max-length-bytes"), 0)
    if max_length is not None or max_bytes is not None or queue.limit is not None:
        overflow = effective("x-overflow")
        if overflow not in OVERFLOW_MODES or (overflow == "reject-publish-dlx" and queue.queue_type == "quorum"):
            overflow = "drop-head"  # quorum queues: RabbitMQ 3.10 logs that it is unsupported, uses the default
        queue.set_length_limit(max_length, max_bytes, overflow)
