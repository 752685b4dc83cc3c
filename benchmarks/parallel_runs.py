"""Throughput of ``mtlshare compare --jobs 2`` against ``--jobs 1`` on the tagger, same work.

The same comparison runs twice from scratch: the CoNLL-2003 quick profile's tagger (hard
sharing, POS, chunking and NER) on a slice of the training sentences, one short epoch, seeds
0-3 (four independent runs). ``--jobs 1`` runs them in turn with every core's torch threads;
``--jobs 2`` runs two at a time, each worker with half the cores (``compare`` divides them).
Printed: each setting's wall time, training tokens per second summed over the runs, and the
largest difference between the two settings' test scores (a run's result does not depend on
beside whom it ran; with other torch thread counts float sums may differ in the last digits).
The last line is ``ratio=<jobs-1 wall time / jobs-2 wall time>`` (above 1: two jobs finish the same
work sooner).

Usage: python benchmarks/parallel_runs.py [--sentences 1500] [--seeds 4] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "conll2003" / "quick.toml"


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sentences", type=int, default=1500, help="training sentences per run")
    ap.add_argument("--seeds", type=int, default=4, help="independent runs (seeds 0..N-1)")
    ap.add_argument("--json", help="also write the measurements to this JSON file")
    return ap.parse_args()


def compare(
    jobs: int, sentences: int, seeds: int, out: Path
) -> tuple[float, dict[int, dict[str, float]], float]:
    """(wall seconds, test scores by seed, summed training tokens per second)."""
    seed_list = ", ".join(str(s) for s in range(seeds))
    cmd = [
        sys.executable, "-m", "mtlshare", "compare", str(RECIPE),
        "compare.mechanisms=[\"hard\"]", f"compare.seeds=[{seed_list}]",
        f"data.train_sentences={sentences}", "data.dev_sentences=300",
        "data.test_sentences=300", "train.epochs=1", "train.patience=0",
        "--out", str(out), "--jobs", str(jobs), "--quiet",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {proc.stderr[-800:]}")
    scores: dict[int, dict[str, float]] = {}
    rate = 0.0
    for seed in range(seeds):
        run = out / "hard" / f"seed-{seed}"
        results = json.loads((run / "results.json").read_text())
        scores[seed] = {task: r["test"] for task, r in results["tasks"].items()}
        epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        rate += float(epochs[-1].get("tokens_per_second", 0.0))
    return wall, scores, rate


def main() -> None:
    args = parse()
    measured: dict[int, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            wall, scores, rate = compare(jobs, args.sentences, args.seeds, Path(tmp) / f"j{jobs}")
            measured[jobs] = {"wall_seconds": wall, "test": scores, "tokens_per_second": rate}
            print(f"--jobs {jobs}: {wall:.1f} s for {args.seeds} runs", file=sys.stderr)
    gap = max(
        abs(measured[1]["test"][seed][task] - measured[2]["test"][seed][task])
        for seed in measured[1]["test"]
        for task in measured[1]["test"][seed]
    )
    print("| jobs | wall s | runs | training tokens/s, summed |")
    print("|---:|---:|---:|---:|")
    for jobs, m in measured.items():
        rate = m["tokens_per_second"]
        print(f"| {jobs} | {m['wall_seconds']:.1f} | {args.seeds} | {rate:,.0f} |")
    print(f"largest test-score difference between the settings: {gap:.2g}")
    print(f"{os.cpu_count()} cores; {platform.machine()}; {args.sentences} sentences per run")
    ratio = measured[1]["wall_seconds"] / measured[2]["wall_seconds"]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"measured": measured, "ratio": ratio}, f, indent=2)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
