"""The neural trainings of a forecasting study, in this process or in worker processes.

A study trains a few hundred small networks (every candidate at every validation origin, then
every neural method and seed at every test origin and history length), each independent of the
others. With ``forecast.jobs`` > 1 they go to that many worker processes (``worker_pool``),
one torch thread each: the study hands them over ahead of need (``prefetch``) and takes each
result when it gets there (``get``), while the baselines run in this process. A worker rebuilds
the data from the config, once per data config.

A network's initialisation and batches depend only on its seed, so a worker's forecast equals
the one this process computes at the same number of torch threads (``train.threads = 1``).
"""

from __future__ import annotations

import json
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtlshare.app.forecast_methods import fit_and_forecast
from mtlshare.app.jobs import ABRUPT, cached_problem, cannot_start, worker_pool
from mtlshare.config import Config, from_dict
from mtlshare.data.datasets import Problem
from mtlshare.errors import MtlshareError

Result = tuple[np.ndarray, dict[str, Any]]


def train_one(method: str, cfg: Config, problem: Problem, target: str) -> Result:
    """``method`` "multitask" (``cfg``'s mechanism over every series of ``problem``) or "single"
    (the same network, hard sharing, the target its only task), trained with ``cfg.seed``."""
    if method == "multitask":
        return fit_and_forecast(cfg, problem, target)
    alone = cfg.replace(mechanism="hard", tasks=[target])
    return fit_and_forecast(alone, problem.select([target]), target)


@dataclass
class NeuralRun:
    """A neural method's forecasts at one origin, one per seed, with what training did."""

    forecasts: list[np.ndarray] = field(default_factory=list)
    runs: list[dict[str, Any]] = field(default_factory=list)


def _train_in_worker(
    method: str, config: dict[str, Any], target: str, base_dir: str | None
) -> Result:
    cfg = from_dict(config)
    return train_one(method, cfg, cached_problem(cfg, config, base_dir), target)


def _key(method: str, cfg: Config, target: str) -> str:
    return json.dumps([method, target, cfg.to_dict()], sort_keys=True, default=str)


class Trainings:
    """Where a study's networks are trained: here, one at a time when asked (``jobs`` 1), or
    in ``jobs`` worker processes from what ``prefetch`` was given."""

    def __init__(self, jobs: int, base_dir: str | Path | None) -> None:
        self.jobs = jobs
        self.base_dir = str(base_dir) if base_dir is not None else None
        self._pool: ProcessPoolExecutor | None = None
        self._pending: dict[str, Future[Result]] = {}
        self._done: dict[str, Result] = {}  # a sweep length equal to the study's history repeats
        self._broken = False  # a worker was killed: the pool takes no more trainings
        self.counts = {"jobs": jobs, "in_workers": 0, "here": 0, "reused": 0}

    def prefetch(self, wanted: list[tuple[str, Config, str]]) -> None:
        """Start training each (method, config with its seed, target) in the workers, in this
        order; nothing with one job."""
        if self.jobs <= 1:
            return
        try:
            if self._pool is None:
                self._pool = worker_pool(self.jobs, threads=1)
            for method, cfg, target in wanted:
                key = _key(method, cfg, target)
                if key not in self._pending and key not in self._done:
                    try:
                        self._pending[key] = self._pool.submit(
                            _train_in_worker, method, cfg.to_dict(), target, self.base_dir
                        )
                    except BrokenProcessPool:  # a worker was killed: get says so
                        self._broken = True
                        return
        except OSError as e:  # no worker process could start (no writable /dev/shm)
            raise cannot_start(e, "forecast.jobs") from None

    def get(self, method: str, cfg: Config, problem: Problem, target: str) -> Result:
        """The forecast and run summary of one training: a worker's, if it was prefetched, and
        the same training's result again if it was asked for before."""
        key = _key(method, cfg, target)
        if key in self._done:
            self.counts["reused"] += 1
            return self._done[key]
        future = self._pending.pop(key, None)
        if future is None and self._broken:  # not trained here instead: the study stops as one
            raise MtlshareError(f"forecast.jobs: {ABRUPT}; run the study again")
        self.counts["here" if future is None else "in_workers"] += 1
        if future is None:
            self._done[key] = train_one(method, cfg, problem, target)
        else:
            try:
                self._done[key] = future.result()
            except BrokenProcessPool:
                self._broken = True
                raise MtlshareError(f"forecast.jobs: {ABRUPT}; run the study again") from None
        return self._done[key]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        self._pending.clear()
        self._done.clear()


def neural_forecasts(
    method: str, cfg: Config, problem: Problem, target: str, seeds: list[int], trainings: Trainings
) -> NeuralRun:
    """``method`` at the origin of ``cfg`` and ``problem``, trained once per seed."""
    result = NeuralRun()
    for seed in seeds:
        forecast, info = trainings.get(method, cfg.replace(seed=seed), problem, target)
        result.forecasts.append(forecast)
        result.runs.append(info)
    return result
