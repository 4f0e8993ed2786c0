"""Ctrl-C must reach the examples that the tests interrupt (``Script.interrupt``)."""
import signal

import pytest


@pytest.fixture(autouse=True, scope="session")
def ctrl_c_reaches_examples():
    """A shell that starts a command in the background without job control (a CI runner, ``cmd &`` in a
    script) starts it with SIGINT ignored, and an ignored signal stays ignored in every child it starts:
    the examples would never see Ctrl-C. With a handler here instead, each child starts with SIGINT's
    default (exec resets handled signals), as from a terminal."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
