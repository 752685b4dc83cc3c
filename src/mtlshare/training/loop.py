"""The multi-task training loop. It never names a mechanism: it calls the ``SharingModel``
interface (forward, regularizer, after_optimizer_step, prepare, analyse) and nothing else.

Each epoch draws a task for every step from the task sampler, takes that task's next batch,
and steps on weighted task loss + regularizer. After each epoch every task is scored on dev;
the model with the best selection score (dev only) is kept (or the last one, with
``train.keep = "last"``), training stops early after ``patience`` epochs without improvement,
and test is scored once, on the kept model.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from tqdm import tqdm

from mtlshare.data.datasets import BatchStream, Problem, by_share, cat_padded, no_dev_label
from mtlshare.data.samplers import task_probabilities, task_schedule
from mtlshare.errors import CheckpointError, MtlshareError
from mtlshare.sharing.base import SharingModel, StructureTrainer
from mtlshare.tasks.metrics import IGNORE_INDEX
from mtlshare.training.distributed import (
    Dist,
    from_rank0,
    mean_over_processes,
    resolve_device,
    wrap,
)
from mtlshare.training.folder import RunFolder
from mtlshare.training.joint import JointStepper
from mtlshare.training.objective import LossWeighting, Objective
from mtlshare.training.settings import TrainConfig, check_select_on
from mtlshare.training.state import BEST, LAST, LoopCheckpoints, LoopState
from mtlshare.training.structure import LoopStructureTrainer

# an epoch without tokens (rows, windows) this long or longer prints its line (see _epoch)
EPOCH_LINE_SECONDS = 10.0
# the network's outputs of one evaluation batch (float32) are kept under this many bytes
EVAL_OUTPUT_BYTES = 256 * 2**20


# within an epoch, a run whose stderr is no terminal (a log) prints a line this often
STEP_LINE_SECONDS = 300.0


class StepBar(tqdm):
    """The training progress bar, one update a step; where it is off because stderr is no
    terminal (a log, ``nohup``) and progress is wanted (``lines``), a line every
    ``STEP_LINE_SECONDS`` says where the epoch is: an epoch of the paper's tagger is minutes
    to hours, and its log was silent until the epoch's own line."""

    def __init__(self, *, epochs: int, steps: int, done: int, lines: bool, **kwargs: Any) -> None:
        # names of our own (tqdm's attributes are many): set first, a disabled bar's
        # __init__ returns early
        self._epochs, self._steps, self._done, self._lines = epochs, max(1, steps), done, lines
        self._started = self._said = time.perf_counter()
        super().__init__(total=epochs * steps, initial=done, **kwargs)

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        if n:
            self._done += int(n)
            if self._done % self._steps == 0:  # an epoch ends: the next one's seconds from here
                self._started = self._said = time.perf_counter()
        now = time.perf_counter()
        within = self._done % self._steps  # 0 at an epoch's end: its own line follows
        if self._lines and self.disable and within and now - self._said >= STEP_LINE_SECONDS:
            self._said = now
            tqdm.write(
                f"epoch {self._done // self._steps + 1}/{self._epochs}: step {within:,} of "
                f"{self._steps:,}, {now - self._started:,.0f} s so far",
                file=sys.stderr,
            )
        return shown


def eval_rows(batch_size: int, positions: int, out_dim: int) -> int:
    """Rows of an evaluation batch: ``train.eval_batch_size``, fewer where the outputs of
    that many rows of ``positions`` positions and ``out_dim`` classes would pass
    ``EVAL_OUTPUT_BYTES`` (a ``next_word`` task's outputs are a row per word of the
    vocabulary: 512 CoNLL-2003 sentences of 124 positions asked for 5.3 GB at once)."""
    per_row = max(1, positions) * max(1, out_dim) * 4
    return max(1, min(batch_size, EVAL_OUTPUT_BYTES // per_row))


@dataclass
class FitResult:
    dev: dict[str, float]
    test: dict[str, float]
    best_epoch: int
    epochs_run: int
    train_seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains one ``SharingModel`` on one ``Problem``; see the module docstring. ``device`` is
    where the model trains and is scored: by default ``train.device`` (under torchrun, the
    process's own GPU, or the CPU)."""

    def __init__(
        self,
        model: SharingModel,
        problem: Problem,
        cfg: TrainConfig,
        weighting: LossWeighting,
        *,
        seed: int = 0,
        folder: RunFolder | None = None,
        progress: bool = True,
        dist: Dist | None = None,
        device: torch.device | None = None,
    ) -> None:
        cfg.validate()
        names = [td.task.name for td in problem.tasks]
        check_select_on(cfg, names)
        self.model = model
        self.problem = problem
        self.data = {td.task.name: td for td in problem.tasks}
        self.names = names
        self.cfg = cfg
        self.weighting = weighting
        self.seed = seed
        self.folder = folder  # where checkpoints and metrics go (None: nowhere)
        self.dist = dist or Dist()
        if device is None:
            device = self.dist.device if self.dist.enabled else resolve_device(cfg.device)
        self.device = device
        model.to(self.device)
        weighting.to(self.device)
        self.progress = progress and self.dist.is_main
        self.global_step = 0
        self.last_counts: dict[str, int] = {}
        self.tokens_seen = 0  # labelled sequence positions trained on (this process)
        # under torchrun: DistributedDataParallel over the objective (model + weighting)
        objective = Objective(model, weighting, problem)
        self.objective_module = objective  # (``objective`` below may be its DDP wrapper)
        self.objective_regularized = objective.regularized
        self.objective = wrap(objective, self.dist)
        self.checkpoints = LoopCheckpoints(model, weighting, folder, self.dist, self.device)
        self.joint = JointStepper(self) if cfg.schedule == "joint" else None

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
        if c.optimizer == "adamw":  # decoupled decay (Loshchilov and Hutter, ICLR 2019)
            return torch.optim.AdamW(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        return torch.optim.Adam(self.parameters(), lr=c.lr, weight_decay=c.weight_decay)

    def steps_per_epoch(self, names: list[str]) -> int:
        """Alternate: as many steps as the tasks' training sets have batches together; joint
        (a batch of every task a step): as many as the largest has, the others cycling."""
        if self.cfg.steps_per_epoch:
            return self.cfg.steps_per_epoch
        span = self.cfg.batch_size * self.dist.world  # one global batch per step
        batches = [math.ceil(len(self.data[n].train) / span) for n in names]
        if self.joint is not None and len(names) > 1:
            return max(batches)
        return sum(batches)

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
        by_share(loss, share).backward()
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
        if self.joint is not None and len(names) > 1:
            return self.joint.run(optimizer, names, steps, epoch, bar)
        sizes = [len(self.data[n].train) for n in names]
        probabilities = task_probabilities(sizes, self.cfg.sampler, self.cfg.temperature)
        self.objective_module.every = {
            n: 1.0 / p for n, p in zip(names, probabilities, strict=True)
        }
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
            raw = self.step(optimizer, name, x, y, share)
            # this process's part of the global batch's loss (see BatchStream.next)
            sums[name] += by_share(raw, share)
            counts[name] += 1
            if name in sequences:
                self.tokens_seen += int((y != IGNORE_INDEX).sum())
            if bar is not None:
                bar.update(1)
        self.last_counts = counts  # the steps each task took, for the epoch's record
        return {n: sums[n] / counts[n] for n in names if counts[n]}

    def _place(self) -> tuple[int, int]:
        return self.dist.rank, self.dist.world

    @torch.no_grad()
    def score(self, task: str, split: str) -> float:
        """``task``'s metric on ``split`` ("dev" or "test"), missing labels excluded."""
        self.model.eval()
        td = self.data[task]
        data = getattr(td, split)
        head = self.model.head(task) if td.task.head != "linear" else None
        preds, ys = [], []
        size = eval_rows(self.cfg.eval_batch_size, data.positions, td.task.out_dim)
        for x, y in data.batches(size):
            out = self.model(x.to(self.device), task)
            preds.append(td.task.predict(out, y.to(self.device), head).cpu())
            ys.append(y)
        return td.task.evaluate(cat_padded(preds), cat_padded(ys))

    @torch.no_grad()
    def analyse(self) -> None:
        """Hand the model every task's dev inputs for its own statistics (``analyse``)."""
        self.model.eval()
        bs, dev = self.cfg.eval_batch_size, self.device
        self.model.analyse(
            {n: (x.to(dev) for x, _ in self.data[n].dev.batches(bs)) for n in self.names}
        )

    def higher_is_better(self, task: str) -> bool:
        return self.data[task].task.higher_is_better

    def selection_score(self, dev: dict[str, float]) -> float:
        """Higher is better: the signed dev metric of one task or their mean."""

        def signed(n: str) -> float:
            return dev[n] if self.data[n].task.higher_is_better else -dev[n]

        if self.cfg.select_on != "mean":
            return signed(self.cfg.select_on)
        return sum(signed(n) for n in self.names) / len(self.names)

    def structure_trainer(self, resume: bool = False) -> StructureTrainer:
        """What a mechanism's ``prepare`` gets (see ``StructureTrainer``)."""
        return LoopStructureTrainer(self, resume)

    # -- checkpoints ----------------------------------------------------------------------------
    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0, with a folder)."""
        return self.checkpoints.writes

    # -- the loop ------------------------------------------------------------------------------
    def fit(
        self, resume: bool = False, on_epoch: Callable[[dict[str, Any]], None] | None = None
    ) -> FitResult:
        """Train, select on dev, score test once on the selected model. Every epoch's record
        goes to the folder's ``metrics.jsonl`` (and to ``on_epoch``)."""
        torch.manual_seed(self.seed)
        optimizer = self.make_optimizer()
        state = self.checkpoints.resume(optimizer, self.cfg.epochs) if resume else None
        if state is not None:
            self.global_step = state.global_step
            if state.history:  # the weights results report if no epoch is left to train
                self.weighting.restore_current(state.history[-1].get("loss_weights") or {})
        if state is None:
            state = LoopState()
            # a structure search (if the mechanism has one) resumes from its own checkpoint;
            # its time counts as training time (a resumed search counts only its new rounds)
            t0 = time.perf_counter()
            self.model.prepare(self.structure_trainer(resume=resume))
            if self.dist.enabled:  # every rank continues from rank 0's structure and weights
                weights = from_rank0(
                    {k: v.cpu() for k, v in self.model.state_dict().items()}, self.dist
                )
                self.model.load_state_dict(weights)
            state.elapsed += time.perf_counter() - t0
        steps = self.steps_per_epoch(self.names)
        bar = StepBar(
            epochs=self.cfg.epochs,
            steps=steps,
            done=state.epoch * steps,
            lines=self.progress,
            disable=None if self.progress else True,  # None: off when not a terminal
            desc="train",
            unit="step",
            leave=False,
            dynamic_ncols=True,
        )
        best_state: dict[str, Tensor] | None = None
        for epoch in range(state.epoch + 1, self.cfg.epochs + 1):
            if self.cfg.patience and state.bad >= self.cfg.patience:
                break
            record = self._epoch(optimizer, epoch, steps, state, bar)
            if state.best_epoch == epoch and not self.writes:  # not saved on disk: keep it
                best_state = {k: v.detach().clone() for k, v in self.checkpoints.tensors().items()}
            if self.writes:
                assert self.folder is not None
                self.folder.write_metrics(state.history)
            if on_epoch is not None:
                on_epoch(record)
            self.checkpoints.save(LAST, optimizer, state.meta())
        bar.close()
        return self._finish(state, best_state)

    def _epoch(
        self,
        optimizer: torch.optim.Optimizer,
        epoch: int,
        steps: int,
        state: LoopState,
        bar: tqdm,
    ) -> dict[str, Any]:
        """Train one epoch, score dev, keep the best model; returns the epoch's record."""
        for group in optimizer.param_groups:  # the schedule is a function of the epoch
            group["lr"] = self.cfg.lr / (1.0 + self.cfg.lr_decay * (epoch - 1))
        t0 = time.perf_counter()
        tokens0 = self.tokens_seen
        self.objective_module.take_penalty()  # this epoch's steps alone
        losses = self.run_steps(optimizer, self.names, steps, epoch, bar)
        penalty = self.objective_module.take_penalty()
        weights = self.weighting.current()  # those the epoch trained with: DWA's move next
        # the epoch's mean loss over the global batches, not rank 0's slices of them
        losses = mean_over_processes(losses, self.dist)
        self.weighting.end_epoch(losses)
        seconds = time.perf_counter() - t0
        state.elapsed += seconds
        tok_s = (self.tokens_seen - tokens0) * self.dist.world / max(seconds, 1e-9)
        dev = from_rank0({n: self.score(n, "dev") for n in self.names}, self.dist)
        unscored = [n for n, v in dev.items() if math.isnan(v)]
        if unscored:
            raise no_dev_label(unscored)
        score = self.selection_score(dev)
        if not score > -math.inf and state.best_epoch == 0 and self.cfg.keep != "last":
            infinite = [n for n, v in dev.items() if math.isinf(v)]
            raise MtlshareError(  # no model could be kept: the run would end with none
                f"epoch {epoch}: model selection reads a dev score of {score} (infinite: "
                f"{infinite}), which no model can beat: a dev target or prediction too large "
                "for float32 (its squared error overflows), or a diverging model (lower "
                "train.lr or set train.grad_clip)"
            )
        if score > state.best_score or self.cfg.keep == "last":
            state.best_score, state.best_epoch, state.bad = score, epoch, 0
            self.checkpoints.save(BEST, None, {"epoch": epoch, "score": score})
        else:
            state.bad += 1
        record = {
            "epoch": epoch,
            "step": self.global_step,
            "split": "dev",
            "dev": dev,
            "selection_score": score,
            "train_loss": losses,
            # the mean regularizer term a step added (soft sharing's penalty)
            **({} if penalty is None else {"train_penalty": penalty}),
            # what the epoch was: each task's steps, and the passes over its training data
            "task_steps": dict(self.last_counts),
            "task_passes": {
                n: round(k * self.cfg.batch_size * self.dist.world / len(self.data[n].train), 3)
                for n, k in self.last_counts.items()
            },
            "loss_weights": weights,
            "train_seconds": state.elapsed,
        }
        if self.tokens_seen > tokens0:
            record["tokens_per_second"] = round(tok_s, 1)
        state.history.append(record)
        state.epoch = epoch
        state.global_step = self.global_step
        postfix = {"epoch": epoch, "dev": f"{score:.4g}", "best": state.best_epoch}
        took = time.perf_counter() - t0
        speed = ""
        if self.tokens_seen > tokens0:
            postfix["tok/s"] = f"{tok_s:.0f}"
            speed = f", {tok_s:,.0f} tokens/s"
        # one line per epoch, also when stderr is not a terminal, with the epoch's seconds, dev
        # scoring included: what a log of hours needs to tell how long the epochs left at the
        # cap would take; for epochs without tokens (rows, windows) only those that take
        # long, where hundreds of short epochs would flood the log
        if self.progress and (speed or took >= EPOCH_LINE_SECONDS):
            tqdm.write(
                f"epoch {epoch}/{self.cfg.epochs}: {took:,.0f} s{speed}, dev {dev_text(dev)}",
                file=sys.stderr,
            )
        bar.set_postfix(postfix)
        return record

    def _finish(self, state: LoopState, best_state: dict[str, Tensor] | None) -> FitResult:
        """Restore the model selected on dev, then score dev and test once."""
        if best_state is not None:
            self.checkpoints.load_tensors(best_state)
        elif self.folder is not None and self.folder.has_checkpoint(BEST):
            self.checkpoints.load_saved(BEST)
        elif self.folder is not None and state.best_epoch > 0:
            raise CheckpointError(
                f"{self.folder.checkpoint_dir(BEST)}: missing, so the model selected on dev "
                f"(epoch {state.best_epoch}) cannot be scored; train again with a new --out"
            )
        self.analyse()
        dev = {n: self.score(n, "dev") for n in self.names}
        test = {n: self.score(n, "test") for n in self.names}
        return FitResult(
            dev, test, state.best_epoch, len(state.history), state.elapsed, state.history
        )


def dev_text(dev: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4g}" for name, value in dev.items())
