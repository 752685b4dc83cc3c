"""Where a sparse-sharing run's masks come from: for each task of each run, the share of its
selected mask that another task's mask also keeps, and the share that is among the largest
weights of the search's rewind point (the weights after the multi-task warm-up, or the initial
ones with ``sparse.rewind = "init"``), as many as the mask keeps, ranked by magnitude over all
pruned tensors together, as ``global_magnitude_prune`` ranks them.

    python recipes/negative_transfer/mask_origin.py runs/nt-density/sparse/seed-0 ...

prints a Markdown table. It reads each run's ``checkpoint/best`` (the selected masks) and
``checkpoint/search-rewind``: a finished sparse run with its checkpoints (the copies
``recipes/keep_runs.py`` keeps have none). A share near 1 in the last column means the search
kept what the rewind point's magnitudes already ranked highest, whatever the rounds trained.
With ``sparse.depths`` (a task pruning only the layers it reads) the density and the ranking
still cover every pruned tensor, not the task's own layers: read those rows with that in mind.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor

from mtlshare.errors import MtlshareError
from mtlshare.sharing.sparse.driver import REWIND, REWIND_CHECKPOINT
from mtlshare.sharing.sparse.masks import density, global_magnitude_prune
from mtlshare.sharing.sparse.report import masks_from_state
from mtlshare.training.folder import RunFolder
from mtlshare.training.state import BEST

HEADER = (
    "| run | task | density | also another task's | among the rewind point's largest |\n"
    "|---|---|---:|---:|---:|"
)


def rewind_weight(rewind: dict[str, Tensor], param: str, run: Path) -> Tensor:
    """The rewind point's tensor of masked parameter ``param`` (a name inside the trunk)."""
    found = [k for k in rewind if k == param or k.endswith("." + param)]
    if len(found) != 1:
        raise MtlshareError(f"{run}: checkpoint/{REWIND_CHECKPOINT}: no single weight for {param}")
    return rewind[found[0]]


def largest(weights: dict[str, Tensor], k: int) -> dict[str, Tensor]:
    """Bool masks of the ``k`` largest magnitudes over every tensor of ``weights`` together:
    one round of ``global_magnitude_prune`` that drops all the others (its ties: the earlier
    entry is dropped first)."""
    full = {name: torch.ones_like(w, dtype=torch.bool) for name, w in weights.items()}
    total = sum(w.numel() for w in weights.values())
    if k >= total:
        return full
    if k <= 0:
        return {name: torch.zeros_like(m) for name, m in full.items()}
    return global_magnitude_prune(weights, full, (total - k) / total)


def mask_origin(run: Path) -> list[tuple[str, float, float, float]]:
    """Per task of ``run``: (task, density, share also another task's, share among the rewind
    point's largest weights)."""
    folder = RunFolder(run)
    for name in (BEST, REWIND_CHECKPOINT):
        if not folder.has_checkpoint(name):
            raise MtlshareError(f"{folder.checkpoint_dir(name)}: missing (a sparse run's own)")
    tensors, _ = folder.load_checkpoint(BEST)
    masks = masks_from_state(tensors, prefix="model.")
    saved, _ = folder.load_checkpoint(REWIND_CHECKPOINT)
    rewind = {k[len(REWIND) :]: v for k, v in saved.items() if k.startswith(REWIND)}
    rows = []
    for task, own in masks.items():
        kept = sum(int(m.sum()) for m in own.values())
        others = [m for t, m in masks.items() if t != task]
        shared = (
            sum(int((m & torch.stack([o[p] for o in others]).any(0)).sum()) for p, m in own.items())
            if others
            else 0
        )
        top = largest({p: rewind_weight(rewind, p, run) for p in own}, kept)
        among = sum(int((m & top[p]).sum()) for p, m in own.items())
        rows.append((task, density(own), shared / max(kept, 1), among / max(kept, 1)))
    return rows


def main(argv: list[str]) -> int:
    if not argv:
        print(
            "usage: python recipes/negative_transfer/mask_origin.py RUN [RUN ...]", file=sys.stderr
        )
        return 2
    try:
        tables = [(run, mask_origin(Path(run))) for run in argv]
    except MtlshareError as e:
        print(f"mask_origin: {e}", file=sys.stderr)
        return 2
    print(HEADER)
    for run, rows in tables:
        for task, dens, shared, among in rows:
            print(f"| {run} | {task} | {dens:.3f} | {shared:.3f} | {among:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
