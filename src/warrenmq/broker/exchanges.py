"""Exchanges and routing: direct, fanout, topic (trie + cache) and headers.

Theory of operation: an exchange maps a published message to a list of
*destinations* (queues, or exchanges for exchange-to-exchange bindings).  Each
type keeps its bindings in the structure that makes ``route`` cheap:

* direct: ``dict`` routing key -> list of destinations (one lookup);
* fanout: one list;
* topic: a trie of words with ``*``/``#`` children, plus a bounded cache from
  routing key to the matched destinations, cleared whenever a binding changes;
* headers: a list of bindings matched against the decoded ``headers`` property
  (the only exchange that decodes properties).

``Exchange.bindings`` is the authoritative set of ``(destination, key, args_key)``
triples (``args_key`` is a hashable form of the binding arguments, so binding
equality is RabbitMQ's: source, destination, key and arguments).

``EXCHANGE_TYPES`` maps a type name to its class (plugin_exchanges.py adds the
two plugin types when imported); ``exchange_class(name)`` looks a type up, or
raises the connection error RabbitMQ gives for a type it does not have.
"""
from __future__ import annotations

from decimal import Decimal

from ..protocol.errors import HardError
from ..protocol.spec import COMMAND_INVALID
from .policy import PolicyTarget
from .stats import EXCHANGE_SLOTS, zero

KIND_QUEUE = 0
KIND_EXCHANGE = 1


def args_key(args) -> tuple:
    """A hashable, order-independent form of a field table."""
    if not args:
        return ()
    return tuple(sorted((k, _freeze(v)) for k, v in args.items()))


def _freeze(v):
    if isinstance(v, dict):
        return ("F", args_key(v))
    if isinstance(v, list):
        return ("A", tuple(_freeze(x) for x in v))
    return (type(v).__name__, v)


class Exchange(PolicyTarget):
    TYPE = ""
    __slots__ = ("internal", "e2e_bindings", "alternate") + EXCHANGE_SLOTS

    def __init__(self, name: str, vhost, durable=False, auto_delete=False, internal=False, arguments=None):
        PolicyTarget.__init__(self, KIND_EXCHANGE, name, vhost, durable, auto_delete, arguments)
        self.internal = internal
        self.e2e_bindings = 0
        ae = self.arguments.get("alternate-exchange")  # its name (looked up when used), validated on declare
        self.alternate = ae if ae.__class__ is str else None
        zero(self, EXCHANGE_SLOTS)  # message statistics (stats.py), counted by VHost.publish

    #: routes by routing key, so a message's CC/BCC keys count (direct, topic, default)
    MULTI_KEY = False

    kind = KIND_EXCHANGE

    @property
    def type(self) -> str:
        return self.TYPE

    def bind(self, dest, key: str, args) -> bool:
        b = (dest, key, args_key(args))
        if b in self.bindings:
            return False
        self.bindings.add(b)
        if dest.kind == KIND_EXCHANGE:
            self.e2e_bindings += 1
        self._add(dest, key, args or {})
        return True

    def unbind(self, dest, key: str, args) -> bool:
        b = (dest, key, args_key(args))
        if b not in self.bindings:
            return False
        self.bindings.discard(b)
        if dest.kind == KIND_EXCHANGE:
            self.e2e_bindings -= 1
        self._remove(dest, key, args or {})
        return True

    def unbind_destination(self, dest) -> int:
        """Remove every binding to ``dest``; return how many went."""
        gone = [b for b in self.bindings if b[0] is dest]
        for b in gone:
            self.bindings.discard(b)
            if dest.kind == KIND_EXCHANGE:
                self.e2e_bindings -= 1
            self._remove(dest, b[1], dict(_thaw(b[2])))
        return len(gone)

    # subclass hooks
    def _add(self, dest, key, args):
        raise NotImplementedError

    def _remove(self, dest, key, args):
        raise NotImplementedError

    def route(self, msg) -> list:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"


def _thaw(items):
    out = []
    for k, (tag, v) in items:
        out.append((k, _thaw_value(tag, v)))
    return out


def _thaw_value(tag, v):
    if tag == "F":
        return dict(_thaw(v))
    if tag == "A":
        return [_thaw_value(t, x) for t, x in v]
    return v


class DirectExchange(Exchange):
    TYPE = "direct"
    MULTI_KEY = True
    __slots__ = ("table",)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.table: dict[str, list] = {}

    def _add(self, dest, key, args):
        dests = self.table.get(key)
        if dests is None:
            self.table[key] = [dest]
        elif dest not in dests:
            dests.append(dest)

    def _remove(self, dest, key, args):
        # the same destination may still be bound with this key under other arguments
        if any(b[0] is dest and b[1] == key for b in self.bindings):
            return
        dests = self.table.get(key)
        if dests is not None and dest in dests:
            dests.remove(dest)
            if not dests:
                del self.table[key]

    def route(self, msg) -> list:
        return self.table.get(msg.routing_key, ())


class DefaultExchange(Exchange):
    """The nameless direct exchange every queue is implicitly bound to by its name."""
    TYPE = "direct"
    MULTI_KEY = True
    __slots__ = ()

    def __init__(self, vhost):
        super().__init__("", vhost, durable=True)

    def route(self, msg) -> list:
        q = self.vhost.queues.get(msg.routing_key)
        return (q,) if q is not None else ()


class FanoutExchange(Exchange):
    TYPE = "fanout"
    __slots__ = ("dests",)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.dests: list = []

    def _add(self, dest, key, args):
        if dest not in self.dests:
            self.dests.append(dest)

    def _remove(self, dest, key, args):
        if any(b[0] is dest for b in self.bindings):
            return
        if dest in self.dests:
            self.dests.remove(dest)

    def route(self, msg) -> list:
        return self.dests


class _TrieNode:
    __slots__ = ("children", "dests")

    def __init__(self):
        self.children: dict[str, _TrieNode] = {}
        self.dests: dict = {}  # dest -> number of bindings ending here (for duplicate keys via args)


class TopicExchange(Exchange):
    TYPE = "topic"
    MULTI_KEY = True
    __slots__ = ("root", "cache")
    CACHE_MAX = 4096

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.root = _TrieNode()
        self.cache: dict[str, tuple] = {}

    def _add(self, dest, key, args):
        node = self.root
        for word in _words(key):
            nxt = node.children.get(word)
            if nxt is None:
                nxt = node.children[word] = _TrieNode()
            node = nxt
        node.dests[dest] = node.dests.get(dest, 0) + 1
        self.cache.clear()

    def _remove(self, dest, key, args):
        path = [self.root]
        words = _words(key)
        for word in words:
            nxt = path[-1].children.get(word)
            if nxt is None:
                return
            path.append(nxt)
        node = path[-1]
        count = node.dests.get(dest, 0)
        if count <= 1:
            node.dests.pop(dest, None)
        else:
            node.dests[dest] = count - 1
        # prune empty nodes
        for i in range(len(words), 0, -1):
            n = path[i]
            if n.dests or n.children:
                break
            del path[i - 1].children[words[i - 1]]
        self.cache.clear()

    def route(self, msg) -> tuple:
        key = msg.routing_key
        hit = self.cache.get(key)
        if hit is not None:
            return hit
        found: dict = {}
        _match(self.root, _words(key), 0, found)
        result = tuple(found)
        cache = self.cache
        if len(cache) >= self.CACHE_MAX:
            cache.clear()
        cache[key] = result
        return result


def _words(key: str) -> list:
    """The words of a routing key or binding pattern; as in RabbitMQ, "" has none (so '*' misses it)."""
    return key.split(".") if key else []


def _match(node: _TrieNode, words: list, i: int, found: dict) -> None:
    children = node.children
    if i == len(words):
        found.update(node.dests)
        h = children.get("#")
        if h is not None:
            _match(h, words, i, found)
        return
    w = children.get(words[i])
    if w is not None:
        _match(w, words, i + 1, found)
    s = children.get("*")
    if s is not None:
        _match(s, words, i + 1, found)
    h = children.get("#")
    if h is not None:
        # '#' matches zero or more words
        for j in range(i, len(words) + 1):
            _match(h, words, j, found)


class HeadersExchange(Exchange):
    TYPE = "headers"
    __slots__ = ("rules",)

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.rules: list = []  # (dest, match_all, include_x, [(key, value)], args_key)

    def _add(self, dest, key, args):
        mode = args.get("x-match", "all")
        if isinstance(mode, bytes):
            mode = mode.decode()
        match_all = mode in ("all", "all-with-x")
        include_x = mode.endswith("-with-x")
        pairs = [(k, v) for k, v in args.items()
                 if k != "x-match" and (include_x or not k.startswith("x-"))]
        self.rules.append((dest, match_all, include_x, pairs, args_key(args)))

    def _remove(self, dest, key, args):
        ak = args_key(args)
        for i, r in enumerate(self.rules):
            if r[0] is dest and r[4] == ak:
                del self.rules[i]
                return

    def route(self, msg) -> list:
        headers = msg.properties.headers or {}
        out = []
        for dest, match_all, include_x, pairs, _ in self.rules:
            if dest in out:
                continue
            if match_all:
                ok = True
                for k, v in pairs:
                    if k not in headers or (v is not None and not _header_eq(headers[k], v)):
                        ok = False
                        break
            else:
                ok = False
                for k, v in pairs:
                    if k in headers and (v is None or _header_eq(headers[k], v)):
                        ok = True
                        break
            if ok:
                out.append(dest)
        return out


def _header_eq(a, b) -> bool:
    """Header value equality as RabbitMQ's (Erlang ``==``): numbers compare across int and float widths,
    but a bool is no number and a decimal equals only a decimal of the same scale and digits.  A longstr
    and a byte array are both Erlang binaries there, so "pdf" equals b"pdf"."""
    if a.__class__ is str:
        a = a.encode()
    if b.__class__ is str:
        b = b.encode()
    if a != b:
        return False
    ca, cb = a.__class__, b.__class__
    if ca is cb or (ca is not bool and cb is not bool and ca is not Decimal and cb is not Decimal):
        return ca is not Decimal or a.as_tuple() == b.as_tuple()
    return False


EXCHANGE_TYPES = {
    "direct": DirectExchange,
    "fanout": FanoutExchange,
    "topic": TopicExchange,
    "headers": HeadersExchange,
}

# RabbitMQ 3.10 says "invalid exchange type" when the type name is already an Erlang atom in the broker
# and "unknown exchange type" otherwise (typos, wrong case, x- plugin types that are not enabled).  These
# names were checked against RabbitMQ 3.10.8 without plugins (its shovel and federation plugins add atoms such as
# 'Direct'); any other name gets "unknown".
_ATOM_TYPE_NAMES = frozenset(
    [""] + [c for c in "abcdefghijklmnpqrstuvwxyz"]
    + "foo bar test true false ok error undefined none nil null queue exchange random local hash match all any "
      "amqp bad badarg badtype basic classic default delay dummy durable event events federation header info "
      "internal invalid invalid_type log name new old other priority quorum rpc sample simple stream string "
      "type unknown unknown_type work".split())


def exchange_class(type_: str) -> type:
    """The class of exchange type ``type_``; for a type there is none of, RabbitMQ's connection error
    (``COMMAND_INVALID``, "invalid exchange type" or "unknown exchange type", see _ATOM_TYPE_NAMES)."""
    cls = EXCHANGE_TYPES.get(type_)
    if cls is None:
        adjective = "invalid" if type_ in _ATOM_TYPE_NAMES else "unknown"
        raise HardError(COMMAND_INVALID, f"{adjective} exchange type '{type_}'")
    return cls
