"""Memory and time of a table with a column of thousands of categories: one-hot against
``data.embed``.

A CSV is written to a temporary folder: ``--rows`` rows, two numeric features and a ``user``
column of ``--users`` categories; ``spend`` is the user's own level plus noise and the first
feature, ``churn`` whether the user's level is high. The same run (hard sharing, a trunk of
32, ``--epochs`` epochs, one torch thread) is trained twice, each in a process of its own:
``user`` one-hot (an input per category, held dense) and ``user`` as a learned vector of 16
(``data.embed``). Printed per setting: the peak resident memory of the process, its wall time,
the width of the inputs, and the test MAE of ``spend`` and accuracy of ``churn``. The last two
lines are ``time_ratio=<one-hot wall time / embed wall time>`` and ``ratio=<one-hot peak
memory / embed peak memory>`` (above 1: the vectors need less).

Usage: python benchmarks/table_embed.py [--rows 100000] [--users 5000] [--epochs 1] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONFIG = """
mechanism = "hard"
seed = 0
[data]
source = "table"
path = "table.csv"
features = ["x1", "x2"]
categorical = ["user"]
[data.tasks.spend]
kind = "regression"
metric = "mae"
[data.tasks.churn]
kind = "classification"
[trunk]
hidden = [32]
[train]
batch_size = 256
lr = 0.003
threads = 1
"""


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the table")
    ap.add_argument("--users", type=int, default=5_000, help="categories of the user column")
    ap.add_argument("--epochs", type=int, default=1, help="training epochs of each run")
    ap.add_argument("--json", help="also write the measurements to this JSON file")
    return ap.parse_args()


def write_table(path: Path, rows: int, users: int) -> None:
    rng = random.Random(0)
    level = [rng.gauss(0, 1) for _ in range(users)]
    with open(path, "w") as f:
        f.write("x1,x2,user,spend,churn\n")
        for _ in range(rows):
            u, x1, x2 = rng.randrange(users), rng.gauss(0, 1), rng.gauss(0, 1)
            spend = 100 + 30 * level[u] + 5 * x1 + rng.gauss(0, 5)
            churn = "yes" if level[u] + 0.3 * x2 > 0 else "no"
            f.write(f"{x1:.4f},{x2:.4f},u{u},{spend:.2f},{churn}\n")


def train(folder: Path, name: str, epochs: int, extra: list[str]) -> dict[str, Any]:
    """One run in a process of its own: its peak resident memory (MiB), wall time, scores."""
    out = folder / name
    cmd = [
        sys.executable, "-m", "mtlshare", "run", str(folder / "run.toml"), "--out", str(out),
        "--quiet", f"train.epochs={epochs}", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    err = proc.stderr.read().decode() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {err[-800:]}")
    results = json.loads((out / "results.json").read_text())
    spec = json.loads((out / "inference.json").read_text())
    return {
        "peak_mib": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "wall_seconds": wall,
        "input_columns": len(spec["codec"]["features"]),
        "trunk_input": spec["input_dim"],
        "spend_mae": results["tasks"]["spend"]["test"],
        "churn_accuracy": results["tasks"]["churn"]["test"],
    }


def main() -> None:
    args = parse()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        write_table(folder / "table.csv", args.rows, args.users)
        (folder / "run.toml").write_text(CONFIG)
        runs = {
            "one-hot": train(folder, "one-hot", args.epochs, []),
            "embed 16": train(folder, "embed", args.epochs, ["data.embed={user=16}"]),
        }
    print(
        f"{args.rows:,} rows, {args.users:,} users, {args.epochs} epoch(s), one torch thread, "
        f"{platform.processor() or platform.machine()}"
    )
    for name, r in runs.items():
        print(
            f"{name:>9}: peak {r['peak_mib']:,.0f} MiB, {r['wall_seconds']:.1f} s, "
            f"{r['input_columns']:,} input columns (trunk reads {r['trunk_input']:,}), "
            f"spend MAE {r['spend_mae']:.2f}, churn accuracy {r['churn_accuracy']:.4f}"
        )
    hot, emb = runs["one-hot"], runs["embed 16"]
    memory = hot["peak_mib"] / emb["peak_mib"]
    speed = hot["wall_seconds"] / emb["wall_seconds"]
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "runs": runs}, indent=2))
    print(f"time_ratio={speed:.2f}")
    print(f"ratio={memory:.2f}")


if __name__ == "__main__":
    main()
