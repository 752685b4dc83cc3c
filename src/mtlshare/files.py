"""Files written whole or not at all: through a temporary file beside the target, flushed to
disk, then a rename. Imports nothing of the package, so any layer may use it."""

from __future__ import annotations

import errno
import os
import secrets
from collections.abc import Callable
from pathlib import Path


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
    has. The file's mode is 0666 less the umask. An ``OSError`` names ``path``, not the
    temporary file, and a write's (a full disk) names it too."""
    if beside_others:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    else:
        tmp = path.with_name(path.name + ".tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        os.close(os.open(tmp, flags, 0o666))
    except OSError as e:  # a read-only folder, say
        raise _naming(e, tmp, path) from None
    try:
        fill(tmp)
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise _naming(e, tmp, path) from None
        raise


def _naming(error: OSError, tmp: Path, path: Path) -> OSError:
    """``error`` naming ``path`` where it named the temporary file (a name of ours the user
    never gave) or no file at all (a write's error, ``[Errno 28] No space left on device``)."""
    if error.errno is None or error.filename not in (None, str(tmp)):
        return error
    return OSError(error.errno, error.strerror, str(path))
