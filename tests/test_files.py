"""``mtlshare.files.write_atomically`` when the disk or the folder fails it."""

from __future__ import annotations

import errno
import json
import os
import stat
from pathlib import Path

import pytest
import torch

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

    def says_its_own(tmp: Path) -> None:  # an OSError of a library's, with no errno
        raise OSError("figure: cannot be drawn")

    with pytest.raises(OSError) as caught:
        write_atomically(tmp_path / "out.csv", says_its_own)
    assert str(caught.value) == "figure: cannot be drawn"


@pytest.mark.parametrize("code", [errno.EINVAL, errno.EBADF])
def test_a_folder_its_filesystem_cannot_flush_is_left_but_a_file_is_not(
    tmp_path, monkeypatch, code
):
    """Some network, FUSE and shared-folder filesystems refuse fsync on a directory: every
    checkpoint save (which flushes its folder) failed there. A file's failure still raises."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(code, os.strerror(code))
        real(fd)

    monkeypatch.setattr(files.os, "fsync", fsync)
    files.fsync_path(tmp_path)  # no error
    from mtlshare.training.checkpoint import load_checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "last", {"w": torch.ones(2)}, {"epoch": 1})
    assert load_checkpoint(tmp_path / "last")[1]["epoch"] == 1

    def fsync_files_too(fd: int) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.os, "fsync", fsync_files_too)
    (tmp_path / "f").write_text("x")
    with pytest.raises(OSError) as caught:
        files.fsync_path(tmp_path / "f")
    assert caught.value.errno == code
    with pytest.raises(OSError):
        files.fsync_path(tmp_path / "absent")  # not there: not a folder it cannot flush


def test_malformed_json_keeps_the_place_json_names():
    """Only nesting too deep and integers too long are recast: any other malformed text is
    ``json``'s own error, with its line and column."""
    with pytest.raises(json.JSONDecodeError) as e:
        files.parse_json('{"a": 1,\n "b": }')
    assert (e.value.msg, e.value.lineno, e.value.colno) == ("Expecting value", 2, 7)
    with pytest.raises(json.JSONDecodeError, match=files.TOO_DEEP):
        files.parse_json("[" * 100_000 + "]" * 100_000)


def test_a_users_path_that_is_no_file_is_refused_and_a_link_is_written_through(tmp_path):
    """In a folder of the user's, a named pipe (or a device: ``/dev/null``) at the path is left
    as it is, never replaced by a file; a symbolic link stays, its target written."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(OSError) as caught:
        write_atomically(pipe, lambda tmp: tmp.write_text("x"), beside_others=True)
    assert caught.value.errno == errno.EEXIST and caught.value.filename == str(pipe)
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    target = tmp_path / "sub" / "target.txt"
    target.parent.mkdir()
    link = tmp_path / "link.txt"
    link.symlink_to(target)  # dangling until written
    write_atomically(link, lambda tmp: tmp.write_text("new"), beside_others=True)
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.txt", "pipe", "sub"]
    assert [p.name for p in target.parent.iterdir()] == ["target.txt"]  # no temporary file


@pytest.mark.parametrize("beside_others", [False, True])
def test_a_file_made_anew_by_its_fill_gets_the_umasks_mode(tmp_path, beside_others):
    """``fill`` may replace the temporary file with its own of mode 0600 (safetensors does):
    the file still ends 0666 less the umask, readable by those who share the folder."""

    def private(tmp: Path) -> None:
        tmp.unlink()
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))

    old = os.umask(0o022)
    try:
        write_atomically(tmp_path / "f.bin", private, beside_others=beside_others)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "f.bin").stat().st_mode) == 0o644
