"""Dynamic shovels as RabbitMQ's shovel plugin defines them (docs/scale-out.md).

params.py validates the ``shovel`` runtime parameter, worker.py runs one shovel over two links
(links/: this broker through the domain API, another through aiormq), manager.py is the parameter
component and the registry the management API and ``warrenmq ctl shovel_status`` read.
"""
from .manager import ShovelManager  # noqa: F401
