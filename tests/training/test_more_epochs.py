"""``--resume`` with ``train.epochs`` raised: a run (finished or cut) trains on from its
``checkpoint/last`` to the new cap and ends as a run given that cap from the start, bit for bit;
the earlier results are kept beside; anything else that differs, a lowered cap, or a finished
run without its last checkpoint is refused in one line with nothing written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from mtlshare.cli import main
from mtlshare.config import raised_epochs, resumable_differences
from mtlshare.errors import DataError
from mtlshare.training import checkpoint as ckpt
from mtlshare.training.folder import RunFolder
from mtlshare.training.state import LoopCheckpoints

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
# dropout, so the random state must carry over; no early stop, so the added epochs train
SMALL = ["data.n_dev=50", "data.n_test=50", "trunk.dropout=0.2", "train.patience=0", "--quiet"]
TIMINGS = {"train_seconds", "wall_seconds", "tokens_per_second", "machine"}


def untimed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMINGS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def metrics(out: Path) -> list[dict[str, Any]]:
    return [untimed(json.loads(line)) for line in (out / "metrics.jsonl").read_text().splitlines()]


def results(out: Path, name: str = "results.json") -> dict[str, Any]:
    return untimed(json.loads((out / name).read_text()))


def tensors(out: Path, name: str) -> dict[str, torch.Tensor]:
    return load_file(str(out / "checkpoint" / name / "tensors.safetensors"))


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtlshare: error:"), err
    return err[0]


def test_only_a_raised_epoch_cap_is_let_through():
    from mtlshare.config import from_dict

    def text(**train: Any) -> str:
        raw = {"data": {"source": "synthetic"}, "train": {"epochs": 4, "lr": 0.003, **train}}
        return from_dict(raw).to_toml()

    assert raised_epochs(text(), text(epochs=6))
    assert not raised_epochs(text(), text())  # the same config: nothing raised
    assert not raised_epochs(text(epochs=6), text())  # lowered
    assert not raised_epochs(text(), text(epochs=6, lr=0.5))  # raised, and something else
    assert resumable_differences(text(), text(epochs=6)) == []
    assert resumable_differences(text(epochs=6), text()) == ["train.epochs: 6 in the run, 4 now"]
    # a saved config.toml that is no longer TOML: a difference to name, not a TOMLDecodeError
    assert not raised_epochs("[train\nepochs = 4", text(epochs=6))
    (broken,) = resumable_differences("[train\nepochs = 4", text(epochs=6))
    assert broken.startswith("the run's config no longer loads"), broken


@pytest.mark.parametrize("mechanism", ["hard", "sparse"])
def test_a_finished_run_given_more_epochs_ends_as_the_longer_run(tmp_path, capsys, mechanism):
    """Sparse sharing's mask search is not run again: the run continues its subnets' training
    from the last checkpoint, masks included."""
    extra = [f"mechanism={mechanism}"]
    if mechanism == "sparse":
        extra += ["sparse.warmup_epochs=1", "sparse.target_density=0.5", "sparse.alpha=0.3"]
    longer, cut = tmp_path / "longer", tmp_path / "cut"
    assert main(["run", DEMO, *SMALL, *extra, "train.epochs=5", "--out", str(longer)]) == 0
    assert main(["run", DEMO, *SMALL, *extra, "train.epochs=3", "--out", str(cut)]) == 0
    three = (cut / "results.json").read_bytes()
    assert json.loads(three)["epochs_run"] == 3
    capsys.readouterr()
    args = ["run", DEMO, *SMALL, *extra, "train.epochs=5", "--out", str(cut), "--resume"]
    assert main(args) == 0
    assert "read back" not in capsys.readouterr().err  # it trained
    assert metrics(cut) == metrics(longer)
    assert results(cut) == results(longer)
    assert results(cut)["epochs_run"] == 5
    assert_same_tensors(tensors(cut, "last"), tensors(longer, "last"))  # weights, optimizer, RNG
    assert_same_tensors(tensors(cut, "best"), tensors(longer, "best"))
    assert (cut / "results-3-epochs.json").read_bytes() == three  # the earlier results kept
    assert (cut / "config.toml").read_text() == (longer / "config.toml").read_text()
    # and now the run is finished at its new cap: resumed again, it is read back untouched
    before = tree(cut)
    assert main(args) == 0
    assert tree(cut) == before


def test_a_run_cut_after_its_results_were_set_aside_trains_on_when_resumed(tmp_path):
    """Between setting the old results aside and finishing, the folder holds an unfinished run
    of the new config: resumed, it continues (never reads the old results back as the new
    run's)."""
    longer, cut = tmp_path / "longer", tmp_path / "cut"
    assert main(["run", DEMO, *SMALL, "train.epochs=4", "--out", str(longer)]) == 0
    assert main(["run", DEMO, *SMALL, "train.epochs=2", "--out", str(cut)]) == 0
    folder = RunFolder(cut)
    new_config = (longer / "config.toml").read_text()
    folder.start(new_config, True, resumable_differences, reopen=True)  # then the process dies
    folder.close()
    assert not folder.finished and (cut / "results-2-epochs.json").is_file()
    assert main(["run", DEMO, *SMALL, "train.epochs=4", "--out", str(cut), "--resume"]) == 0
    assert results(cut) == results(longer) and metrics(cut) == metrics(longer)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["train.epochs=2"], "train.epochs: 3 in the run, 2 now"),
        (["train.epochs=5", "train.lr=0.01"], "train.lr: 0.003 in the run, 0.01 now"),
    ],
)
def test_a_lowered_cap_or_another_change_is_refused_with_nothing_written(
    tmp_path, capsys, change, named
):
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "train.epochs=3", "--out", str(out)]) == 0
    before = tree(out)
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, *change, "--out", str(out), "--resume"]) == 2
    assert named in one_line(capsys)
    assert tree(out) == before


def test_a_finished_run_without_its_last_checkpoint_cannot_train_on(tmp_path, capsys):
    """Kept runs are copied without checkpoints: given more epochs, such a run is refused in
    one line (by `compare` before any run of its plan trains), and nothing changes."""
    out = tmp_path / "cmp"
    base = ["compare", DEMO, *SMALL, "--mechanisms", "hard", "--out", str(out)]
    assert main([*base, "train.epochs=2"]) == 0
    last = out / "hard" / "checkpoint" / "last"
    for name in last.iterdir():
        name.unlink()
    last.rmdir()
    before = tree(out)
    capsys.readouterr()
    assert main([*base, "train.epochs=3", "--resume"]) == 2
    line = one_line(capsys)
    assert "checkpoint/last: missing" in line and "more epochs" in line
    assert tree(out) == before
    assert main([*base, "train.epochs=2", "--resume"]) == 0  # its own cap: read back


def test_compare_plans_a_run_given_more_epochs_as_one_to_continue(tmp_path, capsys):
    out = tmp_path / "cmp"
    base = ["compare", DEMO, *SMALL, "--mechanisms", "hard", "--out", str(out)]
    assert main([*base, "train.epochs=2"]) == 0
    capsys.readouterr()
    assert main([*base, "train.epochs=3", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "3 runs: 3 to continue" in err, err
    runs = [out / "single" / "t1", out / "single" / "t2", out / "hard"]
    assert [results(r)["epochs_run"] for r in runs] == [3, 3, 3]
    assert all((r / "results-2-epochs.json").is_file() for r in runs)


def test_resuming_with_the_cap_a_run_had_before_it_was_given_more_says_so(tmp_path, capsys):
    """Resumed with its first cap after another command gave it more epochs, a run is refused
    with a line that says why the saved config is not the caller's (not only "differs")."""
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "train.epochs=2", "--out", str(out)]) == 0
    assert main(["run", DEMO, *SMALL, "train.epochs=3", "--out", str(out), "--resume"]) == 0
    before = tree(out)
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "train.epochs=2", "--out", str(out), "--resume"]) == 2
    line = one_line(capsys)
    assert "train.epochs: 3 in the run, 2 now" in line
    assert line.endswith(
        "; the run was given more epochs after it finished (results-2-epochs.json holds its "
        "results before)"
    )
    assert tree(out) == before
    # another setting differing, the cap the run's own: that clause would explain nothing
    assert (
        main(["run", DEMO, *SMALL, "train.epochs=3", "train.lr=0.5", "--out", str(out), "--resume"])
        == 2
    )
    line = one_line(capsys)
    assert "train.lr: " in line and "more epochs" not in line, line
    assert tree(out) == before


def cap_raised_when_read(monkeypatch: pytest.MonkeyPatch, run_dir: Path) -> None:
    """As if another process gave the run in ``run_dir`` more epochs (2 to 3) just before this
    one takes its shared lock to read it back: what that process's last write leaves."""
    import mtlshare.training.folder as folder_module

    reading = folder_module.OutputFolder.reading

    def raised_meanwhile(self):
        if self.path == run_dir:
            config = run_dir / "config.toml"
            config.write_text(config.read_text().replace("epochs = 2", "epochs = 3", 1))
        return reading(self)

    monkeypatch.setattr(folder_module.OutputFolder, "reading", raised_meanwhile)


@pytest.mark.parametrize("command", ["run", "compare"])
def test_a_run_given_more_epochs_between_the_plan_and_its_read_back_is_refused(
    tmp_path, capsys, monkeypatch, command
):
    """Another process may finish giving the run more epochs after this one decided to read it
    back and before it holds the folder's shared lock: the decision is made again under the
    lock, and the run is refused in one line, never its new results read as the old cap's."""
    out = tmp_path / "out"
    base = [command, DEMO, *SMALL, "train.epochs=2", "--out", str(out)]
    if command == "compare":
        base += ["--mechanisms", "hard"]
    assert main(base) == 0
    run_dir = out / "hard" if command == "compare" else out
    cap_raised_when_read(monkeypatch, run_dir)
    capsys.readouterr()
    assert main([*base, "--resume"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    if command == "compare":  # its plan, then the refusal
        assert err[0] == "compare: 3 runs: 3 read back"
        err = err[1:]
    assert err == [
        f"mtlshare: error: {run_dir}: changed by another process while being read back; run again"
    ]


def test_kept_runs_keep_the_earlier_results_beside(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("keep_runs", ROOT / "recipes" / "keep_runs.py")
    assert spec is not None and spec.loader is not None
    keep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(keep)
    out = tmp_path / "cmp"
    base = ["compare", DEMO, *SMALL, "--mechanisms", "hard", "--out", str(out)]
    assert main([*base, "train.epochs=2"]) == 0
    assert main([*base, "train.epochs=3", "--resume"]) == 0
    assert keep.keep_runs(out, tmp_path / "kept") == 3
    kept = tmp_path / "kept" / "hard"
    assert sorted(p.name for p in kept.iterdir()) == [
        "config.toml",
        "metrics.jsonl",
        "results-2-epochs.json",
        "results.json",
    ]
    assert (kept / "results-2-epochs.json").read_bytes() == (
        out / "hard" / "results-2-epochs.json"
    ).read_bytes()


@pytest.mark.parametrize("damage", ["last meta", "no best", "best tensors"])
def test_a_finished_run_with_a_damaged_last_or_no_best_is_refused_before_anything_moves(
    tmp_path, capsys, damage
):
    """Its results are set aside only once what it trains on from has been read: refused, the
    run still reads back with its own cap."""
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "train.epochs=2", "--out", str(out)]) == 0
    if damage == "last meta":
        meta = out / "checkpoint" / "last" / "meta.json"
        meta.write_text(meta.read_text().replace('"epoch": 2', '"epoch": "2"'))
    elif damage == "best tensors":  # there, but unreadable: read before anything moves too
        (out / "checkpoint" / "best" / "tensors.safetensors").write_bytes(b"not tensors")
    else:
        for name in (out / "checkpoint" / "best").iterdir():
            name.unlink()
        (out / "checkpoint" / "best").rmdir()
    before = tree(out)
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "train.epochs=4", "--out", str(out), "--resume"]) == 2
    line = one_line(capsys)
    said = {
        "last meta": "'epoch' is '2'",
        "no best": "best: missing",
        "best tensors": "best/tensors.safetensors: unreadable",
    }
    assert said[damage] in line, line
    assert tree(out) == before


@pytest.mark.parametrize("damage", ["no optimizer", "a weight missing", "NaN weights"])
def test_a_finished_run_whose_last_checkpoint_fails_once_loaded_is_put_back(
    tmp_path, capsys, damage
):
    """A ``checkpoint/last`` that reads but does not fit the model (its optimizer's state gone,
    a weight missing) or trains to a NaN loss at once fails only after the results were set
    aside and the raised cap written: the run is put back as it was, and still reads back (it
    was left an unfinished run of the new cap, which resuming at its own cap refused)."""
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "train.epochs=2", "--out", str(out)]) == 0
    last = out / "checkpoint" / "last"
    tensors, meta = ckpt.load_checkpoint(last)
    if damage == "no optimizer":
        del meta["optimizer"]
    elif damage == "a weight missing":
        del tensors[next(k for k in sorted(tensors) if k.startswith("model."))]
    else:
        tensors = {
            k: torch.full_like(v, float("nan")) if k.startswith("model.") else v
            for k, v in tensors.items()
        }
    ckpt.save_checkpoint(last, tensors, meta)  # whole, with its digest: it reads
    before = tree(out)
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "train.epochs=4", "--out", str(out), "--resume"]) == 2
    line = one_line(capsys)
    said = {
        "no optimizer": "does not fit this run or is incomplete (KeyError: 'optimizer')",
        "a weight missing": "does not fit this run or is incomplete (RuntimeError: Missing key",
        "NaN weights": "loss is nan at step",
    }
    assert said[damage] in line, line
    assert tree(out) == before
    assert main(["run", DEMO, *SMALL, "train.epochs=2", "--out", str(out), "--resume"]) == 0
    assert tree(out) == before


@pytest.mark.parametrize(
    "saved", ["last", "best", "none: the folder moved", "none: the results set aside gone"]
)
def test_a_run_given_more_epochs_refused_after_it_saved_an_epoch_is_left_to_train_on(
    tmp_path, capsys, monkeypatch, saved
):
    """Refused once it has saved epoch 3 past its old cap (its ``checkpoint/last``, or only its
    ``best``: ``train.keep = 'last'`` saves it first), a finished run given more epochs is not
    put back: it is left as a run cut on its way to the new cap, and resuming trains it on.
    Nor is anything written where a folder moved away meanwhile was: it is left, moved, as it
    was when refused; nor where its results set aside were removed meanwhile: without them
    its own config would read back as a run cut at its own cap."""
    out, keep = tmp_path / "run", ["train.keep=last"] if saved == "best" else []
    args = ["run", DEMO, *SMALL, *keep, "--out", str(out)]
    assert main([*args, "train.epochs=2"]) == 0
    save, moved = LoopCheckpoints.save, tmp_path / "moved"

    def refused_after_epoch_3(
        self: LoopCheckpoints, name: str, optimizer: Any, meta: dict[str, Any]
    ) -> None:
        if "moved" in saved and meta["epoch"] == 3:
            out.rename(moved)
            raise DataError("refused after epoch 3 was saved")  # its first save: none yet
        if "gone" in saved and meta["epoch"] == 3:
            (out / "results-2-epochs.json").unlink()
            raise DataError("refused after epoch 3 was saved")
        save(self, name, optimizer, meta)
        if name == saved and meta["epoch"] == 3:
            raise DataError("refused after epoch 3 was saved")

    monkeypatch.setattr(LoopCheckpoints, "save", refused_after_epoch_3)
    capsys.readouterr()
    assert main([*args, "train.epochs=4", "--resume"]) == 2
    assert "refused after epoch 3 was saved" in one_line(capsys)
    if "moved" in saved:
        assert not out.exists()
        args[args.index(str(out))], out = str(moved), moved
    assert not (out / "results.json").exists()
    assert "epochs = 4" in (out / "config.toml").read_text()
    monkeypatch.undo()
    assert main([*args, "train.epochs=4", "--resume"]) == 0
    assert json.loads((out / "results.json").read_text())["epochs_run"] == 4


def test_an_addition_resumed_after_its_trained_run_trained_on_is_refused_at_once(tmp_path, capsys):
    """add-task freezes the trained run's selected model: if that run was given more epochs
    (and selected a later one) since the addition started, resuming it is one line, before
    any training, rather than a failed check at the end."""
    trained, cut = tmp_path / "trained", tmp_path / "cut"
    small = ["data.n_tasks=3", "data.n_dev=50", "data.n_test=50", "--quiet"]
    assert (
        main(["run", DEMO, 'tasks=["t1","t2"]', *small, "train.epochs=2", "--out", str(trained)])
        == 0
    )
    add = ["add-task", str(trained), DEMO, 'tasks=["t3"]', *small, "--out", str(cut)]
    assert main([*add, "train.epochs=2"]) == 0
    (cut / "results.json").unlink()  # as if cut before its end
    run_more = ["run", DEMO, 'tasks=["t1","t2"]', *small, "--out", str(trained), "--resume"]
    assert main([*run_more, "train.epochs=4"]) == 0
    assert json.loads((trained / "results.json").read_text())["best_epoch"] > 2
    metrics_before = (cut / "metrics.jsonl").read_bytes()
    capsys.readouterr()
    assert main([*add, "train.epochs=2", "--resume"]) == 2
    assert "selected model changed since this addition started" in one_line(capsys)
    assert (cut / "metrics.jsonl").read_bytes() == metrics_before


def test_with_jobs_a_run_changed_while_read_back_fails_alone_the_rest_kept(
    tmp_path, capsys, monkeypatch
):
    """With --jobs the runs to read back are read in the main process: one changed by another
    process meanwhile is refused as above, named, and the comparison ends as one whose worker
    failed (non-zero exit, the other runs kept, --resume named)."""
    out = tmp_path / "out"
    base = ["compare", DEMO, *SMALL, "train.epochs=2", "--out", str(out), "--mechanisms", "hard"]
    assert main(base) == 0
    run_dir = out / "hard"
    cap_raised_when_read(monkeypatch, run_dir)
    capsys.readouterr()
    assert main([*base, "--resume", "--jobs", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    changed = f"{run_dir}: changed by another process while being read back; run again"
    assert err[0] == "compare: 3 runs: 3 read back"
    assert f"mtlshare: hard seed 0 failed: {changed}" in err
    assert err[-1] == (
        f"mtlshare: error: 1 of 3 runs did not finish (first: hard seed 0: {changed}); "
        "2 finished and are kept: rerun with --resume"
    )
