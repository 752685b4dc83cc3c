"""Shared by every test: the suite writes only under pytest's temporary directories. Neither the
system temp folder nor the repository may gain files from a session (one run used to leave
about 600 ``mtlshare-prop-*`` folders in the system temp directory); the session fails if they
do."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Each pytest-xdist worker (CI runs one per core) keeps to one torch thread, and so do the
    # processes its tests start: two workers with torch's default threads each would fight over
    # both cores and run several times slower (../shared/FACTS.md).
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {".pytest_cache", ".hypothesis", ".ruff_cache", ".mypy_cache", ".venv"}


def pytest_unconfigure() -> None:
    """Each test process (a worker, the controller) exits without a last full garbage collection
    of the millions of objects torch keeps: about a second each, as for ``mtlshare.cli.entry``."""
    gc.freeze()


def _entries(folder: Path, prefix: str = "") -> set[str]:
    return {p.name for p in folder.iterdir() if p.name.startswith(prefix)}


@pytest.fixture(scope="session", autouse=True)
def nothing_left_behind():
    temp = Path(tempfile.gettempdir())
    before_temp, before_repo = _entries(temp, "mtlshare"), _entries(ROOT)
    yield
    left_temp = sorted(_entries(temp, "mtlshare") - before_temp)
    left_repo = sorted(_entries(ROOT) - before_repo - ALLOWED)
    assert not left_temp, f"tests left {len(left_temp)} entries in {temp}: {left_temp[:5]}"
    assert not left_repo, f"tests left files in the repository: {left_repo[:5]}"


def _trained_on_a_gpu(run: Path, copy: Path) -> Path:
    """A copy of the finished CPU run ``run`` whose ``config.toml`` says it trained with
    ``train.device = "cuda"``: what a GPU-trained run looks like to a machine without a GPU."""
    shutil.copytree(run, copy)
    config = copy / "config.toml"
    text = config.read_text()
    assert text.count('device = "cpu"') == 1
    config.write_text(text.replace('device = "cpu"', 'device = "cuda"'))
    return copy


@pytest.fixture(scope="session")
def trained_on_a_gpu() -> Callable[[Path, Path], Path]:
    return _trained_on_a_gpu
