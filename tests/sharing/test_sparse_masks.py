"""Known-answer tests for mtlshare.sharing.sparse.masks, including agreement with
torch.nn.utils.prune."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

from mtlshare.errors import CheckpointError, ConfigError
from mtlshare.sharing.sparse.masks import (
    check_kept,
    density,
    density_within,
    expected_density,
    global_magnitude_prune,
    json_tensor,
    layer_density,
    ones_like_params,
    overlap_ratio,
    pack_mask,
    pack_masks,
    pairwise_overlap,
    tensor_json,
    unpack_mask,
    unpack_masks,
)


def _modules() -> dict[str, nn.Module]:
    torch.manual_seed(0)
    return {
        "a": nn.Linear(7, 5),  # weight (5, 7)
        "b": nn.Conv1d(3, 4, kernel_size=3),  # weight (4, 3, 3)
        "c": nn.Linear(6, 1),  # weight (1, 6)
    }


def _params(mods: dict[str, nn.Module]) -> dict[str, torch.Tensor]:
    return {f"{k}.weight": m.weight.detach().clone() for k, m in mods.items()}


@pytest.mark.parametrize("amounts", [[0.2] * 6, [0.5, 0.3, 0.5, 0.1, 0.45], [0.37, 0.9, 0.5]])
def test_global_prune_matches_torch_global_unstructured(amounts):
    mods = _modules()
    params = _params(mods)
    masks = ones_like_params(params)
    for amount in amounts:
        prune.global_unstructured(
            [(m, "weight") for m in mods.values()],
            pruning_method=prune.L1Unstructured,
            amount=amount,
        )
        masks = global_magnitude_prune(params, masks, amount)
        for k, m in mods.items():
            assert torch.equal(masks[f"{k}.weight"], m.weight_mask.bool()), (k, amount)


@pytest.mark.parametrize(
    ("n", "amount", "expected_pruned"), [(5, 0.5, 2), (7, 0.5, 4), (3, 0.5, 2)]
)
def test_rounding_is_half_to_even_like_torch(n, amount, expected_pruned):
    params = {"w": torch.arange(1.0, n + 1.0)}
    masks = global_magnitude_prune(params, ones_like_params(params), amount)
    assert int((~masks["w"]).sum()) == expected_pruned
    lin = nn.Linear(n, 1, bias=False)
    prune.global_unstructured([(lin, "weight")], pruning_method=prune.L1Unstructured, amount=amount)
    assert int((lin.weight_mask == 0).sum()) == expected_pruned


def test_global_ranking_is_across_tensors():
    params = {"small": torch.tensor([0.1, 0.2, 0.3]), "big": torch.tensor([5.0, 6.0, 7.0])}
    masks = global_magnitude_prune(params, ones_like_params(params), 0.5)
    assert masks["small"].tolist() == [False, False, False]
    assert masks["big"].tolist() == [True, True, True]


def test_amount_is_relative_to_kept_and_pruned_stays_pruned():
    torch.manual_seed(1)
    params = {"w": torch.randn(10, 10), "v": torch.randn(20)}
    masks = ones_like_params(params)
    for _ in range(4):
        kept_before = sum(int(m.sum()) for m in masks.values())
        new = global_magnitude_prune(params, masks, 0.25)
        kept_after = sum(int(m.sum()) for m in new.values())
        assert kept_before - kept_after == round(0.25 * kept_before)
        for name in params:
            assert not (new[name] & ~masks[name]).any()  # nothing revived
        masks = new


def test_already_pruned_large_entries_stay_pruned():
    params = {"w": torch.tensor([100.0, 1.0, 2.0, 3.0, 4.0])}
    masks = {"w": torch.tensor([False, True, True, True, True])}
    new = global_magnitude_prune(params, masks, 0.5)
    assert new["w"].tolist() == [False, False, False, True, True]


def test_inputs_are_not_modified():
    params = {"w": torch.randn(4, 4)}
    masks = ones_like_params(params)
    before = masks["w"].clone()
    new = global_magnitude_prune(params, masks, 0.5)
    assert torch.equal(masks["w"], before)
    assert new["w"].dtype == torch.bool
    assert new["w"].data_ptr() != masks["w"].data_ptr()


def test_ties_broken_by_position():
    params = {"a": torch.ones(3), "b": torch.ones(3)}
    masks = global_magnitude_prune(params, ones_like_params(params), 0.5)
    assert masks["a"].tolist() == [False, False, False]
    assert masks["b"].tolist() == [True, True, True]


@pytest.mark.parametrize("amount", [0, 1, -0.1, 1.5, 0.0, 1.0, float("nan"), True])
def test_bad_amount_raises_config_error(amount):
    params = {"w": torch.randn(3)}
    with pytest.raises(ConfigError):
        global_magnitude_prune(params, ones_like_params(params), amount)


def test_mismatched_masks_raise():
    params = {"w": torch.randn(3)}
    with pytest.raises(ValueError, match="missing"):
        global_magnitude_prune(params, {}, 0.5)
    with pytest.raises(ValueError, match="shape"):
        global_magnitude_prune(params, {"w": torch.ones(4, dtype=torch.bool)}, 0.5)


@pytest.mark.parametrize(("alpha", "rounds"), [(0.2, 5), (0.1, 10), (0.5, 3)])
def test_density_after_rounds_close_to_expected(alpha, rounds):
    params = _params(_modules())
    total = sum(p.numel() for p in params.values())
    masks = ones_like_params(params)
    for _ in range(rounds):
        masks = global_magnitude_prune(params, masks, alpha)
    # Each round rounds its count by at most half an entry, and earlier errors shrink.
    assert abs(density(masks) - expected_density(alpha, rounds)) <= 0.5 * rounds / total


def test_expected_density_values_and_validation():
    assert expected_density(0.2, 0) == 1.0
    assert expected_density(0.5, 3) == 0.125
    with pytest.raises(ConfigError):
        expected_density(1.0, 2)
    with pytest.raises(ConfigError):
        expected_density(0.1, -1)


def test_density_and_layer_density():
    masks = {
        "a": torch.tensor([True, False, True, True]),
        "b": torch.tensor([[False, False], [False, True]]),
    }
    assert density(masks) == 4 / 8
    assert layer_density(masks) == {"a": 0.75, "b": 0.25}
    with pytest.raises(ValueError):
        density({})
    with pytest.raises(ValueError):
        layer_density({"e": torch.ones(0, dtype=torch.bool)})


def test_overlap_ratio_known_answer():
    m1 = {"w": torch.tensor([True, True, True, False])}
    m2 = {"w": torch.tensor([False, True, True, True])}
    assert overlap_ratio([m1, m2]) == 2 / 4
    m3 = {"w": torch.tensor([False, True, False, False])}
    assert overlap_ratio([m1, m2, m3]) == 1 / 4
    assert overlap_ratio([m1]) == 1.0


def test_overlap_ratio_counts_over_all_tensors():
    m1 = {"a": torch.tensor([True, False]), "b": torch.tensor([[True, True]])}
    m2 = {"a": torch.tensor([True, True]), "b": torch.tensor([[False, True]])}
    # intersection: a[0], b[0,1] = 2; union: a[0], a[1], b[0,0], b[0,1] = 4
    assert overlap_ratio([m1, m2]) == 0.5


def test_overlap_ratio_errors():
    empty = {"w": torch.zeros(3, dtype=torch.bool)}
    with pytest.raises(ValueError):
        overlap_ratio([])
    with pytest.raises(ValueError, match="union"):
        overlap_ratio([empty, empty])
    with pytest.raises(ValueError):
        overlap_ratio([empty, {"v": torch.zeros(3, dtype=torch.bool)}])


def test_pairwise_overlap_symmetric_with_unit_diagonal():
    torch.manual_seed(2)
    tasks = {t: {"w": torch.rand(6, 5) > 0.4, "v": torch.rand(7) > 0.4} for t in "xyz"}
    table = pairwise_overlap(tasks)
    assert set(table) == {"x", "y", "z"}
    for a in tasks:
        assert table[a][a] == 1.0
        for b in tasks:
            assert table[a][b] == table[b][a]
            if a != b:
                assert table[a][b] == overlap_ratio([tasks[a], tasks[b]])


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (8,), (3, 5), (2, 3, 4), (), (9,), (2, 0, 3)])
def test_pack_unpack_round_trip(shape):
    torch.manual_seed(3)
    mask = torch.rand(shape) > 0.5
    packed = pack_mask(mask)
    numel = math.prod(shape)
    assert packed.dtype == torch.uint8
    assert packed.shape == ((numel + 7) // 8,)
    out = unpack_mask(packed, shape)
    assert out.dtype == torch.bool
    assert out.shape == mask.shape
    assert torch.equal(out, mask)


@settings(max_examples=50, deadline=None)
@given(bits=st.lists(st.booleans(), max_size=100), split=st.integers(1, 5))
def test_pack_unpack_property(bits, split):
    mask = torch.tensor(bits, dtype=torch.bool)
    shape = (split, len(bits) // split) if len(bits) % split == 0 else (len(bits),)
    mask = mask.reshape(shape)
    packed = pack_mask(mask)
    assert packed.numel() == math.ceil(len(bits) / 8)
    assert torch.equal(unpack_mask(packed, shape), mask)
    assert packed.tolist() == np.packbits(np.array(bits, dtype=bool)).tolist()


def test_pack_mask_of_non_contiguous_tensor():
    mask = (torch.rand(4, 6) > 0.5).t()
    assert torch.equal(unpack_mask(pack_mask(mask), mask.shape), mask)


def test_pack_and_unpack_reject_bad_input():
    with pytest.raises(TypeError):
        pack_mask(torch.ones(3))
    with pytest.raises(ValueError):
        unpack_mask(torch.zeros(2, dtype=torch.uint8), (7,))
    with pytest.raises(ValueError):
        unpack_mask(torch.zeros(1, dtype=torch.int64), (7,))


def _task_masks() -> dict[str, dict[str, torch.Tensor]]:
    torch.manual_seed(4)
    return {
        "ner": {"enc.weight": torch.rand(3, 5) > 0.5, "enc.bias": torch.rand(3) > 0.5},
        "pos": {"enc.weight": torch.rand(3, 5) > 0.5, "enc.bias": torch.rand(3) > 0.5},
    }


def test_pack_masks_round_trip_through_json_and_safetensors(tmp_path):
    masks = _task_masks()
    tensors, meta = pack_masks(masks)
    assert set(tensors) == {"ner/enc.weight", "ner/enc.bias", "pos/enc.weight", "pos/enc.bias"}
    assert tensors["ner/enc.weight"].shape == (2,)
    meta = json.loads(json.dumps(meta))
    safetensors_torch = pytest.importorskip("safetensors.torch")
    path = tmp_path / "masks.safetensors"
    safetensors_torch.save_file(tensors, path, metadata={"masks": json.dumps(meta)})
    out = unpack_masks(safetensors_torch.load_file(path), meta)
    assert set(out) == set(masks)
    for task, task_masks in masks.items():
        assert set(out[task]) == set(task_masks)
        for name, m in task_masks.items():
            assert torch.equal(out[task][name], m)


def test_pack_masks_rejects_slash_in_task_and_unpack_checks_input():
    with pytest.raises(ValueError):
        pack_masks({"a/b": {"w": torch.ones(2, dtype=torch.bool)}})
    tensors, meta = pack_masks(_task_masks())
    del tensors["pos/enc.bias"]
    with pytest.raises(CheckpointError, match="missing"):
        unpack_masks(tensors, meta)
    with pytest.raises(CheckpointError):
        unpack_masks(tensors, {**meta, "version": 99})


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ([1], "metadata is list, not an object"),
        ({"shapes": [1]}, "'shapes' is not {task: {parameter: shape}}"),
        ({"shapes": {"pos": [1]}}, "'shapes' is not {task: {parameter: shape}}"),
        ({"shapes": {"pos": {"enc.bias": 5}}}, "packed mask 'pos/enc.bias'"),
    ],
    ids=["list", "shapes_list", "task_shapes_list", "shape_a_number"],
)
def test_unpack_masks_refuses_metadata_of_another_shape(meta, message):
    """A checkpoint's masks metadata is read from a file: damaged, it was an
    ``AttributeError`` or ``TypeError`` (a traceback from ``mtlshare masks`` and ``predict``)."""
    tensors, good = pack_masks(_task_masks())
    if isinstance(meta, dict):
        meta = {**good, **meta}
    with pytest.raises(CheckpointError, match=re.escape(message)):
        unpack_masks(tensors, meta)


@pytest.mark.parametrize(
    "tensor",
    [
        json_tensor({"a": 1}).float(),
        json_tensor({"a": 1}).reshape(1, -1),
        torch.tensor(list(b"\xff\xfe{"), dtype=torch.uint8),
        torch.tensor(list(b"{nope"), dtype=torch.uint8),
        torch.tensor(list(b"[" * 100_000 + b"]" * 100_000), dtype=torch.uint8),
    ],
    ids=["float", "2d", "not_utf8", "not_json", "nested_deep"],
)
def test_tensor_json_refuses_a_tensor_that_holds_no_json(tensor):
    with pytest.raises(CheckpointError, match="masks' metadata is"):
        tensor_json(tensor)


def test_only_masks_that_keep_no_weight_anywhere_are_refused():
    """A search may prune one task's layer whole; only masks that keep nothing at all (and so
    no overlap ratio) are damaged. No masks (a run before its search) are not."""
    ones, zeros = torch.ones(2, 3, dtype=torch.bool), torch.zeros(2, 3, dtype=torch.bool)
    check_kept({"a": {"w": zeros, "v": ones}, "b": {"w": zeros, "v": zeros}})
    check_kept({})
    with pytest.raises(CheckpointError, match="keep no weight at all"):
        check_kept({"a": {"w": zeros}, "b": {"w": zeros}})


def test_ones_like_params():
    params = {"w": torch.randn(2, 3), "b": torch.randn(0)}
    masks = ones_like_params(params)
    assert masks["w"].dtype == torch.bool
    assert masks["w"].shape == (2, 3)
    assert masks["w"].all()
    assert masks["b"].shape == (0,)


def test_density_within_counts_only_the_domain_s_entries():
    masks = {"w": torch.tensor([True, True, True, False]), "v": torch.tensor([True])}
    domain = {"w": torch.tensor([True, True, False, False]), "v": torch.tensor([False])}
    assert density_within(masks, domain) == 1.0
    assert density_within({"w": masks["w"], "v": torch.tensor([False])}, None) == 0.6
    empty = {"w": torch.zeros(4, dtype=torch.bool), "v": torch.tensor([False])}
    with pytest.raises(ValueError, match=r"^density within an empty domain is undefined$"):
        density_within(masks, empty)


def test_pruning_no_weights_gives_no_masks():
    assert global_magnitude_prune({}, {}, 0.5) == {}
