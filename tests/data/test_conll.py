"""The CoNLL column reader, vocabularies and GloVe loading, on tiny made-up files."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from mtlshare.data.conll import column_index, parse_conll, read_conll
from mtlshare.data.vocab import Vocab, embedding_matrix, read_glove
from mtlshare.errors import DataError

SAMPLE = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER
-DOCSTART- -X- -X- O
Bonn NNP B-NP B-LOC
"""


def write(tmp_path, text, name="f.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sentences_split_on_blank_lines_and_document_markers(tmp_path):
    sentences = read_conll(write(tmp_path, SAMPLE))
    assert [len(s) for s in sentences] == [3, 2, 1]
    assert sentences[0].column(0) == ["EU", "rejects", "German"]
    assert sentences[0].column(3) == ["B-ORG", "O", "B-MISC"]
    assert sentences[1].column(2) == ["B-NP", "I-NP"]
    # a -DOCSTART- line ends a sentence even without a blank line before it
    assert sentences[2].column(0) == ["Bonn"]
    assert [s.line for s in sentences] == [3, 7, 10]


def test_windows_line_ends_and_trailing_spaces_are_read(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"a X O  \r\nb Y O\r\n\r\nc Z O\r\n")
    sentences = read_conll(path)
    assert [s.column(0) for s in sentences] == [["a", "b"], ["c"]]


def test_ragged_row_names_file_and_line(tmp_path):
    path = write(tmp_path, "a X B-NP O\nb Y B-NP\n")
    with pytest.raises(DataError, match=rf"{path}:2: 3 columns where every token line has 4"):
        read_conll(path)


def test_wrong_number_of_columns_against_the_config(tmp_path):
    path = write(tmp_path, "a X O\n")
    with pytest.raises(DataError, match=r":1: 3 columns where every token line has 4"):
        read_conll(path, n_columns=4)


def test_bytes_that_are_not_utf8_name_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(b"a X O\n\nb Y O\ncaf\xe9 Z O\n")
    with pytest.raises(DataError, match=rf"{path}:4: not UTF-8"):
        read_conll(path)


def test_a_byte_order_mark_is_not_part_of_the_first_word(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfEU NNP B-ORG\nrejects VBZ O\r\n\r\nb Y O\n")
    first, second = read_conll(path)
    assert first.rows[0] == ("EU", "NNP", "B-ORG") and second.line == 4
    path.write_bytes(b"\xef\xbb\xbfa X O\n\nb Y O\ncaf\xe9 Z O\n")
    with pytest.raises(DataError, match=rf"{path}:4: not UTF-8 text \(byte 0xe9 at offset 19\)"):
        read_conll(path)


@pytest.mark.parametrize(
    ("text", "what"),
    [("", "no token lines"), ("\n\n  \n", "no token lines"), (SAMPLE.split("\n")[0], "only")],
)
def test_empty_files_are_errors(tmp_path, text, what):
    with pytest.raises(DataError, match=f"no sentences: the file has {what}"):
        read_conll(write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_conll(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=f"^{tmp_path}: a folder, not a file$"):
        read_conll(tmp_path)


def test_an_unreadable_file_is_a_data_error_naming_it(tmp_path, monkeypatch):
    from pathlib import Path

    path = write(tmp_path, "EU NNP\n")

    def refused(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refused)  # as a file of another user's (not root)
    with pytest.raises(DataError, match=f"^{path}: cannot read: Permission denied$"):
        read_conll(path)


def test_columns_by_name_or_position():
    names = ["word", "pos", "chunk", "ner"]
    assert column_index("ner", names) == 3
    assert column_index(1, names) == 1
    with pytest.raises(DataError, match="no column named 'lemma'"):
        column_index("lemma", names)
    with pytest.raises(DataError, match="out of range"):
        column_index(4, names)


def test_parse_conll_keeps_token_text_verbatim():
    sentences = parse_conll("Ünïcode X O\n-- Y O\n")
    assert sentences[0].column(0) == ["Ünïcode", "--"]


def test_vocab_specials_min_freq_and_order():
    counts = Counter({"the": 5, "cat": 2, "sat": 1})
    vocab = Vocab.build(counts, min_freq=2)
    assert vocab.itos == ["<pad>", "<unk>", "the", "cat"]
    assert vocab.id("the") == 2 and vocab.id("sat") == 1  # below min_freq: unknown
    tags = Vocab.build(Counter({"O": 3, "B-PER": 1}), specials=False)
    assert tags.itos == ["O", "B-PER"]
    with pytest.raises(KeyError):
        tags.id("I-PER")
    # a token given twice (or a special one given again) keeps its first id
    again = Vocab(["cat", "<unk>", "cat", "the"])
    assert again.itos == ["<pad>", "<unk>", "cat", "the"] and again.id("the") == 3


def test_glove_file_vectors_and_errors(tmp_path):
    path = write(tmp_path, "the 0.1 0.2 0.3\ncat 1 2 3\ndog 4 5 6\n", "glove.txt")
    vectors, dim = read_glove(path, wanted={"the", "cat"})
    assert dim == 3 and sorted(vectors) == ["cat", "the"]
    vocab = Vocab(["The", "cat", "emu"])
    matrix, found = embedding_matrix(vocab, vectors, dim, torch.Generator().manual_seed(0))
    assert found == 2  # "The" through its lower-cased form, and "cat"
    assert torch.equal(matrix[vocab.id("cat")], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(matrix[vocab.id("The")], torch.tensor([0.1, 0.2, 0.3]))
    assert torch.equal(matrix[0], torch.zeros(3))  # padding
    assert matrix[vocab.id("emu")].abs().max() <= (3 / 3) ** 0.5  # random, uniform +-sqrt(3/d)

    ragged = write(tmp_path, "a 1 2\nb 1 2 3\n", "ragged.txt")
    with pytest.raises(DataError, match=rf"{ragged}:2: 3 numbers where the first vector has 2"):
        read_glove(ragged)
    bad = write(tmp_path, "a 1 x\n", "bad.txt")
    with pytest.raises(DataError, match=rf"{bad}:1: a vector entry is not a number"):
        read_glove(bad)
    nan = write(tmp_path, "a 1 nan\n", "nan.txt")
    with pytest.raises(DataError, match="NaN or infinite"):
        read_glove(nan)
    with pytest.raises(DataError, match="no such word-vector file"):
        read_glove(tmp_path / "missing.txt")


def test_a_glove_file_is_read_line_by_line_as_the_whole_file_was(tmp_path, monkeypatch):
    """Read a line at a time (a GloVe file is gigabytes; read whole it took 2.5 times its size),
    with what the whole-file read gave: a byte-order mark dropped, CRLF line ends, non-ASCII
    words, and a bad byte named by the same line and file offset as decoding the whole file
    names it."""
    from mtlshare.data.conll import decode_utf8

    good = b"\xef\xbb\xbfthe 0.1 0.2\r\ncaf\xc3\xa9 1 2\r\n\r\nna\xc3\xafve 3 4\n"
    path = tmp_path / "glove.txt"
    path.write_bytes(good)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read whole"))
    vectors, dim = read_glove(path)
    assert dim == 2 and list(vectors) == ["the", "café", "naïve"]
    assert vectors["naïve"].tolist() == [3.0, 4.0]
    monkeypatch.undo()
    damaged = good + b"emu 5 6\nw\xff 7 8\n"
    path.write_bytes(damaged)
    with pytest.raises(DataError) as whole:
        decode_utf8(path, damaged)
    with pytest.raises(DataError) as lines:
        read_glove(path)
    assert str(lines.value) == str(whole.value)
    assert str(lines.value).endswith(":6: not UTF-8 text (byte 0xff at offset 49)")


def test_a_limit_reads_the_first_sentences_as_reading_all_would_and_no_line_after():
    """``data.train_sentences`` (and dev's, test's): the file's first sentences, the same as
    reading it all and keeping them, without reading the lines after them (a corpus ten times
    CoNLL-2003's took 0.96 GiB for the 3,500 sentences that took 0.44 from the real one)."""
    text = "-DOCSTART- -X- O\r\n\r\nEU NNP\r\nrejects VBZ\r\n\r\nPeter NNP\n\n\nBonn NNP\nsays VBZ"
    every = parse_conll(text)
    for limit in range(1, 5):
        assert parse_conll(text, limit=limit) == every[:limit]
    ragged = text + "\n\nthree columns here\n"  # past the limit: not read, so not refused
    assert parse_conll(ragged, limit=3) == every
    with pytest.raises(DataError, match="3 columns where every token line has 2"):
        parse_conll(ragged)
