"""What a mutation review of the sharing code found untested: multiply-mode descriptors that
start a task's scale a little off 1 are refused too, not only those far off it."""

from __future__ import annotations

import pytest
import torch

from mtlshare.errors import ConfigError
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.sharing.conditioned import ConditionedConfig, ConditionedSharing
from mtlshare.tasks.task import Task

TASKS = [Task("t1", "regression"), Task("t2", "regression"), Task("t3", "regression")]


def test_multiply_descriptors_a_percent_off_one_are_refused():
    """One number per task, nearly equal: least squares starts t3 at 1.0066, not 1."""
    torch.manual_seed(0)
    backbone = backbone_from_config(TrunkConfig(hidden=[4, 4]), 5)
    cfg = ConditionedConfig(
        layer=1, mode="multiply", descriptors={"t1": [1.0], "t2": [1.0], "t3": [1.01]}
    )
    with pytest.raises(ConfigError, match=r"would start at t1 0\.9967, t2 0\.9967, t3 1\.0066"):
        ConditionedSharing(backbone, TASKS, cfg)


def test_a_mask_that_keeps_weights_of_a_layer_this_network_lacks_does_not_fit():
    """Entries of a deeper layer that keep nothing are left out (a task read at a shallower
    depth); entries that keep weights there are another network's mask: None."""
    from mtlshare.sharing.sparse.config import SparseConfig
    from mtlshare.sharing.sparse.model import SparseSharing

    torch.manual_seed(0)
    model = SparseSharing(backbone_from_config(TrunkConfig(hidden=[4]), 5), TASKS, SparseConfig())
    own = {n: torch.ones_like(p, dtype=torch.bool) for n, p in model._prunable().items()}
    deeper = {"9.linear.weight": torch.zeros(4, 4, dtype=torch.bool)}
    fitted = model.fitted_mask({**own, **deeper})
    assert fitted is not None and set(fitted) == set(own)
    deeper["9.linear.weight"][0, 0] = True
    assert model.fitted_mask({**own, **deeper}) is None
