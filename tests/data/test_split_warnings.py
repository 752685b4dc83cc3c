"""What a mutation review of the data code found untested: only a training split without an
observed target is warned about (dev and test may be wholly missing); the smallest settings the
synthetic and daily sources take."""

from __future__ import annotations

import warnings

import pytest
import torch

from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.tasks.task import Task

N, D = 6, 4


def _problem(train_y: torch.Tensor, dev_y: torch.Tensor, test_y: torch.Tensor) -> Problem:
    x = torch.arange(N * D, dtype=torch.float32).reshape(N, D)
    task = Task("b", "classification", out_dim=3, metric="accuracy")
    return Problem(
        [TaskData(task, Split(x, train_y), Split(x, dev_y), Split(x, test_y))], input_dim=D
    )


def test_only_a_training_split_without_an_observed_target_is_warned_about():
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    missing = torch.full((N,), -100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # dev and test wholly missing: no warning
        _problem(labels, missing, missing)
    with pytest.warns(UserWarning, match="'b', train split: no observed target"):
        _problem(missing, labels, labels)


def test_zero_sines_and_zero_fourier_terms_are_accepted():
    """``>= 0`` lets 0 through: a synthetic source of the linear part alone, daily inputs
    without Fourier terms."""
    from mtlshare.data.daily import DailyConfig
    from mtlshare.data.synthetic import SyntheticConfig

    SyntheticConfig(sines=0).validate()
    DailyConfig(path="d.csv", origin="2020-01-01", fourier_terms=0).validate()
