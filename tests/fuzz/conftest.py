"""The fuzz suite shares the protocol tests' wire-format reference (tests/protocol/amqp_reference.py)."""
import sys
from pathlib import Path

_PROTOCOL = str(Path(__file__).resolve().parents[1] / "protocol")
_HERE = str(Path(__file__).resolve().parent)
for p in (_PROTOCOL, _HERE):
    if p not in sys.path:
        sys.path.insert(0, p)
