"""The ``warrenmq`` command: ``warrenmq`` (or ``warrenmq serve``) runs the broker.

Theory of operation: argparse builds a :class:`~warrenmq.config.BrokerConfig`
from flags over environment variables over an optional TOML file, configures
logging, and calls :func:`warrenmq.app.run`.
"""
from __future__ import annotations

import argparse
import logging
import sys

from .. import __version__
from ..app import run
from ..config import BrokerConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="warrenmq", description="WarrenMQ, an AMQP 0-9-1 broker.")
    p.add_argument("--version", action="version", version=f"warrenmq {__version__}")
    sub = p.add_subparsers(dest="command")
    serve = sub.add_parser("serve", help="run the broker (the default)")
    for parser in (p, serve):
        parser.add_argument("--host", help="address to listen on (default 0.0.0.0)")
        parser.add_argument("--port", type=int, help="AMQP port (default 5672)")
        parser.add_argument("--log-level", help="debug, info, warning or error (default info)")
        parser.add_argument("--config", help="TOML config file (also WARRENMQ_CONFIG)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = BrokerConfig.load(args.config, host=args.host, port=args.port, log_level=args.log_level)
    except (OSError, ValueError) as e:
        print(f"warrenmq: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run(config)
    except OSError as e:
        print(f"warrenmq: cannot listen on {config.host}:{config.port}: {e}", file=sys.stderr)
        return 1
    return 0
