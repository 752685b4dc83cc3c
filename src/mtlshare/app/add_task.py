"""``mtlshare add-task``: train new tasks on a trained multi-task model without changing anything
the trained tasks use.

How is the mechanism's business (``SharingModel.add_task_strategy`` and the methods beside it):
hard sharing gives a new task its own head (and task-specific layers) on the frozen shared
trunk; sparse sharing searches a new mask over the trained base network, every entry an existing
mask keeps frozen; ``mmoe`` gives it a gate and a head over the frozen experts, ``ple`` its own
gates and experts beside the frozen shared ones. Mechanisms without a strategy are refused with
the list of those that have one.

The trained tasks' dev and test metrics are measured before and after and must be identical;
so must every parameter they read (``add_task.json`` says so, and the command fails if not).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from pathlib import Path
from typing import Any

from mtlshare.app.build import build_model, build_problem, require_data_source
from mtlshare.app.figures import draw
from mtlshare.app.run import encoding_differences, usage_spec
from mtlshare.config import Config, check_config, config_differences, load_trained_config
from mtlshare.data.datasets import Problem
from mtlshare.errors import CheckpointError, DataError, MtlshareError
from mtlshare.files import parse_json
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.training.checkpoint import TENSORS, error_line
from mtlshare.training.folder import CONFIG, INFERENCE, RunFolder
from mtlshare.training.loop import FitResult, Trainer
from mtlshare.training.objective import LossWeighting

SUMMARY = "add_task.json"
SOURCE = "trained_run.json"  # which selected model the new tasks were added to


def _selected_model_digest(trained: RunFolder) -> str:
    """The SHA-256 of the trained run's selected model (``checkpoint/best``'s tensors): it
    changes when ``--resume`` gives that run more epochs and a later epoch is selected."""
    tensors = trained.checkpoint_dir("best") / TENSORS
    return hashlib.sha256(tensors.read_bytes()).hexdigest()


def _check_same_source(out: RunFolder, digest: str, resume: bool) -> None:
    """A resumed addition must continue on the selected model it started on: the trained run
    may have trained on since (more epochs), and the frozen weights would then differ."""
    if not resume or not out.file(SOURCE).is_file():
        return
    try:
        started_on = parse_json(out.file(SOURCE).read_text(encoding="utf-8"))["best_sha256"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise MtlshareError(f"{out.file(SOURCE)}: unreadable ({error_line(e)[:120]})") from None
    if started_on != digest:
        raise MtlshareError(
            f"{out.file(SOURCE)}: the trained run's selected model changed since this addition "
            "started (was it given more epochs?); add the tasks afresh with a new --out"
        )


def strategies() -> dict[str, str]:
    """Mechanism -> how it adds a task, for the mechanisms that can."""
    out = {}
    for entry in MECHANISMS:
        strategy = getattr(entry.build, "add_task_strategy", None)
        if strategy is not None:
            out[entry.name] = strategy
    return out


def _trained_run(run_dir: Path) -> tuple[RunFolder, Config, list[str]]:
    """The trained run's folder, its config and its tasks."""
    if (run_dir / "meta.json").is_file() and run_dir.parent.name == "checkpoint":
        run_dir = run_dir.parent.parent  # given the checkpoint folder itself
    folder = RunFolder(run_dir)
    has_config = folder.config_text() is not None
    if has_config and not folder.finished and folder.holds_run():
        raise MtlshareError(
            f"{run_dir}: the run has not finished (still training, or cut: resume it with "
            "`mtlshare run ... --resume`); add-task needs its results and selected checkpoint"
        )
    if not has_config or not folder.finished or not folder.has_checkpoint("best"):
        raise MtlshareError(
            f"{run_dir}: not a finished mtlshare run (config, results and the selected "
            "checkpoint are needed); give the --out folder of `mtlshare run`"
        )
    cfg = load_trained_config(folder.file(CONFIG))
    return folder, cfg, list(folder.results()["tasks"])


def _check_data(new: Config, old: Config, trained: list[str]) -> None:
    """The config must read the trained run's data, with the same settings (vocabularies and
    every id depend on them); it may only add tasks."""
    if new.data_source != old.data_source:
        raise MtlshareError(
            f"the config reads data source {new.data_source!r}, the trained model "
            f"{old.data_source!r}"
        )
    mine, theirs = dataclasses.asdict(new.data), dataclasses.asdict(old.data)
    for key in sorted(set(mine) | set(theirs)):
        if key == "tasks" and isinstance(theirs.get(key), dict):
            for task in trained:
                if mine[key].get(task) != theirs[key].get(task):
                    raise MtlshareError(
                        f"data.tasks.{task}: {mine[key].get(task)!r} differs from the trained "
                        f"run's {theirs[key].get(task)!r}; the trained tasks' data must not change"
                    )
        elif mine.get(key) != theirs.get(key):
            raise MtlshareError(
                f"data.{key}: {mine.get(key)!r} differs from the trained run's "
                f"{theirs.get(key)!r}; add-task reads the trained run's data with its settings"
            )


def _undeclared_tables(new: Config, old: Config) -> list[str]:
    """Task tables of ``new``'s [data] that the trained run's config did not have."""
    mine, theirs = getattr(new.data, "tasks", None), getattr(old.data, "tasks", None)
    if isinstance(mine, dict) and isinstance(theirs, dict):
        return sorted(set(mine) - set(theirs))
    return []


def _model_config(new: Config, old: Config, tasks: list[str]) -> Config:
    """The new config's data and training, the trained model's mechanism and network."""
    return new.replace(
        mechanism=old.mechanism,
        tasks=tasks,
        trunk=dataclasses.asdict(old.trunk),
        **{old.mechanism: dataclasses.asdict(old.mechanism_config)},
    )


def _load_trained(model: SharingModel, folder: RunFolder, new_tasks: list[str]) -> None:
    """The trained weights into ``model``; only the new tasks' own parameters may be missing."""
    state = folder.model_state("best")
    try:
        result = model.load_state_dict(state, strict=False)
    except CheckpointError as e:  # a damaged part the model reads itself (sparse masks)
        raise CheckpointError(f"{folder.checkpoint_dir('best')}: {e}") from None
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(
            f"{folder.path}: the trained model does not fit the config's data or network "
            f"({type(e).__name__}: {error_line(e)[:200]})"
        ) from None
    unexpected = list(result.unexpected_keys)
    stray = [k for k in result.missing_keys if not any(f".{t}." in f".{k}" for t in new_tasks)]
    if unexpected or stray:
        raise CheckpointError(
            f"{folder.path}: the trained model does not fit (unexpected {unexpected[:3]}, "
            f"missing {stray[:3]})"
        )


def _prepare(
    run_dir: Path, cfg: Config, base_dir: str | Path | None
) -> tuple[RunFolder, Config, Problem, SharingModel, list[str], list[str]]:
    """Check the request and build the combined model with the trained weights in it."""
    folder, old_cfg, old_tasks = _trained_run(run_dir)
    if old_cfg.mechanism not in strategies():
        can = ", ".join(f"{m} ({s})" for m, s in strategies().items())
        raise MtlshareError(
            f"add-task: {run_dir} was trained with {old_cfg.mechanism!r}, which cannot add a "
            f"task; mechanisms that can: {can}"
        )
    require_data_source(cfg)  # before comparing its [data] with the trained run's
    _check_data(cfg, old_cfg, old_tasks)
    problem = build_problem(cfg.replace(tasks=[]), base_dir)
    available = [td.task.name for td in problem.tasks]
    missing = [t for t in old_tasks if t not in available]
    if missing:
        raise MtlshareError(
            f"the config's data has no task(s) {missing} that the trained model has; it must "
            "hold the trained tasks as well as the new ones"
        )
    new_tasks = [t for t in (cfg.tasks or available) if t not in old_tasks]
    if not new_tasks:
        raise MtlshareError(
            f"no new task: the trained model already has {old_tasks} (name new tasks in `tasks`)"
        )
    full_cfg = _model_config(cfg, old_cfg, [*old_tasks, *new_tasks])
    problem = problem.select([*old_tasks, *new_tasks])
    if folder.file(INFERENCE).is_file():  # (runs older than inference.json: not checkable)
        fresh = usage_spec(full_cfg, problem, base_dir)
        differ = encoding_differences(folder.inference(), fresh)
        if differ and (undeclared := _undeclared_tables(cfg, old_cfg)):
            raise DataError(
                f"data.tasks: {undeclared} not in the [data] of {run_dir}, whose input "
                f"encoding is built over every task table there ({', '.join(differ)} would "
                "differ): add-task can add only a task whose table the trained run's config "
                "already held (a run trains only the tasks in `tasks`)"
            )
        if differ:
            raise DataError(
                f"the data the config reads is not what {run_dir} was trained on: "
                f"its {INFERENCE} differs in {', '.join(differ)} (were the data files changed "
                "since?)"
            )
    model = build_model(full_cfg, problem)
    _load_trained(model, folder, new_tasks)
    return folder, full_cfg, problem, model, old_tasks, new_tasks


def add_task(
    run_dir: str | Path,
    cfg: Config,
    out_dir: str | Path,
    *,
    base_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train the tasks of ``cfg`` that the run in ``run_dir`` was not trained on; see the
    module docstring. Writes a run folder (config, metrics lines, checkpoints, results) with
    ``add_task.json`` in ``out_dir``; returns the latter's content."""
    check_config(cfg, "mtlshare.add_task")
    base_dir = base_dir if base_dir is not None else cfg.base_dir
    trained, full_cfg, problem, model, old_tasks, new_tasks = _prepare(Path(run_dir), cfg, base_dir)
    out = RunFolder(out_dir)
    # the config as asked, before freezing: a mechanism may retune its own settings for the
    # addition (sparse: no warm-up), and --resume compares against what was written here
    text = full_cfg.to_toml()
    out.check(text, resume, config_differences)
    source = _selected_model_digest(trained)
    _check_same_source(out, source, resume)
    model.freeze_for_new_tasks(old_tasks, new_tasks)
    snapshot = model.snapshot_frozen()
    out.start(text, resume, config_differences)
    out.write_json(SOURCE, {"trained_run": str(trained.path), "best_sha256": source})
    out.write_json(INFERENCE, usage_spec(full_cfg, problem, base_dir))
    try:
        scorer = Trainer(
            model,
            problem.select(old_tasks),
            full_cfg.train,
            LossWeighting(old_tasks, full_cfg.weighting),
            progress=False,
        )
        before = {t: {s: scorer.score(t, s) for s in ("dev", "test")} for t in old_tasks}
        trainer = Trainer(
            model,
            problem.select(new_tasks),
            full_cfg.train,
            LossWeighting(new_tasks, full_cfg.weighting, full_cfg.seed),
            seed=full_cfg.seed,
            folder=out,
            progress=progress,
        )
        started = time.perf_counter()
        fit = trainer.fit(resume=resume)
        after = {t: {s: scorer.score(t, s) for s in ("dev", "test")} for t in old_tasks}
        changed = model.changed_since(snapshot)
        summary = _summary(trained.path, full_cfg, problem, model, new_tasks, fit)
        summary["existing_tasks"] = {
            t: {
                "metric": problem.select([t]).tasks[0].task.metric,
                "dev_before": before[t]["dev"],
                "dev_after": after[t]["dev"],
                "test_before": before[t]["test"],
                "test_after": after[t]["test"],
            }
            for t in old_tasks
        }
        summary["existing_unchanged"] = before == after and not changed
        summary["changed_parameters"] = changed
        summary["wall_seconds"] = round(time.perf_counter() - started, 3)
        out.write_json(SUMMARY, _ordered(summary))
        draw(f"{out.path}: the figures", model.write_artifacts, out.path)
        out.write_results(_results(full_cfg, problem, summary, new_tasks))
    finally:
        out.close()
    if not summary["existing_unchanged"]:
        raise MtlshareError(
            f"adding {new_tasks} changed what the trained tasks use ({changed[:3]}); "
            f"see {out.file(SUMMARY)}"
        )
    return _ordered(summary)


def _summary(
    trained: Path,
    cfg: Config,
    problem: Problem,
    model: SharingModel,
    new_tasks: list[str],
    fit: FitResult,
) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "strategy": model.add_task_strategy,
        "mechanism": cfg.mechanism,
        "trained_run": str(trained),
        "new_tasks": {
            t: {
                "metric": problem.select([t]).tasks[0].task.metric,
                "dev": fit.dev[t],
                "test": fit.test[t],
            }
            for t in new_tasks
        },
        "trainable_params": model.trainable_for_new_tasks(),
        "params": model.param_counts(),
        "train_seconds": round(fit.train_seconds, 3),
        "best_epoch": fit.best_epoch,
    }
    summary.update(model.addition_report(new_tasks))
    return summary


ORDER = (
    "strategy",
    "mechanism",
    "trained_run",
    "existing_tasks",
    "existing_unchanged",
    "changed_parameters",
    "new_tasks",
    "trainable_params",
    "params",
    "train_seconds",
    "wall_seconds",
    "best_epoch",
)


def _ordered(summary: dict[str, Any]) -> dict[str, Any]:
    """``add_task.json``'s keys in their documented order, the mechanism's own after them."""
    return {
        **{k: summary[k] for k in ORDER if k in summary},
        **{k: v for k, v in summary.items() if k not in ORDER},
    }


def _results(
    cfg: Config, problem: Problem, summary: dict[str, Any], new_tasks: list[str]
) -> dict[str, Any]:
    """``results.json``: every task's metrics after the addition, like a run's."""

    def entry(task: str, dev: float, test: float) -> dict[str, Any]:
        spec = problem.select([task]).tasks[0].task
        return {
            "metric": spec.metric,
            "higher_is_better": spec.higher_is_better,
            "dev": dev,
            "test": test,
        }

    kept = summary["existing_tasks"].items()
    added = summary["new_tasks"].items()
    return {
        "mechanism": cfg.mechanism,
        "seed": cfg.seed,
        "tasks": {
            **{t: entry(t, s["dev_after"], s["test_after"]) for t, s in kept},
            **{t: entry(t, s["dev"], s["test"]) for t, s in added},
        },
        "params": summary["params"],
        "train_seconds": summary["train_seconds"],
        "added_tasks": new_tasks,
    }
