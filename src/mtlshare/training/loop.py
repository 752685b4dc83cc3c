"""The multi-task training loop. It never names a mechanism: it calls the ``SharingModel``
interface (forward, regularizer, after_optimizer_step, prepare) and nothing else.

Each epoch draws a task for every step from the task sampler, takes that task's next batch,
and steps on weighted task loss + regularizer. After each epoch every task is scored on dev;
the model with the best selection score (dev only) is kept, training stops early after
``patience`` epochs without improvement, and test is scored once, on the kept model.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from mtlshare.data.datasets import BatchStream, Problem
from mtlshare.data.samplers import SAMPLERS, task_schedule
from mtlshare.errors import CheckpointError, ConfigError, DataError, MtlshareError
from mtlshare.sharing.base import SharingModel, StructureTrainer
from mtlshare.tasks.metrics import IGNORE_INDEX
from mtlshare.training import checkpoint as ckpt
from mtlshare.training.distributed import (
    Dist,
    from_rank0,
    resolve_device,
    restore_rng,
    rng_states,
    wrap,
)
from mtlshare.training.objective import LossWeighting

OPTIMIZERS = ("sgd", "adam")


@dataclass
class TrainConfig:
    """``[train]``: optimisation, sampling, evaluation and early stopping."""

    epochs: int = 30
    batch_size: int = 32
    steps_per_epoch: int = 0  # 0: the sum over tasks of their number of training batches
    optimizer: str = "adam"
    lr: float = 1e-3
    lr_decay: float = 0.0  # epoch e trains at lr / (1 + lr_decay * (e - 1)) (Ma and Hovy, 2016)
    momentum: float = 0.9
    weight_decay: float = 0.0
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping
    sampler: str = "proportional"
    temperature: float = 2.0
    patience: int = 5  # epochs without dev improvement before stopping; 0 = never stop early
    select_on: str = "mean"  # "mean" of signed dev metrics over tasks, or one task's name
    eval_batch_size: int = 512
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when available)
    # torch threads of this process; 0 = torch's default (the cores, or OMP_NUM_THREADS)
    threads: int = 0

    def validate(self) -> None:
        positive = {
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "eval_batch_size": self.eval_batch_size,
        }
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"train.{key}: must be >= 1, got {value}")
        non_negative: dict[str, float] = {
            "steps_per_epoch": self.steps_per_epoch,
            "patience": self.patience,
            "grad_clip": self.grad_clip,
            "weight_decay": self.weight_decay,
            "lr_decay": self.lr_decay,
            "threads": self.threads,
        }
        for key, number in non_negative.items():
            if number < 0:
                raise ConfigError(f"train.{key}: must be >= 0, got {number}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train.optimizer: {self.optimizer!r} is not one of {OPTIMIZERS}")
        if not self.lr > 0:
            raise ConfigError(f"train.lr: must be > 0, got {self.lr}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"train.device: {self.device!r} is not one of cpu, cuda, auto")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"train.sampler: {self.sampler!r} is not one of {SAMPLERS}")


@dataclass
class FitResult:
    dev: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


class Objective(nn.Module):
    """One training step's loss: the task's weighted loss plus the mechanism's regularizer.

    Kept as one module so that ``DistributedDataParallel`` sees every parameter a step uses
    (the regularizer reads other tasks' weights, uncertainty weighting its own) from the
    outputs of a single forward call.
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

    def forward(self, x: Tensor, y: Tensor, task: str) -> tuple[Tensor, Tensor]:
        head = self.model.head(task) if task in self.structured else None
        raw = self.tasks[task].loss(self.model(x, task), y, head)
        loss = self.weighting(task, raw)
        if self.regularized:
            loss = loss + self.model.regularizer()
        return loss, raw


class Trainer:
    """Trains one ``SharingModel`` on one ``Problem``; see the module docstring."""

    def __init__(
        self,
        model: SharingModel,
        problem: Problem,
        cfg: TrainConfig,
        weighting: LossWeighting,
        *,
        seed: int = 0,
        out_dir: str | Path | None = None,
        progress: bool = True,
        dist: Dist | None = None,
    ) -> None:
        cfg.validate()
        names = [td.task.name for td in problem.tasks]
        if cfg.select_on != "mean" and cfg.select_on not in names:
            raise ConfigError(
                f"train.select_on: {cfg.select_on!r} is neither 'mean' nor a task ({names})"
            )
        self.model = model
        self.problem = problem
        self.data = {td.task.name: td for td in problem.tasks}
        self.names = names
        self.cfg = cfg
        self.weighting = weighting
        self.seed = seed
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.dist = dist or Dist()
        self.device = self.dist.device if self.dist.enabled else resolve_device(cfg.device)
        model.to(self.device)
        weighting.to(self.device)
        self.progress = progress and self.dist.is_main
        self.global_step = 0
        self.tokens_seen = 0  # labelled sequence positions trained on (this process)
        # under torchrun: DistributedDataParallel over the objective (model + weighting)
        self.objective = wrap(Objective(model, weighting, problem), self.dist)

    # -- pieces -------------------------------------------------------------------------------
    def parameters(self) -> list[nn.Parameter]:
        params = list(self.model.parameters()) + list(self.weighting.parameters())
        return [p for p in params if p.requires_grad]

    def make_optimizer(self) -> torch.optim.Optimizer:
        c = self.cfg
        if c.optimizer == "sgd":
            return torch.optim.SGD(
                self.parameters(), lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay
            )
        return torch.optim.Adam(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def steps_per_epoch(self, names: list[str]) -> int:
        if self.cfg.steps_per_epoch:
            return self.cfg.steps_per_epoch
        span = self.cfg.batch_size * self.dist.world  # one global batch per step
        return sum(math.ceil(len(self.data[n].train) / span) for n in names)

    def _generator(self, *parts: int) -> torch.Generator:
        g = torch.Generator()
        g.manual_seed(hash((self.seed, *parts)) & 0x7FFF_FFFF_FFFF_FFFF)
        return g

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        task: str,
        x: Tensor,
        y: Tensor,
        share: float = 1.0,
    ) -> float:
        """One optimizer step on ``task``'s batch. Raises on a NaN or infinite loss.

        ``share`` (from ``BatchStream``) rescales this process's loss so that the gradients
        averaged over processes are those of the global batch's mean loss.
        """
        if not self.model.training:  # train() walks every module: only when it changes
            self.model.train()
        loss, raw = self.objective(x.to(self.device), y.to(self.device), task)
        if not torch.isfinite(loss):
            raise MtlshareError(
                f"loss is {float(loss.detach())} at step {self.global_step} on task "
                f"{task!r}; lower train.lr or set train.grad_clip"
            )
        optimizer.zero_grad(set_to_none=True)
        (loss * share if share != 1.0 else loss).backward()
        self.model.before_optimizer_step(task)
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.parameters(), self.cfg.grad_clip)
        optimizer.step()
        self.model.after_optimizer_step(task)
        self.global_step += 1
        return float(raw.detach())

    def run_steps(
        self,
        optimizer: torch.optim.Optimizer,
        names: list[str],
        steps: int,
        epoch: int,
        bar: tqdm | None = None,
    ) -> dict[str, float]:
        """``steps`` sampled steps over ``names``; returns the mean raw loss per task."""
        sizes = [len(self.data[n].train) for n in names]
        order = task_schedule(
            sizes,
            self.cfg.sampler,
            steps,
            self._generator(epoch, -1),
            self.cfg.temperature,
            offset=self.global_step,
        )
        streams = {
            n: BatchStream(
                self.data[n].train,
                self.cfg.batch_size,
                self._generator(epoch, i),
                self.dist.rank,
                self.dist.world,
            )
            for i, n in enumerate(names)
        }
        sums = {n: 0.0 for n in names}
        counts = {n: 0 for n in names}
        sequences = {n for n in names if self.data[n].train.lengths is not None}
        for k in order:
            name = names[k]
            x, y, share = streams[name].next()
            sums[name] += self.step(optimizer, name, x, y, share)
            counts[name] += 1
            if name in sequences:
                self.tokens_seen += int((y != IGNORE_INDEX).sum())
            if bar is not None:
                bar.update(1)
        return {n: sums[n] / counts[n] for n in names if counts[n]}

    @torch.no_grad()
    def score(self, task: str, split: str) -> float:
        """``task``'s metric on ``split`` ("dev" or "test"), missing labels excluded."""
        self.model.eval()
        td = self.data[task]
        data = getattr(td, split)
        head = self.model.head(task) if td.task.head != "linear" else None
        preds, ys = [], []
        for x, y in data.batches(self.cfg.eval_batch_size):
            out = self.model(x.to(self.device), task)
            preds.append(td.task.predict(out, y.to(self.device), head).cpu())
            ys.append(y)
        return td.task.evaluate(cat_padded(preds), cat_padded(ys))

    def selection_score(self, dev: dict[str, float]) -> float:
        """Higher is better: the signed dev metric of one task or their mean."""

        def signed(n: str) -> float:
            return dev[n] if self.data[n].task.higher_is_better else -dev[n]

        if self.cfg.select_on != "mean":
            return signed(self.cfg.select_on)
        return sum(signed(n) for n in self.names) / len(self.names)

    def structure_trainer(self, resume: bool = False) -> StructureTrainer:
        """What a mechanism's ``prepare`` gets (see ``StructureTrainer``)."""

        def train_steps(names: list[str], steps: int) -> None:
            optimizer = self.make_optimizer()
            self.run_steps(optimizer, names, steps, epoch=-(self.global_step + 1))

        def dev_score(task: str) -> float:
            value = self.score(task, "dev")
            return value if self.data[task].task.higher_is_better else -value

        def save(name: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
            rng = rng_states(self.dist)  # collective: before the rank-0 gate
            if self.out_dir is None or not self.dist.is_main:
                return
            tensors = {**tensors, **rng}
            meta = {**meta, "loop.global_step": self.global_step}
            ckpt.save_checkpoint(self.out_dir / "checkpoint" / name, tensors, meta)

        def load(name: str) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
            if not resume or self.out_dir is None:
                return None
            where = self.out_dir / "checkpoint" / name
            if ckpt.find_checkpoint(where) is None:
                return None
            tensors, meta = ckpt.load_checkpoint(where)
            restore_rng(tensors, self.dist)
            tensors = {k: v for k, v in tensors.items() if not k.startswith("rng.torch")}
            self.global_step = int(meta.pop("loop.global_step"))
            return tensors, meta

        return StructureTrainer(
            train_steps, dev_score, self.steps_per_epoch, save, load, self.out_dir, self.progress
        )

    # -- checkpoints ----------------------------------------------------------------------------
    def _state_tensors(self) -> dict[str, Tensor]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"weighting.{k}": v for k, v in self.weighting.state_dict().items()})
        return tensors

    def _load_state_tensors(self, tensors: dict[str, Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.weighting.load_state_dict(
            {k[10:]: v for k, v in tensors.items() if k.startswith("weighting.")}
        )

    def _save(
        self, name: str, optimizer: torch.optim.Optimizer | None, meta: dict[str, Any]
    ) -> None:
        rng = rng_states(self.dist) if optimizer is not None else {}  # collective: all ranks
        if self.out_dir is None or not self.dist.is_main:
            return
        tensors = self._state_tensors()
        if optimizer is not None:
            opt_tensors, opt_meta = ckpt.optimizer_to_flat(optimizer.state_dict())
            tensors.update(opt_tensors)
            tensors.update(rng)
            meta = {**meta, "optimizer": opt_meta}
        ckpt.save_checkpoint(self.out_dir / "checkpoint" / name, tensors, meta)

    # -- the loop ------------------------------------------------------------------------------
    def fit(
        self, resume: bool = False, on_epoch: Callable[[dict[str, Any]], None] | None = None
    ) -> FitResult:
        """Train, select on dev, score test once on the selected model."""
        torch.manual_seed(self.seed)
        optimizer = self.make_optimizer()
        start_epoch, best_score, best_epoch, bad = 1, -math.inf, 0, 0
        history: list[dict[str, Any]] = []
        best_state: dict[str, Tensor] | None = None
        elapsed = 0.0
        last = self.out_dir / "checkpoint" / "last" if self.out_dir else None
        if resume and last is not None and ckpt.find_checkpoint(last) is not None:
            tensors, meta = ckpt.load_checkpoint(last)
            try:
                self._load_state_tensors(tensors)
                optimizer.load_state_dict(ckpt.optimizer_from_flat(tensors, meta["optimizer"]))
                restore_rng(tensors, self.dist)
                start_epoch = meta["epoch"] + 1
                best_score, best_epoch, bad = meta["best_score"], meta["best_epoch"], meta["bad"]
                self.global_step, history, elapsed = (
                    meta["global_step"],
                    meta["history"],
                    meta["train_seconds"],
                )
            except (KeyError, ValueError, RuntimeError) as e:
                raise CheckpointError(
                    f"{last}: does not fit this run or is incomplete ({type(e).__name__}: {e})"
                ) from None
        else:
            # a structure search (if the mechanism has one) resumes from its own checkpoint;
            # its time counts as training time (a resumed search counts only its new rounds)
            t0 = time.perf_counter()
            self.model.prepare(self.structure_trainer(resume=resume))
            if self.dist.enabled:  # every rank continues from rank 0's structure and weights
                state = from_rank0(
                    {k: v.cpu() for k, v in self.model.state_dict().items()}, self.dist
                )
                self.model.load_state_dict(state)
            elapsed += time.perf_counter() - t0
        steps = self.steps_per_epoch(self.names)
        total = self.cfg.epochs * steps
        bar = tqdm(
            total=total,
            initial=(start_epoch - 1) * steps,
            disable=None if self.progress else True,  # None: off when not a terminal
            desc="train",
            unit="step",
            leave=False,
            dynamic_ncols=True,
        )
        for epoch in range(start_epoch, self.cfg.epochs + 1):
            if self.cfg.patience and bad >= self.cfg.patience:
                break
            for group in optimizer.param_groups:  # the schedule is a function of the epoch
                group["lr"] = self.cfg.lr / (1.0 + self.cfg.lr_decay * (epoch - 1))
            t0 = time.perf_counter()
            tokens0 = self.tokens_seen
            losses = self.run_steps(optimizer, self.names, steps, epoch, bar)
            seconds = time.perf_counter() - t0
            elapsed += seconds
            tok_s = (self.tokens_seen - tokens0) * self.dist.world / max(seconds, 1e-9)
            dev = from_rank0({n: self.score(n, "dev") for n in self.names}, self.dist)
            unscored = [n for n, v in dev.items() if math.isnan(v)]
            if unscored:
                raise DataError(
                    f"task(s) {unscored} have no observed label in their dev split; model "
                    "selection needs at least one"
                )
            score = self.selection_score(dev)
            improved = score > best_score
            if improved:
                best_score, best_epoch, bad = score, epoch, 0
                self._save("best", None, {"epoch": epoch, "score": score})
                if self.out_dir is None or not self.dist.is_main:  # not saved here: keep it
                    best_state = {k: v.detach().clone() for k, v in self._state_tensors().items()}
            else:
                bad += 1
            record = {
                "epoch": epoch,
                "step": self.global_step,
                "split": "dev",
                "dev": dev,
                "selection_score": score,
                "train_loss": losses,
                "loss_weights": self.weighting.current(),
                "train_seconds": elapsed,
            }
            if self.tokens_seen > tokens0:
                record["tokens_per_second"] = round(tok_s, 1)
            history.append(record)
            postfix = {"epoch": epoch, "dev": f"{score:.4g}", "best": best_epoch}
            if self.tokens_seen > tokens0:
                postfix["tok/s"] = f"{tok_s:.0f}"
                if self.progress:  # one line per epoch, also when stderr is not a terminal
                    tqdm.write(
                        f"epoch {epoch}/{self.cfg.epochs}: {tok_s:,.0f} tokens/s, "
                        f"dev {dev_text(dev)}",
                        file=sys.stderr,
                    )
            bar.set_postfix(postfix)
            if on_epoch is not None:
                on_epoch(record)
            self._save(
                "last",
                optimizer,
                {
                    "epoch": epoch,
                    "global_step": self.global_step,
                    "best_score": best_score,
                    "best_epoch": best_epoch,
                    "bad": bad,
                    "history": history,
                    "train_seconds": elapsed,
                },
            )
        bar.close()
        return self._finish(history, best_epoch, elapsed, best_state)

    def _finish(
        self,
        history: list[dict[str, Any]],
        best_epoch: int,
        elapsed: float,
        best_state: dict[str, Tensor] | None,
    ) -> FitResult:
        """Restore the model selected on dev, then score dev and test once."""
        if best_state is not None:
            self._load_state_tensors(best_state)
        elif self.out_dir is not None and ckpt.find_checkpoint(
            self.out_dir / "checkpoint" / "best"
        ):
            tensors, _ = ckpt.load_checkpoint(self.out_dir / "checkpoint" / "best")
            self._load_state_tensors(tensors)
        dev = {n: self.score(n, "dev") for n in self.names}
        test = {n: self.score(n, "test") for n in self.names}
        return FitResult(dev, test, best_epoch, len(history), elapsed, history)


def dev_text(dev: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in dev.items())


def cat_padded(parts: list[Tensor]) -> Tensor:
    """Concatenate batches along rows; sequence batches cut to different lengths are padded
    at the end with a missing label (-100 for integers, NaN for floats)."""
    if len({p.shape[1:] for p in parts}) <= 1:
        return torch.cat(parts)
    longest = max(p.shape[1] for p in parts)
    fill = float("nan") if parts[0].is_floating_point() else IGNORE_INDEX
    padded = []
    for p in parts:
        grow = [0, 0] * (p.dim() - 2) + [0, longest - p.shape[1]]
        padded.append(torch.nn.functional.pad(p, grow, value=fill))
    return torch.cat(padded)


def history_lines(history: list[dict[str, Any]]) -> str:
    """``metrics.jsonl``: one JSON line per evaluation."""
    return "".join(json.dumps(r, sort_keys=True) + "\n" for r in history)
