"""Properties of the sharing maths on drawn inputs: the soft-sharing penalties against slow
references (pairwise distances, numpy's nuclear norm) and their closed forms, cross-stitch's
starting units, and the sparse masks' pruning counts, magnitudes and overlap ratio."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlshare.sharing.cross_stitch import initial_alpha
from mtlshare.sharing.soft import frobenius_penalty, trace_penalty
from mtlshare.sharing.sparse.masks import global_magnitude_prune, overlap_ratio

quick = settings(max_examples=80, deadline=None)
entry = st.floats(-100, 100, allow_nan=False, allow_subnormal=False)


@st.composite
def stacks(draw, max_tasks=5, max_numel=12):
    """(tasks, numel) float64 copies of one weight tensor, and a permutation of the tasks."""
    tasks = draw(st.integers(1, max_tasks))
    numel = draw(st.integers(1, max_numel))
    rows = draw(
        st.lists(st.lists(entry, min_size=numel, max_size=numel), min_size=tasks, max_size=tasks)
    )
    order = draw(st.permutations(range(tasks)))
    return torch.tensor(rows, dtype=torch.float64), list(order)


@quick
@given(stacks())
def test_frobenius_penalty_is_the_sum_of_squared_distances_over_task_pairs(drawn):
    stacked, order = drawn
    pairs = [
        float(((stacked[s] - stacked[t]) ** 2).sum())
        for s, t in itertools.combinations(range(len(stacked)), 2)
    ]
    scale = 1.0 + float((stacked**2).sum())
    got = float(frobenius_penalty(stacked))
    assert got == pytest.approx(math.fsum(pairs), abs=1e-9 * scale)
    assert float(frobenius_penalty(stacked[order])) == pytest.approx(got, abs=1e-9 * scale)
    # a common offset of every copy is no distance between them
    assert float(frobenius_penalty(stacked + 7.5)) == pytest.approx(got, abs=1e-9 * scale)


@quick
@given(stacks())
def test_trace_penalty_is_numpys_nuclear_norm_and_the_diagonals_closed_form(drawn):
    stacked, order = drawn
    got = float(trace_penalty(stacked))
    nuclear = float(np.linalg.norm(stacked.numpy(), "nuc"))
    assert got == pytest.approx(nuclear, rel=1e-9, abs=1e-9)
    assert float(trace_penalty(stacked[order])) == pytest.approx(got, rel=1e-9, abs=1e-9)
    assert float(trace_penalty(-2.0 * stacked)) == pytest.approx(2.0 * got, rel=1e-9, abs=1e-9)
    diagonal = stacked[0]
    expected = float(diagonal.abs().sum())
    assert float(trace_penalty(torch.diag(diagonal))) == pytest.approx(expected, rel=1e-9, abs=1e-9)
    identical = stacked[:1].expand(len(stacked), -1)  # rank one: sqrt(T) |w|
    # no distance between identical copies (but the rounding of their mean)
    assert float(frobenius_penalty(identical)) <= 1e-24 * (1 + float((identical**2).sum()))
    assert float(trace_penalty(identical)) == pytest.approx(
        math.sqrt(len(stacked)) * float(diagonal.norm()), rel=1e-9, abs=1e-9
    )


@quick
@given(st.integers(1, 8), st.floats(0.0, 1.0))
def test_cross_stitch_starts_with_rows_that_sum_to_one_and_self_weight_on_the_diagonal(n, w):
    alpha = initial_alpha(n, w).double()
    assert alpha.shape == (n, n)
    assert torch.allclose(alpha.sum(dim=1), torch.ones(n, dtype=torch.float64), atol=1e-6)
    if n > 1:
        assert torch.allclose(alpha.diagonal(), torch.full((n,), w, dtype=torch.float64), atol=1e-6)
        off = alpha[~torch.eye(n, dtype=torch.bool)]
        assert torch.allclose(off, off[0].expand_as(off))  # the rest shared evenly
        assert (alpha >= 0).all()


@st.composite
def weights_and_masks(draw):
    """2-3 named tensors with magnitudes and a starting mask each."""
    out_w, out_m = {}, {}
    for name in ("a", "b", "c")[: draw(st.integers(1, 3))]:
        n = draw(st.integers(1, 12))
        out_w[name] = torch.tensor(draw(st.lists(entry, min_size=n, max_size=n)))
        out_m[name] = torch.tensor(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    return out_w, out_m


@quick
@given(weights_and_masks(), st.floats(0.01, 0.99))
def test_a_pruning_round_drops_exactly_its_share_of_the_kept_entries_and_the_smallest(
    drawn, amount
):
    params, masks = drawn
    pruned = global_magnitude_prune(params, masks, amount)
    n_kept = sum(int(m.sum()) for m in masks.values())
    assert sum(int(m.sum()) for m in pruned.values()) == n_kept - round(amount * n_kept)
    dropped, kept = [], []
    for name, p in params.items():
        assert not (pruned[name] & ~masks[name]).any()  # a pruned entry stays pruned
        dropped += p[masks[name] & ~pruned[name]].abs().tolist()
        kept += p[pruned[name]].abs().tolist()
    if dropped and kept:
        assert max(dropped) <= min(kept)  # one global ranking by magnitude


def _as_sets(masks):
    return [
        {(n, i) for n, m in mask.items() for i in m.reshape(-1).nonzero().reshape(-1).tolist()}
        for mask in masks
    ]


@quick
@given(st.integers(1, 4), st.lists(st.integers(1, 6), min_size=1, max_size=3), st.data())
def test_the_overlap_ratio_is_intersection_over_union_in_any_order_of_tasks(tasks, sizes, data):
    masks = [
        {
            f"w{k}": torch.tensor(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)))
            for k, n in enumerate(sizes)
        }
        for _ in range(tasks)
    ]
    sets = _as_sets(masks)
    union = set().union(*sets)
    if not union:
        with pytest.raises(ValueError, match="union of the masks is empty"):
            overlap_ratio(masks)
        return
    expected = len(set.intersection(*sets)) / len(union)
    assert overlap_ratio(masks) == expected
    assert overlap_ratio(masks[::-1]) == expected
    if sets[0]:
        assert overlap_ratio([masks[0]]) == 1.0
