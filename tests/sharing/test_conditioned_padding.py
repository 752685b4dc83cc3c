"""Task-descriptor concatenation on sequence trunks keeps padding: a padded step (all zeros)
gets no task vector, so a recurrent layer still sees where each sentence ends and a sentence is
labelled the same whichever sentences share its batch."""

from __future__ import annotations

import pytest
import torch

from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.sharing.conditioned import ConditionedConfig, ConditionedSharing
from mtlshare.tasks.task import Task

TASKS = [Task("t1", "regression"), Task("t2", "classification", 3, "accuracy")]
LENGTHS = [5, 2, 4, 1]


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("layer", [0, 1])
@pytest.mark.parametrize(
    "descriptors", [{}, {"t1": [0.5, -1.0], "t2": [2.0, 0.25]}], ids=["one_hot", "metadata"]
)
def test_a_padded_sentence_gets_what_it_gets_alone(kind, bidirectional, layer, descriptors):
    torch.manual_seed(0)
    trunk = TrunkConfig(kind=kind, hidden=[6, 6], bidirectional=bidirectional)
    cfg = ConditionedConfig(layer=layer, mode="concat", descriptors=descriptors)
    model = ConditionedSharing(backbone_from_config(trunk, 3), TASKS, cfg).eval()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(LENGTHS), max(LENGTHS), 3, generator=g)
    for i, n in enumerate(LENGTHS):
        x[i, n:] = 0.0
    with torch.no_grad():
        for task in ("t1", "t2"):
            batched = model(x, task)
            for i, n in enumerate(LENGTHS):
                alone = model(x[i : i + 1, :n], task)[0]
                torch.testing.assert_close(batched[i, :n], alone, atol=1e-5, rtol=1e-5)


def test_unpadded_sequences_and_rows_get_the_task_vector_everywhere():
    torch.manual_seed(0)
    trunk = TrunkConfig(kind="lstm", hidden=[4])
    model = ConditionedSharing(backbone_from_config(trunk, 3), TASKS, ConditionedConfig())
    h = torch.randn(2, 3, 3)
    joined = model._condition(h, "t2")
    assert torch.equal(joined[..., 3:], torch.tensor([0.0, 1.0]).expand(2, 3, 2))
