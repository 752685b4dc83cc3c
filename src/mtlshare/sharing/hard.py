"""Hard parameter sharing (Caruana 1997): a shared trunk, then task-specific layers and heads.

``shared_layers`` of the backbone's layers are shared; each task gets its own fresh copy of the
remaining layers and its own head. ``shared_layers = -1`` (the default) shares every layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor, nn

from mtlshare.errors import ConfigError
from mtlshare.models.trunks import Backbone
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel, run_layers
from mtlshare.tasks.task import Task


@dataclass
class HardConfig:
    """``[hard]``: how many trunk layers are shared (-1: all); the rest are task-specific."""

    shared_layers: int = -1


@MECHANISMS.register(
    "hard",
    config=HardConfig,
    summary="shared trunk, task-specific layers",
    paper="Caruana, Multitask Learning, Machine Learning 1997",
)
class HardSharing(SharingModel):
    add_task_strategy = "new head on the frozen shared trunk"

    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: HardConfig) -> None:
        super().__init__(tasks)
        depth = backbone.depth
        k = depth if cfg.shared_layers == -1 else cfg.shared_layers
        if not 0 <= k <= depth:
            raise ConfigError(
                f"hard.shared_layers: must be -1 or in [0, {depth}] for a trunk of "
                f"{depth} layers, got {cfg.shared_layers}"
            )
        self.n_shared = k
        self.stem = backbone.stem()
        self.shared = backbone.layers(0, k)
        self.private = nn.ModuleDict({t.name: backbone.layers(k, depth) for t in tasks})
        self.heads = nn.ModuleDict({t.name: t.build_head(backbone.out_dims[-1]) for t in tasks})

    def forward(self, x: Tensor, task: str) -> Tensor:
        h = run_layers(self.shared, self.stem(x))
        return self.heads[task](run_layers(self.private[task], h))

    def forward_tasks(self, x: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        h = run_layers(self.shared, self.stem(x))  # the shared trunk once for every task
        return {t: self.heads[t](run_layers(self.private[t], h)) for t in tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.shared.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.private[task].parameters()
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.heads.parameters()
