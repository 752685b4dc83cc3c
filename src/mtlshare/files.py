"""Files written whole or not at all: through a temporary file beside the target, flushed to
disk, then a rename. Imports nothing of the package, so any layer may use it."""

from __future__ import annotations

import errno
import json
import os
import secrets
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

TOO_DEEP = "nested too deeply to read"

# a run folder's checkpoints, CHECKPOINTS/NAME/ (mtlshare.training.folder); here, where the
# console finds them without importing torch
CHECKPOINTS = "checkpoint"


def parse_json(text: str) -> Any:
    """``json.loads``; nesting deeper than Python's parser recurses, or an integer of more
    digits than Python converts (a damaged or hostile file), is the ``json.JSONDecodeError`` of
    any malformed text, not a ``RecursionError`` or a bare ``ValueError``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise json.JSONDecodeError(TOO_DEEP, text, 0) from None
    except ValueError as e:  # "Exceeds the limit (4300 digits) for integer string conversion"
        raise json.JSONDecodeError(str(e).split(":")[0], text, 0) from None


def parse_toml(text: str) -> dict[str, Any]:
    """``tomllib.loads``; nesting deeper than its parser recurses is a
    ``tomllib.TOMLDecodeError``, as for ``parse_json``."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        if sys.version_info >= (3, 14):  # its free-form arguments are deprecated there
            raise tomllib.TOMLDecodeError(TOO_DEEP, text, 0) from None
        raise tomllib.TOMLDecodeError(TOO_DEEP) from None


def fsync_path(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk (directories: POSIX only). A directory
    that its filesystem cannot flush (``EINVAL`` or ``EBADF`` from some network, FUSE and
    shared-folder filesystems) is left as it is, as PostgreSQL leaves it: the files in it are
    flushed, and failing there would fail every checkpoint save on such a filesystem."""
    directory = path.is_dir()
    if directory and os.name != "posix":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as e:
        if not (directory and e.errno in (errno.EINVAL, errno.EBADF)):
            raise
    finally:
        os.close(fd)


def write_atomically(
    path: Path, fill: Callable[[Path], object], *, beside_others: bool = False
) -> None:
    """Make ``path`` by ``fill(tmp)`` on a temporary file, which is then flushed and renamed
    over ``path``: the file is whole or as it was, and an error (or Ctrl-C) leaves no temporary
    file. The temporary file is ``NAME.tmp`` in a folder of the library's (a run folder), so a
    write cut by a kill leaves one file that the next write replaces; ``beside_others``: a
    folder of the user's, where that name may be a file of theirs, so it gets a name no file
    has, a symbolic link ``path`` is followed (its target is written; the rename would put a
    file in the link's place), and anything at ``path`` but a file (a device, ``/dev/null``;
    a named pipe) is refused (``EEXIST``), never replaced. The file's mode is 0666 less the
    umask, whatever ``fill`` did to it (``safetensors`` writes 0600). An ``OSError`` names
    ``path``, not the temporary file, and a write's (a full disk) names it too."""
    given = path
    if beside_others:
        path = Path(os.path.realpath(path))
        if path.exists() and not path.is_file():
            raise OSError(errno.EEXIST, "not a file, so not replaced by one", str(given))
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    else:
        tmp = path.with_name(path.name + ".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        os.close(os.open(tmp, flags, 0o666))
        mode = os.stat(tmp).st_mode & 0o777
    except OSError as e:  # a read-only folder, say
        raise _naming(e, tmp, given) from None
    try:
        fill(tmp)
        if os.stat(tmp).st_mode & 0o777 != mode:  # made anew by ``fill``, with its own mode
            os.chmod(tmp, mode)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _naming(e, tmp, given) from None
        raise


def _naming(error: OSError, tmp: Path, path: Path) -> OSError:
    """``error`` naming ``path`` where it named the temporary file (a name of ours the user
    never gave) or no file at all (a write's error, ``[Errno 28] No space left on device``)."""
    if error.errno is None or error.filename not in (None, str(tmp)):
        return error
    return OSError(error.errno, error.strerror, str(path))
