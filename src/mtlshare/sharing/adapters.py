"""Bottleneck adapters (Houlsby et al., "Parameter-Efficient Transfer Learning for NLP", ICML
2019; Rebuffi et al., NeurIPS 2017): one shared trunk, and after chosen layers a small module
per task, x + up(act(down(x))), whose up-projection starts at zero so that every adapter is the
identity at initialisation. The trunk can be trained with the adapters or frozen (then only the
adapters and heads learn, and a task costs only its adapters and head).

Sequence padding (all-zero steps) stays zero through an adapter, so a recurrent layer after it
still sees where each sentence ends.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from mtlshare.errors import ConfigError, one_of
from mtlshare.models.trunks import ACTIVATIONS, Backbone
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.tasks.task import Task


@dataclass
class AdaptersConfig:
    """``[adapters]``: ``after``: 1-based trunk layers followed by an adapter (empty: every
    layer); ``bottleneck``: the adapters' inner width; ``activation``; ``freeze_trunk``: train
    only the adapters and the heads (the embeddings and trunk stay as initialised or loaded)."""

    after: list[int] = field(default_factory=list)
    bottleneck: int = 16
    activation: str = "relu"
    freeze_trunk: bool = False

    def validate(self) -> None:
        if self.bottleneck < 1:
            raise ConfigError(f"adapters.bottleneck: must be >= 1, got {self.bottleneck}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"adapters.activation: {self.activation!r} is not one of "
                f"{one_of(sorted(ACTIVATIONS))}"
            )


class Adapter(nn.Module):
    """x + up(act(down(x))) over the last dimension; the identity at initialisation."""

    def __init__(self, dim: int, bottleneck: int, activation: str) -> None:
        super().__init__()
        self.down = nn.Linear(dim, bottleneck)
        self.act = ACTIVATIONS[activation]()
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: Tensor) -> Tensor:
        delta = self.up(self.act(self.down(x)))
        if x.dim() == 3:  # keep padded (all-zero) steps of a sequence at zero
            delta = delta * x.ne(0).any(-1, keepdim=True)
        return x + delta


@MECHANISMS.register(
    "adapters",
    config=AdaptersConfig,
    summary="shared trunk with small per-task bottleneck modules after chosen layers",
    paper="Houlsby et al., ICML 2019; Rebuffi et al., NeurIPS 2017",
)
class AdapterSharing(SharingModel):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: AdaptersConfig) -> None:
        super().__init__(tasks)
        cfg.validate()
        depth = backbone.depth
        after = sorted(set(cfg.after)) if cfg.after else list(range(1, depth + 1))
        bad = [i for i in after if not 1 <= i <= depth]
        if bad:
            raise ConfigError(
                f"adapters.after: layers are numbered 1..{depth} for this trunk, got {bad}"
            )
        self.cfg = cfg
        self.after = after
        self.stem = backbone.stem()
        self.layers = backbone.layers()
        self.adapters = nn.ModuleDict(
            {
                t.name: nn.ModuleDict(
                    {
                        str(i): Adapter(backbone.out_dims[i - 1], cfg.bottleneck, cfg.activation)
                        for i in after
                    }
                )
                for t in tasks
            }
        )
        self.heads = nn.ModuleDict({t.name: t.build_head(backbone.out_dims[-1]) for t in tasks})
        if cfg.freeze_trunk:
            for p in self.shared_parameters():
                p.requires_grad_(False)

    def forward(self, x: Tensor, task: str) -> Tensor:
        h = self.stem(x)
        own = self.adapters[task]
        assert isinstance(own, nn.ModuleDict)
        for i, layer in enumerate(self.layers, start=1):
            h = layer(h)
            if str(i) in own:
                h = own[str(i)](h)
        return self.heads[task](h)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.layers.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.adapters[task].parameters()
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.heads.parameters()

    def report(self) -> dict[str, Any]:
        per_task = {t: sum(p.numel() for p in self.adapters[t].parameters()) for t in self.tasks}
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return {
            "adapters": {
                "after": self.after,
                "bottleneck": self.cfg.bottleneck,
                "frozen_trunk": self.cfg.freeze_trunk,
                "params_per_task": per_task,
                "trainable_params": trainable,
            }
        }
