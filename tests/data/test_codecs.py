"""The tensor codec: a CSV of features read by name, bad rows refused by line, outputs back on
the targets' own scale."""

from __future__ import annotations

import pytest
import torch

from mtlshare.data.codecs import TensorCodec, float_cells, tasks_from_spec
from mtlshare.errors import DataError
from mtlshare.tasks.task import Task


def test_rows_are_read_by_column_name_and_written_back_on_the_targets_scale(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("id,x1,x0\na,2,1\n\nb,4,3\n")
    scales = {
        "plain": {"log": False, "mean": 10.0, "std": 2.0},
        "counts": {"log": True, "mean": 0.0, "std": 1.0},
    }
    codec = TensorCodec(["x0", "x1"], scales)
    table = codec.read(path, "auto")
    assert table.x.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    tasks = [Task(n, "regression", 1, "mse") for n in ("plain", "counts", "raw")]
    pred = torch.tensor([1.0, -2.0])
    text = codec.write(table, tasks, {"plain": pred, "counts": pred, "raw": pred})
    rows = [line.split(",") for line in text.splitlines()]
    assert rows[0] == ["id", "x1", "x0", "plain", "counts", "raw"]
    assert [float(v) for v in rows[1][3:]] == pytest.approx([12.0, torch.e - 1, 1.0])
    assert [float(v) for v in rows[2][3:]] == [6.0, 0.0, -2.0]  # log counts never below 0


def test_a_model_s_values_are_written_as_the_shortest_decimal_of_its_own_float(tmp_path):
    """A float32 output is written with the digits it has (``5.3033514``), not the float64
    expansion of its value (``5.303351402282715``), and reads back as the same float32; a
    float64 keeps Python's repr, a half its float32's shortest form."""
    x = torch.tensor([5.303351402282715, 1969.769, -0.1, 1e20, 3.0])
    cells = float_cells(x)
    assert cells[:2] == ["5.3033514", "1969.769"] and cells[4] == "3.0"
    assert torch.equal(torch.tensor([float(c) for c in cells]), x)
    wide = torch.tensor([0.1, 2 / 3], dtype=torch.float64)
    assert float_cells(wide) == [repr(0.1), repr(2 / 3)]
    assert float_cells(torch.tensor([0.1], dtype=torch.float16)) == ["0.099975586"]
    path = tmp_path / "in.csv"
    path.write_text("x0\n1\n")
    codec = TensorCodec(["x0"])
    table = codec.read(path, "auto")
    task = Task("raw", "regression", 1, "mse")
    text = codec.write(table, [task], {"raw": torch.tensor([5.303351402282715])})
    assert text.splitlines() == ["x0,raw", "1,5.3033514"]


def test_a_class_task_writes_its_label_or_else_the_class_number(tmp_path):
    path = tmp_path / "in.csv"
    path.write_text("x0\n1\n2\n")
    codec = TensorCodec(["x0"], {"named": {"log": False, "mean": 10.0, "std": 2.0}})
    table = codec.read(path, "csv")
    named = Task("named", "classification", 3, "accuracy", labels=("a", "b", "c"))
    numbered = Task("numbered", "classification", 3, "accuracy")
    pred = torch.tensor([2, 0])
    text = codec.write(table, [named, numbered], {"named": pred, "numbered": pred})
    assert text == "x0,named,numbered\n1,c,2\n2,a,0\n"  # classes are not scaled


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("1,2\n3,4,5\n", r":3\b.*3 fields but the header has 2"),
        ("1,2\n3\n", r":3\b.*1 fields but the header has 2"),
        ("1,nan\n", r":2\b.*'nan' is not a finite number"),
        ("1,x\n", r":2\b.*'x' is not a number"),
    ],
)
def test_bad_rows_are_refused_naming_the_line(tmp_path, body, message):
    path = tmp_path / "in.csv"
    path.write_text("x0,x1\n" + body)
    with pytest.raises(DataError, match=message):
        TensorCodec(["x0", "x1"]).read(path, "auto")


def test_a_column_the_predictions_would_write_is_refused_naming_the_file(tmp_path):
    """Predictions go under the tasks' bare names: a file holding one already would be
    written with two columns of that name (``table`` runs refused it, this codec did not)."""
    path = tmp_path / "in.csv"
    path.write_text("x0,x1,a\n1,2,3\n")
    codec = TensorCodec(["x0", "x1"])
    with pytest.raises(DataError, match=r"in\.csv:1: column 'a' is in the file already"):
        codec.read(path, "auto", ["a", "b"])
    assert codec.read(path, "auto", ["b"]).x.tolist() == [[1.0, 2.0]]  # only what is written
    assert codec.read(path, "auto").x.tolist() == [[1.0, 2.0]]  # read, nothing to write


@pytest.mark.parametrize("entry", ["t1", 3, None, ["t1"]], ids=["text", "number", "null", "list"])
def test_tasks_from_spec_refuses_an_entry_that_is_not_an_object_as_a_data_error(entry):
    # RunFolder.inference_spec refuses these first; a spec read some other way must not be a
    # traceback either
    with pytest.raises(DataError, match="task 1 is not a task's description"):
        tasks_from_spec({"tasks": [{"name": "a", "kind": "regression", "out_dim": 1}, entry]})
