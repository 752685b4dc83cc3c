"""The ``tagging`` codec on its own: what it reads of a CoNLL file around document markers, and
the scheme its predicted tags are written in."""

from __future__ import annotations

import warnings

import pytest
import torch

from mtlshare.data.tagging_codec import TaggingCodec, encode_tokens, encode_words
from mtlshare.data.vocab import Vocab
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


# -- CoNLL-U -------------------------------------------------------------------------------------
UD = [
    "# newdoc id = d1",
    "# text = EU don't",
    "1\tEU\teu\tPROPN\tNNP\t_\t0\troot\t_\tSpaceAfter=No",
    "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_",
    "2\tdo\tdo\tAUX\tVBP\t_\t1\taux\t_\t_",
    "3\tn't\tnot\tPART\tRB\t_\t1\tadvmod\t_\tPred_pos=OLD|Gloss=not",
    "3.1\tgo\t_\t_\t_\t_\t_\t_\t_\t_",
    "",
    "# sent_id = 2",
    "1\tNew York\t_\tPROPN\tNNP\t_\t0\troot\t_\t_",
    "",
]


def ud_codec(**tasks: dict[str, str]) -> TaggingCodec:
    columns = ["id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc"]
    codec = make_codec(**tasks)
    codec.columns, codec.word_column, codec.format = columns, "form", "conllu"
    return codec


def test_a_conllu_file_is_read_by_its_word_lines_and_written_back_line_for_line(tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text("\r\n".join(UD), "utf-8")  # Windows line ends, written back with "\n"
    codec = ud_codec(upos={"kind": "tags", "scheme": "", "encode": "", "column": "upos"})
    doc = codec.read(path, "auto")
    assert doc.form == "conllu" and codec.read(path, "conllu").sentences == doc.sentences
    assert doc.sentences == [["EU", "do", "n't"], ["New York"]]
    assert doc.where == [[2, 4, 5], [9]]
    upos = Task("upos", "classification", 2, "accuracy", labels=("NOUN", "VERB"))
    pos = Task("pos", "classification", 2, "accuracy", labels=("NN", "VB"))
    predictions = {
        "upos": torch.tensor([[0, 1, 0], [1, -100, -100]]),
        "pos": torch.tensor([[1, 1, 0], [0, -100, -100]]),
    }
    text = codec.write(doc, [upos, pos], predictions)
    expected = list(UD)
    expected[2] = "1\tEU\teu\tNOUN\tNNP\t_\t0\troot\t_\tSpaceAfter=No|Pred_pos=VB"
    expected[4] = "2\tdo\tdo\tVERB\tVBP\t_\t1\taux\t_\tPred_pos=VB"
    expected[5] = "3\tn't\tnot\tNOUN\tRB\t_\t1\tadvmod\t_\tGloss=not|Pred_pos=NN"  # replaced
    expected[9] = "1\tNew York\t_\tVERB\tNNP\t_\t0\troot\t_\tPred_pos=NN"
    assert text == "\n".join(expected)  # UD's last line is a blank one


def test_a_task_writes_its_column_unless_it_is_id_the_words_or_taken(tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text("1\tEU\teu\tPROPN\tNNP\t_\t0\troot\t_\t_\n", "utf-8")
    codec = ud_codec(
        a={"kind": "tags", "scheme": "", "encode": "", "column": "lemma"},
        b={"kind": "tags", "scheme": "", "encode": "", "column": "lemma"},
        c={"kind": "tags", "scheme": "", "encode": "", "column": "id"},
        d={"kind": "tags", "scheme": "", "encode": "", "column": "form"},
    )
    doc = codec.read(path, "auto")
    tasks = [Task(n, "classification", 1, "accuracy", labels=(n.upper(),)) for n in "abcd"]
    text = codec.write(doc, tasks, {n: torch.tensor([[0]]) for n in "abcd"})
    assert text == "1\tEU\tA\tPROPN\tNNP\t_\t0\troot\t_\tPred_b=B|Pred_c=C|Pred_d=D\n"
    # with the lemmas as words, FORM is a column like the others, and LEMMA is not written
    codec.word_column = "lemma"
    doc = codec.read(path, "conllu")  # the doc keeps the column it read its words from
    assert doc.sentences == [["eu"]]
    text = codec.write(doc, tasks, {n: torch.tensor([[0]]) for n in "abcd"})
    assert text == "1\tD\teu\tPROPN\tNNP\t_\t0\troot\t_\tPred_a=A|Pred_b=B|Pred_c=C\n"


def test_a_tag_holding_a_bar_cannot_go_into_misc(tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text("# c\n1\tEU\teu\tPROPN\tNNP\t_\t0\troot\t_\t_\n", "utf-8")
    codec = ud_codec()
    doc = codec.read(path, "auto")
    task = Task("feats", "classification", 1, "accuracy", labels=("Number=Sing|Case=Nom",))
    with pytest.raises(DataError) as caught:
        codec.write(doc, [task], {"feats": torch.tensor([[0]])})
    assert str(caught.value) == (
        f"{path}:2: task 'feats': tag 'Number=Sing|Case=Nom' holds '|', which separates MISC "
        "entries: leave the task out (--tasks)"
    )


def test_which_files_read_as_conllu(tmp_path):
    codec = make_codec()  # a CoNLL run: a CoNLL-U file is recognised all the same
    cases = {
        "# sent_id = 1\n1\tEU\t_\t_\t_\t_\t_\t_\t_\t_\n": "conllu",
        "1-2\tEUs\t_\t_\t_\t_\t_\t_\t_\t_\n1\tEU\t_\t_\t_\t_\t_\t_\t_\t_\n": "conllu",
        # tweets: a hashtag line is no comment of a CoNLL-U file
        "#EU NNP\ncalls VBZ\n\nBonn NNP\n": "conll",
        "#EU visits Bonn\n": "text",
        "EU\tNNP\n\nBonn\tNNP\n": "conll",
        "x\tEU\t_\t_\t_\t_\t_\t_\t_\t_\n\n": "conll",  # no ID: a CoNLL file
    }
    for n, (text, form) in enumerate(cases.items()):
        path = tmp_path / f"{n}.txt"
        path.write_text(text, "utf-8")
        assert codec.read(path, "auto").form == form, text
    # a CoNLL run of ten columns reads such a file as it did before CoNLL-U was read
    ten = [f"c{i}" for i in range(10)]
    codec.layouts = [{"columns": ten, "word_column": "c1"}]
    assert codec._form(["1\tEU\t_\t_\t_\t_\t_\t_\t_\t_", ""]) == "conll"


def test_a_bad_conllu_input_names_its_line(tmp_path):
    path = tmp_path / "in.conllu"
    path.write_text("# c\n1\tEU\t_\t_\t_\t_\t_\t_\t_\t_\n2\tcalls\n", "utf-8")
    with pytest.raises(DataError) as caught:
        ud_codec().read(path, "conllu")
    assert (
        str(caught.value) == f"{path}:3: 2 TAB-separated fields where a CoNLL-U token line has 10"
    )
    path.write_text("# only a comment\n", "utf-8")
    with pytest.raises(DataError, match="no sentences to tag: the file holds no words"):
        ud_codec().read(path, "conllu")
    with pytest.raises(DataError, match="a tagging run reads one of auto, conll, conllu, text"):
        ud_codec().read(path, "csv")


def test_a_conllu_file_may_open_with_blank_lines_and_keeps_every_other_field(tmp_path):
    """The first line that is neither blank nor a comment decides (blank lines before a
    file's first sentence are a tool's leftovers, not a CoNLL file); a field no task writes
    is written back as it was, spaces included."""
    path = tmp_path / "in.conllu"
    path.write_text("\n  \n# c\n1\tEU\teu\tPROPN\tNNP\t_\t0\troot\t_\tGloss=EU \n", "utf-8")
    codec = ud_codec(upos={"kind": "tags", "scheme": "", "encode": "", "column": "upos"})
    doc = codec.read(path, "auto")
    assert doc.form == "conllu" and doc.sentences == [["EU"]] and doc.where == [[3]]
    upos = Task("upos", "classification", 1, "accuracy", labels=("NOUN",))
    text = codec.write(doc, [upos], {"upos": torch.tensor([[0]])})
    assert text == "\n  \n# c\n1\tEU\teu\tNOUN\tNNP\t_\t0\troot\t_\tGloss=EU \n"


def test_a_misc_entry_is_replaced_only_where_its_key_is_the_tasks_own(tmp_path):
    """``Pred_pos`` replaces an earlier ``Pred_pos`` only: ``Pred_pos2`` (another task's) and
    an entry without ``=`` that begins the same stay."""
    path = tmp_path / "in.conllu"
    path.write_text("1\tEU\t_\t_\t_\t_\t0\troot\t_\tPred_pos2=A|Pred_posx|Pred_pos=OLD\n", "utf-8")
    codec = ud_codec()
    doc = codec.read(path, "auto")
    pos = Task("pos", "classification", 1, "accuracy", labels=("NN",))
    text = codec.write(doc, [pos], {"pos": torch.tensor([[0]])})
    assert text == "1\tEU\t_\t_\t_\t_\t0\troot\t_\tPred_pos2=A|Pred_posx|Pred_pos=NN\n"


def test_a_conll_run_reads_the_forms_of_a_conllu_file_and_writes_misc(tmp_path):
    """A run trained on CoNLL columns reads FORM (not ID, not its own word column's place),
    and a task's column that is no CoNLL-U column (from an edited ``inference.json``) sends
    the task to MISC rather than failing."""
    path = tmp_path / "in.conllu"
    path.write_text("1\tEU\teu\tPROPN\tNNP\t_\t0\troot\t_\t_\n", "utf-8")
    codec = make_codec(pos={"kind": "tags", "scheme": "", "encode": "", "column": "pos"})
    doc = codec.read(path, "auto")
    assert doc.form == "conllu" and doc.sentences == [["EU"]]
    pos = Task("pos", "classification", 1, "accuracy", labels=("NN",))
    text = codec.write(doc, [pos], {"pos": torch.tensor([[0]])})
    assert text == "1\tEU\teu\tPROPN\tNNP\t_\t0\troot\t_\tPred_pos=NN\n"


def test_the_shared_corpus_s_word_column_comes_first(tmp_path):
    """Of several CoNLL-U training corpora, the shared files' word column reads an input (as
    the shared files' layout comes first for CoNLL input)."""
    path = tmp_path / "in.conllu"
    path.write_text("1\tEU\teu\tPROPN\tNNP\t_\t0\troot\t_\t_\n", "utf-8")
    codec = ud_codec()
    codec.layouts = [{"columns": list(codec.columns), "word_column": "lemma", "format": "conllu"}]
    assert codec.read(path, "auto").sentences == [["EU"]]  # FORM, the shared word column
    codec.word_column = "lemma"
    assert codec.read(path, "auto").sentences == [["eu"]]


def test_a_conll_run_s_inference_spec_is_the_one_written_before_conllu(tmp_path):
    """``evaluate`` compares a run's codec spec with its ``inference.json``: a CoNLL run's
    must not gain a ``format`` key, or every run trained before would be refused."""
    assert "format" not in make_codec().spec()
    assert ud_codec().spec()["format"] == "conllu"


def _spec() -> dict:
    encoder = {"n_words": 3, "n_chars": 4, "word_dim": 8, "char_dim": 4, "char_filters": 0}
    spec = {**make_codec(pos={"kind": "tags"}).spec(), "encoder": {**encoder, "char_width": 3}}
    return {**spec, "encoder": {**spec["encoder"], "dropout": 0.5}}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("max_word_length", "30"),
        ("max_word_length", float("nan")),
        ("encoder", "x"),
        ("encoder", {"n_chars": 4}),
        ("encoder", {"n_words": "3", "n_chars": 4}),
        ("encoder", {"n_words": 10**400, "n_chars": 4}),
        ("encoder", {"n_words": 3, "n_chars": 4, "dropout": float("nan")}),
        ("encoder", {"n_words": 3, "n_chars": 4, "char_filters": "30"}),
        ("encoder", {"n_words": 3, "n_chars": 4, "extra": 1}),
        ("tasks", "pos"),
        ("tasks", None),
        ("columns", [None]),
        ("format", "conllx"),
    ],
)
def test_a_damaged_tagging_spec_is_a_data_error_before_anything_reads_it(key, value):
    """The codec of a run's ``inference.json``: a field of another kind was taken as it was and
    failed later, from reading a file or building the input encoder (a ``TypeError``,
    ``AttributeError`` or torch's ``RuntimeError``: tracebacks from ``predict``)."""
    from mtlshare.data.codecs import codec_from_spec

    codec_from_spec(_spec())  # the spec as the run writes it reads
    with pytest.raises(DataError, match=f"inference spec of a tagging run: {key} is"):
        codec_from_spec({**_spec(), key: value})


def test_a_spec_whose_vocabulary_lacks_its_special_entries_or_a_key_is_a_data_error():
    from mtlshare.data.codecs import codec_from_spec

    for name in ("words", "chars"):
        with pytest.raises(DataError) as err:
            codec_from_spec({**_spec(), name: ["E", "U"]})
        assert str(err.value) == f"inference spec: the {name} vocabulary lacks its special entries"
    spec = _spec()
    del spec["word_column"]
    with pytest.raises(DataError) as err:
        codec_from_spec(spec)
    assert str(err.value) == "inference spec of a tagging run is incomplete ('word_column')"


def test_one_token_a_line_reads_as_conll_and_a_missing_last_newline_loses_no_line(tmp_path):
    """Lines of one field each are a CoNLL file of words (a blank line ends a sentence), not
    plain text of one-word sentences; the last line counts whether a newline ends it or not."""
    codec = make_codec()
    for ending in ("\n", ""):
        path = tmp_path / "in.txt"
        path.write_text("EU\ncalls\n\nBonn" + ending, "utf-8")
        doc = codec.read(path, "auto")
        assert (doc.form, doc.sentences) == ("conll", [["EU", "calls"], ["Bonn"]]), ending


def _own_corpus_run(tmp_path):
    """A run whose task ``tag`` reads a corpus of its own with as many columns as the shared
    files (four) but the words in another column (``id word tag extra``)."""
    import random

    from mtlshare.app.build import build_problem
    from mtlshare.config import from_dict

    rng = random.Random(1)
    words = ["the", "bank", "Paris", "runs", "a", "cat", "sat", "on", "mat", "dog"]
    for split, n in (("train", 30), ("dev", 6), ("test", 6)):
        shared, own = [], []
        for _ in range(n):
            for w in rng.choices(words, k=rng.randrange(2, 7)):
                shared.append(f"{w} {rng.choice(['NN', 'VB'])} X O")
            for i, w in enumerate(rng.choices(words, k=rng.randrange(2, 7)), 1):
                own.append(f"{i} {w} {rng.choice(['A', 'B'])} _")
            shared.append("")
            own.append("")
        (tmp_path / f"{split}.conll").write_text("\n".join(shared) + "\n")
        (tmp_path / f"own-{split}.conll").write_text("\n".join(own) + "\n")
    own_files = {s: str(tmp_path / f"own-{s}.conll") for s in ("train", "dev", "test")}
    data = {
        "source": "conll",
        **{s: str(tmp_path / f"{s}.conll") for s in ("train", "dev", "test")},
        "columns": ["word", "pos", "chunk", "ner"],
        "word_dim": 8,
        "char_dim": 4,
        "char_filters": 4,
        "unseen_tags": "map",
        "tasks": {
            "pos": {"column": "pos"},
            "tag": {"column": "tag", **own_files, "columns": ["id", "word", "tag", "extra"]},
        },
    }
    cfg = from_dict({"mechanism": "hard", "data": data, "trunk": {"kind": "lstm", "hidden": [8]}})
    return build_problem(cfg)


def test_a_task_s_own_corpus_gives_the_word_column_of_the_file_read_for_it(tmp_path):
    """Read for ``tag``, its own test file gives the words of its column 2, the task's test
    inputs to the bit (it took the shared files' column 1, the ids: every word unknown); read
    for ``pos``, the shared test file gives pos's. A file read for both, whose corpora hold their
    words in different columns, is one line: which one it follows is not known. A run older
    than ``corpus_of`` reads the first corpus's column, with a warning that says so."""
    from mtlshare.data.codecs import codec_from_spec

    problem = _own_corpus_run(tmp_path)
    codec = codec_from_spec(problem.inference)
    split = {td.task.name: td.test for td in problem.tasks}
    for task, path in (("tag", "own-test.conll"), ("pos", "test.conll")):
        doc = codec.read(tmp_path / path, "auto", [task])
        x, lengths = codec.encode(doc)
        assert torch.equal(x, split[task].x) and torch.equal(lengths, split[task].lengths), task
    with pytest.raises(DataError, match=r"different columns \(pos in column 1; tag in column 2\)"):
        codec.read(tmp_path / "own-test.conll", "auto")
    older = {k: v for k, v in problem.inference.items() if k != "corpus_of"}
    with pytest.warns(UserWarning, match=r"hold their words in columns 1, 2: the words are read"):
        doc = codec_from_spec(older).read(tmp_path / "own-test.conll", "auto", ["tag"])
    assert {w for s in doc.sentences for w in s} <= {str(i) for i in range(1, 7)}
    with pytest.raises(DataError, match="corpus_of"):
        codec_from_spec({**problem.inference, "corpus_of": {"pos": 0}})


def test_inputs_padded_past_the_limit_warn_naming_the_longest_sentence_s_line(
    tmp_path, monkeypatch
):
    """Every sentence is held padded to the longest: one very long sentence (a file that lost
    its blank lines) multiplies the memory of all, so past the limit predict's read says where
    it starts and how large the inputs are; below it, nothing."""
    import mtlshare.data.tagging_codec as tagging_codec

    path = tmp_path / "in.txt"
    path.write_text("EU rejects it\n\nEU calls it a long long long day\nEU\n", "utf-8")
    codec = make_codec()
    doc = codec.read(path, "text")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        codec.encode(doc)  # 3 sentences x 8 tokens x (1 + 5) x 4 bytes: under the limit
    monkeypatch.setattr(tagging_codec, "PADDED_WARNING_BYTES", 3 * 8 * 6 * 4 - 1)
    with pytest.warns(UserWarning) as caught:
        x, lengths = codec.encode(doc)
    assert x.shape == (3, 8, 6) and lengths.tolist() == [3, 8, 1]  # encoded all the same
    assert str(caught[0].message) == (
        f"{path}:3: its longest sentence starts here, 8 tokens, and each of the 3 sentences is "
        "held padded to it: 0.0 GiB of inputs for 12 tokens (2 times their size); a file that "
        "lost the blank lines between its sentences reads as one long sentence "
        "(docs/performance.md: the memory a corpus takes)"
    )


def test_sentences_of_no_token_are_encoded_as_no_rows():
    """``encode_tokens`` takes an empty sentence (the padded encoding raised on one)."""
    words, chars = Vocab(["EU", "calls"]), Vocab(list("EUcals"))
    x, lengths = encode_tokens([["EU", "calls"], [], ["EU"], []], words, chars, False, 4)
    assert lengths.tolist() == [2, 0, 1, 0] and x.shape == (3, 5)
    assert x[2].tolist() == x[0].tolist()  # the third sentence's word is the first's
