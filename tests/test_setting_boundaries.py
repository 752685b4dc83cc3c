"""Boundaries of the settings' checks that a mutation review found untested: the smallest
value each check lets through is accepted (a check moved by one would refuse it)."""

from __future__ import annotations

import pytest

from mtlshare.training.objective import WeightingConfig


def test_cagrad_c_of_zero_is_accepted():
    """CAGrad with c = 0 is the mean gradient: ``>= 0`` lets it through."""
    WeightingConfig(kind="aggregator", aggregator="cagrad", cagrad_c=0.0).validate()


def test_train_threads_of_max_threads_is_accepted_and_one_more_refused():
    from mtlshare.errors import ConfigError
    from mtlshare.training.settings import MAX_THREADS, TrainConfig

    TrainConfig(threads=MAX_THREADS).validate()
    with pytest.raises(ConfigError, match=r"train\.threads: must be at most 1,024"):
        TrainConfig(threads=MAX_THREADS + 1).validate()
