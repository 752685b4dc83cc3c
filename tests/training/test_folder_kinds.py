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


def test_the_demo_s_plot_marks_its_folder_as_the_demo_s_output(tmp_path):
    (tmp_path / "demo.png").write_bytes(b"")
    assert another_commands_output(tmp_path, "run") == "the demo's output (demo.png)"


def test_a_folder_is_shown_by_its_path_and_says_why_it_cannot_be_used(tmp_path):
    assert repr(RunFolder(tmp_path / "r")) == f"RunFolder({str(tmp_path / 'r')!r})"
    afile = tmp_path / "afile"
    afile.write_text("")
    with pytest.raises(MtlshareError) as err:
        RunFolder(afile / "run").open()
    assert str(err.value) == (
        f"{afile / 'run'}: cannot be used as an output folder ([Errno 20] Not a directory: "
        f"'{afile / 'run'}')"
    )
    gone = tmp_path / "gone"
    with pytest.raises(MtlshareError) as err, RunFolder(gone).reading():
        pass
    assert str(err.value) == (
        f"{gone}: cannot be used as an output folder ([Errno 2] No such file or directory: "
        f"'{gone}')"
    )


def test_results_of_an_unfinished_run_are_refused(tmp_path):
    (tmp_path / CONFIG).write_text("seed = 0\n")
    with pytest.raises(MtlshareError) as err:
        RunFolder(tmp_path).results()
    assert str(err.value) == f"{tmp_path / 'results.json'}: missing: the run has not finished"


def test_results_set_aside_are_named_by_the_saved_epochs_or_else_earlier(tmp_path):
    folder = RunFolder(tmp_path)
    (tmp_path / CONFIG).write_text("[train]\nepochs = 7\n")
    assert folder.earlier_results_name() == "results-7-epochs.json"
    (tmp_path / CONFIG).write_text("[train\nepochs = 7\n")  # no longer TOML
    assert folder.earlier_results_name() == "results-earlier-epochs.json"


def test_a_comparison_reads_the_other_layout_s_run_only_when_its_config_has_the_seed(tmp_path):
    from mtlshare.training.folder import ComparisonFolder

    several = ComparisonFolder(tmp_path, several_seeds=True)
    one_seed_run = tmp_path / "hard"
    one_seed_run.mkdir()
    (one_seed_run / CONFIG).write_text("seed = 0\n")
    assert several.run_path("hard", 0) == one_seed_run  # a --seeds 0 pass's run, read back
    assert several.run_path("hard", 1) == tmp_path / "hard" / "seed-1"
    (one_seed_run / CONFIG).write_text("seed = \n")  # unreadable: not that seed's run
    assert several.run_path("hard", 0) == tmp_path / "hard" / "seed-0"
