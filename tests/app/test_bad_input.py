"""Bad input to a trained run's commands: one line, exit code 2, nothing lost or half-written."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from mtlshare.app.predict import load_run
from mtlshare.cli import main
from mtlshare.errors import MtlshareError
from mtlshare.training.checkpoint import DIGEST_KEY, atomic_write_text, load_checkpoint


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtlshare: error:"), err
    return err[0]


def _inputs(run: Path, target: Path) -> Path:
    width = load_run(run).spec["input_dim"]
    target.write_text(",".join(f"x{i}" for i in range(width)) + "\n" + ",".join(["0"] * width))
    return target


def _args(command: str, run: Path, inputs: Path, out: Path) -> list[str]:
    """The command line of ``predict`` (``inputs`` into ``out``), ``evaluate`` or ``masks`` on
    ``run``."""
    return {
        "predict": ["predict", str(run), str(inputs), "--out", str(out)],
        "evaluate": ["evaluate", str(run)],
        "masks": ["masks", str(run)],
    }[command]


@pytest.mark.parametrize("command", ["predict", "evaluate", "masks"])
def test_a_config_toml_edited_into_latin_1_is_one_line(synthetic_run, tmp_path, capsys, command):
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    inputs = _inputs(copy, tmp_path / "in.csv")
    config = copy / "config.toml"
    config.write_bytes(b"# caf\xe9\n" + config.read_bytes())
    assert main(_args(command, copy, inputs, tmp_path / "out.csv")) == 2
    assert f"{config}: not UTF-8 text" in one_line(capsys)
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_config_toml_edited_to_another_model_names_the_config(
    synthetic_run, tmp_path, capsys, command
):
    """The model is built from ``config.toml``: edited to another mechanism, the checkpoint does
    not fit it, and the line says which file describes the model (it named only the checkpoint,
    which is whole)."""
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    inputs = _inputs(copy, tmp_path / "in.csv")
    config = copy / "config.toml"
    config.write_text(config.read_text().replace('mechanism = "hard"', 'mechanism = "soft"', 1))
    assert main(_args(command, copy, inputs, tmp_path / "out.csv")) == 2
    line = one_line(capsys)
    assert f"does not fit the model {config} describes (was it edited since training?)" in line
    assert not (tmp_path / "out.csv").exists()


def test_evaluate_after_the_config_data_table_changed_names_the_config(
    synthetic_run, tmp_path, capsys
):
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    config = copy / "config.toml"
    config.write_text(config.read_text().replace("input_dim = 16", "input_dim = 12", 1))
    assert main(["evaluate", str(copy)]) == 2
    line = one_line(capsys)
    assert f"{copy / 'inference.json'} differs in " in line and "the input width (were" in line
    assert f"the [data] table of {config}" in line


def test_masks_reads_a_config_with_a_bom_or_a_toml_error_as_one_line(
    synthetic_run, tmp_path, capsys
):
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    config = copy / "config.toml"
    text = config.read_bytes()
    config.write_bytes(b"\xef\xbb\xbf" + text)  # an editor's byte-order mark: no error
    assert main(["masks", str(copy)]) == 2
    assert "only sparse-sharing runs have masks" in one_line(capsys)
    config.write_bytes(b"[train\n" + text)
    assert main(["masks", str(copy)]) == 2
    assert f"{config}: Expected ']'" in one_line(capsys)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("checkpoint/best/meta.json", "[" * 100_000 + "]" * 100_000),
        ("inference.json", '{"a":' * 100_000 + "1" + "}" * 100_000),
        ("config.toml", "x = " + "[" * 5_000 + "]" * 5_000 + "\n"),
    ],
    ids=["meta_json", "inference_json", "config_toml"],
)
@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_a_file_nested_deeper_than_python_parses_is_one_line(
    synthetic_run, tmp_path, capsys, name, text, command
):
    """Valid JSON or TOML nested a hundred thousand deep (a damaged or hostile file) made
    Python's parsers recurse until a ``RecursionError``: a traceback, exit 1."""
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    inputs = _inputs(copy, tmp_path / "in.csv")
    (copy / name).write_text(text)
    out = tmp_path / "out.csv"
    assert main(_args(command, copy, inputs, out)) == 2
    line = one_line(capsys)
    assert str(copy / name) in line and "nested too deeply to read" in line, line
    assert not out.exists()


@pytest.mark.parametrize("command", ["predict", "evaluate", "load_run"])
def test_a_checkpoint_whose_tensors_changed_on_disk_is_refused_not_used(
    synthetic_run, tmp_path, capsys, command
):
    """Three bits flipped in the tensors' data (a disk's fault, a bad copy) still read: the
    model predicted other numbers without a word. The file's SHA-256, recorded in
    ``meta.json`` when it was saved, is checked whenever a checkpoint is loaded."""
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    inputs = _inputs(copy, tmp_path / "in.csv")
    tensors = copy / "checkpoint" / "best" / "tensors.safetensors"
    data = bytearray(tensors.read_bytes())
    for at in (-4, -400, -4000):  # in the weights, past the header
        data[at] ^= 0x10
    tensors.write_bytes(bytes(data))
    said = f"{tensors}: damaged: its SHA-256 is not the one meta.json recorded"
    if command == "load_run":
        with pytest.raises(MtlshareError, match="damaged: its SHA-256"):
            load_run(copy)
        return
    out = tmp_path / "out.csv"
    assert main(_args(command, copy, inputs, out)) == 2
    assert said in one_line(capsys)
    assert not out.exists()


def test_a_meta_json_that_is_no_json_object_is_one_line(synthetic_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    inputs = _inputs(copy, tmp_path / "in.csv")
    meta = copy / "checkpoint" / "best" / "meta.json"
    meta.write_text("[1, 2]")
    out = tmp_path / "out.csv"
    assert main(_args("predict", copy, inputs, out)) == 2
    assert one_line(capsys) == (
        f"mtlshare: error: {meta}: not a checkpoint's metadata (a JSON object)"
    )
    assert not out.exists()


def test_an_error_line_is_the_line_that_says_what_is_wrong():
    from mtlshare.training.checkpoint import error_line

    assert error_line(RuntimeError()) == "RuntimeError"  # no message: its kind
    assert error_line(ValueError("\n  \n")) == "ValueError"
    header = "Error(s) in loading state_dict for Linear:\n\tMissing key(s): bias.\n"
    assert error_line(RuntimeError(header)) == "Missing key(s): bias."
    assert error_line(RuntimeError("first\nsecond")) == "first"


def test_a_checkpoint_saved_before_its_digest_was_recorded_is_read_as_it_was(
    synthetic_run, tmp_path
):
    """A ``meta.json`` without ``tensors_sha256`` (a checkpoint of an mtlshare before it was
    written) is not refused: there is nothing to check its tensors against. The digest a
    checkpoint has is the loader's: it is not in the ``meta`` handed back."""
    copy = tmp_path / "copy"
    shutil.copytree(synthetic_run, copy)
    assert DIGEST_KEY not in load_checkpoint(copy / "checkpoint" / "best")[1]
    for name in ("best", "last"):
        path = copy / "checkpoint" / name / "meta.json"
        written = json.loads(path.read_text())
        tensors = (path.parent / "tensors.safetensors").read_bytes()
        assert written[DIGEST_KEY] == hashlib.sha256(tensors).hexdigest()  # as sha256sum says
        del written[DIGEST_KEY]
        path.write_text(json.dumps(written))
    old, run = load_run(copy), load_run(synthetic_run)
    x = torch.zeros(2, 16)
    for task in run.tasks:
        assert torch.equal(old.predict(task, x), run.predict(task, x))


def test_predict_leaves_a_file_named_like_its_temporary_file_alone(synthetic_run, tmp_path):
    out = tmp_path / "out.csv"
    mine = tmp_path / "out.csv.tmp"
    mine.write_text("a file of the user's\n")
    assert main(["predict", str(synthetic_run), str(_inputs(synthetic_run, tmp_path / "in.csv")),
                 "--out", str(out)]) == 0  # fmt: skip
    assert mine.read_text() == "a file of the user's\n"
    assert out.read_text().startswith("x0,")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv", "out.csv.tmp"]


def test_a_csv_naming_a_feature_twice_is_refused(synthetic_run, tmp_path, capsys):
    width = load_run(synthetic_run).spec["input_dim"]
    source = tmp_path / "twice.csv"
    header = [f"x{i}" for i in range(width)] + ["x0"]
    source.write_text(",".join(header) + "\n" + ",".join(["0"] * width + ["5"]) + "\n")
    out = tmp_path / "out.csv"
    assert main(["predict", str(synthetic_run), str(source), "--out", str(out)]) == 2
    assert f"{source}:1: column 'x0' appears 2 times" in one_line(capsys)
    assert not out.exists()


def test_evaluate_refuses_data_files_changed_since_training(tmp_path, capsys, tagger_config):
    """``evaluate`` reads the run's data again; a training file changed since (or another copy
    under ``--data-dir``) gives other vocabularies, so every word another id: scoring with them
    would give wrong numbers without a word said."""
    (tmp_path / "train.txt").write_text("the DT\ncat NN\n\na DT\ndog NN\n\nthe DT\ndog NN\n")
    (tmp_path / "dev.txt").write_text("a DT\ncat NN\n")
    (tmp_path / "run.toml").write_text(tagger_config)
    folder = tmp_path / "run"
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(folder), "--quiet"]) == 0
    assert main(["evaluate", str(folder)]) == 0
    capsys.readouterr()
    (tmp_path / "train.txt").write_text("a DT\nbird NN\n\nthe DT\ncat NN\n\na DT\ndog NN\n")
    assert main(["evaluate", str(folder)]) == 2
    line = one_line(capsys)
    assert "is not what the run was trained on" in line
    assert (
        f"{folder / 'inference.json'} differs in the codec's chars, the codec's encoder, " in line
    )
    assert "the codec's words (were" in line
    # another tag too: two things differ
    (tmp_path / "train.txt").write_text("a DT\nbird NN\n\nthe DT\ncat JJ\n\na DT\ndog NN\n")
    assert main(["evaluate", str(folder)]) == 2
    line = one_line(capsys)
    assert "the codec's words, the labels of task 'pos' (were" in line


def test_evaluate_says_which_gold_tags_of_the_scored_split_training_never_saw(
    tmp_path, capsys, tagger_config
):
    """With ``data.unseen_tags = "map"`` a gold tag training never saw counts as an error in the
    scores: ``evaluate`` says so for the split it scores (a test file changed since training
    included), and not for the other split."""
    (tmp_path / "train.txt").write_text("the DT\ncat NN\n\na DT\ndog NN\n")
    (tmp_path / "dev.txt").write_text("a DT\ncat NN\n")
    (tmp_path / "test.txt").write_text("a DT\ncat NN\n")
    (tmp_path / "run.toml").write_text(
        tagger_config.replace('test = "dev.txt"', 'test = "test.txt"\nunseen_tags = "map"')
    )
    folder = tmp_path / "run"
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(folder), "--quiet"]) == 0
    capsys.readouterr()
    (tmp_path / "test.txt").write_text("a DT\ncat NN\nsat VBD\n")
    assert main(["evaluate", str(folder)]) == 0
    err = capsys.readouterr().err
    assert f"{tmp_path / 'test.txt'}:3: task 'pos': tags never seen in training" in err
    assert "{'VBD': 1}" in err
    assert main(["evaluate", str(folder), "--split", "dev"]) == 0
    assert "never seen" not in capsys.readouterr().err
    # training files changed since: refused, with no warning naming trained tags as unseen
    (tmp_path / "train.txt").write_text("the DT\n\na DT\n")
    assert main(["evaluate", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "is not what the run was trained on" in err and "never seen" not in err


@pytest.mark.parametrize(
    ("x", "message"),
    [
        (torch.randn(3, 5), "x: shape (3, 5); this run reads 16 features"),
        (torch.randn(16), "x: shape (16,); this run reads 2-d inputs"),
        (torch.randn(0, 16), "with at least one row"),
        (torch.randn(3, 16, dtype=torch.float64), "x: torch.float64; this run reads"),
        ([[0.0] * 16], "x: a list; predict takes a torch.Tensor"),
        (
            torch.tensor([[0.0] * 16, [0.0] * 15 + [float("nan")]]),
            "x: NaN or infinite values in row 1",
        ),
    ],
    ids=["width", "rank", "no rows", "dtype", "list", "nan"],
)
def test_load_run_predict_says_what_is_wrong_with_x(synthetic_run, x, message):
    run = load_run(synthetic_run)
    assert run.spec["input_dim"] == 16
    with pytest.raises(MtlshareError) as e:
        run.predict("t1", x)
    assert message in str(e.value)


def test_lengths_for_a_run_of_feature_rows_are_one_line(synthetic_run):
    """Sequence lengths given to a run that reads rows of features: one line (the features
    were cut to the longest length, and torch said ``mat1 and mat2 shapes cannot be
    multiplied`` or ``The size of tensor a (16) must match``)."""
    run = load_run(synthetic_run)
    for lengths in ([1, 2], [16, 16]):
        with pytest.raises(MtlshareError, match="rows of features, not sequences"):
            run.predict("t1", torch.randn(2, 16), torch.tensor(lengths))


def test_lengths_for_ids_an_input_encoder_reads_are_taken_at_any_rank(synthetic_run):
    """Rows of ids an input encoder reads (an own codec's: (batch, time) word ids) are
    sequences, whatever their rank: their lengths are taken, not refused as a feature run's
    are (the refusal is for rows of features only)."""
    run = load_run(synthetic_run)
    words = dataclasses.replace(
        run,
        codec=SimpleNamespace(build_stem=lambda: lambda: torch.nn.Embedding(10, 16)),
        spec={**run.spec, "input_rank": 2},
    )
    words._check_inputs(torch.tensor([[1, 2, 3], [4, 5, 0]]), torch.tensor([3, 2]))


@pytest.mark.parametrize("beside_others", [False, True])
def test_a_write_that_fails_leaves_the_file_as_it_was_and_no_temporary_file(
    tmp_path, beside_others
):
    target = tmp_path / "out.txt"
    target.write_text("before\n")
    with pytest.raises(UnicodeEncodeError):  # a lone surrogate has no UTF-8
        atomic_write_text(target, "after \ud800\n", beside_others=beside_others)
    assert target.read_text() == "before\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    atomic_write_text(target, "after\n", beside_others=beside_others)
    assert target.read_text() == "after\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_evaluate_reads_moved_data_from_data_dir_in_python_as_on_the_command_line(
    tmp_path, capsys, tagger_config
):
    """The data files moved after training: ``evaluate(..., data_dir=...)`` (the name
    ``load_run`` and ``--data-dir`` use) reads them from there and gives the run's scores."""
    from mtlshare import evaluate

    data = tmp_path / "data"
    data.mkdir()
    (data / "train.txt").write_text("the DT\ncat NN\n\na DT\ndog NN\n\nthe DT\ndog NN\n")
    (data / "dev.txt").write_text("a DT\ncat NN\n")
    (data / "run.toml").write_text(tagger_config)
    folder = tmp_path / "run"
    assert main(["run", str(data / "run.toml"), "--out", str(folder), "--quiet"]) == 0
    scores = evaluate(folder)
    moved = data.rename(tmp_path / "moved")
    with pytest.raises(MtlshareError):
        evaluate(folder)
    assert evaluate(folder, data_dir=moved) == scores
    assert main(["evaluate", str(folder), "--data-dir", str(moved)]) == 0
    # a run from before inference.json: its vocabularies are rebuilt from data_dir's files too
    (folder / "inference.json").unlink()
    assert evaluate(folder, data_dir=moved) == scores
    capsys.readouterr()
