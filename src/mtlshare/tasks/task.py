"""A task: its name, its kind of output, its loss and its metric.

Mechanisms never look inside a task beyond ``out_dim`` and ``build_head``; the training loop
calls ``loss`` and the evaluation calls ``metric``. Missing labels (NaN regression targets,
class targets equal to -100) are excluded from both.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlshare.errors import ConfigError
from mtlshare.evaluation.metrics import IGNORE_INDEX, METRICS, observed

KINDS = ("regression", "classification")


@dataclass(frozen=True)
class Task:
    """One task of a multi-task problem.

    ``kind`` is ``"regression"`` (targets (N,) or (N, T), float, NaN = missing, head outputs one
    value per position) or ``"classification"`` (targets long, -100 = missing, head outputs
    ``out_dim`` logits per position). ``metric`` names a function in ``evaluation.metrics``.
    """

    name: str
    kind: str
    out_dim: int = 1
    metric: str = "mse"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"task {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.metric not in METRICS:
            raise ConfigError(
                f"task {self.name!r}: unknown metric {self.metric!r}; known: {sorted(METRICS)}"
            )
        if self.out_dim < 1:
            raise ConfigError(f"task {self.name!r}: out_dim must be >= 1, got {self.out_dim}")

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric][1]

    def build_head(self, in_dim: int) -> nn.Module:
        """The task's output layer: a linear map from the representation it reads."""
        return nn.Linear(in_dim, self.out_dim)

    def predictions(self, head_out: Tensor) -> Tensor:
        """What the metric compares with the target: values for regression, logits otherwise."""
        return head_out.squeeze(-1) if self.kind == "regression" else head_out

    def loss(self, head_out: Tensor, target: Tensor) -> Tensor:
        """Mean loss over observed targets; an all-missing batch gives a zero with a graph."""
        if self.kind == "regression":
            pred = head_out.squeeze(-1)
            keep = observed(target)
            if not bool(keep.any()):  # all missing, or an empty batch
                return pred.sum() * 0.0
            if bool(keep.all()):  # nothing missing: the same sum without the masking ops
                diff = pred - target
                return (diff**2).sum() / keep.sum()
            # where() rather than indexing keeps NaN targets out of the backward pass entirely
            safe_target = torch.where(keep, target, torch.zeros_like(target))
            diff = torch.where(keep, pred - safe_target, torch.zeros_like(pred))
            return (diff**2).sum() / keep.sum()
        logits = head_out.reshape(-1, head_out.shape[-1])
        flat = target.reshape(-1)
        if not bool((flat != IGNORE_INDEX).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits, flat, ignore_index=IGNORE_INDEX)

    def score(self, head_out: Tensor, target: Tensor) -> float:
        return METRICS[self.metric][0](self.predictions(head_out), target)
