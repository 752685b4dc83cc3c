"""The input layer of the Sparse Sharing paper's sequence tagger (Sun, Shao et al., AAAI 2020,
Table 2; after Ma and Hovy, ACL 2016): word embeddings joined with a character CNN, then dropout.
Used as a ``Backbone`` stem, shared wherever the trunk (a BiLSTM) is, and left out of the counted
parameters like every embedding.

Input: a long tensor (batch, time, 1 + max_chars): column 0 holds the word id, the others the
word's character ids; id 0 pads both. Output: (batch, time, word_dim + char_filters).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class TaggerInputConfig:
    """Sizes of the word and character vocabularies and of the embeddings (paper defaults)."""

    n_words: int
    n_chars: int
    word_dim: int = 100
    char_dim: int = 30
    char_filters: int = 30
    char_width: int = 3
    dropout: float = 0.5

    @property
    def out_dim(self) -> int:
        return self.word_dim + self.char_filters  # char_filters = 0: words only


class WordCharEncoder(nn.Module):
    """Word embedding + max-pooled character CNN + dropout. See the module docstring."""

    def __init__(self, cfg: TaggerInputConfig, word_vectors: Tensor | None = None) -> None:
        super().__init__()
        self.words = nn.Embedding(cfg.n_words, cfg.word_dim, padding_idx=0)
        if word_vectors is not None:  # (n_words, word_dim), e.g. read from a GloVe file
            with torch.no_grad():
                self.words.weight.copy_(word_vectors)
        self.use_chars = cfg.char_filters > 0
        if self.use_chars:
            self.chars = nn.Embedding(cfg.n_chars, cfg.char_dim, padding_idx=0)
            self.conv = nn.Conv1d(
                cfg.char_dim, cfg.char_filters, cfg.char_width, padding=cfg.char_width // 2
            )
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor) -> Tensor:
        batch, time, width = x.shape
        words = self.words(x[..., 0])  # (batch, time, word_dim)
        if not self.use_chars:
            return self.drop(words)
        chars = x[..., 1:].reshape(batch * time, width - 1)  # (words, max_chars)
        real = x[..., 0].reshape(-1) != 0  # padding words (id 0) have no characters at all
        if bool(real.all()):
            pooled = self._pooled(chars)
        else:  # the CNN reads only real words; a padding word's features are zero
            where = real.nonzero().squeeze(1)
            found = self._pooled(chars[where])
            pooled = found.new_zeros(batch * time, found.shape[1]).index_copy(0, where, found)
        return self.drop(torch.cat([words, pooled.view(batch, time, pooled.shape[-1])], dim=-1))

    def _pooled(self, chars: Tensor) -> Tensor:
        """Max-pooled CNN features of words given as character ids (words, max_chars)."""
        conv = self.conv(self.chars(chars).transpose(1, 2))  # (words, filters, max_chars)
        pad = (chars == 0).unsqueeze(1)  # padded character positions take no part in the max
        pooled = conv.masked_fill(pad, float("-inf")).max(dim=-1).values
        return torch.nan_to_num(pooled, neginf=0.0)  # a word of padding only: no features
