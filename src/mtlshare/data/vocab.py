"""Vocabularies of words, characters and tags, and word vectors from a GloVe-format text file.

Ids 0 and 1 of a word or character vocabulary are the padding and the unknown token; a tag
vocabulary has neither. Nothing is downloaded: word vectors are random unless the user passes
a GloVe-format file (one word then its numbers per line, space-separated).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import Tensor

from mtlshare.data.conll import decode_utf8
from mtlshare.errors import DataError

PAD = "<pad>"
UNK = "<unk>"


class Vocab:
    """Tokens to ids. With ``specials`` (words, characters) ids 0 and 1 are padding and
    unknown, and unknown tokens map to 1; without (tags), an unknown token is a KeyError."""

    def __init__(self, tokens: Iterable[str], specials: bool = True) -> None:
        self.specials = specials
        self.itos: list[str] = [PAD, UNK] if specials else []
        self._index: dict[str, int] = {t: i for i, t in enumerate(self.itos)}
        for token in tokens:
            if token not in self._index:
                self._index[token] = len(self.itos)
                self.itos.append(token)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self._index

    def id(self, token: str) -> int:
        if self.specials:
            return self._index.get(token, 1)
        return self._index[token]

    @classmethod
    def build(cls, counts: Counter[str], min_freq: int = 1, specials: bool = True) -> Vocab:
        """Tokens seen at least ``min_freq`` times, most frequent first (ties by first sight)."""
        kept = [t for t, n in counts.most_common() if n >= min_freq]
        return cls(kept, specials)


def word_key(word: str, lowercase: bool) -> str:
    return word.lower() if lowercase else word


def read_glove(path: str | Path, wanted: set[str] | None = None) -> tuple[dict[str, Tensor], int]:
    """Vectors of a GloVe-format text file (``word x1 x2 ... xd`` per line), restricted to
    ``wanted`` words when given; returns them and their dimension. Ragged or non-numeric lines
    raise a DataError naming the line."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such word-vector file", path)
    text = decode_utf8(path, path.read_bytes())
    vectors: dict[str, Tensor] = {}
    dim = 0
    for number, line in enumerate(text.split("\n"), start=1):  # as parse_conll numbers lines
        parts = line.rstrip().split(" ")
        if len(parts) < 2:
            if line.strip():
                raise DataError("expected a word followed by its vector", path, number)
            continue
        if dim == 0:
            dim = len(parts) - 1
        if len(parts) - 1 != dim:
            raise DataError(
                f"{len(parts) - 1} numbers where the first vector has {dim}", path, number
            )
        if wanted is not None and parts[0] not in wanted:
            continue
        try:
            values = [float(v) for v in parts[1:]]
        except ValueError:
            raise DataError("a vector entry is not a number", path, number) from None
        if not all(math.isfinite(v) for v in values):
            raise DataError("a vector entry is NaN or infinite", path, number)
        vectors[parts[0]] = torch.tensor(values)
    if dim == 0:
        raise DataError("no vectors in the file", path)
    return vectors, dim


def embedding_matrix(
    vocab: Vocab,
    vectors: dict[str, Tensor],
    dim: int,
    generator: torch.Generator,
    lowercase_fallback: bool = True,
) -> tuple[Tensor, int]:
    """(len(vocab), dim) initial word embeddings: a word's vector when the file has it (or,
    with ``lowercase_fallback``, its lower-cased form's), else uniform in +-sqrt(3/dim) as Ma
    and Hovy (2016); the padding row is zero. Also returns how many words found a vector."""
    scale = math.sqrt(3.0 / dim)
    out = (torch.rand(len(vocab), dim, generator=generator) * 2 - 1) * scale
    found = 0
    for i, word in enumerate(vocab.itos):
        vec = vectors.get(word)
        if vec is None and lowercase_fallback:
            vec = vectors.get(word.lower())
        if vec is not None:
            out[i] = vec
            found += 1
    out[0] = 0.0
    return out, found
