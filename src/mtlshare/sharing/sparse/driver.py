"""The mask search run inside the training loop: the multi-task warm-up, the rewind point, and
a ``SearchSubject`` (``search.py``) over the model and the loop's ``StructureTrainer``, resumable
from the ``search`` checkpoint.

The model is reached through ``Searchable``: its settings and tasks, its prunable weights, its
masks, and a copy of (or a reset to) all its weights.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor
from tqdm import tqdm

from mtlshare.sharing.base import StructureTrainer
from mtlshare.sharing.sparse import search
from mtlshare.sharing.sparse.config import SparseConfig
from mtlshare.sharing.sparse.report import rounds_overlap
from mtlshare.sharing.sparse.search import Candidate, Masks

CHECKPOINT = "search"  # the search's progress; finished tasks' rounds in search-task-TASK
REWIND_CHECKPOINT = "search-rewind"
REWIND = "rewind."


class Searchable(Protocol):
    """What the search needs of a sparse-sharing model."""

    cfg: SparseConfig

    def prunable_weights(self) -> dict[str, Tensor]: ...

    def domain(self, task: str) -> dict[str, Tensor] | None: ...

    def set_mask(self, task: str, mask: Mapping[str, Tensor]) -> None: ...

    def weights(self) -> dict[str, Tensor]: ...

    def load_weights(self, state: Mapping[str, Tensor]) -> None: ...


@dataclass
class Outcome:
    """Every round's candidates, what results report of them, the chosen mask per task, and the
    weights the subnets start from (the rewind point)."""

    candidates: list[Candidate]
    summary: dict[str, Any]
    chosen: dict[str, Masks]
    rewind_to: dict[str, Tensor]


class SubnetSearch:
    """``search.SearchSubject`` over a model and the loop: train one task through its mask,
    score it on dev, rewind, and persist the search's parts as checkpoints."""

    def __init__(
        self, model: Searchable, trainer: StructureTrainer, rewind_to: dict[str, Tensor]
    ) -> None:
        self.model = model
        self.trainer = trainer
        self.rewind_to = rewind_to

    def prunable(self) -> Mapping[str, Tensor]:
        return self.model.prunable_weights()

    def set_mask(self, task: str, masks: Masks) -> None:
        self.model.set_mask(task, masks)

    def rewind(self) -> None:
        self.model.load_weights(self.rewind_to)

    def train(self, task: str, steps: int) -> None:
        self.trainer.train_steps([task], steps)

    def score(self, task: str) -> float:
        return self.trainer.dev_score(task)

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any], part: str = "") -> None:
        self.trainer.save(part_name(part), tensors, meta)

    def load(self, part: str = "") -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        if part:  # a finished task's rounds: the progress holds the state draws continue from
            return self.trainer.load(part_name(part), restore=False)
        state = self.trainer.load(CHECKPOINT)
        if state is None or not (state[1].get("candidates") or state[1].get("done")):
            return None
        return state


def part_name(part: str) -> str:
    """The checkpoint of a part of the search: its progress, or a finished task's rounds."""
    return f"{CHECKPOINT}-task-{part}" if part else CHECKPOINT


def steps_of(trainer: StructureTrainer, tasks: list[str], steps: int, epochs: float) -> int:
    """``steps`` when set, else ``epochs`` epochs over ``tasks`` (at least one step)."""
    if steps > 0:
        return steps
    return max(1, round(epochs * trainer.steps_per_epoch(tasks)))


def _rewind_point(
    model: Searchable, trainer: StructureTrainer, tasks: list[str]
) -> dict[str, Tensor]:
    """The weights every round starts from (after the warm-up, or the initial ones), saved
    once in a checkpoint of their own; a resumed search reads them back (from the progress
    checkpoint where a search saved before that keeps them)."""
    cfg = model.cfg
    init = model.weights()
    for name in (REWIND_CHECKPOINT, CHECKPOINT):
        state = trainer.load(name)
        if state is not None and "rewind.done" in state[1]:
            tensors = state[0]
            return {k[len(REWIND) :]: v for k, v in tensors.items() if k.startswith(REWIND)}
    if cfg.warmup_steps > 0 or cfg.warmup_epochs > 0:
        steps = steps_of(trainer, tasks, cfg.warmup_steps, cfg.warmup_epochs)
        if cfg.rewind == "init":
            warnings.warn(
                f"sparse: rewind = 'init' discards the {steps:,}-step multi-task warm-up's "
                "weights (every pruning round and the subnets' training start from the initial "
                "weights, each with a fresh optimizer), so it costs time and changes only the "
                "random stream and any loss weights the weighting learns; set "
                "sparse.warmup_steps and sparse.warmup_epochs to 0 to skip it",
                stacklevel=2,
            )
        if trainer.progress:  # the warm-up has no bar of its own: say what is running
            tqdm.write(f"mask search: multi-task warm-up, {steps:,} steps", file=sys.stderr)
        trainer.train_steps(tasks, steps)
    rewind_to = init if cfg.rewind == "init" else model.weights()
    trainer.save(
        REWIND_CHECKPOINT, {REWIND + k: v for k, v in rewind_to.items()}, {"rewind.done": True}
    )
    return rewind_to


def search_subnets(model: Searchable, trainer: StructureTrainer, tasks: list[str]) -> Outcome:
    """Warm up, search every task's masks (Algorithm 1) and choose one per task."""
    cfg = model.cfg
    rewind_to = _rewind_point(model, trainer, tasks)
    rounds = {t: steps_of(trainer, [t], cfg.round_steps, cfg.round_epochs) for t in tasks}
    candidates = search.search_masks(
        tasks,
        SubnetSearch(model, trainer, rewind_to),
        alpha=cfg.alpha,
        target_density=cfg.target_density,
        steps=rounds,
        progress=trainer.progress,
        domains={t: d for t in tasks if (d := model.domain(t)) is not None},
    )
    summary = {
        "rounds": [c.summary() for c in candidates],
        "rounds_overlap": rounds_overlap(candidates, tasks) if len(tasks) > 1 else [],
    }
    value = cfg.select_round if cfg.select == "round" else cfg.select_density
    chosen = {
        t: search.select([c for c in candidates if c.task == t], cfg.select, value).mask
        for t in tasks
    }
    return Outcome(candidates, summary, chosen, rewind_to)
