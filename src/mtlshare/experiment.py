"""From a config to results on disk: ``run`` trains one mechanism, ``compare`` runs single-task
baselines and several mechanisms on the same data and seed.

Outputs of ``run`` in ``out_dir``: ``config.toml`` (fully resolved), ``metrics.jsonl`` (one line
per evaluation), ``results.json`` and ``checkpoint/`` (``last`` for ``--resume``, ``best`` for
the selected model; safetensors + JSON).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mtlshare.data.datasets import Problem
from mtlshare.errors import ConfigError, MtlshareError
from mtlshare.evaluation import report
from mtlshare.models.trunks import backbone_from_config
from mtlshare.registry import DATA_SOURCES, EXPERIMENTS, MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.training.checkpoint import atomic_write_text, find_checkpoint, load_checkpoint
from mtlshare.training.distributed import Dist, barrier
from mtlshare.training.loop import Trainer, history_lines
from mtlshare.training.objective import LossWeighting

if TYPE_CHECKING:  # config imports this module to register the "train" experiment
    from mtlshare.config import Config

SINGLE = "single"


def build_problem(cfg: Config, base_dir: str | Path | None = None) -> Problem:
    """The data source's tasks, restricted to ``cfg.tasks`` when given. Relative data paths
    are resolved against ``base_dir`` (the config file's folder)."""
    problem: Problem = DATA_SOURCES[cfg.data_source].build(
        cfg.data, str(base_dir) if base_dir is not None else None
    )
    return problem.select(cfg.tasks) if cfg.tasks else problem


def build_model(cfg: Config, problem: Problem) -> SharingModel:
    """The configured mechanism over a backbone built from ``[trunk]``, seeded by ``cfg.seed``."""
    sequence = cfg.trunk.kind in ("conv", "lstm", "gru")
    dims = problem.tasks[0].train.x.dim()
    if problem.build_stem is None and sequence and dims != 3:
        raise ConfigError(
            f"trunk.kind = {cfg.trunk.kind!r} reads sequences (batch, time, features), but the "
            f"data source {cfg.data_source!r} gives {dims}-d inputs; use trunk.kind = 'mlp'"
        )
    torch.manual_seed(cfg.seed)
    backbone = backbone_from_config(cfg.trunk, problem.input_dim, problem.build_stem)
    model: SharingModel = MECHANISMS[cfg.mechanism].build(
        backbone, [td.task for td in problem.tasks], cfg.mechanism_config
    )
    return model


def _finite(obj: Any) -> Any:
    """NaN and infinities become null: JSON has no numbers for them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: Path, obj: Any) -> None:
    """Strict JSON (non-finite numbers written as null), written atomically."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


@dataclass
class TrainedRun:
    """A finished training run: the selected model, the data it saw and its results."""

    model: SharingModel
    problem: Problem
    results: dict[str, Any]


@EXPERIMENTS.register("train", summary="train the configured mechanism (the default)")
def run(
    cfg: Config,
    out_dir: str | Path,
    *,
    base_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    problem: Problem | None = None,
    dist: Dist | None = None,
) -> dict[str, Any]:
    """Train ``cfg.mechanism`` and write the run's outputs to ``out_dir``; returns results.
    Under torchrun (``dist``), every process trains and only rank 0 writes."""
    return train(
        cfg,
        out_dir,
        base_dir=base_dir,
        resume=resume,
        progress=progress,
        problem=problem,
        dist=dist,
    ).results


def train(
    cfg: Config,
    out_dir: str | Path,
    *,
    base_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    problem: Problem | None = None,
    dist: Dist | None = None,
) -> TrainedRun:
    """Like ``run``, and also hand back the selected model and the problem."""
    where = dist or Dist()
    out = Path(out_dir)
    resolved = cfg.to_toml()
    if resume:
        saved = out / "config.toml"
        if not saved.is_file():
            raise MtlshareError(f"--resume: {saved} does not exist; nothing to resume")
        if saved.read_text(encoding="utf-8") != resolved:
            raise MtlshareError(
                f"--resume: the config differs from {saved}; resume with the "
                "same config and overrides"
            )
    elif (out / "results.json").exists() or (out / "checkpoint").exists():
        raise MtlshareError(f"{out}: holds an earlier run; choose another --out or pass --resume")
    barrier(where)  # every process has checked the folder before rank 0 writes into it
    problem = problem if problem is not None else build_problem(cfg, base_dir)
    model = build_model(cfg, problem)
    weighting = LossWeighting([td.task.name for td in problem.tasks], cfg.weighting)
    if where.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MtlshareError(f"--out {out}: cannot be used as an output folder ({e})") from None
        atomic_write_text(out / "config.toml", resolved)
    trainer = Trainer(
        model,
        problem,
        cfg.train,
        weighting,
        seed=cfg.seed,
        out_dir=out,
        progress=progress,
        dist=where,
    )

    def log(record: dict[str, Any]) -> None:
        if where.is_main:
            atomic_write_text(out / "metrics.jsonl", history_lines([*trainer_history, record]))
        trainer_history.append(record)

    trainer_history: list[dict[str, Any]] = []
    if resume and find_checkpoint(out / "checkpoint" / "last") is not None:
        _, meta = load_checkpoint(out / "checkpoint" / "last")
        trainer_history.extend(meta.get("history", []))
    started = time.perf_counter()
    fit = trainer.fit(resume=resume, on_epoch=log)
    results: dict[str, Any] = {
        "mechanism": cfg.mechanism,
        "seed": cfg.seed,
        "tasks": {
            td.task.name: {
                "metric": td.task.metric,
                "higher_is_better": td.task.higher_is_better,
                "dev": fit.dev[td.task.name],
                "test": fit.test[td.task.name],
            }
            for td in problem.tasks
        },
        "params": model.param_counts(),
        "train_seconds": round(fit.train_seconds, 3),
        "wall_seconds": round(time.perf_counter() - started, 3),
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "loss_weights": weighting.current(),
    }
    results.update(model.report())
    if where.world > 1:
        results["processes"] = where.world
    if where.is_main:
        model.write_artifacts(out)
        write_json(out / "results.json", results)
    return TrainedRun(model, problem, results)


def compare(
    cfg: Config,
    mechanisms: list[str],
    out_dir: str | Path,
    *,
    seeds: list[int] | None = None,
    base_dir: str | Path | None = None,
    progress: bool = True,
    title: str | None = None,
) -> dict[str, Any]:
    """Single-task baselines and each mechanism on the same data and seeds.

    Writes ``comparison.json`` and ``comparison.md`` in ``out_dir`` and each run in a subfolder
    (``MECHANISM/`` or, with several seeds, ``MECHANISM/seed-N/``). ``single`` trains every task
    alone with ``hard`` sharing, which on one task is a plain network. With several seeds the
    table shows means and standard deviations over seeds.
    """
    for name in mechanisms:
        if name != SINGLE and name not in MECHANISMS:
            raise MtlshareError(
                f"unknown mechanism {name!r}; choose from "
                f"{', '.join([SINGLE, *MECHANISMS.names()])}"
            )
    seeds = seeds or [cfg.seed]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    problem = build_problem(cfg, base_dir)
    names = [td.task.name for td in problem.tasks]
    for name in mechanisms:  # a bad mechanism setting fails now, not after hours of training
        if name != SINGLE:
            build_model(cfg.replace(mechanism=name), problem)

    def where(mechanism: str, seed: int) -> Path:
        return out / mechanism / f"seed-{seed}" if len(seeds) > 1 else out / mechanism

    singles = []
    for seed in seeds:
        per_task = [
            run(
                cfg.replace(mechanism="hard", tasks=[task], seed=seed),
                where(SINGLE, seed) / task,
                problem=problem.select([task]),
                progress=progress,
            )
            for task in names
        ]
        singles.append(report.merge_single(per_task))
    single = report.mean_over_seeds(singles)
    write_json(out / SINGLE / "results.json", single)
    runs = []
    for name in mechanisms:
        if name == SINGLE:
            continue
        per_seed = [
            run(
                cfg.replace(mechanism=name, seed=seed),
                where(name, seed),
                problem=problem,
                progress=progress,
            )
            for seed in seeds
        ]
        runs.append(report.mean_over_seeds(per_seed))
    comparison = report.compare(single, runs)
    comparison["seeds"] = seeds
    write_json(out / "comparison.json", comparison)
    atomic_write_text(out / "comparison.md", report.comparison_markdown(comparison, title) + "\n")
    return comparison
