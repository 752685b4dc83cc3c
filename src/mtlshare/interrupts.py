"""Interrupts held back: Ctrl-C (SIGINT), SIGTERM and SIGHUP noted instead of raised while a
piece of work must not be cut (torch's import; a command stopping its worker processes). Light
on purpose: the command line uses it before torch is imported."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

# Ctrl-C, kill PID, the terminal closed (SIGHUP: POSIX)
INTERRUPTS = (
    signal.SIGINT,
    signal.SIGTERM,
    *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else []),
)


@contextlib.contextmanager
def held_interrupts(signals: tuple[int, ...] = INTERRUPTS) -> Iterator[list[int]]:
    """Within the block, each of ``signals`` that arrives is appended to the yielded list
    instead of running its handler; the handlers are put back after. Signals are only the main
    thread's to handle: in another thread nothing is held (the list stays empty). A signal
    ignored (SIG_IGN: a job started with ``&`` by a script ignores SIGINT) stays ignored."""
    held: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield held
        return
    previous = {
        number: signal.signal(number, lambda signum, frame: held.append(signum))
        for number in signals
        if signal.getsignal(number) != signal.SIG_IGN
    }
    try:
        yield held
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def forget_caught_interrupt() -> None:
    """Let the exit code be the one the command chose after it caught an interrupt. CPython
    (3.11 at least) notes an interrupt that leaves any ``exec`` or ``eval`` of a string
    (dataclasses and named tuples make their methods so, at import) even when it is caught, and
    under ``python -m`` the process then ends by SIGINT (returncode -2) instead of exiting 130,
    if Ctrl-C came at such a moment. A string evaluated without an interrupt clears that note."""
    eval("None")
