"""``mtlshare run``: train one mechanism from a config into a run folder
(``mtlshare.training.folder.RunFolder``: config, metrics lines, results, checkpoints), or read a
finished run back; under torchrun every process trains and only rank 0 writes."""

from __future__ import annotations

import json
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtlshare.app.build import build_model, build_problem, configured_tasks
from mtlshare.app.figures import draw
from mtlshare.app.machine import machine
from mtlshare.config import Config, resumable_differences, same_config
from mtlshare.data.codecs import LATER_KEYS, check_codec_spec, inference_spec, plain_features
from mtlshare.data.daily import ForecastView
from mtlshare.data.datasets import Problem, check_dev_observed
from mtlshare.errors import MtlshareError
from mtlshare.evaluation.forecast import forecast_metrics, mase_scale
from mtlshare.sharing.base import INTERFACE_DOC, SharingModel
from mtlshare.training.distributed import Dist, barrier, torch_threads
from mtlshare.training.folder import INFERENCE, RunFolder
from mtlshare.training.joint import check_joint
from mtlshare.training.loop import FitResult, Trainer
from mtlshare.training.objective import LossWeighting
from mtlshare.training.settings import check_select_on
from mtlshare.training.state import BEST, LAST, LoopState


@dataclass
class TrainedRun:
    """A finished training run: the selected model, the data it saw and its results."""

    model: SharingModel
    problem: Problem
    results: dict[str, Any]


def run(cfg: Config, out_dir: str | Path, **options: Any) -> dict[str, Any]:
    """Train ``cfg.mechanism`` and write the run's outputs to ``out_dir``; returns results.
    ``options`` are ``train``'s (``base_dir``, ``resume``, ``progress``, ``problem``, ``dist``);
    ``problem`` is data of one's own instead of the config's (``data.source = "custom"``).
    Under torchrun (``dist``), every process trains and only rank 0 writes."""
    return train(cfg, out_dir, **options).results


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
    """Like ``run``, and also hand back the selected model and the problem. Resuming a run
    that has finished reads it back (its results and selected model), never trains again.
    ``train.threads`` holds for this run only; torch's global random generator is seeded with
    ``cfg.seed`` (as every run must be, to be repeatable) and left where training took it."""
    where = dist or Dist()
    base_dir = base_dir if base_dir is not None else cfg.base_dir
    folder = RunFolder(out_dir)
    resolved = cfg.to_toml()
    # before the data: a wrong folder fails at once
    check_folder(folder, resolved, resume)
    read_back = reads_back(folder, resolved, resume)
    barrier(where)  # every process has checked the folder before rank 0 writes into it
    with torch_threads(cfg.train.threads):
        problem = own_tasks(cfg, problem) if problem is not None else build_problem(cfg, base_dir)
        model = build_model(cfg, problem)
        if read_back:  # results and the selected model, of one run
            with folder.reading():
                still_finished(folder, resolved)
                results = folder.results()
                folder.load_model(model, "best")
            return TrainedRun(model, problem, results)
        usage = usage_spec(cfg, problem, base_dir)  # inputs no codec describes: before --out
        names = [td.task.name for td in problem.tasks]
        weighting = LossWeighting(names, cfg.weighting, cfg.seed)
        check_select_on(cfg.train, names)
        check_dev_observed(problem)
        if cfg.train.schedule == "joint":
            check_joint(cfg.weighting.kind, model)  # a pair the model cannot take: before --out
        created = not folder.path.exists()
        if where.is_main:
            folder.start(resolved, resume, resumable_differences, reopen=resume)
            folder.write_json(INFERENCE, usage)
        try:
            trainer = Trainer(
                model,
                problem,
                cfg.train,
                weighting,
                seed=cfg.seed,
                folder=folder,
                progress=progress,
                dist=where,
            )
            started = time.perf_counter()
            fit = trainer.fit(resume=resume)
            results = run_results(cfg, problem, model, weighting, fit)
            results["wall_seconds"] = round(time.perf_counter() - started, 3)
            results["machine"] = machine(trainer.device)
            if where.world > 1:
                results["processes"] = where.world
            if where.is_main:
                draw(f"{folder.path}: the figures", model.write_artifacts, folder.path)
                folder.write_results(results)
        except MtlshareError:  # refused once training began: a fresh run leaves no trace,
            if where.is_main and not resume:  # and a finished one given more epochs its files
                folder.discard_unstarted(created)
            elif where.is_main:
                folder.undo_reopen()
            raise
        finally:
            folder.close()
        return TrainedRun(model, problem, results)


def check_folder(folder: RunFolder, resolved: str, resume: bool) -> None:
    """``RunFolder.check`` with a training run's rules: a resumed run needs the same config, or
    the same with ``train.epochs`` raised. A finished run given more epochs trains on from its
    ``checkpoint/last`` and keeps its ``checkpoint/best`` until an epoch beats it: both must be
    there and sound (kept runs, copied without checkpoints, have none) before its results are
    set aside. Writes nothing."""
    folder.check(resolved, resume, resumable_differences)
    if not (resume and folder.finished) or reads_back(folder, resolved, resume):
        return  # nothing to train on from: a fresh run, a cut one, or one read back
    for name in (LAST, BEST):
        if not folder.has_checkpoint(name):
            raise MtlshareError(
                f"{folder.checkpoint_dir(name)}: missing, so the finished run cannot train on "
                "to more epochs (train.epochs raised); resume with its own train.epochs to read "
                "it back, or train afresh with a new --out"
            )
    _, meta = folder.load_checkpoint(LAST)  # a damaged or refused checkpoint: one line, here
    epochs = tomllib.loads(resolved)["train"]["epochs"]
    LoopState.from_meta(meta, folder.checkpoint_dir(LAST), epochs)
    folder.load_checkpoint(BEST)


def reads_back(folder: RunFolder, resolved: str, resume: bool) -> bool:
    """Whether resuming into ``folder`` reads a finished run back (the same config) rather than
    training: a finished run given more epochs trains on (``check_folder``)."""
    saved = folder.config_text()
    return resume and folder.finished and saved is not None and same_config(saved, resolved)


def still_finished(folder: RunFolder, resolved: str) -> None:
    """Under the folder's shared lock: the run decided to be read back still is (no other
    process has given it more epochs in between)."""
    if not reads_back(folder, resolved, True):
        raise MtlshareError(
            f"{folder.path}: changed by another process while being read back; run again"
        )


def own_tasks(cfg: Config, problem: Problem) -> Problem:
    """A problem of one's own restricted to ``cfg.tasks`` when they are given, as a data
    source's is (an unknown task is one line)."""
    if cfg.tasks and [td.task.name for td in problem.tasks] != cfg.tasks:
        return configured_tasks(cfg, problem)
    return problem


def usage_spec(cfg: Config, problem: Problem, base_dir: str | Path | None) -> dict[str, Any]:
    """``inference.json`` of a run on ``problem``: see ``data.codecs.inference_spec``. A problem
    that names no codec (the user's own tensors) gets the plain one, ``codecs.plain_features``
    (a ``DataError`` for inputs that one cannot read); one that names a codec must name one
    ``load_run`` can build (``codecs.check_codec_spec``)."""
    rank = problem.tasks[0].train.rank
    if problem.inference:
        check_codec_spec(problem.inference, problem.input_dim)
    return inference_spec(
        [td.task for td in problem.tasks],
        problem.input_dim,
        rank,
        problem.inference
        or plain_features(problem.input_dim, rank, problem.build_stem is not None),
        data_source=cfg.data_source,
        base_dir=str(Path(base_dir).resolve()) if base_dir is not None else None,
    )


def encoding_differences(saved: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """What encodes the data otherwise in ``fresh`` (``usage_spec`` of data read again) than in
    ``saved`` (a run's ``inference.json``): the codec's vocabularies, features or scales, the
    input width, the labels or target scale of a task both have. Data files changed since
    training (or another copy) give words other ids and tags other classes, and so wrong scores
    without a word."""
    fresh = json.loads(json.dumps(fresh))  # as inference.json holds it: lists, not tuples
    codec, old = fresh["codec"], saved.get("codec", {})
    keys = (set(codec) | set(old)) - (LATER_KEYS - set(old))  # a key newer than the run
    differ = sorted(f"the codec's {k}" for k in keys if codec.get(k) != old.get(k))
    if fresh["input_dim"] != saved.get("input_dim"):
        differ.append("the input width")
    saved_tasks = {t["name"]: t for t in saved.get("tasks", [])}
    for key, what in (("labels", "labels"), ("target_scale", "target scale")):
        differ += [
            f"the {what} of task {t['name']!r}"
            for t in fresh["tasks"]
            if t["name"] in saved_tasks and t.get(key) != saved_tasks[t["name"]].get(key)
        ]
    return differ


def run_results(
    cfg: Config,
    problem: Problem,
    model: SharingModel,
    weighting: LossWeighting,
    fit: FitResult,
) -> dict[str, Any]:
    """``results.json`` of a training run (``wall_seconds``, ``machine`` and ``processes``
    aside)."""
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
        "wall_seconds": 0.0,
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "loss_weights": weighting.current(),
    }
    results.update(checked_report(cfg.mechanism, model.report()))
    if "word_vectors" in problem.meta:
        results["word_vectors"] = problem.meta["word_vectors"]
    view = problem.meta.get("forecast")
    if isinstance(view, ForecastView):
        results["forecast"] = test_forecast_scores(problem, model, view)
    return results


# results.json's own keys, which a mechanism's report() must leave alone: those run_results
# and train write whatever the mechanism
OWN_KEYS = frozenset(
    {
        "mechanism",
        "seed",
        "tasks",
        "params",
        "train_seconds",
        "wall_seconds",
        "best_epoch",
        "epochs_run",
        "loss_weights",
        "word_vectors",
        "forecast",
        "processes",
        "machine",
    }
)


def checked_report(mechanism: str, report: object) -> dict[str, Any]:
    """``report``, what the mechanism's ``report()`` gave, if ``results.json`` can hold it: a
    dict of JSON values whose keys are none of the results' own (``OWN_KEYS``); else a
    one-line ``MtlshareError``, before anything of the run's results is written (its
    checkpoints are kept: fixed, ``--resume`` ends the run without training again)."""
    fix = f"; fix it and end the run with --resume ({INTERFACE_DOC})"
    if not isinstance(report, dict):
        raise MtlshareError(
            f"mechanism {mechanism!r}: report() gave a {type(report).__name__}; it must be a "
            f"dict, merged into results.json{fix}"
        )
    taken = sorted(k for k in report if k in OWN_KEYS)
    if taken:
        raise MtlshareError(
            f"mechanism {mechanism!r}: report() gives {taken[0]!r}, a key of results.json's "
            f"own ({', '.join(sorted(OWN_KEYS))}); give its results a key of its own{fix}"
        )
    for key, value in report.items():
        try:
            json.dumps({key: value})
        except (TypeError, ValueError) as e:
            raise MtlshareError(
                f"mechanism {mechanism!r}: report()[{key!r}] is not JSON-serialisable ({e}); "
                f"give numbers, strings, lists and dicts (float(t) of a tensor){fix}"
            ) from None
    return report


def test_forecast_scores(
    problem: Problem, model: SharingModel, view: ForecastView
) -> dict[str, dict[str, Any]]:
    """Per series, the selected model's forecast of the test horizon scored on the series' own
    scale, as the forecasting study scores it (MAE, RMSE, sMAPE, and MASE against the weekly
    seasonal-naive error of the history the series may see): a task's ``test`` score is in the
    network's space (scaled, log), these are in the data's units."""
    model.eval()
    device = next(model.parameters()).device
    out: dict[str, dict[str, Any]] = {}
    for td in problem.tasks:
        name = td.task.name
        with torch.no_grad():
            output = model(td.test.x.to(device), name).cpu().numpy()
        forecast = view.decoders[name](output)
        scale = mase_scale(view.seen(name)[1])
        scores = forecast_metrics(view.actual(name), forecast, scale if scale > 0 else None)
        out[name] = {"first_day": view.future_dates[0].isoformat(), "days": view.horizon, **scores}
    return out
