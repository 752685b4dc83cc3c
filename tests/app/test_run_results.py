"""``results.json`` of a training run, from a fit whose selected epoch is not its last."""

from __future__ import annotations

from types import SimpleNamespace

from mtlshare.app.run import run_results
from mtlshare.config import Config
from mtlshare.tasks.task import Task
from mtlshare.training.loop import FitResult


def test_results_name_the_selected_epoch_and_the_epochs_run():
    task = Task("a", "classification", 3, "accuracy")
    problem = SimpleNamespace(tasks=[SimpleNamespace(task=task)], meta={})
    model = SimpleNamespace(param_counts=lambda: {"total": 7}, report=lambda: {"extra": 1})
    weighting = SimpleNamespace(current=lambda: {"a": 1.0})
    fit = FitResult({"a": 0.5}, {"a": 0.25}, best_epoch=2, epochs_run=5, train_seconds=1.23456)
    results = run_results(Config(seed=3), problem, model, weighting, fit)
    assert results["best_epoch"] == 2 and results["epochs_run"] == 5
    assert results["tasks"] == {
        "a": {"metric": "accuracy", "higher_is_better": True, "dev": 0.5, "test": 0.25}
    }
    assert (results["seed"], results["mechanism"], results["train_seconds"]) == (3, "hard", 1.235)
    assert results["params"] == {"total": 7} and results["extra"] == 1
    assert results["loss_weights"] == {"a": 1.0}
