"""The objective: weighted task losses plus the mechanism's regularizer.

Loss weightings (``[weighting] kind``):

- ``fixed``: a constant per task (``weights = {task = w}``, default 1);
- ``uncertainty``: homoscedastic uncertainty (Kendall, Gal and Cipolla, CVPR 2018): with
  s_t = log sigma_t^2 learned, task t's loss becomes exp(-s_t) * L_t + s_t;
- ``dwa``: dynamic weight average (Liu, Johns and Davison, CVPR 2019): after two epochs,
  w_t = T exp(r_t / temperature) / sum_j exp(r_j / temperature) with r_t the ratio of the task's
  mean loss in the last two epochs (1 in the first two);
- ``gradnorm``: GradNorm (Chen et al., ICML 2018): learned weights whose own loss pulls each
  task's gradient norm at the last shared weights towards the mean norm times the task's
  relative inverse training rate to the power ``alpha``; renormalised to sum to T;
- ``rlw``: random loss weighting (Lin et al., TMLR 2022): at every step w = softmax(z) with
  z ~ N(0, I), drawn from the run's seed and the step;
- ``aggregator``: no weights on the losses: the tasks' gradients of the shared parameters are
  combined by a gradient aggregator of torchjd (``training/aggregators.py``). Most aggregators'
  update is a weighted sum of the gradients; the weights logged for them are those, averaged
  over the epoch's steps (none for ``graddrop``, which has no such weights).

``fixed`` and ``uncertainty`` work with either schedule; the others with joint steps
(``train.schedule = "joint"``), where every step sees every task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.data.datasets import Problem, by_share
from mtlshare.errors import ConfigError, MtlshareError, one_of
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import INTERFACE_DOC, SharingModel
from mtlshare.training.aggregators import STATEFUL

WEIGHTINGS = ("fixed", "uncertainty", "dwa", "gradnorm", "rlw", "aggregator")
JOINT_ONLY = ("dwa", "gradnorm", "rlw", "aggregator")
# buffers that start as NaN (not set yet) and that older checkpoints lack
NAN_UNTIL_SET = ("rlw_weights", "aggregator_state")
RLW_STREAM = -2  # RLW's draws: (seed, step, -2), apart from the loop's (seed, epoch, i >= -1)


@dataclass
class WeightingConfig:
    """``[weighting]``: ``kind`` (see the module docstring); ``weights`` for "fixed";
    ``temperature`` for "dwa"; ``alpha`` (the restoring force) and ``lr`` (of the weights' own
    SGD) for "gradnorm"; ``aggregator`` (a torchjd aggregator's name) and ``cagrad_c`` for
    "aggregator"."""

    kind: str = "fixed"
    weights: dict[str, float] = field(default_factory=dict)
    temperature: float = 2.0
    alpha: float = 1.5
    lr: float = 0.025
    aggregator: str = ""
    cagrad_c: float = 0.5

    def validate(self) -> None:
        if self.kind not in WEIGHTINGS:
            raise ConfigError(f"weighting.kind: {self.kind!r} is not one of {one_of(WEIGHTINGS)}")
        for key in ("temperature", "lr"):
            value = getattr(self, key)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"weighting.{key}: must be a finite number > 0, got {value}")
        if not (self.alpha >= 0 and math.isfinite(self.alpha)):
            raise ConfigError(f"weighting.alpha: must be a finite number >= 0, got {self.alpha}")
        if not (self.cagrad_c >= 0 and math.isfinite(self.cagrad_c)):
            raise ConfigError(
                f"weighting.cagrad_c: must be a finite number >= 0, got {self.cagrad_c}"
            )
        if self.weights and self.kind != "fixed":
            raise ConfigError(
                f"weighting.weights: set only with weighting.kind = 'fixed' (kind is "
                f"{self.kind!r}, which finds the weights itself)"
            )
        if self.kind == "aggregator":
            from mtlshare.training.aggregators import check_aggregator

            check_aggregator(self.aggregator)
        elif self.aggregator:
            raise ConfigError(
                f"weighting.aggregator: set only with weighting.kind = 'aggregator' "
                f"(kind is {self.kind!r})"
            )


class LossWeighting(nn.Module):
    """Turns the tasks' raw losses into the objective. State that must survive a resume (the
    learned log-variances or GradNorm weights, DWA's epoch losses, RLW's last draw) is in its
    ``state_dict``."""

    epoch_losses: Tensor  # dwa: (2, tasks)
    initial_losses: Tensor  # gradnorm: (tasks,)
    rlw_weights: Tensor  # rlw: this step's draw (tasks,)
    aggregator_state: Tensor  # a stateful aggregator's (Nash-MTL's) warm start (tasks,)

    def __init__(self, tasks: list[str], cfg: WeightingConfig, seed: int = 0) -> None:
        super().__init__()
        cfg.validate()
        unknown = sorted(set(cfg.weights) - set(tasks))
        if unknown:
            raise ConfigError(f"weighting.weights: unknown task(s) {unknown}; tasks are {tasks}")
        if not all(w >= 0 and math.isfinite(w) for w in cfg.weights.values()):
            raise ConfigError(f"weighting.weights: must be >= 0 and finite, got {cfg.weights}")
        if cfg.kind == "fixed" and tasks and all(cfg.weights.get(t, 1.0) == 0 for t in tasks):
            # every loss times 0: the run would train nothing and report the untrained model
            raise ConfigError(
                f"weighting.weights: every task's weight is 0, so nothing is learnt; give at "
                f"least one > 0 (a task not named weighs 1), got {cfg.weights}"
            )
        if cfg.kind == "gradnorm" and len(tasks) < 2:
            raise ConfigError(
                f"weighting.kind = 'gradnorm' balances two or more tasks; this run has {tasks}"
            )
        self.kind = cfg.kind
        self.cfg = cfg
        self.seed = seed
        self.index = {t: i for i, t in enumerate(tasks)}
        self.fixed = [float(cfg.weights.get(t, 1.0)) for t in tasks]
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)), requires_grad=cfg.kind != "fixed")
        n = len(tasks)
        if cfg.kind == "dwa":  # mean training loss of the last two epochs (0: not seen yet)
            self.register_buffer("epoch_losses", torch.zeros(2, n))
        if cfg.kind == "gradnorm":
            self.gn_weights = nn.Parameter(torch.ones(n), requires_grad=False)
            self.register_buffer("initial_losses", torch.zeros(n))
        if cfg.kind == "rlw":  # this step's draw (NaN: none yet), saved with the checkpoints
            self.register_buffer("rlw_weights", torch.full((n,), float("nan")))
        if cfg.kind == "aggregator" and cfg.aggregator in STATEFUL:  # NaN: its initial one
            self.register_buffer(
                "aggregator_state", torch.full((n,), math.nan, dtype=torch.float64)
            )
        # an aggregator's weights of the tasks' gradients: summed over this epoch's steps, and
        # the last finished epoch's mean
        self._aggregated: tuple[Tensor, int] | None = None
        self._aggregated_last: dict[str, float] = {}

    # -- the alternate schedule: one task at a time ------------------------------------------
    def forward(self, task: str, loss: Tensor) -> Tensor:
        i = self.index[task]
        if self.kind == "uncertainty":
            s = self.log_vars[i]
            return torch.exp(-s) * loss + s
        if self.kind in JOINT_ONLY:
            return self.weight_vector()[i] * loss
        weight = self.fixed[i]
        return loss if weight == 1.0 else weight * loss  # x * 1.0 == x: skip the op

    # -- joint steps --------------------------------------------------------------------------
    def weight_vector(self) -> Tensor:
        """The weights applied now, one per task (constants: no gradient flows into them)."""
        n = len(self.index)
        if self.kind == "dwa":
            losses = self.epoch_losses
            if bool((losses <= 0).any()):
                return torch.ones(n, device=losses.device)
            ratios = losses[1] / losses[0]
            return n * torch.softmax(ratios / self.cfg.temperature, dim=0)
        if self.kind == "gradnorm":
            return self.gn_weights.detach()
        if self.kind == "rlw":
            if not self._rlw_drawn():  # a task's steps alone before any joint step (the
                self.begin_step(0)  # sparse search without a warm-up): step 0's draw
            return self.rlw_weights.clone()
        if self.kind == "uncertainty":
            return torch.exp(-self.log_vars.detach())
        return torch.tensor(self.fixed, device=self.log_vars.device)

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        """As ``nn.Module``'s; a checkpoint saved before a buffer of ``NAN_UNTIL_SET`` was kept
        (an RLW run's without ``rlw_weights``, a Nash-MTL run's without ``aggregator_state``)
        loads with that buffer unset (NaN), as it was."""
        for name in NAN_UNTIL_SET:  # registered only for their kind: absent otherwise
            if hasattr(self, name) and name not in state_dict:
                state_dict = {**state_dict, name: torch.full_like(getattr(self, name), math.nan)}
        return super().load_state_dict(state_dict, strict, assign)

    def _rlw_drawn(self) -> bool:
        """Whether RLW has drawn weights (its buffer starts as NaN)."""
        return not bool(self.rlw_weights.isnan().any())

    def begin_step(self, step: int) -> None:
        """Draw RLW's weights for joint step ``step`` (the same on every process)."""
        if self.kind == "rlw":
            # ints only: a str in the tuple would hash differently in every process
            # (PYTHONHASHSEED), and the ranks of a torchrun job would draw different weights
            g = torch.Generator().manual_seed(hash((self.seed, step, RLW_STREAM)) & 0x7FFF_FFFF)
            z = torch.randn(len(self.index), generator=g)
            self.rlw_weights.copy_(torch.softmax(z, dim=0))

    def combine(self, raws: dict[str, Tensor]) -> Tensor:
        """The joint step's objective from every task's raw loss."""
        return sum((self(t, raw) for t, raw in raws.items()), torch.zeros(()))

    def record_aggregation(self, weights: dict[str, float]) -> None:
        """An aggregator's weights of the tasks' gradients at one step: the update of the
        shared parameters was their weighted sum (a task without a gradient there counts 0)."""
        w = torch.zeros(len(self.index), dtype=torch.float64)
        for t, v in weights.items():
            w[self.index[t]] = v
        if self._aggregated is None:
            self._aggregated = (w, 1)
        else:
            total, steps = self._aggregated
            self._aggregated = (total + w, steps + 1)

    def end_epoch(self, mean_losses: dict[str, float]) -> None:
        """DWA: remember the epoch's mean training loss of each task; an aggregator: the mean
        of its weights over the epoch's steps."""
        if self._aggregated is not None:
            self._aggregated_last = self._aggregated_mean()
            self._aggregated = None
        if self.kind == "dwa":
            with torch.no_grad():
                self.epoch_losses[0] = self.epoch_losses[1].clone()
                for t, i in self.index.items():
                    self.epoch_losses[1, i] = float(mean_losses.get(t, 0.0))

    def gradnorm_update(
        self,
        raws: dict[str, Tensor],
        shared: nn.Parameter,
        mean: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """GradNorm's update of its weights from this step's losses and their gradients at the
        ``shared`` weights; returns the gradient of the weights (for averaging across
        processes) after applying it. Under torchrun ``mean`` averages a tensor over the
        processes and ``raws`` are each process's losses scaled by its share of the global
        batch: the losses and gradients GradNorm reads are then the global batch's."""
        if mean is not None:
            return self._gradnorm_over_processes(raws, shared, mean)
        names = list(self.index)
        losses = torch.stack([raws[t] for t in names])
        self._set_initial_losses(losses.detach())
        w = self.gn_weights.detach().clone().requires_grad_(True)
        norms = []
        for i in range(len(names)):
            (grad,) = torch.autograd.grad(
                w[i] * losses[i], shared, retain_graph=True, create_graph=True
            )
            norms.append(grad.norm())
        g = torch.stack(norms)
        ratio = losses.detach() / self.initial_losses.clamp_min(1e-12)
        target = (g.mean() * (ratio / ratio.mean()) ** self.cfg.alpha).detach()
        (w_grad,) = torch.autograd.grad((g - target).abs().sum(), w)
        return w_grad

    def _gradnorm_over_processes(
        self, raws: dict[str, Tensor], shared: nn.Parameter, mean: Callable[[Tensor], Tensor]
    ) -> Tensor:
        """``gradnorm_update`` from the global batch's losses and gradients: each task's
        gradient at ``shared`` averaged over the processes, then its norm. With positive
        weights ``|grad(w_i L_i)| = w_i |grad L_i|``, so the weights' gradient is
        ``sign(g_i - target_i) |grad L_i|``, what autograd gives one process."""
        names = list(self.index)
        losses = mean(torch.stack([raws[t].detach() for t in names]))
        self._set_initial_losses(losses)
        grads = [
            torch.autograd.grad(raws[t], shared, retain_graph=True)[0].reshape(-1) for t in names
        ]
        norms = mean(torch.stack(grads)).norm(dim=1)
        g = self.gn_weights.detach() * norms
        ratio = losses / self.initial_losses.clamp_min(1e-12)
        target = g.mean() * (ratio / ratio.mean()) ** self.cfg.alpha
        return torch.sign(g - target) * norms

    @torch.no_grad()
    def _set_initial_losses(self, losses: Tensor) -> None:
        """GradNorm's L_i(0): each task's first loss that is not 0. A task whose first batch
        has no observed label has a loss of 0 there (``Task.loss``), not a loss to measure its
        training rate against: it keeps waiting for one (its ratio over a 0 clamped to 1e-12
        would set its target at T times the mean norm for the whole run)."""
        unset = self.initial_losses == 0
        if bool(unset.any()):
            self.initial_losses.copy_(torch.where(unset, losses, self.initial_losses))

    def apply_gradnorm(self, w_grad: Tensor) -> None:
        """One SGD step of GradNorm's weights, renormalised to sum to the number of tasks."""
        with torch.no_grad():
            w = (self.gn_weights - self.cfg.lr * w_grad).clamp_min(1e-6)
            self.gn_weights.copy_(w * len(self.index) / w.sum())

    def current(self) -> dict[str, float]:
        """The weight each task's loss gets now (exp(-s_t) under uncertainty weighting); for an
        aggregator, the mean weight it gave each task's gradient over this epoch's steps (the
        last epoch's between epochs), empty if it has none (``graddrop``)."""
        if self.kind == "uncertainty":
            return {t: float(torch.exp(-self.log_vars[i].detach())) for t, i in self.index.items()}
        if self.kind in ("dwa", "gradnorm"):
            weights = self.weight_vector()
            return {t: float(weights[i]) for t, i in self.index.items()}
        if self.kind == "rlw":
            drawn = self._rlw_drawn()
            return {t: float(self.rlw_weights[i]) if drawn else 1.0 for t, i in self.index.items()}
        if self.kind == "aggregator":  # the weights of its update, not of the losses
            return self._aggregated_mean() if self._aggregated else dict(self._aggregated_last)
        return {t: self.fixed[i] for t, i in self.index.items()}

    def restore_current(self, weights: dict[str, float]) -> None:
        """On resume, what ``current`` said at the end of the last finished epoch (its record's
        ``loss_weights``) where that is not in the ``state_dict``: an aggregator's mean weights
        of that epoch; RLW's last draw where a checkpoint of an earlier mtlshare lacks it."""
        if self.kind == "aggregator":
            self._aggregated_last = {t: float(weights[t]) for t in self.index if t in weights}
        elif self.kind == "rlw" and set(weights) == set(self.index) and not self._rlw_drawn():
            self.rlw_weights.copy_(torch.tensor([float(weights[t]) for t in self.index]))

    def _aggregated_mean(self) -> dict[str, float]:
        assert self._aggregated is not None
        total, steps = self._aggregated
        return {t: float(total[i]) / steps for t, i in self.index.items()}


class Objective(nn.Module):
    """One training step's loss: the task's weighted loss plus the mechanism's regularizer.

    Kept as one module so that ``DistributedDataParallel`` sees every parameter a step uses
    (the regularizer reads other tasks' weights, uncertainty weighting its own) from the
    outputs of a single forward call. ``forward(x, y, task)`` is one task's step; with dicts
    of batches and ``task=None`` it is a joint step over every task in them (returning the
    combined objective and the raw losses stacked in the dicts' order); ``task=REGULARIZER``
    gives the regularizer alone.
    """

    def __init__(self, model: SharingModel, weighting: LossWeighting, problem: Problem) -> None:
        super().__init__()
        self.model = model
        self.weighting = weighting
        self.tasks = {td.task.name: td.task for td in problem.tasks}
        # heads whose loss needs the head itself (a CRF's transition scores)
        self.structured = {n for n, t in self.tasks.items() if t.head != "linear"}
        # adding the base class's zero penalty would cost an op and a backward node per step
        self.regularized = type(model).regularizer is not SharingModel.regularizer
        # steps of any task one step of each task stands for (1 / its sampling probability)
        self.every: dict[str, float] = {}
        # the kinds of regularizer call (a task's share: False; the whole: True) whose first
        # value was checked: once each, as a check at every step would cost a sync per step
        self.checked: set[bool] = set()
        # the penalties the steps added since ``take_penalty`` last read them: summed on the
        # device, read once an epoch (one sync, not one a step)
        self._penalty: Tensor | None = None
        self._penalty_steps = 0

    def raw_loss(self, out: Tensor, y: Tensor, task: str) -> Tensor:
        head = self.model.head(task) if task in self.structured else None
        return self.tasks[task].loss(out, y, head)

    def forward(
        self,
        x: object,
        y: object,
        task: str | None,
        alone: bool = False,
        shares: dict[str, float] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(loss, raw loss); ``alone``: without the regularizer (a joint step's per-task pass,
        whose regularizer gradient is added once, apart). ``shares``: a joint step's share of
        the global batch per task (``BatchStream.next``), each task's raw loss scaled by it in
        the objective (not in the raw losses returned)."""
        if task == REGULARIZER:
            reg = self.regularizer(None)
            return reg, reg
        if task is None:
            return self._joint(x, y, shares or {})  # type: ignore[arg-type]
        assert isinstance(x, Tensor) and isinstance(y, Tensor)
        raw = self.raw_loss(self.model(x, task), y, task)
        loss = self.weighting(task, raw)
        if self.regularized and not alone:
            loss = loss + self.regularizer(task, self.every.get(task, 1.0))
        return loss, raw

    def regularizer(self, task: str | None, every: float = 1.0) -> Tensor:
        """The mechanism's ``regularizer(task, every)``, or ``regularizer(None)`` (the whole
        penalty); its first value of each kind must be a finite scalar tensor >= 0
        (``INTERFACE_DOC``), else a one-line error naming the mechanism,
        not a traceback deep in the step nor a penalty below zero, trained silently."""
        reg = self.model.regularizer(None) if task is None else self.model.regularizer(task, every)
        if (task is None) not in self.checked:
            call = "regularizer(None)" if task is None else f"regularizer({task!r}, {every:g})"
            check_penalty(self.model, reg, call)
            self.checked.add(task is None)
        added = reg.detach()
        self._penalty = added if self._penalty is None else self._penalty + added
        self._penalty_steps += 1
        return reg

    def take_penalty(self) -> float | None:
        """The mean of the regularizer terms added to the steps' losses since the last call,
        and start again; ``None`` when no step added one (a mechanism without a regularizer).
        An alternating step adds its task's share scaled by the steps it stands for, so the
        mean over an epoch estimates the whole penalty (``regularizer(None)``)."""
        total, steps = self._penalty, self._penalty_steps
        self._penalty, self._penalty_steps = None, 0
        return None if total is None else float(total) / steps

    def _joint(
        self, xs: dict[str, Tensor], ys: dict[str, Tensor], shares: dict[str, float]
    ) -> tuple[Tensor, Tensor]:
        names = list(ys)
        first = xs[names[0]]
        if all(xs[t] is first for t in names):  # one batch labelled for every task
            outs = self.model.forward_tasks(first, names)
        else:
            outs = {t: self.model(xs[t], t) for t in names}
        raws = {t: self.raw_loss(outs[t], ys[t], t) for t in names}
        scaled = {t: by_share(r, shares.get(t, 1.0)) for t, r in raws.items()}
        loss = self.weighting.combine(scaled)
        if self.regularized:
            loss = loss + self.regularizer(None)
        return loss, torch.stack([raws[t] for t in names])


REGULARIZER = "__regularizer__"


def check_penalty(model: SharingModel, reg: object, call: str) -> None:
    """A one-line ``MtlshareError`` unless ``reg``, what ``model.<call>`` gave, is a finite
    scalar tensor >= 0."""
    if isinstance(reg, Tensor) and reg.dim() == 0:
        value = float(reg.detach())
        if 0.0 <= value < math.inf:
            return
        what = f"{value:.4g}"
    elif isinstance(reg, Tensor):
        what = f"a tensor of shape {tuple(reg.shape)}"
    else:
        what = f"a {type(reg).__name__}"
    raise MtlshareError(
        f"mechanism {mechanism_name(model)!r}: {call} gave {what}; it must be a finite scalar "
        f"tensor >= 0 ({INTERFACE_DOC})"
    )


def mechanism_name(model: SharingModel) -> str:
    """The name ``model``'s class is registered under, else the class's own name."""
    cls = type(model)
    return next((e.name for e in MECHANISMS if e.build is cls), cls.__name__)
