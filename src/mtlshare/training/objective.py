"""The objective: weighted task losses plus the mechanism's regularizer.

Loss weights are fixed per task (default 1) or learned by homoscedastic uncertainty
(Kendall, Gal and Cipolla, CVPR 2018): with s_t = log sigma_t^2 learned, task t's loss becomes
exp(-s_t) * L_t + s_t, so noisier tasks are down-weighted and s_t cannot run off to infinity.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mtlshare.data.datasets import Problem
from mtlshare.errors import ConfigError
from mtlshare.sharing.base import SharingModel

WEIGHTINGS = ("fixed", "uncertainty")


@dataclass
class WeightingConfig:
    """``[weighting]``: ``kind`` is "fixed" (``weights = {task = w}``, default 1) or
    "uncertainty" (learned log-variances, one per task)."""

    kind: str = "fixed"
    weights: dict[str, float] = field(default_factory=dict)


class LossWeighting(nn.Module):
    """Turns one task's raw loss into its contribution to the objective."""

    def __init__(self, tasks: list[str], cfg: WeightingConfig) -> None:
        super().__init__()
        if cfg.kind not in WEIGHTINGS:
            raise ConfigError(f"weighting.kind: {cfg.kind!r} is not one of {WEIGHTINGS}")
        unknown = sorted(set(cfg.weights) - set(tasks))
        if unknown:
            raise ConfigError(f"weighting.weights: unknown task(s) {unknown}; tasks are {tasks}")
        if any(w < 0 for w in cfg.weights.values()):
            raise ConfigError(f"weighting.weights: must be >= 0, got {cfg.weights}")
        self.kind = cfg.kind
        self.index = {t: i for i, t in enumerate(tasks)}
        self.fixed = [float(cfg.weights.get(t, 1.0)) for t in tasks]
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)), requires_grad=cfg.kind != "fixed")

    def forward(self, task: str, loss: Tensor) -> Tensor:
        i = self.index[task]
        if self.kind == "uncertainty":
            s = self.log_vars[i]
            return torch.exp(-s) * loss + s
        weight = self.fixed[i]
        return loss if weight == 1.0 else weight * loss  # x * 1.0 == x: skip the op

    def current(self) -> dict[str, float]:
        """The weight each task's loss gets now (exp(-s_t) under uncertainty weighting)."""
        if self.kind == "uncertainty":
            return {t: float(torch.exp(-self.log_vars[i].detach())) for t, i in self.index.items()}
        return {t: self.fixed[i] for t, i in self.index.items()}


class Objective(nn.Module):
    """One training step's loss: the task's weighted loss plus the mechanism's regularizer.

    Kept as one module so that ``DistributedDataParallel`` sees every parameter a step uses
    (the regularizer reads other tasks' weights, uncertainty weighting its own) from the
    outputs of a single forward call.
    """

    def __init__(self, model: SharingModel, weighting: LossWeighting, problem: Problem) -> None:
        super().__init__()
        self.model = model
        self.weighting = weighting
        self.tasks = {td.task.name: td.task for td in problem.tasks}
        # heads whose loss needs the head itself (a CRF's transition scores)
        self.structured = {n for n, t in self.tasks.items() if t.head != "linear"}
        # adding the base class's zero penalty would cost an op and a backward node per step
        self.regularized = type(model).regularizer is not SharingModel.regularizer

    def forward(self, x: Tensor, y: Tensor, task: str) -> tuple[Tensor, Tensor]:
        head = self.model.head(task) if task in self.structured else None
        raw = self.tasks[task].loss(self.model(x, task), y, head)
        loss = self.weighting(task, raw)
        if self.regularized:
            loss = loss + self.model.regularizer()
        return loss, raw
