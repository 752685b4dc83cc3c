"""What sharing gives a task with few labels: the bike table recipe's comparison (each task
alone, hard sharing, MMoE; seeds 0-2) once per share of `casual`'s training labels, every other
setting the recipe's. `registered` keeps every label; dev and test keep every label of both
(`data.tasks.NAME.train_labels`, a nested draw: a smaller share's days are within a larger's).

    python recipes/table/label_scarcity.py --out runs/label-scarcity

writes `share-S/` (a comparison folder each), `label_scarcity.md` (test MAE against the share,
mean and standard deviation over seeds, and in how many seeds each mechanism beats `casual`
alone with the same seed) and `label_scarcity.png`. `--resume` reads finished comparisons
back and trains only what is missing; `--shares` and `--recipe` choose others; `--task` the
task whose labels are cut; `key=value` overrides after the options change the recipe (e.g.
`train.select_on=casual`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

import mtlshare
from mtlshare.config import load_config
from mtlshare.data.table import table_problem
from mtlshare.errors import MtlshareError

RECIPE = Path(__file__).with_name("bike_sharing.toml")
SHARES = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0)


def labels_kept(cfg: Any, task: str) -> int:
    """How many training rows keep a label of ``task`` under ``cfg``."""
    problem = table_problem(cfg.data, str(cfg.base_dir))
    y = next(td for td in problem.tasks if td.task.name == task).train.y
    return int((~torch.isnan(y)).sum()) if y.is_floating_point() else int((y != -100).sum())


def sweep(
    recipe: Path,
    out: Path,
    shares: list[float],
    task: str,
    resume: bool,
    progress: bool,
    overrides: list[str],
) -> list[dict[str, Any]]:
    """One comparison per share of ``task``'s training labels; each share's rows and count."""
    tasks = load_config(recipe, overrides).data.tasks
    if task not in tasks:
        raise MtlshareError(f"--task: {task!r} is not a task of {recipe} ({', '.join(tasks)})")
    done = []
    for share in shares:
        cfg = load_config(recipe, [*overrides, f"data.tasks.{task}.train_labels={share}"])
        print(f"label scarcity: {task} keeps {share:g} of its training labels", file=sys.stderr)
        table = mtlshare.compare(
            cfg,
            cfg.compare.default_rows(),
            out / f"share-{share:g}",
            seeds=cfg.compare.seeds or [cfg.seed],
            progress=progress,
            resume=resume,
        )
        done.append({"share": share, "labels": labels_kept(cfg, task), "table": table})
    return done


def cell(scores: dict[str, Any]) -> str:
    seeds = scores["test_seeds"]
    spread = f" ± {scores['test_std']:.1f}" if len(seeds) > 1 else ""
    return f"{scores['test']:.1f}{spread}"


def markdown(done: list[dict[str, Any]], task: str) -> str:
    """Test scores per share: a column per row of the comparison for each task, ``task``'s
    first; in brackets, in how many seeds a mechanism beats the task alone."""
    first = done[0]["table"]
    rows = [r["mechanism"] for r in first["rows"]]
    tasks = [task, *(t for t in first["tasks"] if t != task)]
    metric = first["metrics"][task]["metric"]
    head = [f"{task} labels"] + [f"{t}: {r}" for t in tasks for r in rows]
    lines = [
        f"Test {metric} per share of `{task}`'s training labels (mean ± sd over seeds; in "
        f"brackets, the seeds in which a mechanism beats the task alone with the same seed):",
        "",
        "| share | " + " | ".join(head) + " |",
        "|---:|" + "---:|" * len(head),
    ]
    for entry in done:
        by_row = {r["mechanism"]: r for r in entry["table"]["rows"]}
        cells = [str(entry["labels"])]
        for t in tasks:
            for r in rows:
                scores = by_row[r]["tasks"][t]
                seeds = len(scores["test_seeds"])
                better = f" ({scores['seeds_better']}/{seeds})" if r != "single" else ""
                cells.append(cell(scores) + better)
        lines.append(f"| {entry['share']:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(done: list[dict[str, Any]], task: str, path: Path) -> None:
    """``task``'s test score against the labels it kept, a line per row of the comparison."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    labels = [entry["labels"] for entry in done]
    for name in [r["mechanism"] for r in done[0]["table"]["rows"]]:
        scores = [
            next(r for r in e["table"]["rows"] if r["mechanism"] == name)["tasks"][task]
            for e in done
        ]
        ax.errorbar(
            labels,
            [s["test"] for s in scores],
            yerr=[s["test_std"] for s in scores],
            marker="o",
            capsize=3,
            label=name,
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"training rows with a {task} label (log scale)")
    ax.set_ylabel(f"test {done[0]['table']['metrics'][task]['metric']} of {task}")
    ax.set_title(f"{task} against its training labels (mean and sd over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="a folder for the comparisons")
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="a table recipe")
    parser.add_argument("--task", default="casual", help="the task whose labels are cut")
    parser.add_argument(
        "--shares",
        default=",".join(f"{s:g}" for s in SHARES),
        help="shares of the task's training labels, comma-separated",
    )
    parser.add_argument("--resume", action="store_true", help="read finished comparisons back")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", help="key=value changes to the recipe")
    args = parser.parse_args(argv)
    try:
        shares = [float(s) for s in args.shares.split(",")]
    except ValueError:
        parser.error(f"--shares: numbers separated by commas, got {args.shares!r}")
    try:
        done = sweep(
            args.recipe, args.out, shares, args.task, args.resume, not args.quiet, args.overrides
        )
    except MtlshareError as e:
        print(f"label_scarcity: error: {e}", file=sys.stderr)
        return 2
    text = markdown(done, args.task)
    (args.out / "label_scarcity.md").write_text(text, encoding="utf-8")
    plot(done, args.task, args.out / "label_scarcity.png")
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
