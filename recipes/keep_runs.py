"""Keep the finished runs of a comparison folder without their checkpoints.

    python recipes/keep_runs.py runs/conll2003-paper docs/results/conll2003-paper/runs

copies, for every finished run under SRC (a folder with ``config.toml`` and ``results.json``),
its ``config.toml``, ``results.json``, ``metrics.jsonl``, an added task's ``add_task.json``,
figures and earlier results (a run ``--resume`` gave more epochs keeps them as
``results-N-epochs.json``) to the same place under
DEST, and SRC's ``comparison.md``, ``comparison.json`` and figures (``dev_curves.png``,
``gates.png``); the names are the run folder's own (``mtlshare.training.folder``). Checkpoints
and ``inference.json`` stay behind (megabytes per run). A comparison resumed in a copy of DEST
(``mtlshare compare RECIPE --out COPY --resume``) reads those runs back instead of training
them and trains only the missing ones: how the paper profiles, hours of one core, are carried
from one machine to the next. Unfinished runs are not copied.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from mtlshare.app.add_task import SUMMARY
from mtlshare.training.folder import (
    CONFIG,
    EARLIER_RESULTS,
    METRICS,
    RESULTS,
    ComparisonFolder,
    RunFolder,
)

RUN_FILES = (CONFIG, RESULTS, METRICS, SUMMARY)
TOP_FILES = (ComparisonFolder.MARKDOWN, ComparisonFolder.JSON)


def _copy(src: Path, dest: Path, names: tuple[str, ...], also: tuple[str, ...]) -> None:
    """``names`` and every file of folder ``src`` matching a pattern of ``also``, copied into
    ``dest``."""
    found = [n for n in names if (src / n).is_file()]
    found += sorted(p.name for pattern in also for p in src.glob(pattern))
    if found:
        dest.mkdir(parents=True, exist_ok=True)
    for name in found:
        shutil.copy2(src / name, dest / name)


def keep_runs(src: Path, dest: Path) -> int:
    """Copy every finished run under ``src`` to ``dest``; returns how many."""
    if not src.is_dir():
        raise SystemExit(f"keep_runs: {src}: not a folder")
    runs = [c.parent for c in sorted(src.rglob(CONFIG)) if RunFolder(c.parent).finished]
    for run in runs:
        _copy(run, dest / run.relative_to(src), RUN_FILES, ("*.png", EARLIER_RESULTS))
    _copy(src, dest, TOP_FILES, ("*.png",))
    return len(runs)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python recipes/keep_runs.py SRC DEST")
    n = keep_runs(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{n} finished runs kept in {sys.argv[2]}")
