"""The forecasting study's worker pool when a worker is killed outright (the OOM killer)."""

from __future__ import annotations

import re
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest

from mtlshare.app import forecast_pool
from mtlshare.app.jobs import ABRUPT
from mtlshare.config import load_config
from mtlshare.errors import MtlshareError

RECIPE = Path(__file__).resolve().parents[2] / "recipes" / "forecasting" / "bike_sharing.toml"


class BrokenPool:
    """A pool one of whose workers was killed: what it ran fails, and it takes no more."""

    def __init__(self) -> None:
        self.submitted = 0

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        if self.submitted > 1:
            raise BrokenProcessPool("A child process terminated abruptly")
        future: Future[Any] = Future()
        future.set_exception(BrokenProcessPool("A child process terminated abruptly"))
        return future

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_a_killed_worker_is_one_line_not_a_traceback(monkeypatch):
    cfg = load_config(RECIPE)
    trainings = forecast_pool.Trainings(2, None)
    monkeypatch.setattr(forecast_pool, "worker_pool", lambda jobs, threads: BrokenPool())
    wanted = [("multitask", cfg.replace(seed=s), "casual") for s in (0, 1)]
    trainings.prefetch(wanted)  # the second submit finds the pool broken: no error yet
    # the training submitted, and the one the broken pool refused (not trained in this process
    # instead, as if nothing had happened), both end the study in the same line
    for seed in (0, 1):
        with pytest.raises(
            MtlshareError, match=re.escape(f"forecast.jobs: {ABRUPT}; run the study again")
        ):
            trainings.get("multitask", cfg.replace(seed=seed), None, "casual")  # type: ignore[arg-type]
    trainings.close()


def test_a_training_that_broke_the_pool_stops_the_ones_never_submitted_too(monkeypatch):
    """The pool found broken by a training's result (not by a submit): what was never handed
    to it is not trained in this process instead either."""
    cfg = load_config(RECIPE)
    trainings = forecast_pool.Trainings(2, None)
    monkeypatch.setattr(forecast_pool, "worker_pool", lambda jobs, threads: BrokenPool())
    trainings.prefetch([("multitask", cfg, "casual")])  # one submit: the pool takes it
    for wanted in (cfg, cfg.replace(seed=cfg.seed + 1)):  # the one a worker ran, one never
        with pytest.raises(
            MtlshareError, match=re.escape(f"forecast.jobs: {ABRUPT}; run the study again")
        ):
            trainings.get("multitask", wanted, None, "casual")  # type: ignore[arg-type]
    trainings.close()


def test_a_training_a_broken_pool_refused_is_not_trained_here_when_asked_for_first(monkeypatch):
    cfg = load_config(RECIPE)
    trainings = forecast_pool.Trainings(2, None)
    refusing = BrokenPool()
    refusing.submitted = 1  # broken before this study's first submit
    monkeypatch.setattr(forecast_pool, "worker_pool", lambda jobs, threads: refusing)
    trainings.prefetch([("multitask", cfg, "casual")])
    with pytest.raises(MtlshareError, match=re.escape(f"forecast.jobs: {ABRUPT}")):
        trainings.get("multitask", cfg, None, "casual")  # type: ignore[arg-type]
    trainings.close()


def test_worker_processes_that_cannot_start_name_forecast_jobs(monkeypatch):
    """No writable ``/dev/shm``: the study ended in ``[Errno 30] Read-only file system``."""

    def no_shm(jobs: int, threads: int) -> Any:
        raise OSError(30, "Read-only file system")

    cfg = load_config(RECIPE)
    trainings = forecast_pool.Trainings(2, None)
    monkeypatch.setattr(forecast_pool, "worker_pool", no_shm)
    with pytest.raises(MtlshareError) as caught:
        trainings.prefetch([("multitask", cfg, "casual")])
    assert str(caught.value).startswith(
        "forecast.jobs: the worker processes cannot start ([Errno 30] Read-only file system)"
    )
    assert str(caught.value).endswith("or run one at a time with forecast.jobs=1")
    trainings.close()
