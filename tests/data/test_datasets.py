"""Splits, problems and batch streams: evaluation batches, task selection, ranks' shares."""

from __future__ import annotations

import pytest
import torch

from mtlshare.data.datasets import BatchStream, Problem, Split, TaskData, cat_padded, share_of
from mtlshare.tasks.task import Task


def _split(n: int) -> Split:
    return Split(
        torch.arange(n, dtype=torch.float32)[:, None], torch.arange(n, dtype=torch.float32)
    )


def test_evaluation_batches_cover_every_row_once_in_order():
    for n, size in ((5, 2), (4, 2), (1, 3)):
        xs = [x for x, _ in _split(n).batches(size)]
        assert torch.cat(xs)[:, 0].tolist() == list(range(n))


def test_select_keeps_the_asked_order():
    tasks = [
        TaskData(Task(n, "regression", 1, "mse"), _split(2), _split(2), _split(2)) for n in "abc"
    ]
    picked = Problem(tasks, 1).select(["c", "a"])
    assert [td.task.name for td in picked.tasks] == ["c", "a"]


def test_ranks_split_each_global_batch_and_their_shares_weight_its_mean():
    def draws(rank: int, world: int, batch: int, steps: int):
        stream = BatchStream(_split(5), batch, torch.Generator().manual_seed(7), rank, world)
        return [stream.next_index() for _ in range(steps)]

    alone = draws(0, 1, 4, 2)
    r0, r1 = draws(0, 2, 2, 2), draws(1, 2, 2, 2)
    for (g, _), (a, sa), (b, sb) in zip(alone, r0, r1, strict=True):
        assert torch.cat([a, b]).tolist() == g.tolist()
        assert sa + sb == 2.0  # the shares of a global batch sum to the world size
    assert [s for _, s in r0] == [1.0, 2.0] and [s for _, s in r1] == [1.0, 0.0]


def test_shares_weight_observed_targets_so_the_ranks_mean_is_the_global_batch_mean():
    """Every loss is a mean over observed targets: sentences of other lengths and missing
    labels give the ranks' slices other weights than their rows (by rows, two processes tagging
    a 1-token and a 3-token sentence averaged their means, 0.5/0.5 instead of 0.25/0.75)."""
    tokens = torch.tensor([[1, -100, -100], [1, 1, 1], [1, 1, -100], [1, -100, -100]])
    values = torch.tensor(
        [[1.0, float("nan")], [2.0, 3.0], [float("nan"), float("nan")], [4.0, 5.0]]
    )
    for y in (tokens, values):
        split = Split(torch.zeros(4, 3, 1), y)
        losses = torch.arange(1.0, 13.0).reshape(4, 3)[:, : y.shape[1]]  # a loss per target
        kept = ~torch.isnan(y) if y.is_floating_point() else y != -100
        for world, batch in ((2, 2), (4, 1), (3, 1)):
            streams = [
                BatchStream(split, batch, torch.Generator().manual_seed(3), rank, world)
                for rank in range(world)
            ]
            for _ in range(3):
                drawn = [s.next_rows() for s in streams]
                whole = drawn[0][1]
                mean = losses[whole][kept[whole]].mean()
                shares = [share_of(split, idx, whole, world) for idx, _ in drawn]
                parts = [
                    losses[idx][kept[idx]].mean() * share if kept[idx].any() else torch.tensor(0.0)
                    for (idx, _), share in zip(drawn, shares, strict=True)
                ]
                assert torch.isclose(sum(parts) / world, mean)
                assert sum(shares) == pytest.approx(world) or not kept[whole].any()
    alone = BatchStream(Split(torch.zeros(4, 3, 1), tokens), 4, torch.Generator())
    assert alone.next_index()[1] == 1.0  # one process: 1.0, nothing counted
    # a global batch with no observed target: every rank's loss is zero, its share 1.0
    split = Split(torch.zeros(4, 3, 1), tokens.masked_fill(tokens == 1, -100))
    idx, whole = torch.tensor([0, 1]), torch.tensor([0, 1, 2, 3])
    assert share_of(split, idx, whole, 2) == 1.0
    assert share_of(Split(torch.zeros(4, 3, 1), tokens), idx, whole, 2) == 2 * 4 / 7


def test_sequence_batches_are_cut_to_their_longest_and_padded_back_when_joined():
    x = torch.ones(3, 4, 2)
    y = torch.ones(3, 4, dtype=torch.long)
    split = Split(x, y, lengths=torch.tensor([1, 3, 2]))
    (xa, ya), (xb, yb) = split.batches(2)
    assert xa.shape == (2, 3, 2) and ya.shape == (2, 3) and xb.shape == (1, 2, 2)
    joined = cat_padded([ya, yb])
    assert joined.shape == (3, 3) and joined[2].tolist() == [1, 1, -100]
    floats = cat_padded([xa[:, :, 0], xb[:, :, 0]])
    assert torch.isnan(floats[2, 2]) and not torch.isnan(floats[:2]).any()
    same = cat_padded([torch.zeros(2, 3), torch.zeros(1, 3)])
    assert same.shape == (3, 3) and not torch.isnan(same).any()
    assert cat_padded([torch.zeros(2), torch.ones(1)]).tolist() == [0.0, 0.0, 1.0]
