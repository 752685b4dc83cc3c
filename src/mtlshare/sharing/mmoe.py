"""Multi-gate Mixture-of-Experts (Ma et al., "Modeling Task Relationships in Multi-task Learning
with Multi-gate Mixture-of-Experts", KDD 2018): ``experts`` copies of the whole trunk, all
shared, and for every task a softmax gate over them computed from the input, then its head:

    y_t = head_t( sum_e g_t(x)[e] * expert_e(x) ),  g_t(x) = softmax(W_t x + b_t)

The gate reads the input encoder's output (batch, in) -> (batch, experts); on a sequence trunk
one mixture per position, (batch, time, in) -> (batch, time, experts). Related tasks can lean
on the same experts and unrelated ones on different ones: the data decide how much they share.
With one expert this is hard sharing of the whole trunk, bit for bit.

``state_dict``: ``stem.*``, ``experts.E.L.*`` (expert E, trunk layer L), ``gates.TASK.*`` and
``heads.TASK.*``. After training, ``results.json`` holds each task's mean gate weight per expert
on dev (``"gates"``) and the run folder ``gates.png``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from torch import Tensor, nn

from mtlshare.errors import ConfigError
from mtlshare.models.trunks import Backbone
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import run_layers
from mtlshare.sharing.gating import Gate, GateTally, mix, real_positions
from mtlshare.sharing.gating.base import GatedSharing
from mtlshare.sharing.gating.layers import LevelLayout
from mtlshare.tasks.task import Task


@dataclass
class MMoEConfig:
    """``[mmoe]``: ``experts``: how many copies of the trunk every task's gate mixes."""

    experts: int = 3

    def validate(self) -> None:
        if self.experts < 1:
            raise ConfigError(
                f"mmoe.experts: must be >= 1 (experts every gate mixes), got {self.experts}"
            )


@MECHANISMS.register(
    "mmoe",
    config=MMoEConfig,
    summary="shared experts (trunk copies) mixed by a softmax gate per task",
    paper="Ma et al., KDD 2018",
)
class MMoESharing(GatedSharing):
    add_task_strategy = "new gate and head over the frozen experts"

    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: MMoEConfig) -> None:
        super().__init__(tasks)
        cfg.validate()
        self.stem = backbone.stem()
        self.experts = nn.ModuleList(backbone.layers() for _ in range(cfg.experts))
        self.gates = nn.ModuleDict(
            {t.name: Gate(backbone.input_dim, cfg.experts, "mmoe.experts") for t in tasks}
        )
        self.heads = nn.ModuleDict({t.name: t.build_head(backbone.out_dims[-1]) for t in tasks})

    def gated_forward(
        self, x: Tensor, tasks: list[str], tally: GateTally | None
    ) -> dict[str, Tensor]:
        h = self.stem(x)  # (batch, in) or (batch, time, in)
        outputs = [run_layers(expert, h) for expert in self.experts]  # once for every task
        real = real_positions(h) if tally is not None else None
        heads = {}
        for task in tasks:
            weights = self.gates[task](h)  # (..., experts)
            if tally is not None:
                tally.add(0, task, weights, real)
            heads[task] = self.heads[task](mix(weights, outputs))
        return heads

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.experts.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.gates[task].parameters()
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.heads.parameters()

    # -- what the gates do on dev ---------------------------------------------------------------
    def gate_layout(self) -> list[LevelLayout]:
        n = len(self.experts)
        everyone = list(range(n))
        return [LevelLayout([f"e{i + 1}" for i in range(n)], {t: everyone for t in self.tasks})]
