"""The ``warrenmq`` command: ``warrenmq`` (or ``warrenmq serve``) runs the broker.

The management HTTP API is served unless ``--no-management`` (or
``management_enabled = false``); ``--management-port 0`` picks any free port,
like ``--port 0``.  Prometheus metrics likewise, unless ``--no-prometheus``
(``--prometheus-port``, ``--prometheus-host``).

Theory of operation: argparse builds a :class:`~warrenmq.config.BrokerConfig`
from flags over environment variables over an optional TOML file, configures
logging (:mod:`warrenmq.logs`: stderr or ``--log-file``, text or JSON), and
calls :func:`warrenmq.app.run`.  The faults of a first run (a bad option or
config value, a port in use, a data directory another broker holds, one that
cannot be created, a definitions file that cannot be imported, a log file that
cannot be opened) are one line on stderr and a non-zero exit, never a
traceback; the app binds its ports before it creates anything on disk.
"""
from __future__ import annotations

import argparse
import sys

from .. import __version__
from ..app import DefinitionsFileError, run
from ..config import BrokerConfig
from ..logs import LOG_FORMATS, configure as configure_logging
from ..transport.server import ListenError

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")


def port_number(text: str) -> int:
    """argparse type of a TCP port (0: any free port)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {port} (0 to 65535)")
    return port


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warrenmq", description="WarrenMQ, an AMQP 0-9-1 broker.")
    p.add_argument("--version", action="version", version=f"warrenmq {__version__}")
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the broker (the default)")
    sub.add_parser("perf", help="load generator for AMQP brokers (see `warrenmq perf --help`)", add_help=False)
    sub.add_parser("ctl", help="rabbitmqctl's commands against a running broker (see `warrenmq ctl --help`)",
                   add_help=False)
    for parser in (p, serve):
        parser.add_argument("--host", help="address to listen on (default 0.0.0.0)")
        parser.add_argument("--port", type=port_number, help="AMQP port (default 5672)")
        parser.add_argument("--log-level", type=str.lower, choices=LOG_LEVELS, metavar="LEVEL",
                            help=f"one of {', '.join(LOG_LEVELS)} (default info)")
        parser.add_argument("--log-file", metavar="PATH",
                            help="write the log to PATH instead of stderr (reopened when logrotate moves it)")
        parser.add_argument("--log-format", type=str.lower, choices=LOG_FORMATS,
                            help="text (RabbitMQ's line shape, the default) or json (one object a line)")
        parser.add_argument("--config", help="TOML config file (also WARRENMQ_CONFIG)")
        parser.add_argument("--definitions", metavar="FILE",
                            help="import this definitions file (RabbitMQ's JSON, docs/definitions.md) at boot, "
                                 "as RabbitMQ's load_definitions (also WARRENMQ_DEFINITIONS, definitions_file)")
        store = parser.add_argument_group("durability")
        store.add_argument("--data-dir", help="where persistent messages and durable definitions are kept "
                           "(default $XDG_DATA_HOME/warrenmq, i.e. ~/.local/share/warrenmq)")
        store.add_argument("--in-memory", action="store_true", help="keep nothing on disk (like --data-dir '')")
        store.add_argument("--no-fsync", action="store_true",
                           help="do not fsync group commits: faster, and UNSAFE (a machine crash loses "
                                "confirmed messages); for CI-style runs only")
        tls = parser.add_argument_group("TLS (AMQPS) listener, on when --tls-certfile and --tls-keyfile are given")
        tls.add_argument("--tls-port", type=port_number, help="AMQPS port (default 5671)")
        tls.add_argument("--tls-certfile", help="server certificate chain, PEM")
        tls.add_argument("--tls-keyfile", help="server private key, PEM")
        tls.add_argument("--tls-cafile", help="CA certificates to verify client certificates with, PEM")
        tls.add_argument("--tls-verify-peer", action="store_true", default=None,
                         help="ask clients for a certificate and verify it against --tls-cafile")
        tls.add_argument("--tls-fail-if-no-peer-cert", action="store_true", default=None,
                         help="with --tls-verify-peer: refuse clients that present no certificate")
        mgmt = parser.add_argument_group("management HTTP API (docs/management.md), on by default")
        mgmt.add_argument("--management-port", type=port_number,
                          help="HTTP port of the management API (default 15672; 0: any free port)")
        mgmt.add_argument("--management-host", help="address the management API listens on (default: --host)")
        mgmt.add_argument("--no-management", action="store_true", help="do not serve the management API")
        mgmt.add_argument("--management-tls-certfile",
                          help="serve the management API over HTTPS with this certificate chain (PEM)")
        mgmt.add_argument("--management-tls-keyfile", help="the HTTPS certificate's private key (PEM)")
        stomp = parser.add_argument_group("STOMP 1.0-1.2 listener (docs/stomp.md), on by default")
        stomp.add_argument("--stomp-port", type=port_number, help="STOMP port (default 61613; 0: any free port)")
        stomp.add_argument("--stomp-host", help="address the STOMP listener binds (default: --host)")
        stomp.add_argument("--stomps-port", type=port_number,
                           help="STOMP over TLS port (default 61614; on when --tls-certfile and --tls-keyfile are "
                                "given, with the AMQPS listener's TLS options; 0: any free port)")
        stomp.add_argument("--no-stomp", action="store_true", help="do not listen for STOMP (nor Web STOMP)")
        stomp.add_argument("--web-stomp-port", type=port_number,
                           help="Web STOMP (WebSocket, path /ws) port (default 15674; 0: any free port)")
        stomp.add_argument("--web-stomp-host", help="address the Web STOMP listener binds (default: --host)")
        stomp.add_argument("--web-stomps-port", type=port_number,
                           help="Web STOMP over TLS port, wss://host:PORT/ws (default 15673; on when --tls-certfile "
                                "and --tls-keyfile are given; 0: any free port)")
        stomp.add_argument("--no-web-stomp", action="store_true", help="do not serve Web STOMP")
        mgmt.add_argument("--no-statistics", action="store_true",
                          help="no message rates or message_stats in the management API (statistics_enabled)")
        prom = parser.add_argument_group("Prometheus metrics (docs/prometheus.md), on by default")
        prom.add_argument("--prometheus-port", type=port_number,
                          help="HTTP port of /metrics (default 15692; 0: any free port)")
        prom.add_argument("--prometheus-host",
                          help="address the metrics listen on (default: the management host, else --host)")
        prom.add_argument("--no-prometheus", action="store_true", help="do not serve Prometheus metrics")
        mqtt = parser.add_argument_group("MQTT 3.1.1 and 5.0 (docs/mqtt.md), on by default")
        mqtt.add_argument("--mqtt-port", type=port_number, help="MQTT port (default 1883; 0: any free port)")
        mqtt.add_argument("--mqtt-host", help="address the MQTT listener binds (default: --host)")
        mqtt.add_argument("--mqtts-port", type=port_number,
                          help="MQTT over TLS port (default 8883; on when --tls-certfile and --tls-keyfile are "
                               "given, with the AMQPS listener's TLS options; 0: any free port)")
        mqtt.add_argument("--web-mqtt-port", type=port_number,
                          help="Web MQTT port, ws://host:PORT/ws (default 15675; 0: any free port)")
        mqtt.add_argument("--web-mqtt-host", help="address Web MQTT listens on (default: --host)")
        mqtt.add_argument("--web-mqtts-port", type=port_number,
                          help="Web MQTT over TLS port, wss://host:PORT/ws (default 15676; on when --tls-certfile "
                               "and --tls-keyfile are given; 0: any free port)")
        mqtt.add_argument("--no-web-mqtt", action="store_true", help="do not serve Web MQTT")
        mqtt.add_argument("--no-mqtt", action="store_true", help="do not serve MQTT")
    return p


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["perf"]:
        from .perf import main as perf_main
        return perf_main(argv[1:])
    if argv[:1] == ["ctl"]:
        from .ctl import main as ctl_main
        return ctl_main(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = BrokerConfig.load(args.config, host=args.host, port=args.port, log_level=args.log_level,
                                   log_file=args.log_file, log_format=args.log_format,
                                   tls_port=args.tls_port, tls_certfile=args.tls_certfile,
                                   tls_keyfile=args.tls_keyfile, tls_cafile=args.tls_cafile,
                                   tls_verify_peer=args.tls_verify_peer,
                                   tls_fail_if_no_peer_cert=args.tls_fail_if_no_peer_cert,
                                   management_port=args.management_port, management_host=args.management_host,
                                   management_enabled=False if args.no_management else None,
                                   management_tls_certfile=args.management_tls_certfile,
                                   management_tls_keyfile=args.management_tls_keyfile,
                                   statistics_enabled=False if args.no_statistics else None,
                                   prometheus_port=args.prometheus_port, prometheus_host=args.prometheus_host,
                                   prometheus_enabled=False if args.no_prometheus else None,
                                   stomp_port=args.stomp_port, stomp_host=args.stomp_host,
                                   stomps_port=args.stomps_port,
                                   stomp_enabled=False if args.no_stomp else None,
                                   web_stomp_port=args.web_stomp_port, web_stomp_host=args.web_stomp_host,
                                   web_stomps_port=args.web_stomps_port,
                                   web_stomp_enabled=False if args.no_web_stomp else None,
                                   data_dir="" if args.in_memory else args.data_dir,
                                   fsync=False if args.no_fsync else None,
                                   definitions_file=args.definitions, mqtt_port=args.mqtt_port, mqtt_host=args.mqtt_host,
                                   mqtts_port=args.mqtts_port,
                                   web_mqtt_port=args.web_mqtt_port, web_mqtt_host=args.web_mqtt_host,
                                   web_mqtts_port=args.web_mqtts_port,
                                   web_mqtt_enabled=False if args.no_web_mqtt else None,
                                   mqtt_enabled=False if args.no_mqtt else None)
        config.tls_context()  # report bad TLS files or options before starting
        if config.management_enabled:
            config.management_tls_context()
        if str(config.log_level).lower() not in LOG_LEVELS:  # from the environment or the config file
            raise ValueError(f"invalid log_level {config.log_level!r} (choose from {', '.join(LOG_LEVELS)})")
    except (OSError, ValueError) as e:  # ssl.SSLError is an OSError
        print(f"warrenmq: {e}", file=sys.stderr)
        return 2
    try:
        configure_logging(config.log_level, config.log_file, config.log_format)
    except OSError as e:
        print(f"warrenmq: cannot open the log file {config.log_file!r}: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        run(config)
    except DefinitionsFileError as e:
        print(f"warrenmq: {e}", file=sys.stderr)
        return 1
    except ListenError as e:
        print(f"warrenmq: {e.strerror}; is another broker running? Choose another port with {e.option}",
              file=sys.stderr)
        return 1
    except RuntimeError as e:  # the data directory's lock is held
        print(f"warrenmq: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the data directory cannot be created or opened
        where = f" ({e.filename})" if e.filename else ""
        print(f"warrenmq: cannot open the data directory{where}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0
