"""Soft parameter sharing: one trunk per task, corresponding layers tied by a penalty.

``penalty = "frobenius"`` (Duong et al., ACL 2015): sum over layers l of ``weights[l]`` times the
sum over task pairs of ||W_l^s - W_l^t||_F^2.
``penalty = "trace"`` (Yang and Hospedales, ICLR 2017 workshop, "Trace norm regularised deep
multi-task learning"): sum over layers of ``weights[l]`` times the nuclear norm of the
(tasks, numel) matrix whose rows are the flattened W_l^t.
Only weight tensors (names containing "weight") are tied; biases are free.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError
from mtlshare.models.trunks import Backbone
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import PerTaskCopies, as_layers, run_layers
from mtlshare.tasks.task import Task

PENALTIES = ("frobenius", "trace")


@dataclass
class SoftConfig:
    """``[soft]``: the penalty and its weight per layer (one number for all, or one per layer)."""

    penalty: str = "frobenius"
    weights: list[float] = field(default_factory=lambda: [0.01])


def frobenius_penalty(stacked: Tensor) -> Tensor:
    """Sum over task pairs of squared Frobenius distances. ``stacked``: (tasks, numel).

    Uses sum_{s<t} ||w_s - w_t||^2 = T * sum_t ||w_t - mean||^2, which is linear in T.
    """
    centred = stacked - stacked.mean(dim=0, keepdim=True)
    return stacked.shape[0] * (centred**2).sum()


def trace_penalty(stacked: Tensor) -> Tensor:
    """Nuclear norm (sum of singular values) of ``stacked``: (tasks, numel)."""
    return torch.linalg.svdvals(stacked).sum()


@MECHANISMS.register(
    "soft",
    config=SoftConfig,
    summary="a trunk per task, tied by a Frobenius or trace-norm penalty",
    paper="Duong et al., ACL 2015; Yang & Hospedales, ICLR-W 2017",
)
class SoftSharing(PerTaskCopies):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: SoftConfig) -> None:
        super().__init__(backbone, tasks)
        if cfg.penalty not in PENALTIES:
            raise ConfigError(f"soft.penalty: {cfg.penalty!r} is not one of {PENALTIES}")
        depth = backbone.depth
        if len(cfg.weights) == 1:
            self.weights = list(cfg.weights) * depth
        elif len(cfg.weights) == depth:
            self.weights = list(cfg.weights)
        else:
            raise ConfigError(
                f"soft.weights: give one weight or one per layer ({depth}), got {len(cfg.weights)}"
            )
        if any(w < 0 for w in self.weights):
            raise ConfigError(f"soft.weights: must be >= 0, got {cfg.weights}")
        self.penalty = frobenius_penalty if cfg.penalty == "frobenius" else trace_penalty

    def forward(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](run_layers(self.trunks[task], self.stems[task](x)))

    def regularizer(self) -> Tensor:
        names = self.task_names
        total = torch.zeros(())
        for layer, weight in enumerate(self.weights):
            if weight == 0.0 or len(names) < 2:
                continue
            copies = [dict(as_layers(self.trunks[n])[layer].named_parameters()) for n in names]
            for pname in copies[0]:
                if "weight" in pname:
                    stacked = torch.stack([c[pname].reshape(-1) for c in copies])
                    total = total + weight * self.penalty(stacked)
        return total

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from ()
