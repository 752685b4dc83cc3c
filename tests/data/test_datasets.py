"""Splits, problems and batch streams: evaluation batches, task selection, ranks' shares."""

from __future__ import annotations

import re

import pytest
import torch

from mtlshare.data.datasets import (
    BatchStream,
    PackedSplit,
    Problem,
    Split,
    TaskData,
    cat_padded,
    check_split,
    share_of,
)
from mtlshare.errors import DataError
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


def _packed_and_padded(y_float: bool = False) -> tuple[PackedSplit, Split]:
    """Five sequences of lengths 2, 5, 1, 3, 4, held end to end and padded."""
    lengths = torch.tensor([2, 5, 1, 3, 4])
    gen = torch.Generator().manual_seed(0)
    tokens_x = torch.randint(1, 50, (int(lengths.sum()), 3), generator=gen, dtype=torch.int32)
    if y_float:
        tokens_y = torch.randn(int(lengths.sum()), generator=gen)
        tokens_y[[1, 7]] = float("nan")
    else:
        tokens_y = torch.randint(0, 4, (int(lengths.sum()),), generator=gen)
        tokens_y[[1, 7]] = -100
    x = torch.zeros(5, 5, 3, dtype=torch.int32)
    y = torch.full((5, 5), float("nan") if y_float else -100, dtype=tokens_y.dtype)
    start = 0
    for n, length in enumerate(lengths.tolist()):
        x[n, :length] = tokens_x[start : start + length]
        y[n, :length] = tokens_y[start : start + length]
        start += length
    return PackedSplit(tokens_x, tokens_y, lengths), Split(x, y, lengths)


@pytest.mark.parametrize("y_float", [False, True])
def test_a_packed_split_gives_the_padded_splits_batches_to_the_bit(y_float):
    """Held end to end, a split gives the batches the padded layout gives (values, dtype and
    shape), so every trained number stays what it was; it reads as the padded one too."""
    packed, padded = _packed_and_padded(y_float)
    assert len(packed) == len(padded) == 5 and packed.tokens == padded.tokens == 15
    assert packed.rank == padded.rank == 3 and packed.positions == padded.positions == 5
    empty = torch.tensor([], dtype=torch.long)  # a process's empty last slice: (0, 5, 3)
    for idx in (
        torch.tensor([2, 0]),
        torch.tensor([4, 1, 3]),
        torch.tensor([2]),
        slice(1, 4),
        empty,
    ):
        for got, want in zip(packed.take(idx), padded.take(idx), strict=True):
            assert got.dtype == want.dtype and got.shape == want.shape
            assert torch.equal(got, want) or torch.allclose(got, want, equal_nan=True)
        assert packed.observed_in(idx) == padded.observed_in(idx)
    for (xa, ya), (xb, yb) in zip(packed.batches(2), padded.batches(2), strict=True):
        assert torch.equal(xa, xb) and torch.allclose(ya.float(), yb.float(), equal_nan=True)
    assert torch.equal(packed.x, padded.x)
    assert torch.allclose(packed.y.float(), padded.y.float(), equal_nan=True)
    assert packed.take(torch.tensor([2]))[0].shape == (1, 1, 3)  # its own longest, 1


def test_a_packed_split_holds_its_tokens_only_and_says_where_a_position_belongs():
    packed, _ = _packed_and_padded()
    x, y = packed.held()
    assert x.shape == (15, 3) and y.shape == (15,)  # the padded one holds 5 x 5 positions
    assert [packed.row_of(i) for i in (0, 1, 2, 6, 7, 8, 10, 11, 14)] == [
        0, 0, 1, 1, 2, 3, 3, 4, 4,
    ]  # fmt: skip
    other = PackedSplit(x, torch.zeros(15, dtype=torch.long), packed.lengths)
    assert packed.same_inputs(other) and other.same_inputs(packed)
    assert not packed.same_inputs(PackedSplit(x.clone(), y, packed.lengths))
    assert not packed.same_inputs(Split(packed.x, packed.y, packed.lengths))
    with pytest.raises(AttributeError, match="set tokens_x"):
        packed.x = torch.zeros(1)
    assert (
        repr(packed) == "PackedSplit(5 sequences, 15 positions, inputs (3,) torch.int32 a position)"
    )


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ((torch.zeros(3, 2), torch.zeros(3), [1, 2]), "lengths is a list"),
        ((torch.zeros(3, 2), torch.zeros(3), torch.tensor([1.0, 2.0])), "one integer per"),
        ((torch.zeros(3, 2), torch.zeros(3), torch.tensor([4, -1])), "a negative length"),
        ((torch.zeros(4, 2), torch.zeros(3), torch.tensor([1, 2])), "tokens_x of shape (4, 2)"),
        ((torch.zeros(3, 2), torch.zeros(2), torch.tensor([1, 2])), "tokens_y of shape (2,)"),
    ],
)
def test_a_packed_split_refuses_tokens_that_its_lengths_do_not_add_up_to(args, said):
    with pytest.raises(DataError, match=re.escape(said)):
        PackedSplit(*args)


def test_a_bad_target_in_a_packed_split_is_named_by_its_sequence_not_its_position():
    """``check_split`` reads the tokens as held; the row it names is the sentence."""
    packed, _ = _packed_and_padded()
    tokens_y = packed.tokens_y.clone()
    tokens_y[11] = 9  # the fifth sentence's first word
    bad = PackedSplit(packed.tokens_x, tokens_y, packed.lengths)
    task = Task("t", "classification", 4, "accuracy")
    with pytest.raises(DataError, match=r"class id 9 in row 4 is outside 0\.\.3"):
        check_split(TaskData(task, bad, packed, packed), "train", 3, True)
    floats, _ = _packed_and_padded(y_float=True)
    tokens_y = floats.tokens_y.clone()
    tokens_y[8] = float("inf")  # the fourth sentence's
    bad = PackedSplit(floats.tokens_x, tokens_y, floats.lengths)
    task = Task("t", "regression", 1, "mse")
    with pytest.raises(DataError, match="an infinite target in row 3"):
        check_split(TaskData(task, bad, floats, floats), "train", 3, True)


def test_a_packed_split_pads_uint8_targets_as_missing_and_counts_them_as_it_holds_them():
    """uint8 class ids are held as longs: padded in uint8, -100 was 156, a class."""
    split = PackedSplit(
        torch.zeros(4, 2), torch.tensor([0, 1, 2, 1], dtype=torch.uint8), torch.tensor([3, 1])
    )
    assert split.take(slice(None))[1].tolist() == [[0, 1, 2], [1, -100, -100]]
    assert split.observed_in(torch.tensor([0, 1])) == 4
    split.tokens_y[0] = -100  # an edit in place is what it counts next (nothing is cached)
    assert split.observed_in(torch.tensor([0, 1])) == 3
    empty = PackedSplit(torch.zeros(0, 2), torch.zeros(0), torch.tensor([0, 0]))
    assert empty.observed_in(torch.tensor([0, 1])) == 0  # sentences of no token


def test_packed_splits_are_equal_by_their_tokens_and_share_inputs_by_int32_lengths_too():
    packed, padded = _packed_and_padded()
    copy = PackedSplit(packed.tokens_x.clone(), packed.tokens_y.clone(), packed.lengths.clone())
    assert packed == packed and packed == copy and packed != padded
    assert packed != PackedSplit(packed.tokens_x, packed.tokens_y + 1, packed.lengths)
    assert packed != PackedSplit(packed.tokens_x, packed.tokens_y, packed.lengths, x_fill=1)
    as_float = PackedSplit(packed.tokens_x.float(), packed.tokens_y, packed.lengths)
    assert packed != as_float  # the same values in another dtype
    lengths = packed.lengths.int()  # made long by each split: two tensors, the same lengths
    a = PackedSplit(packed.tokens_x, packed.tokens_y, lengths)
    b = PackedSplit(packed.tokens_x, torch.zeros(15, dtype=torch.long), lengths)
    assert a.same_inputs(b) and a.lengths.dtype == torch.long
    regrouped = PackedSplit(packed.tokens_x, packed.tokens_y, torch.tensor([5, 2, 1, 3, 4]))
    assert not packed.same_inputs(regrouped)  # the same tokens cut into other sentences


def test_a_rank_mismatch_in_a_packed_split_says_the_rank_of_its_batches():
    packed, _ = _packed_and_padded()
    rows = Split(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    task = Task("t", "classification", 4, "accuracy")
    said = "inputs of shape (15, 3), 3-d batches held as tokens, but the task's training inputs"
    with pytest.raises(DataError, match=re.escape(said)):
        check_split(TaskData(task, rows, packed, rows), "dev", 3, True)


def test_a_packed_split_pads_inputs_with_its_fill_and_names_a_bad_inputs_sentence():
    packed, _ = _packed_and_padded()
    filled = PackedSplit(packed.tokens_x, packed.tokens_y, packed.lengths, x_fill=-1)
    x, _ = filled.take(torch.tensor([2, 1]))
    assert x[0, 1:].eq(-1).all() and not x[1].eq(-1).any()  # 1 token padded to 5, and 5
    features = packed.tokens_x.float()
    features[9, 2] = float("nan")  # the fourth sentence's second token
    bad = PackedSplit(features, packed.tokens_y, packed.lengths)
    task = Task("t", "classification", 4, "accuracy")
    with pytest.raises(DataError, match="a NaN or infinite input in row 3"):
        check_split(TaskData(task, bad, bad, bad), "train", 3, False)


def test_rows_hold_one_position_and_padded_splits_of_other_lengths_are_not_the_same_inputs():
    assert Split(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)).positions == 1
    x, y = torch.zeros(5, 5, 3), torch.zeros(5, 5, dtype=torch.long)
    a, b = Split(x, y, torch.tensor([2, 5, 1, 3, 4])), Split(x, y, torch.tensor([5, 5, 1, 3, 4]))
    assert not a.same_inputs(b) and a.same_inputs(Split(x, y, a.lengths))


def test_a_network_is_built_for_float_sequences_held_as_tokens_by_the_rank_of_their_batches():
    """A BiLSTM reads (N, T, d): a PackedSplit's tokens are 2-d, its batches 3-d."""
    from mtlshare.app.build import build_model
    from mtlshare.config import from_dict

    lengths = torch.tensor([2, 5, 1])
    split = PackedSplit(torch.randn(8, 3), torch.randint(0, 2, (8,)), lengths)
    task = Task("t", "classification", 2, "accuracy")
    problem = Problem([TaskData(task, split, split, split)], input_dim=3)
    cfg = from_dict(
        {
            "data": {"source": "custom"},
            "trunk": {"kind": "lstm", "hidden": [4]},
            "mechanism": "hard",
        }
    )
    model = build_model(cfg, problem)
    assert model(split.take(torch.tensor([0, 1]))[0], "t").shape[:2] == (2, 5)
