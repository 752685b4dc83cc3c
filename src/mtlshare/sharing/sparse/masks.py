"""Pure functions on pruning masks for Sparse Sharing.

Sun, Shao et al., "Learning Sparse Sharing Architectures for Multiple Tasks", AAAI 2020: every
task gets a binary mask over the shared network, found by iterative magnitude pruning (IMP), and
the tasks' subnetworks overlap where their masks agree.

A mask set is a ``dict[str, Tensor]`` mapping a parameter name to a bool tensor of that
parameter's shape; True means the entry is kept. No function here changes its inputs: every mask
returned is a new tensor.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from mtlshare.errors import CheckpointError, ConfigError
from mtlshare.files import parse_json

__all__ = [
    "density",
    "expected_density",
    "global_magnitude_prune",
    "layer_density",
    "ones_like_params",
    "overlap_ratio",
    "pack_mask",
    "pack_masks",
    "pairwise_overlap",
    "unpack_mask",
    "unpack_masks",
]

PACKED_MASKS_FORMAT = "mtlshare.packed_masks"
PACKED_MASKS_VERSION = 1

# Bit i of a byte (most significant first) holds entry 8 * byte + i: numpy.packbits' default order.
_BIT_WEIGHTS = (128, 64, 32, 16, 8, 4, 2, 1)


def ones_like_params(params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """All-True masks, one per parameter, on the parameter's device: the start of IMP."""
    return {name: torch.ones_like(p, dtype=torch.bool) for name, p in params.items()}


def _check_same_names(params: Mapping[str, Tensor], masks: Mapping[str, Tensor]) -> None:
    if set(params) != set(masks):
        missing = sorted(set(params) - set(masks))
        extra = sorted(set(masks) - set(params))
        raise ValueError(f"masks do not match params: missing {missing}, unknown {extra}")
    for name, p in params.items():
        if masks[name].shape != p.shape:
            raise ValueError(
                f"mask {name!r} has shape {tuple(masks[name].shape)}, "
                f"parameter has {tuple(p.shape)}"
            )


def global_magnitude_prune(
    params: Mapping[str, Tensor], masks: Mapping[str, Tensor], amount: float
) -> dict[str, Tensor]:
    """One round of global magnitude pruning: drop the smallest kept entries across all tensors.

    The pruning step of the paper's IMP (Sun, Shao et al. 2020, Algorithm 1). Among the
    ``n_kept`` entries whose mask is True, counted over all tensors together (a global
    ranking, not one per tensor), the ``round(amount * n_kept)`` with the smallest absolute
    value are set to False. Entries already False stay False, so after ``r`` rounds about
    ``(1 - amount) ** r`` of the entries remain (see ``expected_density``).

    This equals ``torch.nn.utils.prune.global_unstructured(..., pruning_method=L1Unstructured,
    amount=amount)`` applied to the same tensors with the same existing masks, including its
    rounding: Python's ``round``, which rounds halves to even (2.5 -> 2, 3.5 -> 4).

    Ties in absolute value are broken by position: entries are ranked in the iteration order of
    ``params``, then row-major within a tensor, and the earlier one is pruned first. (torch uses
    ``topk``, whose order among ties is not specified; without ties the two agree.)

    Args:
        params: name -> parameter tensor; only the magnitudes are read (no autograd).
        masks: name -> mask of the parameter's shape, with the same names as ``params``.
            Any dtype is accepted (nonzero = kept), so torch's float ``weight_mask`` works.
        amount: fraction of the currently kept entries to prune, with ``0 < amount < 1``.

    Returns:
        New bool masks, one per name of ``params``, on the masks' devices.

    Raises:
        ConfigError: ``amount`` is not a number strictly between 0 and 1.
        ValueError: names or shapes of ``masks`` and ``params`` differ.
    """
    if (
        isinstance(amount, bool)
        or not isinstance(amount, numbers.Real)
        or not 0.0 < float(amount) < 1.0
    ):
        raise ConfigError(f"pruning amount must be a fraction with 0 < amount < 1, got {amount!r}")
    _check_same_names(params, masks)
    new_masks = {
        name: masks[name].to(torch.bool).clone(memory_format=torch.contiguous_format)
        for name in params
    }
    if not new_masks:
        return new_masks

    # Scores of the kept entries only, concatenated in name order: (n_kept,)
    kept_scores = torch.cat(
        [params[name].detach().abs().reshape(-1)[new_masks[name].reshape(-1)] for name in params]
    )
    n_kept = kept_scores.numel()
    # The same expression as torch's _compute_nparams_toprune, so halves round the same way.
    n_prune = round(float(amount) * n_kept)
    if n_prune == 0:
        return new_masks

    pruned_positions = torch.sort(kept_scores, stable=True).indices[:n_prune]
    prune_kept = torch.zeros(n_kept, dtype=torch.bool, device=kept_scores.device)
    prune_kept[pruned_positions] = True

    offset = 0
    for name in params:
        flat = new_masks[name].view(-1)  # a view: writes go into new_masks[name]
        kept_index = flat.nonzero().squeeze(1)
        n = kept_index.numel()
        flat[kept_index[prune_kept[offset : offset + n].to(flat.device)]] = False
        offset += n
    return new_masks


def density(masks: Mapping[str, Tensor]) -> float:
    """Fraction of entries kept over all tensors together: ``kept / total``.

    Raises:
        ValueError: the masks hold no entries at all.
    """
    total = sum(m.numel() for m in masks.values())
    if total == 0:
        raise ValueError("density of masks with no entries is undefined")
    kept = sum(int(m.count_nonzero()) for m in masks.values())
    return kept / total


def density_within(masks: Mapping[str, Tensor], domain: Mapping[str, Tensor] | None) -> float:
    """Fraction of ``domain``'s entries (the weights a task can use: all of them when ``None``)
    that ``masks`` keeps: ``kept / len(domain)``; ``density`` when ``domain`` is all ones.

    Raises:
        ValueError: the domain holds no entries.
    """
    if domain is None:
        return density(masks)
    total = sum(int(d.count_nonzero()) for d in domain.values())
    if total == 0:
        raise ValueError("density within an empty domain is undefined")
    kept = sum(int((masks[n].bool() & domain[n].bool()).count_nonzero()) for n in domain)
    return kept / total


def depth_domain(tensors: Mapping[str, Tensor], depth: int) -> dict[str, Tensor]:
    """The entries a task supervised at ``depth`` reads, of tensors named by layer index
    (``"0.linear.weight"``: layer 0): True in layers below ``depth``, False deeper."""
    return {
        n: torch.full_like(t, int(n.split(".", 1)[0]) < depth, dtype=torch.bool)
        for n, t in tensors.items()
    }


def layer_density(masks: Mapping[str, Tensor]) -> dict[str, float]:
    """Fraction of entries kept in each tensor: name -> ``kept / numel``.

    Raises:
        ValueError: a mask has no entries.
    """
    out: dict[str, float] = {}
    for name, m in masks.items():
        if m.numel() == 0:
            raise ValueError(f"density of the empty mask {name!r} is undefined")
        out[name] = int(m.count_nonzero()) / m.numel()
    return out


def overlap_ratio(masks: Sequence[Mapping[str, Tensor]]) -> float:
    """Overlap ratio of T task masks, Eq. 4 of Sun, Shao et al. 2020.

    ``|M_1 ∩ ... ∩ M_T| / |M_1 ∪ ... ∪ M_T|``, counting entries over all tensors. 1.0 means
    the tasks share one subnetwork (hard sharing); 0.0 means they share no parameter.

    Args:
        masks: T >= 1 mask sets with the same names and shapes.

    Raises:
        ValueError: no masks, mismatched names or shapes, or an empty union (every mask is
            all False), where the ratio is 0 / 0.
    """
    if len(masks) < 1:
        raise ValueError("overlap_ratio needs at least one mask set")
    first = masks[0]
    for other in masks[1:]:
        _check_same_names(first, other)
    inter = 0
    union = 0
    for name in first:
        stacked = torch.stack([m[name].to(torch.bool) for m in masks])  # (T, *shape)
        inter += int(stacked.all(dim=0).count_nonzero())
        union += int(stacked.any(dim=0).count_nonzero())
    if union == 0:
        raise ValueError("overlap ratio is undefined: the union of the masks is empty")
    return inter / union


def pairwise_overlap(masks: Mapping[str, Mapping[str, Tensor]]) -> dict[str, dict[str, float]]:
    """Overlap ratio of every pair of tasks: task -> task -> ratio, symmetric, diagonal 1.0.

    Args:
        masks: task -> mask set; all mask sets have the same names and shapes.

    Raises:
        ValueError: as ``overlap_ratio``, for any pair of distinct tasks.
    """
    tasks = list(masks)
    out: dict[str, dict[str, float]] = {t: {t: 1.0} for t in tasks}
    for i, a in enumerate(tasks):
        for b in tasks[i + 1 :]:
            ratio = overlap_ratio([masks[a], masks[b]])
            out[a][b] = ratio
            out[b][a] = ratio
    return out


def pack_mask(mask: Tensor) -> Tensor:
    """Bit-pack a bool mask of any shape into ``ceil(numel / 8)`` bytes: (ceil(numel / 8),) uint8.

    Entries are taken in row-major order, 8 per byte, the first in the most significant bit
    (the same bytes as ``numpy.packbits``); the last byte is padded with zeros. The shape is
    not stored: pass it to ``unpack_mask``.

    Raises:
        TypeError: ``mask`` is not a bool tensor (packing a float tensor is almost surely a bug).
    """
    if mask.dtype != torch.bool:
        raise TypeError(f"pack_mask expects a bool tensor, got {mask.dtype}")
    flat = mask.reshape(-1)
    pad = (-flat.numel()) % 8
    bits = torch.cat([flat, flat.new_zeros(pad)]).view(-1, 8).to(torch.uint8)  # (bytes, 8)
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=mask.device)
    # Distinct powers of two sum to at most 255, so uint8 cannot overflow.
    return (bits * weights).sum(dim=1, dtype=torch.uint8)


def unpack_mask(packed: Tensor, shape: Sequence[int]) -> Tensor:
    """Inverse of ``pack_mask``: (ceil(numel / 8),) uint8 -> bool tensor of ``shape``.

    Raises:
        ValueError: ``packed`` is not a 1-d uint8 tensor of exactly ``ceil(numel / 8)`` bytes.
    """
    shape = tuple(int(s) for s in shape)
    numel = math.prod(shape)
    n_bytes = (numel + 7) // 8
    if packed.dtype != torch.uint8 or packed.dim() != 1 or packed.numel() != n_bytes:
        raise ValueError(
            f"packed mask for shape {shape} must be {n_bytes} uint8 bytes in a 1-d tensor, "
            f"got {packed.dtype} of shape {tuple(packed.shape)}"
        )
    weights = torch.tensor(_BIT_WEIGHTS, dtype=torch.uint8, device=packed.device)
    bits = (packed.unsqueeze(1) & weights) != 0  # (bytes, 8)
    return bits.reshape(-1)[:numel].reshape(shape)


def pack_masks(
    masks: Mapping[str, Mapping[str, Tensor]],
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Pack every task's masks into flat, safetensors-ready tensors plus JSON-able metadata.

    Args:
        masks: task -> parameter name -> bool mask.

    Returns:
        ``tensors``: ``{f"{task}/{param}": packed uint8}``, one entry per mask; and ``meta``:
        ``{"format", "version", "bitorder": "big", "shapes": {task: {param: [dims]}}}``. Store
        ``meta`` with ``json.dumps`` (safetensors metadata values must be strings).

    Raises:
        ValueError: a task name contains "/", which would make the keys ambiguous.
        TypeError: a mask is not bool.
    """
    tensors: dict[str, Tensor] = {}
    shapes: dict[str, dict[str, list[int]]] = {}
    for task, task_masks in masks.items():
        if "/" in task:
            raise ValueError(f"task name {task!r} must not contain '/'")
        shapes[task] = {}
        for param, mask in task_masks.items():
            tensors[f"{task}/{param}"] = pack_mask(mask)
            shapes[task][param] = list(mask.shape)
    meta = {
        "format": PACKED_MASKS_FORMAT,
        "version": PACKED_MASKS_VERSION,
        "bitorder": "big",
        "shapes": shapes,
    }
    return tensors, meta


def unpack_masks(
    tensors: Mapping[str, Tensor], meta: Mapping[str, Any]
) -> dict[str, dict[str, Tensor]]:
    """Inverse of ``pack_masks``: task -> parameter name -> bool mask.

    Raises:
        CheckpointError: ``meta`` is not from ``pack_masks`` or a packed mask is missing or has
            the wrong size (the tensors usually come from a file).
    """
    if not isinstance(meta, Mapping):
        raise CheckpointError(f"packed masks' metadata is {type(meta).__name__}, not an object")
    if meta.get("format") != PACKED_MASKS_FORMAT or meta.get("version") != PACKED_MASKS_VERSION:
        raise CheckpointError(
            f"not packed masks of format {PACKED_MASKS_FORMAT!r} version {PACKED_MASKS_VERSION}: "
            f"got format {meta.get('format')!r} version {meta.get('version')!r}"
        )
    shapes = meta.get("shapes")
    if not isinstance(shapes, Mapping) or not all(isinstance(s, Mapping) for s in shapes.values()):
        raise CheckpointError(
            "packed masks' metadata: 'shapes' is not {task: {parameter: shape}} (damaged)"
        )
    out: dict[str, dict[str, Tensor]] = {}
    for task, task_shapes in shapes.items():
        out[task] = {}
        for param, shape in task_shapes.items():
            key = f"{task}/{param}"
            if key not in tensors:
                raise CheckpointError(f"packed mask {key!r} is missing")
            try:
                out[task][param] = unpack_mask(tensors[key], shape)
            except (ValueError, TypeError) as err:  # TypeError: a shape that is no list
                raise CheckpointError(f"packed mask {key!r}: {err}") from err
    return out


def check_kept(masks: Mapping[str, Mapping[str, Tensor]]) -> None:
    """A ``CheckpointError`` when unpacked ``masks`` keep no weight at all: no search leaves
    that (each round keeps a share of the weights), and their overlap ratio has no value."""
    if masks and not any(bool(m.any()) for task in masks.values() for m in task.values()):
        raise CheckpointError("packed masks keep no weight at all (damaged)")


def expected_density(alpha: float, rounds: int) -> float:
    """Density left after ``rounds`` IMP rounds that each prune a fraction ``alpha``.

    ``(1 - alpha) ** rounds``, before rounding to whole entries (``global_magnitude_prune``
    rounds each round's count, so the real density can differ by about ``rounds / 2``
    entries).

    Raises:
        ConfigError: ``alpha`` is outside ``[0, 1)`` or ``rounds`` is negative.
    """
    if not 0.0 <= alpha < 1.0:
        raise ConfigError(f"pruning rate alpha must satisfy 0 <= alpha < 1, got {alpha!r}")
    if rounds < 0:
        raise ConfigError(f"number of pruning rounds must be >= 0, got {rounds!r}")
    return (1.0 - alpha) ** rounds


def json_tensor(obj: Any) -> Tensor:
    """JSON as a uint8 tensor, so that metadata travels inside a safetensors state."""
    return torch.tensor(list(json.dumps(obj, sort_keys=True).encode()), dtype=torch.uint8)


def tensor_json(t: Tensor) -> Any:
    """Inverse of ``json_tensor``; a tensor that holds no JSON so (a damaged checkpoint) is a
    ``CheckpointError``."""
    if t.dtype != torch.uint8 or t.dim() != 1:
        raise CheckpointError(
            f"masks' metadata is {t.dtype} of shape {tuple(t.shape)}, not JSON in 1-d uint8"
        )
    try:
        return parse_json(bytes(t.tolist()).decode())
    except ValueError as e:  # not UTF-8, not JSON
        raise CheckpointError(f"masks' metadata is not JSON ({str(e)[:80]})") from None
