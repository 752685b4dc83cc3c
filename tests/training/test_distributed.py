"""Training under torchrun (DistributedDataParallel over gloo on CPU), with real processes.

2 processes with batch b end where 1 process with batch 2b does; only rank 0 writes; --resume
works under torchrun; a rank that dies ends the job with a non-zero exit and leaves the last
checkpoint whole.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mtlshare.cli import main
from mtlshare.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
COMMON = [
    "train.epochs=2",
    "train.patience=0",
    "data.n_train=100",
    "data.n_dev=64",
    "data.n_test=64",
    "train.optimizer=sgd",
    "train.lr=0.05",
    "--quiet",
]
SPARSE = [
    "mechanism=sparse",
    "sparse.warmup_steps=4",
    "sparse.round_steps=4",
    "sparse.alpha=0.5",
    "sparse.target_density=0.25",
]


def single(out: Path, *args: str) -> None:
    """The one-process reference, in this process (compared within a tolerance)."""
    assert main(["run", DEMO, *COMMON, *args, "--out", str(out)]) == 0


def torchrun_cmd(out: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "mtlshare",
        "run",
        DEMO,
        *COMMON,
        *args,
        "--out",
        str(out),
    ]


def torchrun(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(torchrun_cmd(out, *args), capture_output=True, text=True, timeout=300)


def model_tensors(out: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(str(out / "checkpoint" / "last" / "tensors.safetensors"))
    return {k: v for k, v in tensors.items() if k.startswith("model.")}


def assert_close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], tol: float) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if k.endswith("sparse_masks.meta"):  # JSON: the same masks and rounds, scores within tol
            ma, mb = (json.loads(bytes(t.tolist()).decode()) for t in (a[k], b[k]))
            assert ma["shapes"] == mb["shapes"]
            ra, rb = ma["summary"]["rounds"], mb["summary"]["rounds"]
            assert [r["density"] for r in ra] == [r["density"] for r in rb]
            assert all(
                abs(x["dev_score"] - y["dev_score"]) <= 1e-4 for x, y in zip(ra, rb, strict=True)
            )
        elif a[k].is_floating_point():
            assert torch.allclose(a[k], b[k], atol=tol, rtol=0), (k, (a[k] - b[k]).abs().max())
        else:
            assert torch.equal(a[k], b[k]), k


# the gated mechanisms take the same distributed path as hard sharing (their own layers are
# covered by the contract tests): each costs about 45 s of two processes, so they run as slow;
# so does hard sharing itself, whose path sparse sharing takes with masks on top (and which
# test_resume_under_torchrun runs on two ranks)
SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    "mechanism",
    [
        pytest.param([], marks=SLOW),
        SPARSE,
        pytest.param(["mechanism=mmoe"], marks=SLOW),
        pytest.param(["mechanism=ple"], marks=SLOW),
    ],
    ids=["hard", "sparse", "mmoe", "ple"],
)
def test_two_processes_with_batch_b_equal_one_with_batch_2b(tmp_path, mechanism):
    one, two = tmp_path / "one", tmp_path / "two"
    single(one, "train.batch_size=16", *mechanism)
    proc = torchrun(two, "train.batch_size=8", *mechanism)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_close(model_tensors(one), model_tensors(two), 1e-5)
    results = json.loads((two / "results.json").read_text())
    assert results["processes"] == 2
    # rank 0 alone wrote the metrics: one line per epoch, not one per process
    assert len((two / "metrics.jsonl").read_text().splitlines()) == 2


def test_resume_under_torchrun(tmp_path):
    """Bitwise, with dropout: each rank gets back its own random state (the ranks' streams
    differ once one of them gets an empty last batch)."""
    full, cut = tmp_path / "full", tmp_path / "cut"
    drop = "trunk.dropout=0.2"
    assert torchrun(full, "train.batch_size=8", "train.epochs=4", drop).returncode == 0
    assert torchrun(cut, "train.batch_size=8", drop).returncode == 0  # 2 epochs
    # the saved config must match to resume: rewrite it for 4 epochs, as a longer run would
    cfg = (cut / "config.toml").read_text().replace("epochs = 2", "epochs = 4")
    (cut / "config.toml").write_text(cfg)
    (cut / "results.json").unlink()  # as if cut after epoch 2: a finished run is never retrained
    proc = torchrun(cut, "train.batch_size=8", "train.epochs=4", drop, "--resume")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_close(model_tensors(full), model_tensors(cut), 0.0)


def worker_pids(parent: int) -> list[int]:
    """The torchrun workers: processes whose environment holds LOCAL_RANK."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().split()
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        if b"LOCAL_RANK=1" in env and int(stat[3]) == parent:
            found.append(int(entry.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
def test_a_dying_rank_ends_the_job_and_the_checkpoint_stays_whole(tmp_path):
    out = tmp_path / "run"
    cmd = torchrun_cmd(out, "train.batch_size=8", "train.epochs=400", "data.n_train=400")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint" / "last" / "meta.json").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.05)
    victims = []
    while not victims and time.monotonic() < deadline:
        victims = worker_pids(proc.pid)
    assert victims, "rank 1 not found"
    os.kill(victims[0], signal.SIGKILL)
    code = proc.wait(timeout=120)
    assert code != 0
    tensors, meta = load_checkpoint(out / "checkpoint" / "last")
    assert meta["epoch"] >= 1 and any(k.startswith("model.") for k in tensors)


def test_device_choice():
    from mtlshare.errors import ConfigError
    from mtlshare.training.distributed import Dist, resolve_device
    from mtlshare.training.settings import TrainConfig

    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    assert not Dist().enabled and Dist().is_main and Dist().device.type == "cpu"
    with pytest.raises(ConfigError, match=r"train\.device"):
        TrainConfig(device="tpu").validate()


def _gpu_job(monkeypatch, gpus: int) -> list[dict[str, object]]:
    """Two torchrun processes on a machine whose torch sees ``gpus`` GPUs (none is needed: the
    calls that would touch one, or join a group, are noted instead)."""
    import torch.distributed as dist

    for key, value in {"WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    joined: list[dict[str, object]] = []
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kw: joined.append(kw))
    monkeypatch.setattr(dist, "get_rank", lambda: 0)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    return joined


def test_more_gpu_processes_than_gpus_is_one_line_before_any_process_joins(monkeypatch):
    """nccl refuses two processes on one GPU ("Duplicate GPU detected", seen on a one-GPU H200
    machine), and a local rank past the last GPU has none: every process refuses first."""
    from mtlshare.errors import ConfigError
    from mtlshare.training.distributed import from_environment

    joined = _gpu_job(monkeypatch, gpus=1)
    with pytest.raises(ConfigError) as err:
        from_environment("cuda")
    message = str(err.value)
    assert "torchrun started 2 processes" in message and "sees 1 GPU(s)" in message
    assert "--nproc_per_node=1" in message and "\n" not in message
    assert joined == []


def test_the_refusal_names_the_device_as_given_and_no_process_count_without_gpus():
    from mtlshare.errors import ConfigError
    from mtlshare.training.distributed import gpus_needed

    gpus_needed(2, 2, "auto")  # as many: nothing to say
    with pytest.raises(ConfigError, match=r"train\.device = 'auto'.*nproc_per_node=1 at most"):
        gpus_needed(3, 1, "auto")
    with pytest.raises(ConfigError) as err:
        gpus_needed(2, 0)
    assert "nproc_per_node" not in str(err.value) and "sees 0 GPU(s)" in str(err.value)


def test_as_many_gpus_as_processes_join_over_nccl_each_on_its_own(monkeypatch):
    from mtlshare.training.distributed import Dist, from_environment

    joined = _gpu_job(monkeypatch, gpus=2)
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert from_environment("cuda") == Dist(0, 2, torch.device("cuda", 1))
    assert joined == [{"backend": "nccl"}]


def test_mtlshare_run_with_more_gpu_processes_than_gpus_writes_nothing(
    monkeypatch, tmp_path, capsys
):
    joined = _gpu_job(monkeypatch, gpus=1)
    out = tmp_path / "o"
    assert main(["run", DEMO, *COMMON, "train.device=cuda", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "each process needs a GPU of its own" in err
    assert not out.exists() and joined == []


def test_torch_threads_sets_the_count_inside_and_puts_it_back_even_on_error():
    from mtlshare.training.distributed import torch_threads

    outer = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
        with pytest.raises(RuntimeError), torch_threads(1):
            raise RuntimeError("boom")
        assert torch.get_num_threads() == 2
        with torch_threads(0):
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(outer)


@pytest.mark.parametrize(
    "weighting",
    [
        ["weighting.kind=fixed"],
        ["weighting.kind=aggregator", "weighting.aggregator=upgrad"],
        ["weighting.kind=dwa", "train.epochs=4"],
        ["weighting.kind=gradnorm"],
    ],
    ids=["summed", "aggregated", "dwa", "gradnorm"],
)
def test_joint_steps_with_an_uneven_last_batch_equal_one_process(tmp_path, weighting):
    """100 rows in global batches of 2 x 8: rank 1's last slice is empty and counts for
    nothing, rank 0's 4 rows are the whole batch, as they are to one process. DWA weights an
    epoch by the last two epochs' mean losses: those of the global batches (they were rank 0's),
    which differ from one process's from the third epoch on."""
    one, two = tmp_path / "one", tmp_path / "two"
    joint = ["train.schedule=joint", *weighting]
    single(one, "train.batch_size=16", *joint)
    proc = torchrun(two, "train.batch_size=8", *joint)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_close(model_tensors(one), model_tensors(two), 1e-5)


TAGGER = """
[data]
source = "conll"
train = "train.txt"
dev = "train.txt"
test = "train.txt"
columns = ["word", "pos", "chunk"]
word_dim = 6
char_dim = 4
char_filters = 4
dropout = 0.0

[data.tasks.pos]
column = "pos"

[data.tasks.chunk]
column = "chunk"

[trunk]
kind = "lstm"
hidden = [6]

[train]
epochs = 2
patience = 0
optimizer = "sgd"
lr = 0.1
"""


def test_two_taggers_with_batch_b_equal_one_with_batch_2b(tmp_path):
    """Sentences of 1 to 9 words: a process's mean loss is over its tokens, so its share of
    the global batch is its tokens' (by rows, the two processes' updates differed from one
    process's by 0.03); 9 sentences in global batches of 4 leave rank 1 an empty last slice,
    which the character CNN takes (it raised on it)."""
    words = [("the", "DT", "B-NP"), ("cat", "NN", "I-NP"), ("sat", "VBD", "B-VP")]
    sentences = ["\n".join(" ".join(words[i % 3]) for i in range(n)) for n in range(1, 10)]
    (tmp_path / "train.txt").write_text("\n\n".join(sentences) + "\n", encoding="utf-8")
    config = tmp_path / "tagger.toml"
    config.write_text(TAGGER, encoding="utf-8")
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", str(config), "train.batch_size=4", "--quiet", "--out", str(one)]) == 0
    cmd = torchrun_cmd(two, "train.batch_size=2")
    cmd[cmd.index(DEMO)] = str(config)
    cmd = [c for c in cmd if c not in COMMON[:-1]]  # the demo's settings, but --quiet
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_close(model_tensors(one), model_tensors(two), 1e-5)
