"""One configuration object, with RabbitMQ-compatible defaults.

Theory of operation: :class:`BrokerConfig` is a plain dataclass.  Values come,
in increasing precedence, from the defaults here, a TOML config file
(``--config`` or ``WARRENMQ_CONFIG``), ``WARRENMQ_*`` environment variables
(e.g. ``WARRENMQ_PORT=5673``) and command-line flags.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    tomllib = None


@dataclass
class BrokerConfig:
    host: str = "0.0.0.0"
    port: int = 5672
    log_level: str = "info"
    # connection tuning offered to clients (RabbitMQ's defaults)
    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    # the default user and vhost created at start, as RabbitMQ does
    default_user: str = "guest"
    default_pass: str = "guest"
    default_vhost: str = "/"
    # guest may only connect from loopback, as in RabbitMQ (loopback_users)
    loopback_users: list = field(default_factory=lambda: ["guest"])
    # publishers are blocked (connection.blocked) while queued message bytes exceed this
    memory_high_watermark: int = 0  # bytes; 0 = 40% of physical memory
    # bytes a connection may have waiting in its socket buffer before deliveries pause
    write_buffer_high: int = 1024 * 1024
    write_buffer_low: int = 256 * 1024
    use_uvloop: bool = True

    @classmethod
    def load(cls, path: str | None = None, env: dict | None = None, **overrides) -> "BrokerConfig":
        env = os.environ if env is None else env
        values: dict = {}
        path = path or env.get("WARRENMQ_CONFIG")
        if path:
            if tomllib is None:  # pragma: no cover
                raise RuntimeError("reading a config file needs Python 3.11+")
            with open(path, "rb") as f:
                data = tomllib.load(f)
            values.update(data.get("warrenmq", data))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name, f in fields.items():
            key = "WARRENMQ_" + name.upper()
            if key in env:
                values[name] = _coerce(f, env[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(fields)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        return cls(**values)


def _coerce(f, raw: str):
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
    if t == "int":
        return int(raw)
    if t == "bool":
        return raw.lower() in ("1", "true", "yes", "on")
    if t == "list":
        return [x for x in raw.split(",") if x]
    return raw


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30
