"""Trunk layers: passthrough features reach the top unchanged, and a convolution's 'same'
padding is zeros (no step reads across the sequence's ends)."""

from __future__ import annotations

import pytest
import torch

from mtlshare.models.trunks import TimeConv, TrunkConfig, backbone_from_config
from mtlshare.sharing.base import run_layers


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_passthrough_features_reach_the_last_layer_first_and_unchanged(kind):
    torch.manual_seed(0)
    backbone = backbone_from_config(TrunkConfig(kind=kind, hidden=[4, 4], passthrough=2), 6)
    x = torch.randn(3, 5, 6) if kind == "conv" else torch.randn(3, 6)
    with torch.no_grad():
        out = run_layers(backbone.layers(), x)
    assert out.shape[-1] == 2 + 4 == backbone.out_dims[-1]
    assert torch.equal(out[..., :2], x[..., :2])


def test_a_convolution_pads_with_zeros_at_the_ends():
    torch.manual_seed(0)
    conv = TimeConv(3, 4, kernel=3, activation="identity", dropout=0.0)
    x = torch.randn(2, 5, 3)
    changed = x.clone()
    changed[:, -1] += 1.0  # the last step reaches back one step (kernel 3), never to step 0
    with torch.no_grad():
        before, after = conv(x), conv(changed)
    assert torch.equal(after[:, :3], before[:, :3])
    assert not torch.equal(after[:, 3:], before[:, 3:])


def test_passthrough_must_leave_an_input_feature_to_the_layers():
    from mtlshare.errors import ConfigError

    assert backbone_from_config(TrunkConfig(hidden=[4], passthrough=5), 6).out_dims == [9]
    for k in (6, -1):
        message = rf"^trunk\.passthrough: must be in \[0, 5\] for 6 input features, got {k}$"
        with pytest.raises(ConfigError, match=message):
            backbone_from_config(TrunkConfig(hidden=[4], passthrough=k), 6)
