"""``python -m warrenmq``: the same as the ``warrenmq`` command."""
import sys

from .cli.main import main

sys.exit(main())
