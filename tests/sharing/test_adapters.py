"""Bottleneck adapters: identity at initialisation, padding kept, a frozen trunk that does not
move, per-task costs in the parameter counts, and bad settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mtlshare.errors import ConfigError
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.sharing.adapters import Adapter, AdaptersConfig, AdapterSharing
from mtlshare.sharing.hard import HardConfig, HardSharing
from mtlshare.tasks.task import Task

TASKS = [Task("a", "regression"), Task("b", "classification", 3, "accuracy")]


def backbone(kind="mlp", hidden=(8, 6)):
    return backbone_from_config(TrunkConfig(kind=kind, hidden=list(hidden)), 5)


def test_an_adapter_is_the_identity_until_trained_and_keeps_padding():
    torch.manual_seed(0)
    adapter = Adapter(6, 2, "relu")
    x = torch.randn(4, 6)
    assert torch.equal(adapter(x), x)
    with torch.no_grad():
        adapter.up.weight.normal_()
        adapter.up.bias.normal_()
    seq = torch.randn(2, 3, 6)
    seq[1, 2] = 0.0  # a padded step
    out = adapter(seq)
    assert not torch.equal(out[0], seq[0])
    assert torch.equal(out[1, 2], torch.zeros(6))


def test_untrained_adapters_compute_what_hard_sharing_computes():
    torch.manual_seed(0)
    adapters = AdapterSharing(backbone(), TASKS, AdaptersConfig())
    hard = HardSharing(backbone(), TASKS, HardConfig())
    state = {k: v for k, v in adapters.state_dict().items() if not k.startswith("adapters.")}
    hard.load_state_dict({k.replace("layers.", "shared."): v for k, v in state.items()})
    x = torch.randn(7, 5)
    for task in ("a", "b"):
        assert torch.equal(adapters(x, task), hard(x, task))


def test_a_frozen_trunk_stays_put_while_adapters_and_heads_learn():
    torch.manual_seed(0)
    model = AdapterSharing(backbone("lstm"), TASKS, AdaptersConfig(freeze_trunk=True, after=[2]))
    trunk = {n: p.detach().clone() for n, p in model.layers.named_parameters()}
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    x = torch.randn(4, 3, 5)
    for _ in range(3):
        opt.zero_grad()
        model(x, "a").pow(2).mean().backward()
        opt.step()
    for n, p in model.layers.named_parameters():
        assert torch.equal(p, trunk[n]) and not p.requires_grad
    assert model.adapters["a"]["2"].up.weight.abs().sum() > 0
    assert torch.equal(model.adapters["b"]["2"].up.weight, torch.zeros(12, 16))  # task b never ran


def test_a_frozen_trunk_freezes_the_input_encoder_too():
    b = backbone_from_config(TrunkConfig(hidden=[8, 6]), 5, build_stem=lambda: nn.Linear(5, 5))
    model = AdapterSharing(b, TASKS, AdaptersConfig(freeze_trunk=True))
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert all(p.requires_grad for t in ("a", "b") for p in model.task_parameters(t))


def test_counts_show_each_tasks_adapter_cost():
    model = AdapterSharing(backbone(hidden=(8, 6)), TASKS, AdaptersConfig(bottleneck=3))
    per_adapter = {1: 8 * 3 + 3 + 3 * 8 + 8, 2: 6 * 3 + 3 + 3 * 6 + 6}
    report = model.report()["adapters"]
    assert report["params_per_task"] == {
        "a": sum(per_adapter.values()),
        "b": sum(per_adapter.values()),
    }
    counts = model.param_counts()
    hard = HardSharing(backbone(hidden=(8, 6)), TASKS, HardConfig()).param_counts()
    assert counts["counted"] == hard["counted"] + 2 * sum(per_adapter.values())
    assert counts["task_specific"] - hard["task_specific"] == 2 * sum(per_adapter.values())


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (AdaptersConfig(after=[3]), "adapters.after"),
        (AdaptersConfig(bottleneck=0), "adapters.bottleneck"),
        (AdaptersConfig(activation="swish"), "adapters.activation"),
    ],
)
def test_bad_settings_name_the_key(cfg, message):
    with pytest.raises(ConfigError, match=message):
        AdapterSharing(backbone(), TASKS, cfg)
