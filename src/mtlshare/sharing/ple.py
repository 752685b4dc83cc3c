"""Customized Gate Control and Progressive Layered Extraction (Tang et al., "Progressive Layered
Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized Recommendations",
RecSys 2020).

A CGC level has ``shared_experts`` experts every task reads and ``task_experts`` experts of
each task's own; task t's gate mixes the shared experts and t's own. PLE stacks ``levels`` such
levels: the trunk's layers are split into ``levels`` consecutive slices (so the network is as
deep as the trunk), every expert of level l is a fresh copy of slice l, task t's experts read
t's stream and the shared experts read a shared stream, which between levels is the mixture of
a shared gate over every expert of the level (shared and every task's). Gates are softmaxes of
a linear map of their stream; on a sequence trunk, one mixture per position.

A task added to a trained model (``mtlshare add-task``) gets its own gates and experts; its
experts stay out of the shared gates (``feeds`` = 0), so the trained tasks' streams are unchanged.

``state_dict``: ``stem.*``, ``levels.L.shared.E.*``, ``levels.L.own.TASK.E.*``,
``levels.L.gates.TASK.*``, ``levels.L.shared_gate.{base,tasks.TASK}.*`` (not on the last level)
and ``heads.TASK.*``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError
from mtlshare.models.trunks import Backbone
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import as_layers, run_layers
from mtlshare.sharing.gating import Gate, GateTally, level_bounds, mix, real_positions
from mtlshare.sharing.gating.base import GatedSharing
from mtlshare.sharing.gating.layers import SHARED, LevelLayout
from mtlshare.tasks.task import Task


@dataclass
class PLEConfig:
    """``[ple]``: experts per level shared by all tasks and owned by each task, and how many
    CGC levels (1: CGC; at most the trunk's number of layers)."""

    shared_experts: int = 1
    task_experts: int = 1
    levels: int = 1

    def validate(self) -> None:
        for key in ("shared_experts", "task_experts", "levels"):
            if getattr(self, key) < 1:
                raise ConfigError(f"ple.{key}: must be >= 1, got {getattr(self, key)}")


class TaskLogits(nn.Module):
    """A task's experts' logits in a shared gate, and whether they take part (``feeds``)."""

    feeds: Tensor

    def __init__(self, in_dim: int, n: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, n)
        self.register_buffer("feeds", torch.ones(()))


class SharedGate(nn.Module):
    """The gate of the shared stream between levels: a softmax over the shared experts and the
    experts of every task that ``feeds`` it."""

    def __init__(self, in_dim: int, n_shared: int, n_own: int, tasks: list[str]) -> None:
        super().__init__()
        self.base = nn.Linear(in_dim, n_shared)
        self.tasks = nn.ModuleDict({t: TaskLogits(in_dim, n_own) for t in tasks})

    def part(self, task: str) -> TaskLogits:
        part = self.tasks[task]
        assert isinstance(part, TaskLogits)
        return part

    def feeding(self) -> list[str]:
        """The tasks whose experts this gate mixes, in order."""
        return [t for t in self.tasks if bool(self.part(t).feeds)]

    def forward(self, h: Tensor) -> Tensor:
        logits = [self.base(h), *(self.part(t).linear(h) for t in self.feeding())]
        return torch.softmax(torch.cat(logits, dim=-1), dim=-1)


class CGCLevel(nn.Module):
    """One level: shared experts, each task's experts and gate, and a shared gate unless last."""

    def __init__(
        self, backbone: Backbone, bounds: tuple[int, int], tasks: list[str], cfg: PLEConfig
    ) -> None:
        super().__init__()
        start, stop = bounds
        width = backbone.in_dims[start]
        self.shared = nn.ModuleList(backbone.layers(start, stop) for _ in range(cfg.shared_experts))
        self.own = nn.ModuleDict(
            {
                t: nn.ModuleList(backbone.layers(start, stop) for _ in range(cfg.task_experts))
                for t in tasks
            }
        )
        n = cfg.shared_experts + cfg.task_experts
        key = "ple.shared_experts + ple.task_experts"
        self.gates = nn.ModuleDict({t: Gate(width, n, key) for t in tasks})
        last = stop == backbone.depth
        self.shared_gate = (
            None if last else SharedGate(width, cfg.shared_experts, cfg.task_experts, tasks)
        )

    def experts_of(self, task: str) -> nn.ModuleList:
        """``task``'s own experts at this level."""
        return as_layers(self.own[task])


@MECHANISMS.register(
    "ple",
    config=PLEConfig,
    summary="shared and per-task experts mixed by per-task gates, in stacked levels (CGC/PLE)",
    paper="Tang et al., RecSys 2020",
)
class PLESharing(GatedSharing):
    add_task_strategy = "own gates and experts beside the frozen shared experts"

    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: PLEConfig) -> None:
        super().__init__(tasks)
        cfg.validate()
        bounds = level_bounds(backbone.depth, cfg.levels, "ple.levels")
        names = [t.name for t in tasks]
        self.stem = backbone.stem()
        self.levels = nn.ModuleList(CGCLevel(backbone, b, names, cfg) for b in bounds)
        self.heads = nn.ModuleDict({t.name: t.build_head(backbone.out_dims[-1]) for t in tasks})

    def _levels(self) -> list[CGCLevel]:
        return [level for level in self.levels if isinstance(level, CGCLevel)]

    def gated_forward(
        self, x: Tensor, tasks: list[str], tally: GateTally | None
    ) -> dict[str, Tensor]:
        shared = self.stem(x)  # (batch, in) or (batch, time, in)
        real = real_positions(shared) if tally is not None else None
        streams = dict.fromkeys(tasks, shared)  # each task's stream into the level
        for i, level in enumerate(self._levels()):
            gate = level.shared_gate
            # a shared gate mixes the experts of every task that feeds it: run their streams too
            feeding = gate.feeding() if gate is not None else []
            if gate is None:  # the last level: only the asked tasks' streams are still needed
                streams = {t: streams[t] for t in tasks}
            for t in feeding:
                streams.setdefault(t, shared)
            outs = [run_layers(expert, shared) for expert in level.shared]
            own = {t: [run_layers(e, h) for e in level.experts_of(t)] for t, h in streams.items()}
            if gate is not None:
                weights = gate(shared)
                if tally is not None:
                    tally.add(i, SHARED, weights, real)
                shared = mix(weights, outs + [o for t in feeding for o in own[t]])
            for t, h in list(streams.items()):
                weights = level.gates[t](h)
                if tally is not None and t in tasks:
                    tally.add(i, t, weights, real)
                streams[t] = mix(weights, outs + own[t])
        return {t: self.heads[t](streams[t]) for t in tasks}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        for level in self._levels():
            yield from level.shared.parameters()
            if level.shared_gate is not None:  # every task reads the shared stream
                yield from level.shared_gate.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        for level in self._levels():
            yield from level.own[task].parameters()
            yield from level.gates[task].parameters()
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.heads.parameters()

    # -- adding tasks: own gates and experts; the new experts stay out of the shared stream ----
    def freeze_for_new_tasks(self, trained: list[str], new: list[str]) -> None:
        super().freeze_for_new_tasks(trained, new)
        for level in self._levels():
            if level.shared_gate is not None:
                for t in new:
                    level.shared_gate.part(t).feeds.fill_(0.0)

    # -- what the gates do on dev ---------------------------------------------------------------
    def gate_layout(self) -> list[LevelLayout]:
        layouts = []
        for level in self._levels():
            n_shared = len(level.shared)
            names = [f"shared-{i + 1}" for i in range(n_shared)]
            first: dict[str, int] = {}
            for t in self.tasks:
                first[t] = len(names)
                names += [f"{t}-{i + 1}" for i in range(len(level.experts_of(t)))]
            own = {
                t: list(range(first[t], len(level.experts_of(t)) + first[t])) for t in self.tasks
            }
            tasks = {t: [*range(n_shared), *own[t]] for t in self.tasks}
            gate = level.shared_gate
            shared = None
            if gate is not None:
                shared = [*range(n_shared), *(i for t in gate.feeding() for i in own[t])]
            layouts.append(LevelLayout(names, tasks, shared))
        return layouts
