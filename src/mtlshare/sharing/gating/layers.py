"""Gates and mixtures of experts over any trunk (Ma et al., KDD 2018; Tang et al., RecSys 2020).

An expert is a fresh copy of trunk layers (``Backbone.layers``), so it is an MLP, a 1-d
convolution or a BiLSTM/GRU as the trunk is. A gate is a linear map of its input followed by a
softmax over the experts it mixes: (batch, in) -> (batch, n) for an MLP trunk, and
(batch, time, in) -> (batch, time, n) for a sequence trunk, one mixture per position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError


class Gate(nn.Module):
    """Softmax gate over ``n`` experts: (..., in_dim) -> (..., n), every row summing to 1.
    ``key`` is the config key that sets ``n``, named in the error when there is no expert."""

    def __init__(self, in_dim: int, n: int, key: str) -> None:
        super().__init__()
        if n < 1:
            raise ConfigError(f"{key}: a gate needs at least one expert to mix, got {n}")
        self.linear = nn.Linear(in_dim, n)

    def forward(self, h: Tensor) -> Tensor:
        return torch.softmax(self.linear(h), dim=-1)


def mix(weights: Tensor, outputs: list[Tensor]) -> Tensor:
    """sum_e weights[..., e] * outputs[e]: (..., n) weights and n expert outputs (..., d) ->
    (..., d). With one expert (weight exactly 1) the output is that expert's, bit for bit."""
    stacked = torch.stack(outputs, dim=-1)  # (..., d, n)
    return (stacked * weights.unsqueeze(-2)).sum(-1)


def level_bounds(depth: int, levels: int, key: str) -> list[tuple[int, int]]:
    """Split ``depth`` trunk layers into ``levels`` consecutive slices, as even as possible
    (earlier levels take the extra layer): 3 layers in 2 levels -> [(0, 2), (2, 3)]."""
    if levels < 1:
        raise ConfigError(f"{key}: must be >= 1, got {levels}")
    if levels > depth:
        raise ConfigError(
            f"{key}: {levels} levels need at least {levels} trunk layers (each level's experts "
            f"are a slice of the trunk), but trunk.hidden gives {depth}"
        )
    size, extra = divmod(depth, levels)
    bounds, start = [], 0
    for i in range(levels):
        stop = start + size + (1 if i < extra else 0)
        bounds.append((start, stop))
        start = stop
    return bounds


def real_positions(h: Tensor) -> Tensor | None:
    """Which positions of a sequence batch hold data (bool, (batch, time)): the input encoder
    pads with all-zero steps. None for (batch, features) inputs, where every row is real."""
    return h.ne(0).any(-1) if h.dim() == 3 else None


@dataclass
class LevelLayout:
    """Which experts a level has (their names, in report order) and which of them each gate
    mixes, in the gate's own order: ``tasks[t]`` for task t's gate, ``shared`` for the gate of
    the shared stream between levels (None where there is none)."""

    experts: list[str]
    tasks: dict[str, list[int]]
    shared: list[int] | None = None


SHARED = None  # the row key of a level's shared gate in a ``GateTally``


@dataclass
class GateTally:
    """Sums of gate weights over the real positions of a split, per level and gate (a task's,
    or the shared gate: row None), and how many positions went in."""

    sums: dict[tuple[int, str | None], Tensor] = field(default_factory=dict)
    counts: dict[tuple[int, str | None], int] = field(default_factory=dict)

    def add(self, level: int, row: str | None, weights: Tensor, real: Tensor | None) -> None:
        """Add one batch of a gate's weights (..., n); ``real`` marks the positions to count."""
        rows = weights[real] if real is not None else weights.reshape(-1, weights.shape[-1])
        key = (level, row)
        total = rows.detach().double().sum(0).cpu()
        self.sums[key] = self.sums[key] + total if key in self.sums else total
        self.counts[key] = self.counts.get(key, 0) + int(rows.shape[0])

    def mean(self, level: int, row: str | None) -> list[float] | None:
        """The mean weight per expert of a gate (in the gate's order), None if it saw nothing."""
        n = self.counts.get((level, row), 0)
        return [float(v) / n for v in self.sums[(level, row)]] if n else None

    def report(self, layouts: list[LevelLayout]) -> dict[str, object]:
        """The ``"gates"`` results of a model with these levels (``gating.report``)."""
        levels = []
        for i, layout in enumerate(layouts):
            level: dict[str, object] = {
                "experts": layout.experts,
                "tasks": {
                    t: _spread(self.mean(i, t), idx, len(layout.experts))
                    for t, idx in layout.tasks.items()
                },
            }
            if layout.shared is not None:
                level["shared"] = _spread(self.mean(i, SHARED), layout.shared, len(layout.experts))
            levels.append(level)
        positions = {t: self.counts.get((0, t), 0) for t in layouts[0].tasks}
        return {"split": "dev", "positions": positions, "levels": levels}


def _spread(means: list[float] | None, idx: list[int], n: int) -> list[float | None] | None:
    """A gate's mean weights placed at its experts' positions among the level's ``n``; None
    at experts the gate does not mix."""
    if means is None:
        return None
    out: list[float | None] = [None] * n
    for i, w in zip(idx, means, strict=True):
        out[i] = w
    return out
