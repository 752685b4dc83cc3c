"""The ``table`` source on small written files: the standardisation and the one-hot layout fitted
on the training rows, the splits (sizes, determinism, a split column), missing labels, unseen
categories and classes, and each refusal's one line."""

from __future__ import annotations

import re
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from mtlshare.config import from_dict
from mtlshare.data.datasets import Problem
from mtlshare.data.table import kept_labels, table_problem
from mtlshare.errors import ConfigError, DataError, MtlshareError

HEADER = "id,x1,x2,city,price,churn"
CITIES = ("b", "a", "c")


def rows(n: int = 40) -> list[str]:
    """``n`` rows: x1 = i, x2 = i mod 5, city cycling b, a, c; price = 100 + 10 i (empty
    every 7th row), churn yes/no (NA every 6th row)."""
    out = []
    for i in range(n):
        price = "" if i % 7 == 3 else str(100 + 10 * i)
        churn = "NA" if i % 6 == 5 else ("yes" if i % 3 else "no")
        out.append(f"r{i},{i},{i % 5},{CITIES[i % 3]},{price},{churn}")
    return out


def write(folder: Path, lines: list[str], header: str = HEADER) -> Path:
    path = folder / "table.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def data(file: Path, **changes: Any) -> dict[str, Any]:
    return {
        "source": "table",
        "path": str(file),
        "features": ["x1", "x2"],
        "categorical": ["city"],
        "tasks": {
            "price": {"kind": "regression", "metric": "mae"},
            "churn": {"kind": "classification"},
        },
        **changes,
    }


def build(file: Path, **changes: Any) -> Problem:
    return table_problem(from_dict({"data": data(file, **changes)}).data)


def test_features_are_standardised_with_the_training_rows_and_categories_one_hot(tmp_path):
    problem = build(write(tmp_path, rows()))
    spec = problem.inference
    assert spec["features"] == ["x1", "x2", "city=a", "city=b", "city=c"]
    assert spec["categorical"] == {"city": ["a", "b", "c"]}  # sorted, not in order of rows
    lines = problem.meta["lines"]
    train_i = np.array(lines["train"]) - 2  # row i is on line i + 2
    mean, std = train_i.mean(), train_i.std()
    assert spec["numeric"]["x1"] == pytest.approx([mean, std], rel=1e-12)
    price = problem.tasks[0]
    expected = torch.tensor((train_i - mean) / std, dtype=torch.float32)
    assert torch.equal(price.train.x[:, 0], expected)
    assert price.train.x[:, 0].mean().abs() < 1e-6
    for row, i in zip(price.train.x, train_i, strict=True):
        assert row[2:].tolist() == [float(CITIES[i % 3] == c) for c in "abc"]
    assert problem.input_dim == 5


def test_split_sizes_and_a_shuffle_of_its_own_seed(tmp_path):
    path = write(tmp_path, rows())
    lines = build(path).meta["lines"]
    assert {s: len(v) for s, v in lines.items()} == {"train": 28, "dev": 4, "test": 8}
    assert sorted(i for v in lines.values() for i in v) == list(range(2, 42))  # every row once
    assert all(v == sorted(v) for v in lines.values())  # the file's order within a split
    assert build(path).meta["lines"] == lines  # the same seed, the same split
    again = table_problem(from_dict({"data": data(path), "seed": 7}).data).meta["lines"]
    assert again == lines  # the training seed is not the split's
    assert build(path, split_seed=1).meta["lines"] != lines
    rounded = build(path, dev_fraction=0.0625, test_fraction=0.5).meta["lines"]
    assert (len(rounded["dev"]), len(rounded["test"])) == (3, 20)  # 2.5 rounds half up
    rounded = build(path, dev_fraction=0.5, test_fraction=0.0625).meta["lines"]
    assert (len(rounded["dev"]), len(rounded["test"])) == (20, 3)  # for test rows too


def test_a_split_column_places_each_row(tmp_path):
    split = ["train", "train", "dev", "test"] * 5
    lines = [f"{r},{s}" for r, s in zip(rows(20), split, strict=True)]
    problem = build(write(tmp_path, lines, HEADER + ",part"), split_column="part")
    assert problem.meta["lines"]["dev"] == list(range(4, 22, 4))
    assert problem.meta["lines"]["test"] == list(range(5, 22, 4))
    # a cell's spaces are not its split's name; the fractions are the shuffle's, not read here
    spaced = [f"{r}, {s} " for r, s in zip(rows(20), split, strict=True)]
    path = write(tmp_path, spaced, HEADER + ",part")
    again = build(path, split_column="part", dev_fraction=0.5, test_fraction=0.5)
    assert again.meta["lines"] == problem.meta["lines"]


def test_a_category_is_read_without_its_spaces(tmp_path):
    spaced = [r.replace(",a,", ", a ,") for r in rows()]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no category ' a ' unseen in training
        problem = build(write(tmp_path, spaced))
    assert problem.inference["categorical"] == {"city": ["a", "b", "c"]}
    assert torch.equal(problem.tasks[0].train.x, build(write(tmp_path, rows())).tasks[0].train.x)


def test_a_tasks_column_is_named_without_its_spaces(tmp_path):
    tasks = {"cost": {"kind": "regression", "column": " price "}}
    cost = build(write(tmp_path, rows()), tasks=tasks).tasks[0]
    price = build(write(tmp_path, rows())).tasks[0]
    assert torch.equal(cost.train.y.nan_to_num(-1.0), price.train.y.nan_to_num(-1.0))


def test_missing_labels_are_marked_and_left_out_of_loss_and_metric(tmp_path):
    problem = build(write(tmp_path, rows()))
    price, churn = problem.tasks
    lines = problem.meta["lines"]["train"]
    gaps = [k for k, line in enumerate(lines) if (line - 2) % 7 == 3]
    assert gaps and torch.isnan(price.train.y[gaps]).all()
    assert int(torch.isnan(price.train.y).sum()) == len(gaps)
    unlabelled = [k for k, line in enumerate(lines) if (line - 2) % 6 == 5]
    assert (churn.train.y[unlabelled] == -100).all()
    assert price.task.target_scale is not None
    observed = [k for k in range(len(lines)) if k not in gaps]
    values = price.train.y[observed].double()
    expected = (float(values.mean()), float(values.std(unbiased=False)))
    assert price.task.target_scale == pytest.approx(expected)
    out = torch.randn(len(lines), 1)
    keep = torch.tensor(observed)
    assert price.task.loss(out, price.train.y) == pytest.approx(
        price.task.loss(out[keep], price.train.y[keep]).item()
    )
    pred = price.task.predict(out, price.train.y)
    assert price.task.evaluate(pred, price.train.y) == pytest.approx(
        price.task.evaluate(pred[keep], price.train.y[keep])
    )
    assert churn.task.labels == ("no", "yes") and churn.task.metric == "accuracy"


def test_a_category_only_dev_or_test_has_is_all_zeros_with_one_warning(tmp_path):
    lines = rows(20)
    split = ["train"] * 12 + ["dev"] * 4 + ["test"] * 4
    lines = [f"{r},{s}" for r, s in zip(lines, split, strict=True)]
    lines[17] = lines[17].replace(",c,", ",oslo,")  # a test row, line 19
    lines[14] = lines[14].replace(",c,", ",oslo,")  # a dev row, line 16
    path = write(tmp_path, lines, HEADER + ",part")
    with pytest.warns(UserWarning) as caught:
        problem = build(path, split_column="part")
    assert [str(w.message) for w in caught] == [
        f"{path}:16: column 'city' has 'oslo', a category no training row has: its one-hot is "
        "all zeros (2 such row(s))"
    ]
    assert problem.tasks[0].test.x[1, 2:].tolist() == [0.0, 0.0, 0.0]


def test_the_first_line_of_an_unseen_category_is_the_files_first_in_any_split(tmp_path):
    split = ["train"] * 12 + ["test", "dev", "test", "dev"] * 2
    lines = [f"{r},{s}" for r, s in zip(rows(20), split, strict=True)]
    lines[13] = lines[13].replace(",a,", ",oslo,")  # a dev row, line 15
    lines[12] = lines[12].replace(",b,", ",oslo,")  # a test row, line 14: the first
    path = write(tmp_path, lines, HEADER + ",part")
    with pytest.warns(UserWarning) as caught:
        build(path, split_column="part")
    assert [str(w.message) for w in caught] == [
        f"{path}:14: column 'city' has 'oslo', a category no training row has: its one-hot is "
        "all zeros (2 such row(s))"
    ]


def test_a_wide_one_hot_is_filled_in_place_without_float64_copies(tmp_path):
    """A column of thousands of categories (a user id) makes inputs of rows x categories: each
    split's are filled in place, in float32 (float64 blocks joined, cast, then indexed by split
    held them five times over: 20 GB for 4 GB of inputs). tracemalloc sees numpy's memory, not
    torch's tensors: what it sees beside them stays small."""
    lines = [f"r{i},{i},{i % 5},u{i % 1000},{i},{'yes' if i % 2 else 'no'}" for i in range(6000)]
    path = write(tmp_path, lines)
    tracemalloc.start()
    try:
        with warnings.catch_warnings():  # the few ids only dev or test rows have
            warnings.simplefilter("ignore")
            problem = build(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    inputs = 6000 * problem.input_dim * 4
    assert problem.input_dim > 900 and problem.tasks[0].train.x.dtype == torch.float32
    assert peak < inputs / 2, (peak, inputs)


def test_a_class_only_test_rows_have_counts_as_an_error(tmp_path):
    split = ["train"] * 12 + ["dev"] * 4 + ["test"] * 4
    lines = [f"{r},{s}" for r, s in zip(rows(20), split, strict=True)]
    lines[18] = lines[18].replace(",no,", ",maybe,")
    path = write(tmp_path, lines, HEADER + ",part")
    with pytest.warns(UserWarning, match=r":20: task 'churn': class 'maybe' is in no training"):
        churn = build(path, split_column="part").tasks[1]
    assert churn.task.out_dim == 2 and churn.task.gold_only == ("maybe",)
    assert churn.test.y.tolist()[2] == 2  # an id no prediction can take


@pytest.mark.parametrize(
    "edit, changes, message",
    [
        (
            lambda ls: ls,
            {"features": ["x1", "x9"]},
            "{path}:1: no column 'x9' in header ['id', 'x1', 'x2', 'city', 'price', 'churn'] "
            "(named by data.features)",
        ),
        (
            lambda ls: [ls[0].replace(",0,b,", ",zero,b,"), *ls[1:]],
            {},
            "{path}:2: column 'x2': 'zero' is not a finite number",
        ),
        (
            lambda ls: ls,
            {"features": ["x1", "x_2"]},
            "{path}:1: no column 'x_2' in header ['id', 'x1', 'x2', 'city', 'price', 'churn'] "
            "(named by data.features); did you mean 'x2'?",
        ),
        (
            lambda ls: ls,
            {"tasks": {"churned": {"kind": "classification"}}},
            "{path}:1: no column 'churned' in header ['id', 'x1', 'x2', 'city', 'price', "
            "'churn'] (named by data.tasks.churned.column, by default the task's name); did you "
            "mean 'churn'?",
        ),
        (
            lambda ls: ls,
            {"tasks": {"churn": {"kind": "regression"}}},
            "{path}:2: task 'churn': column 'churn': 'no' is not a finite number; a regression "
            'task reads numbers (a column of class labels is kind = "classification")',
        ),
        (
            lambda ls: [*ls[:3], ls[3].replace("r3,3,", "r3,,"), *ls[4:]],
            {},
            "{path}:5: column 'x1' is empty (''): a feature cannot be missing; fill the cell or "
            "leave the row out",
        ),
        (
            lambda ls: [*ls[:4], ls[4].replace(",a,", ",,"), *ls[5:]],
            {},
            "{path}:6: column 'city' is empty (''): a feature cannot be missing; fill the cell "
            "or leave the row out (a category of its own, such as 'unknown', can stand for a "
            "missing value)",
        ),
        (
            lambda ls: [*ls[:4], ls[4].replace(",a,", ",NA,"), *ls[5:]],
            {},
            "{path}:6: column 'city' is empty ('NA'): a feature cannot be missing; fill the cell "
            "or leave the row out (a category of its own, such as 'unknown', can stand for a "
            "missing value)",
        ),
        (
            lambda ls: [",".join([*r.split(",")[:2], "4", *r.split(",")[3:]]) for r in ls],
            {},
            "{path}: feature 'x2' is 4 on every training row: it carries nothing to learn from "
            "(its standard deviation is 0); leave it out of data.features",
        ),
        (
            lambda ls: [r.replace(",b,", ",a,").replace(",c,", ",a,") for r in ls],
            {},
            "{path}: feature 'city' is 'a' on every training row: it carries nothing to learn "
            "from; leave it out of data.categorical",
        ),
        (
            lambda ls: ls[:3],
            {"dev_fraction": 0.3, "test_fraction": 0.5},
            "{path}: no rows in the train split: 2 test and 1 dev rows of 3 (data.test_fraction, "
            "data.dev_fraction) leave none",
        ),
        (
            lambda ls: [r.replace(",no", ",yes") for r in ls],
            {},
            "{path}: task 'churn': column 'churn' has one class ('yes') on the training rows; a "
            "classifier needs two or more",
        ),
        (
            lambda ls: [",".join([*r.split(",")[:4], "500", r.split(",")[5]]) for r in ls],
            {},
            "{path}: task 'price': column 'price' is 500 on every training row that has a "
            "value: nothing to learn",
        ),
        (
            lambda ls: [*ls[:1], ls[1].replace(",110,", ",cheap,"), *ls[2:]],
            {},
            "{path}:3: task 'price': column 'price': 'cheap' is not a finite number; a regression "
            'task reads numbers (a column of class labels is kind = "classification")',
        ),
        (
            lambda ls: ls[:4],
            {},
            "{path}: no rows in the dev split: data.dev_fraction = 0.1 of 4 rows rounds to 0",
        ),
        (
            lambda ls: ls,
            {"split_column": "id"},
            "{path}:2: column 'id': 'r0' is not one of train, dev, test",
        ),
        (
            lambda ls: [],
            {},
            "{path}:1: no data rows after the header",
        ),
        (
            lambda ls: [*ls[:2], ls[2] + ",extra", *ls[3:]],
            {},
            "{path}:4: row has 7 fields but the header has 6",
        ),
        (
            lambda ls: [r.rsplit(",", 2)[0] + ",," + r.rsplit(",", 1)[1] for r in ls],
            {},
            "{path}: task 'price': no training row has a value in column 'price'",
        ),
    ],
)
def test_bad_data_is_one_line_naming_file_line_and_problem(tmp_path, edit, changes, message):
    path = write(tmp_path, edit(rows()))
    with pytest.raises(DataError) as e:
        build(path, **changes)
    assert str(e.value) == message.format(path=path)


def test_a_file_separated_by_semicolons_is_told_to_use_commas(tmp_path):
    """Its header reads as one field, so every column is missing: the line says why."""
    lines = [r.replace(",", ";") for r in rows()]
    path = write(tmp_path, lines, HEADER.replace(",", ";"))
    with pytest.raises(DataError) as e:
        build(path)
    assert str(e.value) == (
        f"{path}:1: no column 'x1' in header ['id;x1;x2;city;price;churn'] (named by "
        "data.features); the file is read as comma-separated, and its header is one field "
        "holding ';': write it with commas"
    )


def test_a_split_column_without_a_split_is_refused(tmp_path):
    lines = [f"{r},{'dev' if i == 3 else 'train'}" for i, r in enumerate(rows(10))]
    path = write(tmp_path, lines, HEADER + ",part")
    with pytest.raises(DataError) as e:
        build(path, split_column="part")
    assert str(e.value) == f"{path}: no rows in the test split: no row has 'test' in column 'part'"


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"path": ""}, "data.path: the CSV file to read is required"),
        (
            {"features": [], "categorical": []},
            "data.features, data.categorical: name at least one input column",
        ),
        (
            {"tasks": {}},
            'data.tasks: name at least one task, e.g. [data.tasks.price] kind = "regression"',
        ),
        (
            {"tasks": {"price": {"kind": "regresion"}}},
            "data.tasks.price.kind: 'regresion' is not one of regression, classification",
        ),
        (
            {"tasks": {"price": {"metric": "mae"}}},
            'data.tasks.price.kind: required: kind = "regression" for a column of numbers, '
            'kind = "classification" for one of class labels',
        ),
        (
            {"tasks": {"churn": {"kind": "classification", "metric": "mae"}}},
            "data.tasks.churn.metric: task 'churn': metric 'mae' scores values, not a "
            "classification task's predictions; use one of ['accuracy']",
        ),
        (
            {"tasks": {"churn": {"kind": "classification", "metric": "span_f1"}}},
            "data.tasks.churn.metric: 'span_f1' reads tags' names (span_f1 scores the spans of "
            "tag sequences, CoNLL's chunks and entities), which a table's classes are not; use "
            "accuracy or a metric of your own",
        ),
        (
            {"tasks": {"price": {"kind": "regression", "colum": "price"}}},
            "unknown key data.tasks.price.colum; allowed: column, kind, metric, train_labels",
        ),
        (
            {"tasks": {"price": {"kind": "regression", "metric": "accuracy"}}},
            "data.tasks.price.metric: task 'price': metric 'accuracy' scores class ids, not a "
            "regression task's predictions; use one of ['mae', 'mse']",
        ),
        (
            {"tasks": {"x1": {"kind": "regression"}}},
            "data.tasks.x1.column: 'x1' is an input column (data.features or "
            "data.categorical); a target cannot be one",
        ),
        (
            {"categorical": ["city", "x1"]},
            "data.features, data.categorical: column 'x1' is named twice",
        ),
        (
            {"dev_fraction": 0.5, "test_fraction": 0.5},
            "data.dev_fraction + data.test_fraction = 1 leaves no training rows; their sum "
            "must be below 1",
        ),
        ({"test_fraction": 0.0}, "data.test_fraction: must be between 0 and 1, got 0.0"),
        (
            {"tasks": {"price": {"kind": "regression", "column": "  "}}},
            "data.tasks.price.column: expected a non-empty string, got '  '",
        ),
        (
            {"tasks": {"city": {"kind": "classification"}}},
            "data.tasks.city.column: 'city' is an input column (data.features or "
            "data.categorical); a target cannot be one",
        ),
        ({"split_column": "x2"}, "data.split_column: 'x2' is an input or target column"),
        ({"split_column": "price"}, "data.split_column: 'price' is an input or target column"),
        ({"split_seed": -1}, "data.split_seed: -1 is not a seed in [0, 2**63 - 1]"),
        *(
            (
                {"tasks": {"price": {"kind": "regression", "train_labels": bad}}},
                f"data.tasks.price.train_labels: must be above 0 and at most 1, got {bad!r}",
            )
            for bad in (0, 0.0, 1.5, -0.2, "half", True, float("nan"))
        ),
    ],
)
def test_config_mistakes_name_the_key(tmp_path, changes, message):
    with pytest.raises(ConfigError) as e:
        build(write(tmp_path, rows()), **changes)
    assert str(e.value) == message


def test_an_unknown_data_key_names_the_allowed_ones(tmp_path):
    with pytest.raises(ConfigError) as e:
        from_dict({"data": data(tmp_path / "t.csv", feature=["x1"])})
    assert str(e.value) == (
        "unknown key data.feature; allowed keys in [data]: path, features, categorical, tasks, "
        "split_column, dev_fraction, test_fraction, split_seed, missing_labels, embed"
    )


def test_every_task_reads_the_same_rows(tmp_path):
    problem = build(write(tmp_path, rows()))
    a, b = problem.tasks
    assert all(getattr(a, s).x is getattr(b, s).x for s in ("train", "dev", "test"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to warn of in a clean file
        build(write(tmp_path, rows()))
    assert issubclass(DataError, MtlshareError)


def labelled_train_rows(problem: Problem, task: int) -> set[int]:
    """The file rows (i of ``rows``) of the training split whose label of ``task`` is kept."""
    td = problem.tasks[task]
    lines = np.array(problem.meta["lines"]["train"])
    y = td.train.y
    kept = ~torch.isnan(y) if y.is_floating_point() else y != -100
    return {int(line) - 2 for line in lines[kept.numpy()]}


def test_train_labels_keeps_a_share_of_the_training_labels_nested_and_per_task(tmp_path):
    path = write(tmp_path, rows(200))
    whole = build(path)
    everyone = {name: labelled_train_rows(whole, k) for k, name in enumerate(("price", "churn"))}

    def shares(price: float, churn: float = 1.0, **changes: Any) -> Problem:
        tasks = {
            "price": {"kind": "regression", "metric": "mae", "train_labels": price},
            "churn": {"kind": "classification", "train_labels": churn},
        }
        return build(path, tasks=tasks, **changes)

    quarter, half = shares(0.25, 0.25), shares(0.5)
    for k, name in enumerate(("price", "churn")):
        kept = labelled_train_rows(quarter, k)
        assert len(kept) == int(len(everyone[name]) * 0.25 + 0.5)  # rounded half up
        assert kept < everyone[name]
    assert labelled_train_rows(quarter, 0) < labelled_train_rows(half, 0)  # nested shares
    assert labelled_train_rows(half, 1) == everyone["churn"]  # the other task keeps all
    assert labelled_train_rows(quarter, 0) != labelled_train_rows(quarter, 1)  # its own draw
    assert labelled_train_rows(shares(0.25, split_seed=1), 0) != labelled_train_rows(quarter, 0)
    assert labelled_train_rows(shares(0.25), 0) == labelled_train_rows(quarter, 0)  # repeatable
    for split in ("dev", "test"):  # only training labels go
        assert torch.equal(
            getattr(quarter.tasks[0], split).y.isnan(), getattr(whole.tasks[0], split).y.isnan()
        )
        assert torch.equal(getattr(quarter.tasks[1], split).y, getattr(whole.tasks[1], split).y)
    assert torch.equal(quarter.tasks[0].train.x, whole.tasks[0].train.x)  # and no input
    prices = quarter.tasks[0].train.y
    observed = prices[~prices.isnan()].double()
    mean, std = quarter.tasks[0].task.target_scale
    assert (mean, std) == pytest.approx((observed.mean().item(), observed.std(correction=0).item()))
    assert shares(1.0).tasks[0].task == whole.tasks[0].task  # 1: the file's labels, unchanged
    assert torch.equal(shares(1.0).tasks[0].train.y.isnan(), whole.tasks[0].train.y.isnan())


def test_train_labels_that_round_to_none_is_one_line(tmp_path):
    tasks = {"price": {"kind": "regression", "train_labels": 0.001}}
    with pytest.raises(DataError) as e:
        build(write(tmp_path, rows()), tasks=tasks)
    assert str(e.value).endswith(
        "table.csv: task 'price': data.tasks.price.train_labels = 0.001 of 23 training labels "
        "rounds to none"
    )


def test_kept_labels_draws_per_task_and_seed_and_nests_its_shares():
    rows_ = np.arange(10, 110)
    a = {share: kept_labels(rows_, share, "price", 0) for share in (0.1, 0.3, 1.0)}
    assert [len(a[share]) for share in (0.1, 0.3, 1.0)] == [10, 30, 100]
    assert set(a[0.1]) < set(a[0.3]) < set(rows_) and np.array_equal(a[1.0], rows_)
    assert list(a[0.3]) == sorted(a[0.3])
    assert not np.array_equal(kept_labels(rows_, 0.3, "churn", 0), a[0.3])  # the task's own
    assert not np.array_equal(kept_labels(rows_, 0.3, "price", 1), a[0.3])  # and the seed's


def test_nan_spelled_in_any_case_is_a_missing_label_as_the_docs_say(tmp_path):
    lines = rows()
    lines[0] = lines[0].rsplit(",", 2)[0] + ",NaN,nan"  # row 0: price and churn
    problem = build(write(tmp_path, lines))
    split = next(s for s in ("train", "dev", "test") if 2 in problem.meta["lines"][s])
    at = problem.meta["lines"][split].index(2)
    price, churn = (getattr(td, split).y[at] for td in problem.tasks)
    assert torch.isnan(price) and int(churn) == -100
    assert "nan" not in problem.tasks[1].task.labels and "NaN" not in problem.tasks[1].task.labels


def test_a_class_only_a_dropped_training_label_has_is_warned_of_at_its_dev_or_test_row(tmp_path):
    """With ``train_labels`` below 1 a training row whose label is dropped reads as missing: a
    class it alone has among the training rows is in no training row, and the warning names the
    first dev or test row with it and counts those rows only, not the dropped one."""
    split = ["train"] * 16 + ["dev"] * 2 + ["test"] * 2
    lines = [f"{r},{s}" for r, s in zip(rows(20), split, strict=True)]
    labelled = np.array([i for i in range(16) if i % 6 != 5])  # churn is NA on every 6th row
    kept = set(kept_labels(labelled, 0.5, "churn", 0).tolist())
    dropped = min(set(labelled.tolist()) - kept)  # a training row whose label goes
    lines[dropped] = lines[dropped].replace(",no,", ",maybe,").replace(",yes,", ",maybe,")
    lines[18] = lines[18].replace(",no,", ",maybe,").replace(",yes,", ",maybe,")  # line 20
    tasks = {"churn": {"kind": "classification", "train_labels": 0.5}}
    path = write(tmp_path, lines, HEADER + ",part")
    with pytest.warns(UserWarning) as caught:
        churn = build(path, split_column="part", tasks=tasks).tasks[0]
    assert [str(w.message) for w in caught] == [
        f"{path}:20: task 'churn': class 'maybe' is in no training row; no prediction can match "
        "it, so its 1 dev/test row(s) count as errors"
    ]
    assert churn.task.gold_only == ("maybe",)


def test_train_labels_draws_with_the_split_seed_under_a_split_column(tmp_path):
    """The draw of kept labels reads ``split_seed`` even where the split does not (a split
    column places the rows): another seed keeps other labels of the same training rows."""
    split = (["train"] * 8 + ["dev", "test"]) * 10
    lines = [f"{r},{s}" for r, s in zip(rows(100), split, strict=True)]
    path = write(tmp_path, lines, HEADER + ",part")
    tasks = {"price": {"kind": "regression", "train_labels": 0.5}}
    seed0, seed1 = (
        build(path, split_column="part", tasks=tasks, split_seed=seed) for seed in (0, 1)
    )
    assert seed0.meta["lines"] == seed1.meta["lines"]
    assert labelled_train_rows(seed0, 0) != labelled_train_rows(seed1, 0)
    assert len(labelled_train_rows(seed0, 0)) == len(labelled_train_rows(seed1, 0))


def _with_cells(lines: list[str], at: int, price: str, churn: str) -> list[str]:
    """``lines`` with row ``at``'s price and churn cells replaced."""
    out = list(lines)
    out[at] = out[at].rsplit(",", 2)[0] + f",{price},{churn}"
    return out


def _row(problem: Problem, line: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The price and churn targets of the file's ``line``, in whichever split holds it."""
    split = next(s for s in ("train", "dev", "test") if line in problem.meta["lines"][s])
    at = problem.meta["lines"][split].index(line)
    price, churn = (getattr(td, split).y[at] for td in problem.tasks)
    return price, churn


def test_missing_labels_names_the_markers_of_a_missing_label(tmp_path):
    """``data.missing_labels`` adds markers (any case) to the empty cell; the defaults ``NA`` and
    ``NaN`` are dropped when the list leaves them out, and are then a class like any other."""
    lines = _with_cells(_with_cells(rows(), 0, "NULL", "null"), 1, "", "n/a")
    problem = build(write(tmp_path, lines), missing_labels=["NA", "NaN", "NULL", "N/A"])
    for line in (2, 3):
        price, churn = _row(problem, line)
        assert torch.isnan(price) and int(churn) == -100
    assert problem.tasks[1].task.labels == ("no", "yes")
    path = write(tmp_path, rows())  # churn is NA on every 6th row
    with pytest.warns(UserWarning, match="'NA' on 6 row"):
        churn = build(path, missing_labels=[]).tasks[1]
    assert "NA" in (*churn.task.labels, *churn.task.gold_only)


def test_a_class_that_reads_like_a_missing_marker_is_kept_with_one_warning(tmp_path):
    lines = _with_cells(
        _with_cells(_with_cells(rows(), 3, "130", "NULL"), 7, "170", "?"), 9, "", "NULL"
    )
    path = write(tmp_path, lines)
    with pytest.warns(UserWarning) as caught:
        problem = build(path)
    said = [str(w.message) for w in caught if "missing_labels" in str(w.message)]
    assert said == [
        f"{path}:5: task 'churn': '?', 'NULL' on 3 row(s) is read as a class; if it marks a "
        "missing label, add it to data.missing_labels"
    ]
    _, churn = _row(problem, 5)
    assert int(churn) != -100


def test_a_regression_cell_that_reads_like_a_missing_marker_names_missing_labels(tmp_path):
    path = write(tmp_path, _with_cells(rows(), 4, "NULL", "yes"))
    with pytest.raises(DataError) as e:
        build(path)
    assert str(e.value) == (
        f"{path}:6: task 'price': column 'price' is 'NULL', not a number; if it marks a "
        "missing label, add it to data.missing_labels"
    )
    with pytest.raises(DataError, match="'na', not a number"):
        build(write(tmp_path, _with_cells(rows(), 4, "na", "yes")), missing_labels=[])


def test_a_cell_that_is_not_a_number_is_refused_even_where_train_labels_drops_it(tmp_path):
    """The draw of kept labels does not hide a bad cell: every row's target is read."""
    lines = _with_cells(rows(), 1, "cheap", "yes")
    tasks = {"price": {"kind": "regression", "train_labels": 0.1}}
    with pytest.raises(DataError, match="'cheap' is not a finite number"):
        build(write(tmp_path, lines), tasks=tasks)


def test_missing_labels_given_as_one_string_from_python_is_refused(tmp_path):
    cfg = from_dict({"data": data(write(tmp_path, rows()))}).data
    cfg.missing_labels = "NULL"  # type: ignore[assignment]
    with pytest.raises(ConfigError, match=r"data\.missing_labels: expected a list of strings"):
        table_problem(cfg)


@pytest.mark.parametrize(
    "marker", ["NULL", "None", "nil", "N/A", "#N/A", "#NA", "<NA>", "missing", "?", "-", "--", "."]
)
def test_each_marker_other_tools_write_for_a_missing_value_is_named_until_it_is_listed(
    tmp_path, marker
):
    """Every marker the module lists (``NA`` and ``NaN`` aside, missing by default): a
    regression cell of it names ``data.missing_labels``, and once listed there (spaced, in
    another case) it is a missing label."""
    path = write(tmp_path, _with_cells(rows(), 4, f" {marker} ", "yes"))
    said = f"is {marker!r}, not a number; if it marks a missing label"
    with pytest.raises(DataError, match=re.escape(said)):
        build(path)
    problem = build(path, missing_labels=["NA", "NaN", f"  {marker.swapcase()} "])
    price, _ = _row(problem, 6)
    assert torch.isnan(price)


def test_missing_labels_from_python_that_are_not_strings_are_refused(tmp_path):
    cfg = from_dict({"data": data(write(tmp_path, rows()))}).data
    cfg.missing_labels = ["NA", 3]  # type: ignore[list-item]
    with pytest.raises(ConfigError, match=r"data\.missing_labels: expected a list of strings"):
        table_problem(cfg)


def test_a_missing_like_class_is_counted_on_every_row_even_where_train_labels_drops_it(tmp_path):
    """The warning is about the file's cells: a training row whose label ``train_labels``
    leaves out still holds ``NULL``, and is counted."""
    lines = rows()
    for at in range(0, 40, 4):
        lines = _with_cells(lines, at, "150", "NULL")
    tasks = {"churn": {"kind": "classification", "train_labels": 0.2}}
    with pytest.warns(UserWarning) as caught:
        build(write(tmp_path, lines), tasks=tasks)
    said = [str(w.message) for w in caught if "missing_labels" in str(w.message)]
    assert len(said) == 1 and "'NULL' on 10 row(s) is read as a class" in said[0], said
