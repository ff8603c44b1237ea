"""Child processes the tests stop with Ctrl-C (SIGINT), as an operator at a terminal does."""

from __future__ import annotations

import signal


def interruptible() -> None:
    """`preexec_fn`: SIGINT back at its default in the child.

    A shell that starts a command in the background (`make test &`, `nohup`) starts it
    with SIGINT ignored, and an ignored signal stays ignored across exec: the child
    would never see the test's Ctrl-C and the test would wait out its timeout. A
    terminal's Ctrl-C reaches a foreground process whose SIGINT is at its default.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
