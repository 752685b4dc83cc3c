"""``mtlshare.files.write_atomically`` when the disk or the folder fails it."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from mtlshare import files
from mtlshare.files import write_atomically


def _full(tmp: Path) -> None:
    """A write that runs out of room: Python's own write errors name no file."""
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("beside_others", [False, True])
def test_a_write_on_a_full_disk_names_the_file_and_leaves_it_as_it_was(tmp_path, beside_others):
    """``[Errno 28] No space left on device`` named no file: the command line's error said
    what happened, not to which of its files (``comparison.json``, a plot, predict's output)."""
    target = tmp_path / "results.json"
    target.write_text("the old results")
    with pytest.raises(OSError) as caught:
        write_atomically(target, _full, beside_others=beside_others)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(target)
    assert target.read_text() == "the old results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json"]  # no temporary file


def test_a_read_only_folder_is_named_as_the_file_not_the_temporary_one(tmp_path, monkeypatch):
    """A read-only folder refused the temporary file, whose name the error gave
    (``'out/.pred.txt.a35cf91312a2.tmp'``): a name the user never chose."""
    real = os.open

    def read_only(path: str | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
        if str(path).endswith(".tmp"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real(path, flags, mode)

    monkeypatch.setattr(files.os, "open", read_only)
    target = tmp_path / "pred.txt"
    for beside_others in (False, True):
        with pytest.raises(OSError) as caught:
            write_atomically(target, lambda tmp: tmp.write_text("x"), beside_others=beside_others)
        assert caught.value.errno == errno.EROFS and caught.value.filename == str(target)
    assert not list(tmp_path.iterdir())


def test_an_error_naming_another_file_is_left_as_it_is(tmp_path):
    def reads_another(tmp: Path) -> None:
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "elsewhere.csv")

    with pytest.raises(FileNotFoundError) as caught:
        write_atomically(tmp_path / "out.csv", reads_another)
    assert caught.value.filename == "elsewhere.csv"
