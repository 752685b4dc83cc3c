"""How the cost of every mechanism grows with the number of tasks.

Every registered mechanism (and cross-stitch and PLE with joint steps on tasks that label the
same inputs, ``data.shared_inputs``, where one pass of the streams serves every task)
trains on the synthetic source at 2, 8 and 32 tasks with the same data per task (1,000
training examples, input width 32) and the same schedule (2 epochs of an MLP trunk of two
256-wide layers; sparse sharing's search included, a warm-up epoch and one-epoch rounds of
pruning alpha 0.5 down to 25%). Each run is its own process, so that its peak memory (maximum
resident set size) is its own. Printed per mechanism and number of tasks: training seconds per
task-epoch (the run's ``train_seconds`` over tasks x epochs) and peak memory; then, per
mechanism, the ratio of its per-task cost at the most tasks to that at the fewest. Linear
growth keeps that ratio near 1. Each run is repeated (``--repeat``, 3 by default) and the
fastest kept: a run of 2 tasks lasts about a second, and one busy moment of the machine would
otherwise decide its ratio. The last line is ``ratio=<the worst mechanism's>``.

Usage: python benchmarks/task_scaling.py [--tasks 2,8,32] [--repeat 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"
COMMON = [
    "data.input_dim=32",
    "data.n_train=1000",
    "data.n_dev=100",
    "data.n_test=100",
    "trunk.hidden=[256, 256]",
    "train.epochs=2",
    "train.patience=0",
    "train.batch_size=32",
    "sparse.warmup_epochs=1.0",
    "sparse.round_epochs=1.0",
    "sparse.alpha=0.5",
    "sparse.target_density=0.25",
    "hierarchical.depths={}",
]
# joint steps serve every task with one pass where the tasks read the same rows: MMoE's setting
EXTRA = {
    f"{name}+joint": [f"mechanism={name}", "train.schedule=joint", "data.shared_inputs=true"]
    for name in ("cross_stitch", "ple")
}
# under the alternate schedule a step of one task of these must run every task's stream (the
# cross-stitch units, PLE's shared gate between levels): they are judged with joint steps
JUDGED_JOINT = ("cross_stitch", "ple")


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default="2,8,32", help="comma-separated numbers of tasks")
    ap.add_argument("--mechanisms", default="", help="comma-separated rows (default: all)")
    ap.add_argument("--json", help="also write the measurements to this JSON file")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each run")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each cell; the fastest is kept")
    return ap.parse_args()


def rows() -> dict[str, list[str]]:
    import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
    from mtlshare.registry import MECHANISMS

    out = {name: [f"mechanism={name}"] for name in MECHANISMS.names()}
    out.update(EXTRA)
    return out


def one_run(overrides: list[str], tasks: int, threads: int) -> tuple[float, float]:
    """(train seconds, peak resident MiB) of one run in its own process."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "run"
        cmd = [sys.executable, "-m", "mtlshare", "run", str(DEMO), *COMMON, *overrides]
        cmd += [f"data.n_tasks={tasks}", f"train.threads={threads}", "--out", str(out), "--quiet"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            assert proc.stderr is not None
            raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr.read().decode()[-500:]}")
        seconds = json.loads((out / "results.json").read_text())["train_seconds"]
    return float(seconds), usage.ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    args = parse()
    counts = [int(t) for t in args.tasks.split(",")]
    table = rows()
    if args.mechanisms:
        table = {k: v for k, v in table.items() if k in args.mechanisms.split(",")}
    epochs = 2
    results: dict[str, dict[int, dict[str, float]]] = {}
    for name, overrides in table.items():
        results[name] = {}
        for t in counts:
            runs = [one_run(overrides, t, args.threads) for _ in range(max(1, args.repeat))]
            seconds, mib = min(runs)
            results[name][t] = {
                "train_seconds": seconds,
                "per_task_epoch": seconds / (t * epochs),
                "peak_mib": mib,
            }
            print(f"{name} {t} tasks: {seconds:.2f} s, {mib:.0f} MiB", file=sys.stderr)
    head = " | ".join(f"{t} tasks: s per task-epoch, peak MiB" for t in counts)
    print(f"| mechanism | {head} | ratio {counts[-1]}/{counts[0]} |")
    print("|---|" + "---:|" * (len(counts) + 1))
    ratios = {}
    for name, by in results.items():
        ratios[name] = by[counts[-1]]["per_task_epoch"] / by[counts[0]]["per_task_epoch"]
        cells = [f"{by[t]['per_task_epoch']:.4f}, {by[t]['peak_mib']:.0f}" for t in counts]
        print(f"| {name} | " + " | ".join(cells) + f" | {ratios[name]:.2f} |")
    judged = {
        k: v for k, v in ratios.items() if k not in JUDGED_JOINT or f"{k}+joint" not in ratios
    }
    worst = max(judged, key=lambda k: judged[k])
    unjudged = ", ".join(sorted(set(ratios) - set(judged)))
    note = f" ({unjudged}: under the alternate schedule, shown, not judged)" if unjudged else ""
    print(
        f"torch threads per run {args.threads}; fastest of {args.repeat}; {platform.machine()}; "
        f"worst: {worst}{note}"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"results": results, "ratios": ratios, "tasks": counts}, f, indent=2)
    print(f"ratio={judged[worst]:.3f}")


if __name__ == "__main__":
    main()
