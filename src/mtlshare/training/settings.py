"""``[train]``: optimisation, sampling, evaluation, early stopping and threads, checked before
anything is built."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mtlshare.data.samplers import SAMPLERS
from mtlshare.errors import ConfigError, one_of

OPTIMIZERS = ("sgd", "adam", "adamw")
KEEP = ("best", "last")
SCHEDULES = ("alternate", "joint")


MAX_THREADS = 1024  # trained here; 100,000 was a segfault (exit 139) with no message


@dataclass
class TrainConfig:
    """``[train]``: optimisation, sampling, evaluation, early stopping and threads."""

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
    # the model training hands back: "best" on dev, or the "last" epoch's (dev is still scored,
    # for the record; for a fixed schedule chosen elsewhere, e.g. on validation origins)
    keep: str = "best"
    eval_batch_size: int = 512
    device: str = "cpu"  # "cpu", "cuda" or "auto" (cuda when available)
    # torch threads of this run (put back after it); 0 = torch's default (cores, OMP_NUM_THREADS)
    threads: int = 0
    # "alternate": each step one task's batch (the task sampler draws it); "joint": each step a
    # batch of every task, one update from all their losses (see training/joint.py)
    schedule: str = "alternate"

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
            # "not >= 0" also refuses NaN, which compares false with everything
            if not (number >= 0 and math.isfinite(number)):
                raise ConfigError(f"train.{key}: must be a finite number >= 0, got {number}")
        if self.threads > MAX_THREADS:  # torch takes 100,000 and the first parallel op segfaults
            raise ConfigError(f"train.threads: must be at most {MAX_THREADS:,}, got {self.threads}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"train.optimizer: {self.optimizer!r} is not one of {one_of(OPTIMIZERS)}"
            )
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"train.lr: must be a finite number > 0, got {self.lr}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"train.momentum: must be in [0, 1), got {self.momentum}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ConfigError(
                f"train.temperature: must be a finite number > 0, got {self.temperature}"
            )
        if self.device not in ("cpu", "cuda", "auto"):
            raise ConfigError(f"train.device: {self.device!r} is not one of cpu, cuda, auto")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "train.device: 'cuda' but torch sees no GPU here (this torch build or machine "
                "has none); use 'cpu', or 'auto' to take a GPU when there is one"
            )
        if self.keep not in KEEP:
            raise ConfigError(f"train.keep: {self.keep!r} is not one of {one_of(KEEP)}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"train.schedule: {self.schedule!r} is not one of {one_of(SCHEDULES)}"
            )
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"train.sampler: {self.sampler!r} is not one of {one_of(SAMPLERS)}")


def check_select_on(cfg: TrainConfig, tasks: list[str]) -> None:
    """``train.select_on`` names ``mean`` or one of ``tasks``, else a one-line ``ConfigError``."""
    if cfg.select_on != "mean" and cfg.select_on not in tasks:
        raise ConfigError(
            f"train.select_on: {cfg.select_on!r} is neither 'mean' nor a task ({tasks})"
        )
