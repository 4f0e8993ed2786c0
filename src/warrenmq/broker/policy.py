"""Policies: named, prioritised settings that apply to the queues and exchanges whose names match.

Theory of operation: as in RabbitMQ, a policy is a regular expression (searched
anywhere in the name, so anchor it with ``^...$`` to match whole names), what
it applies to (``queues``, ``exchanges`` or ``all``), a priority and a
*definition* of settings.  At most one policy applies to an object: the
matching one with the highest priority (RabbitMQ does not merge policies; among
equal priorities its pick is unspecified, WarrenMQ takes the name that sorts
first).  A vhost's :class:`Policies` re-evaluates every queue and exchange when a
policy is set or cleared, and new queues and exchanges look their policy up when
they are created, so a policy reaches existing and future objects alike.

Features never read a setting from ``arguments`` and the policy separately:
they call :func:`effective` (``queue.effective("x-message-ttl")``), which
combines the object's own argument and its policy's value the way RabbitMQ's
``args_policy_lookup`` does for classic queues: for ``message-ttl``,
``expires``, ``max-length``, ``max-length-bytes`` and ``delivery-limit`` the
*lower* of the two wins; for ``dead-letter-exchange``,
``dead-letter-routing-key``, ``overflow``, ``queue-mode`` and (on exchanges)
``alternate-exchange`` the argument wins and the policy only fills in a missing
one.  When the policy of a queue changes, ``queue.apply_policy(policy)`` lets it
recompute what it derived (a new message TTL applies to messages published from
then on; an ``expires`` countdown restarts with the new value).

``max-priority`` is accepted in a definition, although RabbitMQ 3.10 rejects it
("not recognised policy settings"): a queue's priority levels are fixed when it
is created, so it applies only to queues declared while the policy is in force,
and an ``x-max-priority`` argument wins.

Classic mirroring keys (``ha-mode``, ``ha-params``, ``ha-sync-mode``,
``ha-sync-batch-size``, ``ha-promote-on-shutdown``, ``ha-promote-on-failure``) and
``queue-master-locator`` are accepted and checked as RabbitMQ 3.10 checks them
(:data:`HA_KEYS`, :func:`_check_ha`), stored, shown in a queue's effective
definition, and apply nothing: WarrenMQ is one node, where RabbitMQ's mirroring
does nothing either.  Deployment scripts and definitions files written for a
RabbitMQ cluster thus load unchanged.  Validation runs in RabbitMQ's order: the
locator, then the other settings by key, then the mirroring group, and only then
the complaint about unrecognised keys.

Operator policies (RabbitMQ's ``operator_policy``, set by the operator over
user policies) are a second :class:`Policies` of the vhost
(``vhost.operator_policies``), limited to :data:`OPERATOR_KEYS`.  A queue is
matched against both sets; when both match, what it gets is a
:class:`MergedPolicy` (RabbitMQ's ``merge_operator_definitions``): the keys of
both definitions, and for a key in both the *lower* value (the stricter one;
for a boolean the operator's).  It carries the user policy's name as ``name``
and the operator policy's as ``operator_policy``; when only an operator policy
matches, ``name`` is None.  Exchanges take user policies only (no operator key
concerns them).

Policies are durable definitions: with a data directory they are written to
the definitions store and restored at start.
"""
from __future__ import annotations

import re

KIND_QUEUE = 0
KIND_EXCHANGE = 1

APPLY_TO = ("all", "queues", "exchanges")

MIN = "min"  # the lower of argument and policy value is in force
ARG = "arg"  # the argument wins; the policy fills in a missing argument
DECLARE = "declare"  # like ARG, but read once when the queue is created

#: policy key -> (the object's argument it stands for, how the two combine)
QUEUE_KEYS = {
    "message-ttl": ("x-message-ttl", MIN),
    "expires": ("x-expires", MIN),
    "max-length": ("x-max-length", MIN),
    "max-length-bytes": ("x-max-length-bytes", MIN),
    "delivery-limit": ("x-delivery-limit", MIN),
    "overflow": ("x-overflow", ARG),
    "dead-letter-exchange": ("x-dead-letter-exchange", ARG),
    "dead-letter-routing-key": ("x-dead-letter-routing-key", ARG),
    "queue-mode": ("x-queue-mode", ARG),
    "max-priority": ("x-max-priority", DECLARE),
}
EXCHANGE_KEYS = {
    "alternate-exchange": ("alternate-exchange", ARG),
}
#: classic mirroring (rabbit_mirror_queue_misc's policy validator): checked and stored, nothing applied
HA_KEYS = ("ha-mode", "ha-params", "ha-sync-mode", "ha-sync-batch-size", "ha-promote-on-shutdown",
           "ha-promote-on-failure")
HA_MODES = ("all", "exactly", "nodes")
#: queue-master-locator's values (rabbit_queue_location_validator); checked and stored, nothing applied
QUEUE_MASTER_LOCATORS = ("min-masters", "client-local", "random")
#: the keys a user policy may set
POLICY_KEYS = frozenset(QUEUE_KEYS) | frozenset(EXCHANGE_KEYS) | frozenset(HA_KEYS) | {"queue-master-locator"}
#: policy keys of plugins (federation): ``register_policy_keys`` adds them with their validator
PLUGIN_KEYS: dict = {}  # key -> check(dict of that plugin's keys in a definition) -> error text or None


def register_policy_keys(keys, check) -> None:
    """Make ``keys`` valid user-policy keys, checked together by ``check(found)`` (``found``: those of
    ``keys`` a definition has; returns RabbitMQ's error text or None), as a plugin's policy validator."""
    for k in keys:
        PLUGIN_KEYS[k] = check


#: the keys an operator policy may set (RabbitMQ 3.10's operator_policy_validator registrations);
#: max-in-memory-* are accepted and, as for RabbitMQ's classic queues, have no effect
OPERATOR_KEYS = ("expires", "message-ttl", "max-length", "max-length-bytes", "max-in-memory-length",
                 "max-in-memory-bytes", "delivery-limit")
#: keys whose merged value (user and operator policy) is the lower of the two
_MERGE_MIN = frozenset(OPERATOR_KEYS)
#: argument name -> (policy key, resolution)
_BY_ARG = {arg: (key, how) for key, (arg, how) in {**QUEUE_KEYS, **EXCHANGE_KEYS}.items()}

#: the values of the queue settings a policy and a queue argument share (queues/args.py checks the
#: arguments against the same ones)
OVERFLOW_MODES = ("drop-head", "reject-publish", "reject-publish-dlx")
QUEUE_MODES = ("default", "lazy")
#: the highest ``x-max-priority`` RabbitMQ accepts
MAX_SUPPORTED_PRIORITY = 255


def _erl(v) -> str:
    """A value as RabbitMQ's ``~p`` prints it in validation errors."""
    if isinstance(v, str):
        return '<<"' + v.replace("\\", "\\\\").replace('"', '\\"') + '">>'
    if v is True or v is False:
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, list):
        return "[" + ",".join(_erl(x) for x in v) + "]"
    if isinstance(v, dict):  # a JSON object is an Erlang map
        return "#{" + ",".join(f"{_erl(k)} => {_erl(x)}" for k, x in v.items()) + "}"
    return repr(v)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_value(key: str, v) -> str | None:
    """RabbitMQ's validation error for one definition entry, or None."""
    if key in ("alternate-exchange", "dead-letter-exchange", "dead-letter-routing-key"):
        if not isinstance(v, str):
            what = {"alternate-exchange": "alternate exchange name",
                    "dead-letter-exchange": "dead letter exchange name",
                    "dead-letter-routing-key": "dead letter routing key"}[key]
            return f"{_erl(v)} is not a valid {what}"
    elif key in ("message-ttl", "max-length", "max-length-bytes", "delivery-limit", "max-in-memory-length",
                 "max-in-memory-bytes"):
        if not _is_int(v) or v < 0:
            what = {"message-ttl": "message TTL", "max-length": "maximum length",
                    "max-length-bytes": "maximum length in bytes", "delivery-limit": "delivery limit",
                    "max-in-memory-length": "maximum memory length",
                    "max-in-memory-bytes": "maximum memory in bytes"}[key]
            return f"{_erl(v)} is not a valid {what}"
    elif key == "expires":
        if not _is_int(v) or v < 1:
            return f"{_erl(v)} is not a valid queue expiry"
    elif key == "overflow":
        if v not in OVERFLOW_MODES:
            return f"{_erl(v)} is not a valid overflow value"
    elif key == "queue-mode":
        if v not in QUEUE_MODES:
            return f"{_erl(v)} is not a valid queue-mode value"
    elif key == "max-priority":
        if not _is_int(v) or v < 0 or v > MAX_SUPPORTED_PRIORITY:
            return f"{_erl(v)} is not a valid max priority"
    return None


def _check_ha(definition: dict) -> str | None:
    """rabbit_mirror_queue_misc:validate_policy: RabbitMQ's error for the mirroring keys, or None."""
    if not any(k in definition for k in HA_KEYS):
        return None
    if "ha-mode" not in definition:
        return "ha-mode must be specified to specify ha-params, ha-sync-mode or ha-promote-on-shutdown"
    mode = definition["ha-mode"]
    if mode not in HA_MODES:  # RabbitMQ 3.10 crashes (500) on a mode that is not a string
        return f"{_erl(mode)} is not a valid ha-mode value"
    has_params = "ha-params" in definition
    params = definition.get("ha-params")
    if mode == "all":
        if has_params:
            return 'ha-mode="all" does not take parameters'
    elif mode == "exactly":
        if not has_params:
            return 'ha-mode="exactly" takes an integer, none given'
        if not _is_int(params) or params <= 0:
            return f'ha-mode="exactly" takes an integer, {_erl(params)} given'
    else:
        if not has_params:
            return 'ha-mode="nodes" takes a list, none given'
        if not isinstance(params, list):
            return f'ha-mode="nodes" takes a list, {_erl(params)} given'
        if not params:
            return 'ha-mode="nodes" list must be non-empty'
        for node in params:
            if not isinstance(node, str):
                return f'ha-mode="nodes" takes a list of strings, {_erl([node])} was not a string'
    if "ha-sync-mode" in definition and definition["ha-sync-mode"] not in ("manual", "automatic"):
        return f'ha-sync-mode must be "manual" or "automatic", got {_erl(definition["ha-sync-mode"])}'
    if "ha-sync-batch-size" in definition:
        v = definition["ha-sync-batch-size"]
        if not _is_int(v) or v <= 0:
            return f"ha-sync-batch-size takes an integer greater than 0, {_erl(v)} given"
    for key in ("ha-promote-on-shutdown", "ha-promote-on-failure"):
        if key in definition and definition[key] not in ("always", "when-synced"):
            return f'{key} must be "always" or "when-synced", got {_erl(definition[key])}'
    return None


def validate(name: str, pattern: str, definition: dict, priority: int, apply_to: str,
             operator: bool = False) -> re.Pattern:
    """Check a policy as ``rabbitmqctl set_policy`` (``operator``: ``set_operator_policy``) does; ValueError
    with RabbitMQ's reason, else the regex."""
    if not isinstance(name, str) or not name:
        raise ValueError("policy name must be a non-empty string")
    if apply_to not in APPLY_TO:
        raise ValueError(f"'{apply_to}' is not a valid apply-to value")
    if not _is_int(priority):
        raise ValueError(f"{_erl(priority)} is not a valid priority")
    if not isinstance(definition, dict) or not definition:
        raise ValueError("no policy provided")
    # RabbitMQ's order (rabbit_policy:validation0): each validator on the keys it knows (the locator's,
    # then rabbit_policies' in key order, then mirroring), and only then the keys nobody knew
    known = OPERATOR_KEYS if operator else POLICY_KEYS
    if not operator and "queue-master-locator" in definition:
        v = definition["queue-master-locator"]
        if v not in QUEUE_MASTER_LOCATORS:
            raise ValueError(f"{_erl(v)} invalid queue-master-locator value")
    for k in sorted(definition):
        if k in known:
            err = _check_value(k, definition[k])
            if err:
                raise ValueError(err)
    if not operator:
        err = _check_ha(definition)
        if err:
            raise ValueError(err)
        for check in {PLUGIN_KEYS[k] for k in definition if k in PLUGIN_KEYS}:
            err = check({k: v for k, v in definition.items() if PLUGIN_KEYS.get(k) is check})
            if err:
                raise ValueError(err)
    unknown = sorted(k for k in definition if k not in known and (operator or k not in PLUGIN_KEYS))
    if unknown:
        terms = ",".join(f"{{{_erl(k)},{_erl(definition[k])}}}" for k in unknown)
        raise ValueError(f"[{terms}] are not recognised policy settings")
    try:
        return re.compile(pattern)
    except (re.error, TypeError) as e:
        raise ValueError(f"{pattern!r} is not a valid regex: {e}") from None


class Policy:
    __slots__ = ("vhost", "name", "pattern", "definition", "priority", "apply_to", "regex")

    def __init__(self, vhost: str, name: str, pattern: str, definition: dict, priority: int = 0,
                 apply_to: str = "all", operator: bool = False):
        self.regex = validate(name, pattern, definition, priority, apply_to, operator)
        self.vhost = vhost
        self.name = name
        self.pattern = pattern
        self.definition = dict(definition)
        self.priority = priority
        self.apply_to = apply_to

    def applies_to(self, kind: int, name: str) -> bool:
        a = self.apply_to
        if a != "all" and a != ("queues" if kind == KIND_QUEUE else "exchanges"):
            return False
        return self.regex.search(name) is not None

    def get(self, key: str, default=None):
        return self.definition.get(key, default)

    def as_dict(self) -> dict:
        return {"vhost": self.vhost, "name": self.name, "pattern": self.pattern, "apply-to": self.apply_to,
                "definition": dict(self.definition), "priority": self.priority}

    def __repr__(self) -> str:
        return f"<Policy {self.name!r} {self.pattern!r} {self.apply_to} {self.priority} {self.definition}>"


class MergedPolicy:
    """What a queue matched by a user policy and an operator policy gets (see the module docstring):
    ``name`` the user policy's (None if only an operator policy matched), ``operator_policy`` the
    operator policy's name, ``definition`` the merged definition."""
    __slots__ = ("name", "operator_policy", "definition", "policy", "operator")

    def __init__(self, policy: Policy | None, operator: Policy):
        self.policy = policy
        self.operator = operator
        self.name = policy.name if policy is not None else None
        self.operator_policy = operator.name
        merged = dict(policy.definition) if policy is not None else {}
        for key, ov in operator.definition.items():
            v = merged.get(key)
            if v is None:
                merged[key] = ov
            elif isinstance(v, bool) and isinstance(ov, bool):
                merged[key] = ov
            elif key in _MERGE_MIN and _is_int(v) and _is_int(ov):
                merged[key] = min(v, ov)
        self.definition = merged

    def get(self, key: str, default=None):
        return self.definition.get(key, default)

    def __repr__(self) -> str:
        return f"<MergedPolicy {self.name!r} + operator {self.operator_policy!r} {self.definition}>"


class Policies:
    """The policies of one vhost (``operator``: its operator policies), and their application to its
    queues and exchanges.  The vhost's user :class:`Policies` applies both sets (:meth:`match`)."""

    def __init__(self, vhost, operator: bool = False):
        self.vhost = vhost
        self.operator = operator
        self.by_name: dict[str, Policy] = {}
        self._ordered: list[Policy] = []  # highest priority first, then by name
        self._merged: dict = {}  # (policy, operator policy) -> MergedPolicy, so an unchanged pair is the same object

    def __len__(self) -> int:
        return len(self.by_name)

    def __iter__(self):
        return iter(self._ordered)

    def _own_match(self, kind: int, name: str) -> Policy | None:
        for p in self._ordered:
            if p.applies_to(kind, name):
                return p
        return None

    def match(self, kind: int, name: str):
        """The policy in force for an object of ``kind`` named ``name``: a :class:`Policy`, for a queue
        matched by an operator policy too a :class:`MergedPolicy`, or None."""
        p = self._own_match(kind, name)
        ops = None if self.operator or kind != KIND_QUEUE else getattr(self.vhost, "operator_policies", None)
        if not ops:
            return p
        op = ops._own_match(kind, name)
        if op is None:
            return p
        key = (p, op)
        merged = self._merged.get(key)
        if merged is None:
            merged = self._merged[key] = MergedPolicy(p, op)
        return merged

    def set(self, name: str, pattern: str, definition: dict, priority: int = 0, apply_to: str = "all") -> Policy:
        policy = Policy(self.vhost.name, name, pattern, definition, priority, apply_to, self.operator)
        self.by_name[name] = policy
        self._reorder()
        if self.operator:
            self.vhost.defs.operator_policy_set(self.vhost.name, name, pattern, apply_to, priority, policy.definition)
        else:
            self.vhost.defs.policy_set(self.vhost.name, name, pattern, apply_to, priority, policy.definition)
        self._changed()
        return policy

    def clear(self, name: str) -> None:
        if name not in self.by_name:
            raise KeyError(f"policy '{name}' not found in vhost '{self.vhost.name}'")
        del self.by_name[name]
        self._reorder()
        if self.operator:
            self.vhost.defs.operator_policy_cleared(self.vhost.name, name)
        else:
            self.vhost.defs.policy_cleared(self.vhost.name, name)
        self._changed()

    def _changed(self) -> None:
        """Re-apply: the user policies do it for both sets; merged pairs of replaced policies are forgotten."""
        target = self if not self.operator else getattr(self.vhost, "policies", None)
        if target is None:
            return
        current = set(target.by_name.values())
        ops = getattr(self.vhost, "operator_policies", None)
        op_current = set(ops.by_name.values()) if ops is not None else set()
        target._merged = {k: m for k, m in target._merged.items()
                          if (k[0] is None or k[0] in current) and k[1] in op_current}
        target.reapply()

    def _reorder(self) -> None:
        self._ordered = sorted(self.by_name.values(), key=lambda p: (-p.priority, p.name))

    def reapply(self) -> None:
        """Give every queue and exchange the policy now in force for it."""
        vhost = self.vhost
        if self.operator:
            vhost.policies.reapply()
            return
        for q in list(vhost.queues.values()):
            p = self.match(KIND_QUEUE, q.name)
            if p is not q.policy:
                q.apply_policy(p)
        for ex in vhost.exchanges.values():
            if ex.name:  # never the default exchange
                ex.policy = self.match(KIND_EXCHANGE, ex.name)


def effective(obj, arg: str):
    """The value in force for ``arg`` (``x-message-ttl``, ``alternate-exchange``, ...) on a queue or
    exchange: its argument combined with its policy as RabbitMQ does (see the module docstring)."""
    value = obj.arguments.get(arg)
    policy = obj.policy
    if policy is None:
        return value
    spec = _BY_ARG.get(arg)
    if spec is None:
        return value
    key, how = spec
    pv = policy.definition.get(key)
    if pv is None:
        return value
    if value is None:
        return pv
    if how == MIN and _is_int(value) and _is_int(pv):
        return min(value, pv)
    return value


def policy_for(vhost, kind: int, name: str):
    """The policy for a new queue or exchange of ``vhost`` (None when the vhost has no policies)."""
    policies = getattr(vhost, "policies", None)
    if policies is None:
        return None
    if not policies and not getattr(vhost, "operator_policies", None):
        return None
    return policies.match(kind, name)


class PolicyTarget:
    """What exchanges and queues share: a name in a vhost, durable or not, deleted with their last
    consumer or binding or not (auto-delete), their arguments, the bindings they take part in, and the
    policy in force, through which their policy-able settings are read (:meth:`effective`)."""
    __slots__ = ("name", "vhost", "durable", "auto_delete", "arguments", "bindings", "policy")

    def __init__(self, kind: int, name: str, vhost, durable: bool, auto_delete: bool, arguments):
        self.name = name
        self.vhost = vhost
        self.durable = durable
        self.auto_delete = auto_delete
        self.arguments = arguments or {}
        self.bindings: set = set()
        self.policy = policy_for(vhost, kind, name) if name else None  # the default exchange has none

    def effective(self, arg: str):
        """The value in force for argument ``arg`` (``x-message-ttl``, ``alternate-exchange``, ...): the
        argument combined with the policy as RabbitMQ does (see the module docstring)."""
        if self.policy is None:
            return self.arguments.get(arg)
        return effective(self, arg)
