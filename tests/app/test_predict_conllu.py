"""A run trained on CoNLL-U (``data.format = "conllu"``) used: ``predict`` reads a CoNLL-U file
and writes it back as CoNLL-U (comments, ranges and empty nodes where they were, each task's
tags in its own column or MISC), plain text still works, and ``evaluate``, ``add-task`` and
``compare`` work on such a run through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlshare.app.predict import load_run
from mtlshare.cli import main
from mtlshare.data.conllu import ID, MISC, UD_COLUMNS, id_kind, parse_conllu

# (FORM, UPOS, XPOS, DEPREL) sentences, every tag seen in training
SENTENCES = [
    [("The", "DET", "DT", "det"), ("cat", "NOUN", "NN", "nsubj"), ("sat", "VERB", "VBD", "root")],
    [("A", "DET", "DT", "det"), ("dog", "NOUN", "NN", "nsubj"), ("ran", "VERB", "VBD", "root")],
    [
        ("Dogs", "NOUN", "NNS", "nsubj"),
        ("bark", "VERB", "VBP", "root"),
        (".", "PUNCT", ".", "punct"),
    ],
    [("New York", "PROPN", "NNP", "root"), ("!", "PUNCT", ".", "punct")],
]


def ud(sentences: list[list[tuple[str, str, str, str]]]) -> str:
    out = []
    for k, words in enumerate(sentences, start=1):
        out += [f"# sent_id = {k}", "# text = " + " ".join(w[0] for w in words)]
        for i, (form, upos, xpos, deprel) in enumerate(words, start=1):
            if i == 1 and len(words) > 1:
                out.append(f"1-2\t{form}{words[1][0]}\t_\t_\t_\t_\t_\t_\t_\t_")
            misc = "SpaceAfter=No" if i == len(words) - 1 else "_"
            out.append(f"{i}\t{form}\t{form.lower()}\t{upos}\t{xpos}\t_\t0\t{deprel}\t_\t{misc}")
            if i == 1:
                out.append(f"1.1\t{form}\t_\t_\t_\t_\t_\tdep\t_\t_")
        out.append("")
    return "\n".join(out) + "\n"


CONFIG = """
mechanism = "hard"
[data]
source = "conll"
format = "conllu"
train = "train.conllu"
dev = "train.conllu"
test = "train.conllu"
word_dim = 8
char_dim = 4
char_filters = 4
[data.tasks.upos]
column = "upos"
[data.tasks.xpos]
column = "xpos"
[data.tasks.deprel]
column = "deprel"
[data.tasks.where]
kind = "position"
[trunk]
kind = "lstm"
hidden = [8]
[train]
epochs = 2
batch_size = 4
threads = 1
"""
QUIET = ["--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("conllu")
    (folder / "train.conllu").write_text(ud(SENTENCES * 3), encoding="utf-8")
    (folder / "run.toml").write_text(CONFIG, encoding="utf-8")
    assert main(["run", str(folder / "run.toml"), *QUIET, "--out", str(folder / "run")]) == 0
    return folder


def test_predict_writes_conllu_back_with_each_task_in_its_column(trained, tmp_path):
    source = tmp_path / "new.conllu"
    source.write_text(ud(SENTENCES[1:] + SENTENCES[:1]), encoding="utf-8")
    out = tmp_path / "tagged.conllu"
    assert main(["predict", str(trained / "run"), str(source), "--out", str(out)]) == 0
    written, given = out.read_text("utf-8").split("\n"), source.read_text("utf-8").split("\n")
    assert len(written) == len(given)
    run = load_run(trained / "run")
    labels = {name: set(task.labels) for name, task in run.tasks.items()}
    predicted = {UD_COLUMNS.index(n) for n in ("upos", "xpos", "deprel")} | {MISC}
    for new, old in zip(written, given, strict=True):
        fields = old.split("\t")
        if not old or old.startswith("#") or id_kind(fields[ID]) != "word":
            assert new == old  # comments, blank lines, ranges and empty nodes as they were
            continue
        tags = new.split("\t")
        assert len(tags) == 10
        assert [t for i, t in enumerate(tags) if i not in predicted] == [
            f for i, f in enumerate(fields) if i not in predicted
        ]
        for name in ("upos", "xpos", "deprel"):
            assert tags[UD_COLUMNS.index(name)] in labels[name]
        kept = [e for e in fields[MISC].split("|") if e != "_"]
        *entries, where = tags[MISC].split("|")
        assert entries == kept and where.startswith("Pred_where=")
        assert where.removeprefix("Pred_where=") in labels["where"]
    # the output is CoNLL-U with the input's words; tagging it again changes nothing
    assert [s.column(1) for s in parse_conllu(out.read_text("utf-8"))] == [
        s.column(1) for s in parse_conllu(source.read_text("utf-8"))
    ]
    again = tmp_path / "again.conllu"
    argv = ["predict", str(trained / "run"), str(out), "--format", "conllu", "--out", str(again)]
    assert main(argv) == 0
    assert again.read_text("utf-8") == out.read_text("utf-8")


def test_the_tags_are_those_of_the_same_words_as_plain_text(trained, tmp_path):
    """The words read are the FORMs of the word lines (not a range's "Thecat"): the same
    sentences as plain text get the same tags. Plain text keeps working for a CoNLL-U run."""
    sentences = SENTENCES[:3]  # no FORM with a space: plain text splits at spaces
    (tmp_path / "in.conllu").write_text(ud(sentences), encoding="utf-8")
    text = "\n".join(" ".join(w[0] for w in words) for words in sentences) + "\n"
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    run = load_run(trained / "run")
    run.predict_file(tmp_path / "in.conllu", tmp_path / "out.conllu")
    run.predict_file(tmp_path / "in.txt", tmp_path / "out.txt", fmt="auto")
    ud_rows = [s.rows for s in parse_conllu((tmp_path / "out.conllu").read_text("utf-8"))]
    blocks = (tmp_path / "out.txt").read_text("utf-8").strip("\n").split("\n\n")
    assert len(blocks) == len(ud_rows) == 3
    for block, rows in zip(blocks, ud_rows, strict=True):
        lines = [line.split(" ") for line in block.split("\n")]
        assert [line[0] for line in lines] == [row[1] for row in rows]
        # text output: word upos xpos deprel where
        assert [line[1:4] for line in lines] == [[row[3], row[4], row[7]] for row in rows]
        assert [f"Pred_where={line[4]}" for line in lines] == [
            row[MISC].split("|")[-1] for row in rows
        ]


def test_the_summary_says_what_format_the_file_was_read_as(trained, tmp_path, capsys):
    """The format is guessed from the file (a line of two words and a blank line reads as
    CoNLL): ``predict`` says what it read, sentences and format, so a wrong guess shows."""
    sentences = SENTENCES[:3]
    (tmp_path / "in.conllu").write_text(ud(sentences), encoding="utf-8")
    text = "\n".join(" ".join(w[0] for w in words) for words in sentences) + "\n"
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    (tmp_path / "names.txt").write_text("Peter Blackburn\n\nJohn Smith\n", encoding="utf-8")
    (tmp_path / "one.txt").write_text("Peter\n", encoding="utf-8")
    run = load_run(trained / "run")
    tokens = sum(len(words) for words in sentences)
    for name, fmt, read, count, unit in (
        ("in.conllu", "auto", "conllu", tokens, 3),
        ("in.txt", "auto", "text", tokens, 3),
        ("names.txt", "auto", "conll", 2, 2),  # word and a tag column, each line a token
        ("names.txt", "text", "text", 4, 2),
        ("one.txt", "text", "text", 1, 1),
    ):
        done = run.predict_file(tmp_path / name, tmp_path / "out", fmt=fmt)
        assert (done["format"], done["tokens"], done["sentences"]) == (read, count, unit), name
        argv = ["predict", str(trained / "run"), str(tmp_path / name), "--format", fmt]
        assert main([*argv, "--out", str(tmp_path / "out")]) == 0
        line = capsys.readouterr().out.strip()
        tokens_, sentences_ = ("token", "sentence") if count == 1 else ("tokens", "sentences")
        said = f"{count} {tokens_} ({unit} {sentences_}, read as {read}) predicted"
        assert line.startswith(said), line


def test_a_conll_run_writes_its_tags_into_misc(tmp_path, tagger_config):
    """A run trained on CoNLL columns reads a CoNLL-U file by its FORMs and, its tasks reading
    no UD column, appends their tags to MISC."""
    (tmp_path / "train.txt").write_text("The DT\ncat NN\n\nA DT\ndog NN\n", "utf-8")
    (tmp_path / "dev.txt").write_text("The DT\ndog NN\n", "utf-8")
    (tmp_path / "run.toml").write_text(tagger_config, encoding="utf-8")
    assert main(["run", str(tmp_path / "run.toml"), *QUIET, "--out", str(tmp_path / "run")]) == 0
    (tmp_path / "in.conllu").write_text(ud(SENTENCES[:1]), encoding="utf-8")
    out = tmp_path / "out.conllu"
    argv = ["predict", str(tmp_path / "run"), str(tmp_path / "in.conllu"), "--out", str(out)]
    assert main(argv) == 0
    rows = [row for s in parse_conllu(out.read_text("utf-8")) for row in s.rows]
    assert [row[1] for row in rows] == ["The", "cat", "sat"]
    assert [row[3] for row in rows] == ["DET", "NOUN", "VERB"]  # the gold UPOS is left alone
    assert all(row[MISC].split("|")[-1] in ("Pred_pos=DT", "Pred_pos=NN") for row in rows)


def test_evaluate_scores_a_conllu_run_as_it_was_scored(trained, capsys):
    results = json.loads((trained / "run" / "results.json").read_text("utf-8"))
    capsys.readouterr()
    assert main(["evaluate", str(trained / "run")]) == 0
    printed = capsys.readouterr().out
    for task in ("upos", "xpos", "deprel", "where"):
        assert f"{task}: test" in printed, printed
        assert f"{results['tasks'][task]['test']:.6g}" in printed, task


def test_add_task_adds_a_task_to_a_conllu_run(trained, tmp_path):
    first = tmp_path / "first"
    argv = ["run", str(trained / "run.toml"), 'tasks=["upos","xpos"]', *QUIET, "--out", str(first)]
    assert main(argv) == 0
    added = tmp_path / "added"
    argv = ["add-task", str(first), str(trained / "run.toml"), 'tasks=["deprel"]', *QUIET]
    assert main([*argv, "--out", str(added)]) == 0
    assert "deprel" in json.loads((added / "results.json").read_text("utf-8"))["tasks"]


def test_compare_two_mechanisms_on_a_conllu_corpus(trained, tmp_path):
    out = tmp_path / "compared"
    argv = ["compare", str(trained / "run.toml"), "--mechanisms", "single,hard", *QUIET]
    assert main([*argv, "train.epochs=1", "--out", str(out)]) == 0
    comparison = json.loads((out / "comparison.json").read_text("utf-8"))
    assert [row["mechanism"] for row in comparison["rows"]] == ["single", "hard"]
    assert comparison["tasks"] == ["upos", "xpos", "deprel", "where"]
