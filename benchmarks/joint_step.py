"""Cost of a joint step (``train.schedule = "joint"``) with a gradient aggregator against a
joint step on the summed losses: same model (hard sharing), same initial weights, same batches.

Three runners make joint steps over the same list of steps (each step a batch of every task):
``sum`` (one backward over the summed losses), ``upgrad`` and ``mgda`` (a backward per task,
each task's gradient kept, the gradients of the shared parameters aggregated by torchjd). They
are timed in alternating blocks so that machine noise hits all alike; the median block times
per step are compared. ``--trunk tagger`` (default) is the Sparse Sharing paper's tagger on
real CoNLL-2003 batches (POS, chunking and NER, a batch of each a step), as
``benchmarks/sparse_step.py`` builds it; ``--trunk mlp`` an MLP with three regression tasks.

Also printed: the memory the per-task gradients take (one copy of every gradient per task,
float32) against the model's parameters. The last line is ``ratio=<the slower aggregator's
step time / the summed step's>``.

Usage: python benchmarks/joint_step.py [--json PATH] [--trunk tagger|mlp] [--blocks N] ...
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from mtlshare.sharing.hard import HardConfig, HardSharing
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig
from mtlshare.training.settings import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparse_step import build, parse_three_tasks, three_task_parser

WEIGHTINGS = {
    "sum": WeightingConfig(),
    "upgrad": WeightingConfig(kind="aggregator", aggregator="upgrad"),
    "mgda": WeightingConfig(kind="aggregator", aggregator="mgda"),
}


def parse() -> argparse.Namespace:
    ap = three_task_parser(
        " ".join(__doc__.split("\n\n")[0].split()), steps=10, blocks=15, what="runner"
    )
    return parse_three_tasks(ap)


def main() -> None:
    args = parse()
    args.steps *= 3  # sparse_step.build counts single-task batches: three make a joint step
    tasks, problem, backbone, batches = build(args)
    names = [t.name for t in tasks]
    steps = [
        {task: (x, y) for task, x, y in batches[i : i + len(names)]}
        for i in range(0, len(batches) - len(names) + 1, len(names))
    ]
    torch.manual_seed(1)
    init = HardSharing(backbone, tasks, HardConfig()).state_dict()

    def runner(kind: str) -> Callable[[], None]:
        model = HardSharing(backbone, tasks, HardConfig())
        model.load_state_dict(init)
        cfg = TrainConfig(batch_size=1, optimizer="sgd", lr=1e-3, schedule="joint")
        trainer = Trainer(model, problem, cfg, LossWeighting(names, WEIGHTINGS[kind]))
        optimizer = trainer.make_optimizer()
        assert trainer.joint is not None
        stepper = trainer.joint

        def run() -> None:
            for step in steps:
                stepper.step(optimizer, step)

        return run

    runners = {kind: runner(kind) for kind in WEIGHTINGS}

    def block(kind: str) -> float:
        t0 = time.perf_counter()
        runners[kind]()
        return (time.perf_counter() - t0) / len(steps)

    for kind in runners:  # warm-up
        block(kind)
    times: dict[str, list[float]] = {kind: [] for kind in runners}
    order = list(runners)
    for _ in range(args.blocks):
        for kind in order:
            times[kind].append(block(kind))
        order = order[1:] + order[:1]  # no runner always first
    med = {k: statistics.median(v) for k, v in times.items()}
    ratios = {k: med[k] / med["sum"] for k in ("upgrad", "mgda")}
    n_params = sum(t.numel() for t in init.values())
    grad_bytes = len(names) * n_params * 4
    print(
        f"model: hard sharing, trunk {args.trunk}, {n_params:,} parameters, {len(names)} tasks; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{args.blocks} alternating blocks of {len(steps)} joint steps, median per step:")
    for kind in runners:
        extra = f"  ({ratios[kind]:.3f}x sum)" if kind in ratios else ""
        print(f"{kind:7s} {1e3 * med[kind]:.3f} ms{extra}")
    print(
        f"per-task gradients kept by an aggregator step: {len(names)} x {n_params:,} floats = "
        f"{grad_bytes / 2**20:.1f} MiB ({len(names)}x the parameters)"
    )
    ratio = max(ratios.values())
    if args.json:
        result = {
            "config": vars(args),
            "parameters": n_params,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "ms_per_step": {k: 1e3 * v for k, v in med.items()},
            "block_ms_per_step": {k: [1e3 * t for t in v] for k, v in times.items()},
            "ratios": ratios,
            "per_task_gradient_bytes": grad_bytes,
            "ratio": ratio,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
