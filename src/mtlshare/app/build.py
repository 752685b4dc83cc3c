"""From a config to the data and the model: what every command builds before it trains."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mtlshare.config import CUSTOM, Config
from mtlshare.data.datasets import Problem
from mtlshare.errors import ConfigError
from mtlshare.models.trunks import backbone_from_config
from mtlshare.models.tying import TiedHead, tie_weights
from mtlshare.registry import DATA_SOURCES, MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.tasks.task import Task


def require_data_source(cfg: Config) -> None:
    """Refuse a config whose data cannot be read from it: ``data.source = "custom"`` (the
    data was a ``Problem`` built in Python and handed to ``mtlshare.run``)."""
    if cfg.data_source == CUSTOM:
        raise ConfigError(
            f"data.source = {CUSTOM!r}: the data is a Problem passed from Python "
            "(mtlshare.run(cfg, out, problem=...)); this config names no data to read"
        )


def build_problem(cfg: Config, base_dir: str | Path | None = None) -> Problem:
    """The data source's tasks, restricted to ``cfg.tasks`` when given. Relative data paths
    are resolved against ``base_dir`` (the config file's folder)."""
    require_data_source(cfg)
    problem: Problem = DATA_SOURCES[cfg.data_source].build(
        cfg.data, str(base_dir) if base_dir is not None else None
    )
    return problem.select(cfg.tasks) if cfg.tasks else problem


def build_model(cfg: Config, problem: Problem) -> SharingModel:
    """The configured mechanism over a backbone built from ``[trunk]``, seeded by ``cfg.seed``,
    to be trained: its parameter groups are checked (``load_run`` builds with ``build_network``,
    which does not check them, so a run trained before the check still loads)."""
    tasks = [td.task for td in problem.tasks]
    rank = problem.tasks[0].train.x.dim()
    model = build_network(cfg, tasks, problem.input_dim, problem.build_stem, rank)
    check_parameter_groups(cfg.mechanism, model)  # what trains it reads them (not load_run)
    return model


def build_network(
    cfg: Config,
    tasks: list[Task],
    input_dim: int,
    build_stem: Callable[[], nn.Module] | None,
    input_rank: int,
) -> SharingModel:
    """``build_model`` from the pieces a problem gives: the tasks, the width the trunk reads,
    the input encoder (or None) and the rank of the raw inputs (3 for sequences)."""
    sequence = cfg.trunk.kind in ("conv", "lstm", "gru")
    if build_stem is None and sequence and input_rank != 3:
        raise ConfigError(
            f"trunk.kind = {cfg.trunk.kind!r} reads sequences (batch, time, features), but the "
            f"data source {cfg.data_source!r} gives {input_rank}-d inputs; use trunk.kind = 'mlp'"
        )
    torch.manual_seed(cfg.seed)
    backbone = backbone_from_config(cfg.trunk, input_dim, build_stem)
    model: SharingModel = MECHANISMS[cfg.mechanism].build(backbone, tasks, cfg.mechanism_config)
    for task in tasks:  # output projections tied to the input word embedding
        if task.tie_embedding:
            head, words = model.head(task.name), getattr(model.stem_for(task.name), "words", None)
            if not isinstance(words, nn.Embedding):
                raise ConfigError(
                    f"task {task.name!r}: tie_embedding needs a word-embedding input "
                    "encoder (the conll data source)"
                )
            if not isinstance(head, TiedHead):
                raise ConfigError(
                    f"task {task.name!r}: tie_embedding ties a linear head's output to the "
                    f"word embedding; its head is {task.head!r} (use head = 'linear')"
                )
            tie_weights(head.out, words)
    return model


def check_parameter_groups(mechanism: str, model: SharingModel) -> None:
    """Every parameter of ``model`` is shared or some task's, else a one-line ``ConfigError``
    naming the first ones: what the optimizer, the parameter counts and the per-task updates
    read (a mechanism of one's own that leaves some out trains, with counts that do not add
    up)."""
    grouped = {id(p) for p in model.shared_parameters()}
    for task in model.task_names:
        grouped |= {id(p) for p in model.task_parameters(task)}
    missing = [name for name, p in model.named_parameters() if id(p) not in grouped]
    if missing:
        raise ConfigError(
            f"mechanism {mechanism!r}: {len(missing)} parameter(s) in neither "
            f"shared_parameters() nor any task_parameters(task): {', '.join(missing[:3])}"
            f"{' ...' if len(missing) > 3 else ''}; every parameter must be in one (README: "
            "A mechanism or a data source of your own)"
        )
