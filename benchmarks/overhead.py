"""Overhead of mtlshare's training loop against a plain hand-written PyTorch loop.

Same model (hard sharing, identical initial weights), same batches, same optimizer (SGD, lr 1e-3,
momentum 0.9), one process. (a) is ``Trainer.step(optimizer, task, x, y)``; (b) is what a user
writes by hand: ``out = model(x, task)``, cross-entropy (``ignore_index=-100``) or MSE,
``zero_grad(set_to_none=True)``, ``backward()``, ``step()``. Two base networks: ``--trunk tagger``
(the default) is the Sparse Sharing paper's tagger on real CoNLL-2003 batches, built exactly as
``benchmarks/sparse_step.py --trunk tagger`` builds it (POS, chunking and NER in turn);
``--trunk mlp`` is an MLP (default 256 -> 512 x 3, batch 64) on random data with three regression
tasks. The two loops are timed in alternating blocks so that machine noise hits both alike, and
the median block times per step are compared.

Before timing, both loops run a few steps on the same batches from the same start, with torch
seeded identically before each so that dropout masks match; ``same_result`` says whether the
parameters then agree within 1e-6 (if not, the comparison is meaningless and the exit code is 1).
The last line is ``ratio=<mtlshare step time / plain step time>``.

Usage: python benchmarks/overhead.py [--json PATH] [--trunk tagger|mlp] [--batch B] ...
Target (issue 2): ratio <= 1.05.
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
import torch.nn.functional as F
from torch import Tensor

from mtlshare.data.datasets import Problem
from mtlshare.sharing.hard import HardConfig, HardSharing
from mtlshare.tasks.task import Task
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig
from mtlshare.training.settings import TrainConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sparse_step import TAGGER_TASKS, Batch, build, parse_three_tasks, three_task_parser

LR, MOMENTUM, TOLERANCE = 1e-3, 0.9, 1e-6


def parse() -> argparse.Namespace:
    ap = three_task_parser(__doc__.split("\n")[0], steps=30, blocks=25, what="loop")
    ap.add_argument("--check-steps", type=int, default=5, help="steps of the same-result check")
    return parse_three_tasks(ap)


def plain_loss(task: Task, out: Tensor, y: Tensor) -> Tensor:
    """The loss a user writes by hand (no missing labels in these batches but padding)."""
    if task.kind == "classification":
        return F.cross_entropy(out.flatten(0, -2), y.flatten(), ignore_index=-100)
    return F.mse_loss(out.squeeze(-1), y)


def mtlshare_runner(model: HardSharing, tasks: list[Task], problem: Problem) -> Callable:
    cfg = TrainConfig(batch_size=1, optimizer="sgd", lr=LR, momentum=MOMENTUM)
    w = LossWeighting([t.name for t in tasks], WeightingConfig())
    tr = Trainer(model, problem, cfg, w, seed=0, progress=False)
    opt = tr.make_optimizer()

    def run(batches: list[Batch]) -> None:
        for task, x, y in batches:
            tr.step(opt, task, x, y)

    return run


def plain_runner(model: HardSharing, tasks: list[Task]) -> Callable:
    by_name = {t.name: t for t in tasks}
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    model.train()

    def run(batches: list[Batch]) -> None:
        for task, x, y in batches:
            out = model(x, task)
            loss = plain_loss(by_name[task], out, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    return run


def main() -> None:
    args = parse()
    tasks, problem, backbone, batches = build(args)
    torch.manual_seed(1)
    init = HardSharing(backbone, tasks, HardConfig()).state_dict()

    def fresh() -> HardSharing:
        model = HardSharing(backbone, tasks, HardConfig())
        model.load_state_dict(init)
        return model

    # same result: a short run of both loops on the same batches, same start, same dropout masks
    models = {"mtlshare": fresh(), "plain": fresh()}
    check = {
        "mtlshare": mtlshare_runner(models["mtlshare"], tasks, problem),
        "plain": plain_runner(models["plain"], tasks),
    }
    for run in check.values():
        torch.manual_seed(3)
        run(batches[: args.check_steps])
    a = dict(models["mtlshare"].named_parameters())
    b = dict(models["plain"].named_parameters())
    diff = max((a[k] - b[k]).abs().max().item() for k in a) if a.keys() == b.keys() else 1.0
    moved = max((a[k].detach() - init[k]).abs().max().item() for k in a)
    same = a.keys() == b.keys() and diff <= TOLERANCE and moved > 0

    # timing, on another pair of fresh copies
    runners = {
        "mtlshare": mtlshare_runner(fresh(), tasks, problem),
        "plain": plain_runner(fresh(), tasks),
    }

    def block(name: str) -> float:
        t0 = time.perf_counter()
        runners[name](batches)
        return (time.perf_counter() - t0) / len(batches)

    for name in runners:  # warm-up
        block(name)
    times: dict[str, list[float]] = {"mtlshare": [], "plain": []}
    order = ["mtlshare", "plain"]
    for _ in range(args.blocks):
        for name in order:
            times[name].append(block(name))
        order.reverse()  # neither loop always runs first
    med = {k: statistics.median(v) for k, v in times.items()}
    ratio = med["mtlshare"] / med["plain"]

    shape = "x".join([str(args.hidden)] * args.layers)
    what = {
        "tagger": f"CNN-BiLSTM tagger (words+chars->{shape}), batches of {args.batch} CoNLL "
        f"sentences, tasks {', '.join(TAGGER_TASKS)}",
        "mlp": f"MLP {args.input}->{shape}, batch {args.batch}, 3 regression tasks",
    }[args.trunk]
    n_params = sum(p.numel() for p in a.values())
    print(
        f"model: hard sharing on {what}, {n_params} parameters; SGD lr {LR} momentum {MOMENTUM}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"{args.blocks} alternating blocks of {args.steps} steps per loop, median per step:")
    print(f"mtlshare Trainer.step {1e3 * med['mtlshare']:.3f} ms")
    print(f"plain PyTorch loop    {1e3 * med['plain']:.3f} ms")
    print(
        f"check over {args.check_steps} steps: max |param difference| {diff:.3g}, "
        f"max |param change| {moved:.3g}"
    )
    if args.json:
        result = {
            "config": vars(args),
            "model": what,
            "parameters": n_params,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "machine": platform.machine(),
            "mtlshare_ms_per_step": 1e3 * med["mtlshare"],
            "plain_ms_per_step": 1e3 * med["plain"],
            "block_ms_per_step": {k: [1e3 * t for t in v] for k, v in times.items()},
            "max_param_difference": diff,
            "max_param_change": moved,
            "same_result": same,
            "ratio": ratio,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    print(f"same_result={same}")
    print(f"ratio={ratio:.3f}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
