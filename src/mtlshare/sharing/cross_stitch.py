"""Cross-stitch networks (Misra et al., CVPR 2016): one trunk per task, and after chosen layers a
learnable (tasks x tasks) matrix alpha mixes the task streams: h_t <- sum_s alpha[t, s] h_s.

alpha starts at ``self_weight`` on the diagonal and shares ``1 - self_weight`` over the other
tasks (Misra et al. start at 0.9 / 0.1). ``self_weight = 1`` starts as independent networks.
A forward pass for one task runs every stream, because each stream reads the others.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError
from mtlshare.models.trunks import Backbone
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import PerTaskCopies, as_layers
from mtlshare.tasks.task import Task


@dataclass
class CrossStitchConfig:
    """``[cross_stitch]``: after which layers (0-based; empty = all) to mix, and alpha's start."""

    after: list[int] = field(default_factory=list)
    self_weight: float = 0.9


def initial_alpha(n_tasks: int, self_weight: float) -> Tensor:
    """(tasks, tasks) mixing matrix with rows summing to 1."""
    if n_tasks == 1:
        return torch.ones(1, 1)
    off = (1.0 - self_weight) / (n_tasks - 1)
    return torch.full((n_tasks, n_tasks), off) + (self_weight - off) * torch.eye(n_tasks)


@MECHANISMS.register(
    "cross_stitch",
    config=CrossStitchConfig,
    summary="a trunk per task, streams mixed by learned cross-stitch units",
    paper="Misra et al., CVPR 2016",
)
class CrossStitchSharing(PerTaskCopies):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: CrossStitchConfig) -> None:
        super().__init__(backbone, tasks)
        depth = backbone.depth
        after = sorted(set(cfg.after)) if cfg.after else list(range(depth))
        if any(not 0 <= i < depth for i in after):
            raise ConfigError(
                f"cross_stitch.after: layers must be in [0, {depth - 1}], got {cfg.after}"
            )
        if not 0.0 <= cfg.self_weight <= 1.0:
            raise ConfigError(f"cross_stitch.self_weight: must be in [0, 1], got {cfg.self_weight}")
        self.index = {t.name: i for i, t in enumerate(tasks)}
        self.alphas = nn.ParameterDict(
            {str(i): nn.Parameter(initial_alpha(len(tasks), cfg.self_weight)) for i in after}
        )

    def forward(self, x: Tensor, task: str) -> Tensor:
        """Every stream runs (the units mix them), whichever task's batch it is: under the
        alternate schedule a step costs T streams; a joint step (``forward_tasks``) serves
        every task with one pass."""
        return self.heads[task](self._streams(x)[self.index[task]])

    def forward_tasks(self, x: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        streams = self._streams(x)
        return {t: self.heads[t](streams[self.index[t]]) for t in tasks}

    def _streams(self, x: Tensor) -> Tensor:
        names = self.task_names
        streams = torch.stack([self.stems[n](x) for n in names])  # (tasks, batch, ..., width)
        trunks = [as_layers(self.trunks[n]) for n in names]
        for i in range(len(trunks[0])):
            streams = torch.stack([trunk[i](streams[k]) for k, trunk in enumerate(trunks)])
            if str(i) in self.alphas:
                streams = torch.tensordot(self.alphas[str(i)], streams, dims=1)
        return streams

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.alphas.parameters()

    def report(self) -> dict[str, Any]:
        """``results.json``'s ``cross_stitch``: the learned units of the selected model, per
        layer index, as rows ``alpha[t][s]`` (how much task t's stream reads task s's, in the
        order of ``tasks``)."""
        return {
            "cross_stitch": {
                "tasks": self.task_names,
                "units": {layer: alpha.detach().tolist() for layer, alpha in self.alphas.items()},
            }
        }
