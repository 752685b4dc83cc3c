"""A Problem refuses, in one line naming the task, the split and the row, the data mistakes that
torch would otherwise report from deep inside training (or not at all): inputs of the wrong
type, dtype, width or rank, or not finite; class targets that are not long ids in range or not
one per row; regression targets that are not floats or are infinite; a training split with no
observed target. Dev and test may hold the task's gold-only ids and may be wholly missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.errors import ConfigError, DataError
from mtlshare.tasks.task import Task

N, D = 6, 4


def x_(n: int = N, d: int = D) -> torch.Tensor:
    return torch.arange(n * d, dtype=torch.float32).reshape(n, d)


def problem(
    *, train: Split | None = None, test: Split | None = None, task: Task | None = None, dim=D
) -> Problem:
    """A regression task 'a' and a 3-class task 'b'; ``train``/``test`` replace b's splits."""
    b = task or Task("b", "classification", out_dim=3, metric="accuracy")
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    ok = Split(x_(), labels)
    return Problem(
        [
            TaskData(Task("a", "regression"), *(Split(x_(), torch.ones(N)) for _ in range(3))),
            TaskData(b, train or ok, ok, test or ok),
        ],
        input_dim=dim,
    )


def test_a_correct_problem_passes():
    assert [td.task.name for td in problem().tasks] == ["a", "b"]


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: problem(train=Split(x_().double(), torch.zeros(N).long())),
            "inputs are torch.float64",
        ),
        (
            lambda: problem(train=Split(x_().long(), torch.zeros(N).long())),
            "inputs are torch.int64",
        ),
        (lambda: problem(dim=8), "inputs have 4 features, but the problem's input_dim is 8"),
        (
            lambda: problem(train=Split(x_()[:, None], torch.zeros(N, 1).long())),
            "dev split: inputs of shape (6, 4), but the task's training inputs are 3-d",
        ),
        (
            lambda: problem(
                train=Split(
                    x_().index_put_((torch.tensor(2), torch.tensor(1)), torch.tensor(float("nan"))),
                    torch.zeros(N).long(),
                )
            ),
            "NaN or infinite input in row 2",
        ),
        (
            lambda: problem(
                test=Split(
                    x_().index_put_((torch.tensor(5), torch.tensor(0)), torch.tensor(float("inf"))),
                    torch.zeros(N).long(),
                )
            ),
            "test split: a NaN or infinite input in row 5",
        ),
        (lambda: problem(train=Split(x_(), torch.zeros(N))), "class targets are torch.float32"),
        (
            lambda: problem(train=Split(x_(), torch.zeros(N, dtype=torch.int32))),
            "class targets are torch.int32",
        ),
        (
            lambda: problem(train=Split(x_(), torch.zeros(N, 1).long())),
            "class targets of shape (6, 1)",
        ),
        (
            lambda: problem(train=Split(x_(), torch.tensor([0, 1, 5, 0, 1, 2]))),
            "class id 5 in row 2 is outside 0..2",
        ),
        (
            lambda: problem(test=Split(x_(), torch.tensor([0, -1, 0, 0, 1, 2]))),
            "test split: class id -1 in row 1",
        ),
    ],
)
def test_each_mistake_is_one_line_naming_task_split_and_row(make, expected):
    with pytest.raises(DataError) as err:
        make()
    assert expected in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("task '")


def test_regression_targets_are_finite_floats():
    def with_a(y):
        return Problem(
            [
                TaskData(
                    Task("a", "regression"),
                    Split(x_(), y),
                    Split(x_(), torch.ones(N)),
                    Split(x_(), torch.ones(N)),
                )
            ],
            D,
        )

    with pytest.raises(DataError, match=r"regression targets are torch\.int64"):
        with_a(torch.ones(N).long())
    y = torch.ones(N)
    y[3] = float("inf")
    with pytest.raises(DataError, match=r"an infinite target in row 3 \(NaN marks a missing one\)"):
        with_a(y)
    y[3] = float("nan")  # missing: fine
    assert with_a(y).tasks[0].train.y.isnan().sum() == 1


def test_regression_targets_are_one_per_row_and_output():
    """(N, 1) targets of a one-output task were refused only at the first step, with a hint
    that read as if (N, 1) were right ("per output (N, out_dim)"): the Problem says so when
    built, with the squeeze that mends it; a task of several outputs takes (N, out_dim)."""

    def built(y, out_dim=1):
        task = Task("a", "regression", out_dim=out_dim)
        return Problem([TaskData(task, Split(x_(), y), Split(x_(), y), Split(x_(), y))], D)

    with pytest.raises(DataError) as err:
        built(torch.ones(N, 1))
    assert str(err.value) == (
        "task 'a', train split: regression targets of shape (6, 1) for inputs of shape (6, 4); "
        "one value per row (and position): (6,) (y.squeeze(-1))"
    )
    with pytest.raises(DataError, match=r"one value per row \(and position\), 3 outputs each: "):
        built(torch.ones(N), out_dim=3)
    assert built(torch.ones(N, 3), out_dim=3).tasks[0].task.out_dim == 3
    with pytest.raises(DataError, match=r"give one value per row \(N,\) or per position \(N, T\)$"):
        Task("r", "regression").loss(torch.zeros(4, 1), torch.zeros(4, 1))


def test_tasks_may_read_inputs_of_other_ranks_and_take_uint8_ids():
    """An MLP reads the last axis: a task of sequences beside a task of rows trains."""
    seq = Task("s", "regression")
    rows = Split(x_()[:, None].expand(N, 3, D).contiguous(), torch.ones(N, 3))
    built = Problem([*problem().tasks, TaskData(seq, rows, rows, rows)], D)
    assert [td.train.x.dim() for td in built.tasks] == [2, 2, 3]
    assert problem(train=Split(x_(), torch.tensor([0, 1, 2, 0, 1, 2], dtype=torch.uint8)))


def test_a_task_with_no_observed_training_target_is_a_warning():
    with pytest.warns(UserWarning, match="task 'b', train split: no observed target"):
        problem(train=Split(x_(), torch.full((N,), -100)))


def test_dev_and_test_may_hold_gold_only_ids_and_be_wholly_missing():
    task = Task("b", "classification", out_dim=3, metric="accuracy", gold_only=("X",))
    assert problem(task=task, test=Split(x_(), torch.tensor([3, 1, 2, 0, 1, 2])))
    assert problem(test=Split(x_(), torch.full((N,), -100)))
    with pytest.raises(DataError, match=r"class id 3 in row 0 is outside 0\.\.2 \(out_dim 3;"):
        problem(task=task, train=Split(x_(), torch.tensor([3, 1, 2, 0, 1, 2])))
    with pytest.raises(
        DataError, match=r"class id 4 in row 1 is outside 0\.\.3 \(out_dim 3, then 1"
    ):
        problem(task=task, test=Split(x_(), torch.tensor([3, 4, 2, 0, 1, 2])))


def test_splits_hold_tensors_and_problems_tasks():
    with pytest.raises(DataError, match="Split: x is a ndarray; a Split holds torch tensors"):
        Split(np.zeros((N, D), dtype=np.float32), torch.zeros(N))
    with pytest.raises(DataError, match="Split: y is a list"):
        Split(x_(), [0] * N)
    with pytest.raises(DataError, match="a Problem needs at least one task"):
        Problem([], D)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda: Split(torch.tensor(1.0), torch.zeros(N)),
            "Split: x and y need one row per example, got a 0-d tensor",
        ),
        (
            lambda: Split(x_(), torch.tensor(0)),
            "Split: x and y need one row per example, got a 0-d tensor",
        ),
        (lambda: Split(x_(), torch.zeros(N - 1)), "inputs have 6 rows but targets 5"),
        (
            lambda: Split(x_(), torch.zeros(N), lengths=torch.ones(N, 1)),
            "lengths must have one entry per row (6), got shape (6, 1)",
        ),
        (
            lambda: Problem(
                [TaskData(Task("a", "regression"), *[Split(x_(), torch.ones(N))] * 3)] * 2, D
            ),
            "task names must be unique, got ['a', 'a']",
        ),
        (
            lambda: Problem(
                [
                    TaskData(
                        Task("b", "regression"),
                        *[Split(x_(), torch.ones(N))] * 2,
                        Split(x_(0), torch.ones(0)),
                    )
                ],
                D,
            ),
            "task 'b' has an empty test split",
        ),
    ],
)
def test_a_split_or_problem_of_mismatched_parts_is_one_line(make, message):
    with pytest.raises(DataError) as err:
        make()
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("kind", "metric"),
    [("regression", "accuracy"), ("classification", "mse"), ("classification", "mae")],
)
def test_a_metric_of_the_other_kind_is_refused(kind, metric):
    with pytest.raises(ConfigError, match=f"metric '{metric}' scores"):
        Task("t", kind, out_dim=2 if kind == "classification" else 1, metric=metric)


def test_the_input_check_reads_a_split_a_block_of_rows_at_a_time(monkeypatch):
    """torch.isfinite of a whole split copies it (a float copy and bool masks): a wide split's
    check read it in blocks of rows, so that it costs a block, not more than the split."""
    seen = []
    real = torch.isfinite

    def isfinite(x: torch.Tensor) -> torch.Tensor:
        seen.append(len(x))
        return real(x)

    monkeypatch.setattr(torch, "isfinite", isfinite)
    x = torch.zeros(10_000, D)
    x[9_000, 1] = float("nan")
    with pytest.raises(DataError, match="train split: a NaN or infinite input in row 9000"):
        problem(train=Split(x, torch.zeros(10_000).long()))
    assert seen and max(seen) <= 4096
    # blocks of 4,096 rows, not one row at a time: row 9000 is in b's 3rd block, after one
    # block for each of a's three splits of 6 rows
    assert seen == [N, N, N, 4096, 4096, 10_000 - 8192]


@pytest.mark.parametrize("n, row", [(1, 0), (5, 0), (5, 4), (4097, 4095), (4097, 4096)])
def test_a_nan_input_in_the_first_last_or_only_row_of_a_block_is_named(n, row):
    x = torch.zeros(n, D)
    x[row, 2] = float("inf")
    with pytest.raises(DataError, match=f"train split: a NaN or infinite input in row {row}$"):
        problem(train=Split(x, torch.zeros(n).long()))
