"""What the tests of trained runs share: a small synthetic run, the config of a tiny tagger, and
the first sentences of a CoNLL file as a test file whose tags training has seen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from mtlshare.app.run import run
from mtlshare.config import load_config

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml"


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("syn") / "run"
    cfg = load_config(DEMO, ["train.epochs=1", "data.n_dev=20", "data.n_test=20"])
    run(cfg, folder, progress=False)
    return folder


def _first_sentences(source: Path, n: int, target: Path) -> Path:
    """The first ``n`` sentences of a CoNLL file, ``-DOCSTART-`` lines kept."""
    kept: list[str] = []
    count = 0
    for line in source.read_text(encoding="utf-8").split("\n"):
        if not line.split():
            count += bool(kept and kept[-1].split() and kept[-1].split()[0] != "-DOCSTART-")
            if count >= n:
                break
        kept.append(line)
    target.write_text("\n".join(kept) + "\n", encoding="utf-8")
    return target


@pytest.fixture(scope="session")
def first_sentences() -> Callable[[Path, int, Path], Path]:
    return _first_sentences


TAGGER = """
[data]
source = "conll"
train = "train.txt"
dev = "dev.txt"
test = "dev.txt"
columns = ["word", "pos"]
word_dim = 8
char_filters = 0

[data.tasks.pos]
column = "pos"

[trunk]
kind = "lstm"
hidden = [8]

[train]
epochs = 1
threads = 1
"""


@pytest.fixture(scope="session")
def tagger_config() -> str:
    """A part-of-speech tagger small enough to train in a second: an LSTM of 8 over 8-d words,
    one epoch, ``train.txt`` and ``dev.txt`` beside the config (dev scored as test)."""
    return TAGGER
