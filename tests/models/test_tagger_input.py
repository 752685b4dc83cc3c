"""The tagger's input layer: shapes, padding, pre-trained vectors, and use as a shared stem."""

from __future__ import annotations

import torch

import mtlshare.sharing  # noqa: F401
from mtlshare.models.tagger import TaggerInputConfig, WordCharEncoder
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.registry import MECHANISMS
from mtlshare.tasks.task import Task


def batch() -> torch.Tensor:
    # two sentences of up to 3 words, up to 4 characters; id 0 pads
    x = torch.zeros(2, 3, 5, dtype=torch.long)
    x[0, 0] = torch.tensor([5, 1, 2, 3, 0])
    x[0, 1] = torch.tensor([6, 4, 0, 0, 0])
    x[0, 2] = torch.tensor([7, 2, 2, 2, 2])
    x[1, 0] = torch.tensor([5, 1, 2, 3, 0])
    return x


def test_shapes_and_padding():
    cfg = TaggerInputConfig(n_words=10, n_chars=6, dropout=0.0)
    enc = WordCharEncoder(cfg).eval()
    out = enc(batch())
    assert out.shape == (2, 3, 130) and cfg.out_dim == 130
    assert torch.isfinite(out).all()
    assert torch.equal(out[1, 1], torch.zeros(130))  # a padding word is all zeros
    assert torch.equal(out[0, 0], out[1, 0])  # the same word gives the same features
    # extra padding characters change nothing (they are left out of the max)
    wider = torch.cat([batch(), torch.zeros(2, 3, 3, dtype=torch.long)], dim=-1)
    assert torch.allclose(enc(wider), out)


def test_word_vectors_are_loaded():
    vectors = torch.randn(10, 100)
    enc = WordCharEncoder(TaggerInputConfig(n_words=10, n_chars=6), vectors)
    assert torch.equal(enc.words.weight, vectors)


def test_as_the_shared_stem_of_a_bilstm_tagger():
    cfg = TaggerInputConfig(n_words=10, n_chars=6)
    backbone = backbone_from_config(
        TrunkConfig(kind="lstm", hidden=[8]), cfg.out_dim, lambda: WordCharEncoder(cfg)
    )
    tasks = [
        Task("pos", "classification", 4, "accuracy"),
        Task("ner", "classification", 3, "accuracy"),
    ]
    entry = MECHANISMS["hard"]
    model = entry.build(backbone, tasks, entry.config())
    assert model(batch(), "ner").shape == (2, 3, 3)
    counts = model.param_counts()
    stem = sum(p.numel() for p in model.stem.parameters())
    heads = sum(p.numel() for p in model.heads.parameters())
    assert counts["counted"] == counts["total"] - stem - heads
