"""The CoNLL-U reader on tiny made-up files: what it skips, the line numbers it keeps, and each
error message, word for word."""

from __future__ import annotations

import pytest

from mtlshare.data.conllu import (
    UD_COLUMNS,
    conllu_sentences,
    id_kind,
    looks_like_conllu,
    parse_conllu,
    read_conllu,
)
from mtlshare.errors import DataError


def token(i: str, form: str, upos: str = "X", misc: str = "_") -> str:
    return "\t".join([i, form, "_", upos, "_", "_", "0", "dep", "_", misc])


SAMPLE = "\n".join(
    [
        "# newdoc id = d1",
        "# sent_id = 1",
        "# text = I don't know",
        token("1", "I", "PRON"),
        token("2-3", "don't"),
        token("2", "do", "AUX"),
        token("3", "n't", "PART"),
        token("4", "know", "VERB"),
        token("4.1", "knew"),
        "",
        "# sent_id = 2",
        token("0.1", "zero"),
        token("1", "New York", "PROPN", "SpaceAfter=No"),
        token("2", "!", "PUNCT"),
        "",
    ]
)


def write(tmp_path, text, name="f.conllu"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_words_are_the_word_lines_with_their_own_line_numbers(tmp_path):
    first, second = read_conllu(write(tmp_path, SAMPLE))
    assert first.column(1) == ["I", "do", "n't", "know"]  # the range's words, not "don't"
    assert first.column(3) == ["PRON", "AUX", "PART", "VERB"]
    assert first.line == 4 and first.lines == (4, 6, 7, 8)  # the range on line 5 is skipped
    assert [first.line_of(i) for i in range(4)] == [4, 6, 7, 8]
    # a FORM may hold a space (fields split on TABs only); an empty node before word 1
    assert second.column(1) == ["New York", "!"] and second.lines == (13, 14)
    assert second.rows[0] == (
        "1",
        "New York",
        "_",
        "PROPN",
        "_",
        "_",
        "0",
        "dep",
        "_",
        "SpaceAfter=No",
    )
    assert UD_COLUMNS == (
        "id",
        "form",
        "lemma",
        "upos",
        "xpos",
        "feats",
        "head",
        "deprel",
        "deps",
        "misc",
    )


def test_windows_line_ends_a_bom_and_no_final_blank_line(tmp_path):
    path = tmp_path / "crlf.conllu"
    text = "# c\r\n" + token("1", "a") + "\r\n\r\n" + token("1", "b") + "\r\n" + token("2", "c")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    sentences = read_conllu(path)
    assert [s.column(1) for s in sentences] == [["a"], ["b", "c"]]
    assert sentences[0].rows[0][-1] == "_"  # no "\r" left in MISC
    assert [s.lines for s in sentences] == [(2,), (4, 5)]


def test_blank_lines_of_whitespace_and_comments_inside_a_sentence():
    text = "\n".join([token("1", "a"), "# a comment", token("2", "b"), "  \t ", token("1", "c")])
    first, second = parse_conllu(text)
    # a comment need not have a space after its "#"
    (only,) = parse_conllu("\n".join(["#sent_id=1", token("1", "a"), "#x", token("2", "b")]))
    assert only.column(1) == ["a", "b"] and only.lines == (2, 4)
    assert first.column(1) == ["a", "b"] and first.lines == (1, 3)
    assert second.column(1) == ["c"] and second.lines == (5,)


def test_a_sentence_of_ranges_and_empty_nodes_only_is_no_sentence():
    text = "\n".join(
        ["# only comments", token("1-2", "ab"), token("1.1", "e"), "", token("1", "w")]
    )
    (only,) = parse_conllu(text)
    assert only.column(1) == ["w"] and only.line == 5


def test_the_kinds_of_id():
    assert [id_kind(i) for i in ("1", "12", "1-2", "10-11", "8.1", "0.1")] == [
        "word",
        "word",
        "range",
        "range",
        "empty",
        "empty",
    ]
    bad_ids = ("0", "01", "1.0", "a", "1-", "-1", "1.2.3", "", " 1", "١", "0-1", "01-2", "1-02")
    for bad in bad_ids:  # ١: arabic one; a range, like a word index, counts from 1
        assert id_kind(bad) is None, bad


def test_a_conllu_token_line_is_recognised():
    assert looks_like_conllu(token("1", "a")) and looks_like_conllu(token("3-4", "ab"))
    assert not looks_like_conllu(token("x", "a"))
    assert not looks_like_conllu(token("1", "a") + "\textra")  # eleven fields
    assert not looks_like_conllu(token("1", "a").replace("\t", " "))
    assert not looks_like_conllu("EU NNP B-NP B-ORG") and not looks_like_conllu("")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "1\ta\t_\tX",
            "4 TAB-separated fields where a CoNLL-U token line has 10",
        ),
        (
            token("1", "a") + "\textra",
            "11 TAB-separated fields where a CoNLL-U token line has 10",
        ),
        (
            token("1", "a").replace("\t", " "),
            "1 TAB-separated fields where a CoNLL-U token line has 10 (are they separated by "
            "spaces? CoNLL-U separates them by TABs)",
        ),
        (
            token("one", "a"),
            "ID 'one' is not a word index (1, 2, ...), a multiword range (3-4) or an empty "
            "node (8.1)",
        ),
        (
            token("0", "a"),
            "ID '0' is not a word index (1, 2, ...), a multiword range (3-4) or an empty "
            "node (8.1)",
        ),
        (token("1", ""), "empty FORM field (CoNLL-U writes _ for no value)"),
        (token("1", "a", upos=""), "empty UPOS field (CoNLL-U writes _ for no value)"),
        (token("1", "a", misc=""), "empty MISC field (CoNLL-U writes _ for no value)"),
    ],
)
def test_each_error_is_one_line_naming_file_line_and_problem(tmp_path, line, message):
    path = write(tmp_path, "\n".join(["# sent_id = 1", token("1", "w"), "", "# c", line, ""]))
    with pytest.raises(DataError) as caught:
        read_conllu(path)
    assert str(caught.value) == f"{path}:5: {message}"
    assert caught.value.line == 5 and "\n" not in str(caught.value)


def test_a_word_id_out_of_order_names_the_expected_one(tmp_path):
    lines = [token("1", "a"), token("2-3", "bc"), token("2", "b"), token("4", "d")]
    path = write(tmp_path, "\n".join(lines))
    with pytest.raises(DataError) as caught:
        read_conllu(path)
    assert str(caught.value) == (
        f"{path}:4: word ID 4 where the sentence's next word is 3 (IDs count 1, 2, 3... in each "
        "sentence; a blank line ends one)"
    )
    # a missing blank line between sentences: the next one's word 1
    path = write(tmp_path, "\n".join([token("1", "a"), token("2", "b"), token("1", "c")]))
    with pytest.raises(
        DataError, match=rf"^{path}:3: word ID 1 where the sentence's next word is 3"
    ):
        read_conllu(path)


def test_a_file_without_words(tmp_path):
    path = write(tmp_path, "# only a comment\n\n" + token("1-2", "ab") + "\n")
    with pytest.raises(DataError) as caught:
        read_conllu(path)
    assert str(caught.value) == f"{path}: no sentences: the file has no word lines"
    assert conllu_sentences("# nothing\n") == []


def test_bytes_that_are_not_utf8_and_missing_files_name_the_file(tmp_path):
    path = tmp_path / "latin1.conllu"
    path.write_bytes(token("1", "a").encode() + b"\n" + token("2", "caf\xe9").encode("latin-1"))
    with pytest.raises(DataError, match=rf"^{path}:2: not UTF-8"):
        read_conllu(path)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'none'}: no such file"):
        read_conllu(tmp_path / "none")
