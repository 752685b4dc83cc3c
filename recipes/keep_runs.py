"""Keep the finished runs of a comparison folder without their checkpoints.

    python recipes/keep_runs.py runs/conll2003-paper docs/results/conll2003-paper/runs

copies, for every finished run under SRC (a folder with ``config.toml`` and ``results.json``),
its ``config.toml``, ``results.json``, ``metrics.jsonl`` and figures to the same place under
DEST, and SRC's ``comparison.md``, ``comparison.json`` and ``dev_curves.png``. Checkpoints and
``inference.json`` stay behind (megabytes per run). A comparison resumed in a copy of DEST
(``mtlshare compare RECIPE --out COPY --resume``) reads those runs back instead of training
them and trains only the missing ones: how the paper profiles, hours of one core, are carried
from one machine to the next. Unfinished runs are not copied.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

RUN_FILES = ("config.toml", "results.json", "metrics.jsonl")
TOP_FILES = ("comparison.md", "comparison.json", "dev_curves.png")


def keep_runs(src: Path, dest: Path) -> int:
    """Copy every finished run under ``src`` to ``dest``; returns how many."""
    if not src.is_dir():
        raise SystemExit(f"keep_runs: {src}: not a folder")
    count = 0
    for config in sorted(src.rglob("config.toml")):
        run = config.parent
        if not (run / "results.json").is_file():
            continue
        out = dest / run.relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        names = [n for n in RUN_FILES if (run / n).is_file()]
        for name in names + sorted(p.name for p in run.glob("*.png")):
            shutil.copy2(run / name, out / name)
        count += 1
    for name in TOP_FILES:
        if (src / name).is_file():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src / name, dest / name)
    return count


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python recipes/keep_runs.py SRC DEST")
    n = keep_runs(Path(sys.argv[1]), Path(sys.argv[2]))
    print(f"{n} finished runs kept in {sys.argv[2]}")
