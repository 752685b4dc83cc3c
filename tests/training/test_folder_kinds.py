"""Run-folder rules a mutation review found untested: an ``inference.json`` whose numbers are
JSON booleans is damaged (``True`` is an ``int`` to Python)."""

from __future__ import annotations

import json

import pytest

from mtlshare.errors import MtlshareError
from mtlshare.training.folder import (
    CHECKPOINTS,
    CONFIG,
    INFERENCE,
    RunFolder,
    another_commands_output,
)


@pytest.mark.parametrize("key", ["input_dim", "input_rank"])
def test_an_inference_spec_with_a_boolean_for_a_number_is_damaged(tmp_path, key):
    spec = {
        "format": "mtlshare.inference",
        "version": 1,
        "input_dim": 4,
        "input_rank": 2,
        "tasks": [],
        "codec": {"codec": "tensor"},
        "base_dir": None,
    }
    folder = RunFolder(tmp_path)
    (tmp_path / INFERENCE).write_text(json.dumps(spec))
    assert folder.inference()["input_dim"] == 4  # as the run wrote it: read back
    (tmp_path / INFERENCE).write_text(json.dumps({**spec, key: True}))
    with pytest.raises(MtlshareError, match=f"damaged: '{key}' is True, expected int"):
        folder.inference()


def test_a_runs_own_config_is_no_other_commands_output_to_a_run(tmp_path):
    """A run cut before its first checkpoint leaves only ``config.toml``: to a run that is
    its own kind of folder, to a comparison or the demo it is a run's."""
    (tmp_path / CONFIG).write_text("")
    assert another_commands_output(tmp_path, "run") is None
    assert another_commands_output(tmp_path, "comparison") == f"a run ({CONFIG})"
    assert another_commands_output(tmp_path, "demo") == f"a run ({CONFIG})"


def test_a_comparisons_runs_are_found_two_levels_down(tmp_path):
    """A comparison cut short holds runs in its row folders, or in their seed folders."""
    (tmp_path / "hard" / "seed_0" / CHECKPOINTS).mkdir(parents=True)
    assert another_commands_output(tmp_path, "comparison") is None  # its own kind
    assert another_commands_output(tmp_path, "run") == "a comparison's runs (hard/seed_0)"
    assert another_commands_output(tmp_path / "hard", "run") == "a comparison's runs (seed_0)"
    # three levels down (a folder holding a comparison of its own): not this folder's rows
    (tmp_path / "outer" / "cmp" / "hard" / "seed_0" / CHECKPOINTS).mkdir(parents=True)
    assert another_commands_output(tmp_path / "outer", "run") is None
