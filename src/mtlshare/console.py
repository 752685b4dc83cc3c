"""How a command meets its terminal: warnings and errors as one line each, SIGTERM and SIGHUP
raised as an interrupt, the streams it writes to (stdout's failures named, stderr's lines lost
rather than the command), and what each ending tells the user to do next (resume, free space or
memory, run it again). Imports nothing heavy: ``mtlshare --help`` stays torch-free."""

from __future__ import annotations

import argparse
import contextlib
import errno
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO, cast

from mtlshare.errors import (
    INTERRUPTED,
    INTERRUPTED_FOR_GOOD,
    ConfigError,
    MtlshareError,
)
from mtlshare.files import CHECKPOINTS


def show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: object = None,
    line: str | None = None,
) -> None:
    """Warnings as one line each, like errors (the data's file and line are in the message).
    One that stderr cannot take is lost, as Python's own ``showwarning`` loses it: in a worker
    process of ``compare --jobs`` (whose stderr ``main`` does not wrap) it failed the run."""
    with contextlib.suppress(OSError):
        print(f"mtlshare: warning: {message}", file=sys.stderr)


# signals that end a command as Ctrl-C does, where they would kill it outright: SIGTERM (``kill
# PID``, a scheduler's preemption, ``timeout``) and SIGHUP (its terminal closed, without nohup)
TERMINATING = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class Terminated(KeyboardInterrupt):
    """One of ``TERMINATING`` raised as an interrupt: the command stops as at Ctrl-C (workers
    stopped, files whole), saying so, and exits with 128 + the signal's number (143 for
    SIGTERM, 129 for SIGHUP, whose terminal will not show the line)."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(signum)
        self.signum = signum


def terminated(signum: int, frame: object) -> None:
    raise Terminated(signum)


def take_terminating() -> dict[int, Any]:
    """Make each of ``TERMINATING`` a ``Terminated`` in this (main) thread where it would kill
    the process outright (a signal ignored, as under ``nohup``, or handled stays so); returns
    the handlers to put back."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {
        number: signal.signal(number, terminated)
        for number in TERMINATING
        if signal.getsignal(number) == signal.SIG_DFL
    }


class Stream:
    """``sys.stdout`` or ``sys.stderr`` while a command runs. stdout holds the command's
    output: a write that fails names it (``No space left on device: '<stdout>'``; the error
    named no file). stderr holds what the command says on the way (warnings, progress, epoch
    lines): a line that cannot be written (stderr on a full disk) is lost, as Python's warnings
    and logging lose theirs, rather than stop a run whose files could still be written (it
    ended in an error it could not print either: exit 1, not a word said). A character the
    stream's encoding cannot take (``PYTHONIOENCODING=ascii`` and a path with an accent) is
    written as a backslash escape, as Python writes it on stderr, rather than end the command
    in a traceback after its files were written."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self.stream = stream
        self.name = name

    def write(self, text: str) -> int:
        try:
            try:
                return self.stream.write(text)
            except UnicodeEncodeError:
                encoding = self.stream.encoding or "ascii"
                escaped = text.encode(encoding, "backslashreplace").decode(encoding)
                self.stream.write(escaped)
                return len(text)
        except OSError as e:
            self._failed(e)
            return len(text)

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as e:
            self._failed(e)

    def _failed(self, error: OSError) -> None:
        if self.name != "<stdout>":  # stderr: the line is lost
            return
        if error.errno is None:
            raise error
        raise OSError(error.errno, error.strerror, self.name) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def command_streams() -> Iterator[bool]:
    """``sys.stdout`` and ``sys.stderr`` as ``Stream``s while the block runs, put back after;
    yields whether stdout is open (None: closed when Python started, where print writes
    nothing)."""
    streams: tuple[TextIO | None, TextIO | None] = (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = (
        cast(TextIO, None if stream is None else Stream(stream, name))
        for stream, name in zip(streams, ("<stdout>", "<stderr>"), strict=True)
    )
    try:
        yield streams[0] is not None
    finally:
        sys.stdout, sys.stderr = cast(tuple[TextIO, TextIO], streams)


def in_config(error: MtlshareError, args: argparse.Namespace | None) -> str:
    """The error's line, naming the config file when a setting of it is at fault: a setting
    refused while the model or data is built (``conditioned.layer: ...``) says which file and
    line it is in, or which override set it, as those refused while the file is read already
    do."""
    message = str(error)
    config = getattr(args, "config", None)
    if not isinstance(error, ConfigError) or not isinstance(config, str):
        return message
    if message.startswith((config, str(Path(config).resolve()), "override '")):
        return message
    from mtlshare.config import where

    return f"{where(config, getattr(args, 'overrides', None) or [], message)}: {message}"


def interrupted(args: argparse.Namespace | None) -> str:
    """What an interrupted command says: resume it, or run it again; the demo, which refuses
    a folder holding an earlier demo, names the folder to remove first where it left one."""
    if resumable(args):
        if checkpointed(args):
            return INTERRUPTED
        return f"mtlshare: interrupted before the first checkpoint was saved; {_again(args)}"
    if args is not None and args.command == "demo" and _left_a_demo(Path(args.out)):
        return (
            f"mtlshare: interrupted; the demo cannot resume: remove {args.out} (or choose "
            "another --out) and run it again"
        )
    return INTERRUPTED_FOR_GOOD


def _left_a_demo(out: Path) -> bool:
    """Whether an interrupted demo left outputs that a rerun in ``out`` would refuse (a demo
    stopped before its module was imported made none; importing it now could meet a torch
    left half-imported)."""
    demo = sys.modules.get("mtlshare.app.demo")
    return demo is not None and bool(demo.earlier_demo(out))


def when_full(error: OSError, args: argparse.Namespace | None) -> str:
    """What to do after a disk (or quota) filled up during a command that keeps checkpoints:
    the half-written one was removed and the one before it is whole (stdout on a full disk:
    the command's files are written, its output is what failed)."""
    if error.errno not in (errno.ENOSPC, errno.EDQUOT) or not resumable(args):
        return ""
    if error.filename == "<stdout>":
        return ""
    if not checkpointed(args):
        return f"; no checkpoint had been saved yet: free some space and {_again(args)}"
    return "; the last checkpoint is whole: free some space and resume with --resume"


# what torch's allocators say in the RuntimeError they raise when memory runs out (the CPU's
# "DefaultCPUAllocator: can't allocate memory: you tried to allocate N bytes", CUDA's "CUDA
# out of memory. Tried to allocate ...")
OUT_OF_MEMORY = ("can't allocate memory", "out of memory")


def out_of_memory(error: BaseException) -> str:
    """The line of ``error`` that says the memory ran out ("" where it is another error): a
    ``MemoryError`` of Python's or torch's allocator's ``RuntimeError``, which printed 60
    lines of traceback (exit 1) and none of what to do."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if isinstance(error, MemoryError):
        return lines[0] if lines else "MemoryError"
    return next((line for line in lines if any(t in line for t in OUT_OF_MEMORY)), "")


def when_out(args: argparse.Namespace | None) -> str:
    """What to do after memory ran out during a command that keeps checkpoints: its last one
    is whole (every file is written atomically)."""
    if not resumable(args):
        return ""
    if not checkpointed(args):
        return (
            "; no checkpoint had been saved yet (while the data were read or the first epoch "
            f"trained): {_again(args)} where more memory is free, or with less data "
            "(docs/performance.md: the memory a corpus takes)"
        )
    return "; the last checkpoint is whole: resume with --resume where more memory is free"


def resumable(args: argparse.Namespace | None) -> bool:
    """Whether the interrupted command keeps checkpoints that ``--resume`` continues from (when
    the command is not known yet, it may be one that does)."""
    if args is None:
        return True
    return args.command in ("run", "compare", "add-task") and getattr(args, "resumable", True)


def _again(args: argparse.Namespace | None) -> str:
    """How to start a command again that saved no checkpoint: with ``--resume`` where it made
    its folder (a plain rerun refuses a folder holding its config), else as it was."""
    out = Path(getattr(args, "out", "") or "")
    try:
        made = out.is_dir() and any(out.iterdir())
    except OSError:
        made = False
    return "run it again with --resume" if made else "run it again"


def checkpointed(args: argparse.Namespace | None) -> bool:
    """Whether a resumable command's ``--out`` holds a checkpoint (a comparison's: one of its
    runs'), so that "the last checkpoint is whole" is true; a command stopped while its data
    were read, or in its first epoch, has saved none, and ``--resume`` starts it afresh. Where
    the command is not known yet, it may have saved one."""
    if args is None or not getattr(args, "out", ""):
        return True
    out = Path(args.out)
    try:
        return out.is_dir() and any(out.glob(f"**/{CHECKPOINTS}/*/meta.json"))
    except OSError:  # a folder we cannot read: say what we would have said before
        return True
