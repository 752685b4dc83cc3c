"""A ``table`` run from the command line: trained, predicted (by column name, in the targets'
units and labels, equal to ``run.predict``), evaluated, compared over every mechanism that reads
rows of features, given a task; and bad input as one line, exit 2, nothing written."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

import mtlshare
from mtlshare.cli import main
from mtlshare.registry import MECHANISMS

CONFIG = """
mechanism = "hard"
[data]
source = "table"
path = "table.csv"
features = ["x1", "x2"]
categorical = ["city"]
[data.tasks.price]
kind = "regression"
metric = "mae"
[data.tasks.churn]
kind = "classification"
[trunk]
hidden = [8]
[train]
epochs = 3
batch_size = 8
[sparse]
round_steps = 2
"""


def table_rows(n: int = 60) -> list[str]:
    """Price grows with x1 and city; churn is whether x2 is large; some labels missing."""
    out = []
    for i in range(n):
        city = "abc"[i % 3]
        price = "" if i % 7 == 3 else f"{1000 + 40 * i + 300 * (city == 'b')}"
        churn = "NA" if i % 6 == 5 else ("yes" if (i * 7) % 5 > 2 else "no")
        out.append(f"r{i},{i},{(i * 7) % 5},{city},{price},{churn}")
    return out


def write_table(folder: Path, lines: list[str]) -> Path:
    path = folder / "table.csv"
    path.write_text("\n".join(["id,x1,x2,city,price,churn", *lines]) + "\n")
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("table")
    write_table(home, table_rows())
    (home / "run.toml").write_text(CONFIG)
    return home


@pytest.fixture(scope="module")
def table_run(folder: Path) -> Path:
    out = folder / "run"
    assert main(["run", str(folder / "run.toml"), "--out", str(out), "--quiet"]) == 0
    return out


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtlshare: error: "), err
    return err[0].removeprefix("mtlshare: error: ")


def test_predict_writes_the_rows_back_with_predictions_equal_to_run_predict(
    table_run, folder, tmp_path
):
    source = tmp_path / "in.csv"  # columns in another order, one more, the targets left out
    with open(folder / "table.csv") as f:
        read = list(csv.DictReader(f))[:9]
    source.write_text(
        "note,city,x2,x1\n"
        + "".join(f"n{i},{r['city']},{r['x2']},{r['x1']}\n" for i, r in enumerate(read))
    )
    out = tmp_path / "out.csv"
    assert main(["predict", str(table_run), str(source), "--out", str(out)]) == 0
    with open(out) as f:
        written = list(csv.DictReader(f))
    assert list(written[0]) == ["note", "city", "x2", "x1", "predicted_price", "predicted_churn"]
    assert [w["note"] for w in written] == [f"n{i}" for i in range(9)]  # carried through
    run = mtlshare.load_run(table_run)
    doc = run.codec.read(source, "auto")
    price, churn = run.predict("price", doc.x), run.predict("churn", doc.x)
    # the shortest decimal of each float32 (1969.769, not 1969.76904296875), read back exactly
    cells = [w["predicted_price"] for w in written]
    assert torch.equal(torch.tensor([float(c) for c in cells], dtype=torch.float32), price)
    assert all(len(c.split(".")[-1]) <= 9 for c in cells), cells
    assert run.tasks["churn"].labels == ("no", "yes")  # the README's way from ids to labels
    assert [w["predicted_churn"] for w in written] == [("no", "yes")[i] for i in churn.tolist()]
    assert float(price.mean()) > 500  # in the targets' units (about 2,200), not standardised


def test_the_test_rows_read_back_are_the_runs_test_inputs_to_the_bit(table_run, folder):
    run = mtlshare.load_run(table_run)
    problem = mtlshare.data.table.table_problem(run.config.data, str(folder))
    test = problem.tasks[0].test
    lines = problem.meta["lines"]["test"]
    rows = (folder / "table.csv").read_text().splitlines()
    subset = folder / "test-rows.csv"
    subset.write_text("\n".join([rows[0], *(rows[line - 1] for line in lines)]) + "\n")
    assert torch.equal(run.codec.read(subset, "auto").x, test.x)
    # and the run's predictions of them score its results.json
    results = json.loads((table_run / "results.json").read_text())
    pred = run.predict("price", test.x)
    assert problem.tasks[0].task.evaluate(pred, test.y) == pytest.approx(
        results["tasks"]["price"]["test"], rel=1e-6
    )


def test_evaluate_gives_the_results_and_refuses_changed_data(table_run, folder, tmp_path):
    results = json.loads((table_run / "results.json").read_text())
    scores = mtlshare.evaluate(table_run)
    for task in ("price", "churn"):
        assert scores[task]["test"] == results["tasks"][task]["test"]
    assert results["tasks"]["price"]["test"] > 10  # a mean absolute error in the price's units
    moved = tmp_path / "moved"
    moved.mkdir()
    lines = table_rows()
    lines[0] = lines[0].replace(",1000,", ",99000,")  # a training price: another target scale
    write_table(moved, lines)
    with pytest.raises(mtlshare.errors.DataError, match="the target scale of task 'price'"):
        mtlshare.evaluate(table_run, data_dir=moved)


EMBED = ["data.embed={city=2}"]  # the city as a learned vector (tests/data/test_table_embed.py)


@pytest.mark.parametrize("extra", [[], EMBED], ids=["one-hot", "embed"])
def test_compare_runs_every_mechanism_over_the_rows(folder, capsys, extra):
    rows = ["single", *MECHANISMS.names()]
    out = folder / f"compare-{len(extra)}"
    args = ["compare", str(folder / "run.toml"), "--out", str(out), "--quiet", "train.epochs=1"]
    args += extra
    assert main([*args, "--mechanisms", ",".join(rows)]) == 0
    table = json.loads((out / "comparison.json").read_text())
    names = [r["mechanism"] for r in table["rows"]]
    assert names == rows
    for row in table["rows"]:
        assert set(row["tasks"]) == {"price", "churn"}
        assert all(math.isfinite(t["test"]) for t in row["tasks"].values())


@pytest.mark.parametrize("extra", [[], EMBED], ids=["one-hot", "embed"])
def test_add_task_adds_a_task_to_a_trained_run(folder, extra):
    one, added = folder / f"price-only-{len(extra)}", folder / f"added-{len(extra)}"
    config = str(folder / "run.toml")
    assert main(["run", config, "--out", str(one), "--quiet", "tasks=['price']", *extra]) == 0
    assert main(["add-task", str(one), config, "--out", str(added), "--quiet", *extra]) == 0
    report = json.loads((added / "add_task.json").read_text())
    assert list(report["new_tasks"]) == ["churn"]
    assert math.isfinite(report["new_tasks"]["churn"]["test"])


@pytest.mark.parametrize(
    "header, row, message",
    [
        ("x1,city", "1,a", "{path}:1: no column 'x2' in header ['x1', 'city']"),
        ("x1,x2,city", "1,two,a", "{path}:2: column 'x2': 'two' is not a finite number"),
        (
            "x1,x2,city",
            ",2,a",
            "{path}:2: column 'x1' is empty (''): a feature cannot be missing; fill the cell or "
            "leave the row out",
        ),
        (
            "x1,x2,city,predicted_price",
            "1,2,a,0",
            "{path}:1: column 'predicted_price' is in the file already: the predictions would "
            "write it a second time",
        ),
        ("x1,x2,city", "1,2", "{path}:2: row has 2 fields but the header has 3"),
        ("x1,x2,city", "1,2,a,9", "{path}:2: row has 4 fields but the header has 3"),
        ("x1,x2,city", "", "{path}:1: no data rows after the header"),
        (
            "x1,x2,city, predicted_churn ",
            "1,2,a,0",
            "{path}:1: column 'predicted_churn' is in the file already: the predictions would "
            "write it a second time",
        ),
        (  # after a blank line, the header's own line is named
            "\nx1,x2,city,predicted_price",
            "1,2,a,0",
            "{path}:2: column 'predicted_price' is in the file already: the predictions would "
            "write it a second time",
        ),
    ],
)
def test_bad_input_to_predict_is_one_line_and_writes_nothing(
    table_run, tmp_path, capsys, header, row, message
):
    source, out = tmp_path / "in.csv", tmp_path / "out.csv"
    source.write_text(f"{header}\n{row}\n")
    capsys.readouterr()
    assert main(["predict", str(table_run), str(source), "--out", str(out)]) == 2
    assert one_line(capsys) == message.format(path=source)
    assert not out.exists()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("numeric", "x"),
        ("numeric", {"x1": ["x", 1.0]}),
        ("numeric", {"x1": [True, 1.0]}),
        ("numeric", {"x1": [0.0, 1.0, 2.0]}),
        ("categorical", None),
        ("categorical", {"city": ["a", 2, "c"]}),
    ],
    ids=[
        "numeric text",
        "a mean of text",
        "a mean of a boolean",
        "three numbers",
        "categorical null",
        "a category of a number",
    ],
)
def test_a_damaged_table_codec_in_inference_json_is_one_line(
    table_run, tmp_path, capsys, key, value
):
    """The codec of a table run's ``inference.json`` whose means and scales, or categories,
    are of another kind: an ``AttributeError`` or ``ValueError`` traceback from ``predict``."""
    copy = tmp_path / "copy"
    shutil.copytree(table_run, copy)
    spec = json.loads((copy / "inference.json").read_text())
    spec["codec"][key] = value
    (copy / "inference.json").write_text(json.dumps(spec))
    source = tmp_path / "in.csv"
    source.write_text("x1,x2,city\n3,2,a\n")
    out = tmp_path / "out.csv"
    assert main(["predict", str(copy), str(source), "--out", str(out)]) == 2
    line = one_line(capsys)
    assert "the 'table' codec's description is damaged (TypeError(" in line and f"{key}: " in line
    assert not out.exists()


def test_a_category_no_training_row_has_warns_once_in_predict(table_run, tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("x1,x2,city\n1,2,a\n3,4,oslo\n5,1,b\n")
    run = mtlshare.load_run(table_run)
    with pytest.warns(UserWarning) as caught:
        doc = run.codec.read(source, "auto")
    assert [str(w.message) for w in caught] == [
        f"{source}:3: column 'city' has 'oslo', a category no training row has: its one-hot is "
        "all zeros (1 such row(s))"
    ]
    assert doc.x[1, 2:].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(mtlshare.errors.DataError, match="this run reads a CSV of its feature"):
        run.codec.read(source, "jsonl")


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.features=['x1','x9']", "no column 'x9' in header"),
        ("data.test_fraction=0.001", "no rows in the test split"),
        ("data.tasks.price.kind=1", "data.tasks.price.kind: 1 is not one of regression"),
        ("data.colour=1", "unknown key data.colour; allowed keys in [data]: path, features"),
    ],
)
def test_a_bad_run_is_one_line_exit_2_and_no_folder(folder, capsys, override, message):
    out = folder / "refused"
    capsys.readouterr()
    assert main(["run", str(folder / "run.toml"), "--out", str(out), "--quiet", override]) == 2
    assert message in one_line(capsys)
    assert not out.exists()


def test_rows_of_another_width_holding_nan_are_named_by_their_width(table_run, folder):
    """The width is said first, as before the table codec checked its own inputs."""
    run = mtlshare.load_run(table_run)
    x = run.codec.read(folder / "table.csv", "auto").x[:2]
    wide = torch.cat([x, torch.full((2, 1), float("nan"))], 1)
    with pytest.raises(
        mtlshare.errors.MtlshareError, match=r"^x: shape \(2, 6\); this run reads 5 features$"
    ):
        run.predict("price", wide)
    x[0, 0] = float("nan")
    with pytest.raises(
        mtlshare.errors.MtlshareError, match=r"^x: NaN or infinite values in row 0$"
    ):
        run.predict("price", x)
