"""Synthetic multi-task regression with controllable task relatedness, in the spirit of the
synthetic data of Ma et al., "Modeling Task Relationships in Multi-task Learning with
Multi-gate Mixture-of-Experts" (KDD 2018).

Task t's target is y_t = w_t.x + sum_i sin(a_i w_t.x + b_i) + noise with x ~ N(0, I) and
w_1 = c u_1, w_t = c (p u_1 + sqrt(1 - p^2) u_t) for orthonormal u's: the cosine between task 1's
and any other task's weights is the ``relatedness`` p, so p = 1 makes the tasks share everything
but their noise and p = 0 makes them unrelated. Each task draws its own inputs, or with
``shared_inputs`` every task labels the same inputs (MMoE's own setting: a joint step then reads
one batch for every task, and mechanisms that run shared layers once serve all tasks with one
pass). Generated from its own seed; nothing downloaded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mtlshare.data.codecs import TensorCodec
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.errors import ConfigError, check_seed
from mtlshare.registry import DATA_SOURCES
from mtlshare.tasks.task import Task


@dataclass
class SyntheticConfig:
    """``[data]`` with ``source = "synthetic"``."""

    relatedness: float = 0.9
    n_tasks: int = 2
    input_dim: int = 32
    n_train: int = 200
    n_dev: int = 500
    n_test: int = 2000
    sines: int = 10
    noise: float = 0.1
    scale: float = 1.0
    data_seed: int = 0
    shared_inputs: bool = False

    def validate(self) -> None:
        if not -1.0 <= self.relatedness <= 1.0:
            raise ConfigError(f"data.relatedness: must be in [-1, 1], got {self.relatedness}")
        if self.n_tasks < 1 or self.n_tasks > self.input_dim:
            raise ConfigError(
                f"data.n_tasks: must be in [1, input_dim={self.input_dim}], got {self.n_tasks}"
            )
        for key in ("n_train", "n_dev", "n_test"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {getattr(self, key)}")
        if not (self.noise >= 0 and math.isfinite(self.noise)):
            raise ConfigError(f"data.noise: must be a finite number >= 0, got {self.noise}")
        if self.sines < 0:
            raise ConfigError(f"data.sines: must be >= 0, got {self.sines}")
        if not (self.scale > 0 and math.isfinite(self.scale)):
            raise ConfigError(f"data.scale: must be a finite number > 0, got {self.scale}")
        check_seed(self.data_seed, "data.data_seed")


def task_weights(cfg: SyntheticConfig, g: torch.Generator) -> torch.Tensor:
    """(n_tasks, input_dim) weight vectors with the configured pairwise relatedness to task 1."""
    q, _ = torch.linalg.qr(torch.randn(cfg.input_dim, cfg.input_dim, generator=g))
    u = q.T[: cfg.n_tasks]  # orthonormal rows
    p = cfg.relatedness
    w = torch.stack(
        [u[0]] + [p * u[0] + math.sqrt(1 - p * p) * u[t] for t in range(1, cfg.n_tasks)]
    )
    return cfg.scale * w


@DATA_SOURCES.register(
    "synthetic",
    config=SyntheticConfig,
    summary="regression tasks whose relatedness is a number",
    paper="Ma et al., KDD 2018 (synthetic data)",
)
def synthetic_problem(cfg: SyntheticConfig, base_dir: str | None = None) -> Problem:
    """Build the tasks ``t1 .. tN``; ``base_dir`` is unused (nothing is read from disk)."""
    cfg.validate()
    g = torch.Generator().manual_seed(cfg.data_seed)
    w = task_weights(cfg, g)
    alpha = torch.randn(cfg.sines, generator=g)
    beta = torch.randn(cfg.sines, generator=g)

    def make(n: int, t: int, x: torch.Tensor | None = None) -> Split:
        if x is None:
            x = torch.randn(n, cfg.input_dim, generator=g)
        z = x @ w[t]
        y = z + torch.sin(alpha[None, :] * z[:, None] + beta[None, :]).sum(-1)
        y = y + cfg.noise * torch.randn(n, generator=g)
        return Split(x, y)

    sizes = (cfg.n_train, cfg.n_dev, cfg.n_test)
    # shared: one tensor per split, so the loop sees that the tasks read the same rows
    inputs = [
        torch.randn(n, cfg.input_dim, generator=g) if cfg.shared_inputs else None for n in sizes
    ]
    tasks = []
    for t in range(cfg.n_tasks):
        task = Task(f"t{t + 1}", "regression", 1, "mse")
        splits = [make(n, t, x) for n, x in zip(sizes, inputs, strict=True)]
        tasks.append(TaskData(task, *splits))
    codec = TensorCodec([f"x{i}" for i in range(cfg.input_dim)])
    return Problem(tasks, cfg.input_dim, inference=codec.spec())
