"""``mtlshare slim``: finished runs lose ``checkpoint/last`` and the sparse search's checkpoints,
stay usable, and nothing else is touched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from mtlshare.app.slim import removable, run_folders, slim
from mtlshare.cli import main
from mtlshare.training.folder import OutputFolder

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
    assert checkpoints(sparse) >= {"last", "search"}  # nothing removed
    assert main(["slim", str(out)]) == 0
    said = capsys.readouterr().out
    assert dry.replace("would free", "freed") == said
    assert f"freed {going / 1e6:,.1f} MB from 4 of them" in said
    assert "sparse: " in said and "checkpoint/search-task-t2" in said
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
