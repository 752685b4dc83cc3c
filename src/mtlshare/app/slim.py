"""``mtlshare slim``: free the disk under finished runs and keep them usable.

A run keeps ``checkpoint/best`` (the model selected on dev) and ``checkpoint/last`` (the last
epoch's weights with the optimizer's state, about twice ``best``'s size), and a sparse run its
search's checkpoints (``search``, ``search-rewind``, ``search-task-TASK``). Once the run has
finished, only ``best`` is read: by ``predict``, ``evaluate``, ``masks``, ``add-task``,
``curves``, ``compare --resume`` (which reads finished runs back) and ``single_subnet`` (the
sparse run's masks). ``last`` is read again only to train on to a higher ``train.epochs``, and
the search's only to resume a cut search. ``slim`` removes those from every finished run under a
folder, each under its run's lock (a run another command writes or reads is left alone, and
said so), and never touches a run that has not finished: it resumes from ``last``.

Each checkpoint goes by a rename to a hidden name first, then the removal: a removal cut
half-way leaves no damaged checkpoint under a name anything reads (a later ``slim`` removes the
rest).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from mtlshare.errors import MtlshareError, count
from mtlshare.sharing.sparse.driver import CHECKPOINT as SEARCH
from mtlshare.training.folder import CHECKPOINTS, CONFIG, RunFolder
from mtlshare.training.state import BEST, LAST

TRASH = ".slim-"  # the prefix a checkpoint is renamed to before it is removed


@dataclass
class Slimmed:
    """What ``slim`` did (or, dry, would do) under a folder: per run, the checkpoints removed
    and their bytes; the runs left whole, with the reason."""

    removed: dict[Path, tuple[list[str], int]] = field(default_factory=dict)
    unfinished: list[Path] = field(default_factory=list)
    in_use: dict[Path, str] = field(default_factory=dict)
    without_best: list[Path] = field(default_factory=list)
    runs: int = 0

    @property
    def freed(self) -> int:
        return sum(size for _, size in self.removed.values())


def removable(name: str) -> bool:
    """Whether a checkpoint folder's entry ``name`` is one a finished run no longer reads:
    ``last`` and the search's, with their ``.tmp`` and ``.old`` twins, and what a cut ``slim``
    left."""
    if name.startswith(TRASH):
        return True
    base = name.removesuffix(".tmp").removesuffix(".old")
    return base in (LAST, SEARCH) or base.startswith(f"{SEARCH}-")


def run_folders(root: Path) -> list[Path]:
    """The run folders at or under ``root`` (a ``config.toml`` beside a checkpoint folder), in
    sorted order; links are not followed."""
    found = []
    for here, dirs, _ in os.walk(root):
        dirs.sort()
        path = Path(here)
        if CHECKPOINTS in dirs and (path / CONFIG).is_file():
            found.append(path)
        dirs[:] = [d for d in dirs if d != CHECKPOINTS]
    return found


def slim(root: str | Path, *, dry_run: bool = False) -> Slimmed:
    """Remove ``checkpoint/last`` and the sparse search's checkpoints from every finished run
    at or under ``root``; see the module docstring. ``dry_run``: say what would go, remove
    nothing."""
    root = Path(root)
    if not root.is_dir():
        raise MtlshareError(f"{root}: no such folder")
    runs = run_folders(root)
    if not runs:
        raise MtlshareError(
            f"{root}: holds no run folder (a config.toml beside a {CHECKPOINTS}/ folder); "
            "runs kept without their checkpoints have nothing to free"
        )
    done = Slimmed(runs=len(runs))
    for path in runs:
        folder = RunFolder(path)
        if not folder.finished:
            done.unfinished.append(path)
            continue
        if not folder.has_checkpoint(BEST):
            done.without_best.append(path)
            continue
        if dry_run:
            _note(done, path, _victims(folder))
            continue
        try:
            folder.open()  # no command may write or read the run meanwhile
        except MtlshareError as e:
            done.in_use[path] = str(e)
            continue
        try:
            if folder.finished:  # (still: it was not given more epochs before the lock)
                victims = _victims(folder)
                _note(done, path, victims)
                for victim in victims:
                    _remove(victim)
            else:
                done.unfinished.append(path)
        finally:
            folder.close()
    return done


def _victims(folder: RunFolder) -> list[Path]:
    directory = folder.file(CHECKPOINTS)
    return sorted(p for p in directory.iterdir() if removable(p.name))


def _note(done: Slimmed, path: Path, victims: list[Path]) -> None:
    if victims:
        names = [v.name for v in victims if not v.name.startswith(TRASH)]
        done.removed[path] = (names, sum(_size(v) for v in victims))


def _size(path: Path) -> int:
    if not path.is_dir() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if not p.is_dir())


def _remove(path: Path) -> None:
    """Rename ``path`` out of every reader's way, then remove it."""
    if not path.name.startswith(TRASH):
        trash = path.with_name(TRASH + path.name)
        shutil.rmtree(trash, ignore_errors=True)
        os.replace(path, trash)
        path = trash
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def describe(done: Slimmed, root: Path, *, dry_run: bool) -> str:
    """What ``mtlshare slim`` prints: a line per run slimmed, then the totals and the runs left
    whole with the reason."""
    lines = []
    for path, (names, size) in done.removed.items():
        shown = ", ".join(f"{CHECKPOINTS}/{n}" for n in names) or "what a cut slim left"
        lines.append(f"{_relative(path, root)}: {_mb(size)} ({shown})")
    verb = "would free" if dry_run else "freed"
    lines.append(
        f"slim: {count(done.runs, 'runs')} under {root}: {verb} "
        f"{_mb(done.freed)} from {len(done.removed)} of them; every checkpoint/best kept"
    )
    for path in done.unfinished:
        lines.append(f"{_relative(path, root)}: not finished, left whole (it resumes from last)")
    for path in done.without_best:
        lines.append(f"{_relative(path, root)}: no checkpoint/best, left as it is")
    for path, why in done.in_use.items():
        lines.append(f"{_relative(path, root)}: left whole: {why}")
    return "\n".join(lines)


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path != root else str(root)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"
