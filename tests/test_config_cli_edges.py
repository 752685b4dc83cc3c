"""Tests a mutation review of the config reader and the command line found missing: each fails
with a small change to the code that a real bug could make."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from mtlshare.cli import main
from mtlshare.config import load_config
from mtlshare.errors import INTERRUPTED, INTERRUPTED_FOR_GOOD, ConfigError
from mtlshare.registry import MECHANISMS, Entry

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"


@dataclass
class _Choices:
    level: Literal[1, 2] = 1
    pair: tuple[int, str] = (0, "x")


@dataclass
class _IntKeys:
    by_id: dict[int, int] = field(default_factory=dict)


def _own(monkeypatch: pytest.MonkeyPatch, config: type) -> None:
    MECHANISMS.names()  # the library's own are registered before the planted one
    monkeypatch.setitem(MECHANISMS._entries, "own", Entry("own", object, config, "", ""))


def test_a_literal_choice_takes_its_values_not_equal_ones_of_another_type(monkeypatch):
    """``true == 1`` in Python: a bool given where Literal[1, 2] is declared was taken as 1."""
    _own(monkeypatch, _Choices)
    assert load_config(DEMO, ["own.level=2"]).mechanisms["own"].level == 2
    with pytest.raises(ConfigError, match=r"own\.level: expected one of 1, 2, got True$"):
        load_config(DEMO, ["own.level=true"])


def test_a_fixed_length_tuple_refuses_too_many_values_in_one_line(monkeypatch):
    """Too few values were refused; too many reached zip(strict=True): a ValueError traceback."""
    _own(monkeypatch, _Choices)
    with pytest.raises(ConfigError, match=r"own\.pair: expected 2 values, got \[1, 'y', 2\]$"):
        load_config(DEMO, ['own.pair=[1, "y", 2]'])


def test_a_dict_field_with_keys_other_than_strings_is_refused_up_front(monkeypatch):
    """TOML keys are strings: a dict[int, ...] field would be read with str keys, silently."""
    _own(monkeypatch, _IntKeys)
    with pytest.raises(ConfigError, match=r"own\.by_id: a config field of type dict\[int, int\]"):
        load_config(DEMO)


def test_a_config_read_by_a_relative_path_keeps_its_folder_after_a_chdir(tmp_path, monkeypatch):
    """``base_dir`` is absolute: a notebook that changes directory after load_config still
    reads the config's relative data paths from the config's folder."""
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "c.toml").write_text(DEMO.read_text())
    monkeypatch.chdir(tmp_path)
    cfg = load_config(Path("cfg") / "c.toml")
    assert cfg.base_dir is not None and cfg.base_dir.is_absolute()
    assert cfg.base_dir == (tmp_path / "cfg").resolve()


def test_ctrl_c_in_compare_says_resume_and_in_predict_says_run_again(tmp_path, monkeypatch, capsys):
    """A comparison keeps checkpoints (--resume continues it); predict keeps none."""
    import mtlshare.app.compare
    import mtlshare.app.predict

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mtlshare.app.compare, "compare", interrupted)
    monkeypatch.setattr(mtlshare.app.predict, "load_run", interrupted)
    out = str(tmp_path / "o")
    assert main(["compare", str(DEMO), "--mechanisms", "single,hard", "--out", out]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        "mtlshare: interrupted before the first checkpoint was saved; run it again"
    ]
    (tmp_path / "o" / "hard" / "checkpoint" / "last").mkdir(parents=True)  # a row's checkpoint
    (tmp_path / "o" / "hard" / "checkpoint" / "last" / "meta.json").write_text("{}")
    assert main(["compare", str(DEMO), "--mechanisms", "single,hard", "--out", out]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [INTERRUPTED]
    assert main(["predict", str(tmp_path), str(DEMO), "--out", str(tmp_path / "p.csv")]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [INTERRUPTED_FOR_GOOD]


def test_mechanisms_lists_them_under_torchrun(monkeypatch, capsys):
    """Listing writes nothing: it is not refused with the commands that write folders."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["mechanisms"]) == 0
    out = capsys.readouterr().out
    assert "hard" in out and "sparse" in out


def test_the_bar_of_compare_jobs_shows_a_sparse_runs_epochs_after_its_mask_search(tmp_path):
    """Once its first epoch is written, a searching sparse run is at that epoch, not still in
    its mask search."""
    from mtlshare.app import jobs

    folder = tmp_path / "sparse"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    config = {"train": {"epochs": 20}, "mechanism": "sparse", "sparse": {"masks_from": ""}}
    job = jobs.RunJob("sparse", 1, None, config, folder)
    assert jobs.running_status([job]) == "sparse seed 1: epoch 2/20"


def test_single_subnet_rows_leave_out_the_fixed_weights_of_the_tasks_too():
    """A task trained alone on its sparse mask has no other task to weigh against: the
    weights, naming tasks its run does not have, made the comparison refuse the row."""
    from mtlshare.app.compare import row_config
    from mtlshare.config import SUBNET

    cfg = load_config(DEMO, ["weighting.weights={ t1 = 2.0 }"])
    assert row_config(cfg, "hard").weighting.weights == {"t1": 2.0}
    assert row_config(cfg, SUBNET, tasks=["t2"]).weighting.weights == {}


def test_the_demo_refuses_a_folder_holding_an_earlier_demos_added_task(tmp_path, capsys):
    """Its add-task step refused the used folder only after both comparisons had trained."""
    out = tmp_path / "d"
    (out / "add-task" / "hard").mkdir(parents=True)
    # (one epoch: with the check gone the demo trains its comparisons before it fails)
    assert main(["demo", "--out", str(out), "--quiet", "--jobs", "1", "train.epochs=1"]) == 2
    line = capsys.readouterr().err.strip().splitlines()
    assert len(line) == 1 and "holds an earlier demo (add-task)" in line[0], line
    assert sorted(p.name for p in out.iterdir()) == ["add-task"]


def test_a_single_task_rows_override_naming_another_task_is_refused_before_any_run(tmp_path):
    """Each single-task run is checked with its own task: an override of the single row that
    selects on t1 fits the run of t1 only, and was refused once that run had trained."""
    from mtlshare.app.compare import compare

    cfg = load_config(
        DEMO,
        ["train.epochs=1", 'compare.overrides.single={"train.select_on" = "t1"}'],
    )
    out = tmp_path / "cmp"
    with pytest.raises(ConfigError, match=r"train\.select_on: 't1' is neither 'mean' nor a task"):
        compare(cfg, ["single", "hard"], out, progress=False)
    assert not out.exists()
