"""Time and memory of reading a tagging corpus as it grows: CoNLL-2003 train copied N times.

Each copy after the first gives about ``--new-words`` of its word types a suffix of its own
(the same word in the same copy always the same suffix), so the vocabulary grows as a real
larger corpus's would. For each ``--copies`` N, a process of its own builds the problem of a
three-task tagger (POS, chunking, NER; CoNLL-2003 dev and test as they are): reading, the
vocabularies and the encoded tensors, nothing trained. ``--long L`` ends each file with one
sentence of L tokens (a file that lost some blank lines): inputs held padded to the longest
sentence grew with it, tokens held end to end do not. Printed per N: the training tokens and
word types, the seconds the build took, the peak resident memory of the process, the bytes of
the training inputs as held and what they would take padded to the longest sentence, and the
mean time to take a training batch of 10 random sentences (2,000 of them). The last two lines
are ``time_ratio=<build seconds per token at the largest N / at the smallest>`` and
``ratio=<peak memory growth / token growth>`` between the smallest and largest N (1: memory
grows as the data; below 1: the fixed cost of torch's import is spread). Numbers from a run
are kept in docs/results/benchmarks.md; what they mean in docs/performance.md.

Usage: python benchmarks/corpus_scale.py [--copies 1,3,10] [--sentences 0] [--long 0]
       [--json PATH] [--data ../shared/data/conll2003]
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
import zlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CONFIG = """
mechanism = "hard"
seed = 0
[data]
source = "conll"
train = "train.txt"
dev = "{data}/dev.txt"
test = "{data}/test.txt"
columns = ["word", "pos", "chunk", "ner"]
unseen_tags = "map"
[data.tasks.pos]
column = "pos"
[data.tasks.chunk]
column = "chunk"
scheme = "iob2"
[data.tasks.ner]
column = "ner"
scheme = "iob2"
encode = "bioes"
[trunk]
kind = "lstm"
hidden = [50]
"""

# run in the child: build the problem, say what it holds
BUILD = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
from mtlshare.app.build import build_problem
from mtlshare.config import load_config
started = time.perf_counter()
problem = build_problem(load_config(sys.argv[1]), sys.argv[2])
seconds = time.perf_counter() - started
train = problem.tasks[0].train
# PYTHONPATH=<an older checkout>/src measures it too: before 2026-12-08 a Split held x padded
x = train.held()[0] if hasattr(train, "held") else train.x
row = x.numel() // max(1, len(x)) if x.dim() == 2 else x[0, 0].numel()
longest = int(train.lengths.max())
import torch
torch.set_num_threads(1)
g = torch.Generator().manual_seed(0)
# clone: a slice of the permutation keeps all of it alive (2,000 of them: 2.2 GB at 10x)
batches = [torch.randperm(len(train), generator=g)[:10].clone() for _ in range(2000)]
started = time.perf_counter()
for rows in batches:
    train.take(rows)
take_us = (time.perf_counter() - started) / len(batches) * 1e6
print(json.dumps({
    "seconds": seconds,
    "tokens": problem.meta["tokens"]["train"],
    "words": problem.meta["words"],
    "input_mib": x.numel() * x.element_size() / 2**20,
    "input_shape": list(x.shape),
    "padded_mib": len(train) * longest * row * x.element_size() / 2**20,
    "take_us": take_us,
}))
"""


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--copies", default="1,3,10", help="sizes, in copies of the training file")
    ap.add_argument("--new-words", type=float, default=0.3, help="word types renamed a copy")
    ap.add_argument("--sentences", type=int, default=0, help="first sentences of train (0: all)")
    ap.add_argument("--long", type=int, default=0, help="tokens of one sentence added (0: none)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "conll2003"))
    ap.add_argument("--json", help="also write the measurements to this JSON file")
    return ap.parse_args()


def sentences(path: Path, limit: int) -> list[list[str]]:
    """The file's sentences as lists of lines (document markers kept as sentences)."""
    blocks = [b.split("\n") for b in path.read_text(encoding="utf-8").split("\n\n") if b.strip()]
    return blocks[:limit] if limit else blocks


def write_copies(
    blocks: list[list[str]], copies: int, new_words: float, out: Path, long: int = 0
) -> None:
    with open(out, "w", encoding="utf-8") as f:
        for k in range(copies):
            for block in blocks:
                for line in block:
                    parts = line.split(" ")
                    word = parts[0]
                    renamed = zlib.crc32(f"{word}|{k}".encode()) % 1000 < new_words * 1000
                    if k and renamed and len(parts) > 1 and word != "-DOCSTART-":
                        parts[0] = f"{word}{'qzjxv'[k % 5]}{k}"
                    f.write(" ".join(parts) + "\n")
                f.write("\n")
        # a sentence of ``long`` tokens: the training file's own lines, their blank lines lost
        lines = [line for block in blocks for line in block if not line.startswith("-DOCSTART-")]
        for i in range(long):
            f.write(lines[i % len(lines)] + "\n")


def build(folder: Path) -> dict[str, Any]:
    """The problem built in a process of its own: what it printed, and its wall time."""
    cmd = [sys.executable, "-c", BUILD, str(folder / "run.toml"), str(folder)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"building the problem failed: {err.decode()[-800:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    result["wall_seconds"] = time.perf_counter() - started
    return result


def peak_of_children() -> float:
    """The largest peak resident memory (MiB) of the children waited for so far."""
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    args = parse()
    sizes = [int(c) for c in args.copies.split(",")]
    data = Path(args.data)
    blocks = sentences(data / "train.txt", args.sentences)
    runs: dict[int, dict[str, Any]] = {}
    for copies in sorted(sizes):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_copies(blocks, copies, args.new_words, folder / "train.txt", args.long)
            (folder / "run.toml").write_text(CONFIG.format(data=data.resolve()))
            before = peak_of_children()
            runs[copies] = build(folder)
            # children's peaks only grow: each size's is its own while sizes rise
            runs[copies]["peak_mib"] = max(peak_of_children(), before)
    print(
        f"CoNLL-2003 train x {args.copies}, {args.new_words:.0%} of word types renamed a copy, "
        + (f"one sentence of {args.long:,} tokens added, " if args.long else "")
        + f"one torch thread, {platform.processor() or platform.machine()}"
    )
    for copies, r in runs.items():
        print(
            f"{copies:>3}x: {r['tokens']:,} tokens, {r['words']:,} word types, built in "
            f"{r['seconds']:.1f} s, peak {r['peak_mib']:,.0f} MiB, training inputs "
            f"{r['input_mib']:,.0f} MiB held {tuple(r['input_shape'])} "
            f"({r['padded_mib']:,.0f} MiB padded to the longest sentence), a batch of 10 "
            f"sentences taken in {r['take_us']:.0f} us"
        )
    small, large = runs[min(runs)], runs[max(runs)]
    growth = large["tokens"] / small["tokens"]
    time_ratio = (large["seconds"] / large["tokens"]) / (small["seconds"] / small["tokens"])
    ratio = (large["peak_mib"] / small["peak_mib"]) / growth
    if args.json:
        Path(args.json).write_text(
            json.dumps({"args": vars(args), "runs": {str(k): v for k, v in runs.items()}}, indent=2)
        )
    print(f"time_ratio={time_ratio:.2f}")
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
