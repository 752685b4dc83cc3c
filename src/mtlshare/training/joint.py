"""Joint steps (``train.schedule = "joint"``): every step takes a batch of every task (one batch
labelled for all of them when the tasks read the same data) and makes one update from all
their losses.

Two ways to the update:

- summed: one backward over the weighted sum of the task losses (fixed, uncertainty, DWA,
  GradNorm and RLW weightings), the mechanism computing shared layers once for every task where
  it can (``SharingModel.forward_tasks``);
- per task: a backward per task, each task's gradient kept apart, then combined: by a gradient
  aggregator of torchjd over the parameters that two or more tasks' gradients reach (a
  parameter one task alone reaches gets that task's gradient), or by the weighted sum when the
  mechanism needs a pass per task (sparse sharing: a task's gradient stays inside its mask).
  The mechanism's regularizer adds its own gradient to the result, outside the aggregation.

Under torchrun every process averages each backward's gradients (DistributedDataParallel), and
takes rank 0's aggregated update and GradNorm weight gradient, so all of them make the same
update.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch
from torch import Tensor, nn
from tqdm import tqdm

from mtlshare.data.datasets import BatchStream, TaskData, by_share, share_of
from mtlshare.errors import ConfigError, MtlshareError
from mtlshare.sharing.base import SharingModel
from mtlshare.tasks.metrics import IGNORE_INDEX
from mtlshare.training.aggregators import (
    make_aggregator,
    set_warm_start,
    warm_start,
    watch_weights,
)
from mtlshare.training.distributed import Dist, from_rank0, mean_over_processes_tensor
from mtlshare.training.objective import REGULARIZER, LossWeighting
from mtlshare.training.settings import TrainConfig


class Trainer(Protocol):
    """What joint steps reach of the training loop (``loop.Trainer``)."""

    model: SharingModel
    data: dict[str, TaskData]
    cfg: TrainConfig
    weighting: LossWeighting
    dist: Dist
    device: torch.device
    global_step: int
    last_counts: dict[str, int]
    tokens_seen: int
    names: list[str]
    objective: nn.Module
    objective_regularized: bool

    def parameters(self) -> list[nn.Parameter]: ...

    def _generator(self, *parts: int) -> torch.Generator: ...

    def _place(self) -> tuple[int, int]: ...


Batches = dict[str, tuple[Tensor, Tensor]]


def check_joint(kind: str, model: SharingModel) -> nn.Parameter | None:
    """Whether ``model`` can take joint steps weighted by ``kind`` (a ``ConfigError`` naming
    the problem if not), checked before a run writes anything; for GradNorm, the weight matrix
    it measures the tasks' gradients at (the last shared layer's, as the paper), else ``None``.
    An aggregator combines the tasks' gradients of the parameters two or more tasks reach: a
    model that shares none, or trains none of those it shares, leaves it nothing to combine."""
    if kind == "aggregator":
        _trained_shared(
            model,
            list(model.shared_parameters()),
            "aggregator",
            "shared parameters, whose tasks' gradients it combines",
        )
        return None
    if kind != "gradnorm":
        return None
    name = type(model).__name__
    if not model.joint_backward:
        raise ConfigError(
            "weighting.kind = 'gradnorm' needs one backward over the summed losses; "
            f"{name} takes one per task (use dwa, rlw or an aggregator)"
        )
    shared = [p for p in model.shared_parameters() if p.dim() >= 2]
    weights = _trained_shared(
        model, shared, "gradnorm", "a shared weight matrix to measure the tasks' gradients at"
    )
    return weights[-1]


def _trained_shared(
    model: SharingModel, shared: list[nn.Parameter], kind: str, needs: str
) -> list[nn.Parameter]:
    """Those of ``shared`` that training updates; a ``ConfigError`` saying why there are none
    (the model shares none, or freezes every one it shares: adapters.freeze_trunk)."""
    trained = [p for p in shared if p.requires_grad]
    if not trained:
        why = "shares none" if not shared else "trains none of those it shares: they are frozen"
        raise ConfigError(f"weighting.kind = {kind!r} needs {needs}; {type(model).__name__} {why}")
    return trained


class JointStepper:
    """Makes the joint steps of one ``Trainer``."""

    def __init__(self, trainer: Trainer) -> None:
        self.t = trainer
        weighting, model = trainer.weighting, trainer.model
        self.aggregate: Callable[[Tensor], Tensor] | None = None
        if weighting.kind == "aggregator":
            cfg = weighting.cfg
            self.aggregate = make_aggregator(cfg.aggregator, len(trainer.names), cfg.cagrad_c)
            watch_weights(self.aggregate, self._record_weights)
        self._rows: list[str] = []  # the tasks of the rows the aggregator combines now
        self._shares: dict[str, float] = {}  # this step's share of the global batch, per task
        self.per_task = self.aggregate is not None or not model.joint_backward
        self.gradnorm_at = check_joint(weighting.kind, model)

    def run(
        self,
        optimizer: torch.optim.Optimizer,
        names: list[str],
        steps: int,
        epoch: int,
        bar: tqdm | None = None,
    ) -> dict[str, float]:
        """``steps`` joint steps over ``names``: every task's next batch each step, one batch
        of rows for all of them when they read the same data."""
        t = self.t
        splits = [t.data[n].train for n in names]
        shared = all(s.same_inputs(splits[0]) for s in splits)
        streams = [
            BatchStream(s, t.cfg.batch_size, t._generator(epoch, i), *t._place())
            for i, s in enumerate(splits[:1] if shared else splits)
        ]
        sums = {n: 0.0 for n in names}
        for _ in range(steps):
            batches: dict[str, tuple[Tensor, Tensor]] = {}
            # each task's share of the global batch (see ``BatchStream.next``): of its own
            # observed labels, also where the tasks label the same rows
            self._shares = {}
            rows = streams[0].next_rows() if shared else None
            for k, n in enumerate(names):
                if rows is not None:  # the same rows, the task's own labels
                    x, y = splits[k].take(rows[0])
                    x = batches[names[0]][0] if k > 0 else x  # one input tensor: one pass
                    share = share_of(splits[k], rows[0], rows[1], streams[0].world)
                else:
                    idx, share = streams[k].next_index()
                    x, y = splits[k].take(idx)
                batches[n] = (x, y)
                self._shares[n] = share
                if splits[k].lengths is not None:
                    t.tokens_seen += int((y != IGNORE_INDEX).sum())
            for n, loss in self.step(optimizer, batches).items():
                sums[n] += by_share(loss, self._shares[n])
            if bar is not None:
                bar.update(1)
        t.last_counts = {n: steps for n in names}
        return {n: sums[n] / steps for n in names} if steps else {}

    def step(self, optimizer: torch.optim.Optimizer, batches: Batches) -> dict[str, float]:
        """One update from every task's batch; returns each task's raw loss."""
        t = self.t
        if not t.model.training:
            t.model.train()
        t.weighting.begin_step(t.global_step)
        moved: dict[int, Tensor] = {}  # a batch shared by every task stays one tensor

        def to(v: Tensor) -> Tensor:
            return moved.setdefault(id(v), v.to(t.device))

        batches = {n: (to(x), y.to(t.device)) for n, (x, y) in batches.items()}
        if self.per_task:
            losses = self._per_task(optimizer, batches)
        else:
            losses = self._summed(optimizer, batches)
        if t.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(t.parameters(), t.cfg.grad_clip)
        optimizer.step()
        t.model.after_optimizer_step(list(batches)[-1])
        if self._gradnorm_grad is not None:
            t.weighting.apply_gradnorm(self._gradnorm_grad)
        t.global_step += 1
        return losses

    _gradnorm_grad: Tensor | None = None

    def _summed(self, optimizer: torch.optim.Optimizer, batches: Batches) -> dict[str, float]:
        t = self.t
        first = next(iter(batches.values()))[0]
        shared_x = all(x is first for x, _ in batches.values())
        xs = {n: first if shared_x else x for n, (x, _) in batches.items()}
        ys = {n: y for n, (_, y) in batches.items()}
        loss, raws = t.objective(xs, ys, None, shares=self._shares)
        self._check(loss, list(batches))
        optimizer.zero_grad(set_to_none=True)
        self._gradnorm_grad = None
        if self.gradnorm_at is not None:
            named = dict(zip(batches, raws, strict=True))
            if t.dist.enabled:  # the global batch's losses and gradients, not rank 0's
                scaled = {n: by_share(r, self._shares[n]) for n, r in named.items()}
                w_grad = t.weighting.gradnorm_update(
                    scaled, self.gradnorm_at, lambda x: mean_over_processes_tensor(x, t.dist)
                )
            else:
                w_grad = t.weighting.gradnorm_update(named, self.gradnorm_at)
            self._gradnorm_grad = from_rank0(w_grad.cpu(), t.dist).to(w_grad.device)
        loss.backward()
        return {n: float(r.detach()) for n, r in zip(batches, raws, strict=True)}

    def _per_task(self, optimizer: torch.optim.Optimizer, batches: Batches) -> dict[str, float]:
        t = self.t
        params = t.parameters()
        grads: dict[str, dict[int, Tensor]] = {}
        losses = {}
        for name, (x, y) in batches.items():
            optimizer.zero_grad(set_to_none=True)
            loss, raw = t.objective(x, y, name, alone=True)
            self._check(loss, [name])
            by_share(loss, self._shares.get(name, 1.0)).backward()
            t.model.before_optimizer_step(name)  # e.g. a task's gradient kept inside its mask
            grads[name] = {
                i: p.grad.detach().clone() for i, p in enumerate(params) if p.grad is not None
            }
            losses[name] = float(raw.detach())
        t.model.leave_task(list(batches))
        optimizer.zero_grad(set_to_none=True)
        if t.objective_regularized:
            reg, _ = t.objective(None, None, REGULARIZER)
            reg.backward()
        self._gradnorm_grad = None
        combined = self._combine(grads)
        for i, g in combined.items():
            p = params[i]
            p.grad = g if p.grad is None else p.grad + g
        return losses

    def _combine(self, grads: dict[str, dict[int, Tensor]]) -> dict[int, Tensor]:
        """Every parameter's update from the tasks' gradients: aggregated where two or more
        tasks reach it (with an aggregator), summed otherwise."""
        reached: dict[int, list[str]] = {}
        for name, per_param in grads.items():
            for i in per_param:
                reached.setdefault(i, []).append(name)
        combined = {
            i: sum((grads[n][i] for n in names[1:]), grads[names[0]][i])
            for i, names in reached.items()
            if self.aggregate is None or len(names) < 2
        }
        shared = [
            i for i, names in reached.items() if self.aggregate is not None and len(names) > 1
        ]
        if shared:
            assert self.aggregate is not None
            rows = [
                torch.cat(
                    [grads[n].get(i, torch.zeros_like(_like(grads, i))).reshape(-1) for i in shared]
                )
                for n in grads
            ]
            self._rows = list(grads)
            vector = self._aggregate(torch.stack(rows))  # (tasks, parameters) -> (parameters,)
            vector = from_rank0(vector.cpu(), self.t.dist).to(vector.device)
            offset = 0
            for i in shared:
                like = _like(grads, i)
                combined[i] = vector[offset : offset + like.numel()].view_as(like).clone()
                offset += like.numel()
        return combined

    def _aggregate(self, matrix: Tensor) -> Tensor:
        """The aggregator's update of ``matrix``; a stateful one (Nash-MTL) starts from the
        warm start in the weighting's state and leaves its new one there, so that the
        checkpoints hold it and a resumed run aggregates as the uncut one."""
        assert self.aggregate is not None
        state = getattr(self.t.weighting, "aggregator_state", None)
        if state is None:
            return self.aggregate(matrix)
        set_warm_start(self.aggregate, state)
        vector = self.aggregate(matrix)
        after = warm_start(self.aggregate)
        if after is not None:
            state.copy_(after)
        return vector

    def _record_weights(self, weights: Tensor) -> None:
        self.t.weighting.record_aggregation(dict(zip(self._rows, weights.tolist(), strict=True)))

    def _check(self, loss: Tensor, names: list[str]) -> None:
        if not torch.isfinite(loss):
            raise MtlshareError(
                f"loss is {float(loss.detach())} at joint step {self.t.global_step} on task(s) "
                f"{names}; lower train.lr or set train.grad_clip"
            )


def _like(grads: dict[str, dict[int, Tensor]], i: int) -> Tensor:
    """Some task's gradient of parameter ``i`` (for its shape)."""
    return next(g[i] for g in grads.values() if i in g)
