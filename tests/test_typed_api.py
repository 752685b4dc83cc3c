"""The package ships ``py.typed``: code written as its docs show type-checks under
``mypy --strict`` without errors the library causes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")

# a data source of one's own, as README's "A mechanism or a data source of your own" says: the
# decorator must hand the function back with its own signature, not as Callable[..., Any]
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
    blocks = re.findall(r"```(?:python|py)\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 4
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
