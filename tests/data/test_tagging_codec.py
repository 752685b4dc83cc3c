"""The ``tagging`` codec on its own: what it reads of a CoNLL file around document markers, and
the scheme its predicted tags are written in."""

from __future__ import annotations

import pytest
import torch

from mtlshare.data.tagging_codec import TaggingCodec, encode_words
from mtlshare.errors import DataError
from mtlshare.tasks.task import Task


def make_codec(**tasks: dict[str, str]) -> TaggingCodec:
    return TaggingCodec(
        columns=["word", "pos"],
        word_column="word",
        lowercase=False,
        max_word_length=5,
        words=["<pad>", "<unk>", "EU"],
        chars=["<pad>", "<unk>", "E", "U"],
        encoder={},
        tasks=tasks,
    )


def test_a_document_marker_is_no_word_and_gets_an_o_per_task(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("-DOCSTART- -X-\n\nEU NNP\ncalls VBZ\n\nBonn NNP\n", "utf-8")
    codec = make_codec()
    doc = codec.read(path, "auto")
    assert doc.form == "conll"
    assert doc.sentences == [["EU", "calls"], ["Bonn"]] and doc.where == [[2, 3], [5]]
    task = Task("pos", "classification", 2, "accuracy", labels=("NNP", "VBZ"))
    _, lengths = codec.encode(doc)
    assert lengths.tolist() == [2, 1]
    text = codec.write(doc, [task], {"pos": torch.tensor([[0, 1], [0, -100]])})
    assert text.splitlines() == [
        "-DOCSTART- -X- O",
        "",
        "EU NNP NNP",
        "calls VBZ VBZ",
        "",
        "Bonn NNP NNP",
    ]


def test_tags_trained_in_bioes_are_written_in_the_file_s_scheme():
    codec = make_codec(ner={"kind": "tags", "scheme": "iob2", "encode": "bioes"})
    labels = ("O", "S-PER", "B-LOC", "E-LOC")
    task = Task("ner", "classification", 4, "span_f1", labels=labels)
    assert codec.labels(task, [1, 0, 2, 3]) == ["B-PER", "O", "B-LOC", "I-LOC"]
    plain = Task("pos", "classification", 4, "accuracy", labels=labels)
    assert codec.labels(plain, [1, 3]) == ["S-PER", "E-LOC"]  # no scheme: written as trained


def test_words_and_characters_are_padded_with_zero_and_unknowns_take_one():
    codec = make_codec()
    x, lengths = encode_words([["EU", "calls"], ["U"]], codec._words, codec._chars, False, 4)
    assert lengths.tolist() == [2, 1] and x.shape == (2, 2, 1 + 4)
    eu, e, u = codec._words.id("EU"), codec._chars.id("E"), codec._chars.id("U")
    assert x[0, 0].tolist() == [eu, e, u, 0, 0]
    assert x[0, 1].tolist() == [1, 1, 1, 1, 1]  # an unknown word of unknown characters, cut at 4
    assert x[1, 0].tolist() == [1, u, 0, 0, 0] and x[1, 1].tolist() == [0] * 5


def test_a_column_file_with_one_ragged_line_is_an_error_not_plain_text(tmp_path):
    """A CoNLL file with one short line is still a CoNLL file: reading it names the line, as
    ``--format conll`` does, rather than tagging every column as a word of plain text."""
    codec = make_codec()
    marked = tmp_path / "marked.txt"
    marked.write_text("-DOCSTART- -X-\n\nEU NNP\ncalls\n\nBonn NNP\n", "utf-8")
    plain = tmp_path / "plain.txt"
    rows = [f"w{i} NNP" for i in range(12)]
    plain.write_text("\n".join([*rows[:6], "", *rows[6:], "short"]) + "\n", "utf-8")
    for path, line in ((marked, 4), (plain, 14)):
        with pytest.raises(DataError, match=f":{line}: 1 columns where every token line has 2"):
            codec.read(path, "auto")
    text = tmp_path / "text.txt"  # sentences of several lengths, one blank line: text
    text.write_text("Zyxqwv visited Bonn on Tuesday .\n\nGermany rejects it\n", "utf-8")
    assert codec.read(text, "auto").form == "text"


def test_an_empty_line_of_plain_text_is_an_empty_sentence_so_output_k_is_input_line_k(tmp_path):
    """Each input line gives one blank-line-ended block of the output, an empty (or blank) line
    an empty one: the output's sentences line up with the input's lines."""
    path = tmp_path / "in.txt"
    path.write_text("EU rejects it\n\n  \nBonn calls\n\n", "utf-8")
    codec = make_codec()
    doc = codec.read(path, "text")
    assert doc.sentences == [["EU", "rejects", "it"], ["Bonn", "calls"]]
    task = Task("pos", "classification", 2, "accuracy", labels=("NNP", "VBZ"))
    text = codec.write(doc, [task], {"pos": torch.tensor([[0, 1, 0], [0, 1, -100]])})
    assert text == "EU NNP\nrejects VBZ\nit NNP\n\n\n\nBonn NNP\ncalls VBZ\n\n\n"
    blocks = text[:-1].split("\n")  # the file's last newline ends its last line
    sentences, current = [], []
    for line in blocks:
        if line:
            current.append(line.split()[0])
        else:
            sentences.append(current)
            current = []
    lines = path.read_text("utf-8").split("\n")[:-1]
    assert sentences == [line.split() for line in lines]
