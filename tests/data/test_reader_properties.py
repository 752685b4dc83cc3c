"""Property-based tests of the readers: for any file content they return data or raise the
project's own error type (``MtlshareError``: one line and exit code 2 at the command line),
never anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mtlshare.app.build import build_problem
from mtlshare.config import load_config
from mtlshare.data.conll import read_conll
from mtlshare.data.timeseries import read_daily_csv
from mtlshare.data.vocab import read_glove
from mtlshare.errors import DataError, MtlshareError
from mtlshare.tasks.tags import SCHEMES, convert, spans

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# lines that look like CoNLL, broken CoNLL, or noise
TOKENS = st.sampled_from(
    [
        "EU",
        "rejects",
        "-DOCSTART-",
        "O",
        "B-PER",
        "I-PER",
        "E-LOC",
        "S-ORG",
        "X-PER",
        "B-",
        "NNP",
        "B-NP",
        "I-NP",
        "-X-",
        "é",
        "\t",
        "  ",
    ]
)
LINE = st.one_of(
    st.just(""),
    st.lists(TOKENS, min_size=1, max_size=5).map(" ".join),
    st.text(max_size=20),
)
CONLL_TEXT = st.lists(LINE, max_size=25).map("\n".join)
ANY_BYTES = st.one_of(st.binary(max_size=300), CONLL_TEXT.map(lambda t: t.encode("utf-8")))


def write(factory: pytest.TempPathFactory, data: bytes, name: str) -> Path:
    """``data`` in a fresh folder under pytest's temporary directory (one per example)."""
    path = factory.mktemp("prop") / name
    path.write_bytes(data)
    return path


@SETTINGS
@given(ANY_BYTES)
def test_conll_reader_returns_sentences_or_a_data_error(tmp_path_factory, data):
    path = write(tmp_path_factory, data, "any.txt")
    try:
        sentences = read_conll(path)
    except DataError as e:
        assert str(e).startswith(str(path))  # names the file (and the line when there is one)
        assert "\n" not in str(e)
        return
    assert sentences and all(len(s) > 0 for s in sentences)
    widths = {len(row) for s in sentences for row in s.rows}
    assert len(widths) == 1


@SETTINGS
@given(ANY_BYTES)
def test_glove_reader_returns_vectors_or_a_data_error(tmp_path_factory, data):
    path = write(tmp_path_factory, data, "vectors.txt")
    try:
        vectors, dim = read_glove(path)
    except DataError as e:
        assert str(e).startswith(str(path)) and "\n" not in str(e)
        return
    assert dim >= 1 and all(v.shape == (dim,) for v in vectors.values())


CSV_LINE = st.one_of(
    st.just("date,series,value"),
    st.builds(
        "{},{},{}".format,
        st.sampled_from(["2020-01-01", "2020-01-02", "2020-02-30", "x", ""]),
        st.sampled_from(["a", "b", ""]),
        st.sampled_from(["1", "2.5", "", "NaN", "inf", "abc"]),
    ),
    st.text(max_size=15),
)


@SETTINGS
@given(
    st.one_of(
        st.binary(max_size=200), st.lists(CSV_LINE, max_size=12).map("\n".join).map(str.encode)
    )
)
def test_daily_csv_reader_returns_series_or_a_data_error(tmp_path_factory, data):
    path = write(tmp_path_factory, data, "daily.csv")
    try:
        read_daily_csv(path)
    except MtlshareError as e:
        assert "\n" not in str(e)


@SETTINGS
@given(CONLL_TEXT, CONLL_TEXT)
def test_conll_source_builds_a_problem_or_raises_its_own_error(tmp_path_factory, train, dev):
    folder = tmp_path_factory.mktemp("prop")
    (folder / "train.txt").write_text(train, encoding="utf-8")
    (folder / "dev.txt").write_text(dev, encoding="utf-8")
    config = folder / "run.toml"
    config.write_text(
        """
[data]
source = "conll"
train = "train.txt"
dev = "dev.txt"
test = "dev.txt"
columns = ["word", "ner"]
[data.tasks.ner]
column = "ner"
scheme = "iob2"
encode = "bioes"
[data.tasks.position]
kind = "position"
""",
        encoding="utf-8",
    )
    try:
        problem = build_problem(load_config(config), folder)
    except MtlshareError as e:
        assert "\n" not in str(e)
        return
    for td in problem.tasks:
        assert td.train.y.shape[:2] == td.train.x.shape[:2]
        assert int(td.train.y.max()) < td.task.out_dim


TAG = st.one_of(
    st.just("O"),
    st.builds("{}-{}".format, st.sampled_from("BIES"), st.sampled_from(["PER", "LOC", "A-B"])),
    st.text(max_size=6),
)


@SETTINGS
@given(st.lists(TAG, max_size=12), st.sampled_from(SCHEMES), st.sampled_from(SCHEMES))
def test_tag_conversion_keeps_spans_or_raises_a_data_error(tags, source, target):
    try:
        out = convert(tags, source, target)
    except DataError:
        return
    assert spans(out) == spans(tags)
