"""The input layer of a ``table`` run whose categorical columns are learned vectors
(``data.embed``), not one-hots: a column of thousands of categories (a user or a shop id) is one
input holding the category's id, and this stem turns it into a vector of ``data.embed[column]``
numbers. Used as a ``Backbone`` stem, shared wherever the trunk is, and left out of the counted
parameters like every embedding.

Input: (rows, plain + ids) floats: first the ``plain`` features the trunk reads as they are
(standardised numbers, one-hots), then one column per embedded feature holding the category's
position among its sorted training categories + 1, or 0 for a category no training row had
(its vector is zeros, as its one-hot would be). Output: (rows, plain + the vectors' sizes), in
the dtype of the vectors (the inputs, float32 as the codec makes them, are cast to it).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

# the largest id a float32 input column holds exactly (2**24): more categories cannot be read
MOST_CATEGORIES = 2**24 - 1
MOST_EMBED = 4096  # the largest vector size data.embed takes


class CategoryEmbeddings(nn.Module):
    """The plain features, then each id column's vector. ``sizes``: per id column, in the
    input's order, (its number of categories, the size of its vectors)."""

    keeps_rank = True  # a row stays a row: no sequence for a recurrent or convolutional trunk

    def __init__(self, plain: int, sizes: Sequence[tuple[int, int]]) -> None:
        super().__init__()
        self.plain = plain
        self.sizes = [dim for _, dim in sizes]
        self.tables = nn.ModuleList(nn.Embedding(n + 1, dim, padding_idx=0) for n, dim in sizes)

    @property
    def out_dim(self) -> int:
        return self.plain + sum(self.sizes)

    def forward(self, x: Tensor) -> Tensor:
        ids = x[..., self.plain :].long()
        vectors = [table(ids[..., k]) for k, table in enumerate(self.tables)]
        plain = x[..., : self.plain].to(vectors[0].dtype)  # the network's (float64 by default)
        return torch.cat([plain, *vectors], dim=-1)
