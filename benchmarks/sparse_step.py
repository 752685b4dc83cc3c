"""Cost of a sparse-sharing training step against a hard-sharing step.

Same base network (an MLP trunk until the CNN-BiLSTM tagger exists), same batches, same
optimizer, one process; hard and sparse steps are timed in alternating blocks so that machine
noise hits both alike, and the median block time of each is compared. Also prints the memory of
the masks: bytes per prunable parameter per task in memory (bool tensors) and on disk
(bit-packed in the state dict). The last line is ``ratio=<sparse step time / hard step time>``.

Usage: python benchmarks/sparse_step.py [--json PATH] [--hidden 512] [--layers 3] [--batch 64]
Targets (issue 3): ratio <= 1.15; masks <= 1 byte per parameter per task in memory, <= 1 bit
on disk.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import mtlshare.sharing  # noqa: F401
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.sharing.hard import HardConfig, HardSharing
from mtlshare.sharing.sparse import PACKED_PREFIX, SparseConfig, SparseSharing
from mtlshare.tasks.task import Task
from mtlshare.training.loop import TrainConfig, Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the measurements to this JSON file")
    ap.add_argument("--hidden", type=int, default=512)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--input", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--tasks", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=15, help="timed blocks per mechanism")
    ap.add_argument("--density", type=float, default=0.5, help="density of the random masks")
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    args = ap.parse_args()

    torch.manual_seed(0)
    tasks = [Task(f"t{i}", "regression") for i in range(args.tasks)]
    n = args.batch * args.steps
    data = []
    for t in tasks:
        x = torch.randn(n, args.input)
        data.append(TaskData(t, Split(x, x[:, 0]), Split(x[:8], x[:8, 0]), Split(x[:8], x[:8, 0])))
    problem = Problem(data, args.input)
    trunk = TrunkConfig(kind="mlp", hidden=[args.hidden] * args.layers)
    backbone = backbone_from_config(trunk, args.input)
    torch.manual_seed(1)
    hard = HardSharing(backbone, tasks, HardConfig())
    torch.manual_seed(1)
    sparse = SparseSharing(backbone, tasks, SparseConfig())
    g = torch.Generator().manual_seed(2)
    sparse.set_masks(
        {
            t.name: {
                k: torch.rand(p.shape, generator=g) < args.density
                for k, p in sparse._prunable().items()
            }
            for t in tasks
        }
    )

    cfg = TrainConfig(batch_size=args.batch, optimizer=args.optimizer, lr=1e-3)
    runners = {}
    for name, model in (("hard", hard), ("sparse", sparse)):
        w = LossWeighting([t.name for t in tasks], WeightingConfig())
        tr = Trainer(model, problem, cfg, w, seed=0, progress=False)
        runners[name] = (tr, tr.make_optimizer())
    batches = [
        (
            t.name,
            d.train.x[i * args.batch : (i + 1) * args.batch],
            d.train.y[i * args.batch : (i + 1) * args.batch],
        )
        for i in range(args.steps)
        for t, d in zip(tasks[:1], data[:1], strict=True)
    ]
    batches = [(tasks[i % len(tasks)].name, x, y) for i, (_, x, y) in enumerate(batches)]

    def block(name: str) -> float:
        tr, opt = runners[name]
        t0 = time.perf_counter()
        for task, x, y in batches:
            tr.step(opt, task, x, y)
        return (time.perf_counter() - t0) / len(batches)

    for name in runners:  # warm-up
        block(name)
    times: dict[str, list[float]] = {"hard": [], "sparse": []}
    for _ in range(args.blocks):
        for name in ("hard", "sparse"):
            times[name].append(block(name))
    med = {k: statistics.median(v) for k, v in times.items()}

    prunable = sum(p.numel() for p in sparse._prunable().values())
    in_memory = sum(
        m.element_size() * m.numel() for masks in sparse.masks.values() for m in masks.values()
    )
    state = sparse.state_dict()
    on_disk = sum(
        v.numel() * v.element_size()
        for k, v in state.items()
        if k.startswith(PACKED_PREFIX) and k != PACKED_PREFIX + "meta"
    )
    mem_bytes = in_memory / (prunable * args.tasks)
    disk_bits = 8 * on_disk / (prunable * args.tasks)
    ratio = med["sparse"] / med["hard"]
    result = {
        "config": vars(args),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "hard_ms_per_step": 1e3 * med["hard"],
        "sparse_ms_per_step": 1e3 * med["sparse"],
        "prunable_parameters": prunable,
        "mask_bytes_per_param_per_task_in_memory": mem_bytes,
        "mask_bits_per_param_per_task_on_disk": disk_bits,
        "ratio": ratio,
    }
    print(
        f"base network: MLP {args.input}->{'x'.join([str(args.hidden)] * args.layers)}, "
        f"{prunable} prunable weights, {args.tasks} tasks, batch {args.batch}, "
        f"{args.optimizer}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"hard step   {1e3 * med['hard']:.3f} ms (median of {args.blocks} blocks)")
    print(f"sparse step {1e3 * med['sparse']:.3f} ms")
    print(
        f"mask memory: {mem_bytes:.3f} bytes per parameter per task in memory, "
        f"{disk_bits:.3f} bits on disk"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
