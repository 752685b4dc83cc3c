"""From a config to the data and the model: what every command builds before it trains."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from mtlshare.config import CUSTOM, Config
from mtlshare.data.datasets import Problem
from mtlshare.errors import ConfigError, DataError
from mtlshare.models.trunks import backbone_from_config
from mtlshare.models.tying import TiedHead, tie_weights
from mtlshare.registry import DATA_SOURCES, MECHANISMS
from mtlshare.sharing.base import INTERFACE_DOC, SharingModel
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
    return configured_tasks(cfg, problem)


def configured_tasks(cfg: Config, problem: Problem) -> Problem:
    """``problem`` restricted to ``cfg.tasks``, in that order (all of it when empty); a name the
    data has no task of is one line naming the key."""
    if not cfg.tasks:
        return problem
    try:
        return problem.select(cfg.tasks)
    except DataError as e:  # select's one refusal: a name the data has no task of
        raise ConfigError(f"tasks: {e}") from None


def build_model(cfg: Config, problem: Problem) -> SharingModel:
    """The configured mechanism over a backbone built from ``[trunk]``, seeded by ``cfg.seed``,
    to be trained: what training reads of the mechanism is checked (``check_mechanism``;
    ``load_run`` builds with ``build_network``, which does not check it, so a run trained
    before a check still loads)."""
    tasks = [td.task for td in problem.tasks]
    rank = problem.tasks[0].train.rank
    torch.manual_seed(cfg.seed)
    model = build_network(cfg, tasks, problem.input_dim, problem.build_stem, rank)
    check_mechanism(cfg.mechanism, model)  # what trains it reads them (not load_run)
    return model


def build_network(
    cfg: Config,
    tasks: list[Task],
    input_dim: int,
    build_stem: Callable[[], nn.Module] | None,
    input_rank: int,
) -> SharingModel:
    """``build_model`` from the pieces a problem gives: the tasks, the width the trunk reads,
    the input encoder (or None) and the rank of the raw inputs (3 for sequences). Its initial
    weights are drawn from torch's generator as the caller left it (``build_model`` seeds it
    with ``cfg.seed``; ``load_run``, whose checkpoint replaces them, keeps it out of the
    caller's random stream)."""
    sequence = cfg.trunk.kind in ("conv", "lstm", "gru") and input_rank != 3
    flat = ConfigError(
        f"trunk.kind = {cfg.trunk.kind!r} reads sequences (batch, time, features), but the "
        f"data source {cfg.data_source!r} gives {input_rank}-d inputs; use trunk.kind = 'mlp'"
    )
    if build_stem is None and sequence:
        raise flat
    backbone = backbone_from_config(cfg.trunk, input_dim, build_stem)
    model: SharingModel = MECHANISMS[cfg.mechanism].build(backbone, tasks, cfg.mechanism_config)
    # an input encoder may make sequences of rows (ids to vectors per position); one that
    # keeps a row a row (a table's category vectors) gives a sequence trunk nothing to read
    if (
        sequence
        and build_stem is not None
        and getattr(model.stem_for(tasks[0].name), "keeps_rank", False)
    ):
        raise flat
    for task in tasks:  # output projections tied to the input word embedding
        if task.tie_embedding:
            check_heads(cfg.mechanism, model)
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


def check_mechanism(mechanism: str, model: SharingModel) -> None:
    """What training and ``load_run`` read of a mechanism, checked once when it is built to
    be trained, each breach a one-line ``ConfigError`` naming the mechanism and the docs
    (``INTERFACE_DOC``): its parameter groups, its heads, the signature of its regularizer."""
    check_heads(mechanism, model)
    check_parameter_groups(mechanism, model)
    check_regularizer(mechanism, model)


def check_parameter_groups(mechanism: str, model: SharingModel) -> None:
    """Every parameter of ``model`` in exactly one group, the shared one or one task's, else a
    one-line ``ConfigError`` naming the first ones: the optimizer, the parameter counts, the
    per-task updates and ``add-task`` read them (a parameter left out trains unseen; one in two
    groups makes the counts wrong: a shared one counts as shared only). A task's output
    projection tied to the word embedding (``tie_embedding``) is the one parameter in two
    groups by design."""
    owners: dict[int, list[str]] = {
        id(p): ["shared_parameters()"] for p in model.shared_parameters()
    }
    for task in model.task_names:
        for p in {id(p): p for p in model.task_parameters(task)}:
            owners.setdefault(p, []).append(f"task_parameters({task!r})")
    named = list(model.named_parameters())
    missing = [name for name, p in named if id(p) not in owners]
    if missing:
        raise ConfigError(
            f"mechanism {mechanism!r}: {len(missing)} parameter(s) in neither "
            f"shared_parameters() nor any task_parameters(task): {_first(missing)}; every "
            f"parameter must be in one ({INTERFACE_DOC})"
        )
    tied = _tied_by_the_library(model)
    twice = [(n, owners[id(p)]) for n, p in named if len(owners[id(p)]) > 1 and id(p) not in tied]
    if twice:
        groups = twice[0][1][:2]
        alike = [n for n, g in twice if g[:2] == groups]
        raise ConfigError(
            f"mechanism {mechanism!r}: {len(alike)} parameter(s) in {groups[0]} and "
            f"{groups[1]}: {_first(alike)}; every parameter must be in exactly one group, the "
            f"shared one or one task's ({INTERFACE_DOC})"
        )


def check_heads(mechanism: str, model: SharingModel) -> None:
    """``self.heads``: an ``nn.ModuleDict`` with a head of every task (``SharingModel.head``
    reads it for every prediction and for CRF losses), else a one-line ``ConfigError``."""
    heads = model._modules.get("heads")
    if not isinstance(heads, nn.ModuleDict):
        what = "missing" if heads is None else f"a {type(heads).__name__}"
        raise ConfigError(
            f"mechanism {mechanism!r}: self.heads is {what}; keep the heads in an "
            f"nn.ModuleDict by task, self.heads ({INTERFACE_DOC})"
        )
    lacking = [t for t in model.task_names if t not in heads]
    if lacking:
        raise ConfigError(
            f"mechanism {mechanism!r}: self.heads has no head of {_first(lacking, quote=True)}; "
            f"it holds one per task ({INTERFACE_DOC})"
        )


def check_regularizer(mechanism: str, model: SharingModel) -> None:
    """``regularizer`` takes the loop's two calls, ``(task, every)`` and ``(None)``; its value
    (a finite scalar >= 0) is checked at its first step (``Objective.regularizer``), since
    computing it may change the mechanism's state."""
    try:
        signature = inspect.signature(model.regularizer)
        signature.bind("task", 1.0)
        signature.bind(None)
    except (TypeError, ValueError):
        raise ConfigError(
            f"mechanism {mechanism!r}: regularizer{_parameters(model.regularizer)} cannot take "
            "the training loop's calls, regularizer(task, every) and regularizer(None); define "
            f"it as def regularizer(self, task=None, every=1.0) ({INTERFACE_DOC})"
        ) from None


def _parameters(method: Callable[..., object]) -> str:
    try:
        return str(inspect.signature(method).replace(return_annotation=inspect.Signature.empty))
    except (TypeError, ValueError):  # a builtin without a signature
        return "()"


def _tied_by_the_library(model: SharingModel) -> set[int]:
    """The parameters ``build_network`` tied: a task's output projection that is the word
    embedding (``tie_embedding``), in that task's group and the embedding's."""
    tied = set()
    for task in model.tasks.values():
        out = getattr(model.head(task.name), "out", None) if task.tie_embedding else None
        if isinstance(out, nn.Linear):
            tied.add(id(out.weight))
    return tied


def _first(names: list[str], quote: bool = False) -> str:
    shown = [repr(n) if quote else n for n in names[:3]]
    return ", ".join(shown) + (" ..." if len(names) > 3 else "")
