"""``conditioned.mode = "multiply"`` starts as the unconditioned network (P d_t = 1 for every
task) or refuses the descriptors: metadata for which no linear map gives 1 for every task is
an error before anything is written, not a network that starts scaled by another number per
task, or with a task's input zero for good."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mtlshare.cli import main
from mtlshare.errors import ConfigError
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.sharing.conditioned import ConditionedConfig, ConditionedSharing
from mtlshare.tasks.task import Task

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
TASKS = [Task("t1", "regression"), Task("t2", "regression"), Task("t3", "regression")]


def build(descriptors: dict[str, list[float]]) -> ConditionedSharing:
    torch.manual_seed(0)
    backbone = backbone_from_config(TrunkConfig(hidden=[4, 4]), 5)
    return ConditionedSharing(
        backbone, TASKS, ConditionedConfig(layer=1, mode="multiply", descriptors=descriptors)
    )


@pytest.mark.parametrize(
    "descriptors",
    [
        {},
        {"t1": [1.0, 0.0, 2.0], "t2": [0.0, 1.0, 1.0], "t3": [1.0, 1.0, 0.0]},
        {"t1": [1.0, 0.5], "t2": [1.0, 2.0], "t3": [1.0, -1.0]},  # a constant entry
        {"t1": [2.0], "t2": [2.0], "t3": [2.0]},
    ],
    ids=["one_hot", "invertible", "constant_entry", "equal"],
)
def test_every_task_starts_at_one(descriptors):
    model = build(descriptors)
    with torch.no_grad():
        scales = model.gate(model.descriptors)
    torch.testing.assert_close(scales, torch.ones_like(scales))


@pytest.mark.parametrize(
    ("descriptors", "named"),
    [
        ({"t1": [1.0], "t2": [2.0], "t3": [3.0]}, "t1 0.4286"),
        ({"t1": [0.0, 0.0], "t2": [1.0, 0.0], "t3": [0.0, 1.0]}, "t1 0"),
    ],
    ids=["one_number", "all_zero_vector"],
)
def test_descriptors_that_cannot_start_at_one_are_refused(descriptors, named):
    with pytest.raises(ConfigError, match=r"conditioned\.descriptors") as caught:
        build(descriptors)
    assert named in str(caught.value)


def test_the_command_line_refuses_them_before_the_out_folder(tmp_path, capsys):
    out = tmp_path / "o"
    code = main(
        [
            "run",
            DEMO,
            "mechanism=conditioned",
            "conditioned.mode=multiply",
            "conditioned.descriptors={t1 = [0.0], t2 = [1.0]}",
            "train.epochs=1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    # one line, naming the override (and its config file) whose setting is refused while the
    # model is built
    where = f"override 'conditioned.descriptors={{t1 = [0.0], t2 = [1.0]}}' (on {DEMO})"
    assert len(err.splitlines()) == 1
    assert err.startswith(f"mtlshare: error: {where}: conditioned.descriptors: "), err
    assert not out.exists()
