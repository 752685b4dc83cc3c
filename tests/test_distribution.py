"""What a user gets from the built distributions, not from the editable install the other tests
use: the wheel holds every file of src/mtlshare (the package data the code opens beside its
modules: demo.toml, py.typed) and nothing else, with the license; the sdist holds the tracked
tree, so that the tests run from it as from a clone (it held only the top-level tests/test_*.py,
without their conftest.py, the test subfolders, recipes/ or docs/ they read)."""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# written by setuptools into the sdist beside the tree
GENERATED = {"PKG-INFO", "setup.cfg"}
EGG_INFO = "src/mtlshare.egg-info/"


def source_files() -> list[str]:
    """The tree an sdist is built from: tracked files and new ones not ignored."""
    if not (ROOT / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs a git checkout: its file list is what the sdist must hold")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(p for p in listed.split("\0") if p and (ROOT / p).is_file())


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], Path, Path]:
    """The wheel and the sdist, built from a copy of the tree (a build writes build/ and an
    egg-info into the tree it reads, which other tests walk)."""
    pytest.importorskip("setuptools", minversion="77")  # pyproject.toml's build requirement
    files = source_files()
    tmp = tmp_path_factory.mktemp("dist")
    tree, out = tmp / "tree", tmp / "out"
    for name in files:
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, tree / name)  # a symlink's target's content, as sdists do
    out.mkdir()
    code = (
        "import sys; from setuptools import build_meta as b; out = sys.argv[1]; "  # (b sets argv)
        "w = b.build_wheel(out); s = b.build_sdist(out); print('built', w, s)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=tree, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    wheel, sdist = done.stdout.split()[-2:]  # the build's log comes before
    return files, out / wheel, out / sdist


def test_the_wheel_holds_the_package_and_its_data_and_nothing_else(built):
    files, wheel, _ = built
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = email.message_from_bytes(z.read(f"{info}/METADATA"))
        scripts = z.read(f"{info}/entry_points.txt").decode()
    package = sorted(n for n in names if not n.startswith(info))
    assert package == sorted(f[len("src/") :] for f in files if f.startswith("src/mtlshare/"))
    assert {"mtlshare/demo.toml", "mtlshare/py.typed"} <= set(package)  # opened at run time
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["License-Expression"] == "MIT"
    assert "mtlshare = mtlshare.cli:entry" in scripts
    classifiers = metadata.get_all("Classifier")
    # POSIX only (fcntl); typed (py.typed is shipped); the one Python version the tests ran on
    assert {"Operating System :: POSIX", "Typing :: Typed"} <= set(classifiers)
    assert [c for c in classifiers if c.startswith("Programming Language :: Python :: 3.")] == [
        "Programming Language :: Python :: 3.11"
    ]


def test_the_sdist_holds_the_tree_the_tests_run_from(built):
    files, _, sdist = built
    with tarfile.open(sdist) as t:
        top = f"{t.getnames()[0].split('/')[0]}/"
        names = {m.name[len(top) :] for m in t.getmembers() if m.isfile()}
    held = sorted(n for n in names if n not in GENERATED and not n.startswith(EGG_INFO))
    assert held == files
    assert {"tests/conftest.py", "tests/app/conftest.py", "LICENSE", "constraints.txt"} <= set(held)
