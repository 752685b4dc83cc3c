"""A linear-chain CRF output layer for sequence tasks: a linear map to per-tag emission scores,
then pytorch-crf's ``CRF`` (transition, start and end scores; forward algorithm for the
likelihood, Viterbi for decoding).

Positions whose target is missing (-100) must come after the observed ones in each sequence
(padding at the end); a sequence with no observed position takes no part in the loss.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchcrf import CRF

from mtlshare.errors import DataError

IGNORE_INDEX = -100


class CRFHead(nn.Module):
    """``forward`` gives emissions (batch, time, tags); ``nll`` and ``decode`` use the CRF."""

    def __init__(self, in_dim: int, n_tags: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, n_tags)
        self.crf = CRF(n_tags, batch_first=True)

    def forward(self, h: Tensor) -> Tensor:
        return self.proj(h)

    @staticmethod
    def _rows(mask: Tensor) -> Tensor:
        """Rows with at least one observed position, after checking the mask is a prefix."""
        if mask.dim() != 2:
            raise DataError(
                f"a crf head reads (batch, time) targets, got shape {tuple(mask.shape)}"
            )
        if bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise DataError(
                "a crf head needs each sequence's labels to be contiguous from its first "
                "token (missing labels only at the end)"
            )
        return mask[:, 0]

    def nll(self, emissions: Tensor, target: Tensor) -> Tensor:
        """Negative log-likelihood of the gold paths, divided by the number of observed tokens
        (comparable with a softmax head's mean cross-entropy); zero with a graph when nothing
        is observed."""
        mask = target != IGNORE_INDEX
        rows = self._rows(mask)
        if not bool(rows.any()):
            return emissions.sum() * 0.0
        if not bool(rows.all()):
            emissions, target, mask = emissions[rows], target[rows], mask[rows]
        tags = torch.where(mask, target, torch.zeros_like(target))
        log_likelihood = self.crf(emissions, tags, mask=mask, reduction="sum")
        return -log_likelihood / mask.sum()

    @torch.no_grad()
    def decode(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """The best tag path of each sequence over its observed positions; -100 elsewhere."""
        rows = self._rows(mask)
        out = torch.full(mask.shape, IGNORE_INDEX, dtype=torch.long, device=emissions.device)
        if not bool(rows.any()):
            return out
        index = rows.nonzero().squeeze(1)
        paths = self.crf.decode(emissions[index], mask=mask[index])
        for i, path in zip(index.tolist(), paths, strict=True):
            out[i, : len(path)] = torch.tensor(path, dtype=torch.long, device=out.device)
        return out
