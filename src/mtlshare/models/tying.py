"""Weight tying: an output projection that reuses an input embedding's matrix (Press and Wolf,
EACL 2017; Inan et al., ICLR 2017): logits = h W_in^T + b, with W_in the (vocabulary, dim)
embedding. The two layers then hold one ``Parameter``: it trains as one tensor, is saved
under both names and loaded back into the same tensor, and parameter counts count it once.
"""

from __future__ import annotations

from torch import Tensor, nn

from mtlshare.errors import ConfigError


def tie_weights(output: nn.Linear, embedding: nn.Embedding) -> None:
    """Make ``output.weight`` the very ``Parameter`` of ``embedding.weight`` (W_out = W_in,
    i.e. the projection multiplies by W_in^T). Shapes must agree: (vocabulary, dim)."""
    if output.weight.shape != embedding.weight.shape:
        raise ConfigError(
            f"cannot tie an output projection of shape {tuple(output.weight.shape)} to an "
            f"embedding of shape {tuple(embedding.weight.shape)}"
        )
    output.weight = embedding.weight


def are_tied(output: nn.Linear, embedding: nn.Embedding) -> bool:
    return output.weight is embedding.weight


class TiedHead(nn.Module):
    """A head over a vocabulary whose output matrix can be tied to an embedding: a linear
    map from the representation to the embedding's width, then the (tied) projection."""

    def __init__(self, in_dim: int, n_classes: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, dim)
        self.out = nn.Linear(dim, n_classes)

    def forward(self, h: Tensor) -> Tensor:
        return self.out(self.proj(h))
