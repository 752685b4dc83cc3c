"""Each row's dev score minus single-task training's, epoch by epoch, in a comparison folder.

    python recipes/conll2003/dev_gaps.py docs/results/conll2003-paper/plateau/epochs-80

prints a Markdown table: for every row but ``single`` and every task, the gap in points between
the row's dev score and that of single-task training of the same seed, at epochs 1, 5, 10, 20
and 30 and between the best dev scores of the two runs; the mean over the seeds first, then the
seeds' values in brackets. It shows whether a row's lead comes at equal epochs only (it shrinks
as both runs converge) or holds at the plateau. ``--epochs 1,5,10`` picks other epochs; an
epoch one of the runs did not reach is left blank.

A sparse-sharing run's epochs are those of its subnets' training, which starts from the weights
of its multi-task warm-up, so its epoch 1 follows the warm-up's epochs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tomllib
from pathlib import Path

from mtlshare.errors import MtlshareError
from mtlshare.evaluation.curves import read_curves


def _seed(folder: Path, label: str) -> int:
    """The seed in the config of the run at ``folder / label``."""
    config = folder / label / "config.toml"
    try:
        seed = tomllib.loads(config.read_text(encoding="utf-8"))["seed"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as e:
        raise MtlshareError(f"{config}: no seed to read ({e})") from None
    return int(seed)


def gaps(folder: Path, epochs: list[int]) -> str:
    curves = read_curves(folder)
    single: dict[tuple[int, str], dict[int, float]] = {}
    rows: dict[str, dict[int, dict[str, dict[int, float]]]] = {}
    for label, by_task in curves.items():
        row, seed = label.split("/")[0], _seed(folder, label)
        for task, points in by_task.items():
            if row == "single":
                single[(seed, task)] = dict(points)
            else:
                rows.setdefault(row, {}).setdefault(seed, {})[task] = dict(points)
    if not single:
        raise MtlshareError(f"{folder}: no single-task runs to measure the rows against")
    columns = [*(f"epoch {e}" for e in epochs), "best"]
    lines = [
        "| row, task | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for row in sorted(rows):
        tasks = sorted({t for scores in rows[row].values() for t in scores})
        for task in tasks:
            cells = []
            for epoch in [*epochs, None]:
                values = []
                for seed, scores in sorted(rows[row].items()):
                    ours, theirs = scores.get(task), single.get((seed, task))
                    if ours is None or theirs is None:
                        continue
                    if epoch is None:
                        values.append(100 * (max(ours.values()) - max(theirs.values())))
                    elif epoch in ours and epoch in theirs:
                        values.append(100 * (ours[epoch] - theirs[epoch]))
                each = " / ".join(f"{v:+.2f}" for v in values)
                cells.append(f"{statistics.mean(values):+.2f} ({each})" if values else "")
            lines.append(f"| {row}, {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a comparison folder (a kept one too)")
    parser.add_argument("--epochs", default="1,5,10,20,30", help="comma-separated epochs")
    args = parser.parse_args(argv)
    try:
        epochs = [int(e) for e in args.epochs.split(",")]
    except ValueError:
        parser.error(f"--epochs: {args.epochs!r} is not a list of whole numbers")
    try:
        print(gaps(args.folder, epochs))
    except MtlshareError as e:
        print(f"dev_gaps: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
