"""An empty batch through the word+character encoder: under torchrun a process's slice of the
last global batch is empty when the training set has fewer sentences than processes x batch
left, and every process must still take the step."""

from __future__ import annotations

import torch

from mtlshare.models.tagger import TaggerInputConfig, WordCharEncoder


def test_an_empty_batch_of_padded_sentences_encodes_to_an_empty_batch():
    cfg = TaggerInputConfig(n_words=10, n_chars=8, word_dim=4, char_dim=3, char_filters=5)
    enc = WordCharEncoder(cfg)
    x = torch.zeros(0, 7, 6, dtype=torch.long)  # no sentence, 7 words of up to 5 characters
    out = enc(x)
    assert out.shape == (0, 7, cfg.out_dim)
    out.sum().backward()  # the step's backward runs on every process
