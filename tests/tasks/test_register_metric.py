"""``mtlshare.register_metric``: a metric of the user's own is a metric like the library's: a task
names it, the dev scores select the model in its direction, the results report it and a loaded
run evaluates with it; bad registrations and unknown names are one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import Tensor

import mtlshare
from mtlshare.config import from_dict
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.errors import ConfigError
from mtlshare.tasks.metrics import LABELLED_METRICS, METRICS, observed
from mtlshare.tasks.task import Task

PARTS = (slice(0, 48), slice(48, 64), slice(64, 80))


def worst_error(pred: Tensor, target: Tensor) -> float:
    keep = observed(target)
    return float((pred[keep] - target[keep]).abs().max()) if bool(keep.any()) else float("nan")


@pytest.fixture
def registered() -> Iterator[list[str]]:
    """Names registered by the test, removed after it (the registry is the process's)."""
    names: list[str] = []
    yield names
    for name in names:
        METRICS.pop(name, None)
        LABELLED_METRICS.pop(name, None)


def problem(metric: str) -> Problem:
    x = torch.randn(80, 6, generator=torch.Generator().manual_seed(0))
    value = x @ torch.randn(6, generator=torch.Generator().manual_seed(1))
    other = x[:, 0] - x[:, 1]
    return Problem(
        [
            TaskData(
                Task("value", "regression", metric=metric), *(Split(x[p], value[p]) for p in PARTS)
            ),
            TaskData(Task("other", "regression"), *(Split(x[p], other[p]) for p in PARTS)),
        ],
        input_dim=6,
    )


def test_a_registered_metric_scores_selects_and_reloads(tmp_path: Path, registered) -> None:
    mtlshare.register_metric("worst_error", worst_error, higher_is_better=False)
    registered.append("worst_error")
    assert Task("t", "regression", metric="worst_error").higher_is_better is False
    cfg = from_dict(
        {
            "data": {"source": "custom"},
            "trunk": {"hidden": [8]},
            "train": {"epochs": 6, "patience": 0, "select_on": "value", "lr": 0.05},
        }
    )
    out = tmp_path / "run"
    results = mtlshare.run(cfg, out, problem=problem("worst_error"), progress=False)
    assert results["tasks"]["value"]["metric"] == "worst_error"
    records = [json.loads(line) for line in (out / "metrics.jsonl").open()]
    devs = [r["dev"]["value"] for r in records]
    assert len(set(devs)) > 1  # the epochs differ, so the choice below means something
    # lower is better: the selected epoch is the one of the lowest dev worst error
    assert results["best_epoch"] == 1 + devs.index(min(devs))
    test = problem("worst_error").tasks[0].test
    predicted = mtlshare.load_run(out).predict("value", test.x)
    assert results["tasks"]["value"]["test"] == pytest.approx(
        worst_error(predicted, test.y), rel=1e-6
    )


def test_bad_registrations_are_refused(registered) -> None:
    with pytest.raises(ValueError, match="registered already"):
        mtlshare.register_metric("mse", worst_error, higher_is_better=False)
    with pytest.raises(ValueError, match="identifier"):
        mtlshare.register_metric("worst error", worst_error, higher_is_better=False)
    with pytest.raises(ValueError, match="not a function"):
        mtlshare.register_metric("nothing", 3, higher_is_better=False)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="True or False"):
        mtlshare.register_metric("worst", worst_error, higher_is_better=1)  # type: ignore[arg-type]
    assert "nothing" not in METRICS and "worst" not in METRICS


def test_an_unknown_metric_names_the_way_to_register_one() -> None:
    with pytest.raises(ConfigError, match=r"unknown metric 'f2'.*mtlshare\.register_metric"):
        Task("t", "classification", out_dim=2, metric="f2")


@pytest.mark.parametrize(
    ("name", "kind", "out_dim", "message"),
    [
        (3, "regression", 1, r"^task: expected a string, got 3$"),
        (
            "t",
            "ranking",
            1,
            r"^task 't': kind 'ranking' is not one of regression, classification$",
        ),
        ("t", "regression", 0, r"^task 't': out_dim must be >= 1, got 0$"),
    ],
)
def test_a_task_of_ones_own_with_a_bad_name_kind_or_width_is_refused(
    name: object, kind: str, out_dim: int, message: str
) -> None:
    assert Task("t", "regression", out_dim=1, metric="mse").out_dim == 1
    with pytest.raises(ConfigError, match=message):
        Task(name, kind, out_dim=out_dim, metric="mse")  # type: ignore[arg-type]


def test_a_labelled_metric_reads_the_class_names(registered) -> None:
    seen: list[tuple[str, ...]] = []

    def first_class_recall(pred: Tensor, target: Tensor, labels) -> float:
        seen.append(tuple(labels))
        keep = target == 0
        return float((pred[keep] == 0).float().mean())

    mtlshare.register_metric(
        "first_recall", first_class_recall, higher_is_better=True, labelled=True
    )
    registered.append("first_recall")
    task = Task("k", "classification", out_dim=2, metric="first_recall", labels=("a", "b"))
    assert task.higher_is_better is True
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0], [2.0, 0.0]])
    assert task.evaluate(task.predictions(logits), torch.tensor([0, 0, 1])) == 0.5
    assert seen == [("a", "b")]


def test_the_command_line_predicts_with_a_run_of_a_registered_metric_as_the_readme_says(
    tmp_path: Path, registered
) -> None:
    """``mtlshare predict`` cannot know a metric of one's own; the README's line registers it in
    the process first and gives the predictions ``load_run`` gives."""
    import subprocess
    import sys

    mtlshare.register_metric("worst_error", worst_error, higher_is_better=False)
    registered.append("worst_error")
    cfg = from_dict(
        {"data": {"source": "custom"}, "trunk": {"hidden": [8]}, "train": {"epochs": 1}}
    )
    out = tmp_path / "run"
    mtlshare.run(cfg, out, problem=problem("worst_error"), progress=False)
    x = problem("worst_error").tasks[0].test.x
    rows = [",".join(f"x{i}" for i in range(6)), *(",".join(map(repr, r.tolist())) for r in x)]
    (tmp_path / "in.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "mymetrics.py").write_text(
        "import mtlshare\nfrom mtlshare.tasks.metrics import observed\n\n\n"
        "def worst_error(pred, target):\n    keep = observed(target)\n"
        "    return float((pred[keep] - target[keep]).abs().max())\n\n\n"
        'mtlshare.register_metric("worst_error", worst_error, higher_is_better=False)\n'
    )
    args = ["predict", str(out), "in.csv", "--out", "out.csv", "--tasks", "value"]
    plain = [sys.executable, "-m", "mtlshare", *args]
    done = subprocess.run(plain, cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 2 and "unknown metric 'worst_error'" in done.stderr
    line = "import mymetrics; from mtlshare.cli import main; raise SystemExit(main())"
    done = subprocess.run(
        [sys.executable, "-c", line, *args], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    lines = (tmp_path / "out.csv").read_text().splitlines()
    got = torch.tensor([float(r.split(",")[-1]) for r in lines[1:]])
    expected = mtlshare.load_run(out).predict("value", x).flatten()
    assert torch.allclose(got, expected, atol=1e-5), (lines[:2], expected[:2])


def test_a_metric_giving_a_tensor_is_a_number_and_one_giving_no_number_is_one_line(
    tmp_path: Path, registered, capsys
) -> None:
    """A registered metric that returns a 0-d tensor (``(p - t).abs().mean()``) scored the
    first epoch, then results.json could not be written (a JSON TypeError traceback) and the
    folder was left holding a run's start: its value is taken as a float. One that gives no
    number at all is one line naming the task and the metric, before anything is written."""
    from mtlshare.errors import MtlshareError

    def tensor_mae(pred: Tensor, target: Tensor) -> Tensor:
        keep = observed(target)
        return (pred[keep] - target[keep]).abs().mean()

    mtlshare.register_metric("tensor_mae", tensor_mae, higher_is_better=False)
    mtlshare.register_metric("two", lambda p, t: torch.ones(2), higher_is_better=False)
    registered += ["tensor_mae", "two"]
    cfg = from_dict(
        {"data": {"source": "custom"}, "trunk": {"hidden": [8]}, "train": {"epochs": 2}}
    )
    results = mtlshare.run(cfg, tmp_path / "a", problem=problem("tensor_mae"), progress=False)
    score = results["tasks"]["value"]["test"]
    assert type(score) is float
    test = problem("tensor_mae").tasks[0].test
    predicted = mtlshare.load_run(tmp_path / "a").predict("value", test.x)
    assert score == pytest.approx(float(tensor_mae(predicted, test.y)), rel=1e-6)
    with pytest.raises(
        MtlshareError, match=r"task 'value': metric 'two' gave Tensor .*not a number"
    ):
        mtlshare.run(cfg, tmp_path / "b", problem=problem("two"), progress=False)
    assert not (tmp_path / "b").exists()
