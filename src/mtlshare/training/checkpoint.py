"""Checkpoints that never unpickle: tensors in safetensors, everything else in JSON.

A checkpoint is a directory ``tensors.safetensors`` + ``meta.json``, which records the tensors
file's SHA-256: a tensors file changed on disk since (flipped bits, a tool that rewrote it) is
refused when it is loaded, never used to predict or train on. It is written to a sibling
``NAME.tmp`` directory, its files are flushed to disk, and it is swapped in by renames, so a kill
(or a power cut) during a save leaves the previous checkpoint whole (``NAME`` or, for an instant,
``NAME.old``). A ``NAME`` directory is only ever made by that rename, so one that is not a
complete checkpoint is not ours: it is refused, never read or overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# safetensors exports SafetensorError in every version; its stubs declare it from 0.5.1 on
from safetensors import SafetensorError  # type: ignore[attr-defined,unused-ignore]
from safetensors.torch import load_file, save_file
from torch import Tensor

from mtlshare.errors import CheckpointError
from mtlshare.files import fsync_path, parse_json, write_atomically

TENSORS = "tensors.safetensors"
META = "meta.json"
VERSION = 1  # of the checkpoint layout; a later layout this code cannot read is refused
VERSION_KEY = "format_version"
DIGEST_KEY = "tensors_sha256"  # absent from checkpoints saved before it was written
REFUSED_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")


def error_line(e: BaseException) -> str:
    """The line of ``e``'s message that says what is wrong: torch's ``load_state_dict`` opens
    with a header ("Error(s) in loading state_dict for X:") and names the mismatched or missing
    keys only on the lines after it, so its first line alone says nothing."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    if len(lines) > 1 and lines[0].startswith("Error(s) in loading state_dict"):
        return lines[1]
    return lines[0]


def write_error(e: SafetensorError, path: Path) -> OSError:
    """safetensors' failure to write ``path`` as the ``OSError`` it reports ("I/O error: No
    space left on device (os error 28)"), with its errno and the path, as Python's own writes
    raise it; without an OS error in it, an ``OSError`` naming the path and safetensors'
    message."""
    code = re.search(r"\(os error (\d+)\)", str(e))
    if code is not None:
        errno = int(code.group(1))
        return OSError(errno, os.strerror(errno), str(path))
    return OSError(f"{path}: cannot be written: {error_line(e)}")


def atomic_write_text(path: str | Path, text: str, *, beside_others: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (``mtlshare.files.write_atomically``;
    ``beside_others``: ``path`` is in a folder of the user's)."""
    write_atomically(
        Path(path), lambda tmp: tmp.write_text(text, encoding="utf-8"), beside_others=beside_others
    )


def save_checkpoint(
    directory: str | Path, tensors: Mapping[str, Tensor], meta: Mapping[str, Any]
) -> None:
    """Save ``tensors`` and JSON-able ``meta`` as the checkpoint ``directory``, atomically."""
    directory = Path(directory)
    tmp = directory.with_name(directory.name + ".tmp")
    old = directory.with_name(directory.name + ".old")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        # clone: safetensors refuses tensors that share memory (tied weights, views)
        clones = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}

        def fill(path: Path) -> None:
            try:
                save_file(clones, str(path))
            except SafetensorError as e:  # a full disk, say: an OSError, as any other write's
                raise write_error(e, tmp / TENSORS) from None

        # flushed, and 0666 less the umask as every file of a run (safetensors makes 0600,
        # which no one else sharing the folder could read)
        write_atomically(tmp / TENSORS, fill)
        digest = _sha256(tmp / TENSORS)
        written = {**meta, VERSION_KEY: VERSION, DIGEST_KEY: digest}
        atomic_write_text(tmp / META, json.dumps(written, indent=1, sort_keys=True))
        fsync_path(tmp)
    except BaseException:  # the half-made checkpoint goes; the previous one stays whole
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    fsync_path(directory.parent)  # the new checkpoint is durable before the old one goes
    shutil.rmtree(old, ignore_errors=True)


def _complete(candidate: Path) -> bool:
    return (candidate / TENSORS).is_file() and (candidate / META).is_file()


def find_checkpoint(directory: str | Path) -> Path | None:
    """The complete checkpoint at ``directory`` (or its ``.old`` twin after an interrupted swap);
    None when there is none. ``CheckpointError`` when ``directory`` exists but is not a complete
    checkpoint: ``save_checkpoint`` never leaves one, so it holds something else (a pickle, say),
    which must be neither read nor silently replaced by a fresh run."""
    directory = Path(directory)
    if directory.exists():
        if _complete(directory):
            return directory
        found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
        shown = ", ".join(found[:5]) + (", ..." if len(found) > 5 else "")
        raise CheckpointError(
            f"{directory}: not an mtlshare checkpoint (needs {TENSORS} + {META}"
            + (f"; holds {shown}" if found else "")
            + "); pickle-based files are never loaded"
        )
    old = directory.with_name(directory.name + ".old")
    return old if _complete(old) else None


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
        tensors = load_file(str(found / TENSORS))  # mapped, not read whole into memory
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{found / TENSORS}: unreadable: {e}") from None
    try:
        meta = parse_json((found / META).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{found / META}: unreadable: {e}") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{found / META}: not a checkpoint's metadata (a JSON object)")
    version = meta.pop(VERSION_KEY, VERSION)  # checkpoints before the key was written: 1
    if version != VERSION:
        raise CheckpointError(
            f"{found / META}: checkpoint format {version!r}; this mtlshare reads format {VERSION} "
            "(a checkpoint of another mtlshare version)"
        )
    digest = meta.pop(DIGEST_KEY, None)  # None: saved before the digest was recorded
    if digest is not None and digest != _sha256(found / TENSORS):
        raise CheckpointError(
            f"{found / TENSORS}: damaged: its SHA-256 is not the one {META} recorded when the "
            "checkpoint was saved (the file changed on disk since)"
        )
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


def _sha256(path: Path) -> str:
    """The SHA-256 of the file ``path``, read in blocks (a checkpoint of gigabytes is never
    held whole in memory for it); a file that cannot be read is a ``CheckpointError``."""
    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise CheckpointError(f"{path}: unreadable: {e}") from None
