"""Soft parameter sharing: one trunk per task, corresponding layers tied by a penalty.

``penalty = "frobenius"`` (Duong et al., ACL 2015): sum over layers l of ``weights[l]`` times the
sum over task pairs of ||W_l^s - W_l^t||_F^2.
``penalty = "trace"`` (Yang and Hospedales, ICLR 2017 workshop, "Trace norm regularised deep
multi-task learning"): sum over layers of ``weights[l]`` times the nuclear norm of the
(tasks, numel) matrix whose rows are the flattened W_l^t, one such norm for each weight tensor
of the layer (an LSTM layer's input and recurrent weights, each direction's, are tied apart).
Only weight tensors (names containing "weight") are tied; biases are free.

A step of one task needs only its share of the penalty, which keeps a step's cost independent
of the number of tasks T. For the Frobenius penalty, the gradient of the whole penalty with
respect to task t's copy is 2 T (W_t - mean), the gradient of T ||W_t - mean||^2 with the mean
held fixed: a running sum of the copies (updated from the one copy a step moves, rebuilt every
T steps) gives it in one pass over W_t. For the trace norm, task t's row of the gradient U V^T
is row t of (S S^T)^(-1/2) S for the stacked copies S: a (T, T) Gram matrix kept up to date row
by row gives it in one pass over the T copies (O(T) per step: the maths couples every copy).
The Gram matrix and its inverse square root are in float64: the penalty pulls the copies
together, where float32's (S S^T)^(-1/2) loses the small singular directions and the share's
gradient drifts from the whole penalty's (at copies 1e-5 apart, by 68%).
A step's share is scaled by how many steps one of this task's stands for, so that the expected
gradient over the tasks' steps is the whole penalty's; only task t's copy moves in its step
(before, every step moved every copy). Joint steps use the whole penalty.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError, one_of
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


def relative_distances(copies: list[Tensor]) -> list[list[float]]:
    """How far apart the tasks' copies of one layer's weights are: row s, column t is
    ||w_s - w_t|| over the mean of ||w_s|| and ||w_t||, for the copies flattened (one a task).
    0 where two copies are equal (shared, as in hard sharing), about 1.41 for two unrelated
    copies of equal norm, 2 for opposite ones; two zero copies are 0 apart."""
    flat = [c.detach().reshape(-1).double() for c in copies]
    norms = [float(torch.linalg.vector_norm(c)) for c in flat]
    rows = []
    for s, a in enumerate(flat):
        row = []
        for t, b in enumerate(flat):
            gap = float(torch.linalg.vector_norm(a - b))
            row.append(0.0 if gap == 0.0 else gap / ((norms[s] + norms[t]) / 2))
        rows.append(row)
    return rows


def _weight_names(layer: nn.Module) -> list[str]:
    """The names of ``layer``'s weight tensors, the ones a penalty ties (biases stay free)."""
    return [pname for pname, _ in layer.named_parameters() if "weight" in pname]


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
            raise ConfigError(f"soft.penalty: {cfg.penalty!r} is not one of {one_of(PENALTIES)}")
        depth = backbone.depth
        if len(cfg.weights) == 1:
            self.weights = list(cfg.weights) * depth
        elif len(cfg.weights) == depth:
            self.weights = list(cfg.weights)
        else:
            raise ConfigError(
                f"soft.weights: give one weight or one per layer ({depth}), got {len(cfg.weights)}"
            )
        if not all(w >= 0 and math.isfinite(w) for w in self.weights):
            raise ConfigError(f"soft.weights: must be >= 0 and finite, got {cfg.weights}")
        self.penalty = frobenius_penalty if cfg.penalty == "frobenius" else trace_penalty
        # what a step of one task needs of the penalty, kept up to date (see the module doc)
        self._running: dict[tuple[int, str], Tensor] | None = None
        self._since = 0
        # each copy's version counter when the running sums last took it in: a copy changed
        # in any other way (a caller's own loop that skips ``after_optimizer_step``) rebuilds
        self._versions: dict[tuple[str, int, str], int] = {}
        self._before: dict[tuple[int, str], Tensor] | None = None
        self._copies: dict[tuple[str, int, str], nn.Parameter] | None = None

    def forward(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](run_layers(self.trunks[task], self.stems[task](x)))

    def _tied(self) -> list[tuple[int, str, float]]:
        """(layer, parameter name, weight) of every tied weight tensor."""
        first = as_layers(self.trunks[self.task_names[0]])
        return [
            (layer, pname, weight)
            for layer, weight in enumerate(self.weights)
            if weight != 0.0
            for pname in _weight_names(first[layer])
        ]

    def _copy(self, task: str, layer: int, pname: str) -> nn.Parameter:
        if self._copies is None:  # parameter objects are stable: looked up once
            self._copies = {
                (t, i, name): param
                for t in self.task_names
                for i, module in enumerate(as_layers(self.trunks[t]))
                for name, param in module.named_parameters()
            }
        return self._copies[(task, layer, pname)]

    def _stacked(self, layer: int, pname: str) -> Tensor:
        """(tasks, numel): every task's copy of one tied tensor, flattened."""
        return torch.stack([self._copy(t, layer, pname).reshape(-1) for t in self.task_names])

    def regularizer(self, task: str | None = None, every: float = 1.0) -> Tensor:
        names = self.task_names
        if len(names) < 2:
            return torch.zeros(())
        if task is None:  # the whole penalty: every copy may move
            self._running = None
            return self._whole()
        if self.penalty is trace_penalty:
            return self._trace_share(task, every)
        return self._frobenius_share(task, every)

    def _whole(self) -> Tensor:
        total = torch.zeros(())
        for layer, pname, weight in self._tied():
            total = total + weight * self.penalty(self._stacked(layer, pname))
        return total

    def _frobenius_share(self, task: str, every: float) -> Tensor:
        running = self._running_sums()
        n = len(self.task_names)
        total = torch.zeros(())
        for layer, pname, weight in self._tied():
            own = self._copy(task, layer, pname)
            mean = running[(layer, pname)] / n
            total = total + weight * every * n * ((own - mean) ** 2).sum()
        return total

    def _trace_share(self, task: str, every: float) -> Tensor:
        i = self.task_names.index(task)
        grams = self._running_sums()
        total = torch.zeros(())
        for layer, pname, weight in self._tied():
            own_dtype = self._copy(task, layer, pname).dtype
            values, vectors = torch.linalg.eigh(grams[(layer, pname)])
            inv_sqrt = vectors @ torch.diag(values.clamp_min(1e-12).rsqrt()) @ vectors.T
            with torch.no_grad():  # task t's row of U V^T
                row = (inv_sqrt[i] @ self._stacked(layer, pname).double()).to(own_dtype)
            # only task t's copy in the graph: the other copies get no gradient at all (a zero
            # one would still let momentum move them)
            own = self._copy(task, layer, pname).reshape(-1)
            total = total + weight * every * (own * row).sum()
        return total

    @torch.no_grad()
    def _running_sums(self) -> dict[tuple[int, str], Tensor]:
        """Per tied tensor: the sum of the copies (Frobenius) or their Gram matrix (trace),
        rebuilt from the copies when missing or every T steps (bounding rounding drift)."""
        n = len(self.task_names)
        if self._running is None or self._since >= n or self._moved_unseen():
            self._running, self._since = {}, 0
            for layer, pname, _ in self._tied():
                copies = [self._copy(t, layer, pname).detach() for t in self.task_names]
                for t in self.task_names:
                    self._versions[(t, layer, pname)] = self._copy(t, layer, pname)._version
                if self.penalty is trace_penalty:
                    flat = torch.stack([c.reshape(-1) for c in copies]).double()
                    self._running[(layer, pname)] = flat @ flat.T
                else:
                    self._running[(layer, pname)] = torch.stack(copies).sum(0)
        return self._running

    def _moved_unseen(self) -> bool:
        """Whether a tied copy changed since the running sums took it in."""
        return any(
            self._copy(t, layer, pname)._version != self._versions.get((t, layer, pname))
            for layer, pname, _ in self._tied()
            for t in self.task_names
        )

    @torch.no_grad()
    def before_optimizer_step(self, task: str) -> None:
        if self._running is not None:
            self._before = {
                (layer, pname): self._copy(task, layer, pname).detach().clone()
                for layer, pname, _ in self._tied()
            }

    @torch.no_grad()
    def after_optimizer_step(self, task: str) -> None:
        """Bring the running sums up to date with the one copy the step moved."""
        if self._running is None or self._before is None:
            return
        i = self.task_names.index(task)
        for (layer, pname), old in self._before.items():
            new = self._copy(task, layer, pname).detach()
            if self.penalty is trace_penalty:
                flat = self._stacked(layer, pname).double()
                row = flat @ flat[i]
                gram = self._running[(layer, pname)]
                gram[i, :], gram[:, i] = row, row
            else:
                self._running[(layer, pname)] += new - old
            self._versions[(task, layer, pname)] = new._version
        self._before = None
        self._since += 1

    def load_state_dict(self, *args: Any, **kwargs: Any) -> Any:
        self._running = None  # every copy may have changed
        return super().load_state_dict(*args, **kwargs)

    def _apply(self, fn: Any, recurse: bool = True) -> SoftSharing:
        self._running = None
        super()._apply(fn, recurse)
        return self

    def report(self) -> dict[str, Any]:
        """``results.json``'s ``soft``: the penalty's weight per layer and, per layer index, the
        relative distances between the tasks' copies of its weight tensors (taken together;
        biases are never tied) in the selected model, a matrix in the order of ``tasks``
        (``relative_distances``): how close the penalty held the copies (0: shared as in hard
        sharing)."""
        names = self.task_names
        distances = {}
        for layer, module in enumerate(as_layers(self.trunks[names[0]])):
            tied = _weight_names(module)  # those a penalty ties, at weight 0 too
            if tied:
                copies = [
                    torch.cat([self._copy(t, layer, p).detach().reshape(-1) for p in tied])
                    for t in names
                ]
                rows = relative_distances(copies)
                distances[str(layer)] = [[round(v, 6) for v in row] for row in rows]
        return {"soft": {"tasks": names, "weights": self.weights, "distances": distances}}

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from ()
