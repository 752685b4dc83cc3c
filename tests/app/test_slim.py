"""``mtlshare slim``: finished runs lose ``checkpoint/last`` and the sparse search's checkpoints,
stay usable, and nothing else is touched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

import mtlshare.app.slim as slimming
from mtlshare.app.slim import describe, removable, run_folders, slim
from mtlshare.cli import main
from mtlshare.training.folder import OutputFolder, RunFolder

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
SMALL = ["train.epochs=2", "data.n_dev=50", "data.n_test=50"]


def compare(out: Path, *extra: str) -> int:
    args = ["compare", DEMO, "--mechanisms", "single,hard,sparse", *SMALL, *extra]
    return main([*args, "--out", str(out), "--quiet"])


def checkpoints(run: Path) -> set[str]:
    return {p.name for p in (run / "checkpoint").iterdir()}


def size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("slim") / "cmp"
    assert compare(out) == 0
    return out


def test_slim_frees_last_and_the_search_and_the_runs_stay_usable(finished, tmp_path, capsys):
    out = tmp_path / "cmp"
    shutil.copytree(finished, out)
    runs = run_folders(out)
    assert [r.relative_to(out).as_posix() for r in runs] == [
        "hard",
        "single/t1",
        "single/t2",
        "sparse",
    ]
    sparse = out / "sparse"
    assert {"best", "last", "search", "search-rewind", "search-task-t1"} <= checkpoints(sparse)
    going = sum(size(p) for r in runs for p in (r / "checkpoint").iterdir() if p.name != "best")
    results = {r: (r / "results.json").read_text() for r in runs}
    table = json.loads((out / "comparison.json").read_text())
    capsys.readouterr()

    assert main(["slim", str(out), "--dry-run"]) == 0
    dry = capsys.readouterr().out
    assert "would free" in dry and "freed" not in dry
    assert checkpoints(sparse) >= {"last", "search"}  # nothing removed
    assert main(["slim", str(out)]) == 0
    said = capsys.readouterr().out
    assert dry.replace("would free", "freed") == said
    assert f"slim: 4 runs under {out}: freed {going / 1e6:,.1f} MB from 4 of them" in said
    assert "sparse: " in said and "checkpoint/search-task-t2" in said
    sparse_line = next(x for x in said.splitlines() if x.startswith("sparse: "))
    assert sparse_line.endswith(  # in order, whatever order the folder lists them in
        "(checkpoint/last, checkpoint/search, checkpoint/search-rewind, "
        "checkpoint/search-task-t1, checkpoint/search-task-t2)"
    )
    for r in runs:  # best alone is left, the results untouched
        assert checkpoints(r) == {"best"}
        assert (r / "results.json").read_text() == results[r]

    # read back, scored, predicted from and masked as before
    assert compare(out, "--resume") == 0
    assert "4 read back" in capsys.readouterr().err
    again = json.loads((out / "comparison.json").read_text())
    assert again["rows"] == table["rows"]
    assert main(["evaluate", str(sparse)]) == 0
    scores = json.loads(results[sparse])["tasks"]
    printed = capsys.readouterr().out
    assert f"t1: test mse {scores['t1']['test']:.6g}" in printed
    assert main(["masks", str(sparse)]) == 0
    inputs = tmp_path / "in.csv"
    inputs.write_text(",".join(f"x{i}" for i in range(16)) + "\n" + ",".join(["0.5"] * 16) + "\n")
    assert main(["predict", str(out / "hard"), str(inputs), "--out", str(tmp_path / "p")]) == 0
    capsys.readouterr()
    # what goes: --checkpoint last, and training on to more epochs, each one line naming it
    last = ["predict", str(out / "hard"), str(inputs), "--out", str(tmp_path / "q")]
    assert main([*last, "--checkpoint", "last"]) == 2
    assert "kept only its 'best' checkpoint" in capsys.readouterr().err
    more = ["run", DEMO, *SMALL, "train.epochs=3", "--out", str(out / "hard"), "--resume"]
    assert main(more) == 2
    assert "checkpoint/last: missing" in capsys.readouterr().err
    # slimmed already: nothing more to free
    assert main(["slim", str(out)]) == 0
    assert "freed 0.0 MB from 0 of them" in capsys.readouterr().out


def test_runs_not_finished_or_in_use_are_left_whole(finished, tmp_path, capsys):
    out = tmp_path / "cmp"
    shutil.copytree(finished, out)
    (out / "hard" / "results.json").unlink()  # cut: it resumes from checkpoint/last
    busy = OutputFolder(out / "single" / "t1")
    busy.open()  # another command writes there
    try:
        done = slim(out)
    finally:
        busy.close()
    assert set(done.removed) == {out / "single" / "t2", out / "sparse"}
    assert done.unfinished == [out / "hard"]
    assert "another mtlshare process is writing here" in done.in_use[out / "single" / "t1"]
    said = describe(done, out, dry_run=False)
    assert "single/t1: left whole: " in said and "another mtlshare process" in said
    assert "last" in checkpoints(out / "hard") and "last" in checkpoints(out / "single" / "t1")
    assert main(["slim", str(out)]) == 0
    said = capsys.readouterr().out
    assert "hard: not finished, left whole (it resumes from last)" in said
    assert "single/t1: " in said  # free now


def test_a_cut_slim_leaves_no_checkpoint_anything_reads_and_the_next_finishes_it(
    finished, tmp_path
):
    run = tmp_path / "hard"
    shutil.copytree(finished / "hard", run)
    # cut between the rename and the removal, and a save's leftover twin
    (run / "checkpoint" / "last").rename(run / "checkpoint" / ".slim-last")
    shutil.copytree(run / "checkpoint" / "best", run / "checkpoint" / "last.old")
    going = size(run / "checkpoint" / ".slim-last") + size(run / "checkpoint" / "last.old")
    done = slim(run)
    assert done.removed == {run: (["last.old"], going)}
    assert checkpoints(run) == {"best"}
    # a slim of one run names it by its path; one that finds only what a cut slim left says so
    assert describe(done, run, dry_run=False).startswith(f"{run}: ")
    (run / "checkpoint" / "best").rename(run / "checkpoint" / ".slim-last")
    shutil.copytree(finished / "hard" / "checkpoint" / "best", run / "checkpoint" / "best")
    said = describe(slim(run), run, dry_run=False)
    assert said.startswith(f"{run}: ") and "(what a cut slim left)" in said.splitlines()[0]
    assert checkpoints(run) == {"best"}


def test_a_removal_cut_half_way_leaves_no_damaged_checkpoint_under_its_name(
    finished, tmp_path, monkeypatch
):
    """Each checkpoint is renamed away before it is removed: a removal cut half-way (killed,
    or a failing disk) leaves a part of ``last`` under a name nothing reads, not a damaged
    ``last`` that ``--resume`` or ``--checkpoint last`` would read as whole."""
    run = tmp_path / "hard"
    shutil.copytree(finished / "hard", run)
    removes = shutil.rmtree

    def cut(path, ignore_errors=False):
        if ignore_errors:  # clearing a name in the way
            return removes(path, ignore_errors=True)
        next(Path(path).rglob("*.safetensors")).unlink()  # a part gone, then cut
        raise OSError(5, "Input/output error", str(path))

    monkeypatch.setattr(slimming, "shutil", SimpleNamespace(rmtree=cut))  # slim's alone
    with pytest.raises(OSError):
        slim(run)
    assert checkpoints(run) == {"best", ".slim-last"}
    monkeypatch.undo()
    slim(run)  # the next finishes it
    assert checkpoints(run) == {"best"}


def test_a_run_given_more_epochs_before_the_lock_keeps_its_last(finished, tmp_path, monkeypatch):
    """A run finished when ``slim`` looked, then given more epochs (its results set aside,
    ``--resume`` trains on from ``last``) and cut, before ``slim`` took its lock: it has not
    finished any more and keeps its ``last``, which it resumes from, and is said to be left
    whole (it was said nothing of: one run found, none freed, no reason given)."""
    run = tmp_path / "hard"
    shutil.copytree(finished / "hard", run)

    class GivenMoreEpochs(RunFolder):
        def open(self) -> None:
            (self.path / "results.json").rename(self.path / "results-2-epochs.json")
            super().open()

    monkeypatch.setattr(slimming, "RunFolder", GivenMoreEpochs)
    done = slim(run)
    assert done.removed == {}
    assert checkpoints(run) == {"best", "last"}
    assert done.unfinished == [run]
    assert f"{run}: not finished, left whole" in describe(done, run, dry_run=False)


def test_a_finished_run_without_best_or_with_a_linked_checkpoint(finished, tmp_path, capsys):
    """A finished run without ``checkpoint/best`` (lost, or removed by hand) keeps its
    ``last``, the only model it has left, and is named; a checkpoint that is a link to a folder
    elsewhere is the link removed, its target left (links are not followed)."""
    out = tmp_path / "cmp"
    shutil.copytree(finished, out)
    shutil.rmtree(out / "hard" / "checkpoint" / "best")
    elsewhere = tmp_path / "elsewhere"
    (out / "sparse" / "checkpoint" / "last").rename(elsewhere)
    (out / "sparse" / "checkpoint" / "last").symlink_to(elsewhere, target_is_directory=True)
    kept = size(elsewhere)
    linked = {p.name: size(p) for p in (out / "sparse" / "checkpoint").iterdir()}
    going = sum(s for name, s in linked.items() if name not in ("best", "last"))

    done = slim(out)
    assert done.without_best == [out / "hard"]
    assert checkpoints(out / "hard") == {"last"}
    assert checkpoints(out / "sparse") == {"best"}
    assert size(elsewhere) == kept  # the link's target is not touched
    assert going < done.removed[out / "sparse"][1] < going + 1000  # the link, not its target
    said = describe(done, out, dry_run=False)
    assert "hard: no checkpoint/best, left as it is" in said


def test_what_slim_removes():
    for name in ("last", "last.old", "last.tmp", "search", "search-rewind", "search-task-ner"):
        assert removable(name), name
    assert removable(".slim-best")  # a cut slim's leftover, whatever it was
    for name in ("best", "best.old", "best.tmp", "searching", "lasting"):
        assert not removable(name), name


def test_a_folder_without_runs_is_one_line(tmp_path, capsys):
    assert main(["slim", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err == f"mtlshare: error: {tmp_path / 'nothing'}: no such folder\n"
    assert main(["slim", str(tmp_path)]) == 2
    assert "holds no run folder" in capsys.readouterr().err
    (tmp_path / "kept" / "checkpoint").mkdir(parents=True)  # without config.toml: not a run
    assert main(["slim", str(tmp_path)]) == 2
    assert "holds no run folder" in capsys.readouterr().err
