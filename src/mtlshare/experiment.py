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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from mtlshare.data.datasets import Problem
from mtlshare.errors import ConfigError, MtlshareError
from mtlshare.evaluation import report
from mtlshare.jobs import RunJob, available_cores, execute, remember_problem
from mtlshare.models.trunks import backbone_from_config
from mtlshare.models.tying import TiedHead, tie_weights
from mtlshare.registry import DATA_SOURCES, EXPERIMENTS, MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.training.checkpoint import atomic_write_text, find_checkpoint, load_checkpoint
from mtlshare.training.distributed import Dist, barrier
from mtlshare.training.loop import Trainer, history_lines
from mtlshare.training.objective import LossWeighting

if TYPE_CHECKING:  # config imports this module to register the "train" experiment
    from mtlshare.config import Config

SINGLE = "single"
SUBNET = "single_subnet"


@dataclass
class CompareConfig:
    """``[compare]``: what ``mtlshare compare`` runs when the command line does not say.

    ``mechanisms``: in order, e.g. ``["single", "hard", "sparse", "single_subnet"]`` (empty:
    single and every registered mechanism); ``single_subnet`` trains each task alone on the
    mask that the ``sparse`` run (listed before it) selected. ``seeds``: empty = the config's
    seed. ``seeds_of``: per mechanism, a subset of the seeds to run it with (costly rows on
    fewer seeds, e.g. ``{ soft = [0] }``); such a row is compared with single-task training
    under the same seeds. ``overrides``: per mechanism (or ``single``, ``single_subnet``),
    dotted keys and
    values applied to its runs only, e.g. ``hierarchical = { "trunk.hidden" = [200, 200] }``
    (``single_subnet`` also takes ``sparse``'s). ``title``: a heading for ``comparison.md``.
    """

    mechanisms: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    seeds_of: dict[str, list[int]] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    title: str = ""

    def validate(self) -> None:
        known = [SINGLE, SUBNET, *MECHANISMS.names()]
        for name in [*self.mechanisms, *self.overrides, *self.seeds_of]:
            if name not in known:
                raise ConfigError(
                    f"compare: unknown mechanism {name!r}; choose from {', '.join(known)}"
                )
        for name, changes in self.overrides.items():
            for key in changes:
                if key.split(".")[0] in ("data", "tasks", "seed", "mechanism"):
                    raise ConfigError(
                        f"compare.overrides.{name}: {key!r} would change the data or the run "
                        "itself; every mechanism in a comparison trains on the same data"
                    )


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
    for td in problem.tasks:  # output projections tied to the input word embedding
        if td.task.tie_embedding:
            head, words = (
                model.head(td.task.name),
                getattr(model.stem_for(td.task.name), "words", None),
            )
            if not isinstance(head, TiedHead) or not isinstance(words, nn.Embedding):
                raise ConfigError(
                    f"task {td.task.name!r}: tie_embedding needs a word-embedding input "
                    "encoder (the conll data source)"
                )
            tie_weights(head.out, words)
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
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
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
    if "word_vectors" in problem.meta:
        results["word_vectors"] = problem.meta["word_vectors"]
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
    resume: bool = False,
    jobs: int = 1,
) -> dict[str, Any]:
    """Single-task baselines and each mechanism on the same data and seeds.

    Writes ``comparison.json`` and ``comparison.md`` in ``out_dir`` and each run in a subfolder
    (``MECHANISM/`` or, with several seeds, ``MECHANISM/seed-N/``). ``single`` trains every task
    alone with ``hard`` sharing, which on one task is a plain network; ``single_subnet`` trains
    every task alone on the mask the ``sparse`` run selected for it. ``[compare] overrides``
    change the config of one mechanism's runs. With several seeds the table shows means and
    standard deviations over seeds; with hard and sparse sharing and three or more tasks it
    also shows the masks' pairwise overlap beside the gain of sparse over hard sharing.

    With ``resume``, a run whose ``results.json`` exists (with the same config) is read back,
    not trained again, and an interrupted one continues from its ``checkpoint/last``. With
    ``jobs`` > 1 the runs go to that many worker processes (``mtlshare.jobs``); the tables are
    the same, only the seconds differ.
    """
    known = [SINGLE, SUBNET, *MECHANISMS.names()]
    for name in mechanisms:
        if name not in known:
            raise MtlshareError(f"unknown mechanism {name!r}; choose from {', '.join(known)}")
    if SUBNET in mechanisms and (
        "sparse" not in mechanisms or mechanisms.index("sparse") > mechanisms.index(SUBNET)
    ):
        raise MtlshareError(f"{SUBNET} trains on the sparse run's masks: list sparse before it")
    if jobs < 1:
        raise MtlshareError(f"--jobs: expected a number of worker processes >= 1, got {jobs}")
    if jobs > 1 and cfg.train.threads * jobs > available_cores():
        raise MtlshareError(
            f"--jobs {jobs} with train.threads = {cfg.train.threads} would run "
            f"{jobs * cfg.train.threads} threads on {available_cores()} cores; leave "
            "train.threads = 0 and the workers divide the cores between them"
        )
    seeds = seeds or [cfg.seed]
    overrides = cfg.compare.overrides
    out = Path(out_dir)
    every_task = build_problem(cfg.replace(tasks=[]), base_dir)
    problem = every_task.select(cfg.tasks) if cfg.tasks else every_task
    names = [td.task.name for td in problem.tasks]

    def config(name: str, **extra: Any) -> Config:
        changes: dict[str, Any] = {}
        if name == SUBNET:
            changes.update(overrides.get("sparse", {}))
        changes.update(overrides.get(name, {}))
        mechanism = {SINGLE: "hard", SUBNET: "sparse"}.get(name, name)
        return cfg.replace(**{**changes, "mechanism": mechanism, **extra})

    for name in mechanisms:  # a bad mechanism setting fails now, not after hours of training
        if name not in (SINGLE, SUBNET):
            build_model(config(name), problem)
    out.mkdir(parents=True, exist_ok=True)  # only once the data and settings are known good

    def where(mechanism: str, seed: int) -> Path:
        return out / mechanism / f"seed-{seed}" if len(seeds) > 1 else out / mechanism

    rows = [SINGLE, *(m for m in mechanisms if m != SINGLE)]
    row_seeds = {name: _row_seeds(cfg, name, seeds) for name in rows}
    plan: list[RunJob] = []
    sparse_job: dict[int, int] = {}  # seed -> index of its sparse run
    for name in rows:
        for seed in row_seeds[name]:
            if name not in (SINGLE, SUBNET):
                if name == "sparse":
                    sparse_job[seed] = len(plan)
                run_cfg = config(name, seed=seed)
                plan.append(RunJob(name, seed, None, run_cfg.to_dict(), where(name, seed)))
                continue
            for task in names:  # every task trained alone
                extra: dict[str, Any] = {"tasks": [task], "seed": seed}
                after: tuple[int, ...] = ()
                if name == SUBNET:
                    if seed not in sparse_job:
                        raise MtlshareError(
                            f"{SUBNET} seed {seed} trains on the masks of sparse seed {seed}, "
                            "which compare.seeds_of leaves out"
                        )
                    extra["sparse.masks_from"] = str(where("sparse", seed).resolve())
                    after = (sparse_job[seed],)
                run_cfg = config(name, **extra)
                folder = where(name, seed) / task
                plan.append(RunJob(name, seed, task, run_cfg.to_dict(), folder, after))
    base = str(base_dir) if base_dir is not None else None
    remember_problem(cfg.to_dict(), base, every_task)
    finished = execute(plan, jobs, base_dir=base, resume=resume, progress=progress)
    return _assemble(cfg, out, rows, row_seeds, plan, finished, names, title)


def _row_seeds(cfg: Config, name: str, seeds: list[int]) -> list[int]:
    """The seeds ``name`` runs with: ``compare.seeds_of[name]`` (a subset of ``seeds``) or all."""
    chosen = cfg.compare.seeds_of.get(name)
    if chosen is None:
        return seeds
    if name == SINGLE:
        raise MtlshareError("compare.seeds_of: single-task training runs with every seed")
    if not chosen or any(s not in seeds for s in chosen) or len(set(chosen)) != len(chosen):
        raise MtlshareError(
            f"compare.seeds_of.{name}: {chosen} must be distinct seeds among {seeds}"
        )
    return [s for s in seeds if s in chosen]


def _assemble(
    cfg: Config,
    out: Path,
    rows: list[str],
    row_seeds: dict[str, list[int]],
    plan: list[RunJob],
    finished: list[dict[str, Any]],
    names: list[str],
    title: str | None,
) -> dict[str, Any]:
    """Fold the finished runs into ``comparison.json`` and ``comparison.md``."""
    by_row: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for job, result in zip(plan, finished, strict=True):
        by_row.setdefault((job.name, job.seed), []).append(result)
    single_of: dict[int, dict[str, Any]] = {}  # seed -> single-task results of that seed
    single: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = []
    baselines: dict[str, dict[str, Any]] = {}
    sparse_runs: list[dict[str, Any]] = []
    for name in rows:
        per_seed = []
        for seed in row_seeds[name]:
            got = by_row[(name, seed)]
            if name in (SINGLE, SUBNET):
                per_seed.append({**report.merge_single(got), "mechanism": name})
            else:
                per_seed.append(got[0])
        merged = report.mean_over_seeds(per_seed)
        if name == SINGLE:
            single = merged
            single_of = dict(zip(row_seeds[SINGLE], per_seed, strict=True))
            write_json(out / SINGLE / "results.json", single)
            continue
        if row_seeds[name] != row_seeds[SINGLE]:  # fewer seeds: the baseline of those seeds
            baselines[name] = report.mean_over_seeds([single_of[s] for s in row_seeds[name]])
        if name == SUBNET:
            write_json(out / SUBNET / "results.json", merged)
        if name == "sparse":
            sparse_runs = per_seed
        runs.append(merged)
    assert single is not None
    comparison = report.compare(single, runs, baselines)
    seeds = row_seeds[SINGLE]
    comparison["seeds"] = seeds
    if baselines:
        comparison["seeds_of"] = {name: row_seeds[name] for name in baselines}
    comparison["overrides"] = cfg.compare.overrides
    if sparse_runs and len(names) >= 2:
        comparison["overlap_vs_gain"] = report.overlap_vs_gain(comparison, sparse_runs)
    write_json(out / "comparison.json", comparison)
    text = report.comparison_markdown(comparison, title or cfg.compare.title or None)
    atomic_write_text(out / "comparison.md", text + "\n")
    return comparison
