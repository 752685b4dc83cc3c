"""Cost of a sparse-sharing training step against a hard-sharing step.

Same base network, same batches, same optimizer, one process. Three base networks:
``--trunk tagger`` (the default) is the Sparse Sharing paper's tagger: 100-d word embeddings and
a character CNN (30 filters, width 3) into a BiLSTM with hidden size 200, on real CoNLL-2003
sentences (``--conll``, default ``../shared/data/conll2003/train.txt``) in batches of 10, with
POS, chunking and NER as the three tasks and the BiLSTM weights as the prunable ones;
``--trunk lstm`` is that BiLSTM alone on random 130-d inputs (10 sentences of 15 tokens);
``--trunk mlp`` is an MLP (default 256 -> 512 x 3, batch 64). Hard and sparse steps are timed in
alternating blocks so that machine noise hits both alike, and the median block times are
compared. Also prints the memory of the masks: bytes per prunable parameter per task in memory
(bool tensors) and on disk (bit-packed in the state dict), and the working buffers the sparse
step keeps (independent of the number of tasks). The last line is
``ratio=<sparse step time / hard step time>``.

Usage: python benchmarks/sparse_step.py [--json PATH] [--trunk lstm|mlp] [--batch B] ...
Targets (issue 3): ratio <= 1.15; masks <= 1 byte per parameter per task in memory, <= 1 bit
on disk.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from pathlib import Path

import torch

import mtlshare.sharing  # noqa: F401
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.models.tagger import TaggerInputConfig, WordCharEncoder
from mtlshare.models.trunks import Backbone, TrunkConfig, backbone_from_config
from mtlshare.sharing.hard import HardConfig, HardSharing
from mtlshare.sharing.sparse import SparseConfig, SparseSharing
from mtlshare.sharing.sparse.report import PACKED_PREFIX
from mtlshare.tasks.task import Task
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig
from mtlshare.training.settings import TrainConfig

DEFAULTS = {"hidden": (200, 512), "layers": (1, 3), "input": (130, 256), "batch": (10, 64)}
CONLL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2003" / "train.txt"
TAGGER_TASKS = ("pos", "chunk", "ner")


def three_task_parser(
    description: str, steps: int, blocks: int, what: str
) -> argparse.ArgumentParser:
    """The arguments of the benchmarks that time steps on ``build``'s three tagger (or MLP)
    tasks: the trunk and its sizes, the timed blocks and their steps; parse with
    ``parse_three_tasks``."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--json", help="also write the measurements to this JSON file")
    ap.add_argument("--trunk", choices=["tagger", "mlp"], default="tagger")
    ap.add_argument("--conll", default=str(CONLL), help="CoNLL-2003 training file (tagger)")
    ap.add_argument("--hidden", type=int, help="default: 200 (tagger), 512 (mlp)")
    ap.add_argument("--layers", type=int, help="default: 1 (tagger), 3 (mlp)")
    ap.add_argument("--input", type=int, help="input width (mlp), default 256")
    ap.add_argument("--batch", type=int, help="default: 10 (tagger), 64 (mlp)")
    ap.add_argument("--steps", type=int, default=steps, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=blocks, help=f"timed blocks per {what}")
    return ap


def parse_three_tasks(ap: argparse.ArgumentParser) -> argparse.Namespace:
    """``ap``'s arguments with the trunk's defaults filled in, and what ``build`` needs besides
    (three tasks, sentences of 15 tokens)."""
    args = ap.parse_args()
    for key, (for_tagger, for_mlp) in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, for_mlp if args.trunk == "mlp" else for_tagger)
    args.tasks = 3
    args.length = 15
    return args


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="also write the measurements to this JSON file")
    ap.add_argument("--trunk", choices=["tagger", "lstm", "mlp"], default="tagger")
    ap.add_argument("--conll", default=str(CONLL), help="CoNLL-2003 training file (tagger)")
    ap.add_argument("--hidden", type=int, help="default: 200 (lstm), 512 (mlp)")
    ap.add_argument("--layers", type=int, help="default: 1 (lstm), 3 (mlp)")
    ap.add_argument("--input", type=int, help="default: 130 (lstm), 256 (mlp)")
    ap.add_argument("--batch", type=int, help="default: 10 (lstm), 64 (mlp)")
    ap.add_argument("--length", type=int, default=15, help="tokens per sentence (lstm)")
    ap.add_argument("--tasks", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=25, help="timed blocks per mechanism")
    ap.add_argument("--density", type=float, default=0.5, help="density of the random masks")
    ap.add_argument("--optimizer", default="sgd", choices=["sgd", "adam"])
    args = ap.parse_args()
    for key, (for_lstm, for_mlp) in DEFAULTS.items():
        if getattr(args, key) is None:
            setattr(args, key, for_mlp if args.trunk == "mlp" else for_lstm)
    return args


def conll_batches(path: str, batch: int, count: int) -> tuple[list, dict[str, int], dict]:
    """``count`` shuffled batches of ``batch`` sentences from a CoNLL-2003 file (word POS chunk
    NER per line): x (batch, time, 1 + max_chars) word and char ids, one (batch, time) target per
    task, -100 on padding; plus vocabulary sizes and the number of tags per task."""
    if not Path(path).is_file():
        raise SystemExit(f"sparse_step.py: {path}: no such file (pass --conll, or --trunk lstm)")
    sents, cur = [], []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        cols = line.split()
        if not cols or cols[0] == "-DOCSTART-":
            if cur:
                sents.append(cur)
                cur = []
            continue
        cur.append(cols)
    if cur:
        sents.append(cur)
    words: dict[str, int] = {}
    chars: dict[str, int] = {}
    tags: list[dict[str, int]] = [{}, {}, {}]
    for sent in sents:
        for tok in sent:
            words.setdefault(tok[0].lower(), len(words) + 1)
            for c in tok[0]:
                chars.setdefault(c, len(chars) + 1)
            for k in range(3):
                tags[k].setdefault(tok[k + 1], len(tags[k]))
    random.Random(0).shuffle(sents)
    out = []
    for i in range(count):
        group = sents[i * batch : (i + 1) * batch]
        t_max = max(map(len, group))
        c_max = max(len(tok[0]) for s in group for tok in s)
        x = torch.zeros(len(group), t_max, 1 + c_max, dtype=torch.long)
        ys = [torch.full((len(group), t_max), -100) for _ in range(3)]
        for a, sent in enumerate(group):
            for b, tok in enumerate(sent):
                x[a, b, 0] = words[tok[0].lower()]
                for k, c in enumerate(tok[0]):
                    x[a, b, 1 + k] = chars[c]
                for k in range(3):
                    ys[k][a, b] = tags[k][tok[k + 1]]
        out.append((x, ys))
    sizes = {"n_words": len(words) + 1, "n_chars": len(chars) + 1}
    return out, sizes, {name: len(t) for name, t in zip(TAGGER_TASKS, tags, strict=True)}


Batch = tuple[str, torch.Tensor, torch.Tensor]


def build(args: argparse.Namespace) -> tuple[list[Task], Problem, Backbone, list[Batch]]:
    """The tasks, a problem to construct trainers with, the base network's backbone and the
    timed batches (tasks taken in turn) for ``args.trunk``; benchmarks/overhead.py uses it too."""
    lstm = args.trunk == "lstm"
    torch.manual_seed(0)
    n = args.batch * args.steps
    if args.trunk == "tagger":
        tagged, sizes, n_tags = conll_batches(args.conll, args.batch, args.steps)
        tasks = [
            Task(k, "classification", n_tags[k], "accuracy") for k in TAGGER_TASKS[: args.tasks]
        ]
        x0, y0 = tagged[0]
        data = [TaskData(t, *(Split(x0, y0[i]) for _ in range(3))) for i, t in enumerate(tasks)]
        enc = TaggerInputConfig(**sizes)
        backbone = backbone_from_config(
            TrunkConfig(kind="lstm", hidden=[args.hidden] * args.layers),
            enc.out_dim,
            lambda: WordCharEncoder(enc),
        )
    else:
        tasks = [Task(f"t{i}", "regression") for i in range(args.tasks)]
        data = []
        for t in tasks:
            x = torch.randn(n, args.length, args.input) if lstm else torch.randn(n, args.input)
            y = x[..., 0]
            data.append(TaskData(t, Split(x, y), Split(x[:8], y[:8]), Split(x[:8], y[:8])))
        backbone = backbone_from_config(
            TrunkConfig(kind=args.trunk, hidden=[args.hidden] * args.layers), args.input
        )
    problem = Problem(data, backbone.input_dim)
    if args.trunk == "tagger":
        batches = [
            (tasks[i % len(tasks)].name, x, ys[i % len(tasks)]) for i, (x, ys) in enumerate(tagged)
        ]
    else:
        batches = [
            (tasks[i % len(tasks)].name, d.train.x[sl], d.train.y[sl])
            for i in range(args.steps)
            for d in [data[i % len(tasks)]]
            for sl in [slice(i * args.batch, (i + 1) * args.batch)]
        ]

    return tasks, problem, backbone, batches


def main() -> None:
    args = parse()
    tasks, problem, backbone, batches = build(args)
    torch.manual_seed(1)
    hard = HardSharing(backbone, tasks, HardConfig())
    torch.manual_seed(1)
    sparse = SparseSharing(backbone, tasks, SparseConfig())
    g = torch.Generator().manual_seed(2)
    sparse.set_masks(
        {
            t.name: {
                k: torch.rand(p.shape, generator=g) < args.density
                for k, p in sparse._prunable().items()
            }
            for t in tasks
        }
    )

    cfg = TrainConfig(batch_size=args.batch, optimizer=args.optimizer, lr=1e-3)
    runners = {}
    for name, model in (("hard", hard), ("sparse", sparse)):
        w = LossWeighting([t.name for t in tasks], WeightingConfig())
        tr = Trainer(model, problem, cfg, w, seed=0, progress=False)
        runners[name] = (tr, tr.make_optimizer())

    def block(name: str) -> float:
        tr, opt = runners[name]
        t0 = time.perf_counter()
        for task, x, y in batches:
            tr.step(opt, task, x, y)
        return (time.perf_counter() - t0) / len(batches)

    for name in runners:  # warm-up
        block(name)
    times: dict[str, list[float]] = {"hard": [], "sparse": []}
    for _ in range(args.blocks):
        for name in ("hard", "sparse"):
            times[name].append(block(name))
    med = {k: statistics.median(v) for k, v in times.items()}

    prunable = sum(p.numel() for p in sparse._prunable().values())
    in_memory = sum(
        m.element_size() * m.numel() for masks in sparse.masks.values() for m in masks.values()
    )
    buffers = sparse.buffer_bytes()
    state = sparse.state_dict()
    on_disk = sum(
        v.numel() * v.element_size()
        for k, v in state.items()
        if k.startswith(PACKED_PREFIX) and k != PACKED_PREFIX + "meta"
    )
    mem_bytes = in_memory / (prunable * args.tasks)
    disk_bits = 8 * on_disk / (prunable * args.tasks)
    ratio = med["sparse"] / med["hard"]
    shape = "x".join([str(args.hidden)] * args.layers)
    what = {
        "tagger": f"CNN-BiLSTM tagger (words+chars->{shape}), batches of {args.batch} CoNLL "
        "sentences",
        "lstm": f"BiLSTM {args.input}->{shape}, batch {args.batch} x {args.length} tokens",
        "mlp": f"MLP {args.input}->{shape}, batch {args.batch}",
    }[args.trunk]
    result = {
        "config": vars(args),
        "base_network": what,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "hard_ms_per_step": 1e3 * med["hard"],
        "sparse_ms_per_step": 1e3 * med["sparse"],
        "prunable_parameters": prunable,
        "mask_bytes_per_param_per_task_in_memory": mem_bytes,
        "mask_bits_per_param_per_task_on_disk": disk_bits,
        "working_buffer_bytes_per_param": buffers / prunable,
        "ratio": ratio,
    }
    print(
        f"base network: {what}, {prunable} prunable weights, {args.tasks} tasks, "
        f"{args.optimizer}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"hard step   {1e3 * med['hard']:.3f} ms (median of {args.blocks} blocks)")
    print(f"sparse step {1e3 * med['sparse']:.3f} ms")
    print(
        f"masks: {mem_bytes:.3f} bytes per parameter per task in memory, {disk_bits:.3f} bits "
        f"on disk; step buffers: {buffers / prunable:.1f} bytes per parameter, for all tasks"
    )
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    print(f"ratio={ratio:.3f}")


if __name__ == "__main__":
    main()
