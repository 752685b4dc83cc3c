"""``mtlshare.run`` from Python does what ``mtlshare run`` does: the experiment the config names,
with relative data paths read from the config file's folder, whatever the working directory."""

from __future__ import annotations

import datetime
import json
import math
from pathlib import Path

import pytest

import mtlshare
from mtlshare.config import load_config
from mtlshare.errors import MtlshareError

STUDY = """
experiment = "forecast"
[data]
source = "daily_csv"
path = "../data/series.csv"
layout = "long"
series = ["s0", "s1"]
origin = "2011-03-01"
horizon = 28
dev_days = 7
history = { s0 = 60 }
[forecast]
target = "s0"
origins = ["2011-03-01"]
methods = ["seasonal_naive", "naive"]
"""


def forecast_config(tmp_path: Path) -> Path:
    """A small forecasting study whose data path is relative to its config file."""
    (tmp_path / "data").mkdir()
    start, rows = datetime.date(2010, 1, 1), ["date,series,value"]
    for s in (0, 1):
        for t in range(500):
            day = start + datetime.timedelta(days=t)
            rows.append(
                f"{day},s{s},{100 * (s + 1) + 20 * math.sin(t * 0.9) + 9 * math.cos(t * 2.3):.2f}"
            )
    (tmp_path / "data" / "series.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "recipes").mkdir()
    path = tmp_path / "recipes" / "study.toml"
    path.write_text(STUDY)
    return path


def test_load_config_records_the_file_folder_and_replace_keeps_it(tmp_path: Path) -> None:
    path = forecast_config(tmp_path)
    cfg = load_config(path)
    assert cfg.base_dir == path.resolve().parent
    assert cfg.replace(seed=3).base_dir == path.resolve().parent
    assert "base_dir" not in cfg.to_toml()  # not part of the config written to a run folder


def test_python_run_runs_the_forecast_study_from_another_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = load_config(forecast_config(tmp_path))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # ../data/series.csv does not exist from here
    results = mtlshare.run(cfg, tmp_path / "out", progress=False)
    assert (tmp_path / "out" / "forecast.md").is_file()  # the study, not one trained model
    assert "seasonal_naive" in results["methods"]
    written = json.loads((tmp_path / "out" / "results.json").read_text())
    assert written["methods"]["naive"]["mae"] == results["methods"]["naive"]["mae"] > 0


def test_python_run_trains_a_train_experiment(tmp_path: Path) -> None:
    cfg = load_config(
        Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml",
        ["train.epochs=1", "data.n_train=32", "data.n_dev=16", "data.n_test=16"],
    )
    results = mtlshare.run(cfg, tmp_path / "run", progress=False)
    assert results["mechanism"] == cfg.mechanism
    assert (tmp_path / "run" / "checkpoint" / "best").is_dir()


def test_explicit_base_dir_wins_over_the_config_folder(tmp_path: Path) -> None:
    cfg = load_config(forecast_config(tmp_path))
    with pytest.raises(MtlshareError, match="no such file"):
        mtlshare.run(cfg, tmp_path / "out", base_dir=tmp_path / "elsewhere", progress=False)
    assert not (tmp_path / "out").exists()  # refused before anything is written


def test_the_public_names_are_typed_as_what_they_load():
    """``mtlshare.run`` and the rest load on first use (``import mtlshare`` stays light), and
    a type checker sees them through the ``TYPE_CHECKING`` imports: both must name the same
    function, and ``__all__`` every one of them."""
    import ast
    import importlib

    source = Path(mtlshare.__file__).read_text(encoding="utf-8")
    typed: dict[str, str] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module
                for alias in imp.names:
                    typed[alias.asname or alias.name] = f"{imp.module}:{alias.name}"
    assert set(typed) == set(mtlshare._API) == set(mtlshare.__all__) - {"__version__"}
    for name, where in typed.items():
        module, attr = where.split(":")
        assert getattr(mtlshare, name) is getattr(importlib.import_module(module), attr), name
