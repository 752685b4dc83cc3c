"""Training, resuming and predicting on a real GPU, end to end. Every test here needs a GPU
that torch sees, and skips where there is none (CI's machine has none); they ran on a lent
machine with one NVIDIA H200 (docs/results/gpu.md says what they showed). The CPU-side
stand-ins of the same paths (a fake GPU generator, inputs that note where they are sent) run
everywhere: tests/training/test_rng_states.py, tests/app/test_predict_device.py.

What only a GPU shows: a run with ``train.device = "cuda"`` trains every mechanism family
(hard, sparse with its masked steps and search, joint steps with a torchjd aggregator, a
BiLSTM tagger with a CRF head); its checkpoint loads on the CPU and on the GPU and predicts the
same there; a cut GPU run resumes to the uninterrupted one bit for bit (the GPU's random
state is in the checkpoint); torchrun with more processes than GPUs is one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from mtlshare.app.predict import evaluate, load_run
from mtlshare.app.run import run
from mtlshare.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"
QUICK = ROOT / "recipes" / "conll2003" / "quick.toml"
CONLL = ROOT.parent / "shared" / "data" / "conll2003"

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no GPU here")

SMALL = ["train.epochs=4", "train.patience=0", "data.n_dev=64", "data.n_test=256"]
SPARSE = ["mechanism=sparse", "sparse.warmup_epochs=1", "sparse.round_epochs=1"]
SPARSE += ["sparse.target_density=0.5", "sparse.alpha=0.5"]
JOINT = ["train.schedule=joint", "weighting.kind=aggregator", "weighting.aggregator=upgrad"]


def gpu_run(out: Path, *extra: str) -> dict:
    cfg = load_config(DEMO, [*SMALL, "train.device=cuda", *extra])
    return run(cfg, out, progress=False)


def test_every_checkpoint_tensor_is_saved_from_the_cpu_and_loads_on_either_device(tmp_path):
    results = gpu_run(tmp_path / "run")
    assert all(r["test"] == r["test"] for r in results["tasks"].values())  # not NaN
    on_cpu = load_run(tmp_path / "run")
    on_gpu = load_run(tmp_path / "run", device="cuda")
    assert on_cpu.device.type == "cpu" and on_gpu.device.type == "cuda"
    assert all(p.device.type == "cuda" for p in on_gpu.model.parameters())
    x = torch.randn(300, on_cpu.spec["input_dim"])
    for task in ("t1", "t2"):
        cpu, gpu = on_cpu.predict(task, x), on_gpu.predict(task, x)
        assert cpu.device.type == "cpu" and gpu.device.type == "cpu"  # outputs come back
        torch.testing.assert_close(gpu, cpu, rtol=1e-4, atol=1e-5)


def test_evaluate_on_the_gpu_gives_the_scores_the_gpu_run_reported(tmp_path):
    results = gpu_run(tmp_path / "run")
    scores = evaluate(tmp_path / "run", device="cuda")
    for task, r in results["tasks"].items():
        assert scores[task]["test"] == pytest.approx(r["test"], rel=1e-6)


def test_a_cut_gpu_run_resumes_to_the_uninterrupted_one_bit_for_bit(tmp_path):
    """Dropout draws from the GPU's generator: its state must come back from the checkpoint."""
    extra = ["trunk.dropout=0.3"]
    full = gpu_run(tmp_path / "full", *extra)
    again = gpu_run(tmp_path / "again", *extra)
    assert again["tasks"] == full["tasks"]  # the GPU's kernels repeat here, or nothing could
    cut = tmp_path / "cut"
    gpu_run(cut, *extra, "train.epochs=2")
    config = (cut / "config.toml").read_text().replace("epochs = 2", "epochs = 4")
    (cut / "config.toml").write_text(config)
    (cut / "results.json").unlink()
    cfg = load_config(DEMO, [*SMALL, "train.device=cuda", *extra])
    resumed = run(cfg, cut, progress=False, resume=True)
    assert resumed["tasks"] == full["tasks"]
    assert resumed["best_epoch"] == full["best_epoch"]


def test_sparse_sharing_searches_and_trains_its_masks_on_the_gpu(tmp_path):
    results = gpu_run(tmp_path / "run", *SPARSE)
    densities = results["sparse"]["density"]
    assert set(densities) == {"t1", "t2"}
    for task in ("t1", "t2"):  # one pruning round; the mask with the best dev score is kept
        rounds = [r for r in results["sparse"]["rounds"] if r["task"] == task]
        assert [r["density"] for r in rounds] == [1.0, 0.5]
        assert densities[task] == max(rounds, key=lambda r: r["dev_score"])["density"]
    on_gpu, on_cpu = load_run(tmp_path / "run", device="cuda"), load_run(tmp_path / "run")
    x = torch.randn(50, on_cpu.spec["input_dim"])
    for task in ("t1", "t2"):
        torch.testing.assert_close(
            on_gpu.predict(task, x), on_cpu.predict(task, x), rtol=1e-4, atol=1e-5
        )


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_a_masked_step_on_the_gpu_leaves_every_weight_outside_the_mask_bit_identical(optimizer):
    from mtlshare.models.trunks import TrunkConfig, backbone_from_config
    from mtlshare.sharing.sparse import SparseConfig, SparseSharing
    from mtlshare.tasks.task import Task

    torch.manual_seed(0)
    trunk = backbone_from_config(TrunkConfig(kind="mlp", hidden=[32, 32]), 8)
    tasks = [Task("a", "regression"), Task("b", "regression")]
    model = SparseSharing(trunk, tasks, SparseConfig()).cuda()
    g = torch.Generator().manual_seed(1)
    masks = {
        t: {
            n: (torch.rand(p.shape, generator=g) < 0.5).cuda() for n, p in model._prunable().items()
        }
        for t in model.task_names
    }
    model.set_masks(masks)
    make = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    opt = make[optimizer](model.parameters(), lr=0.1, weight_decay=0.01)
    model.train()
    for _ in range(3):
        model.restore_weights()  # the whole weights: a training pass sets aside what is outside
        before = {n: p.detach().clone() for n, p in model._prunable().items()}
        opt.zero_grad()
        model(torch.randn(16, 8, device="cuda"), "a").pow(2).mean().backward()
        model.before_optimizer_step("a")
        opt.step()
        model.after_optimizer_step("a")
        model.restore_weights()
        for n, p in model._prunable().items():
            outside = ~masks["a"][n]
            assert torch.equal(p[outside], before[n][outside]), n
            assert not torch.equal(p[~outside], before[n][~outside]), n


def test_a_joint_step_with_a_torchjd_aggregator_trains_on_the_gpu(tmp_path):
    results = gpu_run(tmp_path / "run", *JOINT)
    weights = results["loss_weights"]
    assert set(weights) == {"t1", "t2"} and all(w > 0 for w in weights.values())
    assert all(r["test"] == r["test"] for r in results["tasks"].values())


@pytest.mark.skipif(
    not (CONLL / "train.txt").is_file(), reason=f"the CoNLL-2003 files are not at {CONLL}"
)
def test_a_crf_tagger_trained_on_the_gpu_tags_as_it_does_on_the_cpu(tmp_path, first_sentences):
    test = first_sentences(CONLL / "dev.txt", 100, tmp_path / "dev100.txt")
    cfg = load_config(
        QUICK,
        [
            f"data.train={CONLL / 'train.txt'}",
            f"data.dev={test}",
            f"data.test={test}",
            "data.train_sentences=1000",
            "data.unseen_tags=map",
            "data.tasks.ner.head=crf",
            "train.epochs=2",
            "train.device=cuda",
        ],
    )
    results = run(cfg, tmp_path / "run", progress=False)
    assert results["tasks"]["ner"]["test"] > 0.0
    on_cpu, on_gpu = load_run(tmp_path / "run"), load_run(tmp_path / "run", device="cuda")
    x, lengths = on_cpu.codec.encode(on_cpu.codec.read(test, "conll"))
    for task in ("pos", "ner"):
        cpu, gpu = on_cpu.predict(task, x, lengths), on_gpu.predict(task, x, lengths)
        real = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        agree = float((cpu == gpu)[real].float().mean())
        assert agree >= 0.999, f"{task}: the CPU and the GPU agree on {agree:.4%} of tokens"


def test_torchrun_with_more_processes_than_gpus_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "o"
    processes = torch.cuda.device_count() + 1
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={processes}", "-m", "mtlshare", "run", str(DEMO), *SMALL]
    cmd += ["train.device=cuda", "--quiet", "--out", str(out)]
    paths = [str(ROOT / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("mtlshare: error:")]
    assert lines and all("each process needs a GPU of its own" in line for line in lines)
    assert not out.exists()
    assert "Duplicate GPU" not in proc.stderr  # refused before nccl was asked


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_bidirectional_layer_on_the_gpu_hands_cudnn_its_weights_without_a_copy(cell, monkeypatch):
    """Each direction runs on its own: its four weights must be one buffer of their own (from
    its start, as cuDNN reads it), or cuDNN copies them at every call and warns. Outputs are
    the CPU's within float error (cuDNN's TF32 off)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    from mtlshare.models.trunks import Recurrent

    torch.manual_seed(0)
    cpu = Recurrent(cell, 8, 16, True, 0.0)
    gpu = Recurrent(cell, 8, 16, True, 0.0)
    gpu.load_state_dict(cpu.state_dict())
    gpu = gpu.to("cuda")
    for suffix in ("", "_reverse"):
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
        four = [getattr(gpu.rnn, f"{n}_l0{suffix}") for n in names]
        start = four[0].untyped_storage().data_ptr()
        assert four[0].data_ptr() == start, suffix
        assert all(w.untyped_storage().data_ptr() == start for w in four), suffix
    padded = torch.randn(4, 7, 8)
    padded[0, 5:] = 0.0  # one sentence ends in padding
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for x in (padded, torch.randn(4, 7, 8)):  # padded, then not
            out = gpu(x.to("cuda"))
            out.sum().backward()
            torch.testing.assert_close(out.detach().cpu(), cpu(x).detach(), rtol=1e-4, atol=1e-5)
    assert not [w for w in seen if "contiguous chunk" in str(w.message)]
