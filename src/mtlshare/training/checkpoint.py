"""Checkpoints that never unpickle: tensors in safetensors, everything else in JSON.

A checkpoint is a directory ``tensors.safetensors`` + ``meta.json``. It is written to a sibling
``NAME.tmp`` directory and swapped in by renames, so a kill during a save leaves the previous
checkpoint whole (``NAME`` or, for an instant, ``NAME.old``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from mtlshare.errors import CheckpointError

TENSORS = "tensors.safetensors"
META = "meta.json"
REFUSED_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a flushed temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | Path, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]
) -> None:
    """Save ``tensors`` and JSON-able ``meta`` as the checkpoint ``directory``, atomically."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    # clone: safetensors refuses tensors that share memory (tied weights, views)
    save_file(
        {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, str(tmp / TENSORS)
    )
    atomic_write_text(tmp / META, json.dumps(meta, indent=1, sort_keys=True))
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def find_checkpoint(directory: str | Path) -> Path | None:
    """The complete checkpoint at ``directory`` (or its ``.old`` twin after an interrupted swap)."""
    directory = Path(directory)
    for candidate in (directory, directory.with_name(directory.name + ".old")):
        if (candidate / TENSORS).is_file() and (candidate / META).is_file():
            return candidate
    return None


def load_checkpoint(directory: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Tensors and metadata of a checkpoint directory. Pickle files are refused, never read."""
    directory = Path(directory)
    if directory.suffix in REFUSED_SUFFIXES or (
        directory.is_file() and directory.suffix not in (".safetensors",)
    ):
        raise CheckpointError(
            f"{directory}: refused: mtlshare checkpoints are directories of "
            "safetensors + JSON; pickle-based files are never loaded"
        )
    found = find_checkpoint(directory)
    if found is None:
        raise CheckpointError(f"{directory}: no complete checkpoint ({TENSORS} + {META})")
    try:
        tensors = load_file(str(found / TENSORS))
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{found / TENSORS}: unreadable: {e}") from None
    try:
        meta = json.loads((found / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{found / META}: unreadable: {e}") from None
    return tensors, meta


def optimizer_to_flat(state: Mapping[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split ``optimizer.state_dict()`` into tensors and JSON: {"state": {...}, "param_groups"}."""
    tensors: dict[str, Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        plain[str(idx)] = {}
        for key, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{idx}.{key}"] = value
            else:
                plain[str(idx)][key] = value
    return tensors, {"state": plain, "param_groups": state["param_groups"]}


def optimizer_from_flat(tensors: Mapping[str, Tensor], meta: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of ``optimizer_to_flat``."""
    state: dict[int, dict[str, Any]] = {int(i): dict(v) for i, v in meta["state"].items()}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}
