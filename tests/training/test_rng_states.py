"""The random states a checkpoint keeps for a resumed run to be the run it would have been: the
CPU generator's always, and on a GPU run the GPU generator's too (dropout draws from it there).

This machine may have no GPU: the GPU's generator is replaced by a fake (``torch.cuda``'s
``get_rng_state`` and ``set_rng_state``) and the run's device is ``torch.device("cuda")``, which
can be named without a GPU. A CPU run's checkpoint holds what it always held.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from mtlshare.cli import main
from mtlshare.training import checkpoint as ckpt
from mtlshare.training.distributed import Dist, restore_rng, rng_states
from mtlshare.training.folder import RunFolder
from mtlshare.training.state import LoopCheckpoints, LoopState
from mtlshare.training.structure import LoopStructureTrainer

DEMO = str(Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml")
CPU = torch.device("cpu")
GPU = torch.device("cuda", 0)
STATE = LoopState(epoch=1, global_step=5, history=[{"epoch": 1}])


@pytest.fixture
def fake_gpu(monkeypatch):
    """A GPU generator whose state is ``state``; ``calls`` records each get and set."""
    gpu = SimpleNamespace(state=torch.arange(16, dtype=torch.uint8), calls=[])

    def get_rng_state(device="cuda"):
        gpu.calls.append(("get", torch.device(device)))
        return gpu.state.clone()

    def set_rng_state(new_state, device="cuda"):
        gpu.calls.append(("set", torch.device(device)))
        gpu.state = new_state.clone()

    monkeypatch.setattr(torch.cuda, "get_rng_state", get_rng_state)
    monkeypatch.setattr(torch.cuda, "set_rng_state", set_rng_state)
    return gpu


def test_a_gpu_runs_state_is_saved_and_put_back_beside_the_cpus(fake_gpu):
    saved = rng_states(Dist(), GPU)
    assert set(saved) == {"rng.torch", "rng.cuda"}
    assert torch.equal(saved["rng.cuda"], torch.arange(16, dtype=torch.uint8))
    assert torch.equal(saved["rng.torch"], torch.get_rng_state())
    assert fake_gpu.calls == [("get", GPU)]
    fake_gpu.state = torch.zeros(16, dtype=torch.uint8)  # the GPU draws on after the save
    restore_rng(saved, Dist(), GPU)
    assert fake_gpu.calls[-1] == ("set", GPU)
    assert torch.equal(fake_gpu.state, torch.arange(16, dtype=torch.uint8))
    # under torchrun the process's own GPU is its Dist's device; a CPU run keeps the CPU's only
    assert "rng.cuda" in rng_states(Dist(device=GPU))
    assert list(rng_states(Dist(device=GPU), CPU)) == ["rng.torch"]


def test_without_a_gpu_state_only_the_cpus_is_put_back(fake_gpu):
    """A checkpoint of a CPU run, or saved before GPU states were kept, still resumes on a GPU;
    a GPU run's checkpoint resumed on the CPU leaves the GPU alone."""
    cpu_only = {"rng.torch": torch.get_rng_state()}
    restore_rng(cpu_only, Dist(), GPU)
    restore_rng({**cpu_only, "rng.cuda": torch.ones(16, dtype=torch.uint8)}, Dist(), CPU)
    assert fake_gpu.calls == []


def test_a_cpu_run_saves_only_the_cpu_state(fake_gpu):
    """Guard of unchanged behaviour: the CPU run's states are what they were."""
    saved = rng_states(Dist())
    assert list(saved) == ["rng.torch"]
    assert torch.equal(saved["rng.torch"], torch.get_rng_state())
    assert fake_gpu.calls == []


def _model_and_optimizer():
    torch.manual_seed(0)
    model, weighting = nn.Linear(3, 2), nn.Linear(1, 1)
    optimizer = torch.optim.Adam([*model.parameters(), *weighting.parameters()], lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    return model, weighting, optimizer


def test_the_loops_checkpoint_keeps_the_gpu_state_and_resume_puts_it_back(tmp_path, fake_gpu):
    model, weighting, optimizer = _model_and_optimizer()
    folder = RunFolder(tmp_path)
    saver = LoopCheckpoints(model, weighting, folder, Dist(), GPU)
    saver.save("last", optimizer, STATE.meta())
    tensors = load_file(str(folder.checkpoint_dir("last") / ckpt.TENSORS))
    assert torch.equal(tensors["rng.cuda"], torch.arange(16, dtype=torch.uint8))
    fake_gpu.state = torch.zeros(16, dtype=torch.uint8)
    state = LoopCheckpoints(model, weighting, folder, Dist(), GPU).resume(optimizer, epochs=3)
    assert state is not None and state.global_step == 5
    assert fake_gpu.calls[-1] == ("set", GPU)
    assert torch.equal(fake_gpu.state, torch.arange(16, dtype=torch.uint8))


def test_a_cpu_loop_checkpoint_holds_what_it_always_did(tmp_path, fake_gpu):
    """Guard of unchanged behaviour: a CPU run's ``last`` checkpoint is the model's and the
    weighting's tensors, the optimizer's and the CPU random state, and nothing else; the
    meta is the loop's and the optimizer's."""
    model, weighting, optimizer = _model_and_optimizer()
    folder = RunFolder(tmp_path)
    saver = LoopCheckpoints(model, weighting, folder, Dist())
    rng = torch.get_rng_state()
    saver.save("last", optimizer, STATE.meta())
    tensors, meta = folder.load_checkpoint("last")
    opt_tensors, opt_meta = ckpt.optimizer_to_flat(optimizer.state_dict())
    expected = {**saver.tensors(), **opt_tensors, "rng.torch": rng}
    assert sorted(tensors) == sorted(expected)
    assert all(torch.equal(tensors[k], v) for k, v in expected.items())
    assert meta == json.loads(json.dumps({**STATE.meta(), "optimizer": opt_meta}))
    assert fake_gpu.calls == []


def test_a_cpu_training_runs_checkpoint_keeps_only_the_cpu_state(tmp_path, fake_gpu):
    """Guard of unchanged behaviour, end to end: a trained CPU run's ``last`` checkpoint has
    one random state, the CPU's."""
    args = ["run", DEMO, "train.epochs=1", "data.n_dev=20", "data.n_test=20", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 0
    tensors = load_file(str(tmp_path / "run" / "checkpoint" / "last" / ckpt.TENSORS))
    assert [k for k in tensors if k.startswith("rng")] == ["rng.torch"]
    assert fake_gpu.calls == []


def test_the_structure_searchs_checkpoint_keeps_the_gpu_state(tmp_path, fake_gpu):
    loop = SimpleNamespace(
        progress=False,
        global_step=4,
        folder=RunFolder(tmp_path),
        dist=Dist(),
        device=GPU,
        weighting=torch.nn.Module(),
    )
    st = LoopStructureTrainer(loop, resume=True)
    st.save("search", {"w": torch.ones(2)}, {"round": 1})
    saved = load_file(str(loop.folder.checkpoint_dir("search") / ckpt.TENSORS))
    assert set(saved) == {"w", "rng.torch", "rng.cuda"}
    fake_gpu.state = torch.zeros(16, dtype=torch.uint8)
    tensors, meta = st.load("search")
    assert list(tensors) == ["w"] and meta == {"round": 1}  # the random states are not the search's
    assert fake_gpu.calls[-1] == ("set", GPU)
    assert torch.equal(fake_gpu.state, torch.arange(16, dtype=torch.uint8))
