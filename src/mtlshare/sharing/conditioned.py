"""Task-descriptor conditioning: one network for all tasks, told which task it runs by a task
vector joined to the input of one chosen layer (Caruana 1997, section on task inputs; Yang and
Hospedales, ICLR 2017, view it as mixing shared and task-specific weights).

``mode = "concat"``: layer ``layer`` reads ``[x, d_t]``, so its weight splits into a shared part
acting on ``x`` and a task-specific part acting on ``d_t``. On a batch of sequences padded at the
end with all-zero steps, the padded steps get zeros instead of ``d_t``, so they stay padding for
a recurrent layer and a sentence's outputs do not depend on the batch it is in.
``mode = "multiply"``: layer ``layer`` reads ``x * (P d_t)`` with a learned ``P`` initialised so
that ``P d_t = 1``; with one-hot ``d_t`` each task scales the shared weight's input columns.
The task vector ``d_t`` is one-hot by default or the user's metadata (``descriptors``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError, one_of
from mtlshare.models.trunks import Backbone, real_steps
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.tasks.task import Task

MODES = ("concat", "multiply")


@dataclass
class ConditionedConfig:
    """``[conditioned]``: which layer's input gets the task vector, how, and the vectors."""

    layer: int = 0
    mode: str = "concat"
    descriptors: dict[str, list[float]] = field(default_factory=dict)


def descriptor_matrix(tasks: list[Task], descriptors: dict[str, list[float]]) -> Tensor:
    """(tasks, dim) task vectors: one-hot when ``descriptors`` is empty, else the given rows."""
    names = [t.name for t in tasks]
    if not descriptors:
        return torch.eye(len(names))
    missing = [n for n in names if n not in descriptors]
    extra = sorted(set(descriptors) - set(names))
    if missing or extra:
        raise ConfigError(
            f"conditioned.descriptors: need exactly one vector per task {names}; "
            f"missing {missing}, unknown {extra}"
        )
    dims = {len(v) for v in descriptors.values()}
    if len(dims) != 1 or 0 in dims:
        raise ConfigError(
            "conditioned.descriptors: all vectors must have the same, non-zero "
            f"length; got lengths {sorted(dims)}"
        )
    bad = [n for n in names if not all(math.isfinite(v) for v in descriptors[n])]
    if bad:
        raise ConfigError(
            f"conditioned.descriptors: every entry must be a finite number; {bad[0]} has "
            f"{descriptors[bad[0]]}"
        )
    return torch.tensor([descriptors[n] for n in names], dtype=torch.float32)


@MECHANISMS.register(
    "conditioned",
    config=ConditionedConfig,
    summary="one network, a task vector joined to a chosen layer's input",
    paper="Caruana 1997; Yang & Hospedales, ICLR 2017",
)
class ConditionedSharing(SharingModel):
    descriptors: Tensor  # (tasks, dim) buffer

    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: ConditionedConfig) -> None:
        super().__init__(tasks)
        if cfg.mode not in MODES:
            raise ConfigError(f"conditioned.mode: {cfg.mode!r} is not one of {one_of(MODES)}")
        if not 0 <= cfg.layer < backbone.depth:
            raise ConfigError(
                f"conditioned.layer: must be in [0, {backbone.depth - 1}], got {cfg.layer}"
            )
        self.mode = cfg.mode
        self.at = cfg.layer
        desc = descriptor_matrix(tasks, cfg.descriptors)
        self.register_buffer("descriptors", desc)  # (tasks, dim); not learned
        self.index = {t.name: i for i, t in enumerate(tasks)}
        in_dims = backbone.in_dims
        width = in_dims[self.at]
        self.stem = backbone.stem()
        self.layers = nn.ModuleList(
            backbone.build_layer(
                i, d + desc.shape[1] if (i == self.at and self.mode == "concat") else d
            )
            for i, d in enumerate(in_dims)
        )
        self.gate: nn.Linear | None = None
        if self.mode == "multiply":
            self.gate = nn.Linear(desc.shape[1], width, bias=False)
            with torch.no_grad():  # P d_t = 1 for every task at initialisation
                pinv = torch.linalg.pinv(desc)  # (dim, tasks)
                self.gate.weight.copy_((pinv @ torch.ones(len(tasks), width)).T)
                start = desc @ pinv.sum(1)  # (tasks,): each task's P d_t, every feature alike
            starts = zip([t.name for t in tasks], start.tolist(), strict=True)
            off = [(name, round(value, 4)) for name, value in starts if abs(value - 1) > 1e-4]
            # least squares fell short (a task's all-zero vector, one number per task that
            # differs): that layer's input would start scaled otherwise per task, or be zero
            if off:
                raise ConfigError(
                    "conditioned.descriptors: with mode = 'multiply' the learned scale starts "
                    "at 1 only when some weighted sum of the vectors' entries is 1 for every "
                    "task (give every vector a constant entry 1.0); these would start at "
                    + ", ".join(f"{name} {value:g}" for name, value in off)
                )
        self.heads = nn.ModuleDict({t.name: t.build_head(backbone.out_dims[-1]) for t in tasks})

    def _condition(self, h: Tensor, task: str) -> Tensor:
        d = self.descriptors[self.index[task]]  # (dim,)
        if self.gate is not None:
            return h * self.gate(d)
        tail = d.expand(*h.shape[:-1], d.shape[0])
        real = real_steps(h) if h.dim() == 3 else None
        if real is not None:  # padded (all-zero) steps get no task vector: they stay padding
            tail = tail * real
        return torch.cat([h, tail], dim=-1)

    def forward(self, x: Tensor, task: str) -> Tensor:
        h = self.stem(x)
        for i, layer in enumerate(self.layers):
            if i == self.at:
                h = self._condition(h, task)
            h = layer(h)
        return self.heads[task](h)

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.layers.parameters()
        if self.gate is not None:
            yield from self.gate.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.heads.parameters()
