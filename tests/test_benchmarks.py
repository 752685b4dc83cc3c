"""The benchmarks still run (a tiny setting each; what they measure is read from their output,
not checked here: speed targets are not timed tests) and print their ratio last."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("script", "args"),
    [
        ("overhead.py", ["--trunk", "mlp", "--blocks", "2", "--steps", "3", "--hidden", "64"]),
        ("sparse_step.py", ["--trunk", "mlp", "--blocks", "2", "--steps", "3", "--hidden", "64"]),
        ("joint_step.py", ["--trunk", "mlp", "--blocks", "2", "--steps", "2", "--hidden", "64"]),
        ("task_scaling.py", ["--tasks", "2,3", "--mechanisms", "hard", "--repeat", "1"]),
        ("table_embed.py", ["--rows", "400", "--users", "30"]),
        pytest.param(
            "corpus_scale.py",
            ["--copies", "1,2", "--sentences", "60"],
            marks=pytest.mark.skipif(
                not (ROOT.parent / "shared" / "data" / "conll2003" / "train.txt").is_file(),
                reason="reads ../shared/data/conll2003",
            ),
        ),
    ],
)
def test_benchmark_runs_and_prints_its_ratio(tmp_path, script, args):
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("ratio=") and float(last.split("=")[1]) > 0
    assert out.is_file()
