"""Recurrent layers over batches padded at the end with all-zero steps
(``mtlshare.models.trunks.Recurrent`` and ``padded_lengths``): every real step gets what the
sequence would get alone, in outputs and in gradients; padded steps give exact zeros.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from mtlshare.models.trunks import Recurrent, TrunkConfig, backbone_from_config, padded_lengths

IN_DIM = 3
HIDDEN = 5
TIME = 7
LENGTHS = [7, 4, 1, 6, 2]

CELLS = [
    pytest.param(cell, bi, id=f"{cell}-{'bi' if bi else 'uni'}")
    for cell in ("lstm", "gru")
    for bi in (True, False)
]


def padded_batch(lengths: list[int], time: int = TIME, dim: int = IN_DIM, seed: int = 0) -> Tensor:
    """Random steps (never exactly zero), zero after each row's length."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(lengths), time, dim, generator=g)
    for i, n in enumerate(lengths):
        x[i, n:] = 0.0
    return x


def layer(cell: str, bidirectional: bool, seed: int = 0, dropout: float = 0.0) -> Recurrent:
    torch.manual_seed(seed)
    return Recurrent(cell, IN_DIM, HIDDEN, bidirectional, dropout)


# -- padded_lengths ----------------------------------------------------------------------------


def test_padded_lengths_is_none_without_padding():
    assert padded_lengths(torch.randn(3, 5, 2)) is None
    # a zero step inside a sequence is not padding; nor is a last step that is partly zero
    x = torch.randn(3, 5, 2)
    x[0, 2] = 0.0
    x[1, -1, 0] = 0.0
    assert padded_lengths(x) is None


def test_padded_lengths_gives_each_rows_length():
    x = padded_batch(LENGTHS)
    lengths = padded_lengths(x)
    assert lengths is not None
    assert lengths.tolist() == LENGTHS
    assert lengths.dtype == torch.long


def test_padded_lengths_counts_through_inner_zero_steps_and_gives_1_to_empty_rows():
    x = padded_batch([5, 3, 0, 7])
    x[0, 1] = 0.0  # inside the sequence: still counted
    x[3, 6, 1] = 0.0  # a partly zero step is a real step
    lengths = padded_lengths(x)
    assert lengths is not None
    assert lengths.tolist() == [5, 3, 1, 7]


def test_padded_lengths_of_an_all_zero_batch():
    lengths = padded_lengths(torch.zeros(2, 4, 3))
    assert lengths is not None
    assert lengths.tolist() == [1, 1]


# -- one layer: outputs ------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "bidirectional"), CELLS)
def test_padded_batch_gives_each_sequence_its_lone_outputs(cell, bidirectional):
    rec = layer(cell, bidirectional)
    x = padded_batch(LENGTHS)
    with torch.no_grad():
        out = rec(x)
        width = HIDDEN * (2 if bidirectional else 1)
        assert out.shape == (len(LENGTHS), TIME, width)
        for i, n in enumerate(LENGTHS):
            alone = rec(x[i : i + 1, :n])[0]
            assert torch.allclose(out[i, :n], alone, atol=1e-5), (i, n)
            assert torch.equal(out[i, n:], torch.zeros(TIME - n, width)), (i, n)


@pytest.mark.parametrize(("cell", "bidirectional"), CELLS)
def test_lone_sequences_match_the_plain_torch_module(cell, bidirectional):
    """The reference above is the plain nn.LSTM / nn.GRU call; check that independently."""
    rec = layer(cell, bidirectional)
    rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
    plain = rnn_cls(IN_DIM, HIDDEN, batch_first=True, bidirectional=bidirectional)
    plain.load_state_dict(rec.rnn.state_dict())
    x = padded_batch(LENGTHS)
    with torch.no_grad():
        out = rec(x)
        for i, n in enumerate(LENGTHS):
            assert torch.allclose(out[i, :n], plain(x[i : i + 1, :n])[0][0], atol=1e-5)


@pytest.mark.parametrize(("cell", "bidirectional"), CELLS)
def test_an_all_zero_row_is_one_zero_step(cell, bidirectional):
    rec = layer(cell, bidirectional)
    x = padded_batch([5, 0, 3])
    with torch.no_grad():
        out = rec(x)
        step = rec.rnn(torch.zeros(1, 1, IN_DIM))[0][0, 0]
    assert torch.allclose(out[1, 0], step, atol=1e-6)
    assert torch.count_nonzero(out[1, 1:]) == 0


@pytest.mark.parametrize(("cell", "bidirectional"), CELLS)
def test_a_batch_without_padding_takes_the_plain_path(cell, bidirectional, monkeypatch):
    rec = layer(cell, bidirectional)
    rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
    torch.manual_seed(0)
    plain = rnn_cls(IN_DIM, HIDDEN, batch_first=True, bidirectional=bidirectional)
    plain.load_state_dict(rec.rnn.state_dict())
    x = torch.randn(4, TIME, IN_DIM)

    def never(*args: object) -> Tensor:
        raise AssertionError("the padded path ran on a batch without padding")

    monkeypatch.setattr(rec, "_direction", never)
    with torch.no_grad():
        assert torch.equal(rec(x), plain(x)[0])


@pytest.mark.parametrize(("cell", "bidirectional"), CELLS)
def test_padded_steps_stay_zero_under_dropout(cell, bidirectional):
    rec = layer(cell, bidirectional, dropout=0.5).train()
    x = padded_batch(LENGTHS)
    out = rec(x)
    for i, n in enumerate(LENGTHS):
        assert torch.count_nonzero(out[i, n:]) == 0


# -- one layer: gradients ------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "bidirectional"), CELLS)
def test_gradients_equal_those_of_the_lone_sequences(cell, bidirectional):
    rec = layer(cell, bidirectional)
    x = padded_batch(LENGTHS).requires_grad_(True)
    width = HIDDEN * (2 if bidirectional else 1)
    weights = torch.randn(len(LENGTHS), TIME, width, generator=torch.Generator().manual_seed(9))
    # the batched loss reads every position, padding included: padding must add nothing
    (rec(x) * weights).sum().backward()
    batched = {n: p.grad.clone() for n, p in rec.named_parameters()}
    assert x.grad is not None
    batched_x = x.grad.clone()
    rec.zero_grad()
    lone_x = torch.zeros_like(batched_x)
    for i, n in enumerate(LENGTHS):
        xi = x.detach()[i : i + 1, :n].clone().requires_grad_(True)
        (rec(xi) * weights[i : i + 1, :n]).sum().backward()  # grads add up over the calls
        assert xi.grad is not None
        lone_x[i, :n] = xi.grad[0]
    for name, p in rec.named_parameters():
        assert p.grad is not None
        assert torch.allclose(batched[name], p.grad, atol=1e-5), name
    assert torch.allclose(batched_x, lone_x, atol=1e-5)
    for i, n in enumerate(LENGTHS):
        assert torch.count_nonzero(batched_x[i, n:]) == 0


# -- a 2-layer trunk -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [True, False])
def test_padding_survives_through_two_layers(kind, bidirectional):
    torch.manual_seed(0)
    cfg = TrunkConfig(kind=kind, hidden=[8, 8], bidirectional=bidirectional)
    backbone = backbone_from_config(cfg, IN_DIM)
    trunk = nn.Sequential(*backbone.layers())
    assert all(isinstance(m, Recurrent) for m in trunk)
    x = padded_batch(LENGTHS)
    with torch.no_grad():
        first = trunk[0](x)
        # the first layer's output is padded the same way, so the second layer sees it
        assert padded_lengths(first) is not None
        assert padded_lengths(first).tolist() == LENGTHS
        out = trunk(x)
        assert out.shape == (len(LENGTHS), TIME, backbone.out_dims[-1])
        for i, n in enumerate(LENGTHS):
            alone = trunk(x[i : i + 1, :n])[0]
            assert torch.allclose(out[i, :n], alone, atol=1e-5), (i, n)
            assert torch.count_nonzero(out[i, n:]) == 0


@pytest.mark.parametrize("layers", [[8], [8, 8, 8]])
def test_a_conv_trunk_gives_a_padded_sequence_its_lone_outputs(layers):
    """Conv layers: padded steps give zeros (not act(bias)), so a second layer does not read
    them, and every real step gets what the sequence gets alone."""
    torch.manual_seed(0)
    backbone = backbone_from_config(TrunkConfig(kind="conv", hidden=layers), IN_DIM)
    trunk = nn.Sequential(*backbone.layers()).eval()
    x = padded_batch(LENGTHS)
    with torch.no_grad():
        out = trunk(x)
        for i, n in enumerate(LENGTHS):
            alone = trunk(x[i : i + 1, :n])[0]
            assert torch.allclose(out[i, :n], alone, atol=1e-5), (i, n)
            assert torch.count_nonzero(out[i, n:]) == 0
