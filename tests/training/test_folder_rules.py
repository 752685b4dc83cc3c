"""Run folder rules without training: the check is repeated under the lock, files are replaced
(never rewritten in place), results need every field of every task, and a comparison finds a
run in the other layout only when it is the same seed's."""

from __future__ import annotations

import json
import os

import pytest
import torch

from mtlshare.errors import MtlshareError
from mtlshare.training.folder import ComparisonFolder, RunFolder

TASK = {"metric": "accuracy", "higher_is_better": True, "dev": 0.5, "test": 0.25}


def test_start_checks_again_under_the_lock(tmp_path):
    """Another process may finish a run between ``check`` and ``start``: refused, unlocked."""
    folder = RunFolder(tmp_path / "run")
    folder.check("x = 1\n", resume=False)
    other = RunFolder(tmp_path / "run")
    other.open()
    other.write_results({"tasks": {"t": TASK}})
    other.close()
    with pytest.raises(MtlshareError, match="holds an earlier run"):
        folder.start("x = 1\n", resume=False)
    assert not folder.file("config.toml").exists()
    other.open()  # the refused start let the lock go
    other.close()


def test_files_are_replaced_not_rewritten_in_place(tmp_path):
    """A reader holding the old file (here: a hard link to it) never sees a half-written one."""
    folder = RunFolder(tmp_path / "run")
    folder.open()
    try:
        folder.write_results({"tasks": {"t": TASK}})
        old = tmp_path / "old.json"
        os.link(folder.file("results.json"), old)
        folder.write_results({"tasks": {"t": {**TASK, "test": 0.75}}})
        assert json.loads(old.read_text())["tasks"]["t"]["test"] == 0.25
        assert folder.results()["tasks"]["t"]["test"] == 0.75
    finally:
        folder.close()


@pytest.mark.parametrize("missing", ["metric", "higher_is_better", "dev", "test"])
def test_results_lacking_one_field_of_one_task_are_refused(tmp_path, missing):
    folder = RunFolder(tmp_path)
    partial = {k: v for k, v in TASK.items() if k != missing}
    folder.write_results({"tasks": {"a": TASK, "b": partial}})
    with pytest.raises(MtlshareError, match=f"task 'b' lacks {missing}"):
        folder.results()


def test_a_run_of_another_seed_in_the_other_layout_is_not_this_seed_s(tmp_path):
    one_seed = RunFolder(tmp_path / "hard")  # a one-seed pass with seed 3
    one_seed.open()
    one_seed.write_text("config.toml", "seed = 3\n")
    one_seed.close()
    several = ComparisonFolder(tmp_path, several_seeds=True)
    assert several.run_path("hard", 3) == tmp_path / "hard"
    assert several.run_path("hard", 0) == tmp_path / "hard" / "seed-0"
    assert several.run_path("hard", 3, "t1") == tmp_path / "hard" / "seed-3" / "t1"


def test_a_fresh_run_refuses_a_folder_with_an_interrupted_run_s_checkpoints(tmp_path):
    folder = RunFolder(tmp_path)
    folder.save_checkpoint("last", {"model.w": torch.zeros(2)}, {"epoch": 1})
    assert not folder.finished
    with pytest.raises(MtlshareError, match="holds an earlier run"):
        folder.check("x = 1\n", resume=False)
    with pytest.raises(MtlshareError, match="holds an earlier run"):
        folder.start("x = 1\n", resume=False)
    assert not folder.file("config.toml").exists()


def test_a_folder_of_a_runs_files_without_its_config_is_not_told_to_resume(tmp_path):
    """Without ``config.toml`` nothing can be resumed: the fresh run's refusal said "pass
    --resume", which then refused for the missing config (and ``compare --resume``, which plans
    such a row afresh, said it though ``--resume`` was passed)."""
    folder = RunFolder(tmp_path)
    folder.save_checkpoint("last", {"model.w": torch.zeros(2)}, {"epoch": 1})
    with pytest.raises(MtlshareError) as e:
        folder.check("x = 1\n", resume=False)
    assert str(e.value) == (
        f"{tmp_path}: holds an earlier run's files but no config.toml to resume it by; remove "
        "them or choose another --out"
    )
    folder.open()
    folder.write_text("config.toml", "x = 1\n")
    folder.close()
    with pytest.raises(MtlshareError, match="choose another --out or pass --resume"):
        folder.check("x = 1\n", resume=False)
