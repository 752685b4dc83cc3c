"""The loop's ``StructureTrainer``: signed dev scores, training steps, and search checkpoints
that carry the loop's step counter."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mtlshare.errors import CheckpointError
from mtlshare.training.distributed import Dist
from mtlshare.training.folder import RunFolder
from mtlshare.training.structure import LoopStructureTrainer


def _loop(folder=None, step=0):
    calls = []
    weighting = torch.nn.Module()
    weighting.register_buffer("draw", torch.tensor([0.25, 0.75]))
    return SimpleNamespace(
        weighting=weighting,
        progress=False,
        global_step=step,
        folder=folder,
        dist=Dist(),
        device=torch.device("cpu"),
        calls=calls,
        make_optimizer=lambda: "opt",
        run_steps=lambda opt, names, steps, epoch: calls.append((opt, names, steps, epoch)),
        score=lambda task, split: {"acc": 0.75, "mse": 2.0}[task],
        higher_is_better=lambda task: task == "acc",
        steps_per_epoch=lambda names: 3 * len(names),
    )


def test_dev_scores_are_signed_so_that_higher_is_better_and_steps_reach_the_loop():
    loop = _loop(step=6)
    st = LoopStructureTrainer(loop, resume=False)
    assert st.dev_score("acc") == 0.75 and st.dev_score("mse") == -2.0
    st.train_steps(["acc"], 4)
    assert loop.calls == [("opt", ["acc"], 4, -7)]  # an epoch number no epoch has
    assert st.steps_per_epoch(["acc", "mse"]) == 6


def test_a_search_checkpoint_puts_back_the_step_counter_even_zero(tmp_path):
    loop = _loop(RunFolder(tmp_path), step=0)
    st = LoopStructureTrainer(loop, resume=True)
    st.save("search", {"w": torch.ones(2)}, {"round": 1})
    loop.global_step = 9
    tensors, meta = st.load("search", restore=False)
    assert list(tensors) == ["w"] and meta == {"round": 1} and loop.global_step == 9
    loop.weighting.draw.fill_(0.5)
    st.load("search")
    assert loop.global_step == 0
    # the weighting's state is put back with the counter, and kept out of the search's tensors
    assert loop.weighting.draw.tolist() == [0.25, 0.75]
    assert LoopStructureTrainer(loop, resume=False).load("search") is None
    loop.folder.save_checkpoint(
        "bad", {"rng.torch": torch.get_rng_state()}, {"loop.global_step": -1}
    )
    with pytest.raises(CheckpointError, match=r"'loop\.global_step' is -1"):
        st.load("bad")
