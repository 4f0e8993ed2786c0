#!/usr/bin/env python3
"""Generate ``src/warrenmq/protocol/spec.py`` from the machine-readable AMQP spec.

Theory of operation: the JSON spec (RabbitMQ's ``amqp-rabbitmq-0.9.1.json``) lists
constants, classes, methods with typed arguments, and the basic class's content
properties.  For each method we emit a ``__slots__`` class with a hand-unrolled
``encode()`` and ``decode(buf, off)``: consecutive fixed-width fields are packed
with one precompiled ``struct.Struct`` and consecutive bits share octets, so the
generated code is as fast as hand-written code but no id is ever typed by hand.

Usage::

    python tools/gen_spec.py [path/to/amqp-rabbitmq-0.9.1.json]

The default spec is ``tools/amqp-rabbitmq-0.9.1.json``, RabbitMQ's file (from
rabbitmq-codegen, MIT-style licence in its ``copyright`` field) kept beside this
generator so the repository is self-contained; the output is checked in and
tests/protocol/test_spec_generated.py verifies it is current.
"""
from __future__ import annotations

import json
import keyword
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SPEC = Path(__file__).resolve().parent / "amqp-rabbitmq-0.9.1.json"
OUTPUT = ROOT / "src" / "warrenmq" / "protocol" / "spec.py"

FIXED = {"octet": ("B", 1), "short": ("H", 2), "long": ("I", 4), "longlong": ("Q", 8), "timestamp": ("Q", 8)}
DEFAULTS = {"octet": "0", "short": "0", "long": "0", "longlong": "0", "timestamp": "0",
            "bit": "False", "shortstr": "''", "longstr": "b''", "table": "None"}


def pyname(name: str) -> str:
    n = name.replace("-", "_")
    return n + "_" if keyword.iskeyword(n) else n


def camel(name: str) -> str:
    return "".join(p.capitalize() for p in name.split("-"))


def resolve(arg: dict, domains: dict) -> str:
    t = arg.get("type")
    if t is None:
        t = domains[arg["domain"]]
    while t in domains and domains[t] != t:
        t = domains[t]
    return t


def group(args):
    """Split arguments into runs: ('fixed', [...]), ('bits', [...]) or single others."""
    runs = []
    for name, t in args:
        if t in FIXED:
            if runs and runs[-1][0] == "fixed":
                runs[-1][1].append((name, t))
            else:
                runs.append(("fixed", [(name, t)]))
        elif t == "bit":
            if runs and runs[-1][0] == "bits" and len(runs[-1][1]) < 8:
                runs[-1][1].append((name, t))
            else:
                runs.append(("bits", [(name, t)]))
        else:
            runs.append((t, [(name, t)]))
    return runs


def gen_method(cls: dict, m: dict, domains: dict, structs: dict) -> str:
    cname = camel(cls["name"]) + camel(m["name"])
    args = [(pyname(a["name"]), resolve(a, domains)) for a in m["arguments"]]
    names = [a for a, _ in args]
    out = [f"class {cname}(Method):"]
    out.append(f"    __slots__ = ({''.join(repr(n) + ', ' for n in names)})")
    out.append(f"    CLASS_ID = {cls['id']}")
    out.append(f"    METHOD_ID = {m['id']}")
    out.append(f"    INDEX = 0x{(cls['id'] << 16) | m['id']:08X}")
    out.append(f"    NAME = '{cls['name']}.{m['name']}'")
    out.append(f"    SYNCHRONOUS = {bool(m.get('synchronous', False))}")
    out.append(f"    CONTENT = {bool(m.get('content', False))}")
    # __init__
    params = ", ".join(f"{n}={DEFAULTS[t]}" for n, t in args)
    out.append(f"\n    def __init__(self{', ' + params if params else ''}):")
    if not args:
        out.append("        pass")
    for n, t in args:
        out.append(f"        self.{n} = {n}")
    # encode
    out.append("\n    def encode(self):")
    head = f"0x{cls['id']:04X}{m['id']:04X}"
    out.append(f"        parts = [_UL({head})]")
    for kind, items in group(args):
        if kind == "fixed":
            fmt = ">" + "".join(FIXED[t][0] for _, t in items)
            sname = structs.setdefault(fmt, f"_S{len(structs)}")
            vals = ", ".join(f"self.{n}" for n, _ in items)
            out.append(f"        parts.append({sname}.pack({vals}))")
        elif kind == "bits":
            expr = " | ".join(f"({i and f'{1 << i} if self.{n} else 0' or f'1 if self.{n} else 0'})"
                              for i, (n, _) in enumerate(items))
            out.append(f"        parts.append(_B.pack({expr}))")
        elif kind == "shortstr":
            out.append(f"        parts.append(encode_shortstr(self.{items[0][0]}))")
        elif kind == "longstr":
            out.append(f"        parts.append(encode_longstr(self.{items[0][0]}))")
        elif kind == "table":
            out.append(f"        parts.append(encode_table(self.{items[0][0]}))")
        else:
            raise ValueError(kind)
    out.append("        return b''.join(parts)")
    # decode
    out.append("\n    @classmethod")
    out.append("    def decode(cls, buf, off):")
    out.append("        self = cls.__new__(cls)")
    for kind, items in group(args):
        if kind == "fixed":
            fmt = ">" + "".join(FIXED[t][0] for _, t in items)
            sname = structs.setdefault(fmt, f"_S{len(structs)}")
            targets = ", ".join(f"self.{n}" for n, _ in items)
            if len(items) == 1:
                targets += ","
            size = sum(FIXED[t][1] for _, t in items)
            out.append(f"        {targets} = {sname}.unpack_from(buf, off)")
            out.append(f"        off += {size}")
        elif kind == "bits":
            out.append("        bits = buf[off]")
            out.append("        off += 1")
            for i, (n, _) in enumerate(items):
                out.append(f"        self.{n} = bool(bits & {1 << i})")
        elif kind == "shortstr":
            out.append(f"        self.{items[0][0]}, off = decode_shortstr(buf, off)")
        elif kind == "longstr":
            out.append(f"        self.{items[0][0]}, off = decode_longstr(buf, off)")
        elif kind == "table":
            out.append(f"        self.{items[0][0]}, off = decode_table(buf, off)")
    # the arguments must end at the frame end, as RabbitMQ's decoder requires (both are 501 there)
    out.append("        if off != len(buf):")
    out.append("            raise DecodeError('method frame truncated' if off > len(buf) else "
               "'bytes after the method arguments')")
    out.append("        return self")
    return "\n".join(out) + "\n"


def gen_properties(cls: dict, domains: dict) -> str:
    props = [(pyname(p["name"]), resolve(p, domains)) for p in cls["properties"]]
    out = ["class BasicProperties:",
           '    """The basic class\'s content properties; ``None`` means absent."""',
           f"    __slots__ = ({''.join(repr(n) + ', ' for n, _ in props)})",
           f"    FIELDS = ({''.join(repr(n) + ', ' for n, _ in props)})",
           "",
           "    def __init__(self, " + ", ".join(f"{n}=None" for n, _ in props) + "):"]
    for n, _ in props:
        out.append(f"        self.{n} = {n}")
    out.append("")
    out.append("    def __eq__(self, other):")
    out.append("        return isinstance(other, BasicProperties) and all("
               "getattr(self, f) == getattr(other, f) for f in self.FIELDS)")
    out.append("")
    out.append("    def __repr__(self):")
    out.append("        inner = ', '.join(f'{f}={getattr(self, f)!r}' for f in self.FIELDS "
               "if getattr(self, f) is not None)")
    out.append("        return f'BasicProperties({inner})'")
    out.append("")
    out.append("    def encode(self):")
    out.append('        """Property flags and the present properties, as a content header carries them."""')
    out.append("        flags = 0")
    out.append("        parts = [b'']")
    enc = {"shortstr": "encode_shortstr({v})", "longstr": "encode_longstr({v})", "table": "encode_table({v})",
           "octet": "_B.pack({v})", "short": "_H.pack({v})", "long": "_I.pack({v})",
           "longlong": "_Q.pack({v})", "timestamp": "_Q.pack({v})"}
    for i, (n, t) in enumerate(props):
        bit = 1 << (15 - i)
        out.append(f"        if self.{n} is not None:")
        out.append(f"            flags |= 0x{bit:04X}")
        out.append(f"            parts.append({enc[t].format(v='self.' + n)})")
    out.append("        parts[0] = _H.pack(flags)")
    out.append("        return b''.join(parts)")
    out.append("")
    out.append("    @classmethod")
    out.append("    def decode(cls, buf, off=0):")
    out.append("        self = cls()")
    out.append("        flags, = _H.unpack_from(buf, off)")
    out.append("        off += 2")
    out.append("        if flags & 1:")
    out.append("            raise DecodeError('property flags continuation is not supported')")
    dec = {"shortstr": "decode_shortstr(buf, off)", "longstr": "decode_longstr(buf, off)",
           "table": "decode_table(buf, off)"}
    for i, (n, t) in enumerate(props):
        bit = 1 << (15 - i)
        out.append(f"        if flags & 0x{bit:04X}:")
        if t in dec:
            out.append(f"            self.{n}, off = {dec[t]}")
        else:
            fmt, size = FIXED[t]
            out.append(f"            self.{n}, = _{fmt}.unpack_from(buf, off)")
            out.append(f"            off += {size}")
    out.append("        if off > len(buf):")
    out.append("            raise DecodeError('content header truncated')")
    out.append("        return self")
    return "\n".join(out) + "\n"


def generate(spec: dict) -> str:
    domains = {d[0]: d[1] for d in spec["domains"]}
    structs: dict[str, str] = {}
    body = []
    lines = [
        '"""AMQP 0-9-1 constants and method classes (RabbitMQ dialect).',
        "",
        "GENERATED by tools/gen_spec.py from amqp-rabbitmq-0.9.1.json: do not edit by hand.",
        "",
        "Each method class has ``encode()`` (the method frame payload: class id, method id,",
        "arguments) and ``decode(buf, off)`` (arguments starting at ``off``, after the ids).",
        '"""',
        "# ruff: noqa",
        "import struct",
        "",
        "from .codec import (DecodeError, decode_longstr, decode_shortstr, decode_table,",
        "                    encode_longstr, encode_shortstr, encode_table)",
        "",
        "PROTOCOL_HEADER = b'AMQP\\x00' + bytes(("
        f"{spec['major-version']}, {spec['minor-version']}, {spec['revision']}))",
        f"PORT = {spec['port']}",
        "",
    ]
    hard, soft = [], []
    for c in spec["constants"]:
        name = c["name"].replace("-", "_")
        lines.append(f"{name} = {c['value']}")
        if c.get("class") == "hard-error":
            hard.append(name)
        elif c.get("class") == "soft-error":
            soft.append(name)
    lines.append("")
    lines.append(f"HARD_ERRORS = frozenset(({', '.join(hard)},))")
    lines.append(f"SOFT_ERRORS = frozenset(({', '.join(soft)},))")
    names = {c["value"]: c["name"].replace("-", "_") for c in spec["constants"] if "class" in c}
    names[200] = "REPLY_SUCCESS"
    lines.append("REPLY_NAMES = {" + ", ".join(f"{v}: '{n}'" for v, n in sorted(names.items())) + "}")
    lines.append("")
    for cls in spec["classes"]:
        lines.append(f"CLASS_{cls['name'].upper()} = {cls['id']}")
    lines.append("")
    all_methods = []
    for cls in spec["classes"]:
        for m in cls["methods"]:
            body.append(gen_method(cls, m, domains, structs))
            all_methods.append(camel(cls["name"]) + camel(m["name"]))
        if cls.get("properties"):
            body.append(gen_properties(cls, domains))
    lines.append("_UL = struct.Struct('>I').pack")
    lines.append("_B = struct.Struct('>B')")
    lines.append("_H = struct.Struct('>H')")
    lines.append("_I = struct.Struct('>I')")
    lines.append("_Q = struct.Struct('>Q')")
    for fmt, sname in structs.items():
        lines.append(f"{sname} = struct.Struct({fmt!r})")
    lines.append("")
    lines.append("")
    lines.append("class Method:")
    lines.append('    """Base of every generated method class."""')
    lines.append("    __slots__ = ()")
    lines.append("    CLASS_ID = METHOD_ID = INDEX = 0")
    lines.append("    NAME = ''")
    lines.append("    SYNCHRONOUS = CONTENT = False")
    lines.append("")
    lines.append("    # equality and repr go by the method's arguments, so subclasses that carry extra")
    lines.append("    # state (such as the protocol layer's publish events) compare as their method")
    lines.append("    def __eq__(self, other):")
    lines.append("        if not isinstance(other, Method) or other.INDEX != self.INDEX:")
    lines.append("            return False")
    lines.append("        return all(getattr(self, s) == getattr(other, s) for s in METHODS[self.INDEX].__slots__)")
    lines.append("")
    lines.append("    def __repr__(self):")
    lines.append("        cls = METHODS[self.INDEX]")
    lines.append("        inner = ', '.join(f'{s}={getattr(self, s, None)!r}' for s in cls.__slots__)")
    lines.append("        return f'{cls.__name__}({inner})'")
    lines.append("")
    lines.append("")
    out = "\n".join(lines) + "\n" + "\n\n".join(body)
    out += "\n\nMETHODS = {m.INDEX: m for m in (" + ", ".join(all_methods) + ")}\n"
    return out


def main(argv: list[str]) -> int:
    spec_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_SPEC
    spec = json.loads(spec_path.read_text())
    OUTPUT.write_text(generate(spec))
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
