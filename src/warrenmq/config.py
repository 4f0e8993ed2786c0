"""One configuration object, with RabbitMQ-compatible defaults.

Theory of operation: :class:`BrokerConfig` is a plain dataclass.  Values come,
in increasing precedence, from the defaults here, a TOML config file
(``--config`` or ``WARRENMQ_CONFIG``), ``WARRENMQ_*`` environment variables
(e.g. ``WARRENMQ_PORT=5673``) and command-line flags.

Definitions: ``definitions_file`` (``--definitions``, ``WARRENMQ_DEFINITIONS``)
is imported at every boot (:func:`warrenmq.app.load_definitions`).

Logging: ``log_level``, ``log_file`` and ``log_format`` are applied by the
``warrenmq`` command (:func:`warrenmq.logs.configure`); an embedded broker
leaves its host process's logging alone.

Management: the HTTP API (:mod:`warrenmq.management`) listens on
``management_host``/``management_port`` (15672) when ``management_enabled``,
over HTTPS when ``management_tls_certfile`` and ``management_tls_keyfile`` are
set (:meth:`BrokerConfig.management_tls_context`).

Prometheus: metrics (:mod:`warrenmq.prometheus`) on ``prometheus_host``/
``prometheus_port`` (15692) when ``prometheus_enabled``.

TLS: a second listener (AMQPS, RabbitMQ's ``listeners.ssl``) starts on
``tls_port`` when ``tls_certfile`` and ``tls_keyfile`` are set;
:meth:`BrokerConfig.tls_context` builds its :class:`ssl.SSLContext`.
"""
from __future__ import annotations

import dataclasses
import os
import ssl
from dataclasses import dataclass, field

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    try:  # Python 3.10: the same parser from PyPI (a dependency there, pyproject.toml)
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None


#: the largest max_message_size RabbitMQ accepts (512 MiB)
MAX_MESSAGE_SIZE_LIMIT = 536870912


#: the smallest flow_recbuf accepted (see BrokerConfig.__post_init__)
MIN_FLOW_RECBUF = 64 * 1024


@dataclass
class BrokerConfig:
    host: str = "0.0.0.0"
    port: int = 5672
    log_level: str = "info"
    # where the ``warrenmq`` command logs ("": stderr) and how: "text" (RabbitMQ's line shape) or "json"
    # (one object a line); the file is reopened when logrotate moves it (docs/logging.md)
    log_file: str = ""
    log_format: str = "text"
    # connection tuning offered to clients (RabbitMQ's defaults)
    channel_max: int = 2047
    frame_max: int = 131072
    heartbeat: int = 60
    # the largest message body a publisher may send (RabbitMQ's max_message_size: 128 MiB, at most 512 MiB);
    # checked when the content header announces the size, before any of the body is buffered
    max_message_size: int = 134217728
    # the default user and vhost, created on first boot only (an empty definitions database), as RabbitMQ does;
    # given on a later boot they are ignored, and a warning says so
    default_user: str = "guest"
    default_pass: str = "guest"
    default_vhost: str = "/"
    # guest may only connect from loopback, as in RabbitMQ (loopback_users)
    loopback_users: list = field(default_factory=lambda: ["guest"])
    # the memory alarm (RabbitMQ's vm_memory_high_watermark): publishers are blocked (connection.blocked)
    # and queues page bodies to disk while the process's memory (RSS) is above the watermark:
    # a fraction of the memory available (physical RAM, or the cgroup's limit when lower) ...
    vm_memory_high_watermark: float = 0.4  # vm_memory_high_watermark.relative
    # ... or, when set, an absolute size in bytes ("1GB", "512MiB" also read: vm_memory_high_watermark.absolute)
    vm_memory_high_watermark_absolute: int = 0
    memory_high_watermark: int = 0  # the former key (bytes): read as vm_memory_high_watermark_absolute
    # queues start moving messages to disk from this share of the watermark (RabbitMQ's default, 0.5)
    vm_memory_high_watermark_paging_ratio: float = 0.5
    # bytes a connection may have waiting in its socket buffer before deliveries pause
    write_buffer_high: int = 1024 * 1024
    write_buffer_low: int = 256 * 1024
    # credit flow (RabbitMQ's credit_flow_default_credit): a queue with consumers and more than flow_high
    # ready messages stops reading the connections publishing into it until it is below flow_low (0 = off)
    flow_high: int = 2000
    flow_low: int = 1000
    # SO_RCVBUF given to a connection the first time it is throttled, so what it sent does not wait in
    # a multi-MiB autotuned socket buffer (0 = leave the OS autotuning alone).  The smallest that works
    # (MIN_FLOW_RECBUF): 4 publishers -> 1 queue held 27% fewer messages in flight than with 128 KiB
    flow_recbuf: int = 64 * 1024
    # a channel whose delivery stays unacknowledged this long is closed (RabbitMQ's consumer_timeout,
    # 30 minutes in 3.10); 0 turns the check off
    consumer_timeout_ms: int = 1_800_000
    # connection lifecycle (RabbitMQ's rabbit_reader): a connection must complete the AMQP handshake within
    # handshake_timeout_ms (RabbitMQ's handshake_timeout, 10 s); a connection the broker is closing is
    # dropped when the client has not answered connection.close within close_timeout_ms (RabbitMQ's
    # CLOSING_TIMEOUT, 30 s); a failed login of a client without the authentication_failure_close
    # capability is closed after auth_failure_delay_ms, unread meanwhile (RabbitMQ's SILENT_CLOSE_DELAY, 3 s)
    handshake_timeout_ms: int = 10_000
    close_timeout_ms: int = 30_000
    auth_failure_delay_ms: int = 3_000
    use_uvloop: bool = True
    # durability: where persistent messages and durable definitions live ("" keeps everything in memory)
    data_dir: str = field(default_factory=lambda: default_data_dir())
    # fsync every group commit; false is faster and UNSAFE: a crash of the machine loses confirmed messages
    fsync: bool = True
    # publishers are blocked while the data directory's disk has less free space than this (RabbitMQ: 50 MB)
    disk_free_limit: int = 50_000_000
    # paging: a queue keeps at most this many message bodies in memory; the rest wait on disk
    # (needs data_dir; 0 = no limit)
    queue_max_in_memory: int = 50_000
    # TLS listener (RabbitMQ's listeners.ssl.default and ssl_options): on when certfile and keyfile are set
    tls_port: int = 5671
    tls_certfile: str = ""  # the server's certificate chain (PEM)
    tls_keyfile: str = ""  # its private key (PEM)
    tls_cafile: str = ""  # CA certificates that client certificates are verified against (PEM)
    tls_verify_peer: bool = False  # ask clients for a certificate and verify it (ssl_options.verify = verify_peer)
    tls_fail_if_no_peer_cert: bool = False  # with verify_peer: refuse clients that present no certificate
    # a TLS handshake not done within this is dropped (RabbitMQ's ssl_handshake_timeout, 5 s); failed TLS
    # handshakes are logged at most once a minute per peer address
    tls_handshake_timeout_ms: int = 5_000
    # the user name a verified client certificate logs in as where a protocol allows it (RabbitMQ's
    # ssl_cert_login_from): "distinguished_name" (the subject, RFC 4514) or "common_name" (broker/certlogin.py)
    ssl_cert_login_from: str = "distinguished_name"
    # the management HTTP API (RabbitMQ's management plugin, docs/management.md): served by the ``warrenmq``
    # command on management_host (default: the AMQP host) and management_port; the embedded test broker
    # serves it only when asked (EmbeddedBroker(management_port=0))
    management_enabled: bool = True
    management_host: str = ""
    management_port: int = 15672
    # HTTPS for the management API (RabbitMQ's management.ssl.certfile/keyfile): on when both are set, on
    # management_port (RabbitMQ's convention for HTTPS is 15671)
    management_tls_certfile: str = ""
    management_tls_keyfile: str = ""
    # Prometheus metrics (RabbitMQ's prometheus plugin, docs/prometheus.md): /metrics, /metrics/per-object and
    # /metrics/detailed on prometheus_host (default: the management host, else the AMQP host) and
    # prometheus_port (15692), no authentication; served by the ``warrenmq`` command unless
    # prometheus_enabled = false (--no-prometheus); the embedded test broker only when asked
    prometheus_enabled: bool = True
    prometheus_host: str = ""
    prometheus_port: int = 15692
    # STOMP 1.0-1.2 (RabbitMQ's STOMP plugin, docs/stomp.md): served by the ``warrenmq`` command on
    # stomp_host (default: the AMQP host) and stomp_port; the embedded broker only when asked (stomp=True)
    stomp_enabled: bool = True
    stomp_host: str = ""
    stomp_port: int = 61613
    # STOMP over TLS (RabbitMQ's stomp.listeners.ssl): on stomps_port when STOMP is on and the TLS listener's
    # certificate is configured (tls_certfile/tls_keyfile, with tls_cafile/tls_verify_peer as for AMQPS)
    stomps_port: int = 61614
    # a CONNECT without a login header over TLS with a verified client certificate logs in as the certificate's
    # name (RabbitMQ's stomp.ssl_cert_login; needs tls_verify_peer), without a password
    stomp_ssl_cert_login: bool = False
    # Web STOMP (STOMP over WebSocket, RabbitMQ's web_stomp plugin): ws://web_stomp_host:web_stomp_port/ws;
    # on with STOMP unless web_stomp_enabled = false (--no-stomp turns off both)
    web_stomp_enabled: bool = True
    web_stomp_host: str = ""
    web_stomp_port: int = 15674
    # Web STOMP over TLS (RabbitMQ's web_stomp.ssl.port): wss://web_stomp_host:web_stomps_port/ws when Web STOMP
    # is on and the TLS listener's certificate is configured (its ssl context, as for AMQPS)
    web_stomps_port: int = 15673
    # MQTT 3.1/3.1.1/5.0 (RabbitMQ's MQTT plugin, docs/mqtt.md): served by the ``warrenmq`` command on
    # mqtt_host (default: the AMQP host) and mqtt_port; the embedded test broker only when asked
    # (EmbeddedBroker(mqtt=True)).  Names as RabbitMQ's mqtt.* settings
    mqtt_enabled: bool = True
    mqtt_host: str = ""
    mqtt_port: int = 1883
    # MQTT over TLS (RabbitMQ's mqtt.listeners.ssl): on mqtts_port when MQTT is on and the TLS listener's
    # certificate is configured (tls_certfile/tls_keyfile, with tls_cafile/tls_verify_peer as for AMQPS)
    mqtts_port: int = 8883
    mqtt_exchange: str = "amq.topic"  # mqtt.exchange
    mqtt_vhost: str = "/"  # mqtt.vhost: for user names without "vhost:"
    mqtt_allow_anonymous: bool = True  # mqtt.allow_anonymous: no user name logs in as the default user
    mqtt_default_user: str = "guest"
    mqtt_default_pass: str = "guest"
    # a CONNECT without user name and password over TLS with a verified client certificate logs in as the
    # certificate's name (RabbitMQ's mqtt.ssl_cert_login; needs tls_verify_peer; ssl_cert_login_from), before
    # the anonymous login
    mqtt_ssl_cert_login: bool = False
    mqtt_prefetch: int = 10  # mqtt.prefetch: unacknowledged QoS 1/2 deliveries per subscription queue
    mqtt_subscription_ttl_ms: int = 86_400_000  # mqtt.subscription_ttl: x-expires of a persistent session's queue
    mqtt_max_packet_size: int = 268_435_455  # after the login (64 KiB before it)
    mqtt_connect_timeout_ms: int = 10_000  # a socket that sends no CONNECT within this is closed
    # MQTT 5: QoS 1/2 publishes a client may have unacknowledged (the CONNACK's receive maximum; one more
    # is DISCONNECT 0x93), and the server keep alive (seconds, 0: the client's own; else a client asking
    # for none or more gets this in the CONNACK, as mosquitto's max_keepalive)
    mqtt_receive_maximum: int = 1024
    mqtt_server_keepalive: int = 0
    # MQTT 5: the Response Information a CONNACK carries when the CONNECT asks for it (Request Response
    # Information 1): {client_id}, {username} and {vhost} are replaced; "" sends none (docs/mqtt.md)
    mqtt_response_information: str = "response/{client_id}"
    # Web MQTT (MQTT over WebSocket, RabbitMQ's web_mqtt plugin): ws://web_mqtt_host:web_mqtt_port/ws,
    # subprotocol mqtt; on with MQTT unless web_mqtt_enabled = false (--no-mqtt turns off both)
    web_mqtt_enabled: bool = True
    web_mqtt_host: str = ""
    web_mqtt_port: int = 15675
    # Web MQTT over TLS (RabbitMQ's web_mqtt.ssl.port): wss://web_mqtt_host:web_mqtts_port/ws, likewise
    web_mqtts_port: int = 15676
    # statistics (docs/management.md "Statistics"): message rates sampled every statistics_interval_ms
    # (RabbitMQ's collect_statistics_interval, 5000 there); statistics_enabled = false (--no-statistics)
    # leaves message_stats and rates out of the API, as RabbitMQ with its metrics collector disabled
    statistics_enabled: bool = True
    statistics_interval_ms: int = 1000
    # a definitions file (RabbitMQ's load_definitions, docs/definitions.md) imported at every boot, after the
    # durable definitions are recovered and before clients are accepted; a directory: each *.json in it,
    # in name order.  Also --definitions and WARRENMQ_DEFINITIONS
    definitions_file: str = ""

    @property
    def memory_watermark(self) -> int:
        """The memory alarm's watermark in bytes (absolute if set, else relative to the memory available)."""
        absolute = parse_bytes(self.vm_memory_high_watermark_absolute or self.memory_high_watermark)
        if absolute:
            return absolute
        return int(total_memory() * float(self.vm_memory_high_watermark))

    def __post_init__(self) -> None:
        if self.ssl_cert_login_from not in ("distinguished_name", "common_name"):
            raise ValueError(f"invalid ssl_cert_login_from {self.ssl_cert_login_from!r} (choose from "
                             "distinguished_name, common_name)")
        if self.log_format not in ("text", "json"):
            raise ValueError(f"invalid log_format {self.log_format!r} (choose from text, json)")
        if not 0 < self.max_message_size <= MAX_MESSAGE_SIZE_LIMIT:
            raise ValueError(f"max_message_size must be between 1 and {MAX_MESSAGE_SIZE_LIMIT} (512 MiB), "
                             f"not {self.max_message_size}")
        for name in ("flow_high", "flow_low", "flow_recbuf"):
            v = getattr(self, name)
            if v.__class__ is not int or v < 0:
                raise ValueError(f"{name} must be a non-negative integer, not {v!r}")
        if self.statistics_interval_ms.__class__ is not int or self.statistics_interval_ms < 10:
            raise ValueError(f"statistics_interval_ms must be an integer of at least 10, not "
                             f"{self.statistics_interval_ms!r}")
        if self.flow_high and self.flow_low >= self.flow_high:
            raise ValueError(f"flow_low ({self.flow_low}) must be below flow_high ({self.flow_high})")
        if 0 < self.flow_recbuf < MIN_FLOW_RECBUF:
            # below one segment of the loopback interface (MSS ~64 KiB) the window never opens by a full
            # segment: the sender waits for its 200 ms persist timer between every few messages
            raise ValueError(f"flow_recbuf must be 0 or at least {MIN_FLOW_RECBUF}, not {self.flow_recbuf}")

    @property
    def tls_enabled(self) -> bool:
        return bool(self.tls_certfile and self.tls_keyfile)

    def management_tls_context(self) -> ssl.SSLContext | None:
        """The management API's server-side SSL context (HTTPS), or ``None`` when it serves plain HTTP.
        Raises as :meth:`tls_context` does."""
        certfile, keyfile = self.management_tls_certfile, self.management_tls_keyfile
        if not (certfile and keyfile):
            if certfile or keyfile:
                raise ValueError("management TLS needs both management_tls_certfile and management_tls_keyfile")
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # TLS 1.2+, secure ciphers
        try:
            ctx.load_cert_chain(certfile, keyfile)
        except OSError as e:  # ssl.SSLError included
            raise OSError(f"cannot load management TLS certificate {certfile!r} with key {keyfile!r}: "
                          f"{e.strerror or e}") from e
        return ctx

    def tls_context(self) -> ssl.SSLContext | None:
        """The server-side SSL context of the TLS listener, or ``None`` when TLS is off.

        Raises ``OSError``/``ssl.SSLError`` for unreadable or invalid files and
        ``ValueError`` for an inconsistent configuration.
        """
        if not self.tls_enabled:
            if self.tls_certfile or self.tls_keyfile:
                raise ValueError("TLS needs both tls_certfile and tls_keyfile")
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # TLS 1.2+, secure ciphers
        try:
            ctx.load_cert_chain(self.tls_certfile, self.tls_keyfile)
        except OSError as e:  # ssl.SSLError included
            raise OSError(f"cannot load TLS certificate {self.tls_certfile!r} with key "
                          f"{self.tls_keyfile!r}: {e.strerror or e}") from e
        if self.tls_verify_peer:
            if not self.tls_cafile:
                raise ValueError("tls_verify_peer needs tls_cafile (the CA that signs client certificates)")
            try:
                ctx.load_verify_locations(self.tls_cafile)
            except OSError as e:
                raise OSError(f"cannot load TLS CA certificates {self.tls_cafile!r}: "
                              f"{e.strerror or e}") from e
            ctx.verify_mode = ssl.CERT_REQUIRED if self.tls_fail_if_no_peer_cert else ssl.CERT_OPTIONAL
        else:
            if self.tls_fail_if_no_peer_cert:
                raise ValueError("tls_fail_if_no_peer_cert needs tls_verify_peer")
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    @classmethod
    def load(cls, path: str | None = None, env: dict | None = None, **overrides) -> "BrokerConfig":
        env = os.environ if env is None else env
        values: dict = {}
        path = path or env.get("WARRENMQ_CONFIG")
        if path:
            if tomllib is None:  # pragma: no cover
                raise RuntimeError("reading a config file needs Python 3.11+ or the tomli package")
            with open(path, "rb") as f:
                data = tomllib.load(f)
            values.update(data.get("warrenmq", data))
            if "load_definitions" in values:  # RabbitMQ's name for it (rabbitmq.conf)
                values.setdefault("definitions_file", values.pop("load_definitions"))
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if "WARRENMQ_DEFINITIONS" in env:  # the short name of WARRENMQ_DEFINITIONS_FILE
            values["definitions_file"] = env["WARRENMQ_DEFINITIONS"]
        for name, f in fields.items():
            key = "WARRENMQ_" + name.upper()
            if key in env:
                values[name] = _coerce(f, env[key])
        values.update({k: v for k, v in overrides.items() if v is not None})
        unknown = set(values) - set(fields)
        if unknown:
            raise ValueError(f"unknown configuration keys: {', '.join(sorted(unknown))}")
        config = cls(**values)
        config._given = frozenset(values)
        return config

    def given(self, *names: str) -> list:
        """Which of ``names`` were set (by the config file, the environment or a flag, when the config
        came from :meth:`load`; otherwise those that differ from their defaults)."""
        given = getattr(self, "_given", None)
        if given is not None:
            return [n for n in names if n in given]
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return [n for n in names if getattr(self, n) != defaults.get(n)]


def _coerce(f, raw: str):
    t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
    if t == "int":
        return parse_bytes(raw)
    if t == "float":
        return float(raw)
    if t == "bool":
        return raw.lower() in ("1", "true", "yes", "on")
    if t == "list":
        return [x for x in raw.split(",") if x]
    return raw


def default_data_dir() -> str:
    """``$XDG_DATA_HOME/warrenmq`` (``~/.local/share/warrenmq``), the default data directory."""
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return os.path.join(base, "warrenmq")


def physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 << 30


_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1000, "KIB": 1024, "KI": 1024, "M": 1 << 20, "MB": 1000 ** 2,
          "MIB": 1 << 20, "MI": 1 << 20, "G": 1 << 30, "GB": 1000 ** 3, "GIB": 1 << 30, "GI": 1 << 30,
          "T": 1 << 40, "TB": 1000 ** 4, "TIB": 1 << 40}


def parse_bytes(value) -> int:
    """A size in bytes: an int, or a string with RabbitMQ's units ("1GB" = 10^9, "1GiB" and "1G" = 2^30)."""
    if isinstance(value, int):
        return value
    s = str(value).strip().replace("_", "")
    i = len(s)
    while i and not s[i - 1].isdigit():
        i -= 1
    unit = s[i:].strip().upper()
    if unit not in _UNITS or not s[:i]:
        raise ValueError(f"not a size in bytes: {value!r}")
    return int(s[:i]) * _UNITS[unit]


def cgroup_memory_limit(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> int:
    """The memory limit of this process's cgroup (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``,
    the lowest on the way up), or 0 when there is none."""
    limits = []
    try:
        with open(proc_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return 0
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":  # cgroup v2
            base, name = os.path.join(root, path.lstrip("/")), "memory.max"
            top = root
        elif "memory" in controllers.split(","):
            top = os.path.join(root, "memory")
            base, name = os.path.join(top, path.lstrip("/")), "memory.limit_in_bytes"
        else:
            continue
        d = base
        while True:
            try:
                with open(os.path.join(d, name)) as f:
                    raw = f.read().strip()
                if raw and raw != "max":
                    limits.append(int(raw))
            except (OSError, ValueError):
                pass
            if os.path.normpath(d) == os.path.normpath(top) or len(d) <= len(top):
                break
            d = os.path.dirname(d)
    limits = [n for n in limits if 0 < n < (1 << 60)]  # v1 says "no limit" with a huge number
    return min(limits) if limits else 0


def total_memory() -> int:
    """The memory the broker may use: physical RAM, or the cgroup's limit when that is lower
    (what RabbitMQ's relative watermark is a fraction of)."""
    phys = physical_memory()
    limit = cgroup_memory_limit()
    return min(phys, limit) if limit else phys
