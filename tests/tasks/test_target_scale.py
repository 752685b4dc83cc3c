"""``Task.target_scale``: a regression head learns standardised targets while its predictions
and metrics stay in the targets' own units; tasks without one are what they were."""

from __future__ import annotations

import json
import math

import pytest
import torch

from mtlshare.data.codecs import inference_spec, tasks_from_spec
from mtlshare.errors import ConfigError
from mtlshare.tasks.task import Task

MEAN, STD = 1000.0, 50.0


def test_the_loss_is_in_standard_units_and_predictions_in_the_targets_own():
    task = Task("price", "regression", metric="mae", target_scale=(MEAN, STD))
    out = torch.tensor([[0.0], [1.0], [-2.0]])  # standard units
    target = torch.tensor([1000.0, 1100.0, float("nan")])
    # standardised targets 0 and 2 against outputs 0 and 1; the NaN row is left out
    assert task.loss(out, target).item() == pytest.approx((0.0 + 1.0) / 2)
    assert task.predict(out, target).tolist() == [1000.0, 1050.0, 900.0]
    assert task.score(out, target) == pytest.approx((0.0 + 50.0) / 2)  # MAE in own units


def test_predictions_are_in_the_targets_own_units_as_predict_s_are():
    task = Task("price", "regression", metric="mae", target_scale=(MEAN, STD))
    out = torch.tensor([[0.0], [1.0], [-2.0]])
    assert task.predictions(out).tolist() == [1000.0, 1050.0, 900.0]
    assert torch.equal(task.predictions(out), task.predict(out, torch.zeros(3)))


def test_without_a_scale_nothing_changes():
    plain = Task("price", "regression", metric="mae")
    out, target = torch.tensor([[1.0], [3.0]]), torch.tensor([2.0, 3.0])
    assert plain.loss(out, target).item() == pytest.approx(0.5)
    assert plain.predict(out, target).tolist() == [1.0, 3.0]


@pytest.mark.parametrize(
    "kind, scale",
    [
        ("classification", (0.0, 1.0)),
        ("regression", (0.0, 0.0)),
        ("regression", (math.nan, 1.0)),
        ("regression", (1.0,)),
        ("regression", (1.0, 2.0, 3.0)),
        ("regression", [0.0, 1.0]),  # a tuple, as inference.json's entry is read back
        ("regression", ("0", 1.0)),
        ("regression", (5.0, -1.0)),
        ("regression", (0.0, math.inf)),
    ],
)
def test_a_bad_scale_is_one_line(kind, scale):
    with pytest.raises(ConfigError, match="target_scale"):
        Task(
            "t",
            kind,
            2 if kind == "classification" else 1,
            "mse" if kind == "regression" else "accuracy",
            target_scale=scale,
        )


def test_inference_json_holds_the_scale_only_where_it_is_set():
    tasks = [Task("a", "regression", target_scale=(MEAN, STD)), Task("b", "regression")]
    spec = inference_spec(tasks, 3, 2, {"codec": "tensor", "features": ["x0", "x1", "x2"]})
    assert spec["tasks"][0]["target_scale"] == (MEAN, STD)
    assert "target_scale" not in spec["tasks"][1]  # as every run's file before the field
    assert tasks_from_spec(json.loads(json.dumps(spec))) == tasks
