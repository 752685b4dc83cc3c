"""``mtlshare demo``: every registered mechanism against single-task training on synthetic
tasks, once with highly related and once with unrelated tasks, as a table and a plot; then a
third related task added to trained hard- and sparse-sharing models (``mtlshare add-task``),
against the same task trained alone on the same budget.

Its config is ``demo.toml`` beside this file (``recipes/demo/demo.toml`` in the repository).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlshare.app.add_task import add_task
from mtlshare.app.compare import compare, comparison_markdown
from mtlshare.app.figures import draw
from mtlshare.app.jobs import check_jobs
from mtlshare.app.run import run
from mtlshare.config import load_config
from mtlshare.errors import MtlshareError
from mtlshare.evaluation.plots import plot_comparisons
from mtlshare.training.folder import DEMO_PLOT, OutputFolder, another_commands_output

# recipes/demo/demo.toml links to it; an installed package has no recipes/, so messages name this
DEMO_CONFIG = Path(__file__).parents[1] / "demo.toml"
SETTINGS = {"high relatedness (p = 0.9)": 0.9, "low relatedness (p = 0.0)": 0.0}
SEEDS = [0, 1, 2]
# the settings the demo sets itself, so an override of one would be dropped without a word
OWN_KEYS = ("data.relatedness", "data.n_tasks", "tasks", "mechanism")


def run_demo(
    out_dir: str | Path,
    progress: bool = True,
    overrides: list[str] | None = None,
    seeds: list[int] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Compare single and every mechanism at each relatedness, each over ``seeds`` (default
    0, 1, 2); print the tables and save ``demo.png``. With ``jobs`` > 1 the comparisons' runs
    go to that many worker processes with the cores divided between them (the tables are the
    same as those of one process with as many torch threads as a worker has)."""
    for item in overrides or []:
        key = item.partition("=")[0].strip()
        if key in OWN_KEYS:
            raise MtlshareError(
                f"override {item!r}: the demo sets {key} itself (every mechanism on 2 tasks "
                "at relatedness 0.9 and 0.0, then a third task added); for another setting use "
                f"`mtlshare compare {DEMO_CONFIG}` or `mtlshare run`"
            )
    for p in SETTINGS.values():  # bad overrides, the data's included, fail before --out is made
        load_config(DEMO_CONFIG, [*(overrides or []), f"data.relatedness={p}"]).data.validate()
    check_jobs(jobs)
    _check_out(Path(out_dir))
    with OutputFolder(out_dir) as folder:
        folder.open()
        return _demo(folder.path, progress, overrides, seeds or SEEDS, jobs)


def earlier_demo(out: Path) -> list[str]:
    """What ``out`` holds of an earlier demo's outputs (none: the demo may run in it)."""
    return [n for n in ("high", "low", "add-task", DEMO_PLOT) if (out / n).exists()]


def _check_out(out: Path) -> None:
    """Refuse, before anything trains, a folder that holds an earlier demo (which cannot
    resume: its comparisons would refuse their used folders one run at a time) or another
    command's output."""
    earlier = earlier_demo(out)
    if earlier:
        raise MtlshareError(
            f"{out}: holds an earlier demo ({', '.join(earlier)}); the demo cannot resume: "
            "choose another --out, or remove this folder"
        )
    other = another_commands_output(out, "demo")
    if other is not None:
        raise MtlshareError(f"{out}: holds {other}, not the demo's; choose another --out")


def _demo(
    out: Path, progress: bool, overrides: list[str] | None, seeds: list[int], jobs: int
) -> dict[str, Any]:
    comparisons: dict[str, dict[str, Any]] = {}
    for (label, p), sub in zip(SETTINGS.items(), ("high", "low"), strict=True):
        cfg = load_config(DEMO_CONFIG, [*(overrides or []), f"data.relatedness={p}"])
        mechanisms = cfg.compare.default_rows()
        comparisons[label] = compare(
            cfg, mechanisms, out / sub, seeds=seeds, progress=progress, title=label, jobs=jobs
        )
        print(comparison_markdown(comparisons[label], label), flush=True)
        print(flush=True)
    title = "Change in test MSE against single-task training " + (
        f"(mean of {len(seeds)} seeds)" if len(seeds) > 1 else f"(seed {seeds[0]})"
    )
    plot = draw(out / DEMO_PLOT, plot_comparisons, comparisons, out / DEMO_PLOT, title=title)
    if plot is not None:
        print(f"plot: {plot}")
    added = add_task_demo(out / "add-task", progress, overrides)
    return {**comparisons, "add_task": added}


def add_task_demo(
    out: Path, progress: bool = True, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Train hard and sparse sharing on t1 and t2 of three related tasks, add t3 to each
    (``mtlshare add-task``), and train t3 alone on the same budget; print the comparison."""
    base = [*(overrides or []), "data.n_tasks=3", "data.relatedness=0.9"]
    new = load_config(DEMO_CONFIG, [*base, 'tasks=["t3"]'])
    alone = run(new, out / "alone", progress=progress)
    print("## A third task added to a trained model (p = 0.9)\n")
    print("| model | t3 test MSE | trained for t3 | t1, t2 test MSE before -> after |")
    print("|---|---:|---:|---|")
    summaries: dict[str, Any] = {"alone": alone}
    for mechanism in ("hard", "sparse"):
        cfg = load_config(DEMO_CONFIG, [*base, f"mechanism={mechanism}", 'tasks=["t1", "t2"]'])
        run(cfg, out / f"{mechanism}-trained", progress=progress)
        summary = add_task(
            out / f"{mechanism}-trained", new, out / f"{mechanism}-added", progress=progress
        )
        kept = summary["existing_tasks"]
        before = ", ".join(f"{kept[t]['test_before']:.4g}" for t in kept)
        after = ", ".join(f"{kept[t]['test_after']:.4g}" for t in kept)
        print(
            f"| t3 added to the {mechanism}-sharing t1+t2 model | "
            f"{summary['new_tasks']['t3']['test']:.4g} | {summary['trainable_params']:,} | "
            f"{before} -> {after} |"
        )
        summaries[mechanism] = summary
    t3 = alone["tasks"]["t3"]["test"]
    print(f"| t3 trained alone, same epochs | {t3:.4g} | {alone['params']['total']:,} | |")
    unchanged = all(summaries[m]["existing_unchanged"] for m in ("hard", "sparse"))
    print(f"\nexisting tasks unchanged: {unchanged}", flush=True)
    return summaries
