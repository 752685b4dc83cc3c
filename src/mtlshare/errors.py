"""The project's own error types: the CLI turns them into one line and exit code 2; and the
checks that several config sections share: a seed's range, a date, a data file's path."""

from __future__ import annotations

import datetime
import numbers
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

# what a command prints when Ctrl-C stops it (mtlshare.cli, and __main__ while the CLI imports)
INTERRUPTED = "mtlshare: interrupted; the last checkpoint is whole (resume with --resume)"
# the same for a command that keeps no checkpoint to resume from (a forecasting study, predict)
INTERRUPTED_FOR_GOOD = "mtlshare: interrupted; this command cannot resume: run it again"


class MtlshareError(Exception):
    """Any error caused by the user's input (config, data, checkpoint), not by a bug."""


class ConfigError(MtlshareError):
    """A config key is unknown, mistyped or out of range."""


class DataError(MtlshareError):
    """A data file is missing or malformed. The message names the file and line when known."""

    def __init__(
        self, message: str, path: str | PathLike[str] | None = None, line: int | None = None
    ) -> None:
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(where + message)
        self.path = path
        self.line = line


class MissingDataFile(ConfigError, DataError):
    """A data file that a config key names is not there (``data_file``): a ``DataError``, as
    a reader's "no such file" is, and a ``ConfigError`` whose message starts with the key, so
    that the command line names the line or the override that set it, as for any setting."""


class UnseenTagsWarning(UserWarning):
    """Gold tags of a ``split``'s file that training never saw, for ``task``, kept as classes no
    prediction matches (``data.unseen_tags = "map"``): that split's scores count them as
    errors, so ``evaluate`` repeats the warning for the split it scores."""

    def __init__(self, message: str, task: str, split: str) -> None:
        super().__init__(message)
        self.task = task
        self.split = split

    def __reduce__(self) -> tuple[type[UnseenTagsWarning], tuple[str, str, str]]:
        # as an error (-W error) in a worker process it is pickled back to the parent
        return type(self), (str(self), self.task, self.split)


class CheckpointError(MtlshareError):
    """A checkpoint is missing, incomplete or of a refused format."""


MAX_SEED = 2**63 - 1  # torch.manual_seed takes 64-bit seeds


def check_seed(seed: int, key: str = "seed") -> None:
    """A seed torch accepts: an integer in [0, 2**63 - 1]; else a ``ConfigError`` naming
    ``key``."""
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool):  # seeds=["0"]
        raise ConfigError(f"{key}: {seed!r} is not a seed, a whole number in [0, 2**63 - 1]")
    if not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"{key}: {seed} is not a seed in [0, 2**63 - 1]")


def one_of(allowed: Iterable[object]) -> str:
    """The allowed values of a setting as its one-line error lists them: ``a, b, c``."""
    return ", ".join(str(a) for a in allowed)


def plural(things: str, n: int) -> str:
    """``things`` (a plural noun) as the noun of ``n`` of them: singular for one."""
    return things[:-1] if n == 1 else things


def count(n: int, things: str) -> str:
    """``1 token``, ``2 tokens``, ``1,234 tokens``: a count and its noun."""
    return f"{n:,} {plural(things, n)}"


def short_repr(value: object) -> str:
    """``value``'s repr for a one-line error, cut to 40 characters (a damaged file may hold a
    number of 400 digits)."""
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def check_list(value: object, what: str) -> None:
    """A list argument of the Python API given as one string, which would be read letter by
    letter (``compare(cfg, "hard", ...)`` as the mechanisms h, a, r, d): a ``TypeError``."""
    if isinstance(value, str):
        raise TypeError(f"{what}: give a list, not the string {value!r}")


def parse_day(text: str, key: str) -> datetime.date:
    """``text`` as an ISO date (``2012-10-01``); else a ``ConfigError`` naming ``key``."""
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{key}: {text!r} is not a date like 2012-10-01") from None


def data_file(path: str, base_dir: str | PathLike[str] | None, key: str) -> Path:
    """The file that the config ``key`` names: ``path``, a relative one read from ``base_dir``
    (the config file's folder, not the current one: an override is read from there too; or
    ``evaluate``'s and ``predict``'s ``--data-dir``). One that is not there is a
    ``MissingDataFile`` naming the key, and the folder a relative path was read from:
    ``data.train: /cfg/../train.txt: no such file (relative paths are read from /cfg: the
    config's folder, or the --data-dir of evaluate and predict)``. A folder or an unreadable
    file is its reader's to name."""
    given = Path(path)
    if given.is_absolute() or base_dir is None:
        found, hint = given, ""
    else:
        found = Path(base_dir) / given
        hint = (
            f" (relative paths are read from {base_dir}: the config's folder, or the --data-dir "
            "of evaluate and predict)"
        )
    try:
        there = found.exists()
    except OSError:  # a name too long, a folder it may not enter: the reader names the error
        there = True
    if not there:
        raise MissingDataFile(f"{key}: {found}: no such file{hint}")
    return found


def check_output_file(out: str | Path) -> None:
    """Refuse, before anything is read, an ``--out`` that cannot take a file: a folder, a path
    whose folder does not exist, or anything but a file (a device such as ``/dev/null``, a
    named pipe), which writing whole through a rename would replace by a file. A symbolic link
    is followed: its target is what gets written."""
    out = Path(out)
    target = out.resolve()
    if target.is_dir():
        raise MtlshareError(f"--out {out}: a folder; name the file to write")
    if not target.parent.is_dir():
        raise MtlshareError(f"--out {out}: the folder {out.parent} does not exist")
    if target.exists() and not target.is_file():
        raise MtlshareError(
            f"--out {out}: not a file (a device or a named pipe), which the output, written "
            "whole through a rename, would replace; name a file"
        )
