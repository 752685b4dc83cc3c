"""Commands other than ``mtlshare run`` under torchrun: refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlshare.cli import main

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
DEMO = str(RECIPES / "demo" / "demo.toml")
FORECAST = str(RECIPES / "forecasting" / "bike_sharing.toml")


@pytest.mark.parametrize(
    "command", ["demo", "add-task", "evaluate", "predict", "compare", "run a forecast study"]
)
def test_commands_other_than_run_are_refused_under_torchrun_before_writing(
    tmp_path, monkeypatch, capsys, command
):
    """Every rank would run the whole command and find the others writing its folder."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "out"
    argv = {
        "demo": ["demo", "--out", str(out)],
        "add-task": ["add-task", str(tmp_path), DEMO, "--out", str(out)],
        "evaluate": ["evaluate", str(tmp_path)],
        "predict": ["predict", str(tmp_path), DEMO, "--out", str(out)],
        "compare": ["compare", DEMO, "--out", str(out)],
        "run a forecast study": ["run", FORECAST, "--out", str(out)],
    }[command]
    assert main(argv) != 0
    assert "under torchrun only `mtlshare run`" in capsys.readouterr().err
    assert not out.exists()
