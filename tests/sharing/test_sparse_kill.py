"""A sparse-sharing mask search killed with SIGKILL mid-way resumes at the next round and ends
with the same masks and parameters as an uninterrupted run (real subprocesses, real CLI)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parents[2]
ARGS = [
    str(ROOT / "recipes" / "demo" / "demo.toml"),
    "mechanism=sparse",
    "sparse.alpha=0.1",
    "sparse.target_density=0.05",
    "sparse.round_steps=25",
    "sparse.warmup_steps=10",
    "train.epochs=2",
    "data.n_dev=200",
    "data.n_test=200",
    "--quiet",
]


def cli(out: Path) -> list[str]:
    return [sys.executable, "-m", "mtlshare", "run", *ARGS, "--out", str(out)]


def candidates(out: Path) -> int:
    """Rounds saved so far: the progress's, and those of each task it names finished."""
    for name in ("search", "search.old"):
        try:
            meta = json.loads((out / "checkpoint" / name / "meta.json").read_text())
            parts = [
                json.loads((out / "checkpoint" / f"search-task-{t}" / "meta.json").read_text())
                for t in meta.get("done", [])
            ]
        except (OSError, ValueError):
            continue
        return len(meta.get("candidates", [])) + sum(len(p["candidates"]) for p in parts)
    return 0


# 1.5 minutes of a long search; tests/sharing/test_sparse.py cuts the search at every point
# in memory, and tests/training/test_reliability.py kills real training processes
@pytest.mark.slow
def test_sigkill_during_the_search_then_resume_gives_the_same_masks(tmp_path):
    full = tmp_path / "full"
    subprocess.run(cli(full), check=True, capture_output=True, timeout=300)

    cut = tmp_path / "cut"
    proc = subprocess.Popen(cli(cut), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while candidates(cut) < 35 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed mid-search"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = candidates(cut)
    assert 35 <= killed_at < 2 * 30, killed_at  # inside the second task's search
    assert not (cut / "results.json").exists()

    subprocess.run([*cli(cut), "--resume"], check=True, capture_output=True, timeout=300)
    a = json.loads((full / "results.json").read_text())
    b = json.loads((cut / "results.json").read_text())
    assert a["sparse"]["rounds"] == b["sparse"]["rounds"]
    assert a["sparse"]["density"] == b["sparse"]["density"]
    assert a["tasks"] == b["tasks"]
    ta = load_file(str(full / "checkpoint" / "best" / "tensors.safetensors"))
    tb = load_file(str(cut / "checkpoint" / "best" / "tensors.safetensors"))
    assert ta.keys() == tb.keys()
    for k in ta:
        assert ta[k].equal(tb[k]), k
