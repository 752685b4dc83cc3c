"""The package ships ``py.typed``: code written as its docs show type-checks under
``mypy --strict`` without errors the library causes, and the package docstring's example runs."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from md_tables import code_blocks

ROOT = Path(__file__).resolve().parents[1]

# a data source of one's own, as docs/mechanisms.md's "A mechanism or a data source of your
# own" says: the decorator must hand the function back with its own signature, not as
# Callable[..., Any]
OWN_SOURCE = """
from dataclasses import dataclass

import torch

from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.registry import DATA_SOURCES
from mtlshare.tasks.task import Task


@dataclass
class LinesConfig:
    n: int = 40


@DATA_SOURCES.register("lines", config=LinesConfig, summary="a line")
def lines_problem(cfg: LinesConfig, base_dir: str | None = None) -> Problem:
    x = torch.randn(cfg.n, 2)
    split = Split(x, x.sum(1))
    return Problem([TaskData(Task("a", "regression"), split, split, split)], input_dim=2)


def small() -> Problem:
    return lines_problem(LinesConfig(n=8))  # not "Returning Any" under --strict
"""


def test_readme_examples_and_a_data_source_of_ones_own_pass_mypy_strict(tmp_path):
    blocks = code_blocks("python|py")  # the README's and its pages'
    assert len(blocks) >= 5
    files = []
    for i, code in enumerate([*blocks, OWN_SOURCE]):
        files.append(tmp_path / f"example_{i}.py")
        files[-1].write_text(code, encoding="utf-8")
    exe = Path(sys.executable).with_name("mypy")
    mypy = [str(exe)] if exe.exists() else [sys.executable, "-m", "mypy"]
    args = ["--strict", "--python-executable", sys.executable, "--no-error-summary"]
    # the cache outlives the test (under the repository's .mypy_cache, which the suite may
    # write) so that a second run skips reading torch's annotations again
    cache = ROOT / ".mypy_cache" / "strict-examples"
    done = subprocess.run(
        [*mypy, *args, "--cache-dir", str(cache), *map(str, files)],
        cwd=tmp_path,
        env={**os.environ, "MYPYPATH": str(ROOT / "src")},  # this checkout's mtlshare
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_package_docstring_example_runs(tmp_path, monkeypatch):
    """``help(mtlshare)`` shows the commands' Python API; run as written (at a small size)."""
    import mtlshare.config

    code = textwrap.dedent(mtlshare.__doc__.split("::\n", 1)[1])
    assert "mtlshare.add_task(" in code
    small = [
        "train.epochs=2",
        "data.n_train=40",
        "data.n_dev=20",
        "data.n_test=20",
        "trunk.hidden=[8]",
        "sparse.warmup_epochs=1",
        "sparse.round_epochs=1",
        "sparse.target_density=0.5",
    ]
    load = mtlshare.config.load_config
    monkeypatch.setattr(
        mtlshare.config, "load_config", lambda path, overrides: load(path, [*small, *overrides])
    )
    (tmp_path / "recipes").symlink_to(ROOT / "recipes")
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {"__name__": "docstring"}
    exec(compile(code, "mtlshare/__init__.py", "exec"), scope)
    summary = scope["summary"]
    assert isinstance(summary, dict) and list(summary["new_tasks"]) == ["t3"], summary
    assert summary["existing_unchanged"] is True
