"""``mtlshare demo``: every registered mechanism against single-task training on synthetic
tasks, once with highly related and once with unrelated tasks, as a table and a plot.

Its config is ``demo.toml`` beside this file (``recipes/demo/demo.toml`` in the repository).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlshare.config import load_config
from mtlshare.evaluation import report
from mtlshare.evaluation.plots import plot_comparisons
from mtlshare.experiment import SINGLE, compare
from mtlshare.registry import MECHANISMS

DEMO_CONFIG = Path(__file__).with_name("demo.toml")
SETTINGS = {"high relatedness (p = 0.9)": 0.9, "low relatedness (p = 0.0)": 0.0}
SEEDS = [0, 1, 2]


def run_demo(
    out_dir: str | Path,
    progress: bool = True,
    overrides: list[str] | None = None,
    seeds: list[int] | None = None,
) -> dict[str, Any]:
    """Compare single and every mechanism at each relatedness, each over ``seeds`` (default
    0, 1, 2); print the tables and save ``demo.png``."""
    out = Path(out_dir)
    seeds = seeds or SEEDS
    mechanisms = [SINGLE, *MECHANISMS.names()]
    comparisons: dict[str, dict[str, Any]] = {}
    for (label, p), sub in zip(SETTINGS.items(), ("high", "low"), strict=True):
        cfg = load_config(DEMO_CONFIG, [*(overrides or []), f"data.relatedness={p}"])
        comparisons[label] = compare(
            cfg, mechanisms, out / sub, seeds=seeds, progress=progress, title=label
        )
        print(report.comparison_markdown(comparisons[label], label), flush=True)
        print(flush=True)
    plot = plot_comparisons(
        comparisons,
        out / "demo.png",
        title=f"Change in test MSE against single-task training (mean of {len(seeds)} seeds)",
    )
    print(f"plot: {plot}")
    return comparisons
